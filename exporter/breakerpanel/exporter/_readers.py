"""Metric readers that add the breakers' histograms to every collection.

The Python SDK has no observable histogram and no hook to add metrics it did not aggregate, so
these readers do it where the collected data passes: ``_receive_metrics``, the method every
reader implements to hand data on (to the Prometheus collector, or to the OTLP exporter). The
breakers are read once per collection (every callback sees the same figures); the end of the
collection, here, makes the next one read them again. A reader whose exporter asks for delta
histograms gets them as deltas (:mod:`breakerpanel.exporter._deltas`), as the SDK's own would be.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import Histogram
from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricsData, PeriodicExportingMetricReader

from ._deltas import HistogramDeltas
from ._instruments import BreakerInstruments

__all__ = ["BreakerPeriodicReader", "BreakerPrometheusReader"]


class _WithBreakerHistograms:
    _instruments: BreakerInstruments | None = None
    _deltas: HistogramDeltas | None = None

    def bind(self, instruments: BreakerInstruments) -> None:
        # The temporality the reader's exporter asked for, by instrument class (MetricReader keeps
        # it as given; an OTLP exporter sets it from OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE).
        # Decided before the instruments are bound: no collection sees them without it.
        preferred = getattr(self, "_preferred_temporality", None) or {}
        if preferred.get(Histogram) is AggregationTemporality.DELTA:
            self._deltas = HistogramDeltas()
        self._instruments = instruments

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        instruments = self._instruments
        if instruments is not None:
            if metrics_data is not None:
                metrics_data = instruments.inject(metrics_data, self._deltas)
            # The collection is over: the next one reads the breakers again. (A collection with
            # no metric at all does not come here: the catalog keeps an empty reading a second.)
            instruments.catalog.end_collection()
        super()._receive_metrics(metrics_data, timeout_millis, **kwargs)  # type: ignore[misc]


class BreakerPrometheusReader(_WithBreakerHistograms, PrometheusMetricReader):
    """``PrometheusMetricReader``, with the breakers' histograms."""


class BreakerPeriodicReader(_WithBreakerHistograms, PeriodicExportingMetricReader):
    """``PeriodicExportingMetricReader`` (OTLP push), with the breakers' histograms."""
