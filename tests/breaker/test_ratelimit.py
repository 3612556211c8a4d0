"""GCRA rate limiting: the policy, the decision, and the contract of every store (memory and a real Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import given
from hypothesis import strategies as st

from breakerpanel import BreakerConfigError, ManualClock
from breakerpanel.guards import (
    GuardListener,
    MemoryRateLimitStore,
    RateDecision,
    RateLimitedError,
    RateLimiter,
    RateLimitPolicy,
    RateLimitStore,
    RedisRateLimitStore,
)
from tests.servers import REDIS_VERSIONS, RedisServer

StoreFactory = Callable[[ManualClock], RateLimitStore]


@pytest.fixture(params=["memory", *REDIS_VERSIONS])
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[StoreFactory]:
    if request.param == "memory":
        yield lambda clock: MemoryRateLimitStore(clock=clock)
        return
    server: RedisServer = request.getfixturevalue(f"{request.param}_server")
    client = aioredis.from_url(server.url)
    yield lambda clock: RedisRateLimitStore(client, clock=clock, prefix=f"test:{id(clock)}")
    await client.aclose()


def test_policy_validates_and_describes_itself() -> None:
    policy = RateLimitPolicy(limit=10, period=2.0, burst=4, name="api")
    assert policy.interval == 0.2
    assert policy.rate == 5.0
    assert policy.header_value() == '"api";q=4;w=1'
    assert policy == RateLimitPolicy(limit=10, period=2, burst=4, name="api")
    assert "burst=4" in repr(policy)
    for bad in ({"limit": 0, "period": 1}, {"limit": 1, "period": 0}, {"limit": 1, "period": 1, "burst": 0}):
        with pytest.raises(BreakerConfigError):
            RateLimitPolicy(**bad)
    with pytest.raises(BreakerConfigError):
        RateLimitPolicy(limit=1, period=1, name='a"b')


def test_decision_headers_follow_the_ietf_draft() -> None:
    policy = RateLimitPolicy(limit=100, period=60, burst=10)
    limited = RateDecision(False, 0, 0.4, 5.0, policy)
    assert limited.headers() == {
        "RateLimit-Policy": '"default";q=10;w=6',
        "RateLimit": '"default";r=0;t=1',
        "Retry-After": "1",
    }
    allowed = RateDecision(True, 7, 0.0, 1.8, policy)
    assert allowed.headers() == {"RateLimit-Policy": '"default";q=10;w=6', "RateLimit": '"default";r=7;t=2'}


async def test_burst_then_sustained_rate(make_store: StoreFactory) -> None:
    clock = ManualClock(1000.0)
    limiter = RateLimiter("api", RateLimitPolicy(limit=10, period=1.0, burst=3), store=make_store(clock), clock=clock)
    decisions = [await limiter.acquire("alice") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[-1].retry_after == pytest.approx(0.1)
    # Another key is not affected.
    assert (await limiter.acquire("bob")).allowed
    clock.advance(0.1)
    assert (await limiter.acquire("alice")).allowed
    assert not (await limiter.acquire("alice")).allowed
    # After a quiet period the whole burst is back.
    clock.advance(1.0)
    assert [(await limiter.acquire("alice")).allowed for _ in range(4)] == [True, True, True, False]
    stats = limiter.statistics()
    assert (stats.allowed, stats.limited, stats.recently_limited_keys) == (8, 3, 1)


async def test_check_raises_with_the_retry_after(make_store: StoreFactory) -> None:
    clock = ManualClock(50.0)
    limiter = RateLimiter("api", RateLimitPolicy(limit=1, period=2.0), store=make_store(clock), clock=clock)
    await limiter.check("k")
    with pytest.raises(RateLimitedError) as raised:
        await limiter.check("k")
    assert raised.value.retry_after == pytest.approx(2.0)
    clock.advance(raised.value.retry_after)
    await limiter.check("k")


async def test_cost_spends_several_units(make_store: StoreFactory) -> None:
    clock = ManualClock(0.0)
    limiter = RateLimiter("api", RateLimitPolicy(limit=10, period=1.0), store=make_store(clock), clock=clock)
    assert (await limiter.acquire("k", cost=7)).remaining == 3
    decision = await limiter.acquire("k", cost=5)
    assert not decision.allowed
    assert decision.retry_after == pytest.approx(0.2)


async def test_redis_store_uses_server_time_and_hashes_keys(redis_server: RedisServer) -> None:
    client = aioredis.from_url(redis_server.url)
    try:
        store = RedisRateLimitStore(client, prefix="rt")
        limiter = RateLimiter("api", RateLimitPolicy(limit=5, period=60.0), store=store)
        assert [(await limiter.acquire("secret-api-key")).allowed for _ in range(6)] == [True] * 5 + [False]
        keys = [key.decode() async for key in client.scan_iter("rt:*")]
        assert len(keys) == 1
        assert "secret-api-key" not in keys[0]
        ttl = await client.pttl(keys[0])
        assert 0 < ttl <= 60_000  # the key expires when it would be idle
    finally:
        await client.aclose()


async def test_a_failing_store_fails_open_or_closed() -> None:
    class Broken:
        async def decide(self, *args: Any) -> RateDecision:
            raise ConnectionError("redis down")

    policy = RateLimitPolicy(limit=1, period=1.0)
    open_limiter = RateLimiter("api", policy, store=Broken())
    assert (await open_limiter.acquire("k")).allowed
    assert open_limiter.statistics().store_errors == 1
    with pytest.raises(ConnectionError):
        await RateLimiter("api", policy, store=Broken(), fail_open=False).acquire("k")


async def test_listeners_see_decisions() -> None:
    seen: list[tuple[str, bool]] = []

    class Recorder(GuardListener):
        def rate_decided(self, limiter: str, key: str, decision: RateDecision) -> None:
            seen.append((key, decision.allowed))

    limiter = RateLimiter("api", RateLimitPolicy(limit=1, period=1.0), clock=ManualClock(), listeners=[Recorder()])
    await limiter.acquire("a")
    await limiter.acquire("a")
    assert seen == [("a", True), ("a", False)]


def test_memory_store_forgets_idle_keys_and_stays_bounded() -> None:
    clock = ManualClock(0.0)
    store = MemoryRateLimitStore(clock=clock, max_keys=100)
    policy = RateLimitPolicy(limit=10, period=1.0)
    for i in range(1000):
        store.decide_now("api", f"k{i}", policy, 1)
    assert len(store) == 100  # a spray of keys cannot grow memory without bound
    clock.advance(1.0)  # every TAT has passed: each key is as good as unknown
    store.decide_now("api", "fresh", policy, 1)
    assert len(store) == 1


# ------------------------------------------------------------------ properties

_requests = st.lists(
    st.tuples(st.floats(min_value=0.0, max_value=0.5, allow_nan=False), st.sampled_from(["a", "b"])),
    min_size=1,
    max_size=200,
)


@given(
    limit=st.integers(min_value=1, max_value=20),
    period=st.sampled_from([0.1, 1.0, 2.5, 60.0]),
    burst=st.integers(min_value=1, max_value=10),
    requests=_requests,
)
def test_never_more_than_the_allowed_count_in_any_window(
    limit: int, period: float, burst: int, requests: list[tuple[float, str]]
) -> None:
    """In any interval [t1, t2] a key gets at most burst + (t2 - t1) / interval requests; and a
    refused request would have broken that bound at its instant (GCRA refuses nothing it could allow)."""
    clock = ManualClock(0.0)
    policy = RateLimitPolicy(limit=limit, period=period, burst=burst)
    store = MemoryRateLimitStore(clock=clock)
    allowed: dict[str, list[float]] = {"a": [], "b": []}
    for delay, key in requests:
        clock.advance(delay)
        decision = store.decide_now("api", key, policy, 1)
        if decision.allowed:
            allowed[key].append(clock.now())
            assert 0 <= decision.remaining <= burst - 1
        else:
            assert decision.retry_after > 0
            assert decision.retry_after <= policy.interval * burst + 1e-9
    for times in allowed.values():
        for i in range(len(times)):
            for j in range(i, len(times)):
                count = j - i + 1
                assert count <= burst + (times[j] - times[i]) / policy.interval + 1e-6


@given(
    limit=st.integers(min_value=1, max_value=20),
    burst=st.integers(min_value=1, max_value=10),
    waits=st.lists(st.floats(min_value=0.0, max_value=3.0, allow_nan=False), min_size=1, max_size=50),
)
def test_waiting_retry_after_is_enough(limit: int, burst: int, waits: list[float]) -> None:
    clock = ManualClock(0.0)
    store = MemoryRateLimitStore(clock=clock)
    policy = RateLimitPolicy(limit=limit, period=1.0, burst=burst)
    for wait in waits:
        clock.advance(wait / limit)
        decision = store.decide_now("api", "k", policy, 1)
        if not decision.allowed:
            clock.advance(decision.retry_after)
            assert store.decide_now("api", "k", policy, 1).allowed


async def test_concurrent_decisions_on_redis_never_exceed_the_burst(redis_server: RedisServer) -> None:
    """Many concurrent requests through two clients (two replicas): the script is atomic."""
    clients = [aioredis.from_url(redis_server.url) for _ in range(2)]
    try:
        clock = ManualClock(10.0)  # time stands still: only the burst may pass
        limiters = [
            RateLimiter(
                "api", RateLimitPolicy(limit=1, period=3600, burst=25), store=RedisRateLimitStore(c, clock=clock)
            )
            for c in clients
        ]
        decisions = await asyncio.gather(*(limiters[i % 2].acquire("shared") for i in range(200)))
        assert sum(d.allowed for d in decisions) == 25
    finally:
        for client in clients:
            await client.aclose()


async def test_requests_exactly_on_schedule_are_allowed_by_every_store(make_store: StoreFactory) -> None:
    # A TAT stored with six decimals rounded up by up to 5e-7 s, more than the 1 ns of slack:
    # Redis refused two of these six requests that the memory store allowed.
    clock = ManualClock(1000.0)
    limiter = RateLimiter("api", RateLimitPolicy(limit=3, period=2.0, burst=1), store=make_store(clock), clock=clock)
    allowed = []
    for _ in range(6):
        allowed.append((await limiter.acquire("k")).allowed)
        clock.advance(2 / 3)
    assert allowed == [True] * 6


@pytest.mark.parametrize("cost", [0, -5, 3, "1", True, 1.0])
async def test_a_cost_outside_one_to_the_burst_is_refused_before_the_store_is_asked(cost: Any) -> None:
    # -5 used to hand the key its quota back; 3 (over the burst) was told "retry in 0.5 s" and
    # refused forever; "1" failed inside the store and was let through as a store error.
    limiter = RateLimiter("api", RateLimitPolicy(limit=2, period=1.0, burst=2), clock=ManualClock())
    with pytest.raises(BreakerConfigError) as caught:
        await limiter.acquire("k", cost)
    assert caught.value.field == "cost"
    stats = limiter.statistics()
    assert (stats.allowed, stats.limited, stats.store_errors) == (0, 0, 0)


@pytest.mark.parametrize(
    "bad", [{"limit": True}, {"burst": True}, {"name": 5}, {"name": "a\r\nb"}, {"name": "caf\u00e9"}, {"period": True}]
)
def test_policy_refuses_what_a_header_or_the_math_cannot_carry(bad: dict[str, Any]) -> None:
    with pytest.raises(BreakerConfigError) as caught:
        RateLimitPolicy(**{"limit": 5, "period": 1.0, **bad})
    assert caught.value.field in bad


def test_statistics_can_be_read_from_another_thread_while_keys_are_limited() -> None:
    # The exporter builds /metrics in a worker thread; the event loop notes limited keys meanwhile
    # ("OrderedDict mutated during iteration", about 4 in 10,000 reads, before the lock).
    import sys
    import threading

    limiter = RateLimiter(
        "api", RateLimitPolicy(limit=1, period=3600.0), clock=ManualClock(), max_recent=50, recent_window=1e9
    )
    errors: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                limiter.statistics()
            except BaseException as exc:
                errors.append(exc)
                return

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    reader = threading.Thread(target=read)
    reader.start()
    try:

        async def limit_many() -> None:
            for i in range(20_000):
                await limiter.acquire(f"key-{i % 200}")

        asyncio.run(limit_many())
    finally:
        done.set()
        reader.join()
        sys.setswitchinterval(interval)
    assert errors == []
    assert limiter.statistics().recently_limited_keys == 50
