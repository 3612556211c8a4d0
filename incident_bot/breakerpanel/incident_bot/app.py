"""The HTTP side: Alertmanager's webhooks in, Slack's button presses in, incidents out (JSON and
a small HTML page), health and metrics.

::

    POST /v1/alertmanager          Alertmanager webhook_config url (bearer token)
    POST /v1/slack/interactions    Slack app's Interactivity Request URL (signed)
    GET  /v1/incidents             incidents, newest first (?status=open|acknowledged|resolved|attached)
    GET  /v1/incidents/{id}        one incident: its alerts, timeline and deliveries
    GET  /                         the same, for people
    GET  /charts/{id}.png|svg      an incident's chart (signed, expiring URL: what PagerDuty shows)
    GET  /metrics                  the bot's metrics
    GET  /healthz  /readyz         health, always open

Reads (the incidents, the pages, /metrics) need the read token or a trusted proxy's word, unless
the bot listens on loopback only (:class:`~breakerpanel.incident_bot.guard.ReadAccess`). A chart's
URL is its own credential (:mod:`~breakerpanel.incident_bot.chart_links`): PagerDuty has no other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

import httpx
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import select, text

from breakerpanel.exporter import BreakerTelemetry
from breakerpanel.guards import ConcurrencyLimiter, GradientLimit, RateLimiter, RateLimitPolicy
from breakerpanel.integrations.fastapi import validation_error_handler
from breakerpanel.integrations.guards import LoadSheddingMiddleware, client_address

from . import pages
from .alertmanager import Webhook
from .chart_links import ChartFormat
from .db import alerts, charts, events, incidents, outbox
from .guard import IntakeGuard, ReadAccess, bad_credential, intake_lockout
from .rows import fetch_chart, fetch_charts
from .runtime import Bot
from .settings import Settings
from .slack import ACK_ACTION, RESOLVE_ACTION
from .vocabulary import IncidentStatus

__all__ = ["create_app"]

logger = logging.getLogger("breakerpanel.incident_bot.app")

INTAKE_PATH = "/v1/alertmanager"
SLACK_PATH = "/v1/slack/interactions"
MAX_ID = 2**53  # ids in JSON and in both databases' integer columns
#: Repaired fields named in an answer at most (each name cut to its first 200 characters).
MAX_REPAIRS_NAMED = 20


class Accepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    webhook_id: int | None
    duplicate: bool
    repaired: list[str] = Field(
        default_factory=list,
        description="Fields that held characters no database can store (a lone UTF-16 surrogate, NUL): each "
        "was replaced with U+FFFD and the webhook kept.",
    )
    rejected: list[str] = Field(
        default_factory=list,
        description="Alerts left out because they are not valid (alerts.<i>.<field>: why); the webhook's "
        "other alerts were kept.",
    )


def create_app(settings: Settings, *, bot: Bot | None = None, listen_host: str | None = None) -> FastAPI:
    """The bot's ASGI app; ``bot`` replaces the one built from ``settings`` (tests). ``listen_host``
    is the address the server binds (``--host``): on loopback only, reads need no credential;
    anywhere else, or unknown (None), they need one."""
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
    read_access = ReadAccess.from_settings(settings, listen_host)
    app.state.read_access = read_access
    read_access.log_policy()

    async def reader(request: Request) -> None:
        """Lets a read through, or answers 401 (429 to a source that keeps presenting bad tokens)."""
        if read_access.allows(request.scope):
            return
        if request.headers.get("authorization") is None:  # no credential at all: nothing to count
            raise HTTPException(401, read_access.refusal(), headers={"WWW-Authenticate": "Bearer"})
        status = await bad_credential(lockout, client_address(request.scope))  # a guess: counted
        if status.locked:
            retry = str(max(1, round(status.retry_after)))
            raise HTTPException(429, "too many bad tokens: retry later", headers={"Retry-After": retry})
        raise HTTPException(401, read_access.refusal(), headers={"WWW-Authenticate": "Bearer"})

    read_responses: dict[int | str, dict[str, Any]] = {
        401: {"description": "the read token (or a trusted proxy's header) is needed: the bot listens beyond loopback"},
        429: {"description": "too many bad tokens from this client"},
    }
    can_read = [Depends(reader)]
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
        return await validation_error_handler(request, exc)

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
            429: {"description": "too many bad tokens from this client (never for the valid token)"},
            503: {
                "description": "not stored, over this client's rate limit, or shed under overload: Alertmanager "
                "should retry (Retry-After)"
            },
        },
        summary="Receive an Alertmanager webhook (version 4)",
    )
    async def alertmanager(webhook: Webhook, request: Request) -> Accepted:
        # Store what Alertmanager sent, as sent (FastAPI has parsed and validated it already: the
        # parsed body is cached on the request), but for the characters no database can store,
        # which the guard in front replaced with U+FFFD (IntakeGuard: why).
        payload = await request.json()
        repaired: list[str] = getattr(request.state, "repaired", [])
        if repaired:
            runtime.metrics.repaired.inc()
            logger.warning(
                "webhook of group %s: characters no database can store replaced with U+FFFD in %s",
                webhook.groupKey[:200],
                ", ".join(_named(repaired)),
            )
        try:
            accepted = await runtime.writer.write(webhook.dedupe_key(), payload)
        except Exception as exc:  # not stored: make Alertmanager retry
            logger.error("webhook not stored: %s", exc)
            runtime.metrics.rejected.labels("unavailable").inc()
            raise HTTPException(503, "could not store the webhook; retry", headers={"Retry-After": "5"}) from None
        runtime.metrics.received.inc()
        if accepted.duplicate:
            runtime.metrics.duplicates.inc()
        if webhook.rejected:
            logger.warning(
                "webhook of group %s: invalid alerts left out, the others kept: %s",
                webhook.groupKey[:200],
                "; ".join(_named(webhook.rejected)),
            )
        return Accepted(
            webhook_id=accepted.webhook_id,
            duplicate=accepted.duplicate,
            repaired=_named(repaired),
            rejected=_named(webhook.rejected),
        )

    @app.post(
        SLACK_PATH,
        summary="Slack button presses (Acknowledge, Resolve)",
        responses={
            400: {"description": "signed, but not a block_actions payload with an incident id"},
            401: {"description": "missing, stale or wrong Slack signature"},
            404: {"description": "Slack is not configured"},
            413: {"description": "body over the size limit"},
            429: {"description": "too many bad signatures (never a valid one), or too many requests, from this client"},
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
            # Counted by the same lockout as bad bearer tokens; like theirs, only bad signatures are
            # ever refused by it (a signed press from a throttled address still counts).
            status = await bad_credential(lockout, client_address(request.scope))
            if status.locked:
                runtime.metrics.rejected.labels("throttled").inc()
                retry = str(max(1, round(status.retry_after)))
                raise HTTPException(429, "too many bad signatures: retry later", headers={"Retry-After": retry})
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
        runtime.wake_workers()
        if not said.endswith((" acknowledged.", " resolved.")):
            _tell(payload, said)
        return Response(status_code=200)

    @app.get("/v1/incidents", summary="Incidents, newest first", dependencies=can_read, responses=read_responses)
    async def list_incidents(
        status: Annotated[IncidentStatus | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[dict[str, Any]]:
        return await _incidents(runtime, status, limit)

    @app.get(
        "/v1/incidents/{incident_id}",
        summary="One incident: alerts, timeline, deliveries",
        dependencies=can_read,
        responses={404: {"description": "no incident with this id"}, **read_responses},
    )
    async def get_incident(incident_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> dict[str, Any]:
        found = await _incident(runtime, incident_id)
        if found is None:
            raise HTTPException(404, f"no incident #{incident_id}")
        return found

    @app.get("/", response_class=HTMLResponse, include_in_schema=False, dependencies=can_read)
    async def index() -> HTMLResponse:
        return HTMLResponse(pages.index(await _incidents(runtime, None, 200), dry_run=runtime.mode.dry_run))

    @app.get("/incidents/{incident_id}", response_class=HTMLResponse, include_in_schema=False, dependencies=can_read)
    async def incident_page(incident_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> HTMLResponse:
        found = await _incident(runtime, incident_id)
        if found is None:
            raise HTTPException(404, f"no incident #{incident_id}")
        latest = found["charts"][-1] if found["charts"] else None
        svg = None
        if latest is not None:
            async with runtime.db.transaction() as conn:
                chart = await fetch_chart(conn, latest["id"], svg=True)
            svg = chart.svg if chart is not None else None
        return HTMLResponse(pages.incident(found, dry_run=runtime.mode.dry_run, chart_svg=svg))

    @app.get(
        "/charts/{chart_id}.{fmt}",
        summary="An incident's chart (PNG or SVG), by its signed URL",
        response_class=Response,
        responses={
            200: {"content": {"image/png": {}, "image/svg+xml": {}}, "description": "the chart"},
            403: {"description": "no signature, a signature that does not match, or an expired URL"},
            404: {"description": "no such chart (pruned with its incident)"},
        },
    )
    async def chart(
        chart_id: Annotated[int, Path(ge=1, le=MAX_ID)],
        fmt: ChartFormat,
        expires: Annotated[str | None, Query(max_length=20)] = None,
        signature: Annotated[str | None, Query(max_length=128)] = None,
    ) -> Response:
        refusal = runtime.chart_links.check(chart_id, expires, signature, now=time.time())
        if refusal is not None:
            raise HTTPException(403, refusal.value)
        async with runtime.db.transaction() as conn:
            found = await fetch_chart(conn, chart_id, png=fmt is ChartFormat.PNG, svg=fmt is ChartFormat.SVG)
        if found is None:
            raise HTTPException(404, f"no chart #{chart_id}")
        body = found.png if fmt is ChartFormat.PNG else found.svg.encode()
        headers = {
            "Cache-Control": "private, max-age=3600",
            "X-Content-Type-Options": "nosniff",
            # An SVG opened on its own is a document: no script, nothing fetched (ours has neither).
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
        }
        return Response(body, media_type=fmt.media_type, headers=headers)

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

    @app.get("/metrics", include_in_schema=False, dependencies=can_read)
    async def metrics() -> Response:
        body = generate_latest(runtime.metrics.registry) + telemetry.exposition()
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return app


def _named(repaired: list[str]) -> list[str]:
    """The repaired fields for the answer: the first few, each name bounded, and how many more."""
    named = [name[:200] for name in repaired[:MAX_REPAIRS_NAMED]]
    if len(repaired) > MAX_REPAIRS_NAMED:
        named.append(f"... and {len(repaired) - MAX_REPAIRS_NAMED} more")
    return named


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


async def _incidents(bot: Bot, status: IncidentStatus | None, limit: int) -> list[dict[str, Any]]:
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
        at = time.time()
        incident["charts"] = [
            {
                "id": c.id,
                "version": c.version,
                "reason": c.reason,
                "created_at": c.created_at,
                "minutes": c.minutes,
                "render_seconds": c.render_seconds,
                "png_url": bot.chart_links.url(c.id, ChartFormat.PNG, now=at),
                "svg_url": bot.chart_links.url(c.id, ChartFormat.SVG, now=at),
            }
            for c in await fetch_charts(conn, charts.c.incident_id == incident_id)
        ]
        return incident
