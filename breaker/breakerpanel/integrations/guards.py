"""ASGI middleware and FastAPI dependencies for rate limits, authentication lockout and load shedding.

::

    limiter = RateLimiter("public", RateLimitPolicy(limit=10, period=1.0, burst=20))
    shedder = ConcurrencyLimiter("ask", GradientLimit(initial=32))
    app.add_middleware(LoadSheddingMiddleware, limiters={"/v1/ask": shedder})   # 503 + Retry-After
    app.add_middleware(RateLimitMiddleware, limiter=limiter, key=header_key("x-api-key"))  # 429

    Limited = Annotated[RateDecision, Depends(rate_limit(limiter))]    # per route instead

Rate-limited requests get 429 with ``Retry-After`` and the ``RateLimit`` / ``RateLimit-Policy``
fields of draft-ietf-httpapi-ratelimit-headers (``RateLimit-Policy: "default";q=20;w=2`` and
``RateLimit: "default";r=0;t=1``); allowed ones carry the two ``RateLimit`` fields as well. Shed
requests get 503 and ``Retry-After`` at once, without queuing. Only Starlette is imported.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping

from breakerpanel._extras import require as require_extra

# A missing extra: one line naming it, not a bare ModuleNotFoundError from below.
require_extra("breakerpanel.integrations.guards", "fastapi", "starlette")

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from breakerpanel.guards._lockout import ConstantTime, LockoutGuard
from breakerpanel.guards._ratelimit import RateDecision, RateLimiter
from breakerpanel.guards._shedding import ConcurrencyLimiter, Priority

__all__ = [
    "DEFAULT_CRITICAL_PATHS",
    "KeyFunc",
    "LoadSheddingMiddleware",
    "RateLimitMiddleware",
    "authenticate",
    "client_address",
    "header_key",
    "path_priority",
    "rate_limit",
    "skip_load_sample",
]

#: Paths whose requests are never shed nor rate limited by default: health checks and metrics.
DEFAULT_CRITICAL_PATHS = ("/health", "/healthz", "/livez", "/readyz", "/ready", "/metrics")

KeyFunc = Callable[[Scope], str]

# The key, in the request's state, of skip_load_sample's mark.
_SKIP_LOAD_SAMPLE = "breakerpanel.skip_load_sample"


def skip_load_sample(request: Request) -> None:
    """Tell :class:`LoadSheddingMiddleware` that this request's outcome says nothing about the
    service's load: a breaker rejected it in microseconds. Its latency is not learned and its
    503 does not count as dropped (:meth:`~breakerpanel.guards.Ticket.ignore`). Learned, such rejections
    teach a gradient limit a baseline latency of a few milliseconds and an AIMD limit one drop
    each, and the limit collapses when the dependency comes back. The FastAPI integration's
    error handlers (``install_error_handlers``) call it for every rejection they answer."""
    request.scope.setdefault("state", {})[_SKIP_LOAD_SAMPLE] = True


def client_address(scope: Scope) -> str:
    """The peer address (behind a proxy, let the server apply ``X-Forwarded-For`` from trusted
    proxies only, e.g. uvicorn's ``--proxy-headers --forwarded-allow-ips``)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def header_key(name: str, *, fallback: KeyFunc = client_address) -> KeyFunc:
    """Key requests by a header (an API key, a client id), or by ``fallback`` when it is absent."""
    raw = name.lower().encode("latin-1")

    def key(scope: Scope) -> str:
        for header, value in scope.get("headers", ()):
            if header == raw and value:
                return f"{name}:{value.decode('latin-1')}"
        return fallback(scope)

    return key


def path_priority(
    critical: Iterable[str] = DEFAULT_CRITICAL_PATHS, sheddable: Iterable[str] = ()
) -> Callable[[Scope], Priority]:
    """Priority by path prefix: ``critical`` prefixes are never shed, ``sheddable`` go first."""
    critical_prefixes = tuple(critical)
    sheddable_prefixes = tuple(sheddable)

    def priority(scope: Scope) -> Priority:
        path: str = scope.get("path", "")
        if critical_prefixes and path.startswith(critical_prefixes):
            return Priority.CRITICAL
        if sheddable_prefixes and path.startswith(sheddable_prefixes):
            return Priority.SHEDDABLE
        return Priority.NORMAL

    return priority


def _raw_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


async def _answer(send: Send, status: int, detail: str, headers: Mapping[str, str]) -> None:
    body = json.dumps({"detail": detail}).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *_raw_headers(headers),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RateLimitMiddleware:
    """Rate limits every HTTP request under ``paths`` (prefixes; all paths when empty) except
    ``exempt`` ones, keyed by ``key(scope)``: 429 with ``Retry-After`` and ``RateLimit`` fields."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiter: RateLimiter,
        key: KeyFunc = client_address,
        paths: Iterable[str] = (),
        exempt: Iterable[str] = DEFAULT_CRITICAL_PATHS,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.key = key
        self.paths = tuple(paths)
        self.exempt = tuple(exempt)

    def applies(self, path: str) -> bool:
        if self.exempt and path.startswith(self.exempt):
            return False
        return not self.paths or path.startswith(self.paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.applies(scope["path"]):
            await self.app(scope, receive, send)
            return
        decision = await self.limiter.acquire(self.key(scope))
        if not decision.allowed:
            await _answer(send, 429, "rate limit exceeded: retry later", decision.headers())
            return
        extra = _raw_headers(decision.headers())

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def rate_limit(
    limiter: RateLimiter, key: KeyFunc = client_address
) -> Callable[[Request, Response], Awaitable[RateDecision]]:
    """A FastAPI dependency: the request's :class:`~breakerpanel.guards.RateDecision`, with the ``RateLimit``
    fields on the response; a limited request is answered 429 (an ``HTTPException``, so FastAPI's
    default handler answers it with the headers)."""

    async def dependency(request: Request, response: Response) -> RateDecision:
        decision = await limiter.acquire(key(request.scope))
        if not decision.allowed:
            raise HTTPException(429, "rate limit exceeded: retry later", headers=decision.headers())
        response.headers.update(decision.headers())
        return decision

    dependency.__name__ = f"rate_limit_{limiter.name.replace('.', '_')}"
    return dependency


async def authenticate(
    guard: LockoutGuard,
    principal: str,
    address: str | None,
    verify: Callable[[], bool | Awaitable[bool]],
    *,
    reveal_lockout: bool = True,
    min_duration: float = 0.2,
    realm: str = "Bearer",
) -> None:
    """Check ``principal`` / ``address`` against ``guard``, run ``verify`` (compare secrets with
    :func:`~breakerpanel.guards.constant_time_equals`) and record the outcome; every path takes at least
    ``min_duration`` seconds. Raises ``HTTPException``: 429 with ``Retry-After`` while locked out
    (or while the attempts in flight fill every failure left before the lockout: concurrent
    guesses get ``max_failures`` answers, not one each), or, with ``reveal_lockout=False``, the
    same 401 as a wrong secret (``verify`` still runs, so a locked principal's answer costs as
    much as anyone's)."""
    unauthorized = HTTPException(401, "invalid credentials", headers={"WWW-Authenticate": realm})
    async with ConstantTime(min_duration), guard.attempt(principal, address) as attempt:
        result = verify()
        ok = await result if inspect.isawaitable(result) else bool(result)
        status = attempt.status  # locked, or as many attempts in flight as failures left
        if status.locked:
            if reveal_lockout:
                retry = str(max(1, math.ceil(status.retry_after)))  # never before the lock ends
                raise HTTPException(429, "too many failed attempts: retry later", headers={"Retry-After": retry})
            raise unauthorized
        if ok:
            await attempt.succeeded()
            return
        await attempt.failed()
        raise unauthorized


class LoadSheddingMiddleware:
    """Admits each HTTP request through the :class:`~breakerpanel.guards.ConcurrencyLimiter` of the longest
    matching path prefix in ``limiters`` (or one limiter for every path); over the limit, 503 with
    ``Retry-After`` at once. ``priority(scope)`` picks the priority (:func:`path_priority`: health
    checks and metrics are critical, never shed). A response of 503/504 counts as dropped (an
    overload signal), an exception or a request marked with :func:`skip_load_sample` as
    neither."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limiters: Mapping[str, ConcurrencyLimiter] | ConcurrencyLimiter,
        priority: Callable[[Scope], Priority] | None = None,
    ) -> None:
        self.app = app
        routes = {"/": limiters} if isinstance(limiters, ConcurrencyLimiter) else dict(limiters)
        self.routes = sorted(routes.items(), key=lambda item: len(item[0]), reverse=True)
        self.priority = priority if priority is not None else path_priority()

    def limiter_for(self, path: str) -> ConcurrencyLimiter | None:
        for prefix, limiter in self.routes:
            if path.startswith(prefix):
                return limiter
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limiter = self.limiter_for(scope["path"]) if scope["type"] == "http" else None
        if limiter is None:
            await self.app(scope, receive, send)
            return
        ticket = limiter.try_acquire(self.priority(scope))
        if ticket is None:
            retry = str(max(1, math.ceil(limiter.retry_after)))
            await _answer(send, 503, "overloaded: retry later", {"Retry-After": retry})
            return
        status = 0
        state = scope.setdefault("state", {})  # the route's request.state, where skip_load_sample writes

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except BaseException:
            ticket.ignore()
            raise
        if state.get(_SKIP_LOAD_SAMPLE):
            ticket.ignore()
        elif status in (503, 504):
            ticket.dropped()
        else:
            ticket.success()
