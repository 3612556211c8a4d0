"""Rate limiting, lockout and shedding against real servers: a flood from another process through two
replicas sharing a real Redis, a credential-stuffing run, and an overload with and without shedding.

Figures (limit accuracy, latencies) are printed (``pytest -s``) and attached as user properties; the
assertions are loose on purpose: they hold on a busy two-core machine.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI, Header, Request

from breakerpanel.guards import (
    AIMDLimit,
    ConcurrencyLimiter,
    LockoutGuard,
    LockoutPolicy,
    RateLimiter,
    RateLimitPolicy,
    RedisLockoutStore,
    RedisRateLimitStore,
    constant_time_equals,
)
from breakerpanel.integrations.guards import (
    LoadSheddingMiddleware,
    RateLimitMiddleware,
    authenticate,
    client_address,
    header_key,
)
from demo.upstreams import UpstreamServer
from tests.servers import RedisServer

ROOT = Path(__file__).resolve().parents[2]
Report = Callable[[str, object], None]


@pytest.fixture
def report(record_property: Report) -> Report:
    def emit(name: str, value: object) -> None:
        print(f"\n[measured] {name}: {value}")
        record_property(name, value)

    return emit


def replica(redis_url: str, policy: RateLimitPolicy) -> tuple[FastAPI, RateLimiter]:
    # One client per replica: it connects from the replica's own event loop on first use, and is
    # closed there too (the test servers run without lifespan events).
    client = aioredis.from_url(redis_url)
    app = FastAPI()

    @app.post("/_close")
    async def close() -> None:
        await client.aclose()

    @app.get("/v1/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    limiter = RateLimiter("public", policy, store=RedisRateLimitStore(client), fail_open=False)
    app.add_middleware(RateLimitMiddleware, limiter=limiter, key=header_key("x-api-key"), paths=("/v1/",))
    return app, limiter


def test_a_flood_from_another_process_is_held_to_the_rate_across_two_replicas(
    redis_server: RedisServer, report: Report
) -> None:
    policy = RateLimitPolicy(limit=40, period=1.0, burst=10)
    count, duration = 480, 3.0  # 160 requests/s offered: four times the limit
    (app_a, limiter_a), (app_b, limiter_b) = replica(redis_server.url, policy), replica(redis_server.url, policy)
    with UpstreamServer(app_a) as a, UpstreamServer(app_b) as b:
        done = subprocess.run(
            [
                sys.executable, "-m", "tests.breaker.flood", f"{a.url}/v1/ping", f"{b.url}/v1/ping",
                "--count", str(count), "--duration", str(duration), "--header", "x-api-key:tenant-1",
            ],
            cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        for server in (a, b):
            httpx.post(f"{server.url}/_close").raise_for_status()
    result = json.loads(done.stdout)
    statuses = result["statuses"]
    allowed = sum(s.get("200", 0) for s in statuses.values())
    limited = sum(s.get("429", 0) for s in statuses.values())
    assert allowed + limited == count
    # Both replicas answered, and the flood was refused. That they share one schedule is the bound
    # below: two schedules would allow about twice as much (accuracy near 2). Which replica serves
    # is no claim: the flood alternates between them and the limit admits about one request in
    # four, so the admitted ones can all fall on one replica's turns (a 3.13 CI run failed the old
    # check that each replica both served and refused).
    assert len(statuses) == 2
    assert all(sum(s.values()) > 0 for s in statuses.values())
    assert limited > 0
    assert limiter_a.statistics().allowed + limiter_b.statistics().allowed == allowed
    span = result["last"] - result["first"]
    expected = policy.burst + policy.rate * span
    accuracy = allowed / expected
    report("flood_allowed", allowed)
    report("flood_expected", round(expected, 1))
    report("flood_span_s", round(span, 3))
    report("flood_limit_accuracy", round(accuracy, 3))
    # Never more than the policy allows (the correctness claim). How close it gets from below is
    # a figure, reported above: on a busy machine the flood itself is descheduled and offers less
    # than the limit for a while, so a lower bound here would test the machine, not the limiter.
    assert policy.burst <= allowed
    assert accuracy <= 1.05


def login_replica(redis_url: str) -> tuple[FastAPI, LockoutGuard]:
    app = FastAPI()
    passwords = {"alice": "alice-pw-9f3", "bob": "bob-pw-77a", "carol": "carol-pw-1c2"}
    guard = LockoutGuard(
        "login",
        LockoutPolicy(max_failures=5, window=300, base_lockout=60),
        address_policy=LockoutPolicy(max_failures=20, window=300, base_lockout=300),
        store=RedisLockoutStore(aioredis.from_url(redis_url)),
    )

    @app.post("/login")
    async def login(
        request: Request, user: Annotated[str, Header()], password: Annotated[str, Header()]
    ) -> dict[str, str]:
        expected = passwords.get(user, "\0" * 12)
        await authenticate(
            guard,
            user,
            client_address(request.scope),
            lambda: constant_time_equals(password, expected),
            min_duration=0.0,
        )
        return {"user": user}

    return app, guard


async def test_credential_stuffing_is_locked_out_while_a_legitimate_user_is_not(
    redis_server: RedisServer, report: Report
) -> None:
    (app_a, guard_a), (app_b, guard_b) = login_replica(redis_server.url), login_replica(redis_server.url)

    def client(app: FastAPI, address: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 4000)), base_url="http://r")

    attacker = [client(app_a, "203.0.113.7"), client(app_b, "203.0.113.7")]
    legit = [client(app_a, "198.51.100.4"), client(app_b, "198.51.100.4")]
    # A leaked list: mostly wrong pairs over many accounts, one valid pair late in the run.
    pairs = [(f"user{i % 40}", f"pw{i}") for i in range(120)]
    pairs[90] = ("alice", "alice-pw-9f3")
    attack_statuses: list[int] = []
    legit_statuses: list[int] = []
    for i, (user, password) in enumerate(pairs):
        response = await attacker[i % 2].post("/login", headers={"user": user, "password": password})
        attack_statuses.append(response.status_code)
        if i % 10 == 0:
            ok = await legit[i % 2].post("/login", headers={"user": "bob", "password": "bob-pw-77a"})
            legit_statuses.append(ok.status_code)
    # The address is locked after 20 failures, on both replicas; the valid pair came too late.
    assert attack_statuses[:20] == [401] * 20
    assert set(attack_statuses[20:]) == {429}
    assert legit_statuses == [200] * len(legit_statuses)

    # A distributed attack on one principal (a new address each time) locks that principal only.
    targeted = []
    for i in range(8):
        async with client(app_a if i % 2 else app_b, f"192.0.2.{i + 1}") as c:
            targeted.append((await c.post("/login", headers={"user": "carol", "password": f"guess{i}"})).status_code)
    assert targeted == [401] * 5 + [429] * 3
    assert (await legit[0].post("/login", headers={"user": "bob", "password": "bob-pw-77a"})).status_code == 200
    report("stuffing_attempts_refused_by_lockout", attack_statuses.count(429))
    for c in (*attacker, *legit):
        await c.aclose()
    for guard in (guard_a, guard_b):
        assert isinstance(guard.store, RedisLockoutStore)
        await guard.store.client.aclose()
    assert guard_a.statistics().lockouts


def overload_app(shedder: ConcurrencyLimiter | None) -> FastAPI:
    app = FastAPI()
    capacity = asyncio.Semaphore(2)  # the service can do two at a time, 50 ms each: 40 requests/s

    @app.get("/v1/work")
    async def work() -> dict[str, str]:
        async with capacity:
            await asyncio.sleep(0.05)
        return {"done": "yes"}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"ok": "yes"}

    if shedder is not None:
        app.add_middleware(LoadSheddingMiddleware, limiters={"/v1/": shedder, "/health": shedder})
    return app


async def offer_load(url: str, rate: float, duration: float) -> tuple[list[float], int, list[int]]:
    """Open-loop load: requests at fixed instants whatever the answers; the latencies of the
    accepted ones, the number shed, and health-check statuses sampled meanwhile."""
    accepted: list[float] = []
    shed = 0
    health: list[int] = []
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    async with httpx.AsyncClient(limits=limits, timeout=60.0) as client:
        start = time.monotonic()

        async def one(i: int) -> None:
            nonlocal shed
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            sent = time.perf_counter()
            response = await client.get(f"{url}/v1/work")
            if response.status_code == 200:
                accepted.append(time.perf_counter() - sent)
            else:
                assert response.status_code == 503
                assert response.headers["retry-after"] == "1"
                shed += 1

        async def probe() -> None:
            while time.monotonic() - start < duration:
                health.append((await client.get(f"{url}/health")).status_code)
                await asyncio.sleep(0.2)

        await asyncio.gather(probe(), *(one(i) for i in range(int(rate * duration))))
    return accepted, shed, health


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def test_under_overload_accepted_requests_keep_their_latency(report: Report) -> None:
    rate, duration = 100.0, 3.0  # two and a half times the capacity
    results = {}
    for name, shedder in (
        ("without_shedding", None),
        ("with_shedding", ConcurrencyLimiter("work", AIMDLimit(initial=4, max_limit=50, latency_threshold=0.12))),
    ):
        async with UpstreamServer(overload_app(shedder)) as server:
            accepted, shed, health = await offer_load(server.url, rate, duration)
        p50, p99 = percentile(accepted, 50), percentile(accepted, 99)
        results[name] = (p50, p99, shed)
        report(f"{name}_accepted", len(accepted))
        report(f"{name}_shed", shed)
        report(f"{name}_p50_ms", round(p50 * 1000, 1))
        report(f"{name}_p99_ms", round(p99 * 1000, 1))
        assert set(health) == {200}  # health checks are never shed
        if shedder is not None:
            report("with_shedding_final_limit", shedder.limit)
    assert results["without_shedding"][2] == 0
    assert results["with_shedding"][2] > 0
    # Queuing makes the unshed run's tail latency grow with the backlog; the shed run's stays near
    # the service time. A factor of two leaves plenty of room for a busy machine.
    assert results["with_shedding"][1] * 2 < results["without_shedding"][1]
