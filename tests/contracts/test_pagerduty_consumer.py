"""Consumer side of ``incident-bot`` -> ``pagerduty-events-v2``: the events the bot sends, as it sends them.

The bot's own pipeline (:mod:`tests.contracts.bot`: engine, outbox worker, the real :class:`PagerDutySender` and
its ``pagerduty`` client) delivers to Pact's mock server. The client accepts only ``https://`` base URLs, so the
mock server serves TLS (``serve(transport="https")``). Its certificate is a fresh self-signed one per server, and
not the one ``pact_ffi.get_tls_ca_certificate()`` returns (that CA signs nothing the server presents), so the
test trusts exactly the certificate the server presents, as a CA file given to the sender like in production
(``INCIDENT_BOT_PAGERDUTY_CA_FILE``): TLS verification stays on, hostname included.

What the contract pins down (and the fake PagerDuty is verified against in ``test_pagerduty_provider.py``):
the paths, ``Content-Type``, every field the bot sets (requests may not carry fields the contract does not list),
the enumerations PagerDuty checks (``event_action``, ``severity``), the routing key's shape, and from the answers
what the client relies on: a 202 and, for alert events, ``dedup_key`` (the client raises without it).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import pytest
from pact import match

from breakerpanel.incident_bot.pagerduty import PagerDutySender
from breakerpanel.incident_bot.routing import RoutingFile
from breakerpanel.incident_bot.vocabulary import Target
from tests.incident_bot.support import AlertSpec, breaker_labels, webhook

from .bot import PUBLIC_URL, running_bot
from .pactfiles import CommittedPact

TRIGGER: Final = "a trigger event for a new incident"
ACKNOWLEDGE: Final = "an acknowledge event for an incident acknowledged in Slack"
RESOLVE: Final = "a resolve event for an incident resolved in Slack"
CHANGE: Final = "a change event for a breaker put in a manual state"
PACT_FILE: Final = CommittedPact("incident-bot", "pagerduty-events-v2", (TRIGGER, ACKNOWLEDGE, RESOLVE, CHANGE))

#: Provider state (see test_pagerduty_provider.py): PagerDuty has an open alert for this routing and dedup key.
ALERT_OPEN: Final = "an alert is open for the dedup key"

ROUTING_KEY: Final = "PD0123456789abcdefABCDEF01234567"
ROUTING_KEY_REF: Final = "PAGERDUTY_ROUTING_KEY"
ROUTING: Final = RoutingFile.model_validate(
    {
        "routes": [
            {
                "name": "page critical",
                "match": {"severity": "critical"},
                "pagerduty": {"routing_key_env": ROUTING_KEY_REF},
            },
            {
                "name": "manual states",
                "match": {"alertname": "CircuitBreakerManualState"},
                "pagerduty": {"routing_key_env": ROUTING_KEY_REF},
            },
        ]
    }
)
INSTANCE: Final = "rag-1:8000"
BREAKER_OPEN: Final = AlertSpec(
    breaker_labels("openai") | {"gen_ai_provider_name": "openai", "instance": INSTANCE}, fingerprint="0f1e2d3c4b5a6978"
)
MANUAL_STATE: Final = AlertSpec(
    breaker_labels("qdrant", alertname="CircuitBreakerManualState", severity="info")
    | {"circuit_breaker_state": "forced_open", "instance": INSTANCE},
    fingerprint="8796a5b4c3d2e1f0",
)
#: What the bot derives from BREAKER_OPEN's labels (incident_bot.identity): stable per breaker.
DEDUP_KEY: Final = "breakerpanel/breaker:rag:service:openai/5ebb5f966063"
#: The fixed clock of tests.incident_bot.support.ManualClock, as the bot writes it.
TIMESTAMP: Final = "2027-01-15T08:00:00+00:00"

# Matchers for what PagerDuty checks (its Events API v2 docs; the fake checks the same).
ROUTING_KEY_MATCH: Final = match.regex(ROUTING_KEY, regex=r"^[A-Za-z0-9]{32}$")
DEDUP_KEY_MATCH: Final = match.regex(DEDUP_KEY, regex=r"^.{1,255}$")
SUMMARY_PATTERN: Final = r"^[\s\S]{1,1024}$"
TIMESTAMP_MATCH: Final = match.regex(
    TIMESTAMP, regex=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
)


def _link(href: str, text: str) -> dict[str, Any]:
    return {"href": match.regex(href, regex=r"^https?://\S+$"), "text": match.like(text)}


def _trigger_body() -> dict[str, Any]:
    summary = "[critical] openai (service, rag): Circuit breaker has been open for more than 5m."
    labels = BREAKER_OPEN.labels
    return {
        "routing_key": ROUTING_KEY_MATCH,
        "event_action": "trigger",
        "dedup_key": DEDUP_KEY_MATCH,
        "payload": {
            "summary": match.regex(summary, regex=SUMMARY_PATTERN),
            "source": match.like(INSTANCE),
            "severity": match.regex("critical", regex=r"^(critical|error|warning|info)$"),
            "timestamp": TIMESTAMP_MATCH,
            "component": match.like("openai"),
            "group": match.like("rag"),
            "class": match.like("CircuitBreakerOpen"),
            # Free-form for PagerDuty; pinned here so a change in what the bot shows on-call is reviewed.
            "custom_details": match.like(
                {
                    "incident": 1,
                    "status": "open",
                    "breaker": "openai",
                    "level": "service",
                    "flaps": 0,
                    "alerts": [
                        {
                            "alert": "CircuitBreakerOpen",
                            "severity": "critical",
                            "summary": "Circuit breaker has been open for more than 5m.",
                        }
                    ],
                    "labels": dict(labels),
                }
            ),
        },
        "links": [
            _link("http://grafana.example/d/breakerpanel-detail/detail", "Grafana dashboard"),
            _link("https://runbooks.example/circuit-breaker-open.md", "Runbook"),
            _link("http://prometheus.example/graph", "Prometheus"),
            _link(f"{PUBLIC_URL}/incidents/1", "Incident #1 timeline"),
        ],
        "client": match.like("breakerpanel incident bot"),
        "client_url": match.regex(f"{PUBLIC_URL}/incidents/1", regex=r"^https?://\S+$"),
    }


def _alert_event_answer() -> dict[str, Any]:
    # The client returns the answer's dedup_key and raises without one; nothing else of the body is read.
    return {"dedup_key": DEDUP_KEY_MATCH}


@pytest.fixture
def trusted_certificate(tmp_path: Path) -> Callable[[int], str]:
    """``trust(port)``: the path of a CA file holding the certificate the mock server on ``port`` presents."""

    def trust(port: int) -> str:
        path = tmp_path / f"pact-mock-server-{port}.pem"
        path.write_text(ssl.get_server_certificate(("localhost", port)))
        return str(path)

    return trust


async def test_an_incident_triggered_acknowledged_and_resolved(
    tmp_path: Path, trusted_certificate: Callable[[int], str]
) -> None:
    pact = PACT_FILE.new_pact()
    (
        pact.upon_receiving(TRIGGER)
        .with_request("POST", "/v2/enqueue")
        .with_body(_trigger_body(), content_type="application/json")
        .will_respond_with(202)
        .with_body(_alert_event_answer(), content_type="application/json")
    )
    for description, action in ((ACKNOWLEDGE, "acknowledge"), (RESOLVE, "resolve")):
        (
            pact.upon_receiving(description)
            .given(ALERT_OPEN, routing_key=ROUTING_KEY, dedup_key=DEDUP_KEY)
            .with_request("POST", "/v2/enqueue")
            .with_body(
                {"routing_key": ROUTING_KEY_MATCH, "event_action": action, "dedup_key": DEDUP_KEY_MATCH},
                content_type="application/json",
            )
            .will_respond_with(202)
            .with_body(_alert_event_answer(), content_type="application/json")
        )

    with pact.serve(transport="https") as server:
        sender = PagerDutySender(
            {f"env:{ROUTING_KEY_REF}": ROUTING_KEY}, base_url=str(server.url), ca_file=trusted_certificate(server.port)
        )
        async with running_bot(tmp_path, ROUTING, {Target.PAGERDUTY: sender}) as bot:
            await bot.receive(webhook((BREAKER_OPEN, "firing")))
            await bot.deliver()
            await bot.engine.acknowledge(1, "U0ONCALL")
            await bot.deliver()
            await bot.engine.resolve(1, "U0ONCALL")
            await bot.deliver()

    PACT_FILE.check(pact, tmp_path / "written")


async def test_a_manual_state_sends_a_change_event(tmp_path: Path, trusted_certificate: Callable[[int], str]) -> None:
    pact = PACT_FILE.new_pact()
    (
        pact.upon_receiving(CHANGE)
        .with_request("POST", "/v2/change/enqueue")
        .with_body(
            {
                "routing_key": ROUTING_KEY_MATCH,
                "payload": {
                    "summary": match.regex(
                        "qdrant (service, rag) put in forced_open by hand on rag-1:8000.", regex=SUMMARY_PATTERN
                    ),
                    "source": match.like(INSTANCE),
                    "timestamp": TIMESTAMP_MATCH,
                    "custom_details": match.like({k: v for k, v in MANUAL_STATE.labels.items() if k != "severity"}),
                },
                "links": [
                    _link("http://grafana.example/d/breakerpanel-detail/detail", "Grafana dashboard"),
                    _link("https://runbooks.example/circuit-breaker-open.md", "Runbook"),
                ],
            },
            content_type="application/json",
        )
        # The client reads nothing of a change event's answer but its status.
        .will_respond_with(202)
    )

    with pact.serve(transport="https") as server:
        sender = PagerDutySender(
            {f"env:{ROUTING_KEY_REF}": ROUTING_KEY}, base_url=str(server.url), ca_file=trusted_certificate(server.port)
        )
        async with running_bot(tmp_path, ROUTING, {Target.PAGERDUTY: sender}) as bot:
            await bot.receive(webhook((MANUAL_STATE, "firing")))
            await bot.deliver()

    PACT_FILE.check(pact, tmp_path / "written")


def test_the_committed_pact_holds_every_interaction() -> None:
    PACT_FILE.check_complete()
