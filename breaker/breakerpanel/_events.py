"""Events a breaker publishes, and the listener interface that receives them.

Listeners run synchronously in the thread that caused the event, after the breaker has released
its lock (so a listener may read the breaker). A listener that raises is logged and otherwise
ignored: it never breaks the protected call. With no listener registered nothing is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._state import FallbackType, Outcome, RejectionReason, State, TransitionReason

if TYPE_CHECKING:
    from ._breaker import CircuitBreaker

__all__ = ["BreakerListener", "CallRecorded", "CallRejected", "FallbackUsed", "StateChanged", "TripPredicted"]


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The breaker changed state. ``previous`` is ``state`` only for ``force_open()`` moving the
    deadline of a breaker already forced open (no transition is counted then)."""

    breaker: CircuitBreaker
    previous: State
    state: State
    reason: TransitionReason
    #: Clock time of the change.
    at: float
    #: Seconds the breaker will stay open (open and forced-open with expiry), else ``None``.
    open_for: float | None = None


@dataclass(frozen=True, slots=True)
class CallRecorded:
    breaker: CircuitBreaker
    outcome: Outcome
    #: ``None`` for successes; ``timeout``, ``rate_limited``, ``cancelled`` or a classifier's type.
    error_type: str | None
    duration: float
    slow: bool
    #: ``False`` when the result arrived after a state change and so did not count.
    counted: bool


@dataclass(frozen=True, slots=True)
class CallRejected:
    breaker: CircuitBreaker
    reason: RejectionReason
    state: State
    remaining: float | None


@dataclass(frozen=True, slots=True)
class FallbackUsed:
    """A fallback step ran for one of the breaker's calls (or a feature's)."""

    breaker: CircuitBreaker
    fallback_type: FallbackType
    #: The step's name (``anthropic``, ``cache``...).
    step: str
    #: ``success`` when the step served the call, ``failure`` when it failed too.
    outcome: Outcome
    error: BaseException | None


@dataclass(frozen=True, slots=True)
class TripPredicted:
    """The failure rate's trend reaches the threshold in force within ``horizon`` seconds while the
    breaker is still closed and under it: an early warning (``BreakerConfig(forecast=...)``)."""

    breaker: CircuitBreaker
    #: The window's failure rate now.
    failure_rate: float
    #: The rate the trend reaches ``horizon`` seconds from now (at most 1).
    predicted: float
    #: The failure-rate threshold in force.
    threshold: float
    horizon: float
    #: Seconds until the trend reaches the threshold, by the fitted line.
    seconds_to_trip: float | None
    #: Clock time of the forecast.
    at: float


class BreakerListener:
    """Override the methods you need; the others do nothing."""

    #: An optional gate: a cheap callable, ``listening() -> object``, that the breaker calls before
    #: it builds an event for this listener. A false result says the listener would do nothing
    #: with any event just now (an OpenTelemetry listener with no span to add it to), so the
    #: breaker builds none for it and does not call it. A breaker may read it once, when the
    #: listener is added; ``None`` (the default): every event is delivered. For rejections on a hot path
    #: the gate is what keeps a listener that usually ignores them cheap (a frozen event costs
    #: more than the rejection itself).
    listening: Callable[[], object] | None = None

    def state_changed(self, event: StateChanged) -> None:
        """The breaker moved from ``event.previous`` to ``event.state``."""

    def call_recorded(self, event: CallRecorded) -> None:
        """A call finished (successfully, failing, or ignored)."""

    def call_rejected(self, event: CallRejected) -> None:
        """A call was rejected without being attempted."""

    def fallback_used(self, event: FallbackUsed) -> None:
        """A fallback step served one of the breaker's calls, or failed to."""

    def trip_predicted(self, event: TripPredicted) -> None:
        """The failure rate is rising toward the threshold: the breaker may trip soon."""
