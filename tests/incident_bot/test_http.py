"""The bot's HTTP side: the intake's gate (401, 429, 413, 422, 503), durable acceptance, Slack's
signed button presses, and what people read (JSON, HTML, metrics) and who may read it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from breakerpanel import ManualClock
from breakerpanel.guards import MemoryRateLimitStore
from breakerpanel.incident_bot.app import create_app
from breakerpanel.incident_bot.db import incidents, outbox, webhooks
from breakerpanel.incident_bot.runtime import Bot
from breakerpanel.incident_bot.settings import Settings
from breakerpanel.incident_bot.slack import ACK_ACTION, RESOLVE_ACTION
from tests.fakes import block_actions_payload, sign_slack_request

from .support import AlertSpec, breaker_labels, rows, webhook

TOKEN = "webhook-token-1234"
SIGNING_SECRET = "slack-signing-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
READ_TOKEN = "read-token-5678"

Client = Callable[..., Awaitable[tuple[httpx.AsyncClient, Bot]]]


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    """``await client(**settings)``: the bot's app in process (its parts started as its lifespan
    would), and an HTTP client for it. ``listen_host`` is the address the bot is told it listens
    on (loopback by default: reads are open)."""
    opened: list[tuple[httpx.AsyncClient, Bot]] = []

    async def make(*, listen_host: str = "127.0.0.1", **overrides: Any) -> tuple[httpx.AsyncClient, Bot]:
        options: dict[str, Any] = {
            "webhook_token": SecretStr(TOKEN),
            "database_url": f"sqlite+aiosqlite:///{tmp_path / f'bot{len(opened)}.db'}",
            "auth_failures_allowed": 3,
            "max_body_bytes": 20_000,
            "dry_run": True,
            "slack_signing_secret": SecretStr(SIGNING_SECRET),
            "slack_allowed_users": ["U0ONCALL"],
            **overrides,
        }
        settings = Settings(**options)
        bot = Bot(settings)
        app = create_app(settings, bot=bot, listen_host=listen_host)
        await bot.start()
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot")
        opened.append((http, bot))
        return http, bot

    yield make
    for http, bot in opened:
        await http.aclose()
        await bot.stop()


async def processed(bot: Bot, *, within: float = 30.0) -> None:
    """Wait until the bot's own processor has processed every stored webhook."""
    deadline = time.monotonic() + within
    while any(w.processed_at is None for w in await rows(bot.db, webhooks)):
        assert time.monotonic() < deadline, "webhooks left unprocessed"
        await asyncio.sleep(0.05)


def firing(name: str = "openai", **labels: str) -> dict[str, Any]:
    return webhook((AlertSpec(breaker_labels(name) | labels), "firing"))


