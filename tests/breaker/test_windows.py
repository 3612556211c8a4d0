"""The sliding windows, on their own and inside a breaker."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from breakerpanel import CircuitBreaker, CountWindow, ManualClock, TimeWindow
from breakerpanel._window import MAX_TIME_BUCKETS

from .support import fail, succeed

MakeBreaker = Callable[..., CircuitBreaker]


class TestCountWindow:
    def test_holds_the_last_n_calls(self) -> None:
        w = CountWindow(3)
        w.clear(0.0, 0, 0, 0)
        # calls 1..5: 2 and 3 failed, 3 slow
        w.add(2, failed=True, slow=False)
        w.add(3, failed=True, slow=True)
        assert w.counts(0.0, 3, 2, 1) == (3, 2, 1)
        assert w.counts(0.0, 4, 2, 1) == (3, 2, 1)
        assert w.counts(0.0, 5, 2, 1) == (3, 1, 1)
        assert w.counts(0.0, 6, 2, 1) == (3, 0, 0)

    def test_clear_starts_counting_again(self) -> None:
        w = CountWindow(10)
        w.add(1, failed=True, slow=False)
        w.clear(0.0, 7, 1, 0)
        assert w.counts(0.0, 9, 1, 0) == (2, 0, 0)

    def test_size_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="size"):
            CountWindow(0)


class TestTimeWindow:
    def test_calls_leave_after_the_window(self) -> None:
        w = TimeWindow(10)
        w.clear(100.0, 0, 0, 0)
        w.advance(100.5, 0, 0, 0)
        # 3 calls in second 100, 1 failed
        assert w.counts(100.9, 3, 1, 0) == (3, 1, 0)
        w.advance(105.0, 3, 1, 0)
        assert w.counts(109.9, 5, 1, 0) == (5, 1, 0)
        assert w.counts(110.0, 5, 1, 0) == (2, 0, 0)  # second 100 has left
        assert w.counts(115.0, 5, 1, 0) == (0, 0, 0)

    def test_long_idle_gap_empties_the_window(self) -> None:
        w = TimeWindow(5)
        w.clear(0.0, 0, 0, 0)
        assert w.counts(1.0, 4, 4, 4) == (4, 4, 4)
        assert w.counts(1000.0, 4, 4, 4) == (0, 0, 0)

    def test_bucket_end_tracks_the_current_bucket(self) -> None:
        w = TimeWindow(60)
        w.clear(10.25, 0, 0, 0)
        assert w.bucket_end == 11.0
        w.advance(12.5, 0, 0, 0)
        assert w.bucket_end == 13.0

    def test_long_windows_use_wider_buckets(self) -> None:
        w = TimeWindow(3600)
        w.clear(0.0, 0, 0, 0)
        width = 3600 / MAX_TIME_BUCKETS
        assert w.bucket_end == width
        assert w.counts(3599.0, 9, 0, 0) == (9, 0, 0)
        assert w.counts(3600.0 + width, 9, 0, 0) == (0, 0, 0)


def test_time_based_breaker_forgets_old_failures(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker(sliding_window_type="time_based", sliding_window_size=10, minimum_calls=4)
    for _ in range(3):
        fail(b, clock)
    clock.advance(10.0)
    for _ in range(3):
        succeed(b, clock)
    fail(b, clock)
    snap = b.snapshot()
    assert (snap.calls, snap.failures) == (4, 1)
    assert snap.state.value == "closed"


def test_time_based_breaker_trips_when_successes_expire(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    """Expiry can raise the rate: the check runs on the next call, which must take the slow path."""
    b = make_breaker(sliding_window_type="time_based", sliding_window_size=10, minimum_calls=2)
    for _ in range(8):
        succeed(b, clock)
    clock.advance(5.0)
    fail(b, clock)
    fail(b, clock)
    assert b.state.value == "closed"  # 2 of 10
    clock.advance(5.0)  # the 8 successes leave
    succeed(b, clock)  # 2 of 3
    assert b.state.value == "open"


def test_fast_successes_never_cross_a_bucket_edge_uncounted(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    """With a slow-call duration that does not divide the bucket width, the lock-free span must
    still stop at the bucket's end, or a success would be counted in the bucket before its own."""
    b = make_breaker(
        sliding_window_type="time_based",
        sliding_window_size=2,
        minimum_calls=1,
        failure_rate_threshold=1.0,
        slow_call_duration=0.3,
    )
    succeed(b, clock)  # t=1000.0, bucket 1000
    clock.advance(0.95)
    fail(b, clock)  # t=1000.95: the locked path sets the span for this moment
    succeed(b, clock, duration=0.1)  # ends at 1001.05: bucket 1001
    clock.advance(0.95)  # t=1002.0: the window holds buckets 1001 and 1002
    snap = b.snapshot()
    assert (snap.calls, snap.failures) == (1, 0)


def _call(window: CountWindow | TimeWindow, now: float, counters: list[int], *, failed: bool = False) -> None:
    """One call ending at ``now``, told to the window the way the breaker does (see SlidingWindow)."""
    if now >= window.bucket_end:  # the current bucket ended: the window must hear of it first
        window.advance(now, *counters)
    counters[0] += 1
    if failed:
        counters[1] += 1
        window.add(counters[0], failed=True, slow=False)


class TestFreshWindows:
    """A window nobody cleared yet behaves as if cleared at time 0 with all counters at zero."""

    def test_fresh_count_window_holds_every_call_so_far(self) -> None:
        w = CountWindow(5)
        w.add(1, failed=True, slow=True)
        assert w.counts(0.0, 3, 1, 1) == (3, 1, 1)

    @pytest.mark.parametrize("cleared", [False, True])
    def test_fresh_time_window_matches_one_cleared_at_zero(self, cleared: bool) -> None:
        w = TimeWindow(10)
        if cleared:
            w.clear(0.0, 0, 0, 0)
        counters = [0, 0, 0]
        _call(w, 0.5, counters, failed=True)
        assert w.counts(0.6, *counters) == (1, 1, 0)
        _call(w, 1.5, counters)
        assert w.counts(1.6, *counters) == (2, 1, 0)
        # At 10.5 the window is [1, 11): the failed call of second 0 has left it.
        assert w.counts(10.5, *counters) == (1, 0, 0)


class TestTimeWindowEdges:
    def test_seconds_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="seconds"):
            TimeWindow(0)
        with pytest.raises(ValueError, match="seconds"):
            TimeWindow(-1)

    @pytest.mark.parametrize(("seconds", "width"), [(0.5, 0.5), (1, 1.0), (2, 1.0), (60, 1.0)])
    def test_short_windows_use_one_second_buckets_or_a_single_bucket(self, seconds: float, width: float) -> None:
        assert TimeWindow(seconds).bucket_width == width

    def test_bucket_end_with_two_second_buckets(self) -> None:
        w = TimeWindow(240)  # 120 buckets of 2 s
        assert w.bucket_width == 2.0
        w.advance(5.0, 0, 0, 0)
        assert w.bucket_end == 6.0

    def test_repr_names_the_size(self) -> None:
        assert repr(TimeWindow(30)) == "TimeWindow(seconds=30, buckets=30)"
        assert repr(CountWindow(7)) == "CountWindow(size=7)"
