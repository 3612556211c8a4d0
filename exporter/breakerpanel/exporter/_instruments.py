"""The OpenTelemetry instruments: observable ones read the breakers' counters at collection time.

No synchronous instrument is called on the call path (an SDK ``Counter.add`` costs about 14 us
here, ``Histogram.record`` about 18 us). Counters and gauges are observable instruments whose
callbacks read :class:`~breakerpanel.exporter._catalog.BreakerCatalog`; the two histograms, which the Python
SDK cannot observe, are built from the breakers' own bucket counts and added to each collection
by the readers (:mod:`breakerpanel.exporter._readers`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from breakerpanel import HistogramReading

from . import semconv as sc
from ._catalog import BreakerCatalog
from ._deltas import HistogramDeltas
from ._series import Series, SeriesPolicy
from ._sources import BreakerReading, common_attributes

__all__ = ["BreakerInstruments"]


class BreakerInstruments:
    """Registers the registry's metrics on ``meter``, reading ``catalog``."""

    def __init__(
        self, meter: Meter, catalog: BreakerCatalog, scope: InstrumentationScope, policy: SeriesPolicy | None = None
    ) -> None:
        self.catalog = catalog
        self.policy = policy if policy is not None else SeriesPolicy()
        #: Set while :class:`~breakerpanel.exporter._exposition.BreakerExposition` writes the breakers' series
        #: itself: the SDK's collection for ``/metrics`` then leaves them out.
        self._silenced = threading.local()
        self.scope = scope
        self._start_ns = time.time_ns()
        for spec, series in self.policy.families:
            callback = self._callback(series)
            if spec.instrument == "gauge":
                meter.create_observable_gauge(spec.name, [callback], spec.unit, spec.description)
            elif spec.instrument == "counter":
                meter.create_observable_counter(spec.name, [callback], spec.unit, spec.description)
            else:  # pragma: no cover - the registry's instruments are gauges, counters and histograms
                raise ValueError(f"{spec.name}: no observable instrument for {spec.instrument!r}")

    # ------------------------------------------------------------------ callbacks

    @contextmanager
    def silenced(self) -> Iterator[None]:
        """In this thread, collections see no breaker series (they are written another way)."""
        self._silenced.on = True
        try:
            yield
        finally:
            self._silenced.on = False

    @property
    def is_silenced(self) -> bool:
        return bool(getattr(self._silenced, "on", False))

    def _readings(self) -> list[BreakerReading]:
        if self.is_silenced:
            return []
        return self.catalog.readings()

    def _callback(self, series: Series) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            for r in self._readings():
                common = common_attributes(r)
                for labels, value in series(r):
                    yield Observation(value, {**common, **dict(labels)})

        return callback

    # ------------------------------------------------------------------ histograms

    def histograms(self) -> list[Metric]:
        """The two histogram metrics, from the breakers' own bucket counts."""
        now = time.time_ns()
        durations: list[HistogramDataPoint] = []
        recoveries: list[HistogramDataPoint] = []
        for r in self._readings():
            common = common_attributes(r)
            for labels, reading in self.policy.durations(r):
                durations.append(self._point(reading, {**common, **dict(labels)}, now))
            recovery = self.policy.recovery(r)
            if recovery is not None:
                recoveries.append(self._point(recovery, common, now))
        metrics = []
        for spec, points in (
            (sc.METRIC_CIRCUIT_BREAKER_CALL_DURATION, durations),
            (sc.METRIC_CIRCUIT_BREAKER_RECOVERY_DURATION, recoveries),
        ):
            if points:
                data = Histogram(data_points=points, aggregation_temporality=AggregationTemporality.CUMULATIVE)
                metrics.append(Metric(name=spec.name, description=spec.description, unit=spec.unit, data=data))
        return metrics

    def _point(self, reading: HistogramReading, attributes: dict[str, str], now: int) -> HistogramDataPoint:
        # min and max are not kept by the breakers: left unset (None), which OTLP allows. Zeros
        # went out as a minimum and a maximum of 0 s beside a positive sum (the Prometheus format
        # carries neither).
        return HistogramDataPoint(
            attributes=attributes,
            start_time_unix_nano=self._start_ns,
            time_unix_nano=now,
            count=reading.count,
            sum=reading.sum,
            bucket_counts=list(reading.counts),
            explicit_bounds=list(reading.bounds),
            min=None,  # type: ignore[arg-type]  # the SDK types them float; OTLP leaves them optional
            max=None,  # type: ignore[arg-type]
        )

    def inject(self, metrics_data: MetricsData, deltas: HistogramDeltas | None = None) -> MetricsData:
        """``metrics_data`` with the histograms added to this meter's scope: cumulative, or the
        changes since the previous collection through ``deltas`` (a reader's own)."""
        histograms = self.histograms() if deltas is None else deltas.convert(self.histograms)
        if not histograms:
            return metrics_data
        resource_metrics = list(metrics_data.resource_metrics)
        if not resource_metrics:
            return metrics_data
        first = resource_metrics[0]
        scopes = list(first.scope_metrics)
        for i, scope_metrics in enumerate(scopes):
            if scope_metrics.scope.name == self.scope.name:
                scopes[i] = ScopeMetrics(
                    scope=scope_metrics.scope,
                    metrics=[*scope_metrics.metrics, *histograms],
                    schema_url=scope_metrics.schema_url,
                )
                break
        else:
            scopes.append(ScopeMetrics(scope=self.scope, metrics=histograms, schema_url=self.scope.schema_url or ""))
        resource_metrics[0] = ResourceMetrics(
            resource=first.resource, scope_metrics=scopes, schema_url=first.schema_url
        )
        return MetricsData(resource_metrics=resource_metrics)
