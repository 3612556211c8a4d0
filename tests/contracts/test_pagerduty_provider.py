"""Provider side of ``incident-bot`` -> ``pagerduty-events-v2``: the fake PagerDuty honours the committed pact.

Pact's verifier replays each interaction of ``pacts/incident-bot-pagerduty-events-v2.json`` against the fake
(``tests/fakes/pagerduty.py``) over HTTPS. The verifier (Rust, rustls) reads extra trusted roots from
``SSL_CERT_FILE``: pointing it at the fake's CA keeps certificate and hostname checks on (no
``disable_ssl_verification()``).

Provider state ``an alert is open for the dedup key`` (``routing_key``, ``dedup_key``): the fake is reset and the
alert is opened with a trigger sent through the real ``pagerduty`` client, so an acknowledge or resolve applies to
it (without it the fake, like PagerDuty, would answer 202 but drop the event).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pagerduty
import pytest
from pact import Verifier

from tests.fakes import FakePagerDuty

from .states import ProviderStates
from .test_pagerduty_consumer import ALERT_OPEN, PACT_FILE
from .verification import verify_committed


def _open_alert(fake: FakePagerDuty, routing_key: str, dedup_key: str) -> None:
    client = pagerduty.EventsApiV2Client(routing_key, base_url=fake.base_url, verify=fake.ssl_context())
    try:
        client.trigger("opened by the provider state", "contract-test", dedup_key=dedup_key)
    finally:
        client.close()


def test_the_fake_pagerduty_honours_the_incident_bot_pact(
    fake_pagerduty: FakePagerDuty, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rejected (400) and dropped events, collected before each reset: the verifier sees only the status code.
    problems: list[object] = []

    def reset() -> None:
        problems.extend([*fake_pagerduty.rejected, *fake_pagerduty.dropped])
        fake_pagerduty.reset()

    def alert_open(parameters: Mapping[str, Any]) -> None:
        _open_alert(fake_pagerduty, str(parameters["routing_key"]), str(parameters["dedup_key"]))

    monkeypatch.setenv("SSL_CERT_FILE", str(fake_pagerduty.ca_file))
    verifier = Verifier(PACT_FILE.provider, host="127.0.0.1").add_transport(url=fake_pagerduty.base_url)
    with ProviderStates({ALERT_OPEN: alert_open}, before_each=reset) as states:
        verify_committed(verifier, PACT_FILE, states)

    assert states.seen.count(ALERT_OPEN) == 2, states.seen
    # Every event was taken as valid, and the acknowledge and resolve found their alert open.
    reset()
    assert not problems
