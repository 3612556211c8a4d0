"""Load shedding: an adaptive concurrency limit per route or dependency (after Netflix's
concurrency-limits), that refuses the excess at once instead of queuing it.

A :class:`ConcurrencyLimiter` admits a request while fewer than ``limit`` are in flight, and its
limit follows the latencies it measures:

- :class:`AIMDLimit` adds one when a request completes in time with the limit in use, and
  multiplies it by ``backoff_ratio`` when one is slower than ``latency_threshold`` or dropped;
- :class:`GradientLimit` (Gradient2) compares the short-term latency with a long-term average:
  while latency stays near its baseline the limit grows by about its square root, and when
  queuing shows up (the ratio falls) it shrinks in proportion.

Neither grows while the service is app-limited (fewer than half the limit in flight), so an idle
service does not unlearn its limit. Priorities: ``CRITICAL`` requests (health checks, admin
calls) are always admitted and counted; ``SHEDDABLE`` ones are refused first, once
``sheddable_share`` of the limit is in use.

>>> limiter = ConcurrencyLimiter("ask", AIMDLimit(initial=1))
>>> first = limiter.try_acquire()
>>> limiter.try_acquire() is None, limiter.try_acquire(Priority.CRITICAL) is not None
(True, True)
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, final, runtime_checkable

from breakerpanel._clock import Clock, MonotonicClock
from breakerpanel._exceptions import BreakerConfigError, BreakerError

from ._ratelimit import GuardListener, _notify

__all__ = [
    "AIMDLimit",
    "ConcurrencyLimiter",
    "ConcurrencyStatistics",
    "GradientLimit",
    "LimitAlgorithm",
    "OverloadedError",
    "Priority",
    "Ticket",
]


class Priority(StrEnum):
    """How a request fares under overload."""

    #: Never shed (health checks, admin calls).
    CRITICAL = "critical"
    #: Shed when the limit is reached.
    NORMAL = "normal"
    #: Shed first, once ``sheddable_share`` of the limit is in use (batch work, prefetches).
    SHEDDABLE = "sheddable"


@runtime_checkable
class LimitAlgorithm(Protocol):
    """Adjusts a concurrency limit from the samples of completed requests."""

    @property
    def limit(self) -> int: ...

    def on_sample(self, rtt: float, in_flight: int, dropped: bool) -> None:
        """A request that had ``in_flight`` requests in flight (itself included) at its start
        completed after ``rtt`` seconds; ``dropped``: it failed in a way that means overload."""


def _is_number(value: object) -> bool:
    """A finite real number (``bool`` is not one here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_bounds(initial: int, min_limit: int, max_limit: int) -> None:
    if not 1 <= min_limit <= initial <= max_limit:
        raise BreakerConfigError(
            "initial", f"need 1 <= min_limit <= initial <= max_limit (got {min_limit}, {initial}, {max_limit})"
        )


@final
class AIMDLimit:
    """Additive increase, multiplicative decrease."""

    def __init__(
        self,
        *,
        initial: int = 20,
        min_limit: int = 1,
        max_limit: int = 1000,
        backoff_ratio: float = 0.9,
        latency_threshold: float = 1.0,
    ) -> None:
        _check_bounds(initial, min_limit, max_limit)
        if not 0.5 <= backoff_ratio < 1:
            raise BreakerConfigError("backoff_ratio", f"must be in [0.5, 1) (got {backoff_ratio})")
        if not (_is_number(latency_threshold) and latency_threshold > 0):
            # 0 or less would count every sample as slow: the limit would only ever shrink.
            raise BreakerConfigError(
                "latency_threshold", f"must be a positive number of seconds (got {latency_threshold!r})"
            )
        self.min_limit = min_limit
        self.max_limit = max_limit
        self.backoff_ratio = backoff_ratio
        self.latency_threshold = latency_threshold
        self._limit = float(initial)

    @property
    def limit(self) -> int:
        return int(self._limit)

    def on_sample(self, rtt: float, in_flight: int, dropped: bool) -> None:
        if dropped or rtt > self.latency_threshold:
            self._limit = max(float(self.min_limit), self._limit * self.backoff_ratio)
        elif in_flight * 2 >= self._limit:
            self._limit = min(float(self.max_limit), self._limit + 1)

    def __repr__(self) -> str:
        return f"AIMDLimit(limit={self.limit}, max_limit={self.max_limit}, latency_threshold={self.latency_threshold})"


@final
class GradientLimit:
    """Gradient2: ``limit * clamp(tolerance * long_rtt / short_rtt, 0.5, 1) + sqrt(limit)``,
    smoothed. ``long_window``: samples in the long-term average."""

    def __init__(
        self,
        *,
        initial: int = 20,
        min_limit: int = 1,
        max_limit: int = 1000,
        smoothing: float = 0.2,
        tolerance: float = 1.5,
        long_window: int = 600,
    ) -> None:
        _check_bounds(initial, min_limit, max_limit)
        if not 0 < smoothing <= 1:
            raise BreakerConfigError("smoothing", f"must be in (0, 1] (got {smoothing})")
        if not tolerance >= 1:
            raise BreakerConfigError("tolerance", f"must be at least 1 (got {tolerance})")
        if isinstance(long_window, bool) or not isinstance(long_window, int) or long_window < 1:
            raise BreakerConfigError("long_window", f"must be a positive number of samples (got {long_window!r})")
        self.min_limit = min_limit
        self.max_limit = max_limit
        self.smoothing = smoothing
        self.tolerance = tolerance
        self.long_window = long_window
        self._limit = float(initial)
        self._long_rtt = 0.0
        self._samples = 0

    @property
    def limit(self) -> int:
        return int(self._limit)

    def on_sample(self, rtt: float, in_flight: int, dropped: bool) -> None:
        rtt = max(rtt, 1e-6)
        self._samples += 1
        # The long-term baseline: a plain average while warming up, then an EMA.
        n = min(self._samples, self.long_window)
        self._long_rtt += (rtt - self._long_rtt) / n
        if self._long_rtt / rtt > 2:
            # Latency fell a lot (recovery): let the baseline follow quickly.
            self._long_rtt *= 0.95
        if not dropped and in_flight * 2 < self._limit:
            return  # app-limited: the samples say nothing about the limit
        if dropped:
            # Overload said outright: halve, without the queue allowance (sqrt(limit)), which
            # at a limit of 4 or less is as large as the cut and would hold or raise the limit.
            target = self._limit * 0.5
        else:
            gradient = max(0.5, min(1.0, self.tolerance * self._long_rtt / rtt))
            target = self._limit * gradient + math.sqrt(self._limit)
        new = self._limit * (1 - self.smoothing) + target * self.smoothing
        self._limit = max(float(self.min_limit), min(float(self.max_limit), new))

    def __repr__(self) -> str:
        return f"GradientLimit(limit={self.limit}, long_rtt={self._long_rtt:.4f}, max_limit={self.max_limit})"


class OverloadedError(BreakerError):
    """A request was shed: its limiter was at its concurrency limit."""

    def __init__(self, limiter: str, priority: Priority, limit: int, retry_after: float) -> None:
        super().__init__(f"{limiter}: over the concurrency limit ({limit}); retry in {retry_after:.0f}s")
        self.limiter = limiter
        self.priority = priority
        self.limit = limit
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class ConcurrencyStatistics:
    name: str
    limit: int
    in_flight: int
    #: Admitted requests, by priority.
    accepted: dict[Priority, int]
    #: Shed requests, by priority (``CRITICAL`` is always 0).
    shed: dict[Priority, int]


class Ticket:
    """An admitted request. Call exactly one of :meth:`success`, :meth:`dropped` or
    :meth:`ignore` (an error that says nothing about load) when it ends; a second call raises."""

    __slots__ = ("_done", "_in_flight", "_limiter", "_start")

    def __init__(self, limiter: ConcurrencyLimiter, start: float, in_flight: int) -> None:
        self._limiter = limiter
        self._start = start
        self._in_flight = in_flight
        self._done = False

    def _finish(self, sample: bool, dropped: bool) -> None:
        if self._done:
            raise RuntimeError("this ticket was already released")
        self._done = True
        self._limiter._release(self._start, self._in_flight, sample, dropped)

    def success(self) -> None:
        self._finish(True, False)

    def dropped(self) -> None:
        self._finish(True, True)

    def ignore(self) -> None:
        self._finish(False, False)


class ConcurrencyLimiter:
    """Admits requests below an adaptive concurrency limit; refuses the rest at once.

    Thread-safe (one lock, held for bookkeeping only). ``retry_after`` is what refused requests
    are told (seconds).
    """

    def __init__(
        self,
        name: str,
        algorithm: LimitAlgorithm | None = None,
        *,
        clock: Clock | None = None,
        listeners: Iterable[GuardListener] = (),
        sheddable_share: float = 0.75,
        retry_after: float = 1.0,
    ) -> None:
        if not 0 < sheddable_share <= 1:
            raise BreakerConfigError("sheddable_share", f"must be in (0, 1] (got {sheddable_share})")
        if not (_is_number(retry_after) and retry_after >= 0):
            raise BreakerConfigError(
                "retry_after", f"must be a finite number of seconds, 0 or more (got {retry_after!r})"
            )
        self.name = name
        self.algorithm: LimitAlgorithm = algorithm if algorithm is not None else GradientLimit()
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        self.listeners = tuple(listeners)
        self.sheddable_share = sheddable_share
        self.retry_after = retry_after
        self._lock = threading.Lock()
        self._in_flight = 0
        self._accepted = dict.fromkeys(Priority, 0)
        self._shed = dict.fromkeys(Priority, 0)

    @property
    def limit(self) -> int:
        return self.algorithm.limit

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def try_acquire(self, priority: Priority = Priority.NORMAL) -> Ticket | None:
        """A ticket, or ``None`` when the request should be shed."""
        with self._lock:
            limit = self.algorithm.limit
            if priority is not Priority.CRITICAL:
                ceiling = limit if priority is Priority.NORMAL else max(1, int(limit * self.sheddable_share))
                if self._in_flight >= ceiling:
                    self._shed[priority] += 1
                    in_flight = self._in_flight
                    shed = True
                else:
                    shed = False
            else:
                shed = False
            if not shed:
                self._in_flight += 1
                self._accepted[priority] += 1
                return Ticket(self, self.clock.now(), self._in_flight)
        if self.listeners:
            _notify(self.listeners, "shed", self.name, priority.value, limit, in_flight)
        return None

    def acquire(self, priority: Priority = Priority.NORMAL) -> Ticket:
        """A ticket, or :class:`OverloadedError`."""
        ticket = self.try_acquire(priority)
        if ticket is None:
            raise OverloadedError(self.name, priority, self.limit, self.retry_after)
        return ticket

    def _release(self, start: float, in_flight: int, sample: bool, dropped: bool) -> None:
        rtt = self.clock.now() - start
        with self._lock:
            self._in_flight -= 1
            if sample:
                self.algorithm.on_sample(rtt, in_flight, dropped)

    def statistics(self) -> ConcurrencyStatistics:
        with self._lock:
            return ConcurrencyStatistics(
                self.name, self.algorithm.limit, self._in_flight, dict(self._accepted), dict(self._shed)
            )

    def __repr__(self) -> str:
        return f"ConcurrencyLimiter({self.name!r}, {self.algorithm!r}, in_flight={self._in_flight})"
