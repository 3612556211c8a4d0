"""What the adapters share: thread-safe cumulative counters read as a :class:`BreakerReading`,
the mapping of the libraries' state names to ours, and the bookkeeping of the opt-in call
wrappers (which see what the listener hooks cannot: rejections and call durations)."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

# MAX_ERROR_TYPES, OTHER_ERROR_TYPE: the same cap and overflow value as our own breakers, one
# error-type budget for every source.
from breakerpanel import (
    DEFAULT_DURATION_BOUNDS,
    DEFAULT_RECOVERY_BOUNDS,
    MAX_ERROR_TYPES,
    OTHER_ERROR_TYPE,
    Histogram,
)
from breakerpanel.exporter import semconv as sc
from breakerpanel.exporter._sources import BreakerReading

__all__ = [
    "MAX_ERROR_TYPES",
    "OTHER_ERROR_TYPE",
    "AdapterSource",
    "Attempt",
    "attempt_of",
    "current_attempt",
    "excluded_exception",
    "level_value",
    "state_value",
]

logger = logging.getLogger("breakerpanel.exporter.adapters")

T = TypeVar("T")


_CLOSED = sc.CircuitBreakerStateValues.CLOSED.value
_OPEN = sc.CircuitBreakerStateValues.OPEN.value
_HALF_OPEN = sc.CircuitBreakerStateValues.HALF_OPEN.value

#: The libraries' state names (lower-cased) -> ours.
_STATES: dict[str, str] = {
    "closed": _CLOSED,
    "open": _OPEN,  # pybreaker, aiobreaker (enum member OPEN)
    "opened": _OPEN,  # purgatory
    "half-open": _HALF_OPEN,  # pybreaker
    "half_open": _HALF_OPEN,  # aiobreaker (enum member HALF_OPEN)
    "half-opened": _HALF_OPEN,  # purgatory
}
_warned_states: set[str] = set()


def state_value(raw: str) -> str:
    """Our name for a library's state name: ``"half-open"`` -> ``"half_open"``, ``"opened"`` -> ``"open"``.

    Never raises (it runs inside the libraries' hooks): an unknown name is logged once and
    returned normalised, so the state gauge shows 0 for every known state rather than a lie.
    """
    key = raw.lower()
    state = _STATES.get(key)
    if state is not None:
        return state
    if key not in _warned_states:
        _warned_states.add(key)
        logger.warning("unknown circuit breaker state %r: not one of %s", raw, sorted(_STATES))
    return key.replace("-", "_")


def level_value(level: str) -> str:
    """``level``, checked against the registry's levels."""
    try:
        return sc.CircuitBreakerLevelValues(level).value
    except ValueError:
        levels = ", ".join(v.value for v in sc.CircuitBreakerLevelValues)
        raise ValueError(f"level must be one of {levels} (got {level!r})") from None


def excluded_exception(is_system_error: Callable[[BaseException], bool], library_module: str) -> BaseException | None:
    """The exception a ``success`` hook was really called for, if any.

    pybreaker and aiobreaker report a call that raised one of the breaker's excluded exceptions
    through the ``success`` hook, called from the library's own ``except`` block. So, inside the
    hook, the exception being handled tells the two apart: it was caught in a frame of the library
    (``library_module``: an exception the application is handling around its call was caught in
    one of its own frames) and the breaker does not count it as a system error.
    """
    exc = sys.exc_info()[1]
    if exc is None or exc.__traceback__ is None:
        return None
    caught_in = exc.__traceback__.tb_frame.f_globals.get("__name__", "")
    if not isinstance(caught_in, str) or caught_in.split(".")[0] != library_module:
        return None
    try:
        return None if is_system_error(exc) else exc
    except Exception:  # an exclusion predicate that raises: say success, as the library did
        return None


# ---------------------------------------------------------------------- the opt-in wrappers


@dataclass
class Attempt:
    """One call made through an adapter's wrapper: what the hooks said about it.

    The wrapper puts it in :data:`current_attempt` (a context variable: per thread and per
    asyncio task) for the duration of the call; the hooks of the same breaker fill it in.
    """

    owner: object
    admitted: bool = False
    #: The last outcome a hook reported (a nested call of the same breaker reports first).
    outcome: str | None = None


current_attempt: ContextVar[Attempt | None] = ContextVar("breakerpanel_adapter_attempt", default=None)


def attempt_of(owner: object) -> Attempt | None:
    """The wrapper's attempt if the hook being run is about ``owner``'s call."""
    attempt = current_attempt.get()
    return attempt if attempt is not None and attempt.owner is owner else None


# ---------------------------------------------------------------------- the source


class AdapterSource:
    """A :class:`~breakerpanel.exporter.BreakerSource` whose counters are kept from another library's hooks.

    Counters are cumulative and guarded by a lock (hooks run on the callers' threads). Subclasses
    implement :meth:`current_state` and call the ``_record_*`` methods from the hooks.
    """

    def __init__(
        self,
        name: str,
        *,
        level: str = "service",
        parent: str | None = None,
        attributes: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not name:
            raise ValueError("a breaker source needs a name")
        self._name = name
        self.level = level_value(level)
        self.parent = parent
        self.attributes: dict[str, str] = dict(attributes or {})
        self._clock = clock
        self._lock = threading.Lock()
        self._successes = 0
        self._ignored = 0
        self._failures_by_type: dict[str, int] = {}
        self._rejected_by_reason: dict[str, int] = {}
        self._transitions: dict[tuple[str, str], int] = {}
        self._durations: dict[str, Histogram] | None = None
        self._recovery = Histogram(DEFAULT_RECOVERY_BOUNDS)
        self._left_closed_at: float | None = None

    @property
    def name(self) -> str:
        return self._name

    def current_state(self) -> str:
        """The breaker's state, in our vocabulary (``closed``, ``open``, ``half_open``)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name!r}>"

    # ------------------------------------------------------------------ counting

    def record_rejection(self, reason: str = sc.CircuitBreakerRejectionReasonValues.OPEN.value) -> None:
        """Count a call the breaker rejected (the adapters' call wrappers do it for you)."""
        reason = sc.CircuitBreakerRejectionReasonValues(reason).value
        with self._lock:
            self._rejected_by_reason[reason] = self._rejected_by_reason.get(reason, 0) + 1

    def _record_success(self) -> None:
        with self._lock:
            self._successes += 1

    def _record_ignored(self) -> None:
        with self._lock:
            self._ignored += 1

    def _record_failure(self, error_type: str) -> None:
        with self._lock:
            by_type = self._failures_by_type
            if error_type not in by_type and len(by_type) >= MAX_ERROR_TYPES:
                error_type = OTHER_ERROR_TYPE
            by_type[error_type] = by_type.get(error_type, 0) + 1

    def _record_transition(self, previous: str, state: str) -> None:
        """Count a change of state (a "change" to the same state is not one) and time recoveries."""
        if previous == state:
            return
        now = self._clock()
        with self._lock:
            key = (previous, state)
            self._transitions[key] = self._transitions.get(key, 0) + 1
            if previous == _CLOSED:
                self._left_closed_at = now
            elif state == _CLOSED and self._left_closed_at is not None:
                self._recovery.record(now - self._left_closed_at)
                self._left_closed_at = None

    def _record_duration(self, outcome: str, seconds: float) -> None:
        with self._lock:
            if self._durations is None:
                self._durations = {
                    o.value: Histogram(DEFAULT_DURATION_BOUNDS)
                    for o in (
                        sc.CircuitBreakerOutcomeValues.SUCCESS,
                        sc.CircuitBreakerOutcomeValues.FAILURE,
                        sc.CircuitBreakerOutcomeValues.IGNORED,
                    )
                }
            histogram = self._durations.get(outcome)
            if histogram is not None:
                histogram.record(seconds)

    def _attempt(self, owner: object, rejection: type[BaseException], invoke: Callable[[], T]) -> T:
        """Run ``invoke`` (the library's ``breaker.call(func, ...)``) as one wrapped call."""
        attempt = Attempt(owner)
        token = current_attempt.set(attempt)
        start = time.perf_counter()
        try:
            result = invoke()
        except BaseException as exc:
            self._finish_attempt(attempt, start, rejected=isinstance(exc, rejection))
            raise
        finally:
            current_attempt.reset(token)
        self._finish_attempt(attempt, start, rejected=False)
        return result

    async def _attempt_async(
        self, owner: object, rejection: type[BaseException], invoke: Callable[[], Awaitable[T]]
    ) -> T:
        """Await ``invoke()`` (the library's ``breaker.call_async(func, ...)``) as one wrapped call."""
        attempt = Attempt(owner)
        token = current_attempt.set(attempt)
        start = time.perf_counter()
        try:
            result = await invoke()
        except BaseException as exc:
            self._finish_attempt(attempt, start, rejected=isinstance(exc, rejection))
            raise
        finally:
            current_attempt.reset(token)
        self._finish_attempt(attempt, start, rejected=False)
        return result

    def _finish_attempt(self, attempt: Attempt, start: float, *, rejected: bool) -> None:
        """After a wrapped call: a rejection if it raised the library's rejection error before any
        hook saw it; otherwise timed, if a hook reported its outcome (a call cancelled or a
        generator function's, whose outcome comes later, is not)."""
        if not attempt.admitted:
            if rejected:
                self.record_rejection()
        elif attempt.outcome is not None:
            self._record_duration(attempt.outcome, time.perf_counter() - start)

    # ------------------------------------------------------------------ reading

    def read(self) -> BreakerReading:
        state = self.current_state()  # outside the lock: it may read a shared storage
        with self._lock:
            return BreakerReading(
                name=self._name,
                level=self.level,
                parent=self.parent,
                attributes=dict(self.attributes),
                state=state,
                successes=self._successes,
                ignored=self._ignored,
                failures_by_type=dict(self._failures_by_type),
                rejected_by_reason=dict(self._rejected_by_reason),
                transitions=dict(self._transitions),
                durations={} if self._durations is None else {o: h.reading() for o, h in self._durations.items()},
                recovery=self._recovery.reading(),
            )