async def test_an_accepted_webhook_is_stored_before_the_answer(client: Client) -> None:
    http, bot = await client()
    payload = firing()
    response = await http.post("/v1/alertmanager", json=payload, headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {
        "status": "accepted",
        "webhook_id": 1,
        "duplicate": False,
        "repaired": [],
        "rejected": [],
    }
    (stored,) = await rows(bot.db, webhooks)
    assert stored.payload == payload  # as sent, nothing lost
    again = await http.post("/v1/alertmanager", json=payload, headers=AUTH)
    assert again.json() == {
        "status": "accepted",
        "webhook_id": 1,
        "duplicate": True,
        "repaired": [],
        "rejected": [],
    }


@pytest.mark.parametrize("character", ["\\ud800", "\\udfff"])
async def test_a_lone_surrogate_is_replaced_and_every_alert_of_the_webhook_kept(client: Client, character: str) -> None:
    """A lone surrogate (sent as the JSON escape, which parses to a character no database can
    store) in one alert's breaker name: the webhook is accepted with the field named, every alert
    in it (the one with the surrogate too, shown with U+FFFD) becomes an incident."""
    http, bot = await client()
    payload = webhook(
        (AlertSpec(breaker_labels("openai")), "firing"), (AlertSpec(breaker_labels("anthropic-SURROGATE")), "firing")
    )
    body = json.dumps(payload).replace("SURROGATE", character)
    response = await http.post("/v1/alertmanager", content=body, headers=AUTH | {"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    await processed(bot)
    (stored,) = await rows(bot.db, webhooks)
    assert stored.error is None
    titles = sorted(i.title for i in await rows(bot.db, incidents))
    assert titles == ["anthropic-\ufffd (service, rag)", "openai (service, rag)"]
    answer = response.json()
    assert answer["repaired"] == ["alerts.1.labels.circuit_breaker_name"]
    assert answer["duplicate"] is False
    assert "incident_bot_webhooks_repaired_total 1.0" in (await http.get("/metrics")).text


async def test_an_invalid_alert_costs_only_itself(client: Client) -> None:
    """One alert of three does not validate: a 422 for the whole notification lost the two good
    ones (Alertmanager does not retry a 4xx). They are kept, and the answer names the one left out."""
    http, bot = await client()
    payload = webhook(
        (AlertSpec(breaker_labels("openai")), "firing"),
        (AlertSpec(breaker_labels("mistral"), fingerprint="f" * 65), "firing"),
        (AlertSpec(breaker_labels("anthropic")), "firing"),
    )
    response = await http.post("/v1/alertmanager", json=payload, headers=AUTH)
    assert response.status_code == 200, response.text
    [rejected] = response.json()["rejected"]
    assert rejected.startswith("alerts.1.fingerprint: String should have at most 64 characters")
    await processed(bot)
    (stored,) = await rows(bot.db, webhooks)
    assert stored.error is None
    assert stored.payload == payload  # as sent: re-read, it leaves out the same alert
    titles = sorted(i.title for i in await rows(bot.db, incidents))
    assert titles == ["anthropic (service, rag)", "openai (service, rag)"]


async def test_a_notification_with_no_valid_alert_is_still_a_422(client: Client) -> None:
    http, bot = await client()
    payload = webhook((AlertSpec(breaker_labels("openai"), fingerprint="f" * 65), "firing"))
    response = await http.post("/v1/alertmanager", json=payload, headers=AUTH)
    assert response.status_code == 422
    assert ["body", "alerts", 0, "fingerprint"] in [error["loc"] for error in response.json()["detail"]]
    assert await rows(bot.db, webhooks) == []


async def test_a_lone_surrogate_where_the_model_refuses_one_costs_no_alert(client: Client) -> None:
    """In ``groupKey`` and a ``fingerprint`` the webhook model refuses a lone surrogate: a 422 would
    make Alertmanager drop the whole notification. Replaced first, every alert is kept."""
    http, bot = await client()
    payload = webhook(
        (AlertSpec(breaker_labels("openai"), fingerprint="0123-SURROGATE"), "firing"),
        (AlertSpec(breaker_labels("anthropic")), "firing"),
        group_key="group-SURROGATE",
    )
    body = json.dumps(payload).replace("SURROGATE", "\\udc80")
    response = await http.post("/v1/alertmanager", content=body, headers=AUTH | {"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["repaired"] == ["groupKey", "alerts.0.fingerprint"]
    await processed(bot)
    titles = sorted(i.title for i in await rows(bot.db, incidents))
    assert titles == ["anthropic (service, rag)", "openai (service, rag)"]
    (stored,) = await rows(bot.db, webhooks)
    assert stored.payload["groupKey"] == "group-\ufffd"


def test_only_characters_no_database_can_store_are_repaired() -> None:
    from breakerpanel.incident_bot.guard import repair_unstorable

    pair = json.dumps({"summary": "\U0001f525 on fire"}).encode()  # a surrogate pair: one character
    assert repair_unstorable(pair) == (pair, [])
    escaped = b'{"summary": "\\\\ud800 is how JSON spells it"}'  # an escaped backslash, then text
    assert repair_unstorable(escaped) == (escaped, [])
    broken = b'{"summary": "\\ud800'  # not JSON: left for the parser to refuse
    assert repair_unstorable(broken) == (broken, [])
    body, repaired = repair_unstorable(b'{"a": ["\\u0000", "x\\ud800y"]}')
    assert (json.loads(body), repaired) == ({"a": ["\ufffd", "x\ufffdy"]}, ["a.0", "a.1"])


async def test_a_truncated_notification_after_the_untruncated_one_is_not_a_duplicate(client: Client) -> None:
    """Alertmanager sends a group's alerts, then the same alerts saying it left some out: the
    second is another notification (its count must reach the incident), not a retry."""
    http, bot = await client()
    alert = AlertSpec(breaker_labels("openai"))
    first = await http.post("/v1/alertmanager", json=webhook((alert, "firing")), headers=AUTH)
    truncated = await http.post("/v1/alertmanager", json=webhook((alert, "firing"), truncatedAlerts=7), headers=AUTH)
    assert first.json()["duplicate"] is False
    assert truncated.json()["duplicate"] is False
    assert [w.payload["truncatedAlerts"] for w in await rows(bot.db, webhooks)] == [0, 7]
    again = await http.post("/v1/alertmanager", json=webhook((alert, "firing"), truncatedAlerts=7), headers=AUTH)
    assert again.json()["duplicate"] is True  # the same truncated one again: a retry


async def test_newer_alertmanagers_fields_are_accepted_and_kept(client: Client) -> None:
    http, bot = await client()
    payload = firing()
    payload |= {"notification_reason": "first notification", "routeLabels": {"team": "search"}, "somethingNew": 1}
    assert (await http.post("/v1/alertmanager", json=payload, headers=AUTH)).status_code == 200
    (stored,) = await rows(bot.db, webhooks)
    assert stored.payload["routeLabels"] == {"team": "search"}
    assert stored.payload["somethingNew"] == 1


async def test_a_truncated_notification_of_known_alerts_reaches_their_incident(client: Client) -> None:
    http, bot = await client()
    alert = AlertSpec(breaker_labels("openai"))
    await http.post("/v1/alertmanager", json=webhook((alert, "firing")), headers=AUTH)
    await http.post("/v1/alertmanager", json=webhook((alert, "firing"), truncatedAlerts=7), headers=AUTH)
    await processed(bot)
    detail = (await http.get("/v1/incidents/1")).json()
    assert [e["text"] for e in detail["timeline"] if e["kind"] == "truncated"] == [
        'Alertmanager left 7 alert(s) of group {}:{alertname="CircuitBreakerOpen"} out of this notification '
        "(max_alerts): they arrive with a later one."
    ]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p: p.pop("groupKey"), ["body", "groupKey"]),
        (lambda p: p.update(version="3"), ["body", "version"]),
        (lambda p: p.update(alerts=[]), ["body", "alerts"]),
        (lambda p: p["alerts"][0].update(status="pending"), ["body", "alerts", 0, "status"]),
        (lambda p: p["alerts"][0].update(startsAt="yesterday"), ["body", "alerts", 0, "startsAt"]),
    ],
)
async def test_a_malformed_webhook_gets_422_naming_the_field(
    client: Client, change: Callable[[dict[str, Any]], object], field: list[object]
) -> None:
    http, bot = await client()
    payload = firing()
    change(payload)
    response = await http.post("/v1/alertmanager", json=payload, headers=AUTH)
    assert response.status_code == 422
    assert field in [error["loc"] for error in response.json()["detail"]]
    assert await rows(bot.db, webhooks) == []


@pytest.mark.parametrize(
    ("where", "value", "constant"),
    [
        ("truncatedAlerts", float("nan"), "NaN"),
        ("truncatedAlerts", float("inf"), "Infinity"),
        # In an alert the others would be kept and the body stored as sent: PostgreSQL's json
        # type refuses NaN, and the 503 that followed was retried by Alertmanager without end.
        ("alerts.0.fingerprint", float("-inf"), "-Infinity"),
        ("extra", float("nan"), "NaN"),
    ],
)
async def test_a_webhook_holding_nan_or_infinity_gets_400(
    client: Client, where: str, value: float, constant: str
) -> None:
    """Python's JSON parser takes NaN and Infinity, JSON does not: FastAPI's 422, echoing the
    input back, failed to encode them and answered 500, which Alertmanager retries."""
    http, bot = await client()
    payload = webhook((AlertSpec(breaker_labels("openai")), "firing"), (AlertSpec(breaker_labels("qdrant")), "firing"))
    if where == "alerts.0.fingerprint":
        payload["alerts"][0]["fingerprint"] = value
    else:
        payload[where] = value
    body = json.dumps(payload).encode()  # NaN / Infinity: what json.dumps writes, not JSON
    response = await http.post("/v1/alertmanager", content=body, headers=AUTH | {"Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == f"the body is not JSON: {constant} is not a JSON number"
    assert await rows(bot.db, webhooks) == []
    assert 'incident_bot_webhooks_rejected_total{reason="not_json"} 1.0' in (await http.get("/metrics")).text


async def test_a_label_that_reads_nan_is_text_like_any_other(client: Client) -> None:
    http, bot = await client()
    payload = firing(model="NaN-Infinity")
    response = await http.post("/v1/alertmanager", json=payload, headers=AUTH)
    assert response.status_code == 200, response.text
    (stored,) = await rows(bot.db, webhooks)
    assert stored.payload == payload


@pytest.mark.parametrize("body", [b"{not json", b"", b'{"version": "4",'])
async def test_a_body_that_is_not_json_gets_400(client: Client, body: bytes) -> None:
    http, bot = await client()
    response = await http.post("/v1/alertmanager", content=body, headers=AUTH | {"Content-Type": "application/json"})
    if body:
        assert response.status_code == 400, response.text
        assert response.json()["detail"].startswith("the body is not JSON: ")
    else:  # no body at all: the webhook is missing, a 422 naming the body
        assert response.status_code == 422
        assert ["body"] in [error["loc"] for error in response.json()["detail"]]
    assert await rows(bot.db, webhooks) == []


def _from(http: httpx.AsyncClient, address: str) -> httpx.AsyncClient:
    """A client of the same app, connecting from ``address``."""
    app = http._transport.app  # type: ignore[attr-defined]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 1)), base_url="http://bot")


async def test_bad_tokens_get_401_then_their_source_is_throttled_but_never_the_valid_token(client: Client) -> None:
    """Alertmanager shares its address with whatever else runs there: bad tokens from it lock out
    further bad tokens (429), never the valid one, which Alertmanager would drop on a 429."""
    http, bot = await client()
    for token in ("", "Bearer nope", f"Bearer {TOKEN}x"):
        response = await http.post("/v1/alertmanager", json=firing(), headers={"Authorization": token})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    valid = await http.post("/v1/alertmanager", json=firing(), headers=AUTH)
    assert valid.status_code == 200, valid.text  # the valid token passes the lockout
    assert len(await rows(bot.db, webhooks)) == 1
    locked = await http.post("/v1/alertmanager", json=firing(), headers={"Authorization": "Bearer guess"})
    assert locked.status_code == 429  # further bad tokens from this address are throttled
    assert int(locked.headers["retry-after"]) >= 1
    again = await http.post("/v1/alertmanager", json=firing("anthropic"), headers=AUTH)
    assert again.status_code == 200, again.text  # and still the valid token passes
    async with _from(http, "10.0.0.9") as elsewhere:
        other = await elsewhere.post("/v1/alertmanager", json=firing(), headers={"Authorization": "Bearer guess"})
    assert other.status_code == 401  # other sources are not throttled


async def test_over_the_rate_limit_the_valid_token_gets_503_which_alertmanager_retries(client: Client) -> None:
    http, _ = await client(intake_rate_limit=1, intake_rate_burst=2)
    frozen = ManualClock(1000.0)  # no refill between the requests, however slow the machine
    limiter = http._transport.app.state.rate_limiter  # type: ignore[attr-defined]
    limiter.store = MemoryRateLimitStore(clock=frozen)
    answers = [await http.post("/v1/alertmanager", json=firing(f"b{i}"), headers=AUTH) for i in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 503]
    assert int(answers[2].headers["retry-after"]) >= 1
    assert answers[2].headers["ratelimit-policy"]
    frozen.advance(1.0)
    assert (await http.post("/v1/alertmanager", json=firing("b2"), headers=AUTH)).status_code == 200


async def test_bodies_over_the_limit_get_413(client: Client) -> None:
    http, bot = await client()
    big = firing()
    big["alerts"][0]["annotations"]["description"] = "x" * 30_000
    assert (await http.post("/v1/alertmanager", json=big, headers=AUTH)).status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        body = json.dumps(big).encode()
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    response = await http.post(
        "/v1/alertmanager", content=chunks(), headers=AUTH | {"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert await rows(bot.db, webhooks) == []


async def test_a_storage_failure_answers_503_so_alertmanager_retries(client: Client) -> None:
    http, bot = await client()

    async def broken(*_: Any) -> None:
        raise OSError("disk full")

    bot.writer._commit = broken  # type: ignore[method-assign,assignment]
    response = await http.post("/v1/alertmanager", json=firing(), headers=AUTH)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"


#: Where the bot answers the person who pressed (Slack's response_url), in these tests.
RESPONSE_URL = "http://127.0.0.1:9/slack-response"


async def press(
    http: httpx.AsyncClient, action: str, incident: int, user: str, *, when: int | None = None
) -> httpx.Response:
    body = block_actions_payload(
        action, str(incident), user, "C0INCIDENTS", "1700000000.000100", response_url=RESPONSE_URL
    )
    headers = sign_slack_request(SIGNING_SECRET, body, timestamp=when) | {
        "Content-Type": "application/x-www-form-urlencoded"
    }
    return await http.post("/v1/slack/interactions", content=body, headers=headers)


async def test_slack_buttons_acknowledge_and_resolve(client: Client, tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "routes:\n  - {name: page, match: {severity: critical}, pagerduty: {routing_key_env: PD_KEY},"
        " slack: {channels: ['#incidents']}}\n"
    )
    http, bot = await client(routing_file=routes)  # dry run: the key may be missing
    await http.post("/v1/alertmanager", json=firing(), headers=AUTH)
    await bot.engine.process_pending()
    started = time.monotonic()
    response = await press(http, ACK_ACTION, 1, "U0ONCALL")
    assert response.status_code == 200
    assert time.monotonic() - started < 3
    (incident,) = await rows(bot.db, incidents)
    assert (incident.status, incident.acknowledged_by) == ("acknowledged", "<@U0ONCALL>")
    assert (await press(http, RESOLVE_ACTION, 1, "U0ONCALL")).status_code == 200
    assert (await press(http, RESOLVE_ACTION, 1, "U0ONCALL")).status_code == 200  # a second press: no-op
    (incident,) = await rows(bot.db, incidents)
    assert (incident.status, incident.resolved_by) == ("resolved", "<@U0ONCALL>")
    sent = [(r.target, r.action) for r in await rows(bot.db, outbox)]
    assert [a for t, a in sent if t == "pagerduty"] == ["trigger", "acknowledge", "resolve"]
    # Posted, then refreshed at each press; a refresh still waiting stands for the next (the worker
    # runs meanwhile: two or three).
    assert sent.count(("slack", "card")) in (2, 3)


async def test_slack_presses_that_must_not_count(client: Client) -> None:
    http, bot = await client()
    await http.post("/v1/alertmanager", json=firing(), headers=AUTH)
    await bot.engine.process_pending()
    with respx.mock(assert_all_called=True) as slack:
        answer = slack.post(RESPONSE_URL).respond(200)
        assert (await press(http, ACK_ACTION, 1, "U0STRANGER")).status_code == 200  # answered, refused
        for _ in range(100):
            if answer.called:
                break
            await asyncio.sleep(0.01)
    told = json.loads(answer.calls.last.request.content)
    assert told["response_type"] == "ephemeral"
    assert told["text"].startswith("Only allowed users")
    assert (await press(http, ACK_ACTION, 1, "U0ONCALL", when=int(time.time()) - 600)).status_code == 401  # replayed
    body = block_actions_payload(ACK_ACTION, "1", "U0ONCALL", "C0INCIDENTS", "1.0")
    forged = sign_slack_request("another-secret", body)
    assert (await http.post("/v1/slack/interactions", content=body, headers=forged)).status_code == 401
    (incident,) = await rows(bot.db, incidents)
    assert incident.status == "open"


async def test_a_signed_press_from_a_throttled_address_counts(client: Client) -> None:
    """Bad signatures from an address throttle its bad signatures, never a valid one."""
    http, bot = await client()
    await http.post("/v1/alertmanager", json=firing(), headers=AUTH)
    await bot.engine.process_pending()
    body = block_actions_payload(ACK_ACTION, "1", "U0ONCALL", "C0INCIDENTS", "1.0")
    forged = sign_slack_request("another-secret", body) | {"Content-Type": "application/x-www-form-urlencoded"}
    statuses = [(await http.post("/v1/slack/interactions", content=body, headers=forged)).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert (await press(http, ACK_ACTION, 1, "U0ONCALL")).status_code == 200
    (incident,) = await rows(bot.db, incidents)
    assert incident.status == "acknowledged"


async def test_slack_interactions_are_off_without_slack(client: Client) -> None:
    http, _ = await client(slack_signing_secret=None)
    assert (await press(http, ACK_ACTION, 1, "U0ONCALL")).status_code == 404


async def test_incidents_as_json_html_and_metrics(client: Client) -> None:
    http, bot = await client()
    await http.post("/v1/alertmanager", json=firing("<script>alert(1)</script>"), headers=AUTH)
    await bot.engine.process_pending()
    listed = (await http.get("/v1/incidents")).json()
    assert [i["title"] for i in listed] == ["<script>alert(1)</script> (service, rag)"]
    detail = (await http.get("/v1/incidents/1")).json()
    assert [e["kind"] for e in detail["timeline"]] == ["opened", "routed"]
    assert (await http.get("/v1/incidents/2")).status_code == 404
    assert (await http.get(f"/v1/incidents/{2**60}")).status_code == 422
    page = (await http.get("/")).text
    assert "&lt;script&gt;" in page
    assert "<script>alert" not in page
    assert "Dry run" in page
    assert "<h2>Timeline</h2>" in (await http.get("/incidents/1")).text
    metrics = (await http.get("/metrics")).text
    assert "incident_bot_webhooks_received_total 1.0" in metrics
    # The guards in front of the intake, under the registry's names.
    allowed = 'rate_limit_decisions_total{rate_limit_name="incident_bot.intake",rate_limit_outcome="allowed"} 1.0'
    assert allowed in metrics
    for name in ("auth_lockout_failures_total", "concurrency_limit_limit", "concurrency_limit_requests_total"):
        assert f"\n{name}{{" in metrics, name
    assert (await http.get("/readyz")).json() == {"status": "ready", "dry_run": True}


READS = ("/v1/incidents", "/v1/incidents/1", "/", "/incidents/1", "/metrics")


async def test_beyond_loopback_reads_need_the_read_token(client: Client) -> None:
    http, bot = await client(listen_host="0.0.0.0", read_token=SecretStr(READ_TOKEN), auth_failures_allowed=100)
    await http.post("/v1/alertmanager", json=firing(), headers=AUTH)
    await bot.engine.process_pending()
    for path in READS:
        anonymous = await http.get(path)
        assert anonymous.status_code == 401, path
        assert anonymous.headers["www-authenticate"] == "Bearer"
        assert (await http.get(path, headers={"Authorization": "Bearer wrong"})).status_code == 401, path
        assert (await http.get(path, headers=AUTH)).status_code == 401, path  # the webhook token reads nothing
        reader = {"Authorization": f"Bearer {READ_TOKEN}"}
        assert (await http.get(path, headers=reader)).status_code == 200, path
    for path in ("/healthz", "/readyz"):
        assert (await http.get(path)).status_code == 200, path  # health stays open


async def test_bad_read_tokens_are_throttled_the_valid_one_never(client: Client) -> None:
    http, _ = await client(listen_host="0.0.0.0", read_token=SecretStr(READ_TOKEN))
    guesses = [(await http.get("/metrics", headers={"Authorization": f"Bearer g{i}"})).status_code for i in range(4)]
    assert guesses == [401, 401, 401, 429]
    assert (await http.get("/metrics", headers={"Authorization": f"Bearer {READ_TOKEN}"})).status_code == 200


async def test_beyond_loopback_without_a_read_credential_nobody_reads(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    http, _ = await client(listen_host="0.0.0.0")
    refused = await http.get("/v1/incidents")
    assert refused.status_code == 401
    assert "INCIDENT_BOT_READ_TOKEN" in refused.json()["detail"]
    assert "reads are refused" in caplog.text


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
async def test_on_loopback_reads_are_open(client: Client, host: str) -> None:
    http, _ = await client(listen_host=host, read_token=SecretStr(READ_TOKEN))
    for path in ("/v1/incidents", "/", "/metrics"):
        assert (await http.get(path)).status_code == 200, path


async def test_a_trusted_proxy_vouches_for_readers(client: Client) -> None:
    http, _ = await client(
        listen_host="0.0.0.0", read_proxy_header="X-Forwarded-User", read_proxy_addresses=["10.1.0.0/16"]
    )
    async with _from(http, "10.1.2.3") as proxy, _from(http, "10.2.0.1") as stranger:
        assert (await proxy.get("/v1/incidents", headers={"X-Forwarded-User": "ana"})).status_code == 200
        assert (await proxy.get("/v1/incidents")).status_code == 401  # the proxy vouched for nobody
        assert (await stranger.get("/v1/incidents", headers={"X-Forwarded-User": "ana"})).status_code == 401


async def test_the_read_token_comes_from_a_file_and_is_never_logged(
    client: Client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token_file = tmp_path / "read-token"
    token_file.write_text(READ_TOKEN + "\n")
    caplog.set_level("DEBUG")
    http, _ = await client(listen_host="10.0.0.5", read_token_file=token_file)
    assert (await http.get("/metrics", headers={"Authorization": f"Bearer {READ_TOKEN}"})).status_code == 200
    assert (await http.get("/metrics", headers={"Authorization": "Bearer nope"})).status_code == 401
    assert "reads need the read token" in caplog.text
    assert READ_TOKEN not in caplog.text


def test_the_command_line_tells_the_app_where_it_listens(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``python -m breakerpanel.incident_bot --host 0.0.0.0`` closes reads; the default (loopback) leaves them open."""
    import breakerpanel.incident_bot.__main__ as cli

    served: dict[str, Any] = {}
    monkeypatch.setattr(cli.uvicorn, "run", lambda app, **options: served.update(app=app, **options))
    monkeypatch.setattr(cli.gc, "freeze", lambda: None)
    monkeypatch.setenv("INCIDENT_BOT_WEBHOOK_TOKEN", TOKEN)
    monkeypatch.setenv("INCIDENT_BOT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")

    async def metrics_status() -> int:
        transport = httpx.ASGITransport(app=served["app"])
        async with httpx.AsyncClient(transport=transport, base_url="http://bot") as http:
            return (await http.get("/metrics")).status_code

    assert cli.main(["--host", "0.0.0.0", "--port", "8700"]) == 0
    assert served["host"] == "0.0.0.0"
    assert asyncio.run(metrics_status()) == 401
    assert cli.main(["--port", "8700"]) == 0
    assert served["host"] == "127.0.0.1"
    assert asyncio.run(metrics_status()) == 200


def test_list_settings_take_comma_separated_values_or_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCIDENT_BOT_WEBHOOK_TOKEN", TOKEN)
    monkeypatch.setenv("INCIDENT_BOT_SLACK_ALLOWED_USERS", "U0123, U0456")
    monkeypatch.setenv("INCIDENT_BOT_READ_PROXY_ADDRESSES", '["10.0.0.0/8", "192.168.1.7"]')
    settings = Settings()
    assert settings.slack_allowed_users == ["U0123", "U0456"]
    assert settings.read_proxy_addresses == ["10.0.0.0/8", "192.168.1.7"]
    monkeypatch.setenv("INCIDENT_BOT_READ_PROXY_ADDRESSES", "10.0.0.0/8")
    assert Settings().read_proxy_addresses == ["10.0.0.0/8"]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        # Each used to end in a traceback naming neither the variable nor what to write.
        ("INCIDENT_BOT_SLACK_ALLOWED_USERS", "[U0123", "write a JSON list or comma-separated values"),
        ("INCIDENT_BOT_READ_PROXY_ADDRESSES", "10.0.0.0/8,nowhere", "'nowhere' is neither an IP address"),
        ("INCIDENT_BOT_DATABASE_URL", "postgres://bot:hunter2@db/incidents", "the driver must be one of"),
        ("INCIDENT_BOT_DATABASE_URL", "postgresql+asyncpg://bot:hunter2@db:notaport/x", "not a database URL"),
        ("INCIDENT_BOT_DATABASE_URL", "incidents.db", "not a database URL"),
    ],
)
def test_bad_settings_are_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str, message: str
) -> None:
    import breakerpanel.incident_bot.__main__ as cli

    monkeypatch.setattr(cli.uvicorn, "run", lambda app, **options: pytest.fail("started with bad settings"))
    monkeypatch.setenv("INCIDENT_BOT_WEBHOOK_TOKEN", TOKEN)
    monkeypatch.setenv(variable, value)
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{variable}: ")
    assert message in err
    assert "Traceback" not in err
    assert "hunter2" not in err


async def test_a_dry_run_without_routes_records_every_notification(client: Client) -> None:
    """No routes file: the dry run shows what the example routes would send (a page and a card
    for a critical alert), recorded, none sent."""
    http, bot = await client()  # dry run, no routing_file
    await http.post("/v1/alertmanager", json=firing(), headers=AUTH)
    await processed(bot)
    deadline = time.monotonic() + 30
    while True:
        items = await rows(bot.db, outbox)
        if items and all(i.status == "sent" for i in items):
            break
        assert time.monotonic() < deadline, [(i.target, i.action, i.status) for i in items]
        await asyncio.sleep(0.05)
    assert {(i.target, i.action, i.destination) for i in items} >= {
        ("pagerduty", "trigger", "env:PAGERDUTY_ROUTING_KEY"),
        ("slack", "card", "#incidents"),
    }
    assert all(i.dry_run for i in items)
    assert all(i.payload["delivered"].startswith("dry run: ") for i in items)
