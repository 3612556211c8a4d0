"""What a breaker reports about itself: a :class:`BreakerSnapshot` and the cumulative :class:`CallTotals` in it.

Plain data, so that what reads a breaker (the exporter, stores, monitors, probes, a health endpoint)
depends on this module and not on the breaker's own.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._state import FallbackType, Level, Outcome, RejectionReason, State, TransitionReason

__all__ = ["MAX_ERROR_TYPES", "OTHER_ERROR_TYPE", "BreakerSnapshot", "CallTotals"]

#: Cap on distinct error types in the cumulative counters (bounded cardinality downstream).
MAX_ERROR_TYPES = 64
#: Where error types beyond the cap are counted.
OTHER_ERROR_TYPE = "_OTHER"


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
    #: Why the breaker entered its state (``rate_limited``: a 429 said when to come back);
    #: ``None`` for a breaker that has stayed closed since it was made.
    state_reason: TransitionReason | None = None
