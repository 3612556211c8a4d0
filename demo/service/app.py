"""The FastAPI app: ``/v1/ask``, ``/metrics``, ``/health/*`` and ``/admin/*``, wired to the
dependencies that :class:`~demo.service.settings.Settings` names."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anthropic
import httpx
import openai
import redis.asyncio as aioredis
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from breakerpanel import BreakerError, CircuitOpenError, running_probes
from breakerpanel.exporter import BreakerTelemetry
from breakerpanel.guards import (
    ConcurrencyLimiter,
    GradientLimit,
    LockoutGuard,
    RateLimiter,
    RateLimitPolicy,
    RedisLockoutStore,
    RedisRateLimitStore,
)
from breakerpanel.integrations.fastapi import validation_error_handler
from breakerpanel.integrations.guards import (
    LoadSheddingMiddleware,
    RateLimitMiddleware,
    header_key,
    path_priority,
    skip_load_sample,
)

from . import probes
from .admin import ADMIN_LOCKOUT, admin_router
from .assistant import Assistant
from .breakers import Breakers
from .cache import AnswerCache
from .corpus import DOCUMENTS
from .health import health_router
from .llm import Providers
from .models import AskRequest, AskResponse
from .seeding import Seeder
from .semantic import check_semantic_steps, close_semantic_steps
from .settings import Settings
from .store import open_store
from .vectors import VectorIndex

__all__ = ["create_app"]


def _answer_cache(settings: Settings, breakers: Breakers) -> AnswerCache:
    if not settings.redis_url:
        return AnswerCache.in_memory()
    registry = breakers.registry
    return AnswerCache.redis(settings.redis_url, reads=registry["redis.get"], writes=registry["redis.set"])


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app for ``settings`` (read from the environment when None). Nothing is contacted
    before startup, which seeds the documents (retrying in the background while a dependency is
    down)."""
    settings = settings if settings is not None else Settings()
    breakers = Breakers(settings.breakers_file, settings.breaker_mode, resolve=probes.resolver(settings))
    cache = _answer_cache(settings, breakers)
    breakers.add_features(cache, settings.redis_url)
    registry = breakers.registry
    providers = Providers(settings, breakers)
    index = VectorIndex(settings, breakers)
    store = open_store(settings, registry["postgres.query"])
    seeder = Seeder(DOCUMENTS, store, index, providers, retry_s=settings.seed_retry_s)
    assistant = Assistant(registry, providers, index, store, seeder, search_limit=settings.search_limit)
    telemetry = BreakerTelemetry(registry, service_name=settings.service_name, environment=settings.environment)
    # Rate limits and admin lockouts are shared by the replicas through Redis when there is one.
    guard_redis = aioredis.from_url(settings.redis_url) if settings.redis_url else None
    rate_limiter = RateLimiter(
        "demo.ask",
        RateLimitPolicy(limit=settings.ask_rate_limit, period=1.0, burst=settings.ask_rate_burst, name="ask"),
        store=RedisRateLimitStore(guard_redis) if guard_redis is not None else None,
    )
    admin_lockout = LockoutGuard(
        "demo.admin",
        ADMIN_LOCKOUT,
        address_policy=ADMIN_LOCKOUT,
        store=RedisLockoutStore(guard_redis) if guard_redis is not None else None,
    )
    shedder = ConcurrencyLimiter(
        "demo.ask", GradientLimit(initial=min(20, settings.ask_max_concurrency), max_limit=settings.ask_max_concurrency)
    )
    telemetry.add_guard(rate_limiter, admin_lockout, shedder)  # their decisions on /metrics too

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A Redis without Vector Sets (7.x) is found now, not in the next outage.
        await check_semantic_steps(registry)
        # One attempt before serving, so a healthy stack answers from its documents at once.
        await seeder.seed_once()
        seeder.start()
        try:
            async with running_probes(registry):  # self-healing: probe open services' health
                yield
        finally:
            await seeder.stop()
            await providers.aclose()
            await index.aclose()
            await store.aclose()
            await cache.aclose()
            await close_semantic_steps(registry)
            if guard_redis is not None:
                await guard_redis.aclose()
            telemetry.shutdown()

    app = FastAPI(title="breakerpanel demo assistant", lifespan=lifespan)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.state.settings = settings
    app.state.assistant = assistant
    app.state.registry = registry
    app.state.telemetry = telemetry
    app.state.rate_limiter = rate_limiter
    app.state.admin_lockout = admin_lockout
    app.state.shedder = shedder

    @app.post("/v1/ask")
    async def ask(body: AskRequest, request: Request) -> AskResponse:
        try:
            return await assistant.ask(body.question)
        except (openai.BadRequestError, anthropic.BadRequestError) as exc:
            # A question the model refuses (content filter, too long) is the caller's: the
            # breakers ignore it, and no fallback would answer it either.
            raise HTTPException(422, f"the language model refused the question: {exc.message}") from exc
        except BreakerError as exc:
            # Only when a feature has no fallback that works (breaker_mode "no_fallbacks").
            if isinstance(exc, CircuitOpenError):
                skip_load_sample(request)  # a rejection in microseconds says nothing of our load
            raise HTTPException(503, f"a dependency is unavailable: {exc}") from exc
        except (openai.APIError, anthropic.APIError, httpx.HTTPError) as exc:
            raise HTTPException(502, f"a dependency failed: {type(exc).__name__}") from exc

    app.include_router(health_router(assistant, database=store.kind, cache=cache.kind))
    app.include_router(admin_router(registry, settings.admin_secret(), admin_lockout))
    # Rate limit first (outermost), then shedding: an abusive client spends no concurrency.
    # Health checks, /metrics and the admin API are never shed nor limited.
    critical = ("/health", "/metrics", "/admin")
    app.add_middleware(LoadSheddingMiddleware, limiters={"/v1/ask": shedder}, priority=path_priority(critical))
    app.add_middleware(RateLimitMiddleware, limiter=rate_limiter, key=header_key("x-api-key"), paths=("/v1/ask",))
    # A route, not a mount: a mount answers /metrics with a redirect to /metrics/.
    app.router.routes.append(Route("/metrics", _AsgiEndpoint(telemetry.asgi_app())))
    return app


class _AsgiEndpoint:
    """Starlette serves an endpoint that is a plain function as a request handler, and anything
    else as an ASGI app; prometheus_client's app is a plain function, hence this object."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
