"""Which series a breaker's reading becomes: one policy for the OpenTelemetry instruments and for
the direct Prometheus exposition (:mod:`breakerpanel.exporter._exposition`), so the two cannot disagree.

Two levels of detail:

- ``standard`` (the default), about 30 series per breaker: the call-duration histogram per breaker
  (outcomes summed) on :data:`STANDARD_DURATION_BOUNDS`, the recovery histogram on
  :data:`STANDARD_RECOVERY_BOUNDS`; the manual states (``forced_open``, ``disabled``,
  ``metrics_only``) exported only while the breaker is in one, and the rare counters (``ignored``
  calls, rejections for a reason other than ``open`` or ``parent_open``, slow calls) only once they
  are above 0.
- ``full``: today's every series: durations by outcome on the breaker's own buckets, every state
  and every counter from the start.

A series that first appears above 0 loses that first count to ``rate()`` and ``increase()``; the
series every alert rule needs from its first count (open rejections, a dependency's rejections,
the breaker's own cycle of transitions, failures as they come) are therefore exported at 0 from
the start at both levels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from operator import attrgetter
from typing import Literal

from breakerpanel import DEFAULT_DURATION_BOUNDS, DEFAULT_RECOVERY_BOUNDS, HistogramReading

from . import semconv as sc
from ._sources import BreakerReading

__all__ = [
    "MANUAL_STATES",
    "STANDARD_DURATION_BOUNDS",
    "STANDARD_RECOVERY_BOUNDS",
    "Detail",
    "Labels",
    "Series",
    "SeriesPolicy",
]

Detail = Literal["standard", "full"]
#: Extra attributes of one series, beyond the breaker's common ones: ``((key, value), ...)``.
Labels = tuple[tuple[str, str], ...]
#: The series of one metric for one reading: ``(extra labels, value)`` pairs.
Series = Callable[[BreakerReading], Iterator[tuple[Labels, float]]]

_S = sc.CircuitBreakerStateValues
_O = sc.CircuitBreakerOutcomeValues
_R = sc.CircuitBreakerRejectionReasonValues

#: Seconds, each about five times the one before: a cache or database call (10 ms, 100 ms), an LLM
#: call (0.5 s to 30 s). A subset of the breakers' default buckets, so coarsening loses nothing but
#: resolution.
STANDARD_DURATION_BOUNDS: tuple[float, ...] = (0.01, 0.1, 0.5, 2.5, 10.0, 30.0)
#: Seconds: a recovery within a minute (one open wait and a probe), within ten minutes, or longer:
#: the detail dashboard's thresholds for the median recovery.
STANDARD_RECOVERY_BOUNDS: tuple[float, ...] = (60.0, 600.0)
assert set(STANDARD_DURATION_BOUNDS) <= set(DEFAULT_DURATION_BOUNDS)
assert set(STANDARD_RECOVERY_BOUNDS) <= set(DEFAULT_RECOVERY_BOUNDS)

#: The states a person sets; a breaker never enters them by itself.
MANUAL_STATES = frozenset({_S.FORCED_OPEN.value, _S.DISABLED.value, _S.METRICS_ONLY.value})
_AUTOMATIC_STATES = tuple(s.value for s in _S if s.value not in MANUAL_STATES)
_ALL_STATES = tuple(s.value for s in _S)
_REASONS = tuple(r.value for r in _R)
#: The transitions a breaker makes by itself (trip, wait over, probes pass, probes fail).
_CYCLE = (
    (_S.CLOSED.value, _S.OPEN.value),
    (_S.OPEN.value, _S.HALF_OPEN.value),
    (_S.HALF_OPEN.value, _S.CLOSED.value),
    (_S.HALF_OPEN.value, _S.OPEN.value),
)
_OUTCOME = sc.CIRCUIT_BREAKER_OUTCOME
_SUCCESS = ((_OUTCOME, _O.SUCCESS.value),)
_IGNORED = ((_OUTCOME, _O.IGNORED.value),)
_SLOW_SUCCESS = _SUCCESS
_SLOW_FAILURE = ((_OUTCOME, _O.FAILURE.value),)


@lru_cache(maxsize=64)
def _bucket_slices(source: tuple[float, ...], target: tuple[float, ...]) -> tuple[tuple[int, int], ...] | None:
    """For each bucket on ``target`` (a subset of ``source``), the range of ``source``'s buckets it
    gathers; None when ``target`` is not a subset (a breaker given buckets of its own keeps them)."""
    if not set(target) <= set(source):
        return None
    # Source bucket i holds values up to source[i] (the last one: above every bound), so target
    # bucket j gathers the source buckets from just after target[j - 1] up to target[j].
    ends = [source.index(bound) + 1 for bound in target] + [len(source) + 1]
    return tuple(zip([0, *ends[:-1]], ends, strict=True))


def _merged(readings: Iterable[HistogramReading], target: tuple[float, ...] | None) -> HistogramReading | None:
    """Several histograms on the same buckets as one, on ``target``'s buckets when they are a
    subset of theirs (None for no histogram)."""
    readings = list(readings)
    if not readings:
        return None
    bounds = readings[0].bounds
    if any(r.bounds != bounds for r in readings):
        raise ValueError("histograms on different buckets cannot be summed")
    total = sum(r.sum for r in readings)
    if len(readings) == 1:
        columns: tuple[int, ...] = readings[0].counts
    else:
        columns = tuple(map(sum, zip(*(r.counts for r in readings), strict=True)))
    slices = _bucket_slices(bounds, target) if target is not None and target != bounds else None
    if slices is None:
        return HistogramReading(bounds=bounds, counts=columns, sum=total)
    assert target is not None
    return HistogramReading(bounds=target, counts=tuple(sum(columns[a:b]) for a, b in slices), sum=total)


def _one(value: Callable[[BreakerReading], float | None]) -> Series:
    """The series of a metric with one value per breaker (none while the value is None)."""

    def series(r: BreakerReading) -> Iterator[tuple[Labels, float]]:
        v = value(r)
        if v is not None:
            yield (), v

    return series


class SeriesPolicy:
    """The series of one reading, metric by metric, at one level of detail: ``(extra labels,
    value)`` pairs, the extra labels as semantic-convention attribute keys."""

    def __init__(self, detail: Detail = "standard") -> None:
        if detail not in ("standard", "full"):
            raise ValueError(f"detail: must be 'standard' or 'full' (got {detail!r})")
        self.detail: Detail = detail
        self.full = detail == "full"
        #: Every counter and gauge of a breaker, and its series: what the SDK's instruments observe
        #: and what the direct exposition writes (the two histograms are :meth:`durations` and
        #: :meth:`recovery`).
        self.families: tuple[tuple[sc.MetricSpec, Series], ...] = (
            (sc.METRIC_CIRCUIT_BREAKER_STATE, self.state),
            (sc.METRIC_CIRCUIT_BREAKER_CALLS, self.calls),
            (sc.METRIC_CIRCUIT_BREAKER_SLOW_CALLS, self.slow_calls),
            (sc.METRIC_CIRCUIT_BREAKER_TRANSITIONS, self.transitions),
            (sc.METRIC_CIRCUIT_BREAKER_FALLBACKS, self.fallbacks),
            (sc.METRIC_CIRCUIT_BREAKER_PROBES, self.probes),
            (sc.METRIC_CIRCUIT_BREAKER_FAILURE_RATE, _one(attrgetter("failure_rate"))),
            (sc.METRIC_CIRCUIT_BREAKER_SLOW_CALL_RATE, _one(attrgetter("slow_call_rate"))),
            (sc.METRIC_CIRCUIT_BREAKER_FAILURE_RATE_THRESHOLD, _one(attrgetter("failure_rate_threshold"))),
            (sc.METRIC_CIRCUIT_BREAKER_SLOW_CALL_RATE_THRESHOLD, _one(attrgetter("slow_call_rate_threshold"))),
            (sc.METRIC_CIRCUIT_BREAKER_SLOW_CALL_DURATION_THRESHOLD, _one(attrgetter("slow_call_duration"))),
            (sc.METRIC_CIRCUIT_BREAKER_TRIP_FORECASTS, _one(attrgetter("trip_forecasts"))),
        )

    def state(self, r: BreakerReading) -> Iterator[tuple[Labels, float]]:
        if not r.state:
            return  # the _OTHER sum has no state
        if self.full:
            states = _ALL_STATES
        elif r.state in MANUAL_STATES:
            states = (*_AUTOMATIC_STATES, r.state)
        else:
            states = _AUTOMATIC_STATES
        for state in states:
            yield ((sc.CIRCUIT_BREAKER_STATE, state),), 1 if state == r.state else 0

    def calls(self, r: BreakerReading) -> Iterator[tuple[Labels, float]]:
        yield _SUCCESS, r.successes
        if self.full or r.ignored:
            yield _IGNORED, r.ignored
        failure = _O.FAILURE.value
        for error_type, count in r.failures_by_type.items():
            yield ((_OUTCOME, failure), (sc.ERROR_TYPE, error_type)), count
        rejected = _O.REJECTED.value
        # From the start: `open` (the breaker's own trip), and `parent_open` for a breaker that
        # depends on another (its service, a feature's dependencies).
        always = {_R.OPEN.value}
        if r.parent is not None or r.requires:
            always.add(_R.PARENT_OPEN.value)
        for reason in _REASONS:
            count = r.rejected_by_reason.get(reason, 0)
            if self.full or count or reason in always:
                yield ((_OUTCOME, rejected), (sc.CIRCUIT_BREAKER_REJECTION_REASON, reason)), count

    def slow_calls(self, r: BreakerReading) -> Iterator[tuple[Labels, float]]:
        if self.full or r.slow_successes:
            yield _SLOW_SUCCESS, r.slow_successes
        if self.full or r.slow_failures:
            yield _SLOW_FAILURE, r.slow_failures

    def transitions(self, r: BreakerReading) -> Iterator[tuple[Labels, float]]:
        # The automatic cycle's transitions at 0 before they first happen: a series that appears
        # at 1 loses that first transition to increase() (a breaker's first trip).
        for (previous, state), count in (dict.fromkeys(_CYCLE, 0) | dict(r.transitions)).items():
            yield ((sc.CIRCUIT_BREAKER_PREVIOUS_STATE, previous), (sc.CIRCUIT_BREAKER_STATE, state)), count

    def fallbacks(self, r: BreakerReading) -> Iterator[tuple[Labels, float]]:
        for (kind, outcome), count in r.fallbacks.items():
            yield ((sc.CIRCUIT_BREAKER_FALLBACK_TYPE, kind), (_OUTCOME, outcome)), count

    def probes(self, r: BreakerReading) -> Iterator[tuple[Labels, float]]:
        for outcome, count in r.probes.items():
            yield ((_OUTCOME, outcome),), count

    def durations(self, r: BreakerReading) -> Iterator[tuple[Labels, HistogramReading]]:
        if self.full:
            for outcome, reading in r.durations.items():
                yield ((_OUTCOME, outcome),), reading
            return
        merged = _merged(r.durations.values(), STANDARD_DURATION_BOUNDS)
        if merged is not None:
            yield (), merged

    def recovery(self, r: BreakerReading) -> HistogramReading | None:
        if r.recovery is None or self.full:
            return r.recovery
        return _merged((r.recovery,), STANDARD_RECOVERY_BOUNDS)
