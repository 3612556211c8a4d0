"""Adaptive concurrency limits: AIMD and Gradient2, priorities, tickets."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from breakerpanel import BreakerConfigError, ManualClock
from breakerpanel.guards import (
    AIMDLimit,
    ConcurrencyLimiter,
    GradientLimit,
    GuardListener,
    OverloadedError,
    Priority,
    Ticket,
)


def test_limit_bounds_are_checked() -> None:
    with pytest.raises(BreakerConfigError):
        AIMDLimit(initial=0)
    with pytest.raises(BreakerConfigError):
        GradientLimit(initial=10, max_limit=5)
    with pytest.raises(BreakerConfigError):
        AIMDLimit(backoff_ratio=1.0)
    with pytest.raises(BreakerConfigError):
        ConcurrencyLimiter("x", sheddable_share=0)


def test_requests_over_the_limit_are_shed_at_once_but_critical_ones_pass() -> None:
    limiter = ConcurrencyLimiter("ask", AIMDLimit(initial=4), clock=ManualClock())
    tickets = [limiter.try_acquire() for _ in range(4)]
    assert all(tickets)
    assert limiter.try_acquire() is None
    with pytest.raises(OverloadedError) as raised:
        limiter.acquire()
    assert raised.value.retry_after == 1.0
    health = limiter.try_acquire(Priority.CRITICAL)
    assert health is not None
    assert limiter.in_flight == 5
    stats = limiter.statistics()
    assert stats.shed[Priority.NORMAL] == 2
    assert stats.shed[Priority.CRITICAL] == 0
    assert stats.accepted[Priority.CRITICAL] == 1


def test_sheddable_requests_go_first() -> None:
    limiter = ConcurrencyLimiter("ask", AIMDLimit(initial=4), clock=ManualClock(), sheddable_share=0.5)
    assert limiter.try_acquire(Priority.SHEDDABLE) is not None
    assert limiter.try_acquire(Priority.SHEDDABLE) is not None
    assert limiter.try_acquire(Priority.SHEDDABLE) is None  # half the limit is in use
    assert limiter.try_acquire(Priority.NORMAL) is not None


def test_a_ticket_is_released_once() -> None:
    limiter = ConcurrencyLimiter("ask", AIMDLimit(initial=1), clock=ManualClock())
    ticket = limiter.acquire()
    ticket.success()
    assert limiter.in_flight == 0
    with pytest.raises(RuntimeError, match="already released"):
        ticket.ignore()


def run(limiter: ConcurrencyLimiter, clock: ManualClock, n: int, rtt: float, dropped: bool = False) -> None:
    """``n`` rounds of filling the limit with requests that take ``rtt``."""
    for _ in range(n):
        tickets: list[Ticket] = []
        while (ticket := limiter.try_acquire()) is not None:
            tickets.append(ticket)
        clock.advance(rtt)
        for ticket in tickets:
            ticket.dropped() if dropped else ticket.success()


def test_aimd_grows_while_fast_and_backs_off_when_slow() -> None:
    clock = ManualClock()
    limiter = ConcurrencyLimiter("ask", AIMDLimit(initial=10, max_limit=50, latency_threshold=0.5), clock=clock)
    run(limiter, clock, 3, rtt=0.1)
    assert limiter.limit > 10
    grown = limiter.limit
    run(limiter, clock, 1, rtt=1.0)
    assert limiter.limit < grown
    run(limiter, clock, 200, rtt=1.0)
    assert limiter.limit == 1


def test_gradient_holds_at_baseline_latency_and_shrinks_on_queuing() -> None:
    clock = ManualClock()
    limiter = ConcurrencyLimiter("ask", GradientLimit(initial=20, max_limit=200), clock=clock)
    run(limiter, clock, 20, rtt=0.1)
    assert limiter.limit > 20  # latency at its baseline: room to grow
    grown = limiter.limit
    run(limiter, clock, 10, rtt=0.5)  # five times the baseline: queuing
    assert limiter.limit < grown
    run(limiter, clock, 5, rtt=0.5, dropped=True)
    assert limiter.limit >= 1


def test_app_limited_samples_do_not_grow_the_limit() -> None:
    clock = ManualClock()
    for algorithm in (AIMDLimit(initial=20), GradientLimit(initial=20)):
        limiter = ConcurrencyLimiter("ask", algorithm, clock=clock)
        for _ in range(100):
            ticket = limiter.acquire()  # one in flight out of 20
            clock.advance(0.01)
            ticket.success()
        assert limiter.limit == 20


def test_listener_hears_shedding() -> None:
    heard: list[tuple[str, str, int, int]] = []

    class Recorder(GuardListener):
        def shed(self, limiter: str, priority: str, limit: int, in_flight: int) -> None:
            heard.append((limiter, priority, limit, in_flight))

    limiter = ConcurrencyLimiter("ask", AIMDLimit(initial=1), clock=ManualClock(), listeners=[Recorder()])
    limiter.acquire()
    limiter.try_acquire()
    assert heard == [("ask", "normal", 1, 1)]


@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["acquire", "release"]), st.sampled_from(list(Priority)), st.booleans()),
        max_size=300,
    )
)
def test_in_flight_never_exceeds_the_limit_for_sheddable_traffic(ops: list[tuple[str, Priority, bool]]) -> None:
    clock = ManualClock()
    limiter = ConcurrencyLimiter("x", AIMDLimit(initial=5, max_limit=20, latency_threshold=0.05), clock=clock)
    held: list[tuple[Priority, Ticket]] = []
    for op, priority, slow in ops:
        if op == "acquire":
            limit = limiter.limit
            ticket = limiter.try_acquire(priority)
            if priority is Priority.CRITICAL:
                assert ticket is not None
            elif ticket is not None:
                # Admitted only below the limit (counting everything in flight).
                assert len(held) < limit
            else:
                assert len(held) >= (limit if priority is Priority.NORMAL else max(1, int(limit * 0.75)))
            if ticket is not None:
                held.append((priority, ticket))
        elif held:
            clock.advance(0.1 if slow else 0.01)
            held.pop(0)[1].success()
        assert limiter.in_flight == len(held)
        assert 1 <= limiter.limit <= 20


@pytest.mark.parametrize("initial", [1, 2, 4, 8, 20])
def test_gradient_drops_always_lower_the_limit_down_to_min_limit(initial: int) -> None:
    # Halving plus the sqrt(limit) queue allowance is no cut at a limit of 4 or less: drops took
    # a limit of 1 to 3.2 and held 4 there, whatever min_limit said.
    gradient = GradientLimit(initial=initial, min_limit=1)
    limits = [gradient._limit]
    for _ in range(40):
        gradient.on_sample(0.01, initial, dropped=True)
        limits.append(gradient._limit)
    assert all(b <= a for a, b in itertools.pairwise(limits))
    assert gradient.limit == 1


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: GradientLimit(long_window=0), "long_window"),
        (lambda: GradientLimit(long_window=-5), "long_window"),
        (lambda: AIMDLimit(latency_threshold=-1), "latency_threshold"),
        (lambda: AIMDLimit(latency_threshold=0), "latency_threshold"),
        (lambda: ConcurrencyLimiter("x", retry_after=-3), "retry_after"),
        (lambda: ConcurrencyLimiter("x", retry_after=float("nan")), "retry_after"),
    ],
)
def test_settings_that_break_the_algorithms_are_refused(make: object, field: str) -> None:
    with pytest.raises(BreakerConfigError) as caught:
        make()  # type: ignore[operator]
    assert caught.value.field == field
