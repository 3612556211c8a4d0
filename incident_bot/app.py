"""The HTTP side: Alertmanager's webhooks in, Slack's button presses in, incidents out (JSON and
a small HTML page), health and metrics.

::

    POST /v1/alertmanager          Alertmanager webhook_config url (bearer token)
    POST /v1/slack/interactions    Slack app's Interactivity Request URL (signed)
    GET  /v1/incidents             incidents, newest first (?status=open|acknowledged|resolved|attached)
    GET  /v1/incidents/{id}        one incident: its alerts, timeline and deliveries
    GET  /                         the same, for people
    GET  /healthz  /readyz  /metrics
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

import httpx
from fastapi import FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import select, text

from breaker import ConcurrencyLimiter, GradientLimit, RateLimiter, RateLimitPolicy
from breaker.integrations.guards import LoadSheddingMiddleware, client_address
from exporter import BreakerTelemetry

from . import pages
from .alertmanager import Webhook
from .db import alerts, events, incidents, outbox
from .guard import IntakeGuard, intake_lockout
from .runtime import Bot
from .settings import Settings
from .slack import ACK_ACTION, RESOLVE_ACTION

__all__ = ["create_app"]

logger = logging.getLogger("incident_bot.app")

INTAKE_PATH = "/v1/alertmanager"
SLACK_PATH = "/v1/slack/interactions"
MAX_ID = 2**53  # ids in JSON and in both databases' integer columns


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    webhook_id: int | None
    duplicate: bool


def create_app(settings: Settings, *, bot: Bot | None = None) -> FastAPI:
    """The bot's ASGI app; ``bot`` replaces the one built from ``settings`` (tests)."""
    runtime = bot or Bot(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()
            telemetry.shutdown()

    app = FastAPI(
        title="breakerpanel incident bot",
        version="0.1.0",
        lifespan=lifespan,
        description="Alertmanager webhooks in; one incident per circuit breaker; PagerDuty and Slack out.",
    )
    app.state.bot = runtime
    assert settings.webhook_token is not None  # Settings refuses to exist without one
    lockout = intake_lockout(settings.auth_failures_allowed, settings.auth_failure_window, settings.auth_lockout)
    rate_policy = RateLimitPolicy(limit=settings.intake_rate_limit, period=1.0, burst=settings.intake_rate_burst)
    app.state.lockout = lockout
    app.state.rate_limiter = rate_limiter = RateLimiter("incident_bot.intake", rate_policy)
    app.add_middleware(
        IntakeGuard,
        paths=(INTAKE_PATH, SLACK_PATH),
        token=settings.webhook_token.get_secret_value(),
        max_body_bytes=settings.max_body_bytes,
        max_json_depth=settings.max_json_depth,
        json_paths=(INTAKE_PATH,),
        lockout=lockout,
        rate_limiter=rate_limiter,
        bearer_paths=(INTAKE_PATH,),
        metrics=runtime.metrics,
    )
    # Outermost: under overload the intake answers 503 at once (Alertmanager retries) rather than
    # queue; /healthz, /readyz and /metrics are never shed. The limit starts at its ceiling: a burst
    # of webhooks is the intake's normal work (they share group commits), not an overload.
    app.state.shedder = shedder = ConcurrencyLimiter(
        "incident_bot.intake",
        GradientLimit(initial=settings.intake_max_concurrency, max_limit=settings.intake_max_concurrency),
    )
    app.add_middleware(LoadSheddingMiddleware, limiters={INTAKE_PATH: shedder, SLACK_PATH: shedder})
    # The guards' decisions on /metrics, named by the registry (no breakers here; tracing is the bot's own).
    telemetry = BreakerTelemetry(service_name="incident-bot", tracing=False)
    telemetry.add_guard(rate_limiter, lockout, shedder)

    @app.exception_handler(RequestValidationError)
    async def not_json_is_400(request: Request, exc: RequestValidationError) -> Response:
        # A body that is not JSON at all is a bad request (400), as documented; 422 is for JSON
        # that is not a webhook, with the field and the reason.
        if any(error.get("type") == "json_invalid" for error in exc.errors()):
            first = exc.errors()[0]
            reason = first.get("ctx", {}).get("error", "invalid JSON")
            return JSONResponse({"detail": f"the body is not JSON: {reason} at {first['loc'][-1]}"}, status_code=400)
        return await request_validation_exception_handler(request, exc)

    verifier = (
        SignatureVerifier(settings.slack_signing_secret.get_secret_value()) if settings.slack_signing_secret else None
    )
    allowed_users = set(settings.slack_allowed_users)

    @app.post(
        INTAKE_PATH,
        response_model=Accepted,
        responses={
            400: {"description": "the body is not JSON, or nests deeper than max_json_depth"},
            401: {"description": "missing or wrong bearer token"},
            413: {"description": "body over the size limit"},
            422: {"description": "not an Alertmanager webhook: the field and the reason"},
            429: {"description": "too many bad tokens, or too many requests, from this client"},
            503: {"description": "not stored, or shed under overload: Alertmanager should retry"},
        },
        summary="Receive an Alertmanager webhook (version 4)",
    )
    async def alertmanager(webhook: Webhook, request: Request) -> Accepted:
        # Store what Alertmanager sent, as sent (FastAPI has parsed and validated it already: the
        # parsed body is cached on the request).
        payload = await request.json()
        try:
            accepted = await runtime.writer.write(webhook.dedupe_key(), payload)
        except Exception as exc:  # not stored: make Alertmanager retry
            logger.error("webhook not stored: %s", exc)
            runtime.metrics.rejected.labels("unavailable").inc()
            raise HTTPException(503, "could not store the webhook; retry", headers={"Retry-After": "5"}) from None
        runtime.metrics.received.inc()
        if accepted.duplicate:
            runtime.metrics.duplicates.inc()
        return Accepted(webhook_id=accepted.webhook_id, duplicate=accepted.duplicate)

    @app.post(
        SLACK_PATH,
        summary="Slack button presses (Acknowledge, Resolve)",
        responses={
            400: {"description": "signed, but not a block_actions payload with an incident id"},
            401: {"description": "missing, stale or wrong Slack signature"},
            404: {"description": "Slack is not configured"},
            413: {"description": "body over the size limit"},
            429: {"description": "too many bad signatures, or too many requests, from this client"},
            503: {"description": "shed under overload"},
        },
    )
    async def slack_interactions(request: Request) -> Response:
        if verifier is None:
            raise HTTPException(404, "Slack is not configured")
        body = await request.body()
        if len(body) > settings.max_body_bytes:
            raise HTTPException(413, "body too large")
        if not _signed_by_slack(verifier, body, request):
            # Counted by the same lockout as bad bearer tokens (checked by the guard in front).
            await lockout.failed(None, client_address(request.scope))
            runtime.metrics.rejected.labels("unauthorized").inc()
            raise HTTPException(401, "invalid Slack signature")
        try:
            payload = json.loads(parse_qs(body.decode(), strict_parsing=True)["payload"][0])
            action = payload["actions"][0]
            user = payload["user"]
            incident_id = int(action["value"])
            user_id = user["id"]
            action_id = action.get("action_id")
        except (KeyError, IndexError, ValueError, TypeError, AttributeError, RecursionError):
            raise HTTPException(400, "not a block_actions payload") from None
        if not isinstance(user_id, str):
            raise HTTPException(400, "not a block_actions payload")
        if not 1 <= incident_id <= MAX_ID:
            raise HTTPException(400, "not an incident id")
        who = f"<@{user_id}>"
        if user_id not in allowed_users:
            logger.warning("Slack user %s pressed %s on incident %s: not allowed", user_id, action_id, incident_id)
            _tell(payload, f"Only allowed users can do that; ask one of them (incident #{incident_id}).")
            return Response(status_code=200)
        # Answer within Slack's 3 seconds: the change is one transaction; the notifications it
        # causes (PagerDuty, the card, the thread) go through the outbox.
        if action_id == ACK_ACTION:
            said = await runtime.engine.acknowledge(incident_id, who)
        elif action_id == RESOLVE_ACTION:
            said = await runtime.engine.resolve(incident_id, who)
        else:
            return Response(status_code=200)  # a link button: nothing to do
        runtime.worker.wake.set()
        if not said.endswith((" acknowledged.", " resolved.")):
            _tell(payload, said)
        return Response(status_code=200)

    @app.get("/v1/incidents", summary="Incidents, newest first")
    async def list_incidents(
        status: Annotated[Literal["open", "acknowledged", "resolved", "attached"] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[dict[str, Any]]:
        return await _incidents(runtime, status, limit)

    @app.get(
        "/v1/incidents/{incident_id}",
        summary="One incident: alerts, timeline, deliveries",
        responses={404: {"description": "no incident with this id"}},
    )
    async def get_incident(incident_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> dict[str, Any]:
        found = await _incident(runtime, incident_id)
        if found is None:
            raise HTTPException(404, f"no incident #{incident_id}")
        return found

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(pages.index(await _incidents(runtime, None, 200), dry_run=runtime.mode.dry_run))

    @app.get("/incidents/{incident_id}", response_class=HTMLResponse, include_in_schema=False)
    async def incident_page(incident_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> HTMLResponse:
        found = await _incident(runtime, incident_id)
        if found is None:
            raise HTTPException(404, f"no incident #{incident_id}")
        return HTMLResponse(pages.incident(found, dry_run=runtime.mode.dry_run))

    @app.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="Intake can store webhooks")
    async def readyz() -> JSONResponse:
        try:
            async with runtime.db.transaction() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), 2.0)
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "reason": type(exc).__name__}, status_code=503)
        if not runtime.started:
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ready", "dry_run": runtime.mode.dry_run})

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body = generate_latest(runtime.metrics.registry) + generate_latest(telemetry.prometheus_registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return app


def _signed_by_slack(verifier: SignatureVerifier, body: bytes, request: Request) -> bool:
    """Slack's signature check, made total: slack-sdk raises on a timestamp that is no integer
    (ValueError), a body that is not UTF-8 (UnicodeDecodeError) or a non-ASCII signature
    (TypeError in hmac.compare_digest). Each of those is a forgery, not a server error."""
    try:
        return verifier.is_valid_request(body, dict(request.headers))
    except (ValueError, TypeError, UnicodeDecodeError):
        return False


def _tell(payload: dict[str, Any], message: str) -> None:
    """An ephemeral answer to the person who pressed, through Slack's response_url (best effort)."""
    url = payload.get("response_url")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        return

    async def post() -> None:
        try:
            async with httpx.AsyncClient(timeout=3) as client:
                await client.post(url, json={"response_type": "ephemeral", "replace_original": False, "text": message})
        except httpx.HTTPError as exc:
            logger.info("could not answer through response_url: %s", exc)

    task = asyncio.get_running_loop().create_task(post())
    _background.add(task)
    task.add_done_callback(_background.discard)


_background: set[asyncio.Task[None]] = set()


def _row(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


async def _incidents(bot: Bot, status: str | None, limit: int) -> list[dict[str, Any]]:
    query = select(incidents).order_by(incidents.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(incidents.c.status == status)
    async with bot.db.transaction() as conn:
        return [_row(r) for r in await conn.execute(query)]


async def _incident(bot: Bot, incident_id: int) -> dict[str, Any] | None:
    async with bot.db.transaction() as conn:
        found = (await conn.execute(select(incidents).where(incidents.c.id == incident_id))).first()
        if found is None:
            return None
        incident = _row(found)
        incident["alerts"] = [
            _row(r)
            for r in await conn.execute(
                select(alerts).where(alerts.c.incident_id == incident_id).order_by(alerts.c.first_seen)
            )
        ]
        incident["timeline"] = [
            _row(r)
            for r in await conn.execute(select(events).where(events.c.incident_id == incident_id).order_by(events.c.id))
        ]
        incident["deliveries"] = [
            _row(r)
            for r in await conn.execute(
                select(
                    outbox.c.id,
                    outbox.c.target,
                    outbox.c.action,
                    outbox.c.destination,
                    outbox.c.status,
                    outbox.c.attempts,
                    outbox.c.created_at,
                    outbox.c.sent_at,
                    outbox.c.sent_by,
                    outbox.c.last_error,
                    outbox.c.dry_run,
                    outbox.c.payload,
                )
                .where(outbox.c.incident_id == incident_id)
                .order_by(outbox.c.id)
            )
        ]
        children = await conn.execute(
            select(incidents.c.id, incidents.c.title, incidents.c.status).where(incidents.c.parent_id == incident_id)
        )
        incident["children"] = [_row(r) for r in children]
        return incident
