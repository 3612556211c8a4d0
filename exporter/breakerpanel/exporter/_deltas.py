"""Delta temporality for the histograms the readers add themselves.

The breakers keep cumulative bucket counts, and the readers add them to each collection as
cumulative points (:mod:`breakerpanel.exporter._readers`). An OTLP exporter asked for delta
histograms (``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta`` or ``lowmemory``) gets
what the SDK's own histograms would give it instead: each point the change since the previous
export of the same series, starting where that export ended. A backend that keeps only delta
histograms would otherwise drop them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from opentelemetry.sdk.metrics.export import AggregationTemporality, Histogram, HistogramDataPoint, Metric

__all__ = ["HistogramDeltas"]

_SeriesKey = tuple[str, frozenset[tuple[str, object]]]


class HistogramDeltas:
    """Turns cumulative histogram metrics into deltas since the previous export, series by series.

    One per reader: each export's deltas are relative to that reader's previous export. A series
    seen for the first time is reported whole, from its cumulative start; one that is back after
    exports without it (a breaker evicted as idle, used again) goes on from its last point, as
    the SDK's own asynchronous instruments keep their state, so a backend summing the deltas
    counts no call twice; one whose counts went down or whose bucket bounds changed is reported
    whole from its last point, as a restarted cumulative series is. The memory kept is one point
    per series ever reported, as the catalog keeps every breaker it was given.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[_SeriesKey, HistogramDataPoint] = {}

    def convert(self, read: Callable[[], Sequence[Metric]]) -> list[Metric]:
        """The deltas of the metrics ``read`` returns, read under this converter's lock: a
        periodic export racing a ``force_flush`` must not convert an older reading after a
        newer one (its interval would end before it starts, its counts be counted again)."""
        converted: list[Metric] = []
        with self._lock:
            last = self._last
            for metric in read():
                assert isinstance(metric.data, Histogram)
                points = []
                for point in metric.data.data_points:
                    key = (metric.name, frozenset((point.attributes or {}).items()))
                    points.append(_delta(point, last.get(key)))
                    last[key] = point
                data = Histogram(data_points=points, aggregation_temporality=AggregationTemporality.DELTA)
                converted.append(Metric(name=metric.name, description=metric.description, unit=metric.unit, data=data))
        return converted


def _delta(point: HistogramDataPoint, previous: HistogramDataPoint | None) -> HistogramDataPoint:
    if previous is None:
        return point
    restarted = (
        previous.explicit_bounds != point.explicit_bounds
        or point.count < previous.count
        or any(now < before for now, before in zip(point.bucket_counts, previous.bucket_counts, strict=True))
    )
    if restarted:
        counts, count, total = list(point.bucket_counts), point.count, point.sum
    else:
        counts = [now - before for now, before in zip(point.bucket_counts, previous.bucket_counts, strict=True)]
        count = point.count - previous.count
        total = max(point.sum - previous.sum, 0.0)  # float rounding must not make a negative sum
    return HistogramDataPoint(
        attributes=point.attributes,
        start_time_unix_nano=previous.time_unix_nano,
        time_unix_nano=point.time_unix_nano,
        count=count,
        sum=total,
        bucket_counts=counts,
        explicit_bounds=point.explicit_bounds,
        min=point.min,
        max=point.max,
    )
