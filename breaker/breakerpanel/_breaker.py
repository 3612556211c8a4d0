"""The circuit breaker.

Concurrency model
-----------------
One ``threading.Lock`` per breaker guards its state machine, window and counters. It is held only
for bookkeeping, never around the protected call, so calls run concurrently.

The hot path (a closed breaker, a call that succeeds quickly) takes no lock. It reads the clock
before and after the call, compares both readings with the *fast span* (``_span_start``,
``_span_end``) and increments ``_ok``, the count of successes in the window. The span is a stretch
of time on a fixed grid, no longer than the slow-call duration (and the call timeout) and inside
the window's current bucket, that starts no earlier than the last state change. A call that starts
and ends inside it cannot be slow, belongs to the current bucket and was admitted in the current
generation, so two float comparisons replace a duration, a bucket and a generation check. Calls
that straddle the span's edges (a share of about duration / span of them) take the locked path,
which rotates the window and moves the span on. The span is empty (``_span_start`` infinite)
whenever a success might matter to a decision (failures in a window still below
``minimum_calls``), a listener wants every result, or results must be classified.

``self._ok += 1`` takes no lock: on CPython 3.11 to 3.13 with the GIL that increment cannot be
interrupted by another thread. The GIL changes hands only where the interpreter checks its "eval
breaker" (function entry, backward jumps, calls), and loading an int slot, adding two ints and
storing the slot involve none of those, nor any Python code (ints are not tracked by the cyclic GC
and freeing one runs no finaliser). ``tests/breaker/test_concurrency.py`` hammers it from many
threads with a one-microsecond switch interval. Free-threaded builds have no such guarantee, so
there the span stays empty and every call takes the locked path (``_FREE_THREADED`` below).

Every decision (tripping, half-open permits, state changes) is made under the lock. Windows are
derived from the cumulative counts (see ``_window.py``), so the hot path never touches them.

A breaker with a parent (an endpoint) keeps its call paths' span empty and its own in
``_own_span_start``/``_own_span_end``: its success takes the lock-free path (``_fast_success``)
when it lies inside both its own span and its parent's, and then counts in both windows. While
both are closed its ``_closed_gen`` is the token of a call (its generation and its parent's,
packed), so it admits by one read as well; every transition of either empties it first
(``_sync_closed_gen`` has the protocol). Rejections
that the state alone decides (open or forced open before the deadline, half-open with every
permit taken, a parent that rejects) are made without the lock too (``_rejection_by_state``), each
counted in an int slot as ``_ok`` is: a state change racing one leaves that call rejected by the
state it found, as a lock taken just before the change would have.

Generations: every state change increments ``_generation``. A call remembers the generation it was
admitted in; a result that arrives under another generation is not counted in the window (a slow
call that started before the breaker opened must not close it, or reopen it, afterwards).
Admission reads ``_closed_gen``, the generation while closed and negative otherwise: a single
read. :meth:`CircuitBreaker._set_state` clears it, and empties the span, before the generation
moves, and sets them after, so a racing lock-free reader either takes the locked path or carries a
stale generation. The one imprecision left: a success that races a state change from another
thread may be counted in the window that begins, at most one per racing thread.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import math
import sys
import threading
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from contextvars import ContextVar
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, final, overload

from ._classify import SUCCESS, Verdict, VerdictKind, classify_safely, error_type_of, failure
from ._clock import Clock, MonotonicClock, TimerHandle
from ._config import DEFAULT_CONFIG, BreakerConfig
from ._events import BreakerListener, CallRecorded, CallRejected, FallbackUsed, StateChanged, TripPredicted
from ._exceptions import BreakerConfigError, CallTimeoutError, CircuitOpenError
from ._histogram import DEFAULT_DURATION_BOUNDS, DEFAULT_RECOVERY_BOUNDS, Histogram, HistogramReading
from ._monitor import start_monitors
from ._snapshot import MAX_ERROR_TYPES, OTHER_ERROR_TYPE, BreakerSnapshot, CallTotals
from ._state import FallbackType, Level, Outcome, RejectionReason, State, TransitionReason, WindowType
from ._window import CountWindow, SlidingWindow, TimeWindow
from ._wrap import check_decoratable

__all__ = ["CircuitBreaker", "Permit"]

logger = logging.getLogger("breakerpanel")

P = ParamSpec("P")
T = TypeVar("T")

# The generation handed to calls admitted by a disabled breaker: never equal to a real one, so
# nothing about them is recorded.
_UNTRACKED = -1
# The value of _closed_gen that no generation matches.
_NOT_CLOSED = -2
# A call through a child breaker carries its own generation and its parent's in one int (no
# allocation on the call path): ((parent + 2) << 40) | (own + 2). Generations stay far below 2**40.
_TOKEN_SHIFT = 40
_TOKEN_MASK = (1 << _TOKEN_SHIFT) - 1
# The deadline of a breaker forced open with no duration.
_FOREVER = math.inf


def _pack(own: int, parent: int) -> int:
    return ((parent + 2) << _TOKEN_SHIFT) | (own + 2)


def _unpack(token: int) -> tuple[int, int]:
    return (token & _TOKEN_MASK) - 2, (token >> _TOKEN_SHIFT) - 2


# Without the GIL, `self._ok += 1` could lose updates: every call then takes the locked path.
_FREE_THREADED = not getattr(sys, "_is_gil_enabled", lambda: True)()

_CLOSED = State.CLOSED
_OPEN = State.OPEN
_HALF_OPEN = State.HALF_OPEN
_FORCED_OPEN = State.FORCED_OPEN
_DISABLED = State.DISABLED
_METRICS_ONLY = State.METRICS_ONLY
_REJECT_OPEN = RejectionReason.OPEN
_REJECT_FORCED = RejectionReason.FORCED_OPEN
_REJECT_PARENT = RejectionReason.PARENT_OPEN
_REJECT_HALF_OPEN_FULL = RejectionReason.HALF_OPEN_FULL
_SUCCESS = VerdictKind.SUCCESS
_FAILURE = VerdictKind.FAILURE
_IGNORED = VerdictKind.IGNORED
_RATE_LIMITED = VerdictKind.RATE_LIMITED
_CANCELLED = Verdict(VerdictKind.IGNORED, error_type="cancelled")
_SUCCESS_OUTCOME = Outcome.SUCCESS
_FAILURE_OUTCOME = Outcome.FAILURE
_IGNORED_OUTCOME = Outcome.IGNORED
_TIMEOUT = failure("timeout")


_Change = tuple[State, State, TransitionReason, float, float | None]
# A listener of rejections and its gate (BreakerListener.listening, read when it was added).
_Notify = tuple[Callable[[], object] | None, BreakerListener]


@final
class _Block:
    """One ``with`` / ``async with`` block of a breaker, in a context's stack of them."""

    __slots__ = ("below", "open", "start", "timeout", "token")

    def __init__(self, token: int, start: float, timeout: Any, below: _Block | None) -> None:
        self.token = token
        self.start = start
        self.timeout = timeout  # the block's asyncio.timeout context, or None
        self.below = below
        self.open = True


