"""The ASGI middleware and FastAPI dependencies: status codes and headers."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI, Header, Request, Response

from breakerpanel import CircuitBreaker, ManualClock
from breakerpanel.guards import (
    AIMDLimit,
    ConcurrencyLimiter,
    LockoutGuard,
    LockoutPolicy,
    RateDecision,
    RateLimiter,
    RateLimitPolicy,
    constant_time_equals,
)
from breakerpanel.integrations.fastapi import install_error_handlers
from breakerpanel.integrations.guards import (
    LoadSheddingMiddleware,
    RateLimitMiddleware,
    authenticate,
    client_address,
    header_key,
    path_priority,
    rate_limit,
    skip_load_sample,
)


def client_for(app: FastAPI, address: str = "127.0.0.1") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 1234)), base_url="http://t")


async def test_middleware_answers_429_with_ratelimit_fields() -> None:
    app = FastAPI()

    @app.get("/v1/things")
    async def things() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"ok": "yes"}

    limiter = RateLimiter("public", RateLimitPolicy(limit=2, period=10.0, name="public"), clock=ManualClock())
    app.add_middleware(RateLimitMiddleware, limiter=limiter, key=header_key("x-api-key"))
    async with client_for(app) as client:
        first = await client.get("/v1/things", headers={"x-api-key": "k1"})
        assert first.status_code == 200
        assert first.headers["ratelimit-policy"] == '"public";q=2;w=10'
        assert first.headers["ratelimit"] == '"public";r=1;t=5'
        await client.get("/v1/things", headers={"x-api-key": "k1"})
        limited = await client.get("/v1/things", headers={"x-api-key": "k1"})
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "5"
        assert limited.headers["ratelimit"] == '"public";r=0;t=5'
        assert limited.json() == {"detail": "rate limit exceeded: retry later"}
        # Another API key, and health checks, are not limited.
        assert (await client.get("/v1/things", headers={"x-api-key": "k2"})).status_code == 200
        for _ in range(5):
            assert (await client.get("/health")).status_code == 200


# Module level: with postponed annotations, FastAPI resolves the alias in the module's globals.
ASK_LIMITER = RateLimiter("ask", RateLimitPolicy(limit=1, period=60.0), clock=ManualClock())
Limited = Annotated[RateDecision, Depends(rate_limit(ASK_LIMITER))]


async def test_dependency_limits_one_route() -> None:
    app = FastAPI()

    @app.post("/ask")
    async def ask(decision: Limited) -> dict[str, int]:
        return {"remaining": decision.remaining}

    async with client_for(app, "10.1.1.1") as client:
        ok = await client.post("/ask")
        assert ok.status_code == 200
        assert ok.headers["ratelimit"] == '"default";r=0;t=60'
        limited = await client.post("/ask")
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "60"
        assert "ratelimit-policy" in limited.headers
    async with client_for(app, "10.1.1.2") as other:
        assert (await other.post("/ask")).status_code == 200


def test_key_functions() -> None:
    scope = {"type": "http", "client": ("192.0.2.1", 5), "headers": [(b"x-api-key", b"abc")], "path": "/x"}
    assert client_address(scope) == "192.0.2.1"
    assert header_key("X-API-Key")(scope) == "X-API-Key:abc"
    assert header_key("x-client-id")(scope) == "192.0.2.1"
    assert client_address({"type": "http"}) == "unknown"
    priority = path_priority(sheddable=("/v1/batch",))
    assert priority({"path": "/healthz"}).value == "critical"
    assert priority({"path": "/v1/batch/1"}).value == "sheddable"
    assert priority({"path": "/v1/ask"}).value == "normal"


def make_login_app(guard: LockoutGuard, *, reveal: bool) -> FastAPI:
    app = FastAPI()
    passwords = {"alice": "correct horse", "bob": "battery staple"}

    @app.post("/login")
    async def login(
        request: Request, user: Annotated[str, Header()], password: Annotated[str, Header()]
    ) -> dict[str, str]:
        await authenticate(
            guard,
            user,
            client_address(request.scope),
            lambda: constant_time_equals(password, passwords.get(user, "\0" * 16)),
            reveal_lockout=reveal,
            min_duration=0.02,
        )
        return {"user": user}

    return app


@pytest.mark.parametrize("reveal", [True, False])
async def test_lockout_dependency(reveal: bool) -> None:
    guard = LockoutGuard("login", LockoutPolicy(max_failures=3, window=60, base_lockout=30), clock=ManualClock())
    app = make_login_app(guard, reveal=reveal)
    async with client_for(app) as client:
        for _ in range(3):
            bad = await client.post("/login", headers={"user": "alice", "password": "guess"})
            assert bad.status_code == 401
            assert bad.headers["www-authenticate"] == "Bearer"
        locked = await client.post("/login", headers={"user": "alice", "password": "correct horse"})
        if reveal:
            assert locked.status_code == 429
            assert locked.headers["retry-after"] == "30"
        else:
            assert locked.status_code == 401  # the same answer as a wrong password
            assert locked.json() == bad.json()
            assert "retry-after" not in locked.headers
        ok = await client.post("/login", headers={"user": "bob", "password": "battery staple"})
        assert ok.status_code == 200


async def test_retry_after_never_sends_a_client_back_before_the_lock_ends() -> None:
    # round() sent "10" with 10.4 s left: a client obeying it met a 429 again.
    clock = ManualClock()
    guard = LockoutGuard("login", LockoutPolicy(max_failures=1, window=60, base_lockout=30), clock=clock)
    app = make_login_app(guard, reveal=True)
    async with client_for(app) as client:
        await client.post("/login", headers={"user": "alice", "password": "guess"})
        clock.advance(19.6)
        locked = await client.post("/login", headers={"user": "alice", "password": "correct horse"})
        assert (locked.status_code, locked.headers["retry-after"]) == (429, "11")
        clock.advance(int(locked.headers["retry-after"]))
        ok = await client.post("/login", headers={"user": "alice", "password": "correct horse"})
        assert ok.status_code == 200


async def test_concurrent_wrong_passwords_get_max_failures_answers() -> None:
    # Each request used to pass the check before any failure counted: 20 concurrent guesses were
    # 20 answers. Now the attempts beyond the failures left wait for a place, and find the lock
    # the first three started (429, Retry-After 30).
    guard = LockoutGuard("login", LockoutPolicy(max_failures=3, window=60, base_lockout=30), clock=ManualClock())
    app = FastAPI()
    checking = asyncio.Event()

    @app.post("/login")
    async def login(request: Request, password: Annotated[str, Header()]) -> dict[str, str]:
        async def verify() -> bool:
            await checking.wait()  # a password hash in a thread, a user lookup
            return constant_time_equals(password, "correct horse")

        await authenticate(guard, "alice", client_address(request.scope), verify, min_duration=0.0)
        return {"user": "alice"}

    async with client_for(app) as client:
        posts = [asyncio.create_task(client.post("/login", headers={"password": "guess"})) for _ in range(20)]
        await asyncio.sleep(0.2)  # every request has reached its check
        checking.set()
        answers = await asyncio.gather(*posts)
    codes = sorted((a.status_code, a.headers.get("retry-after")) for a in answers)
    assert codes == [(401, None)] * 3 + [(429, "30")] * 17
    assert guard.statistics().failures == 3


async def test_lockout_answers_take_the_same_time() -> None:
    guard = LockoutGuard("login", LockoutPolicy(max_failures=2, window=60, base_lockout=30), clock=ManualClock())
    app = make_login_app(guard, reveal=False)
    durations: dict[str, list[float]] = {"locked": [], "failed": [], "ok": []}
    async with client_for(app) as client:
        for _ in range(2):
            await client.post("/login", headers={"user": "alice", "password": "x"})
        for _ in range(5):
            for kind, user, password in (
                ("locked", "alice", "x"),
                ("failed", "carol", "x"),
                ("ok", "bob", "battery staple"),
            ):
                start = time.perf_counter()
                await client.post("/login", headers={"user": user, "password": password})
                durations[kind].append(time.perf_counter() - start)
    for values in durations.values():
        assert min(values) >= 0.02  # every path is padded to the floor; none answers early


async def test_shedding_middleware_rejects_at_once_and_spares_health_checks() -> None:
    app = FastAPI()
    gate = asyncio.Event()
    both_in = asyncio.Event()
    entered = 0

    @app.get("/v1/ask")
    async def ask() -> dict[str, str]:
        nonlocal entered
        entered += 1
        if entered == 2:
            both_in.set()
        await gate.wait()
        return {"ok": "yes"}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"ok": "yes"}

    limiter = ConcurrencyLimiter("ask", AIMDLimit(initial=2), retry_after=2.0)
    app.add_middleware(LoadSheddingMiddleware, limiters={"/v1/": limiter, "/health": limiter})
    async with client_for(app) as client:
        slow = [asyncio.create_task(client.get("/v1/ask")) for _ in range(2)]
        await asyncio.wait_for(both_in.wait(), 5)
        shed = await client.get("/v1/ask")
        assert shed.status_code == 503
        assert shed.headers["retry-after"] == "2"
        assert (await client.get("/health")).status_code == 200  # critical: never shed
        gate.set()
        assert [r.status_code for r in await asyncio.gather(*slow)] == [200, 200]
    assert limiter.in_flight == 0
    assert limiter.statistics().shed


class RecordingLimit:
    """A limit algorithm that keeps the samples it is given."""

    def __init__(self) -> None:
        self.samples: list[bool] = []  # dropped or not, per sample

    @property
    def limit(self) -> int:
        return 100

    def on_sample(self, rtt: float, in_flight: int, dropped: bool) -> None:
        self.samples.append(dropped)


async def test_breaker_rejections_are_not_load_samples() -> None:
    # A breaker's rejection takes microseconds: learned, it teaches a gradient limit a baseline
    # latency the recovered service cannot meet (and an AIMD limit one drop per rejection).
    app = FastAPI()
    install_error_handlers(app)
    opened = CircuitBreaker("openai")
    opened.force_open()

    @app.get("/v1/rejected")
    async def rejected() -> str:
        return await opened.acall(asyncio.sleep, 0, "never")

    @app.get("/v1/marked")
    async def marked(request: Request) -> Response:
        skip_load_sample(request)
        return Response(status_code=503)

    @app.get("/v1/overloaded")
    async def overloaded() -> Response:
        return Response(status_code=503)

    @app.get("/v1/ok")
    async def ok() -> str:
        return "ok"

    algorithm = RecordingLimit()
    limiter = ConcurrencyLimiter("ask", algorithm)
    app.add_middleware(LoadSheddingMiddleware, limiters=limiter)
    async with client_for(app) as client:
        statuses = [(await client.get(f"/v1/{path}")).status_code for path in ("rejected", "marked")]
        assert statuses == [503, 503]
        assert algorithm.samples == []
        assert (await client.get("/v1/overloaded")).status_code == 503
        assert (await client.get("/v1/ok")).status_code == 200
    assert algorithm.samples == [True, False]  # the plain 503 is a drop, the 200 a success
    assert limiter.in_flight == 0
