"""Instruments for the guards (rate limiters, authentication lockouts, concurrency limiters) and
for the state stores that share breakers' state.

Like the breakers' instruments, they are observable: the callbacks read each guard's
``statistics()`` (cumulative counters and the current limit) when Prometheus scrapes, so a
decision costs nothing for telemetry. Labels name the guard, never a key, principal or address.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from breakerpanel import StateStore
from breakerpanel.guards import ConcurrencyLimiter, LockoutGuard, RateLimiter, SubjectKind

from . import semconv as sc

__all__ = ["Guard", "GuardInstruments", "StoreInstruments"]

Guard = RateLimiter | LockoutGuard | ConcurrencyLimiter


class GuardInstruments:
    """Registers the guard metrics of the registry on ``meter``; :meth:`add` guards to report."""

    def __init__(self, meter: Meter) -> None:
        self._lock = threading.Lock()
        self._rate_limiters: dict[str, RateLimiter] = {}
        self._lockouts: dict[str, LockoutGuard] = {}
        self._limiters: dict[str, ConcurrencyLimiter] = {}
        for spec, callback in (
            (sc.METRIC_RATE_LIMIT_LIMITED_KEYS, self._limited_keys),
            (sc.METRIC_CONCURRENCY_LIMIT_LIMIT, self._limit),
            (sc.METRIC_CONCURRENCY_LIMIT_IN_FLIGHT, self._in_flight),
        ):
            assert spec.instrument == "gauge"
            meter.create_observable_gauge(spec.name, [callback], spec.unit, spec.description)
        for spec, callback in (
            (sc.METRIC_RATE_LIMIT_DECISIONS, self._decisions),
            (sc.METRIC_AUTH_LOCKOUT_FAILURES, self._failures),
            (sc.METRIC_AUTH_LOCKOUT_LOCKOUTS, self._lockouts_started),
            (sc.METRIC_AUTH_LOCKOUT_REJECTIONS, self._rejections),
            (sc.METRIC_CONCURRENCY_LIMIT_REQUESTS, self._requests),
        ):
            assert spec.instrument == "counter"
            meter.create_observable_counter(spec.name, [callback], spec.unit, spec.description)

    def add(self, guard: Guard) -> None:
        """Report on ``guard`` (one per name and kind; a second guard with the same name is ignored)."""
        with self._lock:
            if isinstance(guard, RateLimiter):
                self._rate_limiters.setdefault(guard.name, guard)
            elif isinstance(guard, LockoutGuard):
                self._lockouts.setdefault(guard.name, guard)
            elif isinstance(guard, ConcurrencyLimiter):
                self._limiters.setdefault(guard.name, guard)
            else:
                raise TypeError(f"not a guard: {guard!r}")

    def _snapshot(self) -> tuple[list[RateLimiter], list[LockoutGuard], list[ConcurrencyLimiter]]:
        with self._lock:
            return list(self._rate_limiters.values()), list(self._lockouts.values()), list(self._limiters.values())

    # ------------------------------------------------------------------ rate limiters

    def _decisions(self, options: CallbackOptions) -> Iterable[Observation]:
        for limiter in self._snapshot()[0]:
            stats = limiter.statistics()
            for outcome, count in (
                (sc.RateLimitOutcomeValues.ALLOWED, stats.allowed),
                (sc.RateLimitOutcomeValues.LIMITED, stats.limited),
            ):
                yield Observation(count, {sc.RATE_LIMIT_NAME: stats.name, sc.RATE_LIMIT_OUTCOME: outcome.value})

    def _limited_keys(self, options: CallbackOptions) -> Iterable[Observation]:
        for limiter in self._snapshot()[0]:
            stats = limiter.statistics()
            yield Observation(stats.recently_limited_keys, {sc.RATE_LIMIT_NAME: stats.name})

    # ------------------------------------------------------------------ lockouts

    def _failures(self, options: CallbackOptions) -> Iterable[Observation]:
        for guard in self._snapshot()[1]:
            stats = guard.statistics()
            yield Observation(stats.failures, {sc.AUTH_LOCKOUT_NAME: stats.name})

    def _lockouts_started(self, options: CallbackOptions) -> Iterable[Observation]:
        for guard in self._snapshot()[1]:
            stats = guard.statistics()
            for kind in SubjectKind:
                yield Observation(
                    stats.lockouts.get(kind, 0), {sc.AUTH_LOCKOUT_NAME: stats.name, sc.AUTH_LOCKOUT_SUBJECT: kind.value}
                )

    def _rejections(self, options: CallbackOptions) -> Iterable[Observation]:
        for guard in self._snapshot()[1]:
            stats = guard.statistics()
            yield Observation(stats.rejected, {sc.AUTH_LOCKOUT_NAME: stats.name})

    # ------------------------------------------------------------------ concurrency limiters

    def _limit(self, options: CallbackOptions) -> Iterable[Observation]:
        for limiter in self._snapshot()[2]:
            yield Observation(limiter.limit, {sc.CONCURRENCY_LIMIT_NAME: limiter.name})

    def _in_flight(self, options: CallbackOptions) -> Iterable[Observation]:
        for limiter in self._snapshot()[2]:
            yield Observation(limiter.in_flight, {sc.CONCURRENCY_LIMIT_NAME: limiter.name})

    def _requests(self, options: CallbackOptions) -> Iterable[Observation]:
        for limiter in self._snapshot()[2]:
            stats = limiter.statistics()
            for outcome, counts in (
                (sc.ConcurrencyLimitOutcomeValues.ACCEPTED, stats.accepted),
                (sc.ConcurrencyLimitOutcomeValues.SHED, stats.shed),
            ):
                for priority, count in counts.items():
                    yield Observation(
                        count,
                        {
                            sc.CONCURRENCY_LIMIT_NAME: stats.name,
                            sc.CONCURRENCY_LIMIT_OUTCOME: outcome.value,
                            sc.CONCURRENCY_LIMIT_PRIORITY: priority.value,
                        },
                    )


class StoreInstruments:
    """Registers the state-store metrics on ``meter``; :meth:`add` the stores to report (a
    registry's store is added with the registry). Read from ``StateStore.status()`` at scrape time;
    several stores of one backend in a process are reported as one: available only if all are,
    errors summed."""

    def __init__(self, meter: Meter) -> None:
        self._lock = threading.Lock()
        self._stores: dict[int, StateStore] = {}
        spec = sc.METRIC_CIRCUIT_BREAKER_STORE_AVAILABLE
        assert spec.instrument == "gauge"
        meter.create_observable_gauge(spec.name, [self._available], spec.unit, spec.description)
        spec = sc.METRIC_CIRCUIT_BREAKER_STORE_ERRORS
        assert spec.instrument == "counter"
        meter.create_observable_counter(spec.name, [self._errors], spec.unit, spec.description)

    def add(self, store: StateStore) -> None:
        with self._lock:
            self._stores.setdefault(id(store), store)

    def _statuses(self) -> dict[str, tuple[bool, int]]:
        with self._lock:
            stores = list(self._stores.values())
        by_backend: dict[str, tuple[bool, int]] = {}
        for store in stores:
            status = store.status()
            available, errors = by_backend.get(status.backend, (True, 0))
            by_backend[status.backend] = (available and status.available, errors + status.errors)
        return by_backend

    def _available(self, options: CallbackOptions) -> Iterable[Observation]:
        for backend, (available, _) in self._statuses().items():
            yield Observation(1 if available else 0, {sc.CIRCUIT_BREAKER_STORE_BACKEND: backend})

    def _errors(self, options: CallbackOptions) -> Iterable[Observation]:
        for backend, (_, errors) in self._statuses().items():
            yield Observation(errors, {sc.CIRCUIT_BREAKER_STORE_BACKEND: backend})
