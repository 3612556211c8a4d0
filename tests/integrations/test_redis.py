"""redis-py (asyncio) behind a breaker, against a real redis-server killed and restarted mid-run."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio as aioredis
import redis.exceptions

from breakerpanel import (
    MISSING,
    BreakerConfig,
    BreakerConfigError,
    BreakerError,
    CachedResponse,
    CircuitBreaker,
    CircuitOpenError,
    DependencyError,
    FallbackChain,
    MemoryCache,
    State,
    Static,
    Verdict,
    classify_with,
)
from breakerpanel.integrations.redis import ProtectedRedis, RedisCache
from tests.servers import RedisServer, find_free_port

WINDOW = BreakerConfig(
    sliding_window_type="time_based",
    sliding_window_size=10,
    minimum_calls=5,
    failure_rate_threshold=0.5,
    wait_in_open=0.3,
    permitted_calls_in_half_open=2,
)


@pytest.fixture
async def protected(redis_server: RedisServer) -> AsyncIterator[ProtectedRedis]:
    client = ProtectedRedis.from_url(
        redis_server.url, breaker=CircuitBreaker("redis", WINDOW), socket_timeout=0.5, socket_connect_timeout=0.5
    )
    yield client
    await client.aclose()


async def test_commands_and_pipelines_go_through_the_breaker(protected: ProtectedRedis) -> None:
    await protected.set("k", "v")
    assert await protected.get("k") == b"v"
    async with protected.pipeline() as pipe:
        pipe.incr("n")
        pipe.incr("n")
        assert await pipe.execute() == [1, 2]
    assert protected.breaker.snapshot().totals.successes == 3


async def test_a_bad_command_is_the_callers_mistake(protected: ProtectedRedis) -> None:
    await protected.set("text", "not a number")
    for _ in range(10):
        with pytest.raises(redis.exceptions.ResponseError):
            await protected.incr("text")
    snap = protected.breaker.snapshot()
    assert snap.state is State.CLOSED
    assert (snap.totals.failures, snap.totals.ignored) == (0, 10)


async def test_a_broken_classifier_leaves_no_call_unrecorded(caplog: pytest.LogCaptureFixture) -> None:
    """An integration classifier that raises (one reading an attribute another driver's errors
    have, say) has no opinion, and says so in the log: the caller gets the dependency's error as
    ever and the call counts as the breaker's default. (Before, the caller got the classifier's
    AttributeError and the call was never recorded: a half-open probe kept its permit.)"""

    def broken(exc: BaseException | None, result: object) -> Verdict | None:
        raise AttributeError("'ConnectionError' object has no attribute 'sqlstate'")

    breaker = CircuitBreaker("redis-broken-classifier", BreakerConfig(permitted_calls_in_half_open=1))
    breaker.force_open(duration=0.05)
    await asyncio.sleep(0.06)  # half-open at the next call: one probe's permit
    client = ProtectedRedis.from_url(
        f"redis://127.0.0.1:{find_free_port()}/0",
        breaker=breaker,
        classifier=classify_with(broken),
        socket_connect_timeout=0.5,
    )
    try:
        with caplog.at_level(logging.ERROR, logger="breakerpanel"), pytest.raises(DependencyError):
            await client.get("k")  # nothing listens there: refused
    finally:
        await client.aclose()
    snapshot = breaker.snapshot()
    assert (snapshot.totals.failures, snapshot.half_open_in_flight) == (1, 0)
    assert snapshot.state is State.OPEN  # the probe failed: open again, not stuck half-open and full
    assert "raised; using the default" in caplog.text


async def test_killed_server_opens_the_breaker_and_restart_closes_it(
    redis_server: RedisServer, protected: ProtectedRedis
) -> None:
    breaker = protected.breaker
    for i in range(5):
        await protected.set(f"k{i}", i)
    redis_server.kill()

    seen: list[type[BaseException]] = []
    for _ in range(20):
        try:
            await protected.get("k1")
        except BreakerError as exc:  # the only family a caller of a protected client sees
            seen.append(type(exc))
    assert breaker.state is State.OPEN
    totals = breaker.snapshot().totals
    failures = totals.failures
    assert failures == totals.successes == 5  # it opened on the failure that made the rate 50%
    assert seen[:failures] == [DependencyError] * failures
    assert set(seen[failures:]) == {CircuitOpenError}
    assert breaker.snapshot().totals.failures_by_type == {"connection_error": failures}

    redis_server.restart()
    deadline = time.monotonic() + 10
    while breaker.state is not State.CLOSED:
        assert time.monotonic() < deadline, "the breaker did not close after Redis came back"
        try:
            await protected.get("k1")
        except CircuitOpenError:
            await asyncio.sleep(0.05)
    assert await protected.set("back", 1)


async def test_fallbacks_serve_while_redis_is_down(redis_server: RedisServer, protected: ProtectedRedis) -> None:
    chain = FallbackChain(protected.breaker, CachedResponse(MemoryCache()), Static(None))

    async def get(key: str) -> bytes | None:
        value: bytes | None = await protected.get(key)
        return value

    await protected.set("profile", "warm")
    assert await chain.acall(get, "profile") == b"warm"
    redis_server.kill()
    for _ in range(15):  # failures, then rejections: the caller gets the cached value every time
        assert await chain.acall(get, "profile") == b"warm"
    assert await chain.acall(get, "never-cached") is None
    assert protected.breaker.state is State.OPEN


async def test_redis_cache_shares_answers(redis_server: RedisServer) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        cache = RedisCache(client, prefix="t:", ttl=60)
        assert await cache.aget("answer") is MISSING
        await cache.aset("answer", {"text": "42", "sources": [1, 2]})
        assert await cache.aget("answer") == {"text": "42", "sources": [1, 2]}
        assert 0 < await client.pttl("t:answer") <= 60_000
        # An infinite ttl keeps the answer until Redis evicts it (int(inf * 1000) raised).
        await cache.aset("kept", "for ever", ttl=math.inf)
        assert await client.pttl("t:kept") == -1
        assert await cache.aget("kept") == "for ever"
    finally:
        await client.aclose()


@pytest.mark.parametrize("ttl", [float("nan"), 0, -1, True])
def test_redis_cache_refuses_a_ttl_that_is_not_positive(ttl: float) -> None:
    with pytest.raises(BreakerConfigError, match="ttl"):
        RedisCache(aioredis.Redis(), ttl=ttl)


async def test_a_watched_key_changed_by_another_client_is_no_redis_failure(
    protected: ProtectedRedis, redis_server: RedisServer
) -> None:
    # WatchError (optimistic locking at work) counted as a Redis failure and came back as a
    # DependencyError, so redis-py's transaction() never retried it.
    other = aioredis.from_url(redis_server.url)
    await protected.set("balance", 10)
    tries = 0

    async def spend(pipe: redis.asyncio.client.Pipeline) -> None:
        nonlocal tries
        tries += 1
        balance = int(await pipe.get("balance"))
        if tries == 1:
            await other.set("balance", 20)  # another client wins the race once
        pipe.multi()
        pipe.set("balance", balance - 1)

    await protected.transaction(spend, "balance")
    await other.aclose()
    assert (tries, await protected.get("balance")) == (2, b"19")
    totals = protected.breaker.snapshot().totals
    assert (totals.failures, totals.ignored) == (0, 1)


async def test_commands_of_a_watching_pipeline_go_through_the_breaker(protected: ProtectedRedis) -> None:
    # After WATCH, redis-py runs each command at once (immediate_execute_command), which went
    # around the breaker: served while it was open, and never counted.
    await protected.set("k", "v")
    before = protected.breaker.snapshot().totals.successes
    async with protected.pipeline() as pipe:
        await pipe.watch("k")
        assert await pipe.get("k") == b"v"
        pipe.multi()
        pipe.set("k", "w")
        await pipe.execute()
    assert protected.breaker.snapshot().totals.successes == before + 3  # WATCH, GET, the transaction
    protected.breaker.force_open()
    async with protected.pipeline() as pipe:
        with pytest.raises(CircuitOpenError):
            await pipe.watch("k")


async def test_an_empty_pipeline_is_no_call(redis_server: RedisServer) -> None:
    # Nothing is sent: its success could close a half-open breaker while Redis is down.
    client = ProtectedRedis.from_url(redis_server.url, breaker=CircuitBreaker("redis", WINDOW))
    async with client.pipeline() as pipe:
        assert await pipe.execute() == []
    assert client.breaker.snapshot().totals.successes == 0
    await client.aclose()


async def test_from_url_takes_the_clients_own_options(redis_server: RedisServer) -> None:
    # single_connection_client went to the pool: every command raised TypeError, counted as a
    # failure of Redis.
    client = ProtectedRedis.from_url(redis_server.url, breaker=CircuitBreaker("redis"), single_connection_client=True)
    await client.set("k", "v")
    assert await client.get("k") == b"v"
    assert client.single_connection_client
    assert client.breaker.snapshot().totals.failures == 0
    await client.aclose()


def test_a_redis_client_is_not_taken_for_a_response_cache() -> None:
    # It has get() and set(), but a miss is None, which was served as the answer.
    with pytest.raises(BreakerConfigError) as caught:
        CachedResponse(redis.Redis())  # type: ignore[arg-type]
    assert caught.value.field == "cache"
