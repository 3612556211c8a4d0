"""Consumer side of ``alertmanager`` -> ``incident-bot``: the webhooks Alertmanager POSTs to the bot's intake.

Alertmanager 0.25 (Debian's ``prometheus-alertmanager``) is the consumer itself here: it runs with a webhook
receiver pointed at Pact's mock server (bearer token from a file, as the bot's deployment configures it), an alert
is posted through its v2 API and then resolved, and the mock server checks the two notifications Alertmanager
sends against the interactions below. So the 0.25 interactions are what a real Alertmanager sends, not a payload
written from the docs.

Current Alertmanager releases cannot be installed here (no Debian package, no PyPI wheel): their interactions are
written by hand from Alertmanager's source (``template.Data``: ``notification_reason`` from 0.32, ``routeLabels``
from 0.34; see /work/shared/field-notes.md) and sent with httpx, as the 0.25 payload plus those fields.

What the contract pins down (and the bot is verified against in ``test_incident_bot_provider.py``): ``POST
/v1/alertmanager`` with a bearer token and a JSON body with exactly these fields (a new field in a future release
shows up as a failing consumer test), their types and formats (RFC 3339 times, 16-hex-digit fingerprints), the
literal ``version`` and ``status`` values; and from the answer only what Alertmanager looks at: a 2xx status (it
retries 5xx and drops the notification on other statuses, 429 included).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import httpx
from pact import match
from pact.error import MissingRequest, RequestMismatch, RequestNotFound

from tests.incident_bot.processes import alertmanager_config, am_alert
from tests.servers import AlertmanagerServer, ServerPool, wait_until

from .pactfiles import CommittedPact

FIRING_025: Final = "Alertmanager 0.25 notifies a firing alert"
RESOLVED_025: Final = "Alertmanager 0.25 notifies a resolved alert"
FIRING_CURRENT: Final = "a current Alertmanager (0.34+) notifies a firing alert"
RESOLVED_CURRENT: Final = "a current Alertmanager (0.34+) notifies a resolved alert"
PACT_FILE: Final = CommittedPact(
    "alertmanager", "incident-bot", (FIRING_025, RESOLVED_025, FIRING_CURRENT, RESOLVED_CURRENT)
)

INTAKE: Final = "/v1/alertmanager"
#: The contract's example token: the provider test replaces the header with the bot's own token.
TOKEN: Final = "contract-test-webhook-token"
RECEIVER: Final = "incident-bot"
LABELS: Final = {
    "alertname": "CircuitBreakerOpen",
    "severity": "critical",
    "job": "rag",
    "instance": "rag-1:8000",
    "circuit_breaker_name": "openai",
    "circuit_breaker_level": "service",
}
SUMMARY: Final = "openai has been open for 5m."
ANNOTATIONS: Final = {"summary": SUMMARY, "runbook_url": "https://runbooks.example/circuit-breaker-open.md"}
GROUP_KEY: Final = '{}:{alertname="CircuitBreakerOpen"}'
FINGERPRINT: Final = "5f9b7c3a1e2d4c6b"
STARTS_AT: Final = "2027-01-15T08:00:00.000Z"
ENDS_AT: Final = "2027-01-15T08:10:00.000Z"
#: Go's zero time: what Alertmanager 0.25 sends as a firing alert's endsAt when the alert was posted without one.
ZERO_TIME: Final = "0001-01-01T00:00:00Z"

RFC3339: Final = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"
#: Alertmanager's reasons (notify.NotifyReason.String()).
REASONS: Final = (
    r"^(first notification|new alerts added|some alerts resolved|all alerts resolved|repeat interval elapsed|unknown)$"
)


def _webhook(status: str, *, ends_at: str, **newer_fields: Any) -> dict[str, Any]:
    """A version-4 notification of the one alert of LABELS, as Alertmanager renders ``template.Data``."""
    return {
        "version": "4",
        "groupKey": match.like(GROUP_KEY),
        "truncatedAlerts": match.integer(0),
        "status": status,
        "receiver": match.like(RECEIVER),
        "groupLabels": match.like({"alertname": LABELS["alertname"]}),
        "commonLabels": match.like(LABELS),
        "commonAnnotations": match.like(ANNOTATIONS),
        "externalURL": match.regex("http://alertmanager.example:9093", regex=r"^https?://\S+$"),
        "alerts": [
            {
                "status": status,
                "labels": match.like(LABELS),
                "annotations": match.like(ANNOTATIONS),
                "startsAt": match.regex(STARTS_AT, regex=RFC3339),
                "endsAt": match.regex(ends_at, regex=RFC3339),
                "generatorURL": match.regex("http://prometheus.example/graph", regex=r"^https?://\S+$"),
                "fingerprint": match.regex(FINGERPRINT, regex=r"^[0-9a-f]{16}$"),
            }
        ],
        **newer_fields,
    }


def _notification(pact: Any, description: str, body: dict[str, Any]) -> None:
    (
        pact.upon_receiving(description)
        .with_request("POST", INTAKE)
        .with_header("Authorization", match.regex(f"Bearer {TOKEN}", regex=r"^Bearer \S+$"))
        .with_body(body, content_type="application/json")
        .will_respond_with(200)
    )


def _current(status: str, *, ends_at: str, reason: str) -> dict[str, Any]:
    return _webhook(
        status,
        ends_at=ends_at,
        notification_reason=match.regex(reason, regex=REASONS),
        routeLabels=match.like({"severity": "critical"}),
    )


def _waiting_for(server: Any, missing: int) -> Callable[[], bool]:
    """Until the mock server has ``missing`` interactions left to see, or got a request it could not match
    (then waiting longer cannot help: leaving the ``with`` block reports it)."""

    def check() -> bool:
        mismatches = server.mismatches
        if any(isinstance(m, RequestMismatch | RequestNotFound) for m in mismatches):
            return True
        return sum(isinstance(m, MissingRequest) for m in mismatches) <= missing

    return check


def test_alertmanager_0_25_notifies_firing_then_resolved(server_pool: ServerPool, tmp_path: Path) -> None:
    pact = PACT_FILE.new_pact()
    _notification(pact, FIRING_025, _webhook("firing", ends_at=ZERO_TIME))
    _notification(pact, RESOLVED_025, _webhook("resolved", ends_at=ENDS_AT))

    token_file = tmp_path / "webhook-token"
    token_file.write_text(TOKEN)
    # group_wait 0s: the first notification goes at once; group_interval 1s: the resolved one a second later.
    with pact.serve() as server:
        config = alertmanager_config(str(server.url), token_file, group_wait="0s", group_interval="1s")
        config["receivers"][0]["name"] = config["route"]["receiver"] = RECEIVER
        alertmanager = server_pool.start(AlertmanagerServer(config))
        starts_at = datetime.now(UTC) - timedelta(seconds=30)
        alert = am_alert(LABELS, starts_at=starts_at, summary=SUMMARY)
        alertmanager.post_alerts([alert])
        wait_until(_waiting_for(server, missing=1), timeout=20, what="Alertmanager's firing notification")
        alertmanager.post_alerts([am_alert(LABELS, starts_at=starts_at, ends_at=datetime.now(UTC), summary=SUMMARY)])
        wait_until(_waiting_for(server, missing=0), timeout=20, what="Alertmanager's resolved notification")

    PACT_FILE.check(pact, tmp_path / "written")


def test_a_current_alertmanager_adds_the_reason_and_the_route_labels(tmp_path: Path) -> None:
    pact = PACT_FILE.new_pact()
    firing = _current("firing", ends_at=ZERO_TIME, reason="first notification")
    resolved = _current("resolved", ends_at=ENDS_AT, reason="all alerts resolved")
    _notification(pact, FIRING_CURRENT, firing)
    _notification(pact, RESOLVED_CURRENT, resolved)

    with pact.serve() as server, httpx.Client(base_url=str(server.url), trust_env=False) as client:
        for body in (firing, resolved):
            response = client.post(INTAKE, json=_example(body), headers={"Authorization": f"Bearer {TOKEN}"})
            assert response.status_code == 200, response.text

    PACT_FILE.check(pact, tmp_path / "written")


def _example(value: Any) -> Any:
    """The example values of a body built with matchers: what the hand-written consumer sends."""
    if isinstance(value, dict):
        return {key: _example(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_example(item) for item in value]
    return getattr(value, "value", value)


def test_the_committed_pact_holds_every_interaction() -> None:
    PACT_FILE.check_complete()
