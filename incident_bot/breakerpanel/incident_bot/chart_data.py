"""The data of an incident's chart: its breaker's series over the last minutes, read from
Prometheus with range queries of the detail dashboard's own queries
(:mod:`breakerpanel.exporter.breaker_panels`), so that the chart on a page and the dashboard agree.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from breakerpanel.exporter import promql
from breakerpanel.exporter import semconv as sc
from breakerpanel.exporter.breaker_panels import BreakerPanels

from .prometheus import PrometheusError, PrometheusReader, Sample

__all__ = [
    "MAX_CHILDREN",
    "RATE_WINDOW",
    "ChartData",
    "ChartUnavailable",
    "Series",
    "chart_queries",
    "fetch_chart_data",
]

#: The ``rate()`` window: four scrapes at Prometheus's default interval (15 s), what the
#: dashboards' ``$__rate_interval`` is at that interval.
RATE_WINDOW = "1m"
#: Points per series at most: a step of the range over this (one second at the least).
MAX_POINTS = 360
#: Breakers under the incident's one drawn at most (the rest: counted in the chart's legend).
MAX_CHILDREN = 12


class ChartUnavailable(Exception):
    """No chart can be drawn: the message says why (the timeline quotes it)."""


@dataclass(frozen=True)
class Series:
    """One line or band of the chart: what it is (an instance, a reason, a breaker) and its points."""

    label: str
    points: tuple[Sample, ...]


@dataclass(frozen=True)
class ChartData:
    """Everything one chart draws, for the breaker ``breaker`` of ``job`` from ``start`` to ``end``."""

    breaker: str
    job: str
    start: float
    end: float
    step: float
    #: The breaker's state code (``STATE_CODES``), the worst across its instances.
    state: Series
    #: Per instance.
    failure_rate: tuple[Series, ...]
    failure_rate_threshold: Series | None
    #: Per instance.
    slow_call_rate: tuple[Series, ...]
    slow_call_rate_threshold: Series | None
    calls_per_second: Series | None
    #: Per rejection reason.
    rejections_per_second: tuple[Series, ...]
    #: The state code of each breaker under it, by name (at most :data:`MAX_CHILDREN`).
    children: tuple[Series, ...]
    #: Breakers under it left out of :attr:`children`.
    more_children: int = 0


def chart_queries(panels: BreakerPanels) -> dict[str, str]:
    """The chart's PromQL, by what it draws (the names of :class:`ChartData`'s fields)."""
    return {
        "state": panels.state(),
        "failure_rate": panels.failure_rate(),
        "failure_rate_threshold": panels.failure_rate_threshold(),
        "slow_call_rate": panels.slow_call_rate(),
        "slow_call_rate_threshold": panels.slow_call_rate_threshold(),
        "calls_per_second": panels.calls_per_second(),
        "rejections_per_second": panels.rejections_per_second(),
        "children": panels.children_state(),
    }


#: The label that names each series of a query with several (the others have one series).
_SERIES_LABEL = {
    "failure_rate": promql.INSTANCE_LABEL,
    "slow_call_rate": promql.INSTANCE_LABEL,
    "rejections_per_second": sc.CIRCUIT_BREAKER_REJECTION_REASON_LABEL,
    "children": sc.CIRCUIT_BREAKER_NAME_LABEL,
}


def step_for(span: float) -> float:
    """The range queries' step over ``span`` seconds: at most :data:`MAX_POINTS` points, whole seconds."""
    return float(max(1, round(span / MAX_POINTS)))


async def fetch_chart_data(
    prometheus: PrometheusReader,
    labels: Mapping[str, str],
    *,
    end: float,
    span: float,
    request_timeout: float | None = None,
) -> ChartData:
    """The chart of the breaker an incident's ``labels`` name (``job``, ``circuit_breaker_name``)
    over the ``span`` seconds before ``end``. Raises :class:`ChartUnavailable` saying why there is
    none: no breaker in the labels, Prometheus unreachable or failing, no series of the breaker."""
    name, job = labels.get(sc.CIRCUIT_BREAKER_NAME_LABEL, ""), labels.get(promql.JOB_LABEL, "")
    if not name or not job:
        raise ChartUnavailable("the incident names no breaker (no job and circuit_breaker_name labels)")
    if span <= 0:
        raise ValueError(f"a chart covers a positive span of seconds (got {span})")
    step = step_for(span)
    start = end - span
    queries = chart_queries(BreakerPanels(job, name, RATE_WINDOW))
    results = await asyncio.gather(
        *(
            prometheus.query_range(q, start=start, end=end, step=step, request_timeout=request_timeout)
            for q in queries.values()
        ),
        return_exceptions=True,
    )
    found: dict[str, list[Series]] = {}
    for key, result in zip(queries, results, strict=True):
        if isinstance(result, PrometheusError):
            raise ChartUnavailable(str(result)) from None
        if isinstance(result, BaseException):
            raise result
        by = _SERIES_LABEL.get(key)
        series = (Series(dict(named).get(by, "") if by else key, tuple(points)) for named, points in result.items())
        found[key] = sorted(series, key=lambda s: s.label)
    if not found["state"]:
        minutes = round(span / 60)
        raise ChartUnavailable(
            f"Prometheus has no state series of breaker {name} (job {job}) in the last {minutes} min"
        )
    children = found["children"]
    return ChartData(
        breaker=name,
        job=job,
        start=start,
        end=end,
        step=step,
        state=found["state"][0],
        failure_rate=tuple(found["failure_rate"]),
        failure_rate_threshold=_one(found["failure_rate_threshold"]),
        slow_call_rate=tuple(found["slow_call_rate"]),
        slow_call_rate_threshold=_one(found["slow_call_rate_threshold"]),
        calls_per_second=_one(found["calls_per_second"]),
        rejections_per_second=tuple(found["rejections_per_second"]),
        children=tuple(children[:MAX_CHILDREN]),
        more_children=max(0, len(children) - MAX_CHILDREN),
    )


def _one(series: list[Series]) -> Series | None:
    """The single series of an aggregated query (``max(...)``, ``sum(...)``), if it has data."""
    return series[0] if series else None
