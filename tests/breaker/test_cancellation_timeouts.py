"""Cancellation is neither success nor failure; call timeouts are failures of type ``timeout``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from breakerpanel import BreakerConfig, CallTimeoutError, CircuitBreaker, CircuitOpenError, ManualClock, State

from .support import fail

MakeBreaker = Callable[..., CircuitBreaker]


async def test_cancelled_call_counts_as_nothing(make_breaker: MakeBreaker) -> None:
    b = make_breaker(minimum_calls=1)
    task = asyncio.create_task(b.acall(asyncio.sleep, 60))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    snap = b.snapshot()
    assert snap.state is State.CLOSED
    assert (snap.calls, snap.totals.failures, snap.totals.ignored) == (0, 0, 1)


async def test_cancelled_probe_gives_its_permit_back(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker(minimum_calls=1, wait_in_open=1.0, permitted_calls_in_half_open=1)
    fail(b, clock)
    clock.advance(1.0)
    probe = asyncio.create_task(b.acall(asyncio.sleep, 60))
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpenError):
        await b.acall(asyncio.sleep, 0)  # the only permit is taken
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert b.state is State.HALF_OPEN  # the cancellation decided nothing
    assert await b.acall(asyncio.sleep, 0, "ok") == "ok"  # ... and the permit is free again
    assert b.state is State.CLOSED


def test_sync_caller_leaving_early_gives_the_permit_back(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker(minimum_calls=1, wait_in_open=1.0, permitted_calls_in_half_open=1)
    fail(b, clock)
    clock.advance(1.0)

    def stream() -> Iterator[int]:
        with b:
            yield 1
            yield 2

    chunks = stream()
    assert next(chunks) == 1
    chunks.close()  # GeneratorExit inside the `with`: the consumer stopped early
    snap = b.snapshot()
    assert (snap.state, snap.half_open_in_flight, snap.half_open_failures) == (State.HALF_OPEN, 0, 0)
    with b:
        pass
    assert b.state is State.CLOSED


def test_keyboard_interrupt_is_not_a_failure(make_breaker: MakeBreaker) -> None:
    b = make_breaker(minimum_calls=1)

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        b.call(interrupted)
    assert b.state is State.CLOSED
    assert b.snapshot().totals.ignored == 1


async def test_call_timeout_cancels_and_counts_as_timeout() -> None:
    b = CircuitBreaker("slow", BreakerConfig(call_timeout=0.02, minimum_calls=2, sliding_window_size=2))
    for _ in range(2):
        with pytest.raises(CallTimeoutError) as info:
            await b.acall(asyncio.sleep, 10)
        assert isinstance(info.value, TimeoutError)
        assert info.value.breaker_name == "slow"
        assert info.value.timeout == 0.02
    snap = b.snapshot()
    assert snap.state is State.OPEN
    assert snap.totals.failures_by_type == {"timeout": 2}


async def test_the_callees_own_timeout_error_is_not_ours() -> None:
    b = CircuitBreaker("x", BreakerConfig(call_timeout=10.0))

    async def upstream_timeout() -> None:
        raise TimeoutError("upstream said so")

    with pytest.raises(TimeoutError, match="upstream said so") as info:
        await b.acall(upstream_timeout)
    assert not isinstance(info.value, CallTimeoutError)
    assert b.snapshot().totals.failures_by_type == {"TimeoutError": 1}


async def test_call_timeout_applies_to_async_with() -> None:
    b = CircuitBreaker("x", BreakerConfig(call_timeout=0.02))
    with pytest.raises(CallTimeoutError):
        async with b:
            await asyncio.sleep(10)
    async with b:
        await asyncio.sleep(0)
    assert b.snapshot().totals.failures_by_type == {"timeout": 1}
    assert b.snapshot().totals.successes == 1


async def test_fast_calls_under_a_timeout_succeed() -> None:
    b = CircuitBreaker("x", BreakerConfig(call_timeout=5.0))
    assert await b.acall(asyncio.sleep, 0, "fine") == "fine"
    assert b.snapshot().totals.successes == 1


def test_sync_call_over_its_timeout_returns_but_counts_as_timeout(
    make_breaker: MakeBreaker, clock: ManualClock
) -> None:
    b = make_breaker(call_timeout=1.0)

    def slow() -> str:
        clock.advance(1.5)
        return "late"

    assert b.call(slow) == "late"
    with b:
        clock.advance(2.0)
    assert b.snapshot().totals.failures_by_type == {"timeout": 2}
