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
import logging
import math
import sys
import threading
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, final, overload

from ._classify import SUCCESS, Verdict, VerdictKind, error_type_of, failure
from ._clock import Clock, MonotonicClock, TimerHandle
from ._config import DEFAULT_CONFIG, BreakerConfig
from ._events import BreakerListener, CallRecorded, CallRejected, FallbackUsed, StateChanged, TripPredicted
from ._exceptions import BreakerConfigError, CallTimeoutError, CircuitOpenError
from ._histogram import DEFAULT_DURATION_BOUNDS, DEFAULT_RECOVERY_BOUNDS, Histogram, HistogramReading
from ._state import FallbackType, Level, Outcome, RejectionReason, State, TransitionReason, WindowType
from ._window import CountWindow, SlidingWindow, TimeWindow
from ._wrap import wrap_calls

__all__ = ["MAX_ERROR_TYPES", "OTHER_ERROR_TYPE", "BreakerSnapshot", "CallTotals", "CircuitBreaker", "Permit"]

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


def _pack(own: int, parent: int) -> int:
    return ((parent + 2) << _TOKEN_SHIFT) | (own + 2)


def _unpack(token: int) -> tuple[int, int]:
    return (token & _TOKEN_MASK) - 2, (token >> _TOKEN_SHIFT) - 2


# Without the GIL, `self._ok += 1` could lose updates: every call then takes the locked path.
_FREE_THREADED = not getattr(sys, "_is_gil_enabled", lambda: True)()
#: Cap on distinct error types in the cumulative counters (bounded cardinality downstream).
MAX_ERROR_TYPES = 64
#: Where error types beyond the cap are counted.
OTHER_ERROR_TYPE = "_OTHER"

_CLOSED = State.CLOSED
_OPEN = State.OPEN
_HALF_OPEN = State.HALF_OPEN
_FORCED_OPEN = State.FORCED_OPEN
_DISABLED = State.DISABLED
_METRICS_ONLY = State.METRICS_ONLY
_REJECT_OPEN = RejectionReason.OPEN
_SUCCESS = VerdictKind.SUCCESS
_FAILURE = VerdictKind.FAILURE
_IGNORED = VerdictKind.IGNORED
_RATE_LIMITED = VerdictKind.RATE_LIMITED
_CANCELLED = Verdict(VerdictKind.IGNORED, error_type="cancelled")
_SUCCESS_OUTCOME = Outcome.SUCCESS
_FAILURE_OUTCOME = Outcome.FAILURE
_IGNORED_OUTCOME = Outcome.IGNORED
_TIMEOUT = failure("timeout")


@dataclass(frozen=True, slots=True)
class CallTotals:
    """Cumulative counts since the breaker was created; they never go down."""

    successes: int
    failures: int
    ignored: int
    slow_successes: int
    slow_failures: int
    rejected: dict[RejectionReason, int]
    failures_by_type: dict[str, int]
    transitions: dict[tuple[State, State], int]
    #: Fallbacks used for this breaker's calls, by type and outcome (success or failure).
    fallbacks: dict[tuple[FallbackType, Outcome], int]

    @property
    def calls(self) -> int:
        """Calls that ran (successes, failures and ignored); rejections not included."""
        return self.successes + self.failures + self.ignored

    @property
    def slow(self) -> int:
        """Slow calls, successful or failed (ignored calls are never slow)."""
        return self.slow_successes + self.slow_failures


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """A consistent view of one breaker at one instant."""

    name: str
    level: Level
    #: The parent breaker's name (the service of an endpoint), or ``None``.
    parent: str | None
    state: State
    #: Clock time at which the breaker entered its state.
    state_since: float
    #: Calls, failures and slow calls inside the sliding window.
    calls: int
    failures: int
    slow_calls: int
    #: ``None`` while the window holds fewer than ``minimum_calls`` calls.
    failure_rate: float | None
    slow_call_rate: float | None
    failure_rate_threshold: float
    slow_call_rate_threshold: float
    slow_call_duration: float
    minimum_calls: int
    consecutive_failures: int
    #: Seconds until an open breaker lets probes through; ``None`` unless open (or forced open
    #: with an expiry).
    open_remaining: float | None
    half_open_in_flight: int
    half_open_calls: int
    half_open_failures: int
    #: How many times in a row the breaker has opened without closing in between.
    open_attempts: int
    generation: int
    totals: CallTotals


