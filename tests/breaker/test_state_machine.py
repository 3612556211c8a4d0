"""The breaker checked against a small reference model, step by step (Hypothesis).

The model recomputes everything from a plain list of the calls in the window; the breaker derives
its windows from cumulative tallies with a lock-free hot path. Any divergence in state, window
counts, streak, half-open bookkeeping or totals fails the run with the shortest sequence of steps
that shows it.

Calls are held in flight with a :class:`Gate` and driven by hand (``coro.send``), so calls that
overlap state changes, stale generations and half-open permits are all exercised; timers (the
automatic open -> half-open move) fire inside ``ManualClock.advance``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from breakerpanel import (
    BreakerConfig,
    BreakerListener,
    CircuitBreaker,
    CircuitOpenError,
    ExponentialBackoff,
    ManualClock,
    RejectionReason,
    State,
    StateChanged,
    ignore_exceptions,
    rate_limited,
    when_exception,
)

from .support import Boom, Gate, through


class Ignored(Exception):
    """Classified as ignored."""


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


CLASSIFIER = ignore_exceptions(Ignored) | when_exception(
    lambda e: isinstance(e, RateLimited),
    lambda e: rate_limited(e.retry_after if isinstance(e, RateLimited) else None),
)
SLOW = 2.0
WAIT = ExponentialBackoff(initial=2.0, multiplier=2.0, maximum=16.0, jitter=0.0)


@dataclass
class Pending:
    """A call in flight: in the breaker (a suspended coroutine) and in the model."""

    coro: Coroutine[Any, Any, Any]
    gate: Gate
    start: float
    gen: int | None  # model generation; None: admitted while disabled


@dataclass
class Model:
    window_type: str
    window_size: int
    min_calls: int
    fr: float
    sr: float
    consecutive_threshold: int | None
    permitted: int
    max_half_open: float | None
    automatic: bool
    rl_max: float
    state: State = State.CLOSED
    gen: int = 0
    since: float = 0.0
    open_until: float = 0.0
    attempts: int = 0
    window: list[tuple[float, bool, bool]] = field(default_factory=list)  # (end, failed, slow)
    consecutive: int = 0
    ho_in_flight: int = 0
    ho_calls: int = 0
    ho_failures: int = 0
    ho_slow: int = 0
    successes: int = 0
    failures: int = 0
    ignored: int = 0
    slow_total: int = 0
    rejected: dict[RejectionReason, int] = field(default_factory=lambda: dict.fromkeys(RejectionReason, 0))
    transitions: dict[tuple[State, State], int] = field(default_factory=dict)

    # ---- window
    def counts(self, now: float) -> tuple[int, int, int]:
        if self.window_type == "count_based":
            calls = self.window[-self.window_size :]
        else:
            head = math.floor(now)  # one-second buckets: window sizes here are <= 120 s
            calls = [c for c in self.window if math.floor(c[0]) > head - self.window_size]
        return len(calls), sum(1 for c in calls if c[1]), sum(1 for c in calls if c[2])

    # ---- transitions
    def set_state(self, state: State, now: float, open_for: float | None = None, manual: bool = False) -> None:
        if state is not self.state:  # a reset of a closed breaker is no transition
            key = (self.state, state)
            self.transitions[key] = self.transitions.get(key, 0) + 1
        self.gen += 1
        self.state = state
        self.since = now
        self.ho_in_flight = self.ho_calls = self.ho_failures = self.ho_slow = 0
        if state in (State.OPEN, State.FORCED_OPEN):
            self.open_until = now + open_for if open_for is not None else math.inf
        if state is State.CLOSED and not manual:
            self.attempts = 0
        self.window = []
        self.consecutive = 0

    def trip(self, now: float, retry_after: float | None = None) -> None:
        if retry_after is not None:
            wait = min(max(0.0, retry_after), self.rl_max)
        else:
            self.attempts += 1
            wait = WAIT(self.attempts)
        self.set_state(State.OPEN, now, open_for=wait)

    def fire_timers(self, until: float) -> None:
        """What the breaker's timers do while the clock moves to ``until``."""
        if not self.automatic:
            return
        while True:
            if self.state in (State.OPEN, State.FORCED_OPEN) and self.open_until <= until:
                self.set_state(State.HALF_OPEN, self.open_until)
            elif (
                self.state is State.HALF_OPEN
                and self.max_half_open is not None
                and self.since + self.max_half_open <= until
            ):
                self.trip(self.since + self.max_half_open)
            else:
                return

    # ---- admission
    def admit(self, now: float) -> tuple[int | None, RejectionReason | None]:
        if self.state in (State.CLOSED, State.METRICS_ONLY):
            return self.gen, None
        if self.state is State.DISABLED:
            return None, None
        if self.state in (State.OPEN, State.FORCED_OPEN):
            if now < self.open_until:
                reason = RejectionReason.OPEN if self.state is State.OPEN else RejectionReason.FORCED_OPEN
                self.rejected[reason] += 1
                return None, reason
            self.set_state(State.HALF_OPEN, now)
        if self.max_half_open is not None and now - self.since >= self.max_half_open:
            self.trip(now)
            self.rejected[RejectionReason.OPEN] += 1
            return None, RejectionReason.OPEN
        if self.ho_in_flight + self.ho_calls < self.permitted:
            self.ho_in_flight += 1
            return self.gen, None
        self.rejected[RejectionReason.HALF_OPEN_FULL] += 1
        return None, RejectionReason.HALF_OPEN_FULL

    # ---- results
    def finish(self, gen: int | None, kind: str, duration: float, now: float, retry_after: float = 0.0) -> None:
        if gen is None:
            return
        ignored = kind in ("ignored", "cancelled")
        slow = not ignored and duration >= SLOW
        if kind == "success":
            self.successes += 1
        elif ignored:
            self.ignored += 1
        else:
            self.failures += 1
        if slow:
            self.slow_total += 1
        if self.state is State.HALF_OPEN and self.max_half_open is not None and now - self.since >= self.max_half_open:
            # Past the max wait with no timer (or before it ran): the result reopens the breaker
            # and counts only in the totals, whichever generation it belongs to.
            self.trip(now)
            return
        if gen != self.gen:
            return
        if self.state in (State.CLOSED, State.METRICS_ONLY):
            if ignored:
                return
            trips = self.state is State.CLOSED
            if kind == "rate_limited":
                if trips:
                    self.trip(now, retry_after=retry_after)
                return
            failed = kind == "failure"
            self.window.append((now, failed, slow))
            self.consecutive = self.consecutive + 1 if failed else 0
            if not trips:
                return
            if failed and self.consecutive_threshold and self.consecutive >= self.consecutive_threshold:
                self.trip(now)
                return
            calls, failures, slows = self.counts(now)
            if calls >= self.min_calls and calls > 0 and (failures / calls >= self.fr or slows / calls >= self.sr):
                self.trip(now)
        elif self.state is State.HALF_OPEN:
            self.ho_in_flight -= 1
            if ignored:
                return
            if kind == "rate_limited":
                self.trip(now, retry_after=retry_after)
                return
            self.ho_calls += 1
            self.ho_failures += kind == "failure"
            self.ho_slow += slow
            if self.ho_failures / self.permitted >= self.fr or self.ho_slow / self.permitted >= self.sr:
                self.trip(now)
            elif self.ho_calls >= self.permitted:
                self.set_state(State.CLOSED, now)


