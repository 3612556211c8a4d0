"""Duration and recovery histograms, read by the exporter at collection time."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from breakerpanel import (
    BreakerConfigError,
    BreakerListener,
    CircuitBreaker,
    Histogram,
    ManualClock,
    Outcome,
    StateChanged,
    ignore_exceptions,
)

from .support import Boom, fail, succeed

MakeBreaker = Callable[..., CircuitBreaker]


def test_buckets_are_inclusive_upper_bounds() -> None:
    histogram = Histogram((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 1.0, 3.0):
        histogram.record(value)
    reading = histogram.reading()
    assert reading.counts == (2, 2, 1)  # <=0.1, <=1, above
    assert reading.sum == pytest.approx(4.65)
    assert reading.count == 5
    with pytest.raises(BreakerConfigError, match="bounds"):
        Histogram((1.0, 0.5))


def test_durations_by_outcome_on_both_paths(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker(classifier=ignore_exceptions(KeyError), slow_call_duration=10.0)
    assert b.duration_histograms() == {}
    b.enable_duration_histograms((0.01, 0.1, 1.0))
    succeed(b, clock, duration=0.005)  # the lock-free path
    succeed(b, clock, duration=0.05)
    fail(b, clock, duration=0.5)  # the locked path
    fail(b, clock, duration=2.0, exc=KeyError("k"))
    readings = b.duration_histograms()
    assert readings[Outcome.SUCCESS].counts == (1, 1, 0, 0)
    assert readings[Outcome.FAILURE].counts == (0, 0, 1, 0)
    assert readings[Outcome.IGNORED].counts == (0, 0, 0, 1)
    assert readings[Outcome.SUCCESS].sum == pytest.approx(0.055)
    b.enable_duration_histograms()  # again: keeps the counts
    assert b.duration_histograms()[Outcome.SUCCESS].count == 2


def test_recovery_is_timed_from_leaving_closed_to_closing(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker(minimum_calls=1, wait_in_open=30.0, permitted_calls_in_half_open=1)
    fail(b, clock)
    clock.advance(30)
    fail(b, clock)  # the probe fails: still recovering
    clock.advance(30)
    succeed(b, clock)  # closed, 60 s after it opened
    b.disable()
    b.force_close()  # a manual round trip through disabled is not a recovery
    reading = b.recovery_histogram()
    assert reading.count == 1
    assert reading.sum == pytest.approx(60.0)


def test_listeners_of_state_changes_leave_the_fast_path_alone(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    class Transitions(BreakerListener):
        def state_changed(self, event: StateChanged) -> None:
            pass

    b = make_breaker()
    b.add_listener(Transitions())
    assert b._span_start < b._span_end
    succeed(b, clock)
    fail(b, clock)
    assert b.snapshot().totals.successes == 1
    assert b.snapshot().totals.failures_by_type == {Boom.__module__ + ".Boom": 1}
