"""The bot's HTTP side: the intake's gate (401, 429, 413, 422, 503), durable acceptance, Slack's
signed button presses, and what people read (JSON, HTML, metrics)."""

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

from incident_bot.app import create_app
from incident_bot.db import incidents, outbox, webhooks
from incident_bot.runtime import Bot
from incident_bot.settings import Settings
from incident_bot.slack import ACK_ACTION, RESOLVE_ACTION
from tests.fakes import block_actions_payload, sign_slack_request

from .support import AlertSpec, breaker_labels, rows, webhook

TOKEN = "webhook-token-1234"
SIGNING_SECRET = "slack-signing-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

Client = Callable[..., Awaitable[tuple[httpx.AsyncClient, Bot]]]


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    """``await client(**settings)``: the bot's app in process (its parts started as its lifespan
    would), and an HTTP client for it."""
    opened: list[tuple[httpx.AsyncClient, Bot]] = []

    async def make(**overrides: Any) -> tuple[httpx.AsyncClient, Bot]:
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
        app = create_app(settings, bot=bot)
        await bot.start()
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot")
        opened.append((http, bot))
        return http, bot

    yield make
    for http, bot in opened:
        await http.aclose()
        await bot.stop()


def firing(name: str = "openai", **labels: str) -> dict[str, Any]:
    return webhook((AlertSpec(breaker_labels(name) | labels), "firing"))


async def test_an_accepted_webhook_is_stored_before_the_answer(client: Client) -> None:
    http, bot = await client()
    payload = firing()
    response = await http.post("/v1/alertmanager", json=payload, headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"status": "accepted", "webhook_id": 1, "duplicate": False}
    (stored,) = await rows(bot.db, webhooks)
    assert stored.payload == payload  # as sent, nothing lost
    again = await http.post("/v1/alertmanager", json=payload, headers=AUTH)
    assert again.json() == {"status": "accepted", "webhook_id": 1, "duplicate": True}


async def test_newer_alertmanagers_fields_are_accepted_and_kept(client: Client) -> None:
    http, bot = await client()
    payload = firing()
    payload |= {"notification_reason": "first notification", "routeLabels": {"team": "search"}, "somethingNew": 1}
    assert (await http.post("/v1/alertmanager", json=payload, headers=AUTH)).status_code == 200
    (stored,) = await rows(bot.db, webhooks)
    assert stored.payload["routeLabels"] == {"team": "search"}
    assert stored.payload["somethingNew"] == 1


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


async def test_bad_tokens_get_401_then_the_client_is_throttled(client: Client) -> None:
    http, _ = await client()
    for token in ("", "Bearer nope", f"Bearer {TOKEN}x"):
        response = await http.post("/v1/alertmanager", json=firing(), headers={"Authorization": token})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    locked = await http.post("/v1/alertmanager", json=firing(), headers=AUTH)
    assert locked.status_code == 429  # even with the right token: this client is locked out
    assert int(locked.headers["retry-after"]) >= 1
    elsewhere = httpx.AsyncClient(transport=httpx.ASGITransport(app=http._transport.app, client=("10.0.0.9", 1)))  # type: ignore[attr-defined]
    async with elsewhere:
        other = await elsewhere.post("http://bot/v1/alertmanager", json=firing(), headers=AUTH)
    assert other.status_code == 200  # other clients are not


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
    assert sent.count(("slack", "card")) == 3  # posted, then refreshed twice


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
