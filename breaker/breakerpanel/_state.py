"""States, outcomes and reasons: the vocabulary shared by the breaker, its events and its telemetry."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["FallbackType", "Level", "Outcome", "RejectionReason", "State", "TransitionReason", "WindowType"]


class State(StrEnum):
    """The state of a circuit breaker.

    ``CLOSED``, ``OPEN`` and ``HALF_OPEN`` are driven by the calls' outcomes. The other three are
    set by hand and stay until changed by hand (``FORCED_OPEN`` may carry an expiry):

    - ``FORCED_OPEN`` rejects every call;
    - ``DISABLED`` lets every call through and records nothing;
    - ``METRICS_ONLY`` lets every call through, records everything and never trips.
    """

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"
    METRICS_ONLY = "metrics_only"


class Outcome(StrEnum):
    """How one call ended, as counted by the breaker."""

    SUCCESS = "success"
    FAILURE = "failure"
    IGNORED = "ignored"
    REJECTED = "rejected"


class RejectionReason(StrEnum):
    """Why a call was not admitted."""

    OPEN = "open"
    HALF_OPEN_FULL = "half_open_full"
    PARENT_OPEN = "parent_open"
    FORCED_OPEN = "forced_open"


class TransitionReason(StrEnum):
    """Why the breaker changed state (carried by :class:`~breakerpanel.StateChange` events)."""

    FAILURE_RATE = "failure_rate"
    SLOW_CALL_RATE = "slow_call_rate"
    CONSECUTIVE_FAILURES = "consecutive_failures"
    RATE_LIMITED = "rate_limited"
    WAIT_ELAPSED = "wait_elapsed"
    PROBES_SUCCEEDED = "probes_succeeded"
    PROBES_FAILED = "probes_failed"
    #: An active health probe (``ProbeRunner``) found the dependency back: half-open before the wait ends.
    PROBE_SUCCEEDED = "probe_succeeded"
    HALF_OPEN_TIMEOUT = "half_open_timeout"
    MANUAL = "manual"


class WindowType(StrEnum):
    """The kind of sliding window that holds the recent calls."""

    COUNT_BASED = "count_based"
    TIME_BASED = "time_based"


class Level(StrEnum):
    """Where a breaker sits in the hierarchy: a dependency, one operation on it, or a feature."""

    SERVICE = "service"
    ENDPOINT = "endpoint"
    FEATURE = "feature"


class FallbackType(StrEnum):
    """The kinds of fallback step."""

    ALTERNATE = "alternate"
    CACHE = "cache"
    #: The stored answer of a similar earlier question (:class:`~breakerpanel.SemanticCache`).
    SEMANTIC_CACHE = "semantic_cache"
    SIMPLIFIED = "simplified"
    STATIC = "static"
