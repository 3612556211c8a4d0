"""Every transition of the state machine, one scenario each."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from breakerpanel import (
    BreakerConfig,
    BreakerListener,
    CallRecorded,
    CircuitBreaker,
    CircuitOpenError,
    ExponentialBackoff,
    ManualClock,
    Outcome,
    RejectionReason,
    State,
    StateChanged,
    TimerHandle,
    TransitionReason,
    rate_limited,
    when_exception,
)

from .support import Boom, fail, succeed

MakeBreaker = Callable[..., CircuitBreaker]


def rejected(breaker: CircuitBreaker) -> CircuitOpenError:
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: "never runs")
    return info.value


class TestClosedToOpen:
    def test_failure_rate_at_threshold_trips(self, make_breaker: MakeBreaker, clock: ManualClock) -> None:
        b = make_breaker(minimum_calls=4, sliding_window_size=4, failure_rate_threshold=0.5)
        succeed(b, clock)
        fail(b, clock)
        succeed(b, clock)
        assert b.state is State.CLOSED  # 1 failure in 3 calls: below minimum_calls anyway
        fail(b, clock)  # 2 of 4 = 50%
        assert b.state is State.OPEN
        assert b.snapshot().totals.transitions == {(State.CLOSED, State.OPEN): 1}

    def test_below_minimum_calls_never_trips(self, make_breaker: MakeBreaker, clock: ManualClock) -> None:
        b = make_breaker(minimum_calls=5, sliding_window_size=10)
        for _ in range(4):
            fail(b, clock)
        snap = b.snapshot()
        assert snap.state is State.CLOSED
        assert snap.failure_rate is None  # no rate below minimum_calls
        assert snap.failures == 4

    def test_a_success_that_reaches_minimum_calls_trips(self, make_breaker: MakeBreaker, clock: ManualClock) -> None:
        b = make_breaker(minimum_calls=3, sliding_window_size=10, failure_rate_threshold=0.3)
        fail(b, clock)
        succeed(b, clock)
        assert b.state is State.CLOSED
        succeed(b, clock)  # 1 of 3 = 33% >= 30%, and now 3 calls
        assert b.state is State.OPEN

    def test_rate_just_under_threshold_does_not_trip(self, make_breaker: MakeBreaker, clock: ManualClock) -> None:
        b = make_breaker(minimum_calls=10, sliding_window_size=10, failure_rate_threshold=0.3)
        for i in range(10):
            if i < 2:
                fail(b, clock)
            else:
                succeed(b, clock)
        assert b.snapshot().failure_rate == pytest.approx(0.2)
        assert b.state is State.CLOSED

    def test_count_window_forgets_old_calls(self, make_breaker: MakeBreaker, clock: ManualClock) -> None:
        b = make_breaker(minimum_calls=4, sliding_window_size=4, failure_rate_threshold=0.75)
        fail(b, clock)
        fail(b, clock)
        for _ in range(4):
            succeed(b, clock)
        fail(b, clock)
        fail(b, clock)  # the first two failures left the window: 2 of 4
        assert b.state is State.CLOSED
        assert b.snapshot().failures == 2

    def test_slow_call_rate_trips_even_when_calls_succeed(self, make_breaker: MakeBreaker, clock: ManualClock) -> None:
        b = make_breaker(minimum_calls=4, sliding_window_size=4, slow_call_duration=1.0, slow_call_rate_threshold=0.5)
        succeed(b, clock, duration=0.1)
        succeed(b, clock, duration=1.5)
        succeed(b, clock, duration=0.1)
        assert b.state is State.CLOSED
        succeed(b, clock, duration=2.0)
        snap = b.snapshot()
        assert snap.state is State.OPEN
        assert snap.totals.slow == 2

    def test_consecutive_failures_trip_below_minimum_calls(self, make_breaker: MakeBreaker, clock: ManualClock) -> None:
        b = make_breaker(minimum_calls=100, consecutive_failures_threshold=3)
        fail(b, clock)
        fail(b, clock)
        succeed(b, clock)  # breaks the streak
        fail(b, clock)
        fail(b, clock)
        assert b.state is State.CLOSED
        assert b.snapshot().consecutive_failures == 2
        fail(b, clock)
        assert b.state is State.OPEN

    def test_rate_limited_opens_for_retry_after_bounded(self, make_breaker: MakeBreaker, clock: ManualClock) -> None:
        class TooMany(Exception):
            def __init__(self, retry_after: float) -> None:
                self.retry_after = retry_after

        classifier = when_exception(
            lambda e: isinstance(e, TooMany), lambda e: rate_limited(getattr(e, "retry_after", None))
        )
        b = make_breaker(classifier=classifier, rate_limit_max_wait=30.0, minimum_calls=50)
        fail(b, clock, exc=TooMany(12.0))
        assert b.state is State.OPEN  # one 429 is enough: the server said when to come back
        assert rejected(b).remaining == pytest.approx(12.0)
        clock.advance(12.0)
        succeed(b, clock)
        assert b.state is State.HALF_OPEN
        b.reset()
        fail(b, clock, exc=TooMany(3600.0))
        assert b.snapshot().open_remaining == pytest.approx(30.0)  # bounded
        assert b.snapshot().open_attempts == 0  # a rate limit is not an outage: no backoff step

    def test_rate_limited_without_retry_after_is_an_ordinary_failure(
        self, make_breaker: MakeBreaker, clock: ManualClock
    ) -> None:
        b = make_breaker(
            classifier=when_exception(lambda e: isinstance(e, Boom), rate_limited()),
            minimum_calls=2,
            sliding_window_size=2,
        )
        fail(b, clock)
        assert b.state is State.CLOSED
        assert b.snapshot().totals.failures_by_type == {"rate_limited": 1}
        fail(b, clock)
        assert b.state is State.OPEN


class TestOpen:
    def test_rejects_with_fresh_error_carrying_context(self, make_breaker: MakeBreaker, clock: ManualClock) -> None:
        b = make_breaker("openai.chat", minimum_calls=1, wait_in_open=30.0)
        fail(b, clock)
        clock.advance(10)
        first, second = rejected(b), rejected(b)
        assert first is not second
        assert first.breaker_name == "openai.chat"
        assert first.state is State.OPEN
        assert first.reason is RejectionReason.OPEN
        assert first.remaining == pytest.approx(20.0)
        assert first.retry_after == first.remaining
        assert "openai.chat" in str(first)
        assert "20.000s" in str(first)
        assert b.snapshot().totals.rejected[RejectionReason.OPEN] == 2

    def test_moves_to_half_open_lazily_on_next_call(self, make_breaker: MakeBreaker, clock: ManualClock) -> None:
        b = make_breaker(minimum_calls=1, wait_in_open=5.0, permitted_calls_in_half_open=2)
        fail(b, clock)
        clock.advance(5.0)
        assert b.state is State.OPEN  # nothing happens without a call
        succeed(b, clock)
        assert b.state is State.HALF_OPEN

    def test_moves_to_half_open_by_timer(self, make_breaker: MakeBreaker, clock: ManualClock) -> None:
        b = make_breaker(minimum_calls=1, wait_in_open=5.0, automatic_transition_to_half_open=True)
        fail(b, clock)
        clock.advance(4.999)
        assert b.state is State.OPEN
        clock.advance(0.001)
        assert b.state is State.HALF_OPEN
        assert b.snapshot().state_since == pytest.approx(1005.0)

    def test_exponential_backoff_grows_per_opening_and_resets_on_close(
        self, make_breaker: MakeBreaker, clock: ManualClock
    ) -> None:
        b = make_breaker(
            minimum_calls=1,
            permitted_calls_in_half_open=1,
            wait_in_open=ExponentialBackoff(initial=1.0, multiplier=2.0, maximum=5.0, jitter=0.0),
        )
        fail(b, clock)
        waits = []
        for _ in range(4):
            waits.append(b.snapshot().open_remaining)
            clock.advance(10)
            fail(b, clock)  # the probe fails: open again, longer
        assert waits == [1.0, 2.0, 4.0, 5.0]
        clock.advance(10)
        succeed(b, clock)
        assert b.state is State.CLOSED
        fail(b, clock)
        assert b.snapshot().open_remaining == 1.0

    def test_jitter_shortens_the_wait_within_bounds(self) -> None:
        draws = iter([0.0, 0.5, 1.0])
        backoff = ExponentialBackoff(initial=10.0, multiplier=1.0, maximum=10.0, jitter=0.4, rng=lambda: next(draws))
        assert [backoff(1), backoff(1), backoff(1)] == [10.0, 8.0, 6.0]


class TestHalfOpen:
    def open_breaker(self, make_breaker: MakeBreaker, clock: ManualClock, **options: object) -> CircuitBreaker:
        b = make_breaker(minimum_calls=1, sliding_window_size=1, wait_in_open=5.0, **options)
        fail(b, clock)
        clock.advance(5.0)
        return b

    def test_enough_successful_probes_close(self, make_breaker: MakeBreaker, clock: ManualClock) -> None:
        b = self.open_breaker(make_breaker, clock, permitted_calls_in_half_open=3)
        succeed(b, clock)
        succeed(b, clock)
        assert b.state is State.HALF_OPEN
        succeed(b, clock)
        assert b.state is State.CLOSED

    def test_probe_failure_rate_reopens_as_soon_as_certain(self, make_breaker: MakeBreaker, clock: ManualClock) -> None:
        b = self.open_breaker(make_breaker, clock, permitted_calls_in_half_open=4, failure_rate_threshold=0.5)
        succeed(b, clock)
        fail(b, clock)
        assert b.state is State.HALF_OPEN  # 1 of 4 so far
        fail(b, clock)  # 2 of 4 whatever the last probe does
        assert b.state is State.OPEN
        assert b.snapshot().open_attempts == 2

    def test_slow_probes_reopen_as_soon_as_certain(self, make_breaker: MakeBreaker, clock: ManualClock) -> None:
        b = self.open_breaker(
            make_breaker, clock, permitted_calls_in_half_open=4, slow_call_duration=1.0, slow_call_rate_threshold=0.5
        )
        succeed(b, clock, duration=2.0)
        assert b.state is State.HALF_OPEN  # 1 slow of 4 so far
        succeed(b, clock, duration=2.0)  # 2 slow of 4 whatever the last probes do
        assert b.state is State.OPEN

    def test_reopening_from_half_open_says_why(self, make_breaker: MakeBreaker, clock: ManualClock) -> None:
        from breakerpanel import BreakerListener

        seen: list[TransitionReason] = []

        class Recorder(BreakerListener):
            def state_changed(self, event: StateChanged) -> None:
                if event.previous is State.HALF_OPEN:
                    seen.append(event.reason)

        b = self.open_breaker(
            make_breaker,
            clock,
            permitted_calls_in_half_open=1,
            classifier=when_exception(lambda e: isinstance(e, KeyError), rate_limited(3.0)),
        )
        b.add_listener(Recorder())
        fail(b, clock)  # the probe fails
        clock.advance(5.0)
        fail(b, clock, exc=KeyError("slow down"))  # the probe is told to back off
        assert seen == [TransitionReason.PROBES_FAILED, TransitionReason.RATE_LIMITED]

    def test_probes_below_threshold_close(self, make_breaker: MakeBreaker, clock: ManualClock) -> None:
        b = self.open_breaker(make_breaker, clock, permitted_calls_in_half_open=4, failure_rate_threshold=0.5)
        fail(b, clock)
        succeed(b, clock)
        succeed(b, clock)
        succeed(b, clock)
        assert b.state is State.CLOSED

    def test_calls_beyond_permits_are_rejected(self, make_breaker: MakeBreaker, clock: ManualClock) -> None:
        b = self.open_breaker(make_breaker, clock, permitted_calls_in_half_open=1)
        with b:  # one probe in flight
            error = rejected(b)
            assert error.reason is RejectionReason.HALF_OPEN_FULL
            assert error.state is State.HALF_OPEN
            assert error.remaining is None
        assert b.state is State.CLOSED

    def test_stuck_probes_reopen_lazily_after_max_wait(self, make_breaker: MakeBreaker, clock: ManualClock) -> None:
        b = self.open_breaker(make_breaker, clock, permitted_calls_in_half_open=1, max_wait_in_half_open=30.0)
        b.__enter__()  # a probe that never finishes
        clock.advance(29.0)
        assert rejected(b).reason is RejectionReason.HALF_OPEN_FULL
        clock.advance(1.0)
        error = rejected(b)
        assert error.reason is RejectionReason.OPEN
        assert b.state is State.OPEN
        snap = b.snapshot()
        assert snap.totals.transitions[(State.HALF_OPEN, State.OPEN)] == 1
        # The stuck probe finishing late changes nothing: its generation is gone.
        b.__exit__(None, None, None)
        assert b.state is State.OPEN

    def test_stuck_probes_reopen_by_timer(self, make_breaker: MakeBreaker, clock: ManualClock) -> None:
        b = make_breaker(
            minimum_calls=1,
            wait_in_open=5.0,
            automatic_transition_to_half_open=True,
            max_wait_in_half_open=30.0,
        )
        fail(b, clock)
        clock.advance(5.0)
        assert b.state is State.HALF_OPEN
        clock.advance(30.0)
        assert b.state is State.OPEN
        assert clock.pending_timers == 1  # the next open -> half-open move

    @pytest.mark.parametrize("outcome", ["success", "failure", "cancel"])
    def test_a_probe_that_outlives_the_max_wait_reopens_rather_than_decides(
        self, make_breaker: MakeBreaker, clock: ManualClock, outcome: str
    ) -> None:
        # Issue 18: with no timer and no other call, the late probe used to close the breaker.
        # resilience4j opens at the max wait; a result after it is recorded, nothing more.
        b = self.open_breaker(make_breaker, clock, permitted_calls_in_half_open=1, max_wait_in_half_open=30.0)
        recorder = Recorder()
        b.add_listener(recorder)
        probe = b.acquire()
        clock.advance(30.0)
        getattr(probe, outcome)()
        snap = b.snapshot()
        assert snap.state is State.OPEN
        assert recorder.changes == [
            (State.OPEN, State.HALF_OPEN, TransitionReason.WAIT_ELAPSED),
            (State.HALF_OPEN, State.OPEN, TransitionReason.HALF_OPEN_TIMEOUT),
        ]
        assert snap.open_attempts == 2  # the backoff grows as for any reopening
        assert snap.open_remaining == 5.0  # a full wait from now
        assert [counted for _, counted in recorder.recorded] == [False]
        assert (snap.totals.successes, snap.totals.failures) == (
            (1, 1) if outcome == "success" else (0, 2) if outcome == "failure" else (0, 1)
        )

    def test_a_probe_just_inside_the_max_wait_still_decides(
        self, make_breaker: MakeBreaker, clock: ManualClock
    ) -> None:
        b = self.open_breaker(make_breaker, clock, permitted_calls_in_half_open=1, max_wait_in_half_open=30.0)
        probe = b.acquire()
        clock.advance(29.9)
        probe.success()
        assert b.state is State.CLOSED

    def test_a_stale_result_past_the_max_wait_reopens_too(self, make_breaker: MakeBreaker, clock: ManualClock) -> None:
        b = make_breaker(minimum_calls=1, sliding_window_size=1, wait_in_open=5.0, max_wait_in_half_open=30.0)
        stale = b.acquire()  # admitted while closed
        fail(b, clock)
        clock.advance(5.0)
        probe = b.acquire()  # half-open now; the probe never finishes
        clock.advance(30.0)
        stale.success()  # the first result after the max wait: the breaker notices it
        assert b.state is State.OPEN
        assert b.snapshot().totals.transitions[(State.HALF_OPEN, State.OPEN)] == 1
        probe.success()  # its generation is gone
        assert b.state is State.OPEN

    def test_a_late_result_before_the_timer_runs_does_not_close(self, clock: ManualClock) -> None:
        # A real clock's timer can run a little late (a busy event loop): the result that gets
        # in first must not close the breaker either.
        class LateTimers(ManualClock):
            def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
                return super().call_later(delay + 1.0, callback)

        late = LateTimers(start=clock.now())
        config = BreakerConfig(
            minimum_calls=1,
            sliding_window_size=1,
            wait_in_open=5.0,
            automatic_transition_to_half_open=True,
            permitted_calls_in_half_open=1,
            max_wait_in_half_open=30.0,
        )
        b = CircuitBreaker("dep", config, clock=late)
        fail(b, late)
        late.advance(6.0)
        assert b.state is State.HALF_OPEN
        probe = b.acquire()
        late.advance(30.0)  # past the max wait; the timer is due a second later
        probe.success()
        assert b.state is State.OPEN
        late.advance(1.0)  # the old timer belongs to a past generation
        assert b.state is State.OPEN


class Recorder(BreakerListener):
    def __init__(self) -> None:
        self.changes: list[tuple[State, State, TransitionReason]] = []
        self.events: list[StateChanged] = []
        self.recorded: list[tuple[Outcome, bool]] = []

    def state_changed(self, event: StateChanged) -> None:
        self.changes.append((event.previous, event.state, event.reason))
        self.events.append(event)

    def call_recorded(self, event: CallRecorded) -> None:
        self.recorded.append((event.outcome, event.counted))


class TestManual:
    def test_force_open_until_changed(self, make_breaker: MakeBreaker, clock: ManualClock) -> None:
        b = make_breaker()
        b.force_open()
        clock.advance(1e6)
        error = rejected(b)
        assert error.reason is RejectionReason.FORCED_OPEN
        assert error.state is State.FORCED_OPEN
        assert error.remaining is None
        b.force_close()
        assert succeed(b, clock) == "ok"

    def test_force_open_for_a_duration_then_probes(self, make_breaker: MakeBreaker, clock: ManualClock) -> None:
        b = make_breaker(permitted_calls_in_half_open=1)
        b.force_open(60)
        clock.advance(30)
        assert rejected(b).remaining == pytest.approx(30)
        clock.advance(30)
        succeed(b, clock)
        assert b.state is State.CLOSED

    @pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan"), "10", True])
    def test_force_open_rejects_bad_durations(self, make_breaker: MakeBreaker, bad: object) -> None:
        with pytest.raises(ValueError, match="duration"):
            make_breaker().force_open(bad)  # type: ignore[arg-type]

    def test_disabled_lets_everything_through_and_records_nothing(
        self, make_breaker: MakeBreaker, clock: ManualClock
    ) -> None:
        b = make_breaker(minimum_calls=1)
        b.disable()
        for _ in range(10):
            fail(b, clock)
        snap = b.snapshot()
        assert snap.state is State.DISABLED
        assert snap.calls == 0
        assert snap.totals.failures == 0

    def test_metrics_only_records_but_never_trips(self, make_breaker: MakeBreaker, clock: ManualClock) -> None:
        b = make_breaker(minimum_calls=1, consecutive_failures_threshold=1)
        b.metrics_only()
        for _ in range(10):
            fail(b, clock)
        succeed(b, clock)
        snap = b.snapshot()
        assert snap.state is State.METRICS_ONLY
        assert (snap.calls, snap.failures, snap.failure_rate) == (11, 10, 10 / 11)
        assert snap.totals.failures == 10

    def test_force_close_keeps_backoff_reset_forgets_it(self, make_breaker: MakeBreaker, clock: ManualClock) -> None:
        b = make_breaker(minimum_calls=1, wait_in_open=ExponentialBackoff(initial=1, maximum=100, jitter=0))
        fail(b, clock)
        b.force_close()
        fail(b, clock)
        assert b.snapshot().open_remaining == 2.0
        b.reset()
        fail(b, clock)
        assert b.snapshot().open_remaining == 1.0

    def test_a_manual_action_that_changes_no_state_is_no_transition(
        self, make_breaker: MakeBreaker, clock: ManualClock
    ) -> None:
        # Issue 18: reset() of a closed breaker used to publish closed -> closed and count it.
        b = make_breaker(minimum_calls=100)
        recorder = Recorder()
        b.add_listener(recorder)
        fail(b, clock)
        clock.advance(10)
        b.reset()
        b.force_close()
        snap = b.snapshot()
        assert (snap.state, snap.state_since, snap.calls, snap.consecutive_failures) == (State.CLOSED, 1000.0, 0, 0)
        b.force_open()
        b.force_open()
        b.disable()
        b.disable()
        b.metrics_only()
        b.metrics_only()
        b.reset()
        assert recorder.changes == [
            (State.CLOSED, State.FORCED_OPEN, TransitionReason.MANUAL),
            (State.FORCED_OPEN, State.DISABLED, TransitionReason.MANUAL),
            (State.DISABLED, State.METRICS_ONLY, TransitionReason.MANUAL),
            (State.METRICS_ONLY, State.CLOSED, TransitionReason.MANUAL),
        ]
        assert b.snapshot().totals.transitions == dict.fromkeys(
            [
                (State.CLOSED, State.FORCED_OPEN),
                (State.FORCED_OPEN, State.DISABLED),
                (State.DISABLED, State.METRICS_ONLY),
                (State.METRICS_ONLY, State.CLOSED),
            ],
            1,
        )

    def test_metrics_only_again_keeps_its_window(self, make_breaker: MakeBreaker, clock: ManualClock) -> None:
        b = make_breaker(minimum_calls=100)
        b.metrics_only()
        fail(b, clock)
        b.metrics_only()
        assert (b.snapshot().calls, b.snapshot().failures) == (1, 1)

    def test_force_open_again_moves_the_deadline_and_says_so(self, clock: ManualClock) -> None:
        config = BreakerConfig(automatic_transition_to_half_open=True)
        b = CircuitBreaker("dep", config, clock=clock)
        recorder = Recorder()
        b.add_listener(recorder)
        b.force_open(60)
        clock.advance(50)
        b.force_open(60)  # another hour of maintenance, say: the deadline moves, the timer too
        assert b.snapshot().open_remaining == 60.0
        clock.advance(59)
        assert b.state is State.FORCED_OPEN
        b.force_open()  # until told otherwise
        assert b.snapshot().open_remaining is None
        clock.advance(3600)
        assert b.state is State.FORCED_OPEN
        assert clock.pending_timers == 0
        b.force_open(10)
        clock.advance(10)
        assert b.state is State.HALF_OPEN
        assert [(e.previous, e.state, e.open_for) for e in recorder.events] == [
            (State.CLOSED, State.FORCED_OPEN, 60.0),
            (State.FORCED_OPEN, State.FORCED_OPEN, 60.0),
            (State.FORCED_OPEN, State.FORCED_OPEN, None),
            (State.FORCED_OPEN, State.FORCED_OPEN, 10.0),
            (State.FORCED_OPEN, State.HALF_OPEN, None),
        ]
        assert b.snapshot().totals.transitions == {
            (State.CLOSED, State.FORCED_OPEN): 1,
            (State.FORCED_OPEN, State.HALF_OPEN): 1,
        }

    def test_every_manual_transition_is_counted(self, make_breaker: MakeBreaker) -> None:
        b = make_breaker()
        b.disable()
        b.metrics_only()
        b.force_open()
        b.reset()
        assert b.snapshot().totals.transitions == {
            (State.CLOSED, State.DISABLED): 1,
            (State.DISABLED, State.METRICS_ONLY): 1,
            (State.METRICS_ONLY, State.FORCED_OPEN): 1,
            (State.FORCED_OPEN, State.CLOSED): 1,
        }


class TestStaleResults:
    def test_result_of_a_call_started_before_opening_does_not_count(
        self, make_breaker: MakeBreaker, clock: ManualClock
    ) -> None:
        b = make_breaker(minimum_calls=1, wait_in_open=5.0, permitted_calls_in_half_open=1)
        b.__enter__()  # admitted while closed, still running
        fail(b, clock)  # trips
        clock.advance(5.0)
        with b:  # the half-open probe
            pass
        assert b.state is State.CLOSED
        # The old call fails now: it started two generations ago, so it does not count.
        b.__exit__(Boom, Boom(), None)
        snap = b.snapshot()
        assert snap.state is State.CLOSED
        assert snap.failures == 0
        assert snap.totals.failures == 2  # but the totals saw it

    def test_a_late_success_cannot_close_a_breaker(self, make_breaker: MakeBreaker, clock: ManualClock) -> None:
        b = make_breaker(minimum_calls=1, permitted_calls_in_half_open=1, wait_in_open=1.0)
        b.__enter__()
        fail(b, clock)
        clock.advance(0.5)
        b.__exit__(None, None, None)
        assert b.state is State.OPEN
        assert b.snapshot().half_open_in_flight == 0


def test_transition_reasons_reach_listeners(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    from breakerpanel import BreakerListener

    seen: list[tuple[State, State, TransitionReason]] = []

    class Recorder(BreakerListener):
        def state_changed(self, event: StateChanged) -> None:
            seen.append((event.previous, event.state, event.reason))

    b = make_breaker(minimum_calls=1, wait_in_open=1.0, permitted_calls_in_half_open=1)
    b.add_listener(Recorder())
    fail(b, clock)
    clock.advance(1)
    succeed(b, clock)
    b.force_open()
    assert seen == [
        (State.CLOSED, State.OPEN, TransitionReason.FAILURE_RATE),
        (State.OPEN, State.HALF_OPEN, TransitionReason.WAIT_ELAPSED),
        (State.HALF_OPEN, State.CLOSED, TransitionReason.PROBES_SUCCEEDED),
        (State.CLOSED, State.FORCED_OPEN, TransitionReason.MANUAL),
    ]


def test_config_cannot_be_anything_else() -> None:
    with pytest.raises(ValueError, match="config"):
        CircuitBreaker("x", {"minimum_calls": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name"):
        CircuitBreaker("  ", BreakerConfig())


@pytest.mark.parametrize(
    ("options", "calls", "reason"),
    [
        (
            {"minimum_calls": 2, "sliding_window_size": 2, "slow_call_duration": 1.0, "slow_call_rate_threshold": 0.5},
            ["slow", "slow"],
            TransitionReason.SLOW_CALL_RATE,
        ),
        (
            {"minimum_calls": 100, "consecutive_failures_threshold": 2},
            ["fail", "fail"],
            TransitionReason.CONSECUTIVE_FAILURES,
        ),
        (
            {"classifier": when_exception(lambda e: isinstance(e, KeyError), rate_limited(3.0))},
            ["rate_limited"],
            TransitionReason.RATE_LIMITED,
        ),
    ],
)
def test_each_way_of_tripping_says_why(
    make_breaker: MakeBreaker,
    clock: ManualClock,
    options: dict[str, object],
    calls: list[str],
    reason: TransitionReason,
) -> None:
    from breakerpanel import BreakerListener

    seen: list[TransitionReason] = []

    class Recorder(BreakerListener):
        def state_changed(self, event: StateChanged) -> None:
            seen.append(event.reason)

    b = make_breaker(**options)
    b.add_listener(Recorder())
    for kind in calls:
        if kind == "slow":
            succeed(b, clock, duration=2.0)
        elif kind == "fail":
            fail(b, clock)
        else:
            fail(b, clock, exc=KeyError("slow down"))
    assert b.state is State.OPEN
    assert seen == [reason]


def test_transitions_are_counted_and_recovery_timed(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker(
        minimum_calls=1, sliding_window_size=1, wait_in_open=5.0, permitted_calls_in_half_open=1, slow_call_duration=60
    )
    fail(b, clock)  # closed -> open at t=1000: recovery starts
    clock.advance(5)
    fail(b, clock)  # open -> half-open -> open again at t=1005: still recovering
    clock.advance(5)
    succeed(b, clock, duration=2.0)  # open -> half-open at 1010, the probe ends at 1012: closed
    fail(b, clock)  # closed -> open again
    assert b.snapshot().totals.transitions == {
        (State.CLOSED, State.OPEN): 2,
        (State.OPEN, State.HALF_OPEN): 2,
        (State.HALF_OPEN, State.OPEN): 1,
        (State.HALF_OPEN, State.CLOSED): 1,
    }
    recovery = b.recovery_histogram()
    assert (recovery.count, recovery.sum) == (1, 12.0)  # from first leaving closed to closed again


def test_waits_under_a_second_are_kept(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker(minimum_calls=1, sliding_window_size=1, wait_in_open=0.25)
    fail(b, clock)
    assert b.snapshot().open_remaining == pytest.approx(0.25)
    clock.advance(0.25)
    succeed(b, clock)  # the probe
    assert b.state is not State.OPEN


@pytest.mark.parametrize("away", ["disable", "metrics_only"])
def test_recovery_is_timed_only_from_an_open_state(make_breaker: MakeBreaker, clock: ManualClock, away: str) -> None:
    # Disabled and metrics-only breakers let every call through: leaving them is not a recovery.
    b = make_breaker(minimum_calls=1, sliding_window_size=1, wait_in_open=5.0)
    getattr(b, away)()
    clock.advance(7)
    b.reset()
    assert b.recovery_histogram().count == 0
    b.force_open()
    clock.advance(3)
    b.force_close()
    recovery = b.recovery_histogram()
    assert (recovery.count, recovery.sum) == (1, 3.0)
