"""Consumer contracts (Pact): what the incident bot and the demo need from the services they call, and
what Alertmanager sends the bot, verified against our fakes and the bot itself. See README.md here."""
