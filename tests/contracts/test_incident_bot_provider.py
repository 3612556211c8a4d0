"""Provider side of ``alertmanager`` -> ``incident-bot``: the real bot takes every committed notification.

The bot runs as in production (``python -m breakerpanel.incident_bot`` under uvicorn, in its own process, via
:class:`tests.incident_bot.processes.BotProcess`), in dry run over a SQLite file, with a webhook token of its own.
Pact's verifier replays the committed Alertmanager 0.25 and current notifications against ``POST /v1/alertmanager``.

The bearer token: the contract holds Alertmanager's ``Authorization: Bearer <token>`` with an example token, and
the verifier replaces that header with the bot's real one (``add_custom_header``), as a deployment's Alertmanager
reads the token from its ``credentials_file``. No provider state is needed: the intake takes any valid
notification, whatever the bot already knows.

Afterwards the bot must have turned the notifications into an incident: a 200 alone would not show that the body
was usable past the intake (the engine processes stored webhooks apart from the request).
"""

from __future__ import annotations

from pact import Verifier

from tests.incident_bot.processes import BotProcess
from tests.servers import ServerPool, wait_until

from .test_alertmanager_consumer import LABELS, PACT_FILE
from .verification import verify_committed

BOT_TOKEN = "the-bots-own-webhook-token"


def test_the_incident_bot_takes_alertmanager_notifications(server_pool: ServerPool) -> None:
    bot = server_pool.start(BotProcess({"INCIDENT_BOT_WEBHOOK_TOKEN": BOT_TOKEN, "INCIDENT_BOT_DRY_RUN": "true"}))

    verifier = (
        Verifier(PACT_FILE.provider, host="127.0.0.1")
        .add_transport(url=bot.url)
        .add_custom_header("Authorization", f"Bearer {BOT_TOKEN}")
    )
    verify_committed(verifier, PACT_FILE)

    breaker = LABELS["circuit_breaker_name"]
    incidents = wait_until(bot.incidents, timeout=20, what="an incident from the notifications")
    assert [incident["title"].split(" ")[0] for incident in incidents] == [breaker]
