"""Provider side of ``incident-bot`` -> ``slack-web-api``: the fake Slack honours the committed pact.

Pact's verifier replays each interaction of ``pacts/incident-bot-slack-web-api.json`` against the fake
(``tests/fakes/slack.py``), which checks what Slack checks (token, channel, Block Kit) and a little more.

Provider state ``a card is posted in #incidents``: the fake is reset and a card is posted through ``slack_sdk``;
its ``channel`` (ID) and ``ts`` go back to the verifier, which sends them in ``chat.update`` and in the thread
reply (the fake, like Slack, knows only messages it was sent).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pact import Verifier
from slack_sdk import WebClient

from tests.fakes import FakeSlack

from .states import ProviderStates
from .test_slack_consumer import CARD_POSTED, INCIDENTS, PACT_FILE, TOKEN
from .verification import verify_committed


def test_the_fake_slack_honours_the_incident_bot_pact(fake_slack: FakeSlack) -> None:
    rejected: list[object] = []  # answered ok: false, collected before each reset

    def reset() -> None:
        rejected.extend(fake_slack.rejected)
        fake_slack.reset()

    def card_posted(parameters: Mapping[str, Any]) -> dict[str, str]:
        client = WebClient(token=TOKEN, base_url=fake_slack.api_url)
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "#1 posted by the provider state"}}]
        response = client.chat_postMessage(channel=INCIDENTS, text="An incident's card", blocks=blocks)
        return {"channel": str(response["channel"]), "ts": str(response["ts"])}

    verifier = Verifier(PACT_FILE.provider, host="127.0.0.1").add_transport(url=fake_slack.base_url)
    with ProviderStates({CARD_POSTED: card_posted}, before_each=reset) as states:
        verify_committed(verifier, PACT_FILE, states)

    assert states.seen.count(CARD_POSTED) == 2, states.seen
    reset()
    assert not rejected
