"""What listeners and callers are told: every rejection path's event and exception, every recorded
call's fields, ``async with`` accounting, and which field a construction error names."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator

import pytest

from breakerpanel import (
    BreakerConfig,
    BreakerConfigError,
    BreakerListener,
    CallTimeoutError,
    CircuitBreaker,
    CircuitOpenError,
    ExponentialBackoff,
    FallbackType,
    FallbackUsed,
    ManualClock,
    Outcome,
    RejectionReason,
    State,
    StateChanged,
    TransitionReason,
    Verdict,
    VerdictKind,
    classify_with,
    failure,
    ignore_exceptions,
)
from breakerpanel._breaker import MAX_ERROR_TYPES, OTHER_ERROR_TYPE

from .support import Boom, Recorder, fail, succeed

MakeBreaker = Callable[..., CircuitBreaker]


def listened(breaker: CircuitBreaker) -> Recorder:
    recorder = Recorder()
    breaker.add_listener(recorder)
    return recorder


def rejection(breaker: CircuitBreaker) -> CircuitOpenError:
    with pytest.raises(CircuitOpenError) as caught:
        breaker.call(lambda: "never")
    return caught.value


def arejection(breaker: CircuitBreaker) -> CircuitOpenError:
    async def attempt() -> None:
        await breaker.acall(asyncio.sleep, 0)

    with pytest.raises(CircuitOpenError) as caught:
        asyncio.run(attempt())
    return caught.value


def one_probe_breaker(make_breaker: MakeBreaker, *, automatic: bool) -> CircuitBreaker:
    """Opens on one failure for 5 s, then lets one probe through, and reopens after 3 s half-open."""
    return make_breaker(
        minimum_calls=1,
        sliding_window_size=1,
        wait_in_open=5.0,
        permitted_calls_in_half_open=1,
        max_wait_in_half_open=3.0,
        automatic_transition_to_half_open=automatic,
    )


# ---------------------------------------------------------------------- rejections


@pytest.mark.parametrize("reject", [rejection, arejection], ids=["call", "acall"])
def test_an_open_rejection_under_a_second_tells_the_time_left(
    make_breaker: MakeBreaker, clock: ManualClock, reject: Callable[[CircuitBreaker], CircuitOpenError]
) -> None:
    b = make_breaker(minimum_calls=1, sliding_window_size=1, wait_in_open=0.5)
    fail(b, clock)
    recorder = listened(b)
    clock.advance(0.2)
    error = reject(b)
    assert (error.reason, error.state) == (RejectionReason.OPEN, State.OPEN)
    assert error.remaining == pytest.approx(0.3)
    [event] = recorder.rejected
    assert (event.breaker, event.reason, event.state) == (b, RejectionReason.OPEN, State.OPEN)
    assert event.remaining == pytest.approx(0.3)
    assert b.snapshot().totals.rejected[RejectionReason.OPEN] == 1


def test_forced_open_rejections_say_so_with_and_without_an_expiry(
    make_breaker: MakeBreaker, clock: ManualClock
) -> None:
    b = make_breaker()
    recorder = listened(b)
    b.force_open()
    error = rejection(b)
    assert (error.reason, error.state, error.remaining) == (RejectionReason.FORCED_OPEN, State.FORCED_OPEN, None)
    b.force_open(30)
    clock.advance(10)
    error = arejection(b)
    assert (error.reason, error.remaining) == (RejectionReason.FORCED_OPEN, 20.0)
    assert [(e.breaker, e.reason, e.state, e.remaining) for e in recorder.rejected] == [
        (b, RejectionReason.FORCED_OPEN, State.FORCED_OPEN, None),
        (b, RejectionReason.FORCED_OPEN, State.FORCED_OPEN, 20.0),
    ]
    assert b.snapshot().totals.rejected[RejectionReason.FORCED_OPEN] == 2


def test_a_full_half_open_breaker_rejects_without_a_time(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker(minimum_calls=1, sliding_window_size=1, wait_in_open=5.0, permitted_calls_in_half_open=1)
    fail(b, clock)
    clock.advance(5)
    permit = b.acquire()  # the one probe, in flight
    recorder = listened(b)
    error = rejection(b)
    assert (error.reason, error.state, error.remaining) == (RejectionReason.HALF_OPEN_FULL, State.HALF_OPEN, None)
    assert [(e.reason, e.state, e.remaining) for e in recorder.rejected] == [
        (RejectionReason.HALF_OPEN_FULL, State.HALF_OPEN, None)
    ]
    permit.success()
    assert b.state is State.CLOSED


def test_a_half_open_breaker_past_its_max_wait_reopens_on_the_next_call(
    make_breaker: MakeBreaker, clock: ManualClock
) -> None:
    b = one_probe_breaker(make_breaker, automatic=False)  # no timers: the next call decides
    fail(b, clock)
    clock.advance(5)
    permit = b.acquire()  # half-open now; its probe never finishes
    recorder = listened(b)
    clock.advance(3)
    error = rejection(b)
    assert (error.reason, error.state, error.remaining) == (RejectionReason.OPEN, State.OPEN, 5.0)
    assert [(c.previous, c.state, c.reason) for c in recorder.changes] == [
        (State.HALF_OPEN, State.OPEN, TransitionReason.HALF_OPEN_TIMEOUT)
    ]
    assert [(e.reason, e.state, e.remaining) for e in recorder.rejected] == [(RejectionReason.OPEN, State.OPEN, 5.0)]
    permit.success()  # too late: another generation
    assert b.state is State.OPEN


def test_an_endpoint_rejected_by_its_service_reports_parent_open(clock: ManualClock) -> None:
    service = CircuitBreaker("openai", BreakerConfig(wait_in_open=30.0), clock=clock)
    chat = CircuitBreaker("openai.chat", parent=service)
    recorder = listened(chat)
    service.force_open(30)
    clock.advance(5)
    for reject in (rejection, arejection):
        error = reject(chat)
        assert (error.breaker_name, error.state, error.reason) == (
            "openai.chat",
            State.CLOSED,
            RejectionReason.PARENT_OPEN,
        )
        assert (error.origin, error.remaining) == ("openai", 25.0)
    assert [(e.breaker, e.reason, e.state, e.remaining) for e in recorder.rejected] == [
        (chat, RejectionReason.PARENT_OPEN, State.CLOSED, 25.0)
    ] * 2
    assert chat.snapshot().totals.rejected[RejectionReason.PARENT_OPEN] == 2


def test_an_open_endpoint_rejects_through_the_locked_path(clock: ManualClock) -> None:
    # A breaker with a parent never takes the lock-free path: its own open state rejects there.
    service = CircuitBreaker("openai", clock=clock)
    chat = CircuitBreaker("openai.chat", BreakerConfig(wait_in_open=0.5), parent=service)
    chat.force_open(0.5)
    recorder = listened(chat)
    clock.advance(0.25)
    error = rejection(chat)
    assert (error.reason, error.remaining) == (RejectionReason.FORCED_OPEN, 0.25)
    assert [(e.reason, e.remaining) for e in recorder.rejected] == [(RejectionReason.FORCED_OPEN, 0.25)]


# ---------------------------------------------------------------------- recorded calls


def test_recorded_calls_carry_their_type_duration_slowness_and_whether_they_counted(
    make_breaker: MakeBreaker, clock: ManualClock
) -> None:
    def verdict(exc: BaseException | None, result: object) -> Verdict | None:
        if exc is None:
            return None  # the default: a success
        if isinstance(exc, KeyError):
            return Verdict(VerdictKind.RATE_LIMITED)  # no Retry-After, no type
        if isinstance(exc, LookupError):
            return Verdict(VerdictKind.FAILURE)  # no type either
        return failure("boom")

    b = make_breaker(
        minimum_calls=100, sliding_window_size=100, slow_call_duration=1.0, classifier=classify_with(verdict)
    )
    recorder = listened(b)
    succeed(b, clock, duration=2.0)
    fail(b, clock, duration=0.5)
    fail(b, clock, exc=KeyError("slow down"))
    fail(b, clock, exc=IndexError("no type"))
    got = [(e.outcome, e.error_type, e.duration, e.slow, e.counted) for e in recorder.recorded]
    assert got == [
        (Outcome.SUCCESS, None, 2.0, True, True),
        (Outcome.FAILURE, "boom", 0.5, False, True),
        (Outcome.FAILURE, "rate_limited", 0.0, False, True),
        (Outcome.FAILURE, None, 0.0, False, True),  # untyped: counted under "failure" below
    ]
    totals = b.snapshot().totals
    assert totals.failures_by_type == {"boom": 1, "rate_limited": 1, "failure": 1}
    assert (totals.successes, totals.failures, totals.slow_successes) == (1, 3, 1)


def test_a_result_from_an_earlier_generation_is_recorded_but_not_counted(
    make_breaker: MakeBreaker, clock: ManualClock
) -> None:
    b = make_breaker(minimum_calls=100, sliding_window_size=100)
    permit = b.acquire()
    b.force_open()
    b.reset()
    recorder = listened(b)
    permit.failure("boom")
    [event] = recorder.recorded
    assert (event.outcome, event.counted) == (Outcome.FAILURE, False)
    assert b.snapshot().failures == 0


# ---------------------------------------------------------------------- async with


def test_async_with_counts_successes_failures_and_timeouts(clock: ManualClock) -> None:
    b = CircuitBreaker("dep", BreakerConfig(minimum_calls=100, sliding_window_size=100, call_timeout=0.05), clock=clock)
    recorder = listened(b)

    async def scenario() -> None:
        async with b:
            clock.advance(0.01)
        with pytest.raises(Boom):
            async with b:
                raise Boom
        with pytest.raises(CallTimeoutError) as caught:
            async with b:
                await asyncio.sleep(1)
        assert (caught.value.breaker_name, caught.value.timeout) == ("dep", 0.05)

    asyncio.run(scenario())
    got = [(e.outcome, e.error_type, e.counted) for e in recorder.recorded]
    assert got == [
        (Outcome.SUCCESS, None, True),
        (Outcome.FAILURE, f"{Boom.__module__}.{Boom.__qualname__}", True),
        (Outcome.FAILURE, "timeout", True),
    ]
    assert recorder.recorded[0].duration == pytest.approx(0.01)
    snap = b.snapshot()
    assert (snap.calls, snap.failures) == (3, 2)


def test_async_with_passes_unrelated_errors_through_the_timeout(clock: ManualClock) -> None:
    b = CircuitBreaker("dep", BreakerConfig(call_timeout=5.0), clock=clock)

    async def scenario() -> None:
        with pytest.raises(Boom) as caught:
            async with b:
                raise Boom("kept")
        assert str(caught.value) == "kept"

    asyncio.run(scenario())
    assert b.snapshot().totals.failures == 1


# ---------------------------------------------------------------------- construction errors


class Other:
    pass


@pytest.mark.parametrize(
    ("build", "field", "reason"),
    [
        (lambda: CircuitBreaker(""), "name", "must be a non-empty string (got '')"),
        (lambda: CircuitBreaker("x", Other()), "config", "expected a BreakerConfig (got Other)"),  # type: ignore[arg-type]
        (lambda: CircuitBreaker("x", parent=Other()), "parent", "expected a CircuitBreaker (got Other)"),  # type: ignore[arg-type]
        (
            lambda: CircuitBreaker("a.b.c", parent=CircuitBreaker("a.b", parent=CircuitBreaker("a"))),
            "parent",
            "'a.b' already has a parent; nest at most two levels",
        ),
        (lambda: CircuitBreaker("x", level="planet"), "level", "expected service, endpoint or feature (got 'planet')"),
    ],
)
def test_construction_errors_name_the_field_and_the_reason(
    build: Callable[[], object], field: str, reason: str
) -> None:
    with pytest.raises(BreakerConfigError) as caught:
        build()
    assert (caught.value.field, caught.value.reason) == (field, reason)


def test_an_endpoint_without_a_clock_uses_its_services(clock: ManualClock) -> None:
    service = CircuitBreaker("openai", BreakerConfig(wait_in_open=10.0), clock=clock)
    chat = CircuitBreaker("openai.chat", BreakerConfig(wait_in_open=10.0), parent=service)
    assert chat.clock is clock
    chat.force_open(10)
    clock.advance(4)
    assert rejection(chat).remaining == 6.0


# ---------------------------------------------------------------------- permits


def test_permits_record_what_they_are_told_with_the_duration_given(
    make_breaker: MakeBreaker, clock: ManualClock
) -> None:
    def classify(exc: BaseException | None, result: object) -> Verdict | None:
        if exc is None and result == "empty":
            return failure("empty_answer")
        return None

    b = make_breaker(
        minimum_calls=100, sliding_window_size=100, slow_call_duration=1.0, classifier=classify_with(classify)
    )
    recorder = listened(b)
    b.acquire().failure()
    b.acquire().failure("auth", duration=2.0)
    b.acquire().exception(Boom(), duration=3.0)
    b.acquire().result("empty", duration=0.5)
    b.acquire().result("fine", duration=4.0)
    permit = b.acquire()
    clock.advance(0.25)
    permit.success()
    permit.failure()  # a second outcome is ignored
    got = [(e.outcome, e.error_type, e.duration, e.slow) for e in recorder.recorded]
    assert got == [
        (Outcome.FAILURE, "failure", 0.0, False),
        (Outcome.FAILURE, "auth", 2.0, True),
        (Outcome.FAILURE, f"{Boom.__module__}.{Boom.__qualname__}", 3.0, True),
        (Outcome.FAILURE, "empty_answer", 0.5, False),
        (Outcome.SUCCESS, None, 4.0, True),
        (Outcome.SUCCESS, None, 0.25, False),
    ]
    assert permit.done


def test_a_permit_of_an_endpoint_counts_in_its_service_too(clock: ManualClock) -> None:
    service = CircuitBreaker("openai", BreakerConfig(minimum_calls=100, sliding_window_size=100), clock=clock)
    chat = CircuitBreaker("openai.chat", BreakerConfig(minimum_calls=100, sliding_window_size=100), parent=service)
    chat.acquire().failure("http_503")
    chat.acquire().cancel()  # neither: gives its permits back in both
    assert (service.snapshot().failures, chat.snapshot().failures) == (1, 1)
    assert service.snapshot().totals.failures_by_type == {"http_503": 1}


def test_a_cancelled_probe_gives_its_permit_back_in_service_and_endpoint(clock: ManualClock) -> None:
    options = {"minimum_calls": 1, "sliding_window_size": 1, "wait_in_open": 5.0, "permitted_calls_in_half_open": 1}
    service = CircuitBreaker("openai", BreakerConfig(**options), clock=clock)  # type: ignore[arg-type]
    chat = CircuitBreaker("openai.chat", BreakerConfig(**options), parent=service)  # type: ignore[arg-type]
    fail(chat, clock)
    assert (service.state, chat.state) == (State.OPEN, State.OPEN)
    clock.advance(5)
    chat.acquire().cancel()  # the probe of both, given back
    permit = chat.acquire()  # so a second one is admitted
    assert (service.snapshot().half_open_in_flight, chat.snapshot().half_open_in_flight) == (1, 1)
    permit.success()
    assert (service.state, chat.state) == (State.CLOSED, State.CLOSED)


# ---------------------------------------------------------------------- timers and state events


def test_timers_move_an_open_breaker_to_half_open_and_a_stuck_one_back_to_open(
    make_breaker: MakeBreaker, clock: ManualClock
) -> None:
    b = one_probe_breaker(make_breaker, automatic=True)
    recorder = listened(b)
    fail(b, clock)  # at 1000
    clock.advance(5)  # the open timer: half-open at 1005
    clock.advance(3)  # the half-open timer: open again at 1008, no probe came
    got = [(c.breaker, c.previous, c.state, c.reason, c.at, c.open_for) for c in recorder.changes]
    assert got == [
        (b, State.CLOSED, State.OPEN, TransitionReason.FAILURE_RATE, 1000.0, 5.0),
        (b, State.OPEN, State.HALF_OPEN, TransitionReason.WAIT_ELAPSED, 1005.0, None),
        (b, State.HALF_OPEN, State.OPEN, TransitionReason.HALF_OPEN_TIMEOUT, 1008.0, 5.0),
    ]
    b.reset()  # the pending open timer belongs to a past generation: it must not fire
    clock.advance(10)
    assert b.state is State.CLOSED
    assert len(recorder.changes) == 4


def test_open_rejections_are_counted_one_by_one(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker(minimum_calls=1, sliding_window_size=1, wait_in_open=5.0)
    fail(b, clock)
    for _ in range(3):
        rejection(b)
    with pytest.raises(CircuitOpenError) as caught:
        b.acquire()
    assert caught.value.remaining == 5.0
    b.force_open()
    rejection(b)
    assert b.snapshot().totals.rejected == {
        RejectionReason.OPEN: 4,
        RejectionReason.HALF_OPEN_FULL: 0,
        RejectionReason.PARENT_OPEN: 0,
        RejectionReason.FORCED_OPEN: 1,
    }


def test_an_open_endpoint_counts_its_locked_rejections(clock: ManualClock) -> None:
    service = CircuitBreaker("openai", clock=clock)
    chat = CircuitBreaker("openai.chat", BreakerConfig(minimum_calls=1, sliding_window_size=1), parent=service)
    fail(chat, clock)
    for _ in range(2):
        rejection(chat)
    assert chat.snapshot().totals.rejected[RejectionReason.OPEN] == 2


def test_is_rejecting_until_the_open_wait_ends(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker(minimum_calls=1, sliding_window_size=1, wait_in_open=5.0, automatic_transition_to_half_open=False)
    fail(b, clock)
    clock.advance(4.999)
    assert b.is_rejecting()
    clock.advance(0.001)
    assert not b.is_rejecting()  # the next call is the probe


# ---------------------------------------------------------------------- error types, fallbacks, listeners


def test_error_types_are_bounded_and_the_rest_counted_as_other(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker(minimum_calls=10_000, sliding_window_size=10_000)
    for i in range(MAX_ERROR_TYPES):
        b.acquire().failure(f"type_{i}")
    b.acquire().failure("type_0")  # a known type still counts under its name
    b.acquire().failure("one_too_many")
    b.acquire().failure("another")
    by_type = b.snapshot().totals.failures_by_type
    assert len(by_type) == MAX_ERROR_TYPES + 1
    assert (by_type["type_0"], by_type[OTHER_ERROR_TYPE]) == (2, 2)


def test_fallbacks_are_declared_counted_and_reported(make_breaker: MakeBreaker) -> None:
    b = make_breaker()
    events: list[FallbackUsed] = []

    class Fallbacks(BreakerListener):
        def fallback_used(self, event: FallbackUsed) -> None:
            events.append(event)

    b.add_listener(Fallbacks())
    b.declare_fallbacks(FallbackType.CACHE)
    b.declare_fallbacks(FallbackType.STATIC)
    assert b.fallback_types == {FallbackType.CACHE, FallbackType.STATIC}
    error = Boom()
    b.record_fallback(FallbackType.ALTERNATE, succeeded=True, step="anthropic")
    b.record_fallback(FallbackType.ALTERNATE, succeeded=True, step="anthropic")
    b.record_fallback(FallbackType.CACHE, succeeded=False, error=error)
    assert [(e.breaker, e.fallback_type, e.step, e.outcome, e.error) for e in events] == [
        (b, FallbackType.ALTERNATE, "anthropic", Outcome.SUCCESS, None),
        (b, FallbackType.ALTERNATE, "anthropic", Outcome.SUCCESS, None),
        (b, FallbackType.CACHE, "cache", Outcome.FAILURE, error),
    ]
    assert b.snapshot().totals.fallbacks == {
        (FallbackType.ALTERNATE, Outcome.SUCCESS): 2,
        (FallbackType.CACHE, Outcome.FAILURE): 1,
    }
    assert b.fallback_types == {FallbackType.ALTERNATE, FallbackType.CACHE, FallbackType.STATIC}


def test_a_raising_listener_or_classifier_is_logged_with_the_breaker_and_culprit(
    make_breaker: MakeBreaker, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(BreakerListener):
        def state_changed(self, event: StateChanged) -> None:
            raise RuntimeError("listener bug")

        def __repr__(self) -> str:
            return "Broken()"

    def bad(exc: BaseException | None, result: object) -> Verdict | None:
        raise RuntimeError("classifier bug")

    b = make_breaker(minimum_calls=1, sliding_window_size=1, classifier=classify_with(bad))
    b.add_listener(Broken())
    with caplog.at_level("ERROR", logger="breakerpanel"):
        fail(b, clock)
    messages = [r.getMessage() for r in caplog.records]
    assert f"circuit breaker 'dep': classifier {b.config.classifier!r} raised; using the default" in messages
    assert "circuit breaker 'dep': listener Broken() raised in state_changed" in messages
    assert b.state is State.OPEN  # the default classifier counted the failure


def test_only_listeners_of_calls_leave_the_lock_free_path(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker(minimum_calls=100, sliding_window_size=100)
    calls = Recorder()  # overrides call_recorded
    changes_only = type("ChangesOnly", (BreakerListener,), {"state_changed": lambda self, event: None})()
    b.add_listener(changes_only)
    succeed(b, clock)
    b.add_listener(calls)
    succeed(b, clock)
    assert len(calls.recorded) == 1  # the second success, seen although closed and healthy
    b.remove_listener(calls)
    succeed(b, clock)
    assert len(calls.recorded) == 1
    assert b.snapshot().calls == 3


# ---------------------------------------------------------------------- the async paths


async def timed(clock: ManualClock, seconds: float, value: object = "ok", *, key: str = "") -> object:
    clock.advance(seconds)
    return (value, key) if key else value


def test_async_successes_on_the_lock_free_path_fill_the_duration_histogram(
    make_breaker: MakeBreaker, clock: ManualClock
) -> None:
    b = make_breaker(slow_call_duration=10.0)
    b.enable_duration_histograms((0.01, 0.1, 1.0))

    async def scenario() -> None:
        for seconds in (0.005, 0.05, 0.05, 0.5):
            await b.acall(timed, clock, seconds)

    asyncio.run(scenario())
    reading = b.duration_histograms()[Outcome.SUCCESS]
    assert reading.counts == (1, 2, 1, 0)
    assert reading.sum == pytest.approx(0.605)
    assert b.snapshot().totals.successes == 4


def test_async_calls_pass_keywords_under_a_timeout_and_have_results_classified(clock: ManualClock) -> None:
    def empty_is_a_failure(exc: BaseException | None, result: object) -> Verdict | None:
        return failure("empty_answer") if exc is None and result == "" else None

    config = BreakerConfig(minimum_calls=100, sliding_window_size=100, call_timeout=5.0)
    b = CircuitBreaker("dep", config.replace(classifier=classify_with(empty_is_a_failure)), clock=clock)
    recorder = listened(b)

    async def scenario() -> None:
        assert await b.acall(timed, clock, 0.1, "answer", key="k") == ("answer", "k")
        assert await b.acall(timed, clock, 0.1, "") == ""

    asyncio.run(scenario())
    assert [(e.outcome, e.error_type) for e in recorder.recorded] == [
        (Outcome.SUCCESS, None),
        (Outcome.FAILURE, "empty_answer"),
    ]


def test_async_with_has_no_result_to_classify(clock: ManualClock) -> None:
    def none_is_a_failure(exc: BaseException | None, result: object) -> Verdict | None:
        return failure("no_answer") if exc is None and result is None else None

    b = CircuitBreaker("dep", BreakerConfig(classifier=classify_with(none_is_a_failure)), clock=clock)

    async def scenario() -> None:
        async with b:
            pass

    asyncio.run(scenario())
    assert (b.snapshot().totals.successes, b.snapshot().totals.failures) == (1, 0)


# ---------------------------------------------------------------------- states decided elsewhere (stores)


def test_a_followed_open_deadline_moves_the_open_timer(clock: ManualClock) -> None:
    b = CircuitBreaker("llm", BreakerConfig(wait_in_open=60.0, automatic_transition_to_half_open=True), clock=clock)
    recorder = listened(b)
    assert b.apply_shared_state(State.OPEN, TransitionReason.FAILURE_RATE, 5.0)
    assert not b.apply_shared_state(State.OPEN, TransitionReason.FAILURE_RATE, 8.0)  # the deadline moves: 8 s from now
    clock.advance(5.0)
    assert b.snapshot().state is State.OPEN  # the first deadline's timer is gone
    clock.advance(3.0)
    assert b.snapshot().state is State.HALF_OPEN  # the new one fired
    assert [(c.state, c.reason, c.at) for c in recorder.changes] == [
        (State.OPEN, TransitionReason.FAILURE_RATE, 1000.0),
        (State.HALF_OPEN, TransitionReason.WAIT_ELAPSED, 1008.0),
    ]
    assert not b.apply_shared_state(State.HALF_OPEN, TransitionReason.WAIT_ELAPSED, None)  # already: nothing moves


def test_a_followed_deadline_in_the_past_ends_the_wait_at_once(clock: ManualClock) -> None:
    b = CircuitBreaker("llm", BreakerConfig(wait_in_open=60.0, automatic_transition_to_half_open=True), clock=clock)
    b.apply_shared_state(State.OPEN, TransitionReason.FAILURE_RATE, 5.0)
    b.apply_shared_state(State.OPEN, TransitionReason.FAILURE_RATE, -2.0)  # the other replica's wait is over
    assert b.snapshot().open_remaining == 0.0
    clock.advance(0.0)  # timers due now run
    assert b.state is State.HALF_OPEN


def test_a_followed_forced_open_keeps_its_deadline_and_a_followed_opening_its_reason(clock: ManualClock) -> None:
    b = CircuitBreaker("llm", BreakerConfig(wait_in_open=60.0), clock=clock)
    recorder = listened(b)
    b.apply_shared_state(State.FORCED_OPEN, TransitionReason.MANUAL, None)
    assert b.snapshot().open_remaining is None  # until changed by hand
    b.apply_shared_state(State.FORCED_OPEN, TransitionReason.MANUAL, None)
    assert b.snapshot().open_remaining is None
    b.reset()
    b.apply_shared_state(State.OPEN, TransitionReason.SLOW_CALL_RATE, None)  # this replica's own wait
    assert b.snapshot().open_remaining == 60.0
    assert [(c.state, c.reason) for c in recorder.changes] == [
        (State.FORCED_OPEN, TransitionReason.MANUAL),
        (State.CLOSED, TransitionReason.MANUAL),
        (State.OPEN, TransitionReason.SLOW_CALL_RATE),
    ]


def test_followed_openings_grow_this_replicas_own_backoff_but_rate_limits_do_not(clock: ManualClock) -> None:
    backoff = ExponentialBackoff(initial=10.0, multiplier=2.0, maximum=1000.0, jitter=0.0)
    config = BreakerConfig(wait_in_open=backoff, minimum_calls=1, sliding_window_size=1, permitted_calls_in_half_open=1)
    b = CircuitBreaker("llm", config, clock=clock)
    b.apply_shared_state(State.OPEN, TransitionReason.FAILURE_RATE, 5.0)  # another replica's opening: step 1
    b.apply_shared_state(State.HALF_OPEN, TransitionReason.WAIT_ELAPSED, None)
    b.apply_shared_state(State.OPEN, TransitionReason.RATE_LIMITED, 3.0)  # not a failure: no step
    b.apply_shared_state(State.HALF_OPEN, TransitionReason.WAIT_ELAPSED, None)
    b.apply_shared_state(State.OPEN, TransitionReason.PROBES_FAILED, 5.0)  # step 2
    assert b.snapshot().open_attempts == 2
    b.apply_shared_state(State.HALF_OPEN, TransitionReason.WAIT_ELAPSED, None)
    fail(b, clock)  # this replica's own next opening: the third step of the backoff
    assert b.snapshot().open_remaining == 40.0


@pytest.mark.parametrize("duration", [0, -1.0, math.inf, math.nan, True, "5"])
def test_force_open_refuses_a_bad_duration(make_breaker: MakeBreaker, duration: object) -> None:
    with pytest.raises(BreakerConfigError) as caught:
        make_breaker().force_open(duration)  # type: ignore[arg-type]
    assert caught.value.field == "duration"
    assert caught.value.reason == f"must be a positive number of seconds or None (got {duration!r})"


def test_rates_show_from_minimum_calls_even_at_one(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker(minimum_calls=1, sliding_window_size=10, slow_call_duration=1.0)
    assert b.snapshot().failure_rate is None
    succeed(b, clock, duration=0.5)
    snap = b.snapshot()
    assert (snap.calls, snap.failure_rate, snap.slow_call_rate) == (1, 0.0, 0.0)


# ---------------------------------------------------------------------- the lock-free path's limits


@pytest.mark.parametrize("run", ["call", "acall"])
def test_a_slow_call_below_minimum_calls_arms_the_check_of_the_next_success(
    make_breaker: MakeBreaker, clock: ManualClock, run: str
) -> None:
    # The second call brings the window to minimum_calls with half of it slow: it must trip,
    # so it may not take the lock-free path that skips the check.
    b = make_breaker(minimum_calls=2, sliding_window_size=10, slow_call_duration=1.0, slow_call_rate_threshold=0.5)

    async def quick() -> str:
        return "ok"

    succeed(b, clock, duration=2.0)
    if run == "call":
        succeed(b, clock)
    else:
        asyncio.run(b.acall(quick))
    assert b.state is State.OPEN


@pytest.mark.parametrize("run", ["call", "acall"])
def test_results_are_classified_on_every_call(make_breaker: MakeBreaker, clock: ManualClock, run: str) -> None:
    def empty_is_a_failure(exc: BaseException | None, result: object) -> Verdict | None:
        return failure("empty_answer") if exc is None and result == "" else None

    b = make_breaker(minimum_calls=100, sliding_window_size=100, classifier=classify_with(empty_is_a_failure))

    async def empty() -> str:
        return ""

    clock.advance(0.01)  # past the window's start: the lock-free path is open to these calls
    for _ in range(3):
        assert (b.call(lambda: "") if run == "call" else asyncio.run(b.acall(empty))) == ""
    assert b.snapshot().failures == 3


def test_a_listener_of_calls_sees_every_success_while_registered(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker(minimum_calls=100, sliding_window_size=100)
    calls = listened(b)
    clock.advance(0.01)  # past the window's start: the lock-free path is open to these calls
    for _ in range(3):
        succeed(b, clock)
    assert len(calls.recorded) == 3


def test_sync_with_has_no_result_to_classify(clock: ManualClock) -> None:
    def none_is_a_failure(exc: BaseException | None, result: object) -> Verdict | None:
        return failure("no_answer") if exc is None and result is None else None

    b = CircuitBreaker("dep", BreakerConfig(classifier=classify_with(none_is_a_failure)), clock=clock)
    with b:
        pass
    assert (b.snapshot().totals.successes, b.snapshot().totals.failures) == (1, 0)


def test_an_ignored_probe_result_is_recorded_as_not_counted(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker(
        minimum_calls=1,
        sliding_window_size=1,
        wait_in_open=5.0,
        permitted_calls_in_half_open=2,
        classifier=ignore_exceptions(KeyError),
    )
    fail(b, clock)
    clock.advance(5)
    recorder = listened(b)
    fail(b, clock, exc=KeyError("the caller's"))
    succeed(b, clock)
    assert [(e.outcome, e.counted) for e in recorder.recorded] == [(Outcome.IGNORED, False), (Outcome.SUCCESS, True)]
    assert b.state is State.HALF_OPEN  # one counted probe of two


def test_an_endpoint_that_rejects_gives_its_services_half_open_permit_back(clock: ManualClock) -> None:
    options = {"minimum_calls": 1, "sliding_window_size": 1, "wait_in_open": 5.0, "permitted_calls_in_half_open": 1}
    service = CircuitBreaker("openai", BreakerConfig(**options), clock=clock)  # type: ignore[arg-type]
    chat = CircuitBreaker("openai.chat", BreakerConfig(**options), parent=service)  # type: ignore[arg-type]
    embeddings = CircuitBreaker("openai.embeddings", BreakerConfig(**options), parent=service)  # type: ignore[arg-type]
    fail(service, clock)
    chat.force_open()
    clock.advance(5)  # the service is half-open: one permit
    error = rejection(chat)  # the service admitted it, then chat rejected it: the permit goes back
    assert error.reason is RejectionReason.FORCED_OPEN
    assert service.snapshot().half_open_in_flight == 0
    assert embeddings.call(lambda: "ok") == "ok"  # so the service's one probe is still there
    assert service.state is State.CLOSED


def test_an_open_endpoint_tells_the_time_left(clock: ManualClock) -> None:
    service = CircuitBreaker("openai", clock=clock)
    chat = CircuitBreaker(
        "openai.chat", BreakerConfig(minimum_calls=1, sliding_window_size=1, wait_in_open=4.0), parent=service
    )
    fail(chat, clock)
    clock.advance(1.5)
    assert rejection(chat).remaining == 2.5


# ---------------------------------------------------------------------- context managers, permits by hand


@pytest.mark.parametrize("open_it", ["trip", "force"])
def test_with_blocks_are_rejected_by_an_open_breaker(
    make_breaker: MakeBreaker, clock: ManualClock, open_it: str
) -> None:
    b = make_breaker(minimum_calls=1, sliding_window_size=1, wait_in_open=0.5)
    if open_it == "trip":
        fail(b, clock)
    else:
        b.force_open(0.5)
    clock.advance(0.2)
    ran = []

    async def async_block() -> None:
        async with b:
            ran.append("async")

    with pytest.raises(CircuitOpenError) as caught:
        asyncio.run(async_block())
    assert caught.value.remaining == pytest.approx(0.3)
    with pytest.raises(CircuitOpenError) as caught, b:
        ran.append("sync")
    assert caught.value.remaining == pytest.approx(0.3)
    with pytest.raises(CircuitOpenError) as caught:
        b.acquire()
    expected = RejectionReason.OPEN if open_it == "trip" else RejectionReason.FORCED_OPEN
    assert caught.value.reason is expected
    assert caught.value.remaining == pytest.approx(0.3)
    assert ran == []


def test_a_fresh_breaker_reports_when_it_started(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker()
    snap = b.snapshot()
    assert (snap.state, snap.state_since, snap.open_remaining, snap.consecutive_failures) == (
        State.CLOSED,
        1000.0,
        None,
        0,
    )


def test_a_sync_call_that_takes_exactly_its_timeout_timed_out(clock: ManualClock) -> None:
    b = CircuitBreaker("dep", BreakerConfig(call_timeout=1.0, minimum_calls=100, sliding_window_size=100), clock=clock)
    succeed(b, clock, duration=1.0)  # returns, but too late: counted as a timeout
    succeed(b, clock, duration=0.999)
    assert b.snapshot().totals.failures_by_type == {"timeout": 1}


def test_async_calls_are_timed_out_by_asyncio_not_after_the_fact(clock: ManualClock) -> None:
    # An async call that returned was not cut off by its asyncio timeout: whatever the breaker's
    # clock says, it succeeded (slowly). Only sync calls, which cannot be interrupted, are judged
    # after the fact.
    config = BreakerConfig(call_timeout=1.0, slow_call_duration=1.5, minimum_calls=100, sliding_window_size=100)
    b = CircuitBreaker("dep", config, clock=clock)

    async def scenario() -> None:
        await b.acall(timed, clock, 2.0)
        async with b:
            clock.advance(2.0)

    asyncio.run(scenario())
    totals = b.snapshot().totals
    assert (totals.successes, totals.slow_successes, totals.failures) == (2, 2, 0)


def test_decorating_a_generator_names_the_breaker(make_breaker: MakeBreaker) -> None:
    b = make_breaker("openai")

    def stream() -> Iterator[str]:
        yield "token"

    with pytest.raises(TypeError, match=r"^openai: cannot decorate generator function"):
        b(stream)


def test_the_other_listener_of_calls_still_sees_every_call(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker(minimum_calls=100, sliding_window_size=100)
    first, second = listened(b), listened(b)
    b.remove_listener(first)
    clock.advance(0.01)
    for _ in range(3):
        succeed(b, clock)
    assert (len(first.recorded), len(second.recorded)) == (0, 3)


@pytest.mark.parametrize("window", ["count_based", "time_based"])
def test_a_call_slower_than_slow_call_duration_is_never_taken_for_a_fast_success(
    make_breaker: MakeBreaker, clock: ManualClock, window: str
) -> None:
    # The lock-free path counts a call as a fast success when it starts and ends inside the fast
    # span: the span must be no longer than slow_call_duration, the call timeout and the bucket.
    b = make_breaker(sliding_window_type=window, sliding_window_size=60, minimum_calls=100, slow_call_duration=0.25)
    clock.advance(0.01)
    succeed(b, clock, duration=0.2)
    succeed(b, clock, duration=0.3)
    assert b.snapshot().totals.slow_successes == 1
    b.reset()  # no slow call in the window: nothing arms the check of every success
    b.set_thresholds(b.config.failure_rate_threshold, 0.1)  # as adaptive thresholds do
    clock.advance(0.01)
    succeed(b, clock, duration=0.05)
    succeed(b, clock, duration=0.15)
    assert b.snapshot().totals.slow_successes == 2


def test_a_call_that_overruns_its_timeout_is_never_taken_for_a_fast_success(clock: ManualClock) -> None:
    config = BreakerConfig(call_timeout=0.25, slow_call_duration=30.0, minimum_calls=100, sliding_window_size=100)
    b = CircuitBreaker("dep", config, clock=clock)
    clock.advance(0.01)
    succeed(b, clock, duration=0.3)
    assert b.snapshot().totals.failures_by_type == {"timeout": 1}
    b.reset()
    b.set_thresholds(b.config.failure_rate_threshold, 20.0)  # a new slow-call duration: the span follows both
    clock.advance(0.01)
    succeed(b, clock, duration=0.3)
    assert b.snapshot().totals.failures_by_type == {"timeout": 2}


def test_the_probe_hooks_ignore_a_stale_generation(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker(minimum_calls=1, sliding_window_size=1, wait_in_open=5.0)
    fail(b, clock)
    stale = b.snapshot().generation
    b.reset()
    fail(b, clock)  # open again, in a later generation
    snap = b.snapshot()
    assert not b.half_open_after_probe(stale)
    assert not b.hold_open_until(stale, clock.now() + 60)
    assert b.snapshot().state is State.OPEN
    assert b.snapshot().open_remaining == snap.open_remaining
    assert b.hold_open_until(snap.generation, clock.now() + 60)
    recorder = listened(b)
    assert b.half_open_after_probe(snap.generation)
    assert [(c.state, c.reason) for c in recorder.changes] == [(State.HALF_OPEN, TransitionReason.PROBE_SUCCEEDED)]


def test_a_followed_opening_keeps_a_deadline_under_a_second(clock: ManualClock) -> None:
    b = CircuitBreaker("llm", BreakerConfig(wait_in_open=60.0), clock=clock)
    b.apply_shared_state(State.OPEN, TransitionReason.FAILURE_RATE, 0.25)
    assert b.snapshot().open_remaining == 0.25
