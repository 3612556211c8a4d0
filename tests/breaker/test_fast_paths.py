"""The fast paths (issue 18) decide, count and publish exactly what the general ones do.

Every usage of a breaker (call, decorator, ``with``) takes the lock-free path when it can: these
tests run the same calls through each and compare what the breaker records, and cover the lock-free
rejections (open, forced open, parent open), an endpoint's lock-free successes, listener gates and
the fallback chain's skipped no-op steps. No timing is asserted (``bench/overhead.py`` measures).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import re
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from breakerpanel import (
    Alternate,
    BreakerConfig,
    BreakerListener,
    BreakerRegistry,
    CallRejected,
    CircuitBreaker,
    CircuitOpenError,
    FallbackChain,
    FallbackStep,
    FallbackType,
    ManualClock,
    Outcome,
    RejectionReason,
    State,
    StateChanged,
    Static,
)

from .support import Recorder

MakeBreaker = Callable[..., CircuitBreaker]


def _usages(breaker: CircuitBreaker, clock: ManualClock, seconds: float) -> dict[str, Callable[[], object]]:
    """One call through each usage, taking ``seconds`` of the manual clock."""

    def work() -> str:
        clock.advance(seconds)
        return "ok"

    async def awork() -> str:
        clock.advance(seconds)
        return "ok"

    decorated, adecorated = breaker(work), breaker(awork)

    def with_block() -> str:
        with breaker:
            return work()

    async def async_with_block() -> str:
        async with breaker:
            return await awork()

    def permit() -> str:
        taken = breaker.acquire()
        result = work()
        taken.success()
        return result

    chain = FallbackChain(breaker)  # no steps: the caller sees what the breaker raises

    return {
        "call": lambda: breaker.call(work),
        "chain call": lambda: chain.call(work),  # the packed-arguments paths (features use them too)
        "chain acall": lambda: asyncio.run(chain.acall(awork)),
        "acquire": permit,
        "acall": lambda: asyncio.run(breaker.acall(awork)),
        "decorator": decorated,
        "async decorator": lambda: asyncio.run(adecorated()),
        "with": with_block,
        "async with": lambda: asyncio.run(async_with_block()),
    }


USAGES = ("call", "acall", "decorator", "async decorator", "with", "async with", "acquire", "chain call", "chain acall")


def _observed(breaker: CircuitBreaker) -> tuple[object, ...]:
    snap = breaker.snapshot()
    histograms = {o: (h.counts, round(h.sum, 9)) for o, h in breaker.duration_histograms().items()}
    return (snap.state, snap.calls, snap.failures, snap.slow_calls, snap.totals, histograms)


@pytest.mark.parametrize("usage", USAGES)
@pytest.mark.parametrize("seconds", [0.001, 0.7, 3.0])  # fast, straddling a one-second span, slow
def test_every_usage_records_what_call_records(usage: str, seconds: float, clock: ManualClock) -> None:
    config = BreakerConfig(
        sliding_window_type="time_based", sliding_window_size=10, minimum_calls=5, slow_call_duration=2.0
    )
    reference, under_test = (CircuitBreaker(n, config, clock=clock) for n in ("reference", "under-test"))
    for b in (reference, under_test):
        b.enable_duration_histograms()
    for _ in range(3):
        assert _usages(reference, clock, seconds)["call"]() == "ok"
        assert _usages(under_test, clock, seconds)[usage]() == "ok"
    assert _observed(under_test) == _observed(reference)


@pytest.mark.parametrize("usage", USAGES)
def test_every_usage_is_rejected_by_a_forced_open_breaker_and_says_so(
    usage: str, make_breaker: MakeBreaker, clock: ManualClock
) -> None:
    b = make_breaker()
    recorder = Recorder()
    b.add_listener(recorder)
    b.force_open()
    calls = _usages(b, clock, 0.0)
    with pytest.raises(CircuitOpenError) as caught:
        calls[usage]()
    assert (caught.value.state, caught.value.reason, caught.value.remaining) == (
        State.FORCED_OPEN,
        RejectionReason.FORCED_OPEN,
        None,
    )
    b.force_open(30)  # with an expiry: the time left
    clock.advance(10)
    with pytest.raises(CircuitOpenError) as caught:
        calls[usage]()
    assert caught.value.remaining == 20.0
    assert [(e.reason, e.state, e.remaining) for e in recorder.rejected] == [
        (RejectionReason.FORCED_OPEN, State.FORCED_OPEN, None),
        (RejectionReason.FORCED_OPEN, State.FORCED_OPEN, 20.0),
    ]
    assert b.snapshot().totals.rejected[RejectionReason.FORCED_OPEN] == 2
    clock.advance(20)  # the forced duration is over: the next call is a probe
    assert calls[usage]() == "ok"
    assert b.state is State.HALF_OPEN


@pytest.mark.parametrize("usage", USAGES)
def test_every_usage_is_rejected_by_an_open_breaker(usage: str, make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker(minimum_calls=1, wait_in_open=30)
    with pytest.raises(ZeroDivisionError):
        b.call(lambda: 1 / 0)
    clock.advance(5)
    with pytest.raises(CircuitOpenError) as caught:
        _usages(b, clock, 0.0)[usage]()
    assert (caught.value.reason, caught.value.remaining) == (RejectionReason.OPEN, 25.0)
    assert b.snapshot().totals.rejected == {
        RejectionReason.OPEN: 1,
        RejectionReason.HALF_OPEN_FULL: 0,
        RejectionReason.PARENT_OPEN: 0,
        RejectionReason.FORCED_OPEN: 0,
    }


@pytest.mark.parametrize("usage", USAGES)
@pytest.mark.parametrize("gate", ["no listener", "shut", "open", "raises"])
def test_every_usage_counts_an_open_rejection_once_and_tells_only_the_listeners_that_listen(
    usage: str, gate: str, make_breaker: MakeBreaker, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    # The call paths count an open rejection themselves when no listener's gate is open; else
    # _state_rejection counts it and asks the gates again (and logs one that raises).
    def broken_gate() -> bool:
        raise RuntimeError("gate")

    b = make_breaker(minimum_calls=1, wait_in_open=30)
    with pytest.raises(ZeroDivisionError):
        b.call(lambda: 1 / 0)
    recorder = Recorder()
    if gate != "no listener":
        recorder.listening = {"shut": lambda: False, "open": lambda: True, "raises": broken_gate}[gate]  # type: ignore[assignment]
        b.add_listener(recorder)
    clock.advance(5)
    with caplog.at_level("ERROR", logger="breakerpanel"):
        for _ in range(2):
            with pytest.raises(CircuitOpenError) as caught:
                _usages(b, clock, 0.0)[usage]()
            assert (caught.value.state, caught.value.reason, caught.value.remaining) == (
                State.OPEN,
                RejectionReason.OPEN,
                25.0,
            )
    assert b.snapshot().totals.rejected[RejectionReason.OPEN] == 2
    told = [(e.state, e.reason, e.remaining) for e in recorder.rejected]
    assert told == ([(State.OPEN, RejectionReason.OPEN, 25.0)] * 2 if gate == "open" else [])
    logged = [r for r in caplog.records if "raised in call_rejected" in r.getMessage()]
    assert len(logged) == (2 if gate == "raises" else 0)


def test_a_forced_open_endpoint_below_an_open_service_is_rejected_by_the_service(clock: ManualClock) -> None:
    # The parent answers first for every state but the child's own (lock-free) open state.
    service = CircuitBreaker("svc", BreakerConfig(wait_in_open=30), clock=clock)
    endpoint = CircuitBreaker("svc.op", parent=service)
    endpoint.force_open()
    service.force_open(30)
    with pytest.raises(CircuitOpenError) as caught:
        endpoint.call(lambda: "never")
    assert (caught.value.reason, caught.value.origin) == (RejectionReason.PARENT_OPEN, "svc")
    service.force_close()
    with pytest.raises(CircuitOpenError) as caught:
        endpoint.call(lambda: "never")
    assert caught.value.reason is RejectionReason.FORCED_OPEN
    assert endpoint.snapshot().totals.rejected[RejectionReason.PARENT_OPEN] == 1
    assert endpoint.snapshot().totals.rejected[RejectionReason.FORCED_OPEN] == 1
    assert service.snapshot().totals.rejected[RejectionReason.FORCED_OPEN] == 1


@pytest.mark.parametrize("parent_state", ["open", "forced_open"])
def test_a_parent_open_rejection_counts_in_both_and_names_the_parent(parent_state: str, clock: ManualClock) -> None:
    service = CircuitBreaker("svc", BreakerConfig(minimum_calls=1, wait_in_open=30), clock=clock)
    endpoint = CircuitBreaker("svc.op", parent=service)
    service_events, endpoint_events = Recorder(), Recorder()
    service.add_listener(service_events)
    endpoint.add_listener(endpoint_events)
    if parent_state == "open":
        with pytest.raises(ZeroDivisionError):
            endpoint.call(lambda: 1 / 0)
    else:
        service.force_open(30)
    assert service.state.value == parent_state
    clock.advance(10)
    for attempt in (lambda: endpoint.call(lambda: "never"), lambda: asyncio.run(endpoint.acall(asyncio.sleep, 0))):
        with pytest.raises(CircuitOpenError) as caught:
            attempt()
        error = caught.value
        assert (error.breaker_name, error.reason, error.origin, error.remaining) == (
            "svc.op",
            RejectionReason.PARENT_OPEN,
            "svc",
            20.0,
        )
        # A traceback shows the endpoint's rejection alone: its origin names the service.
        assert (error.__cause__, error.__context__) == (None, None)
    own_reason = RejectionReason.OPEN if parent_state == "open" else RejectionReason.FORCED_OPEN
    assert [e.reason for e in service_events.rejected] == [own_reason] * 2
    assert [e.reason for e in endpoint_events.rejected] == [RejectionReason.PARENT_OPEN] * 2
    assert service.snapshot().totals.rejected[own_reason] == 2
    assert endpoint.snapshot().totals.rejected[RejectionReason.PARENT_OPEN] == 2


def test_an_endpoints_lock_free_successes_count_in_both_windows(clock: ManualClock) -> None:
    config = BreakerConfig(minimum_calls=100, sliding_window_size=100)
    service = CircuitBreaker("svc", config, clock=clock)
    endpoint = CircuitBreaker("svc.op", config, parent=service)
    service.enable_duration_histograms()
    endpoint.enable_duration_histograms()
    assert endpoint._own_span_start < endpoint._own_span_end  # the child's own span is armed
    assert endpoint._span_start > endpoint._span_end  # its call paths still go to _record_return

    async def awork() -> str:
        clock.advance(0.002)
        return "ok"

    for _ in range(3):
        endpoint.call(lambda: clock.advance(0.002))
        asyncio.run(endpoint.acall(awork))
        with endpoint:
            clock.advance(0.002)
    for b in (service, endpoint):
        snap = b.snapshot()
        assert (snap.calls, snap.failures, snap.totals.successes) == (9, 0, 9)
        assert b.duration_histograms()[Outcome.SUCCESS].count == 9


def test_an_endpoints_success_that_brings_its_service_to_minimum_calls_trips_it(clock: ManualClock) -> None:
    # The service's window holds a failure below minimum_calls: its span is empty, so the next
    # success through any endpoint goes through the lock and the rate check.
    service = CircuitBreaker("svc", BreakerConfig(minimum_calls=2, failure_rate_threshold=0.5), clock=clock)
    failing = CircuitBreaker("svc.a", BreakerConfig(minimum_calls=100), parent=service)
    healthy = CircuitBreaker("svc.b", BreakerConfig(minimum_calls=100), parent=service)
    with pytest.raises(ZeroDivisionError):
        failing.call(lambda: 1 / 0)
    assert healthy.call(lambda: "ok") == "ok"
    assert service.state is State.OPEN
    assert healthy.state is State.CLOSED


def test_a_listener_whose_gate_is_shut_gets_no_events(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    class Gated(Recorder):
        def __init__(self) -> None:
            super().__init__()
            self.open = False
            self.listening = lambda: self.open

    b = make_breaker(minimum_calls=1, wait_in_open=30)
    gated, plain = Gated(), Recorder()
    b.add_listener(gated)
    b.add_listener(plain)
    with pytest.raises(ZeroDivisionError):
        b.call(lambda: 1 / 0)
    for _ in range(2):
        with pytest.raises(CircuitOpenError):
            b.call(lambda: "never")
    assert (gated.rejected, gated.changes, gated.recorded) == ([], [], [])
    assert (len(plain.rejected), len(plain.changes), len(plain.recorded)) == (2, 1, 1)
    gated.open = True
    with pytest.raises(CircuitOpenError):
        b.call(lambda: "never")
    assert gated.rejected == plain.rejected[-1:]  # one event, built once, for both
    assert gated.rejected[0] is plain.rejected[-1]
    assert b.snapshot().totals.rejected[RejectionReason.OPEN] == 3  # counted whoever listens


def test_listeners_that_ignore_rejections_are_not_given_them(make_breaker: MakeBreaker) -> None:
    class ChangesOnly(BreakerListener):
        def __init__(self) -> None:
            self.changes: list[StateChanged] = []

        def state_changed(self, event: StateChanged) -> None:
            self.changes.append(event)

    b = make_breaker()
    listener = ChangesOnly()
    b.add_listener(listener)
    assert b._rejection_listeners == ()
    seen: list[CallRejected] = []
    listener.call_rejected = seen.append  # type: ignore[method-assign]
    b.remove_listener(listener)
    b.add_listener(listener)  # overridden on the instance: given rejections
    b.force_open()
    with pytest.raises(CircuitOpenError):
        b.call(lambda: "never")
    assert [e.reason for e in seen] == [RejectionReason.FORCED_OPEN]
    assert len(listener.changes) == 1


def test_a_feature_whose_breakers_are_all_closed_runs_the_primary_path(clock: ManualClock) -> None:
    registry = BreakerRegistry(clock=clock)
    registry.service("svc")
    registry.endpoint("svc.op")
    feature = registry.feature("feat", required=["svc.op"], fallback=[Static("fallback")])
    assert feature.call(lambda: "primary") == "primary"
    registry["svc"].force_open()
    assert feature.call(lambda: "primary") == "fallback"
    assert registry["svc.op"].snapshot().totals.rejected[RejectionReason.PARENT_OPEN] == 1
    registry["svc"].force_close()
    registry["svc.op"].disable()  # not closed, but not rejecting: the general path, available
    assert feature.call(lambda: "primary") == "primary"


@pytest.mark.parametrize("timeout", [None, 5.0])
def test_features_chains_and_alternates_pass_arguments_on_packed(timeout: float | None, clock: ManualClock) -> None:
    config = BreakerConfig(call_timeout=timeout)
    registry = BreakerRegistry(clock=clock)
    registry.service("svc", config)
    registry.endpoint("svc.op", config)
    backup = CircuitBreaker("backup", config, clock=clock)

    def join(*args: object, **kwargs: object) -> str:
        return f"{args}{sorted(kwargs.items())}"

    async def ajoin(*args: object, **kwargs: object) -> str:
        return join(*args, **kwargs)

    def down(*args: object, **kwargs: object) -> str:
        raise ConnectionError("down")

    async def adown(*args: object, **kwargs: object) -> str:
        raise ConnectionError("down")

    feature = registry.feature("feat", required=["svc.op"], config=config)
    alternate = FallbackChain(registry["svc.op"], Alternate(join, breaker=backup))
    aalternate = FallbackChain(registry["svc.op"], Alternate(ajoin, breaker=backup))
    expected = {(): "()[]", (1,): "(1,)[]", (1, 2): "(1, 2)[('k', 3)]"}
    for args, want in expected.items():
        kwargs = {"k": 3} if len(args) == 2 else {}
        assert feature.call(join, *args, **kwargs) == want
        assert asyncio.run(feature.acall(ajoin, *args, **kwargs)) == want
        assert alternate.call(down, *args, **kwargs) == want
        assert asyncio.run(aalternate.acall(adown, *args, **kwargs)) == want
    assert feature.breaker.snapshot().totals.successes == 6
    assert registry["svc.op"].snapshot().totals.failures == 6
    assert backup.snapshot().totals.successes == 6


def test_only_steps_that_remember_are_told_of_successes(make_breaker: MakeBreaker) -> None:
    remembered: list[object] = []

    class Remembering(FallbackStep):
        type = FallbackType.STATIC
        name = "remembering"

        def remember(self, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
            remembered.append(result)

        async def aremember(self, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
            remembered.append(result)

    instance_level = Alternate(lambda: "alternate", name="alternate")
    instance_level.remember = lambda args, kwargs, result: remembered.append(("instance", result))  # type: ignore[method-assign]
    chain = FallbackChain(make_breaker(), Static("s"), Remembering(), instance_level)
    assert chain.call(lambda: 1) == 1

    async def two() -> int:
        return 2

    assert asyncio.run(chain.acall(two)) == 2
    assert remembered == [1, ("instance", 1), 2]  # the instance's aremember is still the base one
    chain.steps = (Static("s"),)  # new steps: the cache follows
    assert chain.call(lambda: 3) == 3
    assert remembered == [1, ("instance", 1), 2]


def test_decorated_functions_keep_their_metadata_and_fall_back_to_acall(
    make_breaker: MakeBreaker, clock: ManualClock
) -> None:
    b = make_breaker(call_timeout=0.05)

    async def slow(x: int, *, y: int = 0) -> int:
        """Doc."""
        await asyncio.sleep(1)
        return x + y

    def add(x: int, *, y: int = 0) -> int:
        """Sum."""
        return x + y

    decorated, sync_decorated = b(slow), b(add)
    assert (decorated.__name__, decorated.__doc__, decorated.__wrapped__) == ("slow", "Doc.", slow)  # type: ignore[attr-defined]
    assert (sync_decorated.__name__, sync_decorated.__wrapped__) == ("add", add)  # type: ignore[attr-defined]
    assert sync_decorated(1, y=2) == 3
    assert sync_decorated(4) == 4
    with pytest.raises(TimeoutError):  # the timeout goes through acall
        asyncio.run(decorated(1, y=2))
    assert b.snapshot().totals.failures_by_type == {"timeout": 1}
    with pytest.raises(TypeError, match="not callable"):
        b(42)  # type: ignore[call-overload]


def test_with_blocks_nest_across_usages_and_unwind_in_order(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker(slow_call_duration=1.0)
    with b:
        clock.advance(2)  # the outer block is slow, the inner ones are not
        with b:
            pass

        async def inner() -> None:
            async with b:
                pass

        asyncio.run(inner())  # asyncio.run copies the context: the outer entry is not popped
    totals = b.snapshot().totals
    assert (totals.successes, totals.slow_successes) == (3, 1)
    with pytest.raises(RuntimeError, match="without a matching enter"):
        b.__exit__(None, None, None)


@pytest.mark.parametrize("usage", USAGES)
def test_every_usage_is_rejected_by_a_full_half_open_breaker(
    usage: str, make_breaker: MakeBreaker, clock: ManualClock
) -> None:
    b = make_breaker(minimum_calls=1, wait_in_open=1, permitted_calls_in_half_open=1, max_wait_in_half_open=60)
    recorder = Recorder()
    b.add_listener(recorder)
    with pytest.raises(ZeroDivisionError):
        b.call(lambda: 1 / 0)
    clock.advance(1)
    probe = b.acquire()  # the one permitted probe, in flight
    calls = _usages(b, clock, 0.0)
    with pytest.raises(CircuitOpenError) as caught:
        calls[usage]()
    assert (caught.value.state, caught.value.reason, caught.value.remaining) == (
        State.HALF_OPEN,
        RejectionReason.HALF_OPEN_FULL,
        None,
    )
    assert [(e.reason, e.state) for e in recorder.rejected] == [(RejectionReason.HALF_OPEN_FULL, State.HALF_OPEN)]
    assert b.snapshot().totals.rejected[RejectionReason.HALF_OPEN_FULL] == 1
    probe.cancel()  # the permit is back: the next call is the probe
    assert calls[usage]() == "ok"
    assert b.state is State.CLOSED
    # Past max_wait_in_half_open a full half-open breaker reopens (under the lock) instead.
    with pytest.raises(ZeroDivisionError):
        b.call(lambda: 1 / 0)
    clock.advance(1)
    b.acquire()
    clock.advance(60)
    with pytest.raises(CircuitOpenError) as caught:
        calls[usage]()
    assert caught.value.reason is RejectionReason.OPEN
    assert b.state is State.OPEN


def test_a_full_half_open_endpoint_below_a_half_open_service_asks_the_service_first(clock: ManualClock) -> None:
    config = BreakerConfig(minimum_calls=1, wait_in_open=1, permitted_calls_in_half_open=1)
    service = CircuitBreaker("svc", config, clock=clock)
    endpoint = CircuitBreaker("svc.op", config, parent=service)
    with pytest.raises(ZeroDivisionError):
        endpoint.call(lambda: 1 / 0)  # opens both
    clock.advance(1)
    endpoint.acquire()  # the probe of both: both half-open and full
    assert (service.state, endpoint.state) == (State.HALF_OPEN, State.HALF_OPEN)
    with pytest.raises(CircuitOpenError) as caught:
        endpoint.call(lambda: "never")
    assert (caught.value.reason, caught.value.origin) == (RejectionReason.PARENT_OPEN, "svc")
    assert service.snapshot().totals.rejected[RejectionReason.HALF_OPEN_FULL] == 1
    assert endpoint.snapshot().totals.rejected[RejectionReason.PARENT_OPEN] == 1
    assert endpoint.snapshot().totals.rejected[RejectionReason.HALF_OPEN_FULL] == 0


@pytest.mark.parametrize("with_parent", [False, True])
def test_a_permits_success_counts_as_a_call_would(with_parent: bool, clock: ManualClock) -> None:
    config = BreakerConfig(minimum_calls=100, sliding_window_size=100, slow_call_duration=1.0)
    service = CircuitBreaker("svc", config, clock=clock)
    b = CircuitBreaker("svc.op", config, parent=service) if with_parent else service
    levels = (b, service) if with_parent else (b,)
    for level in levels:
        level.enable_duration_histograms((0.01, 0.1, 1.0))
    clock.advance(0.5)  # well inside the fast spans
    permit = b.acquire()
    clock.advance(0.05)
    permit.success(duration=0.005)  # a stream's time to first chunk: it is what is recorded
    permit = b.acquire()
    clock.advance(0.02)
    permit.success(duration=2.0)  # longer than the call took: slow, through _record
    permit = b.acquire()
    clock.advance(0.02)
    permit.success()
    for level in levels:
        snap = level.snapshot()
        assert (snap.calls, snap.slow_calls, snap.totals.successes, snap.totals.slow_successes) == (3, 1, 3, 1)
        reading = level.duration_histograms()[Outcome.SUCCESS]
        assert reading.counts == (1, 1, 0, 1)
        assert reading.sum == pytest.approx(2.025)


def test_a_task_started_in_a_block_keeps_its_blocks_apart_from_its_parents(
    make_breaker: MakeBreaker, clock: ManualClock
) -> None:
    # The child task's context starts as a copy of the parent's: its first block reuses the
    # parent's closed one, and the parent's next block goes on top of it, not into it.
    b = make_breaker(minimum_calls=100)
    recorder = Recorder()
    b.add_listener(recorder)

    async def scenario() -> None:
        child_may_enter, child_entered, child_may_exit = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def child() -> None:
            await child_may_enter.wait()
            async with b:  # at t=0
                child_entered.set()
                await child_may_exit.wait()  # leaves at t=2

        async with b:  # the parent's first block: t=0 to t=0
            task = asyncio.create_task(child())
            await asyncio.sleep(0)
        child_may_enter.set()
        await child_entered.wait()
        clock.advance(1)
        async with b:  # the parent's second block: t=1 to t=5
            clock.advance(1)
            child_may_exit.set()
            await task
            clock.advance(3)

    asyncio.run(scenario())
    assert [e.duration for e in recorder.recorded] == [0.0, 2.0, 4.0]
    with pytest.raises(RuntimeError, match="without a matching enter"):
        b.__exit__(None, None, None)


def test_the_duration_histogram_counts_only_successes_since_it_was_enabled(
    make_breaker: MakeBreaker, clock: ManualClock
) -> None:
    b = make_breaker(minimum_calls=100, slow_call_duration=1.0)
    for _ in range(3):
        b.call(lambda: clock.advance(0.0005))
    b.enable_duration_histograms((0.001, 0.01, 10.0))
    clock.advance(0.5)  # inside the fast span
    b.call(lambda: clock.advance(0.0005))  # lock-free, first bucket
    b.call(lambda: clock.advance(0.005))  # lock-free, second bucket
    b.call(lambda: clock.advance(2.0))  # slow: through the lock
    with pytest.raises(ZeroDivisionError):
        b.call(lambda: 1 / 0)
    readings = b.duration_histograms()
    assert readings[Outcome.SUCCESS].counts == (1, 1, 1, 0)
    assert readings[Outcome.SUCCESS].sum == pytest.approx(2.0055)
    assert readings[Outcome.FAILURE].counts == (1, 0, 0, 0)
    assert b.snapshot().totals.successes == 6


def test_a_gate_that_raises_is_logged_and_breaks_no_call(
    make_breaker: MakeBreaker, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_gate() -> bool:
        raise RuntimeError("gate")

    shut, raising, plain = Recorder(), Recorder(), Recorder()
    shut.listening = lambda: False  # type: ignore[assignment]
    raising.listening = broken_gate  # type: ignore[assignment]
    b = make_breaker()
    for listener in (shut, raising, plain):
        b.add_listener(listener)
    b.force_open()
    with caplog.at_level("ERROR", logger="breakerpanel"):
        for _ in range(2):
            with pytest.raises(CircuitOpenError):
                b.call(lambda: "never")
    assert (shut.rejected, raising.rejected, len(plain.rejected)) == ([], [], 2)
    assert len([r for r in caplog.records if "raised in call_rejected" in r.getMessage()]) == 2
    b.remove_listener(plain)
    b.remove_listener(shut)  # the raising gate alone: asked before, and its error logged once more
    with caplog.at_level("ERROR", logger="breakerpanel"), pytest.raises(CircuitOpenError):
        b.call(lambda: "never")
    assert len([r for r in caplog.records if "raised in call_rejected" in r.getMessage()]) == 3
    assert b.snapshot().totals.rejected[RejectionReason.FORCED_OPEN] == 3


def test_an_endpoint_admits_by_one_read_exactly_while_it_and_its_service_are_closed(clock: ManualClock) -> None:
    config = BreakerConfig(minimum_calls=1, wait_in_open=10, permitted_calls_in_half_open=1)
    service = CircuitBreaker("svc", BreakerConfig(wait_in_open=10), clock=clock)
    endpoint = CircuitBreaker("svc.op", config, parent=service)

    def one_read() -> bool:
        token = endpoint._closed_gen
        if token < 0:
            return False
        # The token a call carries: the endpoint's generation and the service's, packed.
        assert token == ((service._generation + 2) << 40) | (endpoint._generation + 2)
        return True

    assert one_read()
    for opened in (service, endpoint):
        opened.force_open()
        assert not one_read()
        with pytest.raises(CircuitOpenError):
            endpoint.call(lambda: None)
        opened.reset()  # closed again, in a new generation
        assert one_read()
        assert endpoint.call(lambda: "ok") == "ok"
    # Open by its own failure, half-open after the wait, closed by the probe.
    with pytest.raises(ZeroDivisionError):
        endpoint.call(lambda: 1 / 0)
    assert endpoint.state is State.OPEN
    assert not one_read()
    clock.advance(10)
    assert endpoint.call(lambda: "probe") == "probe"
    assert endpoint.state is State.CLOSED
    assert one_read()
    assert endpoint.snapshot().totals.successes == 3


RAISING_FRAMES = {
    "call": "call",
    "acall": "acall",
    "decorator": "sync_wrapper",
    "async decorator": "async_wrapper",
    "with": "__enter__",
    "async with": "__aenter__",
}


@pytest.mark.parametrize("usage", list(RAISING_FRAMES))
@pytest.mark.parametrize("kind", ["open", "forced open", "half-open full", "parent open"])
def test_every_usage_raises_the_rejections_the_states_decide_from_its_own_frame(
    usage: str, kind: str, clock: ManualClock
) -> None:
    # A rejection raised from a helper unwinds one frame more, and its traceback makes that frame
    # an object: about 0.3 us a rejection (bench/overhead.py's rejected/* rows).
    config = BreakerConfig(minimum_calls=1, wait_in_open=30, permitted_calls_in_half_open=1)
    service = CircuitBreaker("svc", config, clock=clock)
    b = CircuitBreaker("svc.op", config, clock=clock, parent=service) if kind == "parent open" else service
    if kind == "forced open":
        b.force_open()
    else:
        with pytest.raises(ZeroDivisionError):
            service.call(lambda: 1 / 0)
        if kind == "half-open full":
            clock.advance(30)
            b.acquire()  # the one permitted probe, in flight
    with pytest.raises(CircuitOpenError) as caught:
        _usages(b, clock, 0.0)[usage]()
    expected = {
        "open": RejectionReason.OPEN,
        "forced open": RejectionReason.FORCED_OPEN,
        "half-open full": RejectionReason.HALF_OPEN_FULL,
        "parent open": RejectionReason.PARENT_OPEN,
    }[kind]
    assert caught.value.reason is expected
    assert traceback.extract_tb(caught.value.__traceback__)[-1].name == RAISING_FRAMES[usage]


def test_a_parent_rejection_its_lock_decides_names_the_parent_alone_too(clock: ManualClock) -> None:
    # Past max_wait_in_half_open the service reopens under its lock (no state alone decides): the
    # endpoint's rejection carried the service's error as its context there, and none elsewhere.
    config = BreakerConfig(minimum_calls=1, wait_in_open=1, permitted_calls_in_half_open=1, max_wait_in_half_open=5)
    service = CircuitBreaker("svc", config, clock=clock)
    endpoint = CircuitBreaker("svc.op", parent=service)
    with pytest.raises(ZeroDivisionError):
        service.call(lambda: 1 / 0)
    clock.advance(1)
    service.acquire()  # the service's probe, in flight
    clock.advance(5)
    with pytest.raises(CircuitOpenError) as caught:
        endpoint.call(lambda: "never")
    error = caught.value
    assert (error.reason, error.origin, service.state) == (RejectionReason.PARENT_OPEN, "svc", State.OPEN)
    assert (error.__cause__, error.__context__) == (None, None)


def test_a_gate_whose_answer_is_neither_true_nor_false_breaks_no_rejection(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    # acquire() and an endpoint's parent_open rejection raised the answer's ValueError instead.
    class Ambiguous:
        def __bool__(self) -> bool:
            raise ValueError("ambiguous")

    config = BreakerConfig(minimum_calls=1, wait_in_open=30)
    service = CircuitBreaker("svc", config, clock=clock)
    endpoint = CircuitBreaker("svc.op", parent=service)
    for b in (service, endpoint):
        listener = Recorder()
        listener.listening = Ambiguous  # type: ignore[assignment]
        b.add_listener(listener)
    with pytest.raises(ZeroDivisionError):
        service.call(lambda: 1 / 0)
    attempts = (
        service.acquire,
        endpoint.acquire,
        lambda: endpoint.call(lambda: "never"),
        lambda: service.call(lambda: "never"),  # the call paths' own open rejection
        lambda: asyncio.run(service.acall(asyncio.sleep, 0)),
    )
    with caplog.at_level("ERROR", logger="breakerpanel"):
        for attempt in attempts:
            with pytest.raises(CircuitOpenError):
                attempt()
    assert service.snapshot().totals.rejected[RejectionReason.OPEN] == 5
    assert endpoint.snapshot().totals.rejected[RejectionReason.PARENT_OPEN] == 2


class _CountingLock:
    """A lock that counts how often it is taken."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.taken = 0

    def __enter__(self) -> None:
        self._lock.acquire()
        self.taken += 1

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()