_Change = tuple[State, State, TransitionReason, float, float | None]


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
        "_generation",
        "_half_open_calls",
        "_half_open_failures",
        "_half_open_in_flight",
        "_half_open_slow",
        "_left_closed_at",
        "_listeners",
        "_lock",
        "_min_calls",
        "_n_failures",
        "_n_ignored",
        "_n_other_successes",
        "_n_rejected",
        "_n_slow_failures",
        "_n_slow_successes",
        "_now",
        "_ok",
        "_ok_at_last_failure",
        "_ok_durations",
        "_open_attempts",
        "_open_until",
        "_parent",
        "_recovery",
        "_rejected_open",
        "_requires",
        "_slow",
        "_slow_call_duration",
        "_slow_call_rate_threshold",
        "_span_end",
        "_span_start",
        "_span_width",
        "_state",
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
        services = () if isinstance(requires, str) else tuple(requires)
        if isinstance(requires, str) or not all(isinstance(r, str) and r for r in services):
            raise BreakerConfigError("requires", f"expected service names (got {requires!r})")
        self._requires = tuple(sorted(set(services)))
        self._children: tuple[CircuitBreaker, ...] = ()
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        self._now: Callable[[], float] = self._clock.now
        self._lock = threading.Lock()
        self._listeners: tuple[BreakerListener, ...] = tuple(listeners)
        self._call_listeners = tuple(item for item in self._listeners if _wants_calls(item))

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
        self._recovery = Histogram(DEFAULT_RECOVERY_BOUNDS)
        self._left_closed_at: float | None = None
        self._rejected_open = 0  # like _ok, incremented without the lock
        self._n_rejected: dict[RejectionReason, int] = dict.fromkeys(RejectionReason, 0)
        self._failures_by_type: dict[str, int] = {}
        self._transitions: dict[tuple[State, State], int] = {}
        self._fallbacks: dict[tuple[FallbackType, Outcome], int] = {}
        self._fallback_types: frozenset[FallbackType] = frozenset()

        self._state = _CLOSED
        self._generation = 0
        # The generation while closed, else _NOT_CLOSED. A child breaker keeps it negative: its
        # admission always asks its parent too.
        self._closed_gen = 0 if parent is None else _NOT_CLOSED
        now = self._now()
        self._state_since = now
        self._open_until = 0.0
        self._open_attempts = 0
        self._timer: TimerHandle | None = None
        self._consecutive = 0
        self._ok_at_last_failure = 0
        self._half_open_in_flight = 0
        self._half_open_calls = 0
        self._half_open_failures = 0
        self._half_open_slow = 0
        self._span_start = math.inf  # empty until _clear_window() below
        self._span_end = -math.inf
        self._window_start = now
        with self._lock:
            self._clear_window(now)
        self._cm_stack: ContextVar[tuple[tuple[int, float, Any], ...]] = ContextVar(f"breaker:{name}:calls", default=())
        if parent is not None:
            with parent._lock:
                parent._children = (*parent._children, self)
        if config.adaptive is not None or config.forecast is not None:
            from ._monitor import start_monitors  # adaptive thresholds, trip forecast: off the call path

            start_monitors(self)

    # ------------------------------------------------------------------ calling

    @property
    def state(self) -> State:
        return self._state

    async def acall(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Await ``fn(*args, **kwargs)`` through the breaker."""
        # The hot path reads three attributes, the clock twice and ticks one tally; the open
        # rejection is inlined too (raising through one more frame costs more than it does).
        gen = self._closed_gen
        if gen < 0:
            if self._state is _OPEN:
                remaining = self._open_until - self._now()
                if remaining > 0:
                    raise self._open_rejection(remaining)
            gen = self._admit()
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
            self._ok += 1
            histogram = self._ok_durations
            if histogram is not None:  # inlined Histogram.record: a method call would cost more
                duration = end - start
                histogram.counts[bisect_left(histogram.bounds, duration)] += 1
                histogram.sum += duration
        else:
            self._record_return(gen, start, end, result, sync=False)
        return result

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn(*args, **kwargs)`` through the breaker.

        A sync call cannot be interrupted: with ``call_timeout`` set, a call that overruns it
        still returns its result but counts as a failure of type ``timeout``.
        """
        gen = self._closed_gen
        if gen < 0:
            if self._state is _OPEN:
                remaining = self._open_until - self._now()
                if remaining > 0:
                    raise self._open_rejection(remaining)
            gen = self._admit()
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
            self._ok += 1
            histogram = self._ok_durations
            if histogram is not None:  # inlined Histogram.record: a method call would cost more
                duration = end - start
                histogram.counts[bisect_left(histogram.bounds, duration)] += 1
                histogram.sum += duration
        else:
            self._record_return(gen, start, end, result, sync=True)
        return result

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]: ...

    @overload
    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate a sync or async function so that every call goes through the breaker."""
        return wrap_calls(fn, self.acall, self.call, self.name)

    def __enter__(self) -> CircuitBreaker:
        gen = self._closed_gen
        if gen < 0:
            gen = self._admit()
        self._cm_stack.set((*self._cm_stack.get(), (gen, self._now(), None)))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        gen, start, _ = self._pop_cm()
        if exc is not None:
            self._record_exception(gen, start, exc)
        else:
            self._record_return(gen, start, self._now(), None, sync=True, has_result=False)

    async def __aenter__(self) -> CircuitBreaker:
        gen = self._closed_gen
        if gen < 0:
            gen = self._admit()
        timeout_cm = None
        if self._timeout is not None:
            timeout_cm = asyncio.timeout(self._timeout)
            await timeout_cm.__aenter__()
        self._cm_stack.set((*self._cm_stack.get(), (gen, self._now(), timeout_cm)))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        gen, start, timeout_cm = self._pop_cm()
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
        else:
            self._record_return(gen, start, self._now(), None, sync=False, has_result=False)

    def _pop_cm(self) -> tuple[int, float, Any]:
        stack = self._cm_stack.get()
        if not stack:
            raise RuntimeError(f"circuit breaker {self.name!r}: exit without a matching enter")
        self._cm_stack.set(stack[:-1])
        return stack[-1]

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

    def _admit(self) -> int:
        """Admission when the breaker is not (known to be) closed, or has a parent: the token the
        call runs under (its generation, and its parent's), or :class:`CircuitOpenError`."""
        parent = self._parent
        if parent is None:
            return self._admit_own()
        # The parent admits first: an open service rejects its endpoints' calls before they
        # touch, or count in, the endpoints' windows.
        parent_gen = parent._closed_gen
        if parent_gen < 0:
            try:
                parent_gen = parent._admit()
            except CircuitOpenError as exc:
                raise self._parent_rejection(exc) from None
        try:
            gen = self._admit_own()
        except CircuitOpenError:
            parent._release(parent_gen)
            raise
        return _pack(gen, parent_gen)

    def _admit_own(self) -> int:
        if self._state is _OPEN:
            remaining = self._open_until - self._now()
            if remaining > 0:
                raise self._open_rejection(remaining)
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
                    rejection = self._reject(
                        _REJECT_OPEN if state is _OPEN else RejectionReason.FORCED_OPEN, remaining_or_none
                    )
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
                    rejection = self._reject(RejectionReason.HALF_OPEN_FULL, None)
        if changes:
            self._publish_changes(changes)
        if rejection is not None:
            if self._listeners:
                self._emit("call_rejected", CallRejected(self, rejection.reason, rejection.state, rejection.remaining))
            raise rejection
        return gen

    def _open_rejection(self, remaining: float) -> CircuitOpenError:
        """The error for a call rejected while open. Needs no lock: it reads, and ticks a
        lock-free tally."""
        if _FREE_THREADED:
            with self._lock:
                self._rejected_open += 1
        else:
            self._rejected_open += 1
        if self._listeners:
            self._emit("call_rejected", CallRejected(self, _REJECT_OPEN, _OPEN, remaining))
        return CircuitOpenError(self.name, _OPEN, _REJECT_OPEN, remaining)

    def _parent_rejection(self, exc: CircuitOpenError) -> CircuitOpenError:
        return self.reject_for_dependency(exc.origin, exc.remaining)

    def reject_for_dependency(self, origin: str, remaining: float | None) -> CircuitOpenError:
        """Count, publish and return the rejection of a call because ``origin``, a breaker this one
        depends on (its parent, or a feature's dependency), is open."""
        with self._lock:
            self._n_rejected[RejectionReason.PARENT_OPEN] += 1
            state = self._state
        if self._listeners:
            self._emit("call_rejected", CallRejected(self, RejectionReason.PARENT_OPEN, state, remaining))
        return CircuitOpenError(self.name, state, RejectionReason.PARENT_OPEN, remaining, origin)

    def _release(self, token: int) -> None:
        """Give back what admission took (a half-open permit) for a call that never ran."""
        if self._parent is not None:
            token, parent_token = _unpack(token)
            self._parent._release(parent_token)
        with self._lock:
            if token == self._generation and self._state is _HALF_OPEN:
                self._half_open_in_flight -= 1

    def _reject(self, reason: RejectionReason, remaining: float | None) -> CircuitOpenError:
        if reason is _REJECT_OPEN:
            self._rejected_open += 1
        else:
            self._n_rejected[reason] += 1
        return CircuitOpenError(self.name, self._state, reason, remaining)

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
        try:
            return classifier(exc, result)
        except Exception:
            # A broken classifier must not turn the caller's result into an error.
            logger.exception("circuit breaker %r: classifier %r raised; using the default", self.name, classifier)
            return None

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
        if (
            self._state is not _CLOSED
            or armed
            or self._parent is not None
            or self._call_listeners
            or self._classify_results
            or _FREE_THREADED
        ):
            self._span_start, self._span_end = math.inf, -math.inf
            return
        # On a fixed grid, so that recording a call does not move the span under calls in flight.
        width = self._span_width
        grid = math.floor(now / width) * width
        self._span_start = max(grid, self._window_start)
        self._span_end = min(grid + width, self._window.bucket_end)

    def _half_open_expired(self, now: float) -> bool:
        """Whether a half-open breaker has outlived ``max_wait_in_half_open`` (under the lock)."""
        max_wait = self.config.max_wait_in_half_open
        return max_wait is not None and now - self._state_since >= max_wait

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
        self._closed_gen = _NOT_CLOSED
        self._generation += 1
        self._state = new
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
            if max_wait is not None and automatic:
                self._timer = self._clock.call_later(
                    max_wait, functools.partial(self._on_half_open_timer, self._generation)
                )
        elif new is _CLOSED and reason is not TransitionReason.MANUAL:
            self._open_attempts = 0
        if new is _CLOSED and self._parent is None:
            self._closed_gen = self._generation
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
        if gen < 0:
            if self._state is _OPEN:  # as in call(): its own open state answers first
                remaining = self._open_until - self._now()
                if remaining > 0:
                    raise self._open_rejection(remaining)
            gen = self._admit()
        return Permit(self, gen, self._now())

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
                rejection = self._reject(_REJECT_OPEN if state is _OPEN else RejectionReason.FORCED_OPEN, remaining)
        if rejection is not None and self._listeners:
            self._emit("call_rejected", CallRejected(self, rejection.reason, rejection.state, rejection.remaining))
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
            self._ok_durations = durations[_SUCCESS_OUTCOME]

    def duration_histograms(self) -> dict[Outcome, HistogramReading]:
        """Call durations by outcome (empty unless :meth:`enable_duration_histograms` was called)."""
        with self._lock:
            return {} if self._durations is None else {o: h.reading() for o, h in self._durations.items()}

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

    def _apply_shared(
        self,
        state: State,
        reason: TransitionReason,
        open_for: float | None,
        *,
        only_from: State | None = None,
    ) -> bool:
        """Move to a state decided elsewhere: another replica's, or the cluster-wide window's.

        For state stores (``breaker/breakerpanel/_stores``). ``open_for``: seconds left open (``None`` for an
        open state: this breaker's own wait strategy; for forced open: until changed by hand).
        ``only_from``: change only from this state. When already in ``state``, only the open
        deadline moves (no event; an open state keeps its own for ``None``). Returns whether the
        state changed.
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
            self._listeners = (*self._listeners, listener)
            if _wants_calls(listener):
                self._call_listeners = (*self._call_listeners, listener)
                self._span_start, self._span_end = math.inf, -math.inf

    def remove_listener(self, listener: BreakerListener) -> None:
        with self._lock:
            if listener not in self._listeners:
                raise ValueError(f"circuit breaker {self.name!r}: {listener!r} is not registered")
            self._listeners = tuple(item for item in self._listeners if item is not listener)
            self._call_listeners = tuple(item for item in self._call_listeners if item is not listener)
            now = self._now()
            self._refresh_fast(self._window_counts(now), now)

    @property
    def listeners(self) -> tuple[BreakerListener, ...]:
        return self._listeners

    def _publish_changes(self, changes: list[_Change]) -> None:
        if not self._listeners:
            return
        for previous, state, reason, at, open_for in changes:
            self._emit("state_changed", StateChanged(self, previous, state, reason, at, open_for))

    def _emit(
        self, method: str, event: StateChanged | CallRecorded | CallRejected | FallbackUsed | TripPredicted
    ) -> None:
        for listener in self._listeners:
            try:
                getattr(listener, method)(event)
            except Exception:
                logger.exception("circuit breaker %r: listener %r raised in %s", self.name, listener, method)

    # ------------------------------------------------------------------ adaptive thresholds, forecast, probes

    def _set_thresholds(self, failure_rate_threshold: float, slow_call_duration: float) -> None:
        """Put thresholds in force (adaptive thresholds, ``_adaptive.py``); the window keeps its calls."""
        with self._lock:
            self._failure_rate_threshold = failure_rate_threshold
            if slow_call_duration != self._slow_call_duration:
                self._slow_call_duration = slow_call_duration
                # The fast span must stay no longer than the slow-call duration (module docstring).
                self._span_width = min(slow_call_duration, self._timeout or math.inf, self._window.bucket_width)
                now = self._now()
                self._refresh_fast(self._window_counts(now), now)

    def _publish_forecast(
        self, rate: float, predicted: float, threshold: float, horizon: float, seconds: float | None, at: float
    ) -> None:
        """Publish a trip forecast (``_forecast.py``)."""
        if self._listeners:
            self._emit("trip_predicted", TripPredicted(self, rate, predicted, threshold, horizon, seconds, at))

    def _probe_passed(self, generation: int) -> bool:
        """An active health probe succeeded while open in ``generation``: half-open at once
        (``_probe.py``). Returns whether the state changed."""
        with self._lock:
            if generation != self._generation or self._state is not _OPEN:
                return False
            change = self._set_state(_HALF_OPEN, TransitionReason.PROBE_SUCCEEDED, self._now())
        self._publish_changes([change])
        return True

    def _extend_open(self, generation: int, until: float) -> bool:
        """An active health probe failed while open in ``generation``: stay open until at least
        ``until`` (clock time). Returns whether the wait moved."""
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
            rejected = dict(self._n_rejected)
            rejected[_REJECT_OPEN] += self._rejected_open
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


@final
class Permit:
    """One admitted call whose outcome is recorded by hand (see :meth:`CircuitBreaker.acquire`).

    Exactly one of :meth:`success`, :meth:`failure`, :meth:`record`, :meth:`exception`,
    :meth:`result` or :meth:`cancel` counts; later ones are ignored, so a ``finally: cancel()``
    after a recorded outcome is harmless. ``duration`` overrides the measured one when another
    figure decides slowness (a stream's time to first token).
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
        end = self._breaker._now()
        self._breaker._record(self._token, verdict, end - self.start if duration is None else duration, end)

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


def _wants_calls(listener: BreakerListener) -> bool:
    """Whether a listener overrides ``call_recorded``. Only those take successes off the lock-free
    path: a listener of state changes or rejections costs a call nothing."""
    return getattr(type(listener), "call_recorded", None) is not BreakerListener.call_recorded