class Changes(BreakerListener):
    def __init__(self) -> None:
        self.changes: list[StateChanged] = []

    def state_changed(self, event: StateChanged) -> None:
        self.changes.append(event)


# Weighted towards the outcomes that move rates; the rare ones still come up often.
KINDS = st.sampled_from(["success"] * 4 + ["failure"] * 3 + ["ignored", "rate_limited", "cancelled"])


class BreakerMachine(RuleBasedStateMachine):
    @initialize(
        window_type=st.sampled_from(["count_based", "time_based"]),
        window_size=st.integers(1, 8),
        min_calls=st.integers(1, 6),
        fr=st.sampled_from([0.25, 0.5, 0.75, 1.0]),
        sr=st.sampled_from([0.5, 1.0]),
        consecutive_threshold=st.one_of(st.none(), st.integers(1, 4)),
        permitted=st.integers(1, 4),
        max_half_open=st.one_of(st.none(), st.sampled_from([3.0, 7.0])),
        automatic=st.booleans(),
    )
    def setup(
        self,
        window_type: str,
        window_size: int,
        min_calls: int,
        fr: float,
        sr: float,
        consecutive_threshold: int | None,
        permitted: int,
        max_half_open: float | None,
        automatic: bool,
    ) -> None:
        self.clock = ManualClock(start=100.0)
        config = BreakerConfig(
            sliding_window_type=window_type,  # type: ignore[arg-type]
            sliding_window_size=window_size,
            minimum_calls=min_calls,
            failure_rate_threshold=fr,
            slow_call_rate_threshold=sr,
            slow_call_duration=SLOW,
            consecutive_failures_threshold=consecutive_threshold,
            permitted_calls_in_half_open=permitted,
            max_wait_in_half_open=max_half_open,
            automatic_transition_to_half_open=automatic,
            wait_in_open=WAIT,
            classifier=CLASSIFIER,
            rate_limit_max_wait=10.0,
        )
        self.events = Changes()
        self.breaker = CircuitBreaker("model", config, clock=self.clock, listeners=[self.events])
        effective_min = min(min_calls, window_size) if window_type == "count_based" else min_calls
        self.model = Model(
            window_type=window_type,
            window_size=window_size,
            min_calls=effective_min,
            fr=fr,
            sr=sr,
            consecutive_threshold=consecutive_threshold,
            permitted=permitted,
            max_half_open=max_half_open,
            automatic=automatic,
            rl_max=10.0,
            since=100.0,
        )
        self.pending: list[Pending] = []

    # ---- steps

    def _advance(self, seconds: float) -> None:
        self.model.fire_timers(self.clock.now() + seconds)
        self.clock.advance(seconds)

    @rule(seconds=st.sampled_from([0.5, 1.0, 2.0, 3.0, 5.0, 11.0]))
    def advance(self, seconds: float) -> None:
        self._advance(seconds)

    @rule()
    def start_call(self) -> None:
        gate = Gate()
        coro = self.breaker.acall(through, gate)
        now = self.clock.now()
        gen, reason = self.model.admit(now)
        try:
            coro.send(None)
        except CircuitOpenError as exc:
            assert reason is not None, f"breaker rejected ({exc.reason}) where the model admits"
            assert exc.reason is reason
            return
        assert reason is None, f"breaker admitted where the model rejects ({reason})"
        self.pending.append(Pending(coro, gate, now, gen))

    @precondition(lambda self: self.pending)
    @rule(data=st.data(), kind=KINDS, retry_after=st.sampled_from([0.0, 1.0, 4.0, 30.0]))
    def finish_call(self, data: st.DataObject, kind: str, retry_after: float) -> None:
        call = self.pending.pop(data.draw(st.integers(0, len(self.pending) - 1)))
        now = self.clock.now()
        self.model.finish(call.gen, kind, now - call.start, now, retry_after)
        if kind == "cancelled":
            try:
                call.coro.throw(asyncio.CancelledError())
            except asyncio.CancelledError:
                return
            raise AssertionError("the cancellation did not propagate")
        exc = {"failure": Boom(), "ignored": Ignored(), "rate_limited": RateLimited(retry_after)}.get(kind)
        call.gate.exc = exc
        try:
            call.coro.send(None)
        except StopIteration as stop:
            assert exc is None
            assert stop.value == "ok"
        except (Boom, Ignored, RateLimited) as raised:
            assert raised is exc
        else:
            raise AssertionError("the call did not finish")

    @rule(kind=KINDS, duration=st.sampled_from([0.0, 0.0, 0.5, 2.0, 3.0]), retry_after=st.sampled_from([1.0, 30.0]))
    def immediate_call(self, kind: str, duration: float, retry_after: float) -> None:
        """A whole sync call whose work takes ``duration`` (timers may fire meanwhile)."""
        if kind == "cancelled":
            kind = "failure"  # a sync caller's early exit is covered by the context-manager tests
        start = self.clock.now()
        gen, reason = self.model.admit(start)
        exc = {"failure": Boom(), "ignored": Ignored(), "rate_limited": RateLimited(retry_after)}.get(kind)

        def work() -> str:
            self._advance(duration)
            if exc is not None:
                raise exc
            return "ok"

        try:
            result = self.breaker.call(work)
        except CircuitOpenError as rejected:
            assert reason is rejected.reason, f"model: {reason}, breaker: {rejected.reason}"
            return
        except (Boom, Ignored, RateLimited) as raised:
            assert raised is exc
        else:
            assert result == "ok"
            assert exc is None
        assert reason is None, f"breaker admitted where the model rejects ({reason})"
        now = self.clock.now()
        self.model.finish(gen, kind, now - start, now, retry_after)

    @rule(failed=st.booleans(), n=st.integers(1, 4))
    def immediate_burst(self, failed: bool, n: int) -> None:
        """Several quick calls with one outcome: walks windows up to and past minimum_calls."""
        for _ in range(n):
            self.immediate_call("failure" if failed else "success", 0.0, 1.0)

    # One rule for all manual actions, so that they take a fair share of the steps rather than
    # five shares (each resets most of what the other rules build up).
    @rule(
        action=st.sampled_from(["force_open", "force_close", "reset", "disable", "metrics_only"]),
        duration=st.one_of(st.none(), st.sampled_from([1.0, 6.0])),
    )
    def manual(self, action: str, duration: float | None) -> None:
        now = self.clock.now()
        m = self.model
        if action == "force_open":
            self.breaker.force_open(duration)
            if m.state is State.FORCED_OPEN:  # only the deadline moves
                m.open_until = now + duration if duration is not None else math.inf
            else:
                m.set_state(State.FORCED_OPEN, now, open_for=duration, manual=True)
            return
        if action == "reset":
            m.attempts = 0
        getattr(self.breaker, action)()
        state = {
            "force_close": State.CLOSED,
            "reset": State.CLOSED,
            "disable": State.DISABLED,
            "metrics_only": State.METRICS_ONLY,
        }[action]
        if state is not m.state or state is State.CLOSED:  # closed again: a fresh window all the same
            m.set_state(state, now, manual=True)

    # ---- what must always agree

    @invariant()
    def agrees_with_model(self) -> None:
        snap = self.breaker.snapshot()
        m = self.model
        assert snap.state is m.state
        assert (snap.calls, snap.failures, snap.slow_calls) == m.counts(self.clock.now())
        assert snap.consecutive_failures == m.consecutive
        assert (snap.half_open_in_flight, snap.half_open_calls, snap.half_open_failures) == (
            m.ho_in_flight,
            m.ho_calls,
            m.ho_failures,
        )
        assert snap.open_attempts == m.attempts
        totals = snap.totals
        assert (totals.successes, totals.failures, totals.ignored, totals.slow) == (
            m.successes,
            m.failures,
            m.ignored,
            m.slow_total,
        )
        assert totals.rejected == m.rejected
        assert totals.transitions == m.transitions
        # Every event is a transition counted above, or a forced-open deadline that moved.
        assert all(e.previous is not e.state or e.state is State.FORCED_OPEN for e in self.events.changes)
        assert sum(1 for e in self.events.changes if e.previous is not e.state) == sum(m.transitions.values())

    @invariant()
    def half_open_permits_hold(self) -> None:
        snap = self.breaker.snapshot()
        assert snap.half_open_in_flight + snap.half_open_calls <= self.model.permitted

    def teardown(self) -> None:
        for call in self.pending:
            call.coro.close()


TestBreakerMachine = BreakerMachine.TestCase
TestBreakerMachine.settings = settings(
    settings.default, stateful_step_count=60, max_examples=max(300, settings.default.max_examples)
)