def test_an_endpoint_open_past_its_wait_under_an_open_service_is_rejected_without_its_lock(
    clock: ManualClock,
) -> None:
    # The endpoint cannot go half-open while its service rejects: each of its calls took the
    # service's lock for as long as the service stayed open (all threads of all its endpoints).
    service = CircuitBreaker("svc", BreakerConfig(minimum_calls=1, wait_in_open=30), clock=clock)
    endpoint = CircuitBreaker("svc.op", BreakerConfig(minimum_calls=1, wait_in_open=1), clock=clock, parent=service)
    with pytest.raises(ZeroDivisionError):
        endpoint.call(lambda: 1 / 0)  # opens both
    clock.advance(5)
    counting = _CountingLock()
    service._lock = counting  # type: ignore[assignment]
    usages = _usages(endpoint, clock, 0.0)
    for usage in USAGES:
        with pytest.raises(CircuitOpenError) as caught:
            usages[usage]()
        assert (caught.value.reason, caught.value.origin) == (RejectionReason.PARENT_OPEN, "svc")
    assert counting.taken == 0
    assert (service.state, endpoint.state) == (State.OPEN, State.OPEN)


# ---------------------------------------------------------------------- differential: every state


class _Gated(Recorder):
    """A listener with a gate (``listening``) that answers ``answer()``."""

    def __init__(self, answer: Callable[[], object]) -> None:
        super().__init__()
        self.listening = answer


