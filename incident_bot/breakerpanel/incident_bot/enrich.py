"""Live figures for a breaker's card and PagerDuty details, read from Prometheus when configured.

Best effort by design: a slow or absent Prometheus leaves the figures out (after a short timeout),
it never delays or fails a notification.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from breakerpanel.exporter import promql
from breakerpanel.exporter import semconv as sc

from .delivery import BreakerFigures
from .prometheus import PrometheusError, PrometheusReader

__all__ = ["Figures"]

logger = logging.getLogger("breakerpanel.incident_bot.enrich")


class Figures:
    """Live figures through ``prometheus`` (shared with the charts; its owner closes it), each
    query given ``timeout`` seconds at most."""

    def __init__(self, prometheus: PrometheusReader, *, timeout: float = 1.5) -> None:
        self.prometheus = prometheus
        self.timeout = timeout

    async def for_breaker(self, labels: Mapping[str, str]) -> BreakerFigures:
        name = labels.get(sc.CIRCUIT_BREAKER_NAME_LABEL)
        if not name:
            return {}
        selector = [promql.eq(sc.CIRCUIT_BREAKER_NAME_LABEL, str(name))]
        if labels.get("job"):
            selector.append(promql.eq(promql.JOB_LABEL, str(labels["job"])))
        states = "|".join(v.value for v in sc.CircuitBreakerStateValues)

        def sel(metric: sc.MetricSpec, *extra: str) -> str:
            return promql.selector(metric, *selector, *extra)

        queries = {
            "failure_rate": f"max({sel(sc.METRIC_CIRCUIT_BREAKER_FAILURE_RATE)})",
            "failure_rate_threshold": f"max({sel(sc.METRIC_CIRCUIT_BREAKER_FAILURE_RATE_THRESHOLD)})",
            "transitions_1h": f"sum(increase({sel(sc.METRIC_CIRCUIT_BREAKER_TRANSITIONS)}[1h]))",
            "fallbacks_served_per_s": "sum(rate("
            + sel(sc.METRIC_CIRCUIT_BREAKER_FALLBACKS, promql.eq(sc.CIRCUIT_BREAKER_OUTCOME_LABEL, "success"))
            + "[5m]))",
            "state": f"max by ({sc.CIRCUIT_BREAKER_STATE_LABEL}) ("
            + sel(sc.METRIC_CIRCUIT_BREAKER_STATE, promql.re(sc.CIRCUIT_BREAKER_STATE_LABEL, states))
            + ") == 1",
        }
        results = await asyncio.gather(*(self._query(q) for q in queries.values()), return_exceptions=True)
        figures: BreakerFigures = {}
        for key, result in zip(queries, results, strict=True):
            if isinstance(result, BaseException) or not result:
                continue
            if key == "state":
                figures[key] = ", ".join(sorted({r["metric"].get(sc.CIRCUIT_BREAKER_STATE_LABEL, "?") for r in result}))
            else:
                figures[key] = float(result[0]["value"][1])
        return figures

    async def _query(self, expr: str) -> list[dict[str, Any]]:
        try:
            return await self.prometheus.query(expr, request_timeout=self.timeout)
        except PrometheusError as exc:
            logger.debug("prometheus query failed: %s: %s", expr, exc)
            return []
