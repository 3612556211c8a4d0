"""The breakers' series in the Prometheus text format, written directly from their readings.

The SDK's way to Prometheus (observations, aggregation, translation to prometheus_client
families, then formatting) costs about 13 us per series: 1,000 breakers take more than a core for
a second at every scrape. Here each breaker's labels are escaped and joined once and kept, and a
series costs one string join, so ``/metrics`` costs a few microseconds per series. The samples are
the ones the SDK path produces (:class:`~breakerpanel.exporter._series.SeriesPolicy` serves both; a test holds
them equal), except that labels the SDK fills with ``""`` are left out: Prometheus treats an empty
label as an absent one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from itertools import accumulate

from prometheus_client.utils import floatToGoString

from breakerpanel import HistogramReading

from . import semconv as sc
from ._catalog import BreakerCatalog
from ._series import Labels, SeriesPolicy
from ._sources import BreakerReading, common_attributes

__all__ = ["BreakerExposition"]

#: The identity of a breaker's common labels: name, level, parent, requires, dependency attributes.
_Key = tuple[str, str, str | None, tuple[str, ...], tuple[tuple[str, str], ...]]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _go(value: float) -> str:
    """A number as Prometheus' Go code writes it (prometheus_client's own formatting)."""
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


def _number(value: float) -> str:
    # _go, without its float() and branches for the common case of a small count.
    if type(value) is int and 0 <= value < 1_000_000:
        return f"{value}.0"
    return _go(value)


def _header(spec: sc.MetricSpec) -> str:
    help_text = spec.description.replace("\\", "\\\\").replace("\n", "\\n")
    return f"# HELP {spec.prometheus_name} {help_text}\n# TYPE {spec.prometheus_name} {spec.prometheus_type}\n"


class BreakerExposition:
    """Writes the breakers of ``catalog`` as Prometheus text, with the series ``policy`` gives."""

    def __init__(self, catalog: BreakerCatalog, policy: SeriesPolicy) -> None:
        self.catalog = catalog
        self.policy = policy
        self._lock = threading.Lock()
        self._common: dict[_Key, str] = {}
        self._extra: dict[Labels, str] = {}
        self._le: dict[tuple[float, ...], tuple[str, ...]] = {}

    def render(self) -> str:
        """The text of every breaker series, read now."""
        readings = self.catalog.readings()
        self.catalog.end_collection()
        with self._lock:  # the caches are shared by concurrent scrapes
            return "".join(self._lines(readings))

    # ------------------------------------------------------------------ labels, escaped once

    def _prefix(self, r: BreakerReading) -> str:
        key: _Key = (r.name, r.level, r.parent, r.requires, tuple(r.attributes.items()))
        prefix = self._common.get(key)
        if prefix is None:
            attributes = sorted((sc.label(k), v) for k, v in common_attributes(r).items())
            prefix = ",".join(f'{k}="{_escape(v)}"' for k, v in attributes if v)
            if len(self._common) > 4 * max(self.catalog.max_breakers, 1):
                self._common.clear()  # breakers renamed or evicted: do not keep their labels for ever
            self._common[key] = prefix
        return prefix

    def _labels(self, extra: Labels) -> str:
        text = self._extra.get(extra)
        if text is None:
            text = "".join(f',{sc.label(k)}="{_escape(v)}"' for k, v in extra if v)
            if len(self._extra) > 10_000:
                self._extra.clear()
            self._extra[extra] = text
        return text

    def _bounds(self, bounds: tuple[float, ...]) -> tuple[str, ...]:
        les = self._le.get(bounds)
        if les is None:
            les = self._le[bounds] = (*(_go(b) for b in bounds), "+Inf")
        return les

    # ------------------------------------------------------------------ the families

    def _lines(self, readings: list[BreakerReading]) -> Iterator[str]:
        p = self.policy
        prefixes = [(r, self._prefix(r)) for r in readings]
        for spec, series in p.families:
            yield from self._family(spec, ((prefix, series(r)) for r, prefix in prefixes))
        yield from self._histogram(
            sc.METRIC_CIRCUIT_BREAKER_CALL_DURATION, ((prefix, p.durations(r)) for r, prefix in prefixes)
        )
        yield from self._histogram(
            sc.METRIC_CIRCUIT_BREAKER_RECOVERY_DURATION,
            ((prefix, _single_histogram(p.recovery(r))) for r, prefix in prefixes),
        )

    def _family(self, spec: sc.MetricSpec, rows: Iterable[tuple[str, Iterable[tuple[Labels, float]]]]) -> Iterator[str]:
        name = spec.prometheus_name
        labels = self._labels
        # _number inlined for the common case, a count below a million (a call per series adds a third).
        lines = [
            f"{name}{{{prefix}{labels(extra)}}} {value}.0\n"
            if type(value) is int and 0 <= value < 1_000_000
            else f"{name}{{{prefix}{labels(extra)}}} {_number(value)}\n"
            for prefix, series in rows
            for extra, value in series
        ]
        if lines:
            yield _header(spec)
            yield from lines

    def _histogram(
        self, spec: sc.MetricSpec, rows: Iterable[tuple[str, Iterable[tuple[Labels, HistogramReading]]]]
    ) -> Iterator[str]:
        name = spec.prometheus_name
        lines: list[str] = []
        for prefix, histograms in rows:
            for extra, reading in histograms:
                labels = prefix + self._labels(extra)
                cumulative = list(accumulate(reading.counts))
                lines.extend(
                    f'{name}_bucket{{{labels},le="{le}"}} {_number(count)}\n'
                    for le, count in zip(self._bounds(reading.bounds), cumulative, strict=True)
                )
                lines.append(f"{name}_count{{{labels}}} {_number(cumulative[-1])}\n")
                lines.append(f"{name}_sum{{{labels}}} {_go(reading.sum)}\n")
        if lines:
            yield _header(spec)
            yield from lines


def _single_histogram(reading: HistogramReading | None) -> Iterator[tuple[Labels, HistogramReading]]:
    if reading is not None:
        yield (), reading