class CircuitBreaker:
    """An async-first circuit breaker with sliding-window failure and slow-call rates.

    Use it as a decorator (sync or async functions), with ``call``/``acall``, or as a (async)
    context manager::

        openai = CircuitBreaker("openai", BreakerConfig(failure_rate_threshold=0.5))

        @openai
        async def complete(prompt: str) -> str: ...

        answer = await openai.acall(client.complete, prompt)

        async with openai:
            await client.complete(prompt)

    A rejected call raises :class:`CircuitOpenError` without calling anything.
    """

    __slots__ = (
        "__weakref__",
        "_admission",
        "_call_listeners",
        "_children",
        "_classifier",
        "_classify_results",
        "_clock",
        "_closed_gen",
        "_cm_stack",
        "_consecutive",
        "_consecutive_threshold",
        "_durations",
        "_failure_rate_threshold",
        "_failures",
        "_failures_by_type",
        "_fallback_types",
        "_fallbacks",
        "_gen_if_closed",
        "_generation",
        "_half_open_calls",
        "_half_open_failures",
        "_half_open_in_flight",
        "_half_open_permits",
        "_half_open_slow",
        "_half_open_until",
        "_left_closed_at",
        "_listeners",
        "_lock",
        "_min_calls",
        "_n_failures",
        "_n_ignored",
        "_n_other_successes",
        "_n_slow_failures",
        "_n_slow_successes",
        "_now",
        "_ok",
        "_ok_at_last_failure",
        "_ok_base",
        "_ok_durations",
        "_ok_first_bound",
        "_ok_first_read",
        "_open_attempts",
        "_open_gate",
        "_open_until",
        "_own_span_end",
        "_own_span_start",
        "_parent",
        "_recovery",
        "_rejected_forced",
        "_rejected_half_open_full",
        "_rejected_open",
        "_rejected_parent",
        "_rejection_gate",
        "_rejection_listeners",
        "_requires",
        "_slow",
        "_slow_call_duration",
        "_slow_call_rate_threshold",
        "_span_end",
        "_span_start",
        "_span_width",
        "_state",
        "_state_reason",
        "_state_since",
        "_timeout",
        "_timer",
        "_transitions",
        "_window",
        "_window_start",
        "attributes",
        "config",
        "level",
        "name",
    )

    name: str
    _parent: CircuitBreaker | None

    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        clock: Clock | None = None,
        listeners: Iterable[BreakerListener] = (),
        parent: CircuitBreaker | None = None,
        level: Level | str | None = None,
        attributes: Mapping[str, str] | None = None,
        requires: Iterable[str] = (),
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise BreakerConfigError("name", f"must be a non-empty string (got {name!r})")
        if config is None:
            config = DEFAULT_CONFIG
        elif not isinstance(config, BreakerConfig):
            raise BreakerConfigError("config", f"expected a BreakerConfig (got {type(config).__name__})")
        if parent is not None:
            if not isinstance(parent, CircuitBreaker):
                raise BreakerConfigError("parent", f"expected a CircuitBreaker (got {type(parent).__name__})")
            if parent._parent is not None:
                # Two levels of breakers (service > endpoint); features depend on breakers instead.
                raise BreakerConfigError("parent", f"{parent.name!r} already has a parent; nest at most two levels")
            if clock is None:
                clock = parent._clock
        try:
            self.level = Level(level) if level is not None else Level.ENDPOINT if parent else Level.SERVICE
        except ValueError:
            raise BreakerConfigError("level", f"expected service, endpoint or feature (got {level!r})") from None
        self.name = name
        self.config = config
        #: Dependency attributes for telemetry (``gen_ai.provider.name``, ``server.address``...).
        self.attributes: Mapping[str, str] = dict(attributes or {})
        self._parent = parent
        # Admission when the call paths cannot admit by a single read (_closed_gen), chosen once,
        # so that a breaker without a parent goes straight to its own state machine. The plain
        # function, called as self._admission(self): a bound method kept on the breaker would be a
        # reference cycle, and a dropped breaker must go at once (monitors hold it weakly).
        self._admission: Callable[[CircuitBreaker], int] = (
            CircuitBreaker._admit_own if parent is None else CircuitBreaker._admit_child
        )
        services = () if isinstance(requires, str) else tuple(requires)
        if isinstance(requires, str) or not all(isinstance(r, str) and r for r in services):
            raise BreakerConfigError("requires", f"expected service names (got {requires!r})")
        self._requires = tuple(sorted(set(services)))
        self._children: tuple[CircuitBreaker, ...] = ()
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        self._now: Callable[[], float] = self._clock.now
        self._lock = threading.Lock()
        self._listeners: tuple[BreakerListener, ...] = ()
        self._call_listeners: tuple[BreakerListener, ...] = ()
        self._rejection_listeners: tuple[_Notify, ...] = ()
        self._rejection_gate: Callable[[], object] | None = None
        self._set_listeners(tuple(listeners))

        self._window: SlidingWindow = (
            TimeWindow(config.sliding_window_size)
            if config.sliding_window_type is WindowType.TIME_BASED
            else CountWindow(config.sliding_window_size)
        )
        self._min_calls = config.effective_minimum_calls
        self._failure_rate_threshold = config.failure_rate_threshold
        self._slow_call_rate_threshold = config.slow_call_rate_threshold
        self._slow_call_duration = config.slow_call_duration
        self._consecutive_threshold = config.consecutive_failures_threshold or 0
        self._classifier = config.classifier_object
        self._classify_results = bool(self._classifier is not None and self._classifier.inspects_results)
        self._timeout = config.call_timeout
        # The fast span's width: a call inside it is shorter than the slow-call duration and, as
        # a sync call cannot be cancelled, than the timeout (it must be counted as one); and it
        # stays inside one bucket of the time window.
        self._span_width = min(self._slow_call_duration, self._timeout or math.inf, self._window.bucket_width)

        # Cumulative counts of the calls that count in the window: successes (incremented by the
        # hot path without the lock), failures and slow calls (under the lock).
        self._ok = 0
        self._failures = 0
        self._slow = 0
        # Totals for telemetry, beyond the counted ones.
        self._n_other_successes = 0  # probes, and results that arrived after a state change
        self._n_failures = 0
        self._n_ignored = 0
        self._n_slow_successes = 0
        self._n_slow_failures = 0
        # Durations by outcome, when an exporter asked for them (enable_duration_histograms);
        # successes through the hot path go to _ok_durations.
        self._durations: dict[Outcome, Histogram] | None = None
        self._ok_durations: Histogram | None = None
        # The hot paths count a success in the first bucket of _ok_durations (every call that
        # takes less than its bound: all of them, for an in-process dependency) in nothing but
        # _ok and the sum: a comparison instead of a bucket search and an increment, 80 ns a
        # call. Every other success is in the buckets, so duration_histograms() derives the first
        # bucket's missing count from the successes since the histograms began: _ok and
        # _n_other_successes, less _ok_base, their sum then.
        #
        # A hot path counts a success in its bucket before it counts it in _ok, without the lock
        # a reading takes, and a reading reads _ok before the buckets. A hot path counting
        # meanwhile makes the derived count short, never over: a reading reports at least what
        # the last one did (_ok_first_read), so no exported bucket goes down (Prometheus would
        # read a reset, a delta exporter a restart), and the count is exact once calls pause.
        # Either other order made it over, and a later reading lower.
        self._ok_base = 0
        self._ok_first_bound = -math.inf
        self._ok_first_read = 0
        self._recovery = Histogram(DEFAULT_RECOVERY_BOUNDS)
        self._left_closed_at: float | None = None
        # Rejections by reason, in int slots: the open, forced-open and parent-open ones are
        # ticked without the lock, like _ok (their paths take none). A dict keyed by the enum
        # would run Enum.__hash__, Python code, on every rejection.
        self._rejected_open = 0
        self._rejected_forced = 0
        self._rejected_parent = 0
        self._rejected_half_open_full = 0
        self._failures_by_type: dict[str, int] = {}
        self._transitions: dict[tuple[State, State], int] = {}
        self._fallbacks: dict[tuple[FallbackType, Outcome], int] = {}
        self._fallback_types: frozenset[FallbackType] = frozenset()

        self._state = _CLOSED
        self._generation = 0
        # The generation while closed, else _NOT_CLOSED: what a lock-free admission hands out.
        # _closed_gen is the one the call paths read; a child breaker's holds its token packed
        # with its parent's generation while both are closed (_sync_closed_gen), else its calls
        # go through _admit_child, which asks the parent first. _gen_if_closed is the breaker's
        # own, kept for every breaker.
        self._gen_if_closed = 0
        self._closed_gen = 0 if parent is None else _NOT_CLOSED
        now = self._now()
        self._state_since = now
        self._state_reason: TransitionReason | None = None  # a new breaker: closed by nobody
        self._open_until = 0.0
        self._open_attempts = 0
        self._timer: TimerHandle | None = None
        self._consecutive = 0
        self._ok_at_last_failure = 0
        self._half_open_in_flight = 0
        self._half_open_calls = 0
        # What a half-open breaker's call paths read to reject without the lock: the permits
        # (the configuration is frozen), and the end of the max wait (set on entering half-open;
        # _FOREVER without one).
        self._half_open_permits = self.config.permitted_calls_in_half_open
        self._half_open_until = _FOREVER
        self._half_open_failures = 0
        self._half_open_slow = 0
        self._span_start = math.inf  # empty until _clear_window() below
        self._span_end = -math.inf
        # A child breaker's own fast span (its _span_* stay empty: a success must also count in
        # the parent, which _record_return checks against the parent's span).
        self._own_span_start = math.inf
        self._own_span_end = -math.inf
        self._window_start = now
        with self._lock:
            self._clear_window(now)
        self._cm_stack: ContextVar[_Block | None] = ContextVar(f"breaker:{name}:calls", default=None)
        if parent is not None:
            with parent._lock:
                parent._children = (*parent._children, self)
            self._sync_closed_gen()
        if config.adaptive is not None or config.forecast is not None:
            start_monitors(self)  # adaptive thresholds, trip forecast: off the call path

    # ------------------------------------------------------------------ calling

    @property
    def state(self) -> State:
        return self._state

    async def acall(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)`` through the breaker."""
        # The hot path reads three attributes, the clock twice and ticks one tally. An open
        # breaker rejects here (every frame an exception unwinds costs more than the check);
        # the other rejections the states decide (_rejection_by_state) raise here too, lock-free.
        gen = self._closed_gen
        if gen < 0:
            state = self._state
            if state is _OPEN:  # raised here: one frame less to unwind than from a helper
                remaining = self._open_until - self._now()
                if remaining > 0:
                    gate = self._open_gate  # asked here: a rejection nobody hears is counted here
                    if gate is None:  # nobody to ask: ~25 ns less than asking None in the try
                        self._rejected_open += 1
                        raise CircuitOpenError(self.name, _OPEN, _REJECT_OPEN, remaining)
                    try:
                        silent = not gate()  # its answer's truth read inside the try too
                    except Exception:  # _open_rejection asks again, and logs it
                        silent = False
                    if not silent:
                        raise self._open_rejection(remaining)
                    self._rejected_open += 1
                    raise CircuitOpenError(self.name, _OPEN, _REJECT_OPEN, remaining)
            elif state is not _CLOSED or self._parent is not None:
                # _rejection_by_state's cases inlined, for a rejection nobody hears. The gate is
                # asked only where a state may reject (not for a metrics-only breaker's calls).
                parent = self._parent
                if parent is not None or state is _FORCED_OPEN or state is _HALF_OPEN:
                    gate = self._open_gate
                    if gate is None:
                        silent = True
                    else:
                        try:
                            silent = not gate()
                        except Exception:  # _rejection_by_state asks again, and logs it
                            silent = False
                    if silent:
                        if parent is not None:
                            parent_gate = parent._open_gate  # the exporter's gate is one object: asked once
                            if parent._state is _OPEN and (parent_gate is None or parent_gate is gate):
                                remaining = parent._open_until - parent._now()  # its clock
                                if remaining > 0:
                                    parent._rejected_open += 1
                                    self._rejected_parent += 1
                                    raise CircuitOpenError(self.name, state, _REJECT_PARENT, remaining, parent.name)
                        elif state is _FORCED_OPEN:
                            until = self._open_until
                            forced_for = None if until == _FOREVER else until - self._now()
                            if forced_for is None or forced_for > 0:
                                self._rejected_forced += 1
                                raise CircuitOpenError(self.name, _FORCED_OPEN, _REJECT_FORCED, forced_for)
                        elif (
                            state is _HALF_OPEN
                            and self._half_open_in_flight + self._half_open_calls >= self._half_open_permits
                            and (self._half_open_until == _FOREVER or self._now() < self._half_open_until)
                        ):
                            self._rejected_half_open_full += 1
                            raise CircuitOpenError(self.name, _HALF_OPEN, _REJECT_HALF_OPEN_FULL, None)
                rejection = self._rejection_by_state(state)
                if rejection is not None:  # raised here: see _rejection_by_state
                    raise CircuitOpenError(*rejection)
            gen = self._admission(self)
        now = self._now
        start = now()
        try:
            if self._timeout is not None:
                result = await self._await_with_timeout(fn(*args, **kwargs))
            elif kwargs:
                result = await fn(*args, **kwargs)
            elif args:
                result = await fn(*args)  # type: ignore[call-arg]
            else:
                # CALL_FUNCTION_EX with empty *args/**kwargs costs ~25 ns more than a plain call.
                result = await fn()  # type: ignore[call-arg]
        except BaseException as exc:
            self._record_exception(gen, start, exc)
            raise
        end = now()
        if start >= self._span_start and end < self._span_end:
            histogram = self._ok_durations
            if histogram is not None:  # inlined Histogram.record: a method call would cost more
                duration = end - start
                if duration > self._ok_first_bound:  # the first bucket's count is derived
                    histogram.counts[bisect_left(histogram.bounds, duration)] += 1
                histogram.sum += duration
            self._ok += 1  # after its bucket: see duration_histograms
        elif self._parent is None or not self._fast_success(start, end, end - start):
            self._record_return(gen, start, end, result, sync=False)
        return result

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn(*args, **kwargs)`` through the breaker.

        A sync call cannot be interrupted: with ``call_timeout`` set, a call that overruns it
        still returns its result but counts as a failure of type ``timeout``.
        """
        gen = self._closed_gen
        if gen < 0:
            state = self._state
            if state is _OPEN:  # raised here: one frame less to unwind than from a helper
                remaining = self._open_until - self._now()
                if remaining > 0:
                    gate = self._open_gate  # asked here: a rejection nobody hears is counted here
                    if gate is None:  # nobody to ask: ~25 ns less than asking None in the try
                        self._rejected_open += 1
                        raise CircuitOpenError(self.name, _OPEN, _REJECT_OPEN, remaining)
                    try:
                        silent = not gate()  # its answer's truth read inside the try too
                    except Exception:  # _open_rejection asks again, and logs it
                        silent = False
                    if not silent:
                        raise self._open_rejection(remaining)
                    self._rejected_open += 1
                    raise CircuitOpenError(self.name, _OPEN, _REJECT_OPEN, remaining)
            elif state is not _CLOSED or self._parent is not None:
                # _rejection_by_state's cases inlined, for a rejection nobody hears. The gate is
                # asked only where a state may reject (not for a metrics-only breaker's calls).
                parent = self._parent
                if parent is not None or state is _FORCED_OPEN or state is _HALF_OPEN:
                    gate = self._open_gate
                    if gate is None:
                        silent = True
                    else:
                        try:
                            silent = not gate()
                        except Exception:  # _rejection_by_state asks again, and logs it
                            silent = False
                    if silent:
                        if parent is not None:
                            parent_gate = parent._open_gate  # the exporter's gate is one object: asked once
                            if parent._state is _OPEN and (parent_gate is None or parent_gate is gate):
                                remaining = parent._open_until - parent._now()  # its clock
                                if remaining > 0:
                                    parent._rejected_open += 1
                                    self._rejected_parent += 1
                                    raise CircuitOpenError(self.name, state, _REJECT_PARENT, remaining, parent.name)
                        elif state is _FORCED_OPEN:
                            until = self._open_until
                            forced_for = None if until == _FOREVER else until - self._now()
                            if forced_for is None or forced_for > 0:
                                self._rejected_forced += 1
                                raise CircuitOpenError(self.name, _FORCED_OPEN, _REJECT_FORCED, forced_for)
                        elif (
                            state is _HALF_OPEN
                            and self._half_open_in_flight + self._half_open_calls >= self._half_open_permits
                            and (self._half_open_until == _FOREVER or self._now() < self._half_open_until)
                        ):
                            self._rejected_half_open_full += 1
                            raise CircuitOpenError(self.name, _HALF_OPEN, _REJECT_HALF_OPEN_FULL, None)
                rejection = self._rejection_by_state(state)
                if rejection is not None:  # raised here: see _rejection_by_state
                    raise CircuitOpenError(*rejection)
            gen = self._admission(self)
        now = self._now
        start = now()
        try:
            if kwargs:
                result = fn(*args, **kwargs)
            elif args:
                result = fn(*args)  # type: ignore[call-arg]
            else:
                # CALL_FUNCTION_EX with empty *args/**kwargs costs ~25 ns more than a plain call.
                result = fn()  # type: ignore[call-arg]
        except BaseException as exc:
            self._record_exception(gen, start, exc)
            raise
        end = now()
        if start >= self._span_start and end < self._span_end:
            histogram = self._ok_durations
            if histogram is not None:  # inlined Histogram.record: a method call would cost more
                duration = end - start
                if duration > self._ok_first_bound:  # the first bucket's count is derived
                    histogram.counts[bisect_left(histogram.bounds, duration)] += 1
                histogram.sum += duration
            self._ok += 1  # after its bucket: see duration_histograms
        elif self._parent is None or not self._fast_success(start, end, end - start):
            self._record_return(gen, start, end, result, sync=True)
        return result

    # call() and acall() for callers that hold a call's arguments packed already (a feature, a
    # fallback chain, an alternate): passing them on as *args and **kwargs unpacks them and packs
    # them again, about 0.1 us a call. Their callers turn most rejections into fallbacks before
    # calling, so an open breaker's rejection is not inlined here as it is in call().

    def _call_args(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        gen = self._closed_gen
        if gen < 0:
            state = self._state
            if state is not _CLOSED or self._parent is not None:
                rejection = self._rejection_by_state(state)
                if rejection is not None:  # raised here: see _rejection_by_state
                    raise CircuitOpenError(*rejection)
            gen = self._admission(self)
        now = self._now
        start = now()
        try:
            result = fn(*args, **kwargs) if kwargs else fn(*args)
        except BaseException as exc:
            self._record_exception(gen, start, exc)
            raise
        end = now()
        if start >= self._span_start and end < self._span_end:
            histogram = self._ok_durations
            if histogram is not None:
                duration = end - start
                if duration > self._ok_first_bound:  # the first bucket's count is derived
                    histogram.counts[bisect_left(histogram.bounds, duration)] += 1
                histogram.sum += duration
            self._ok += 1  # after its bucket: see duration_histograms
        elif self._parent is None or not self._fast_success(start, end, end - start):
            self._record_return(gen, start, end, result, sync=True)
        return result

    async def _acall_args(self, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        gen = self._closed_gen
        if gen < 0:
            state = self._state
            if state is not _CLOSED or self._parent is not None:
                rejection = self._rejection_by_state(state)
                if rejection is not None:  # raised here: see _rejection_by_state
                    raise CircuitOpenError(*rejection)
            gen = self._admission(self)
        now = self._now
        start = now()
        try:
            if self._timeout is not None:
                result = await self._await_with_timeout(fn(*args, **kwargs))
            else:
                result = await (fn(*args, **kwargs) if kwargs else fn(*args))
        except BaseException as exc:
            self._record_exception(gen, start, exc)
            raise
        end = now()
        if start >= self._span_start and end < self._span_end:
            histogram = self._ok_durations
            if histogram is not None:
                duration = end - start
                if duration > self._ok_first_bound:  # the first bucket's count is derived
                    histogram.counts[bisect_left(histogram.bounds, duration)] += 1
                histogram.sum += duration
            self._ok += 1  # after its bucket: see duration_histograms
        elif self._parent is None or not self._fast_success(start, end, end - start):
            self._record_return(gen, start, end, result, sync=False)
        return result

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]: ...

    @overload
    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate a sync or async function so that every call goes through the breaker."""
        if inspect.iscoroutinefunction(fn):
            return _async_decorator(self, fn)
        check_decoratable(fn, self.name)
        return _sync_decorator(self, fn)

    # The context managers keep each call's token and start time in a context variable, so that
    # concurrent tasks (each runs in its own copy of the context) and threads see their own: a
    # linked stack of _Block, the innermost on top. An enter reuses the top block when it is
    # closed, which makes blocks that run one after another cost no ContextVar.set (about 0.1 us
    # each, twice per block), and pushes a new one on an open one; an exit closes the top block,
    # and pops it when the block below is open (nested blocks), so that a context's open blocks
    # are always on top of its stack. That keeps the reuse safe when another context shares the
    # stack (a task or a thread started inside a block copies it): a closed block it takes over
    # is never one this context still has to step over to reach an open block of its own (before
    # the pop, a task started in an inner block took the closed inner block, and its parent's
    # exit closed it: the wrong call recorded, the task's call_timeout disarmed). A block is
    # claimed (``open = True``) right after the check that it is closed, with no call between,
    # so under the GIL no other thread can claim it too; a free-threaded build pushes and pops.

    def __enter__(self) -> CircuitBreaker:
        gen = self._closed_gen
        if gen < 0:
            state = self._state
            if state is _OPEN:  # raised here: one frame less to unwind than from a helper
                remaining = self._open_until - self._now()
                if remaining > 0:
                    gate = self._open_gate  # asked here: a rejection nobody hears is counted here
                    if gate is None:  # nobody to ask: ~25 ns less than asking None in the try
                        self._rejected_open += 1
                        raise CircuitOpenError(self.name, _OPEN, _REJECT_OPEN, remaining)
                    try:
                        silent = not gate()  # its answer's truth read inside the try too
                    except Exception:  # _open_rejection asks again, and logs it
                        silent = False
                    if not silent:
                        raise self._open_rejection(remaining)
                    self._rejected_open += 1
                    raise CircuitOpenError(self.name, _OPEN, _REJECT_OPEN, remaining)
            elif state is not _CLOSED or self._parent is not None:
                # _rejection_by_state's cases inlined, for a rejection nobody hears. The gate is
                # asked only where a state may reject (not for a metrics-only breaker's calls).
                parent = self._parent
                if parent is not None or state is _FORCED_OPEN or state is _HALF_OPEN:
                    gate = self._open_gate
                    if gate is None:
                        silent = True
                    else:
                        try:
                            silent = not gate()
                        except Exception:  # _rejection_by_state asks again, and logs it
                            silent = False
                    if silent:
                        if parent is not None:
                            parent_gate = parent._open_gate  # the exporter's gate is one object: asked once
                            if parent._state is _OPEN and (parent_gate is None or parent_gate is gate):
                                remaining = parent._open_until - parent._now()  # its clock
                                if remaining > 0:
                                    parent._rejected_open += 1
                                    self._rejected_parent += 1
                                    raise CircuitOpenError(self.name, state, _REJECT_PARENT, remaining, parent.name)
                        elif state is _FORCED_OPEN:
                            until = self._open_until
                            forced_for = None if until == _FOREVER else until - self._now()
                            if forced_for is None or forced_for > 0:
                                self._rejected_forced += 1
                                raise CircuitOpenError(self.name, _FORCED_OPEN, _REJECT_FORCED, forced_for)
                        elif (
                            state is _HALF_OPEN
                            and self._half_open_in_flight + self._half_open_calls >= self._half_open_permits
                            and (self._half_open_until == _FOREVER or self._now() < self._half_open_until)
                        ):
                            self._rejected_half_open_full += 1
                            raise CircuitOpenError(self.name, _HALF_OPEN, _REJECT_HALF_OPEN_FULL, None)
                rejection = self._rejection_by_state(state)
                if rejection is not None:  # raised here: see _rejection_by_state
                    raise CircuitOpenError(*rejection)
            gen = self._admission(self)
        calls = self._cm_stack
        top = calls.get()
        if top is not None and not top.open and not _FREE_THREADED:
            top.open = True  # claimed before anything else: see the comment above __enter__
            top.token = gen
            top.start = self._now()
            top.timeout = None
        else:
            calls.set(_Block(gen, self._now(), None, top))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        calls = self._cm_stack
        block = calls.get()
        if block is None or not block.open:
            raise RuntimeError(f"circuit breaker {self.name!r}: exit without a matching enter")
        block.open = False
        below = block.below
        if _FREE_THREADED or (below is not None and below.open):
            calls.set(below)  # nested: this context's open block below is its top again
        gen, start = block.token, block.start
        if exc is not None:
            self._record_exception(gen, start, exc)
            return
        # The hot path of call(), for a block that returned nothing.
        end = self._now()
        if start >= self._span_start and end < self._span_end:
            histogram = self._ok_durations
            if histogram is not None:
                duration = end - start
                if duration > self._ok_first_bound:  # the first bucket's count is derived
                    histogram.counts[bisect_left(histogram.bounds, duration)] += 1
                histogram.sum += duration
            self._ok += 1  # after its bucket: see duration_histograms
        elif self._parent is None or not self._fast_success(start, end, end - start):
            self._record_return(gen, start, end, None, sync=True, has_result=False)

    async def __aenter__(self) -> CircuitBreaker:
        gen = self._closed_gen
        if gen < 0:
            state = self._state
            if state is _OPEN:  # raised here: one frame less to unwind than from a helper
                remaining = self._open_until - self._now()
                if remaining > 0:
                    gate = self._open_gate  # asked here: a rejection nobody hears is counted here
                    if gate is None:  # nobody to ask: ~25 ns less than asking None in the try
                        self._rejected_open += 1
                        raise CircuitOpenError(self.name, _OPEN, _REJECT_OPEN, remaining)
                    try:
                        silent = not gate()  # its answer's truth read inside the try too
                    except Exception:  # _open_rejection asks again, and logs it
                        silent = False
                    if not silent:
                        raise self._open_rejection(remaining)
                    self._rejected_open += 1
                    raise CircuitOpenError(self.name, _OPEN, _REJECT_OPEN, remaining)
            elif state is not _CLOSED or self._parent is not None:
                # _rejection_by_state's cases inlined, for a rejection nobody hears. The gate is
                # asked only where a state may reject (not for a metrics-only breaker's calls).
                parent = self._parent
                if parent is not None or state is _FORCED_OPEN or state is _HALF_OPEN:
                    gate = self._open_gate
                    if gate is None:
                        silent = True
                    else:
                        try:
                            silent = not gate()
                        except Exception:  # _rejection_by_state asks again, and logs it
                            silent = False
                    if silent:
                        if parent is not None:
                            parent_gate = parent._open_gate  # the exporter's gate is one object: asked once
                            if parent._state is _OPEN and (parent_gate is None or parent_gate is gate):
                                remaining = parent._open_until - parent._now()  # its clock
                                if remaining > 0:
                                    parent._rejected_open += 1
                                    self._rejected_parent += 1
                                    raise CircuitOpenError(self.name, state, _REJECT_PARENT, remaining, parent.name)
                        elif state is _FORCED_OPEN:
                            until = self._open_until
                            forced_for = None if until == _FOREVER else until - self._now()
                            if forced_for is None or forced_for > 0:
                                self._rejected_forced += 1
                                raise CircuitOpenError(self.name, _FORCED_OPEN, _REJECT_FORCED, forced_for)
                        elif (
                            state is _HALF_OPEN
                            and self._half_open_in_flight + self._half_open_calls >= self._half_open_permits
                            and (self._half_open_until == _FOREVER or self._now() < self._half_open_until)
                        ):
                            self._rejected_half_open_full += 1
                            raise CircuitOpenError(self.name, _HALF_OPEN, _REJECT_HALF_OPEN_FULL, None)
                rejection = self._rejection_by_state(state)
                if rejection is not None:  # raised here: see _rejection_by_state
                    raise CircuitOpenError(*rejection)
            gen = self._admission(self)
        timeout_cm = None
        if self._timeout is not None:
            try:
                timeout_cm = asyncio.timeout(self._timeout)
                await timeout_cm.__aenter__()
            except BaseException:  # not in an asyncio task: the call never ran, its permit goes back
                self._record(gen, _CANCELLED, 0.0, self._now())
                raise
        calls = self._cm_stack
        top = calls.get()
        if top is not None and not top.open and not _FREE_THREADED:
            top.open = True  # claimed before anything else: see the comment above __enter__
            top.token = gen
            top.start = self._now()
            top.timeout = timeout_cm
        else:
            calls.set(_Block(gen, self._now(), timeout_cm, top))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        calls = self._cm_stack
        block = calls.get()
        if block is None or not block.open:
            raise RuntimeError(f"circuit breaker {self.name!r}: exit without a matching enter")
        block.open = False
        below = block.below
        if _FREE_THREADED or (below is not None and below.open):
            calls.set(below)  # nested: this context's open block below is its top again
        gen, start, timeout_cm = block.token, block.start, block.timeout
        if timeout_cm is not None:
            try:
                await timeout_cm.__aexit__(exc_type, exc, tb)
            except TimeoutError as timeout_exc:
                if not timeout_cm.expired():
                    raise
                error = CallTimeoutError(self.name, self._timeout or 0.0)
                self._record_exception(gen, start, error)
                raise error from timeout_exc
        if exc is not None:
            self._record_exception(gen, start, exc)
            return
        # The hot path of acall(), for a block that returned nothing.
        end = self._now()
        if start >= self._span_start and end < self._span_end:
            histogram = self._ok_durations
            if histogram is not None:
                duration = end - start
                if duration > self._ok_first_bound:  # the first bucket's count is derived
                    histogram.counts[bisect_left(histogram.bounds, duration)] += 1
                histogram.sum += duration
            self._ok += 1  # after its bucket: see duration_histograms
        elif self._parent is None or not self._fast_success(start, end, end - start):
            self._record_return(gen, start, end, None, sync=False, has_result=False)

    async def _await_with_timeout(self, awaitable: Awaitable[T]) -> T:
        assert self._timeout is not None
        timeout_cm = asyncio.timeout(self._timeout)
        try:
            async with timeout_cm:
                return await awaitable
        except TimeoutError as exc:
            if timeout_cm.expired():
                raise CallTimeoutError(self.name, self._timeout) from exc
            raise

    # ------------------------------------------------------------------ admission

    def _rejection_by_state(self, state: State) -> tuple[Any, ...] | None:
        """For a call that finds this breaker not closed (``state``, just read), or its parent
        not closed: the arguments of the call's :class:`CircuitOpenError`, the rejection counted
        and published, when the states alone reject it: open or forced open before the
        deadline, half-open with every permitted probe taken, a parent rejecting so. ``None``
        when admission must decide under the lock: the wait is over, the half-open breaker has
        a permit or has outlived its max wait, another state. A parent that is not closed
        answers before this breaker's own state, except this breaker's own open state; its
        rejection counts in both, here as ``parent_open``.

        Needs no lock: it reads, and ticks lock-free tallies. A change racing it (a permit given
        back, a state change) leaves this one call rejected by the state it found.

        It returns the error's arguments for the call path to raise the error itself: raised
        here, the error would unwind one more frame, and its traceback would make this frame an
        object (about 0.3 us a rejection); built here and returned, it would be raised from a
        local, a reference cycle (exception, traceback, frame) left to the cyclic GC.

        The call paths decide its cases themselves when no listener is told of the rejection
        (no ``_open_gate``, or a gate that says nobody listens; for a parent, no gate or the
        same one): without this frame and the tuple, 0.1 to 0.3 us less a rejection. Change
        them together: tests/breaker/test_fast_paths.py compares every usage with acquire(),
        which asks this helper, in every state."""
        origin = None
        parent = self._parent
        if state is _OPEN:
            now = self._now()
            until = self._open_until
            if not now < until:
                return None
            reason = _REJECT_OPEN
            remaining: float | None = until - now
        elif parent is not None and parent._closed_gen < 0:
            parent_state = parent._state
            if parent_state is not _OPEN and parent_state is not _FORCED_OPEN and parent_state is not _HALF_OPEN:
                return None  # no state of the parent's rejects alone: its admission decides
            refused = parent._rejection_by_state(parent_state)
            if refused is None:
                return None  # the parent's admission decides, under its lock (_admit_child)
            reason = _REJECT_PARENT
            remaining = refused[3]
            origin = refused[4] if len(refused) > 4 else refused[0]
        elif state is _FORCED_OPEN:
            until = self._open_until
            if until == _FOREVER:  # forced open with no duration: no clock to read
                remaining = None
            else:
                remaining = until - self._now()
                if not remaining > 0:
                    return None
            reason = _REJECT_FORCED
        elif state is _HALF_OPEN:
            until = self._half_open_until
            if self._half_open_in_flight + self._half_open_calls < self._half_open_permits or (
                until != _FOREVER and self._now() >= until
            ):
                return None
            reason = _REJECT_HALF_OPEN_FULL
            remaining = None
        else:
            return None
        if _FREE_THREADED:
            with self._lock:
                self._count_rejection(reason)
        elif reason is _REJECT_OPEN:
            self._rejected_open += 1
        elif reason is _REJECT_FORCED:
            self._rejected_forced += 1
        elif reason is _REJECT_HALF_OPEN_FULL:
            self._rejected_half_open_full += 1
        else:
            self._rejected_parent += 1
        if self._rejection_listeners:
            # _wants_rejection(), inlined: with the exporter attached and no span recording, this
            # is all a rejection costs it.
            gate = self._rejection_gate
            try:
                wanted = gate is None or bool(gate())
            except Exception:
                wanted = True
            if wanted:
                self._publish_rejection(reason, state, remaining)
        if origin is None:
            return (self.name, state, reason, remaining)
        return (self.name, state, reason, remaining, origin)

    def _open_rejection(self, remaining: float) -> CircuitOpenError:
        """The error for a call rejected while open, ``remaining`` seconds before the deadline,
        counted and published (``_rejection_by_state``'s open case, for the call paths to raise
        without asking that helper). The call paths count and
        build it themselves when ``_open_gate`` says nobody hears it."""
        if _FREE_THREADED:
            with self._lock:
                self._rejected_open += 1
        else:
            self._rejected_open += 1
        if self._rejection_listeners and self._wants_rejection():
            self._publish_rejection(_REJECT_OPEN, _OPEN, remaining)
        return CircuitOpenError(self.name, _OPEN, _REJECT_OPEN, remaining)

    def _admit_child(self) -> int:
        """Admission of a breaker with a parent (``_admission``): the token the call runs under
        (its generation and its parent's, packed), or :class:`CircuitOpenError`."""
        parent = self._parent
        assert parent is not None
        parent_gen = parent._closed_gen
        gen = self._gen_if_closed
        if parent_gen >= 0 and gen >= 0:  # both closed, and _closed_gen lost to a race: mend it
            self._sync_closed_gen()
            return ((parent_gen + 2) << _TOKEN_SHIFT) | (gen + 2)
        # The parent admits first: an open service rejects its endpoints' calls before they
        # touch, or count in, the endpoints' windows. The callers asked _rejection_by_state just
        # before, which rejects when the parent's state alone decides, except for a breaker open
        # past its own wait (the call paths go on to admission then): ask for it here, without
        # the parent's lock, which every such call took for as long as the parent stayed open.
        if parent_gen < 0:
            if self._state is _OPEN:
                refused = parent._rejection_by_state(parent._state)
                if refused is not None:
                    raise self.reject_for_dependency(refused[4] if len(refused) > 4 else refused[0], refused[3])
            refused_by: tuple[str, float | None] | None = None
            try:
                parent_gen = parent._admission(parent)
            except CircuitOpenError as exc:
                refused_by = (exc.origin, exc.remaining)
            if refused_by is not None:  # raised outside the except: no context, as _rejection_by_state's
                raise self.reject_for_dependency(*refused_by)
        gen = self._gen_if_closed  # closed: no lock, as for a breaker without a parent
        if gen < 0:
            try:
                gen = self._admit_own()
            except CircuitOpenError:
                parent._release(parent_gen)
                raise
        return _pack(gen, parent_gen)

    def _sync_closed_gen(self) -> None:
        """Set a child's ``_closed_gen``: the token of a call admitted now (its generation and its
        parent's, packed) while both are closed, so that its call paths admit by one read as a
        breaker without a parent does; else ``_NOT_CLOSED``. Needs no lock.

        Two writers can race: the child's transitions (under its lock) and its parent's (under
        the parent's). Each changes this value's inputs (``_gen_if_closed``, the parent's
        ``_closed_gen``) before it empties this value, so a writer that finds an input changed
        after its write has raced one, and empties the value itself: a stale token never
        outlives the change. An emptied value costs speed, not correctness: ``_admit_child``
        mends it on the next call that finds both closed."""
        parent = self._parent
        if parent is None or _FREE_THREADED:  # no such ordering guarantee without the GIL
            return
        parent_gen = parent._closed_gen
        gen = self._gen_if_closed
        if parent_gen < 0 or gen < 0:
            self._closed_gen = _NOT_CLOSED
            return
        self._closed_gen = ((parent_gen + 2) << _TOKEN_SHIFT) | (gen + 2)
        if parent._closed_gen != parent_gen or self._gen_if_closed != gen:
            self._closed_gen = _NOT_CLOSED

    def _admit_own(self) -> int:
        """Admission by this breaker's own state (``_admission`` of a breaker without a parent)."""
        changes: list[_Change] = []
        rejection: CircuitOpenError | None = None
        gen = _UNTRACKED
        with self._lock:
            state = self._state
            if state is _CLOSED or state is _METRICS_ONLY:
                return self._generation
            if state is _DISABLED:
                return _UNTRACKED
            now = self._now()
            if state is _OPEN or state is _FORCED_OPEN:
                if now < self._open_until:
                    remaining_or_none = None if self._open_until == math.inf else self._open_until - now
                    rejection = self._reject(_REJECT_OPEN if state is _OPEN else _REJECT_FORCED, remaining_or_none)
                else:
                    changes.append(self._set_state(_HALF_OPEN, TransitionReason.WAIT_ELAPSED, now))
            if rejection is None:  # half-open, possibly just now
                if self._half_open_expired(now):
                    changes.append(self._open(now, TransitionReason.HALF_OPEN_TIMEOUT))
                    rejection = self._reject(_REJECT_OPEN, self._open_until - now)
                elif self._half_open_in_flight + self._half_open_calls < self.config.permitted_calls_in_half_open:
                    self._half_open_in_flight += 1
                    gen = self._generation
                else:
                    rejection = self._reject(_REJECT_HALF_OPEN_FULL, None)
        if changes:
            self._publish_changes(changes)
        if rejection is not None:
            if self._rejection_listeners:
                self._publish_rejection(rejection.reason, rejection.state, rejection.remaining)
            try:
                raise rejection
            finally:
                del rejection  # no cycle through this frame (see _rejection_by_state)
        return gen

    def _parent_rejection(self, exc: CircuitOpenError) -> CircuitOpenError:
        """This breaker's ``parent_open`` rejection for the parent's ``exc``."""
        return self.reject_for_dependency(exc.origin, exc.remaining)

    def reject_for_dependency(self, origin: str, remaining: float | None) -> CircuitOpenError:
        """Count, publish and return the rejection of a call because ``origin``, a breaker this one
        depends on (its parent, or a feature's dependency), is open."""
        # A lock-free tally, like the open rejections': the lock would be taken for one increment.
        if _FREE_THREADED:
            with self._lock:
                self._rejected_parent += 1
        else:
            self._rejected_parent += 1
        state = self._state
        if self._rejection_listeners and self._wants_rejection():
            self._publish_rejection(_REJECT_PARENT, state, remaining)
        return CircuitOpenError(self.name, state, _REJECT_PARENT, remaining, origin)

    def _release(self, token: int) -> None:
        """Give back what admission took (a half-open permit) for a call that never ran."""
        if self._parent is not None:
            token, parent_token = _unpack(token)
            self._parent._release(parent_token)
        with self._lock:
            if token == self._generation and self._state is _HALF_OPEN:
                self._half_open_in_flight -= 1

    def _reject(self, reason: RejectionReason, remaining: float | None) -> CircuitOpenError:
        """Count a rejection (under the lock) and return its error."""
        self._count_rejection(reason)
        return CircuitOpenError(self.name, self._state, reason, remaining)

    def _count_rejection(self, reason: RejectionReason) -> None:
        # Int slots, incremented under the lock or, where a path takes none, as _ok is (module
        # docstring): each increment is atomic with the GIL.
        if reason is _REJECT_OPEN:
            self._rejected_open += 1
        elif reason is _REJECT_FORCED:
            self._rejected_forced += 1
        elif reason is _REJECT_PARENT:
            self._rejected_parent += 1
        else:
            self._rejected_half_open_full += 1

    # ------------------------------------------------------------------ recording

    def _record_return(
        self, gen: int, start: float, end: float, result: Any, *, sync: bool, has_result: bool = True
    ) -> None:
        duration = end - start
        if sync and self._timeout is not None and duration >= self._timeout:
            verdict = _TIMEOUT
        elif has_result and self._classify_results:
            verdict = self._safe_classify(None, result) or SUCCESS
        else:
            verdict = SUCCESS
        self._record(gen, verdict, duration, end)

    def _fast_success(self, start: float, end: float, duration: float) -> bool:
        """Count a success that ran from ``start`` to ``end`` without a lock if it lies inside the
        fast span (and, for a breaker with a parent, inside the parent's too): then it counts in
        the window(s) and can trip nothing (see _refresh_fast), which is all _record would find
        out, under one lock per level. Returns whether it did. ``duration`` is what the histograms
        record, at most ``end - start`` (a stream's time to its first chunk)."""
        parent = self._parent
        if parent is None:
            if not (start >= self._span_start and end < self._span_end):
                return False
        elif not (
            start >= self._own_span_start
            and end < self._own_span_end
            and start >= parent._span_start
            and end < parent._span_end
        ):
            return False
        histogram = self._ok_durations
        if histogram is not None:
            if duration > self._ok_first_bound:  # the first bucket's count is derived
                histogram.counts[bisect_left(histogram.bounds, duration)] += 1
            histogram.sum += duration
        self._ok += 1  # after its bucket: see duration_histograms
        if parent is not None:
            histogram = parent._ok_durations
            if histogram is not None:
                if duration > parent._ok_first_bound:  # the first bucket's count is derived
                    histogram.counts[bisect_left(histogram.bounds, duration)] += 1
                histogram.sum += duration
            parent._ok += 1  # after its bucket: see duration_histograms
        return True

    def _record_exception(self, gen: int, start: float, exc: BaseException) -> None:
        end = self._now()
        self._record(gen, self.classify_exception(exc), end - start, end)

    def classify_exception(self, exc: BaseException) -> Verdict:
        """What an exception from a protected call means to this breaker."""
        if not isinstance(exc, Exception):
            # CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit: the caller gave up,
            # which says nothing about the dependency. Neither success nor failure; a half-open
            # probe gives its permit back.
            return _CANCELLED
        if isinstance(exc, CallTimeoutError) and exc.breaker_name == self.name:
            return _TIMEOUT
        return self._safe_classify(exc, None) or failure(error_type_of(exc))

    def _safe_classify(self, exc: BaseException | None, result: Any) -> Verdict | None:
        classifier = self._classifier
        if classifier is None:
            return None
        return classify_safely(classifier, exc, result, self.name)

    def _record(self, gen: int, verdict: Verdict, duration: float, end: float) -> None:
        """Record one finished call: every path but the hot one."""
        if self._parent is not None:
            gen, parent_gen = _unpack(gen)
            self._parent._record(parent_gen, verdict, duration, end)
        if gen == _UNTRACKED:
            return
        if verdict.kind is _RATE_LIMITED and verdict.retry_after is None:
            verdict = failure(verdict.error_type or "rate_limited")
        kind = verdict.kind
        slow = kind is not _IGNORED and duration >= self._slow_call_duration
        change: _Change | None = None
        with self._lock:
            state = self._state
            same_generation = gen == self._generation
            in_window = state is _CLOSED or state is _METRICS_ONLY
            if same_generation and in_window and kind is not _IGNORED:
                counted = True
                change = self._record_in_window(verdict, slow, end, trips=state is _CLOSED)
            elif state is _HALF_OPEN and self._half_open_expired(end):
                # Past max_wait_in_half_open with no timer to act on it (or one about to): the
                # breaker reopens now, as resilience4j does at the max wait, and this late result
                # is recorded in the totals only. It must not close the breaker.
                counted = False
                change = self._open(end, TransitionReason.HALF_OPEN_TIMEOUT)
            elif same_generation and state is _HALF_OPEN:
                counted = kind is not _IGNORED
                change = self._record_probe(verdict, slow, end)
            else:
                counted = False
            # Totals. Successes counted in the window are already in the `_ok` tally.
            if kind is _SUCCESS:
                if not (counted and in_window):
                    self._n_other_successes += 1
            elif kind is _IGNORED:
                self._n_ignored += 1
            else:
                self._n_failures += 1
                self._count_error_type(verdict.error_type or "failure")
            outcome = (
                _SUCCESS_OUTCOME if kind is _SUCCESS else _IGNORED_OUTCOME if kind is _IGNORED else _FAILURE_OUTCOME
            )
            if slow:
                if kind is _SUCCESS:
                    self._n_slow_successes += 1
                else:
                    self._n_slow_failures += 1
            if self._durations is not None:
                self._durations[outcome].record(duration)
        if change is not None:
            self._publish_changes([change])
        if self._call_listeners:
            self._emit("call_recorded", CallRecorded(self, outcome, verdict.error_type, duration, slow, counted))

    def _count_error_type(self, error_type: str) -> None:
        by_type = self._failures_by_type
        if error_type not in by_type and len(by_type) >= MAX_ERROR_TYPES:
            error_type = OTHER_ERROR_TYPE
        by_type[error_type] = by_type.get(error_type, 0) + 1

    def _record_in_window(self, verdict: Verdict, slow: bool, now: float, *, trips: bool) -> _Change | None:
        kind = verdict.kind
        if kind is _RATE_LIMITED:
            if not trips:
                return None
            assert verdict.retry_after is not None
            return self._open(now, TransitionReason.RATE_LIMITED, retry_after=verdict.retry_after)
        window = self._window
        ok = self._ok
        # Buckets that begin now start from the counts before this call.
        window.advance(now, ok + self._failures, self._failures, self._slow)
        failed = kind is _FAILURE
        if failed:
            self._failures += 1
            if ok != self._ok_at_last_failure:  # a success since the last failure ends the streak
                self._consecutive = 0
                self._ok_at_last_failure = ok
            self._consecutive += 1
        else:
            self._ok += 1
            ok += 1
        if slow:
            self._slow += 1
        calls = ok + self._failures
        window.add(calls, failed, slow)
        counts = window.counts(now, calls, self._failures, self._slow)
        change: _Change | None = None
        if trips:
            if failed and self._consecutive_threshold and self._consecutive >= self._consecutive_threshold:
                change = self._open(now, TransitionReason.CONSECUTIVE_FAILURES)
            else:
                change = self._check_rates(now, counts)
        if change is None:
            self._refresh_fast(counts, now)
        return change

    def _check_rates(self, now: float, counts: tuple[int, int, int]) -> _Change | None:
        calls, failures, slow = counts
        if calls < self._min_calls or calls == 0:
            return None
        if failures / calls >= self._failure_rate_threshold:
            return self._open(now, TransitionReason.FAILURE_RATE)
        if slow / calls >= self._slow_call_rate_threshold:
            return self._open(now, TransitionReason.SLOW_CALL_RATE)
        return None

    def _refresh_fast(self, counts: tuple[int, int, int], now: float) -> None:
        """Set the fast span for ``now``, or empty it (see the module docstring)."""
        calls, failures, slow = counts
        # With failures or slow calls in a window still below minimum_calls, a success can be
        # the call that brings it up to the minimum and trips it: it must be checked.
        armed = calls < self._min_calls and (failures > 0 or slow > 0)
        if self._state is not _CLOSED or armed or self._call_listeners or self._classify_results or _FREE_THREADED:
            self._span_start, self._span_end = math.inf, -math.inf
            self._own_span_start, self._own_span_end = math.inf, -math.inf
            return
        # On a fixed grid, so that recording a call does not move the span under calls in flight.
        width = self._span_width
        grid = math.floor(now / width) * width
        start = max(grid, self._window_start)
        end = min(grid + width, self._window.bucket_end)
        if self._parent is None:
            self._span_start, self._span_end = start, end
        else:
            # A child's success also counts in its parent: the call paths' span stays empty, and
            # _record_return checks this one and the parent's.
            self._own_span_start, self._own_span_end = start, end

    def _half_open_expired(self, now: float) -> bool:
        """Whether a half-open breaker has outlived ``max_wait_in_half_open`` (under the lock)."""
        return now >= self._half_open_until  # the call paths' test too: one expression decides

    def _record_probe(self, verdict: Verdict, slow: bool, now: float) -> _Change | None:
        self._half_open_in_flight -= 1
        kind = verdict.kind
        if kind is _IGNORED:
            return None  # the permit is free for another probe
        if kind is _RATE_LIMITED:
            assert verdict.retry_after is not None
            return self._open(now, TransitionReason.RATE_LIMITED, retry_after=verdict.retry_after)
        permitted = self.config.permitted_calls_in_half_open
        self._half_open_calls += 1
        if kind is _FAILURE:
            self._half_open_failures += 1
        if slow:
            self._half_open_slow += 1
        # Reopen as soon as the outcome is certain: the final rates can only be at least these.
        if (
            self._half_open_failures / permitted >= self._failure_rate_threshold
            or self._half_open_slow / permitted >= self._slow_call_rate_threshold
        ):
            return self._open(now, TransitionReason.PROBES_FAILED)
        if self._half_open_calls >= permitted:
            return self._set_state(_CLOSED, TransitionReason.PROBES_SUCCEEDED, now)
        return None

    # ------------------------------------------------------------------ transitions (under the lock)

    def _clear_window(self, now: float) -> None:
        ok = self._ok
        self._window.clear(now, ok + self._failures, self._failures, self._slow)
        self._consecutive = 0
        self._ok_at_last_failure = ok
        # Strictly after the change: a call admitted before it may have read the same time.
        self._window_start = math.nextafter(now, math.inf)
        self._refresh_fast((0, 0, 0), now)

    def _open(self, now: float, reason: TransitionReason, *, retry_after: float | None = None) -> _Change:
        if retry_after is not None:
            wait = min(max(0.0, retry_after), self.config.rate_limit_max_wait)
        else:
            self._open_attempts += 1
            wait = self._wait_in_open(self._open_attempts)
        return self._set_state(_OPEN, reason, now, open_for=wait)

    def _wait_in_open(self, attempt: int) -> float:
        """The wait strategy's seconds for this opening. Numbers and the built-in strategies are
        validated with the configuration; a custom strategy that returns something else than
        finite positive seconds (NaN, infinity, 0, a negative number) gets the default wait: an
        open breaker always has a deadline, and no timer is ever set for an infinite delay."""
        value = self.config.wait_strategy(attempt)
        try:
            wait = float(value)
        except (TypeError, ValueError):
            wait = math.nan
        if 0.0 < wait < math.inf:
            return wait
        fallback = float(DEFAULT_CONFIG.wait_strategy(attempt))
        logger.error(
            "circuit breaker %r: wait strategy %r returned %r for opening %d; waiting %ss instead "
            "(a wait must be finite positive seconds: use force_open() to stay open until told otherwise)",
            self.name,
            self.config.wait_strategy,
            value,
            attempt,
            fallback,
        )
        return fallback

    def _set_state(self, new: State, reason: TransitionReason, now: float, *, open_for: float | None = None) -> _Change:
        previous = self._state
        # Order matters for the lock-free readers (module docstring): clear the fast flags
        # before the generation moves; set them (in _clear_window) after.
        self._span_start, self._span_end = math.inf, -math.inf
        self._own_span_start, self._own_span_end = math.inf, -math.inf
        # The inputs of a child's packed _closed_gen before the value (see _sync_closed_gen).
        self._gen_if_closed = self._closed_gen = _NOT_CLOSED
        for child in self._children:
            child._closed_gen = _NOT_CLOSED
        self._generation += 1
        self._state = new
        self._state_reason = reason
        if new is not previous:  # a reset of a closed breaker: still closed since then
            self._state_since = now
        self._half_open_in_flight = self._half_open_calls = 0
        self._half_open_failures = self._half_open_slow = 0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        automatic = self.config.automatic_transition_to_half_open
        if new is _OPEN or new is _FORCED_OPEN:
            self._open_until = now + open_for if open_for is not None else math.inf
            if open_for is not None and automatic:
                self._timer = self._clock.call_later(open_for, functools.partial(self._on_open_timer, self._generation))
        elif new is _HALF_OPEN:
            max_wait = self.config.max_wait_in_half_open
            self._half_open_until = _FOREVER if max_wait is None else self._state_since + max_wait
            if max_wait is not None and automatic:
                self._timer = self._clock.call_later(
                    max_wait, functools.partial(self._on_half_open_timer, self._generation)
                )
        elif new is _CLOSED and reason is not TransitionReason.MANUAL:
            self._open_attempts = 0
        if new is _CLOSED:
            self._gen_if_closed = self._generation
            if self._parent is None:
                self._closed_gen = self._generation
                for child in self._children:
                    child._sync_closed_gen()
            else:
                self._sync_closed_gen()
        self._clear_window(now)
        if new is not previous:  # a reset of a closed breaker is no transition
            key = (previous, new)
            self._transitions[key] = self._transitions.get(key, 0) + 1
        # Recovery: from leaving closed for an open state to being closed again.
        if previous is _CLOSED and (new is _OPEN or new is _FORCED_OPEN):
            self._left_closed_at = now
        elif new is _CLOSED and self._left_closed_at is not None:
            self._recovery.record(now - self._left_closed_at)
            self._left_closed_at = None
        return (previous, new, reason, now, open_for)

    def _on_open_timer(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation or self._state not in (_OPEN, _FORCED_OPEN):
                return
            change = self._set_state(_HALF_OPEN, TransitionReason.WAIT_ELAPSED, self._now())
        self._publish_changes([change])

    def _on_half_open_timer(self, generation: int) -> None:
        with self._lock:
            if generation != self._generation or self._state is not _HALF_OPEN:
                return
            change = self._open(self._now(), TransitionReason.HALF_OPEN_TIMEOUT)
        self._publish_changes([change])

    # ------------------------------------------------------------------ two-step calls

    def acquire(self) -> Permit:
        """Admit one call and return its :class:`Permit`; the caller records the outcome.

        For work that is not one function call: a response streamed back to the caller after
        the request returned, a connection held across several queries. Raises
        :class:`CircuitOpenError` like any rejected call.
        """
        gen = self._closed_gen
        if gen < 0:  # as in call()
            gen = self._admit()
        return Permit(self, gen, self._now())

    def _admit(self) -> int:
        """Admission for :meth:`acquire` and the HTTP transports (which build their own
        permits) when ``_closed_gen`` does not admit at once: the token, or the rejection."""
        rejection = self._rejection_by_state(self._state)
        if rejection is not None:
            raise CircuitOpenError(*rejection)
        return self._admission(self)

    # ------------------------------------------------------------------ hierarchy

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def parent(self) -> CircuitBreaker | None:
        """The breaker that admits this one's calls first (an endpoint's service)."""
        return self._parent

    @property
    def children(self) -> tuple[CircuitBreaker, ...]:
        return self._children

    @property
    def service(self) -> str | None:
        """The service this breaker belongs to: its own name for a service, its parent's for an
        endpoint, None for a feature (see :attr:`requires`). Telemetry ties alerts together by it."""
        if self.level is Level.FEATURE:
            return None
        return self._parent.name if self._parent is not None else self.name

    @property
    def requires(self) -> tuple[str, ...]:
        """For a feature: the services its required dependencies belong to, sorted."""
        return self._requires

    def is_rejecting(self) -> bool:
        """Whether a call now would be rejected for being open (here or in the parent).

        A breaker whose open wait is over is not rejecting: the next call is its probe.
        """
        state = self._state
        if (state is _OPEN or state is _FORCED_OPEN) and self._now() < self._open_until:
            return True
        parent = self._parent
        return parent is not None and parent.is_rejecting()

    def reject_on_behalf(self) -> CircuitOpenError | None:
        """If a call now would be rejected for being open (here or in the parent), count that
        rejection as if the call had come and return it; else count nothing and return None.

        For a caller that turns a call away because this breaker is open, without calling
        through it (a feature whose required dependency is open): the dependency's own metrics
        then show the demand it fails, as they would have for the call itself, so an error
        budget or an alert about the dependency sees every caller it lets down.
        """
        parent = self._parent
        if parent is not None:
            refused = parent.reject_on_behalf()
            if refused is not None:
                return self._parent_rejection(refused)
        rejection = None
        with self._lock:
            state = self._state
            now = self._now()
            if (state is _OPEN or state is _FORCED_OPEN) and now < self._open_until:
                remaining = None if self._open_until == math.inf else self._open_until - now
                rejection = self._reject(_REJECT_OPEN if state is _OPEN else _REJECT_FORCED, remaining)
        if rejection is not None and self._rejection_listeners:
            self._publish_rejection(rejection.reason, rejection.state, rejection.remaining)
        return rejection

    # ------------------------------------------------------------------ fallbacks

    def declare_fallbacks(self, *fallback_types: FallbackType) -> None:
        """Announce the kinds of fallback this breaker's calls may use (fallback chains do), so an
        exporter can report them at 0 before their first use: a counter that appears at 1 loses
        its first increment to ``rate()``."""
        with self._lock:
            self._fallback_types = self._fallback_types | {FallbackType(t) for t in fallback_types}

    @property
    def fallback_types(self) -> frozenset[FallbackType]:
        """The kinds of fallback declared or used for this breaker's calls."""
        return self._fallback_types | {kind for kind, _ in self._fallbacks}

    def record_fallback(
        self,
        fallback_type: FallbackType,
        *,
        succeeded: bool,
        step: str | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Count one use of a fallback for this breaker's calls (fallback chains call this)."""
        outcome = Outcome.SUCCESS if succeeded else Outcome.FAILURE
        key = (FallbackType(fallback_type), outcome)
        with self._lock:
            self._fallbacks[key] = self._fallbacks.get(key, 0) + 1
        if self._listeners:
            self._emit("fallback_used", FallbackUsed(self, key[0], step or key[0].value, outcome, error))

    # ------------------------------------------------------------------ durations

    def enable_duration_histograms(self, bounds: tuple[float, ...] = DEFAULT_DURATION_BOUNDS) -> None:
        """Start counting call durations per outcome in buckets (an exporter calls this). Costs a
        bucket search per call; off by default. Calling it again keeps the existing counts."""
        with self._lock:
            if self._durations is not None:
                return
            durations = {
                outcome: Histogram(bounds) for outcome in (_SUCCESS_OUTCOME, _FAILURE_OUTCOME, _IGNORED_OUTCOME)
            }
            self._durations = durations
            self._ok_base = self._ok + self._n_other_successes
            self._ok_first_bound = durations[_SUCCESS_OUTCOME].bounds[0]
            self._ok_durations = durations[_SUCCESS_OUTCOME]

    def duration_histograms(self) -> dict[Outcome, HistogramReading]:
        """Call durations by outcome (empty unless :meth:`enable_duration_histograms` was called)."""
        with self._lock:
            if self._durations is None:
                return {}
            # The successes before the buckets: a hot path that counts between the two reads
            # is then in the buckets alone, which makes the derived count short, never over.
            successes = self._ok + self._n_other_successes
            readings = {o: h.reading() for o, h in self._durations.items()}
            ok = readings[_SUCCESS_OUTCOME]
            # The hot paths' successes in the first bucket (see _ok_base in __init__), never
            # fewer than the last reading found (a hot path between its two increments).
            first = max(successes - self._ok_base - ok.count, self._ok_first_read)
            self._ok_first_read = first
            if first > 0:
                readings[_SUCCESS_OUTCOME] = HistogramReading(ok.bounds, (ok.counts[0] + first, *ok.counts[1:]), ok.sum)
            return readings

    def recovery_histogram(self) -> HistogramReading:
        """Times from leaving closed (for open or forced open) to being closed again."""
        with self._lock:
            return self._recovery.reading()

    # ------------------------------------------------------------------ manual control

    def force_open(self, duration: float | None = None) -> None:
        """Reject every call: for ``duration`` seconds (then half-open), or until changed by hand.

        Publishes ``StateChanged(previous -> forced_open)`` and counts the transition. On a breaker
        already forced open, only the deadline moves: when it changes (another ``duration``, or
        none), one ``StateChanged(forced_open -> forced_open)`` with the new ``open_for`` tells
        listeners (a state store shares it with the other replicas), and no transition is
        counted; when it does not (``force_open()`` twice), nothing happens.
        """
        if duration is not None and (
            isinstance(duration, bool) or not isinstance(duration, int | float) or not 0 < duration < math.inf
        ):
            raise BreakerConfigError("duration", f"must be a positive number of seconds or None (got {duration!r})")
        self._manual(_FORCED_OPEN, open_for=None if duration is None else float(duration))

    def force_close(self) -> None:
        """Close now, with an empty window. The open backoff keeps its count.

        On a breaker already closed the window is emptied, but nothing is published and no
        transition is counted.
        """
        self._manual(_CLOSED)

    def reset(self) -> None:
        """Close now and forget the window, the failure streak and the open backoff.

        On a breaker already closed they are forgotten, but nothing is published and no
        transition is counted.
        """
        with self._lock:
            self._open_attempts = 0
        self._manual(_CLOSED)

    def disable(self) -> None:
        """Let every call through and record nothing, until changed by hand (a no-op when disabled)."""
        self._manual(_DISABLED)

    def metrics_only(self) -> None:
        """Let every call through and record everything, but never trip (a dry run). A no-op in
        that state already: the window it records stays."""
        self._manual(_METRICS_ONLY)

    def _manual(self, state: State, *, open_for: float | None = None) -> None:
        with self._lock:
            now = self._now()
            if state is not self._state:
                change = self._set_state(state, TransitionReason.MANUAL, now, open_for=open_for)
            elif state is _CLOSED:
                # Closed already: a fresh window (and generation), but no transition, no event.
                self._set_state(state, TransitionReason.MANUAL, now)
                return
            elif state is _FORCED_OPEN and self._move_deadline(now, open_for):
                # Forced open already, with another deadline: it moves, and listeners (a state
                # store sharing it with other replicas) hear of it; no transition is counted.
                change = (state, state, TransitionReason.MANUAL, now, open_for)
            else:
                return  # nothing changes
        self._publish_changes([change])

    def _move_deadline(self, now: float, open_for: float | None) -> bool:
        """Move an open (or forced-open) breaker's deadline to ``open_for`` seconds from now
        (``None``: none), and its timer with it; the state and generation stay. Returns whether
        the deadline moved. Under the lock."""
        until = math.inf if open_for is None else now + open_for
        if until == self._open_until:
            return False
        self._open_until = until
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if open_for is not None and self.config.automatic_transition_to_half_open:
            self._timer = self._clock.call_later(open_for, functools.partial(self._on_open_timer, self._generation))
        return True

    # ------------------------------------------------------------------ shared state (stores)

    def apply_shared_state(
        self,
        state: State,
        reason: TransitionReason,
        open_for: float | None,
        *,
        only_from: State | None = None,
    ) -> bool:
        """Move to a state decided elsewhere: another replica's, or a cluster-wide window's. The
        control surface of a :class:`StateStore` (``docs/shared-state.md``, "Writing a store").

        ``open_for``: seconds left open (``None`` for an open state: this breaker's own wait
        strategy; for forced open: until changed by hand). ``only_from``: change only from this
        state. When already in ``state``, only the open deadline moves (no event; an open state
        keeps its own for ``None``). Listeners hear the change as a ``StateChanged`` like any other
        (a store ignores the ones it caused). Returns whether the state changed.
        """
        with self._lock:
            now = self._now()
            current = self._state
            if only_from is not None and current is not only_from:
                return False
            if state is current:
                if state is _FORCED_OPEN or (state is _OPEN and open_for is not None):
                    # The deadline follows (force_open() again elsewhere); None: no deadline.
                    self._move_deadline(now, None if open_for is None else max(0.0, open_for))
                return False
            if state is _OPEN and open_for is None:
                change = self._open(now, reason)
            else:
                if state is _OPEN and reason is not TransitionReason.RATE_LIMITED:
                    self._open_attempts += 1  # the backoff of this replica's own next opening follows
                change = self._set_state(state, reason, now, open_for=None if open_for is None else max(0.0, open_for))
        self._publish_changes([change])
        return True

    # ------------------------------------------------------------------ listeners

    def add_listener(self, listener: BreakerListener) -> None:
        with self._lock:
            self._set_listeners((*self._listeners, listener))

    def remove_listener(self, listener: BreakerListener) -> None:
        with self._lock:
            if listener not in self._listeners:
                raise ValueError(f"circuit breaker {self.name!r}: {listener!r} is not registered")
            self._set_listeners(tuple(item for item in self._listeners if item is not listener))
            now = self._now()
            self._refresh_fast(self._window_counts(now), now)

    def _set_listeners(self, listeners: tuple[BreakerListener, ...]) -> None:
        """Put ``listeners`` in force, with the subsets the call paths read (under the lock, or
        in ``__init__``): the listeners of calls, which take successes off the lock-free path,
        and those of rejections with their gates, so that a rejection builds no event nobody
        wants."""
        self._listeners = listeners
        calls = tuple(item for item in listeners if _wants_calls(item))
        if len(calls) > len(self._call_listeners):
            self._span_start, self._span_end = math.inf, -math.inf
            self._own_span_start, self._own_span_end = math.inf, -math.inf
        self._call_listeners = calls
        notify = tuple((getattr(item, "listening", None), item) for item in listeners if _wants_rejections(item))
        self._rejection_listeners = notify
        # One gate for all of them when they share it (the exporter's, usually alone): the call
        # paths ask it before the call to _publish_rejection, which asks each listener's again.
        gates = {gate for gate, _ in notify}
        self._rejection_gate = gates.pop() if len(gates) == 1 else None
        # What the call paths ask before they count an open rejection and build its error
        # themselves (_open_rejection, inlined): None when there is no listener to ask and no
        # lock to take (the GIL makes the tally's increment atomic), the shared gate (ask it),
        # or _heard (_open_rejection decides: listeners without one gate, or no GIL).
        self._open_gate: Callable[[], object] | None = (
            _heard if _FREE_THREADED or (notify and self._rejection_gate is None) else self._rejection_gate
        )

    @property
    def listeners(self) -> tuple[BreakerListener, ...]:
        return self._listeners

    def _publish_changes(self, changes: list[_Change]) -> None:
        if not self._listeners:
            return
        for previous, state, reason, at, open_for in changes:
            self._emit("state_changed", StateChanged(self, previous, state, reason, at, open_for))

    def _wants_rejection(self) -> bool:
        """Whether a rejection now may interest a listener: the gate its listeners share is open,
        or they share none. A gate that raises is left to _publish_rejection, which logs it."""
        gate = self._rejection_gate
        if gate is None:
            return True
        try:
            return bool(gate())
        except Exception:
            return True

    def _publish_rejection(self, reason: RejectionReason, state: State, remaining: float | None) -> None:
        """Deliver a ``CallRejected`` to the listeners of rejections whose gate is open; the
        event is built only for the first of them."""
        event = None
        for listening, listener in self._rejection_listeners:
            try:
                if listening is not None and not listening():
                    continue
                if event is None:
                    event = CallRejected(self, reason, state, remaining)
                listener.call_rejected(event)
            except Exception:
                logger.exception("circuit breaker %r: listener %r raised in %s", self.name, listener, "call_rejected")

    def _emit(
        self, method: str, event: StateChanged | CallRecorded | CallRejected | FallbackUsed | TripPredicted
    ) -> None:
        for listener in self._listeners:
            try:
                listening = getattr(listener, "listening", None)
                if listening is not None and not listening():
                    continue
                getattr(listener, method)(event)
            except Exception:
                logger.exception("circuit breaker %r: listener %r raised in %s", self.name, listener, method)

    # ------------------------------------------------------------------ monitors and probes (BreakerControl)

    def set_thresholds(self, failure_rate_threshold: float, slow_call_duration: float) -> None:
        """Put thresholds in force, as adaptive thresholds do; the window keeps its calls (no event:
        :meth:`snapshot` shows the thresholds in force)."""
        if not 0.0 < failure_rate_threshold <= 1.0:
            raise BreakerConfigError(
                "failure_rate_threshold", f"must be a fraction within (0, 1] (got {failure_rate_threshold!r})"
            )
        if not 0.0 < slow_call_duration < math.inf:
            raise BreakerConfigError(
                "slow_call_duration", f"must be a positive number of seconds (got {slow_call_duration!r})"
            )
        with self._lock:
            self._failure_rate_threshold = failure_rate_threshold
            if slow_call_duration != self._slow_call_duration:
                self._slow_call_duration = slow_call_duration
                # The fast span must stay no longer than the slow-call duration (module docstring).
                self._span_width = min(slow_call_duration, self._timeout or math.inf, self._window.bucket_width)
                now = self._now()
                self._refresh_fast(self._window_counts(now), now)

    def publish_trip_forecast(
        self, rate: float, predicted: float, threshold: float, horizon: float, seconds_to_trip: float | None, at: float
    ) -> None:
        """Tell the listeners that the failure rate is heading for the threshold (a
        :class:`TripPredicted`; the trip forecast calls this). Changes nothing in the breaker."""
        if self._listeners:
            self._emit("trip_predicted", TripPredicted(self, rate, predicted, threshold, horizon, seconds_to_trip, at))

    def half_open_after_probe(self, generation: int) -> bool:
        """An active health probe succeeded while the breaker was open in ``generation`` (from
        :meth:`snapshot`): half-open at once, ahead of the wait. Nothing happens if the breaker
        has moved on since. Returns whether the state changed."""
        with self._lock:
            if generation != self._generation or self._state is not _OPEN:
                return False
            change = self._set_state(_HALF_OPEN, TransitionReason.PROBE_SUCCEEDED, self._now())
        self._publish_changes([change])
        return True

    def hold_open_until(self, generation: int, until: float) -> bool:
        """An active health probe failed while the breaker was open in ``generation``: stay open
        until at least ``until`` (clock time; a wait already longer stays). Returns whether the
        wait moved."""
        with self._lock:
            if generation != self._generation or self._state is not _OPEN or until <= self._open_until:
                return False
            self._open_until = until
            if self._timer is not None:  # automatic transition: the timer follows the new end
                self._timer.cancel()
                self._timer = self._clock.call_later(
                    until - self._now(), functools.partial(self._on_open_timer, self._generation)
                )
            return True

    # ------------------------------------------------------------------ inspection

    def _window_counts(self, now: float) -> tuple[int, int, int]:
        ok = self._ok
        return self._window.counts(now, ok + self._failures, self._failures, self._slow)

    def snapshot(self) -> BreakerSnapshot:
        """State, window counts, rates, thresholds in force and cumulative totals."""
        with self._lock:
            now = self._now()
            ok = self._ok
            calls, failures, slow = self._window.counts(now, ok + self._failures, self._failures, self._slow)
            enough = calls >= self._min_calls and calls > 0
            state = self._state
            open_remaining: float | None = None
            if (state is _OPEN or state is _FORCED_OPEN) and self._open_until != math.inf:
                open_remaining = max(0.0, self._open_until - now)
            rejected = {  # in RejectionReason's order
                _REJECT_OPEN: self._rejected_open,
                _REJECT_HALF_OPEN_FULL: self._rejected_half_open_full,
                _REJECT_PARENT: self._rejected_parent,
                _REJECT_FORCED: self._rejected_forced,
            }
            return BreakerSnapshot(
                name=self.name,
                level=self.level,
                parent=self._parent.name if self._parent is not None else None,
                state=state,
                state_since=self._state_since,
                calls=calls,
                failures=failures,
                slow_calls=slow,
                failure_rate=failures / calls if enough else None,
                slow_call_rate=slow / calls if enough else None,
                failure_rate_threshold=self._failure_rate_threshold,
                slow_call_rate_threshold=self._slow_call_rate_threshold,
                slow_call_duration=self._slow_call_duration,
                minimum_calls=self._min_calls,
                consecutive_failures=self._consecutive if ok == self._ok_at_last_failure else 0,
                open_remaining=open_remaining,
                half_open_in_flight=self._half_open_in_flight,
                half_open_calls=self._half_open_calls,
                half_open_failures=self._half_open_failures,
                open_attempts=self._open_attempts,
                generation=self._generation,
                state_reason=self._state_reason,
                totals=CallTotals(
                    successes=ok + self._n_other_successes,
                    failures=self._n_failures,
                    ignored=self._n_ignored,
                    slow_successes=self._n_slow_successes,
                    slow_failures=self._n_slow_failures,
                    rejected=rejected,
                    failures_by_type=dict(self._failures_by_type),
                    transitions=dict(self._transitions),
                    fallbacks=dict(self._fallbacks),
                ),
            )

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self._state.value!r})"


# ---------------------------------------------------------------------- decorators
#
# A decorated function runs acall() (or call()) in its own frame, the same code with `breaker`
# for `self`: a wrapper that delegated to acall would add a coroutine, an await and a call with
# *args, about 0.2 us a call, and one more frame for every rejection to unwind.
# tests/breaker/test_fast_paths.py checks that every usage records what call() records.


def _async_decorator(
    breaker: CircuitBreaker, fn: Callable[P, Coroutine[Any, Any, T]]
) -> Callable[P, Coroutine[Any, Any, T]]:
    @functools.wraps(fn)
    async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        # CircuitBreaker.acall, with `breaker` for `self`.
        gen = breaker._closed_gen
        if gen < 0:
            state = breaker._state
            if state is _OPEN:  # raised here: one frame less to unwind than from a helper
                remaining = breaker._open_until - breaker._now()
                if remaining > 0:
                    gate = breaker._open_gate  # asked here: a rejection nobody hears is counted here
                    if gate is None:  # nobody to ask: ~25 ns less than asking None in the try
                        breaker._rejected_open += 1
                        raise CircuitOpenError(breaker.name, _OPEN, _REJECT_OPEN, remaining)
                    try:
                        silent = not gate()  # its answer's truth read inside the try too
                    except Exception:  # _open_rejection asks again, and logs it
                        silent = False
                    if not silent:
                        raise breaker._open_rejection(remaining)
                    breaker._rejected_open += 1
                    raise CircuitOpenError(breaker.name, _OPEN, _REJECT_OPEN, remaining)
            elif state is not _CLOSED or breaker._parent is not None:
                # _rejection_by_state's cases inlined, for a rejection nobody hears. The gate is
                # asked only where a state may reject (not for a metrics-only breaker's calls).
                parent = breaker._parent
                if parent is not None or state is _FORCED_OPEN or state is _HALF_OPEN:
                    gate = breaker._open_gate
                    if gate is None:
                        silent = True
                    else:
                        try:
                            silent = not gate()
                        except Exception:  # _rejection_by_state asks again, and logs it
                            silent = False
                    if silent:
                        if parent is not None:
                            parent_gate = parent._open_gate  # the exporter's gate is one object: asked once
                            if parent._state is _OPEN and (parent_gate is None or parent_gate is gate):
                                remaining = parent._open_until - parent._now()  # its clock
                                if remaining > 0:
                                    parent._rejected_open += 1
                                    breaker._rejected_parent += 1
                                    raise CircuitOpenError(breaker.name, state, _REJECT_PARENT, remaining, parent.name)
                        elif state is _FORCED_OPEN:
                            until = breaker._open_until
                            forced_for = None if until == _FOREVER else until - breaker._now()
                            if forced_for is None or forced_for > 0:
                                breaker._rejected_forced += 1
                                raise CircuitOpenError(breaker.name, _FORCED_OPEN, _REJECT_FORCED, forced_for)
                        elif (
                            state is _HALF_OPEN
                            and breaker._half_open_in_flight + breaker._half_open_calls >= breaker._half_open_permits
                            and (breaker._half_open_until == _FOREVER or breaker._now() < breaker._half_open_until)
                        ):
                            breaker._rejected_half_open_full += 1
                            raise CircuitOpenError(breaker.name, _HALF_OPEN, _REJECT_HALF_OPEN_FULL, None)
                rejection = breaker._rejection_by_state(state)
                if rejection is not None:  # raised here: see _rejection_by_state
                    raise CircuitOpenError(*rejection)
            gen = breaker._admission(breaker)
        now = breaker._now
        start = now()
        try:
            if breaker._timeout is not None:
                result = await breaker._await_with_timeout(fn(*args, **kwargs))
            elif kwargs:
                result = await fn(*args, **kwargs)
            elif args:
                result = await fn(*args)  # type: ignore[call-arg]
            else:
                result = await fn()  # type: ignore[call-arg]
        except BaseException as exc:
            breaker._record_exception(gen, start, exc)
            raise
        end = now()
        if start >= breaker._span_start and end < breaker._span_end:
            histogram = breaker._ok_durations
            if histogram is not None:
                duration = end - start
                if duration > breaker._ok_first_bound:  # the first bucket's count is derived
                    histogram.counts[bisect_left(histogram.bounds, duration)] += 1
                histogram.sum += duration
            breaker._ok += 1  # after its bucket: see duration_histograms
        elif breaker._parent is None or not breaker._fast_success(start, end, end - start):
            breaker._record_return(gen, start, end, result, sync=False)
        return result

    return async_wrapper


def _sync_decorator(breaker: CircuitBreaker, fn: Callable[P, T]) -> Callable[P, T]:
    @functools.wraps(fn)
    def sync_wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        # CircuitBreaker.call, with `breaker` for `self`.
        gen = breaker._closed_gen
        if gen < 0:
            state = breaker._state
            if state is _OPEN:  # raised here: one frame less to unwind than from a helper
                remaining = breaker._open_until - breaker._now()
                if remaining > 0:
                    gate = breaker._open_gate  # asked here: a rejection nobody hears is counted here
                    if gate is None:  # nobody to ask: ~25 ns less than asking None in the try
                        breaker._rejected_open += 1
                        raise CircuitOpenError(breaker.name, _OPEN, _REJECT_OPEN, remaining)
                    try:
                        silent = not gate()  # its answer's truth read inside the try too
                    except Exception:  # _open_rejection asks again, and logs it
                        silent = False
                    if not silent:
                        raise breaker._open_rejection(remaining)
                    breaker._rejected_open += 1
                    raise CircuitOpenError(breaker.name, _OPEN, _REJECT_OPEN, remaining)
            elif state is not _CLOSED or breaker._parent is not None:
                # _rejection_by_state's cases inlined, for a rejection nobody hears. The gate is
                # asked only where a state may reject (not for a metrics-only breaker's calls).
                parent = breaker._parent
                if parent is not None or state is _FORCED_OPEN or state is _HALF_OPEN:
                    gate = breaker._open_gate
                    if gate is None:
                        silent = True
                    else:
                        try:
                            silent = not gate()
                        except Exception:  # _rejection_by_state asks again, and logs it
                            silent = False
                    if silent:
                        if parent is not None:
                            parent_gate = parent._open_gate  # the exporter's gate is one object: asked once
                            if parent._state is _OPEN and (parent_gate is None or parent_gate is gate):
                                remaining = parent._open_until - parent._now()  # its clock
                                if remaining > 0:
                                    parent._rejected_open += 1
                                    breaker._rejected_parent += 1
                                    raise CircuitOpenError(breaker.name, state, _REJECT_PARENT, remaining, parent.name)
                        elif state is _FORCED_OPEN:
                            until = breaker._open_until
                            forced_for = None if until == _FOREVER else until - breaker._now()
                            if forced_for is None or forced_for > 0:
                                breaker._rejected_forced += 1
                                raise CircuitOpenError(breaker.name, _FORCED_OPEN, _REJECT_FORCED, forced_for)
                        elif (
                            state is _HALF_OPEN
                            and breaker._half_open_in_flight + breaker._half_open_calls >= breaker._half_open_permits
                            and (breaker._half_open_until == _FOREVER or breaker._now() < breaker._half_open_until)
                        ):
                            breaker._rejected_half_open_full += 1
                            raise CircuitOpenError(breaker.name, _HALF_OPEN, _REJECT_HALF_OPEN_FULL, None)
                rejection = breaker._rejection_by_state(state)
                if rejection is not None:  # raised here: see _rejection_by_state
                    raise CircuitOpenError(*rejection)
            gen = breaker._admission(breaker)
        now = breaker._now
        start = now()
        try:
            if kwargs:
                result = fn(*args, **kwargs)
            elif args:
                result = fn(*args)  # type: ignore[call-arg]
            else:
                result = fn()  # type: ignore[call-arg]
        except BaseException as exc:
            breaker._record_exception(gen, start, exc)
            raise
        end = now()
        if start >= breaker._span_start and end < breaker._span_end:
            histogram = breaker._ok_durations
            if histogram is not None:
                duration = end - start
                if duration > breaker._ok_first_bound:  # the first bucket's count is derived
                    histogram.counts[bisect_left(histogram.bounds, duration)] += 1
                histogram.sum += duration
            breaker._ok += 1  # after its bucket: see duration_histograms
        elif breaker._parent is None or not breaker._fast_success(start, end, end - start):
            breaker._record_return(gen, start, end, result, sync=True)
        return result

    return sync_wrapper


class Permit:
    """One admitted call whose outcome is recorded by hand (see :meth:`CircuitBreaker.acquire`).

    Exactly one of :meth:`success`, :meth:`failure`, :meth:`record`, :meth:`exception`,
    :meth:`result` or :meth:`cancel` counts; later ones are ignored, so a ``finally: cancel()``
    after a recorded outcome is harmless. ``duration`` overrides the measured one when another
    figure decides slowness (a stream's time to first token). The HTTP transports' response
    streams subclass it: one object a request, not a permit and a stream.
    """

    __slots__ = ("_breaker", "_done", "_token", "start")

    def __init__(self, breaker: CircuitBreaker, token: int, start: float) -> None:
        self._breaker = breaker
        self._token = token
        self._done = False
        #: Clock time at admission.
        self.start = start

    @property
    def breaker(self) -> CircuitBreaker:
        return self._breaker

    @property
    def done(self) -> bool:
        return self._done

    def record(self, verdict: Verdict, *, duration: float | None = None) -> None:
        if self._done:
            return
        self._done = True
        breaker = self._breaker
        end = breaker._now()
        elapsed = end - self.start
        if duration is None:
            duration = elapsed
        # A success no longer than the time it took (a stream's time to first chunk is) may take
        # the breaker's hot path, as call() does: the transports record every request here.
        if verdict.kind is _SUCCESS and duration <= elapsed and breaker._fast_success(self.start, end, duration):
            return
        breaker._record(self._token, verdict, duration, end)

    def success(self, *, duration: float | None = None) -> None:
        self.record(SUCCESS, duration=duration)

    def failure(self, error_type: str = "failure", *, duration: float | None = None) -> None:
        self.record(failure(error_type), duration=duration)

    def exception(self, exc: BaseException, *, duration: float | None = None) -> None:
        """Record ``exc`` as the breaker classifies it (cancellation counts as nothing)."""
        self.record(self._breaker.classify_exception(exc), duration=duration)

    def result(self, value: Any, *, duration: float | None = None) -> None:
        """Record a returned value as the breaker classifies it."""
        breaker = self._breaker
        verdict = (breaker._safe_classify(None, value) if breaker._classify_results else None) or SUCCESS
        self.record(verdict, duration=duration)

    def cancel(self) -> None:
        """The caller gave up: neither success nor failure, and a half-open permit goes back."""
        self.record(_CANCELLED)

    def __repr__(self) -> str:
        return f"Permit({self._breaker.name!r}, done={self._done})"


def _heard() -> bool:
    return True


def _wants_calls(listener: BreakerListener) -> bool:
    """Whether a listener overrides ``call_recorded``. Only those take successes off the lock-free
    path: a listener of state changes or rejections costs a call nothing."""
    return getattr(type(listener), "call_recorded", None) is not BreakerListener.call_recorded


def _wants_rejections(listener: BreakerListener) -> bool:
    """Whether a listener may do something with ``call_rejected`` (the base method does nothing):
    only those are given rejections, which then build no event for the others."""
    return getattr(type(listener), "call_rejected", None) is not BreakerListener.call_rejected or (
        "call_rejected" in getattr(listener, "__dict__", ())
    )
