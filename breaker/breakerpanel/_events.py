"""A breaker's boundary: the events it publishes, the listener interface that receives them, and
:class:`BreakerControl`, what listeners, state stores, monitors and probes may read and do to a breaker.

Everything outside the breaker's own module works through these (the breaker satisfies
:class:`BreakerControl`), so a third-party store or monitor needs nothing private, and this module
depends on no other part of the breaker.

Listeners run synchronously in the thread that caused the event, after the breaker has released
its lock (so a listener may read the breaker). A listener that raises is logged and otherwise
ignored: it never breaks the protected call. With no listener registered nothing is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from ._clock import Clock
from ._config import BreakerConfig
from ._histogram import DEFAULT_DURATION_BOUNDS, HistogramReading
from ._snapshot import BreakerSnapshot
from ._state import FallbackType, Level, Outcome, RejectionReason, State, TransitionReason

__all__ = [
    "BreakerControl",
    "BreakerListener",
    "CallRecorded",
    "CallRejected",
    "FallbackUsed",
    "StateChanged",
    "TripPredicted",
]


class BreakerControl(Protocol):
    """A circuit breaker as what surrounds it sees it: what it is, what it reports, and the few
    ways to move it that are not calls. :class:`~breakerpanel.CircuitBreaker` implements it.

    Each way to move it names whose decision it carries: another replica's
    (:meth:`apply_shared_state`, for a :class:`~breakerpanel.StateStore`), adaptive thresholds'
    (:meth:`set_thresholds`), a trip forecast's (:meth:`publish_trip_forecast`), an active health
    probe's (:meth:`half_open_after_probe`, :meth:`hold_open_until`, which take the ``generation``
    of the snapshot the probe began from, so a result that arrives after the breaker moved on
    changes nothing).
    """

    @property
    def name(self) -> str: ...
    @property
    def level(self) -> Level: ...
    @property
    def parent(self) -> BreakerControl | None: ...
    @property
    def children(self) -> tuple[BreakerControl, ...]: ...
    @property
    def attributes(self) -> Mapping[str, str]: ...
    @property
    def config(self) -> BreakerConfig: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def state(self) -> State: ...

    def snapshot(self) -> BreakerSnapshot: ...
    def duration_histograms(self) -> dict[Outcome, HistogramReading]: ...
    def enable_duration_histograms(self, bounds: tuple[float, ...] = DEFAULT_DURATION_BOUNDS) -> None: ...
    def add_listener(self, listener: BreakerListener) -> None: ...
    def remove_listener(self, listener: BreakerListener) -> None: ...

    def apply_shared_state(
        self, state: State, reason: TransitionReason, open_for: float | None, *, only_from: State | None = None
    ) -> bool: ...
    def set_thresholds(self, failure_rate_threshold: float, slow_call_duration: float) -> None: ...
    def publish_trip_forecast(
        self, rate: float, predicted: float, threshold: float, horizon: float, seconds_to_trip: float | None, at: float
    ) -> None: ...
    def half_open_after_probe(self, generation: int) -> bool: ...
    def hold_open_until(self, generation: int, until: float) -> bool: ...


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The breaker changed state. ``previous`` is ``state`` only for ``force_open()`` moving the
    deadline of a breaker already forced open (no transition is counted then)."""

    breaker: BreakerControl
    previous: State
    state: State
    reason: TransitionReason
    #: Clock time of the change.
    at: float
    #: Seconds the breaker will stay open (open and forced-open with expiry), else ``None``.
    open_for: float | None = None


@dataclass(frozen=True, slots=True)
class CallRecorded:
    breaker: BreakerControl
    outcome: Outcome
    #: ``None`` for successes; ``timeout``, ``rate_limited``, ``cancelled`` or a classifier's type.
    error_type: str | None
    duration: float
    slow: bool
    #: ``False`` when the result arrived after a state change and so did not count.
    counted: bool


@dataclass(frozen=True, slots=True)
class CallRejected:
    breaker: BreakerControl
    reason: RejectionReason
    state: State
    remaining: float | None


@dataclass(frozen=True, slots=True)
class FallbackUsed:
    """A fallback step ran for one of the breaker's calls (or a feature's)."""

    breaker: BreakerControl
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

    breaker: BreakerControl
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
