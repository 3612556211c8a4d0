"""The breakers the exporter reports on, behind a cardinality guard.

Series are bounded by the number of breakers, never by requests: labels are the breaker's name,
level, parent and configured dependency attributes. The guard keeps that true even when an
application creates breakers per tenant or per URL by mistake:

- at most ``max_breakers`` breakers are reported by name; the rest are summed under the name
  ``_OTHER``, with one warning;
- dependency attributes outside the registry's list are dropped, with one warning each;
- each attribute keeps at most ``max_values_per_attribute`` distinct values; later ones read
  ``_OTHER`` (error types are capped the same way by the breakers themselves);
- breakers idle for ``evict_idle_after`` seconds stop being reported until they are used again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from breakerpanel import OTHER_ERROR_TYPE, BreakerRegistry, CircuitBreaker

from . import semconv
from ._sources import BreakerReading, BreakerSource, CircuitBreakerSource

__all__ = ["OTHER", "BreakerCatalog"]

logger = logging.getLogger("breakerpanel.exporter")

OTHER = "_OTHER"


@dataclass
class _Activity:
    value: int
    since: float


# How long an empty reading serves. With every breaker evicted as idle, the SDK's collection has
# no metric and no reader ends it, so an empty reading kept for the collection would hide a
# breaker used again until something else ended one (a /metrics scrape); not kept at all, every
# callback of one collection read every idle breaker again (12 reads of each, per collection).
# A collection's callbacks run within this; two collections come further apart.
_EMPTY_FOR = 1.0


class BreakerCatalog:
    """Sources of breaker readings: breakers, registries (their breakers, present and future)
    and adapters of other libraries."""

    def __init__(
        self,
        *,
        max_breakers: int = 500,
        max_values_per_attribute: int = 100,
        evict_idle_after: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_breakers < 1 or max_values_per_attribute < 1:
            raise ValueError("max_breakers and max_values_per_attribute must be at least 1")
        self.max_breakers = max_breakers
        self.max_values_per_attribute = max_values_per_attribute
        self.evict_idle_after = evict_idle_after
        self._clock = clock
        self._lock = threading.Lock()
        self._sources: dict[str, BreakerSource] = {}
        self._allowed = frozenset(semconv.DEPENDENCY_ATTRIBUTES)
        self._values: dict[str, set[str]] = {}
        self._warned: set[str] = set()
        self._activity: dict[str, _Activity] = {}
        self._cached: tuple[int, list[BreakerReading], float] | None = None
        self._generation = 0

    # ------------------------------------------------------------------ adding

    def add(self, item: CircuitBreaker | BreakerRegistry | BreakerSource | Iterable[CircuitBreaker]) -> None:
        """Report on a breaker, every breaker of a registry (those added later too), or a source."""
        if isinstance(item, BreakerRegistry):
            item.watch(self._watched)  # its breakers now, and each one registered later
            return
        with self._lock:
            if isinstance(item, CircuitBreaker):
                self._add_breaker(item)
            elif isinstance(item, BreakerSource):
                self._sources.setdefault(item.name, item)
            else:
                for breaker in item:
                    self._add_breaker(breaker)
            self._cached = None
            self._generation += 1  # a reading under way misses it: not cached

    def _watched(self, breaker: CircuitBreaker) -> None:
        with self._lock:
            self._add_breaker(breaker)
            self._cached = None
            self._generation += 1

    def _add_breaker(self, breaker: CircuitBreaker) -> None:
        if breaker.name not in self._sources:
            self._sources[breaker.name] = CircuitBreakerSource(breaker)

    def breakers(self) -> list[CircuitBreaker]:
        """Our breakers among the sources."""
        with self._lock:
            return [s.breaker for s in self._sources.values() if isinstance(s, CircuitBreakerSource)]

    # ------------------------------------------------------------------ reading

    def end_collection(self) -> None:
        """A collection is over: the next readings() reads the breakers again."""
        with self._lock:
            self._generation += 1

    def readings(self) -> list[BreakerReading]:
        """One reading per reported breaker, read once per collection (every instrument's
        callback in one collection sees the same figures)."""
        with self._lock:
            # The generation this reading belongs to: stored under the one current when it ends,
            # a reading that began before a collection ended (an OTLP push racing a scrape) was
            # served as the next collection's, an older figure after a newer one.
            generation = self._generation
            cached = self._cached
            if cached is not None and cached[0] == generation and (cached[1] or self._clock() - cached[2] < _EMPTY_FOR):
                return cached[1]
            sources = list(self._sources.values())
        readings = [self._guard(source.read()) for source in sources]
        # Capped before idle ones are left out: which breakers have series of their own and
        # which are summed into _OTHER stays as it was (sources in the order they were added).
        # The other way round, a named breaker going idle pulled one out of _OTHER, which then
        # went back: _OTHER's counters fell (120 -> 22 -> 123) and the breaker's jumped.
        readings = self._capped(readings)
        readings = self._without_idle(readings)
        with self._lock:
            if generation == self._generation:
                self._cached = (generation, readings, self._clock())
        return readings

    def _guard(self, reading: BreakerReading) -> BreakerReading:
        attributes: dict[str, str] = {}
        for key, value in reading.attributes.items():
            if key not in self._allowed:
                self._warn_once(
                    f"attribute:{key}",
                    "dropping attribute %r of breaker %r: not in the registry's list",
                    key,
                    reading.name,
                )
                continue
            attributes[key] = self._value(key, str(value))
        if attributes == reading.attributes:
            return reading  # the common case: nothing dropped or capped, no copy of the reading
        return replace(reading, attributes=attributes)

    def _value(self, key: str, value: str) -> str:
        with self._lock:
            seen = self._values.setdefault(key, set())
            if value in seen:
                return value
            if len(seen) >= self.max_values_per_attribute:
                overflow = True
            else:
                seen.add(value)
                overflow = False
        if overflow:
            self._warn_once(
                f"values:{key}",
                "attribute %r has more than %d values; reporting the rest as %s",
                key,
                self.max_values_per_attribute,
                OTHER,
            )
            return OTHER
        return value

    def _without_idle(self, readings: list[BreakerReading]) -> list[BreakerReading]:
        if self.evict_idle_after is None:
            return readings
        now = self._clock()
        kept = []
        for reading in readings:
            activity = reading.activity
            with self._lock:
                seen = self._activity.get(reading.name)
                if seen is None or seen.value != activity:
                    self._activity[reading.name] = _Activity(activity, now)
                    idle = 0.0
                else:
                    idle = now - seen.since
            if idle < self.evict_idle_after:
                kept.append(reading)
        return kept

    def _capped(self, readings: list[BreakerReading]) -> list[BreakerReading]:
        if len(readings) <= self.max_breakers:
            return readings
        self._warn_once("breakers", "more than %d breakers; reporting the rest summed as %s", self.max_breakers, OTHER)
        kept, rest = readings[: self.max_breakers - 1], readings[self.max_breakers - 1 :]
        return [*kept, _summed(rest)]

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        with self._lock:
            if key in self._warned:
                return
            self._warned.add(key)
        logger.warning(message, *args)


def _add(a: Mapping[object, int], b: Mapping[object, int]) -> dict[object, int]:
    out = dict(a)
    for key, value in b.items():
        out[key] = out.get(key, 0) + value
    return out


def _summed(readings: list[BreakerReading]) -> BreakerReading:
    """The counters of several breakers as one ``_OTHER`` breaker (no state, rates or histograms:
    they do not add up). Its failures are of one error type, ``_OTHER``: the union of every
    summed breaker's types grew with their number (640 series for 11 breakers at 64 types)."""
    total = BreakerReading(name=OTHER, level="service", parent=None, attributes={}, state="")
    for r in readings:
        failures = sum(r.failures_by_type.values())
        total = replace(
            total,
            successes=total.successes + r.successes,
            ignored=total.ignored + r.ignored,
            failures_by_type=_add(total.failures_by_type, {OTHER_ERROR_TYPE: failures} if failures else {}),  # type: ignore[arg-type]
            rejected_by_reason=_add(total.rejected_by_reason, r.rejected_by_reason),  # type: ignore[arg-type]
            slow_successes=total.slow_successes + r.slow_successes,
            slow_failures=total.slow_failures + r.slow_failures,
            transitions=_add(total.transitions, r.transitions),  # type: ignore[arg-type]
            fallbacks=_add(total.fallbacks, r.fallbacks),  # type: ignore[arg-type]
        )
    return total