def _raises() -> object:
    raise RuntimeError("a gate that fails")


class _Logged(logging.Handler):
    """The breakers' log records from one thread, kept unformatted: a record from another thread
    (an earlier test's timer firing in another thread) is none of the twins' doing."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.records.append(record)

    def messages(self) -> list[str]:
        """The messages, without the addresses of the objects they name (a twin's differ)."""
        return [re.sub(r" at 0x[0-9a-f]+", "", r.getMessage()) for r in self.records]


_LOGGED = _Logged()


@contextlib.contextmanager
def _breakers_log_kept() -> Iterator[None]:
    """The breakers' log records kept in ``_LOGGED`` and not passed on: a failing gate is logged
    with its traceback, whose formatting (it parses source lines) would take most of the time."""
    breakers_log = logging.getLogger("breakerpanel")
    _LOGGED.thread = threading.get_ident()
    breakers_log.addHandler(_LOGGED)
    breakers_log.propagate = False
    try:
        yield
    finally:
        breakers_log.propagate = True
        breakers_log.removeHandler(_LOGGED)


# The listeners a breaker of the twins may have. "shared shut gate" is one listener attached to
# each breaker that asks for it, as the exporter's one gate is: the paths ask it once.
_LISTENERS: dict[str, Callable[[], Recorder] | None] = {
    "none": None,
    "recorder": Recorder,
    "shut gate": lambda: _Gated(lambda: False),
    "open gate": lambda: _Gated(lambda: True),
    "failing gate": lambda: _Gated(_raises),
    "shared shut gate": lambda: _Gated(lambda: False),
}


# What is done to both twins, in lockstep, before the call compared: through acquire(), the
# general path, so that the set-up never leans on the call paths under test.
_STEPS = st.one_of(
    st.tuples(st.sampled_from(["fail", "succeed", "take a permit"]), st.sampled_from(["service", "endpoint"])),
    st.tuples(st.just("advance"), st.sampled_from([0.5, 5.0, 10.0, 31.0])),
    st.tuples(
        st.sampled_from(["force open", "force open for 20 s", "force close", "reset", "disable", "metrics only"]),
        st.sampled_from(["service", "endpoint"]),
    ),
)


# A state to start each breaker in, as steps (the endpoint's taken first; "advance 21 s" goes past
# the service's max wait in half-open; the clock is shared, so a later step moves it for both).
_FULL = ["fail", "fail", "past the wait", "take a permit", "take a permit"]
_START_IN = {
    "closed": [],
    "open": ["fail", "fail"],
    "open past its wait": ["fail", "fail", "past the wait"],
    "forced open": ["force open"],
    "forced open for 20 s": ["force open for 20 s"],
    "forced open for 20 s, at its end": ["force open for 20 s", "advance 20 s"],
    "half-open with a permit free": ["fail", "fail", "past the wait", "take a permit"],
    "half-open and full": _FULL,
    "half-open, full, past its max wait": [*_FULL, "advance 21 s"],
    "disabled": ["disable"],
    "metrics only": ["metrics only"],
}


def _twin(clock: ManualClock, hierarchy: bool) -> tuple[CircuitBreaker, CircuitBreaker]:
    """A service and the breaker under test (an endpoint of it, or the service itself)."""
    # The endpoint's failures count in the service's window too: the service trips on its own
    # steps (minimum_calls=4 counts the endpoint's two and its own two).
    service = CircuitBreaker(
        "svc",
        BreakerConfig(
            minimum_calls=4 if hierarchy else 2,
            wait_in_open=10,
            permitted_calls_in_half_open=2,
            max_wait_in_half_open=20,
        ),
        clock=clock,
    )
    if not hierarchy:
        return service, service
    endpoint_config = BreakerConfig(
        minimum_calls=2, wait_in_open=30, permitted_calls_in_half_open=1, max_wait_in_half_open=None
    )
    return service, CircuitBreaker("svc.op", endpoint_config, clock=clock, parent=service)


def _apply(step: tuple[Any, Any], service: CircuitBreaker, endpoint: CircuitBreaker, held: list[Any]) -> None:
    action, target = step
    b = service if target == "service" else endpoint
    if action in ("fail", "succeed", "take a permit"):
        try:
            permit = b.acquire()
        except CircuitOpenError:
            return
        if action == "fail":
            permit.failure()
        elif action == "succeed":
            permit.success()
        else:
            held.append(permit)  # in flight until the test ends
    elif action == "force open":
        b.force_open()
    elif action == "force open for 20 s":
        b.force_open(20)
    elif action == "force close":
        b.force_close()
    elif action == "reset":
        b.reset()
    elif action == "disable":
        b.disable()
    elif action == "metrics only":
        b.metrics_only()


def _seen(b: CircuitBreaker, recorder: Recorder | None) -> tuple[object, ...]:
    events: tuple[object, ...] = ()
    if recorder is not None:
        events = (
            [(e.reason, e.state, e.remaining) for e in recorder.rejected],
            [(e.previous, e.state, e.reason) for e in recorder.changes],
        )
    snap = b.snapshot()
    return (snap.state, snap.totals, snap.half_open_in_flight, events)


_DIFFERENTIAL_USAGES = ["call", "acall", "decorator", "async decorator", "with", "async with"]


async def _through(usage: str, b: CircuitBreaker) -> object:
    """One call through ``usage`` (in the running loop: no loop a call)."""

    def work() -> str:
        return "ok"

    async def awork() -> str:
        return "ok"

    if usage == "call":
        return b.call(work)
    if usage == "acall":
        return await b.acall(awork)
    if usage == "decorator":
        return b(work)()
    if usage == "async decorator":
        return await b(awork)()
    if usage == "with":
        with b:
            return work()
    async with b:
        return await awork()


def test_every_usage_decides_a_call_as_the_general_path_does_in_every_state() -> None:
    # The call paths decide the rejections that need no lock themselves (open, forced open,
    # half-open and full, a parent open by itself), each inlined; acquire() asks the one helper
    # (_rejection_by_state) and the lock. Every start state of a breaker alone and of an endpoint
    # under its service, through every usage, with every kind of listener on a breaker alone,
    # and on an endpoint and its service the same kind, or one of them none.
    kinds = list(_LISTENERS)
    pairs = [(k, k) for k in kinds] + [(k, "none") for k in kinds[1:]] + [("none", k) for k in kinds[1:]]

    async def compare_all() -> int:
        compared = 0
        for usage, service_starts in itertools.product(_DIFFERENTIAL_USAGES, _START_IN):
            for kind in kinds:
                await _compare_with_the_general_path(
                    _Case(False, service_starts, "closed", usage, endpoint_listener=kind)
                )
                compared += 1
            for endpoint_starts, (service_listener, endpoint_listener) in itertools.product(_START_IN, pairs):
                await _compare_with_the_general_path(
                    _Case(True, service_starts, endpoint_starts, usage, service_listener, endpoint_listener)
                )
                compared += 1
        return compared

    with _breakers_log_kept():
        assert asyncio.run(compare_all()) == 6 * 11 * (6 + 11 * 16)


@dataclasses.dataclass(frozen=True)
class _Case:
    """What a differential case starts from: the twins' start states and listeners, the steps
    taken after, and the usage compared with acquire()."""

    hierarchy: bool
    service_starts: str
    endpoint_starts: str
    usage: str
    service_listener: str = "none"
    endpoint_listener: str = "none"
    steps: tuple[tuple[Any, Any], ...] = ()


@settings(max_examples=200, deadline=None)
@given(
    st.builds(
        _Case,
        hierarchy=st.booleans(),
        service_starts=st.sampled_from(sorted(_START_IN)),
        endpoint_starts=st.sampled_from(sorted(_START_IN)),
        usage=st.sampled_from(_DIFFERENTIAL_USAGES),
        service_listener=st.sampled_from(sorted(_LISTENERS)),
        endpoint_listener=st.sampled_from(sorted(_LISTENERS)),
        steps=st.lists(_STEPS, max_size=4).map(tuple),
    )
)
def test_every_usage_decides_a_call_as_the_general_path_does_after_any_steps(case: _Case) -> None:
    with _breakers_log_kept():
        asyncio.run(_compare_with_the_general_path(case))


async def _compare_with_the_general_path(case: _Case) -> None:
    """Two twins, the same steps; then a call through ``usage`` on one and through acquire()
    on the other: the same answer, the same counts, the same events."""
    hierarchy = case.hierarchy
    starts = [(action, "endpoint") for action in _START_IN[case.endpoint_starts]] if hierarchy else []
    starts += [(action, "service") for action in _START_IN[case.service_starts]]
    clock = ManualClock()
    twins = [_twin(clock, hierarchy) for _ in range(2)]

    shared: dict[int, Recorder] = {}  # a twin's one shared listener

    def attach(b: CircuitBreaker, kind: str, twin: int) -> Recorder | None:
        factory = _LISTENERS[kind]
        if factory is None:
            return None
        listener = shared.setdefault(twin, factory()) if kind == "shared shut gate" else factory()
        b.add_listener(listener)
        return listener

    recorders = [
        (attach(service, case.service_listener, i) if hierarchy else None, attach(endpoint, case.endpoint_listener, i))
        for i, (service, endpoint) in enumerate(twins)
    ]
    held: list[Any] = []
    for action, arg in [*starts, *case.steps]:
        # The clock moves once (the twins share it).
        if action == "advance":
            clock.advance(arg)
        elif action.startswith("advance "):
            clock.advance(float(action.split()[1]))
        elif action == "past the wait":
            clock.advance(31 if arg == "endpoint" else 11)  # the waits in open (_twin) and a second
        else:
            for service, endpoint in twins:
                _apply((action, arg), service, endpoint, held)

    # Each call's answer, and what it logged (a failing gate, once per listener asked).
    _LOGGED.records.clear()
    try:
        under_test: object = await _through(case.usage, twins[0][1])
    except CircuitOpenError as error:
        under_test = (error.args, error.origin)
    under_test_logged = _LOGGED.messages()
    _LOGGED.records.clear()
    try:
        permit = twins[1][1].acquire()
    except CircuitOpenError as error:
        reference: object = (error.args, error.origin)
    else:
        permit.success()
        reference = "ok"
    assert (under_test, under_test_logged) == (reference, _LOGGED.messages())
    for b, twin, recorder, twin_recorder in (
        (twins[0][0], twins[1][0], recorders[0][0], recorders[1][0]),
        (twins[0][1], twins[1][1], recorders[0][1], recorders[1][1]),
    ):
        assert _seen(b, recorder) == _seen(twin, twin_recorder)


def test_an_endpoint_on_its_own_clock_is_rejected_by_its_services_deadline_on_the_services_clock() -> None:
    # The call paths measured the service's deadline on the endpoint's clock: 110 s left instead
    # of 10, and still rejecting once the service's wait was over.
    service_clock, endpoint_clock = ManualClock(100.0), ManualClock(0.0)
    service = CircuitBreaker("svc", BreakerConfig(minimum_calls=1, wait_in_open=10), clock=service_clock)
    endpoint = CircuitBreaker("svc.op", BreakerConfig(minimum_calls=1), clock=endpoint_clock, parent=service)
    service.acquire().failure()  # open until 110 on the service's clock
    service_clock.advance(5)
    for usage in _DIFFERENTIAL_USAGES:
        with pytest.raises(CircuitOpenError) as caught:
            asyncio.run(_through(usage, endpoint))
        assert (caught.value.reason, caught.value.remaining) == (RejectionReason.PARENT_OPEN, 5.0), usage
    service_clock.advance(6)
    assert asyncio.run(_through("call", endpoint)) == "ok"  # a probe of the service's
    assert service.state is State.HALF_OPEN


def test_a_half_open_breaker_at_its_max_wait_is_judged_alike_by_every_path() -> None:
    # now - since >= max_wait and now < since + max_wait disagree at 24.099999999999998 with
    # since 4.1 and a max wait of 20 (one ulp): the call paths rejected as full while acquire()
    # reopened the breaker. One test decides now.
    def half_open_full(*advances: float) -> CircuitBreaker:
        clock = ManualClock(3.1)
        config = BreakerConfig(
            minimum_calls=1, wait_in_open=1, permitted_calls_in_half_open=1, max_wait_in_half_open=20
        )
        b = CircuitBreaker("b", config, clock=clock)
        b.acquire().failure()
        clock.advance(1.0)
        b.acquire()  # the probe, in flight: half-open since 4.1
        for seconds in advances:
            clock.advance(seconds)
        return b

    def answer(attempt: Callable[[], object], b: CircuitBreaker) -> object:
        try:
            attempt()
        except CircuitOpenError as error:
            return (error.reason, b.state)
        return "ok"

    for advances in ((19.99, 0.01), (19.99,), (20.0,)):
        for usage in _DIFFERENTIAL_USAGES:
            b, twin = half_open_full(*advances), half_open_full(*advances)
            ours = answer(lambda b=b, usage=usage: asyncio.run(_through(usage, b)), b)  # type: ignore[misc]
            assert ours == answer(twin.acquire, twin), (advances, usage)
        # 24.099999999999998 is short of since + max_wait (24.1): not yet expired, as at 24.09.
        expired = advances == (20.0,)
        assert ours == (
            (RejectionReason.OPEN, State.OPEN) if expired else (RejectionReason.HALF_OPEN_FULL, State.HALF_OPEN)
        )


class _ScrapedAroundEachIncrement(list[int]):
    """A histogram's bucket counts that let ``read`` take a reading just before and just after
    each increment: where a scrape from another thread can land, since the hot paths count
    without the lock a reading takes. A path that holds the lock (a scrape would wait for it)
    is not read in the middle of."""

    def __init__(self, counts: list[int], read: Callable[[], None], lock: Any) -> None:
        super().__init__(counts)
        self._read, self._lock = read, lock

    def _maybe_read(self) -> None:
        if self._lock.acquire(blocking=False):
            self._lock.release()
            self._read()

    def __getitem__(self, index: Any) -> Any:
        self._maybe_read()
        return super().__getitem__(index)

    def __setitem__(self, index: Any, value: Any) -> None:
        super().__setitem__(index, value)
        self._maybe_read()


def _cumulative(counts: tuple[int, ...]) -> list[int]:
    return list(itertools.accumulate(counts))


@pytest.mark.parametrize("usage", [*USAGES, "endpoint"])
def test_no_bucket_goes_down_between_readings_taken_in_the_middle_of_a_hot_paths_counting(
    usage: str, clock: ManualClock
) -> None:
    """The exporter reports cumulative buckets; a bucket that goes down reads as a reset to
    Prometheus (a rate spike) and as a restart to the delta exporter (the whole history sent
    again). The first bucket is derived from the successes the hot paths count: a reading between
    a hot path's two counts once found it one over, and the next reading one lower."""
    config = BreakerConfig(sliding_window_type="time_based", sliding_window_size=60, minimum_calls=1000)
    service = CircuitBreaker("svc", config, clock=clock)
    breaker = CircuitBreaker("svc.op", config, clock=clock, parent=service) if usage == "endpoint" else service
    watched = {service, breaker}
    readings: dict[CircuitBreaker, list[list[int]]] = {b: [] for b in watched}

    def read() -> None:
        for b in watched:
            readings[b].append(_cumulative(b.duration_histograms()[Outcome.SUCCESS].counts))

    for b in watched:
        b.enable_duration_histograms((0.01, 0.1, 1.0))
        histogram = b._ok_durations
        assert histogram is not None
        histogram.counts = _ScrapedAroundEachIncrement(histogram.counts, read, b._lock)
    calls = _usages(breaker, clock, 0.001)
    slow_calls = _usages(breaker, clock, 0.05)
    for run in (calls, calls, slow_calls, calls, slow_calls):
        assert run["call" if usage == "endpoint" else usage]() == "ok"
        read()
    for b in watched:
        # Three fast calls, two in the second bucket, exactly: a reading that stays at the
        # highest earlier one would keep an overcount until a fast call made it true.
        assert readings[b][-1] == [3, 5, 5, 5]
        assert len(readings[b]) > 5  # readings were taken in the middle of the counting
        for earlier, later in itertools.pairwise(readings[b]):
            assert all(x <= y for x, y in zip(earlier, later, strict=True)), (b.name, earlier, later)
