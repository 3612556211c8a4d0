"""Recording rules: per-breaker call rates and error ratios over the SLO windows, and each SLO's
objective as a series.

The error ratio is the share of the calls a breaker counted that failed or were rejected; ignored
calls (a caller's bad request, a cancellation) and rejections of a breaker forced open by hand
are in neither side. Every ratio keeps the breaker's
identity and dependency labels (:data:`breakerpanel.exporter.promql.BREAKER_LABELS`) and sums the instances.

The record names, the windows and the outcome sets are in :mod:`breakerpanel.exporter.loop_names`:
the dashboards read these series too.
"""

from __future__ import annotations

from typing import Any

from breakerpanel.exporter import promql
from breakerpanel.exporter import semconv as sc
from breakerpanel.exporter.loop_names import (
    COUNTED_OUTCOMES,
    ERROR_OUTCOMES,
    SLO_LABEL,
    SLO_OBJECTIVE,
    WINDOWS,
    calls_rate,
    error_ratio,
    slo_calls,
)
from breakerpanel.exporter.rules_config import RulesConfig, Slo, scaled_duration

__all__ = ["recording_groups", "slo_selector"]


def _rate(outcomes: tuple[sc.CircuitBreakerOutcomeValues, ...], window: str) -> str:
    calls = promql.selector(sc.METRIC_CIRCUIT_BREAKER_CALLS, *slo_calls(outcomes))
    return promql.sum_by_breaker(f"rate({calls}[{window}])")


def _window_rules(window: str, time_scale: float) -> list[dict[str, Any]]:
    # The record names keep the nominal window (dashboards and alerts name them); the range is scaled.
    scaled = scaled_duration(window, time_scale)
    return [
        {"record": calls_rate(window), "expr": _rate(COUNTED_OUTCOMES, scaled)},
        {
            "record": error_ratio(window),
            # A breaker that never failed has no failure series: `or 0 * calls` makes its ratio 0
            # rather than no data. A breaker without calls in the window has no ratio (not NaN).
            "expr": f"({_rate(ERROR_OUTCOMES, scaled)} or 0 * {calls_rate(window)})\n/\n({calls_rate(window)} > 0)",
        },
    ]


def slo_selector(slo: Slo, metric: sc.MetricSpec | str) -> str:
    """``metric`` restricted to the breakers ``slo`` covers."""
    return promql.selector(metric, *(promql.re(label, pattern) for label, pattern in slo.label_matchers().items()))


def _objective_rule(slo: Slo) -> dict[str, Any]:
    # Every breaker the SLO covers that has counted a call, whether or not it failed.
    breakers = f"group by ({', '.join(promql.BREAKER_LABELS)}) ({slo_selector(slo, sc.METRIC_CIRCUIT_BREAKER_CALLS)})"
    return {"record": SLO_OBJECTIVE, "expr": f"{slo.target!r} * {breakers}", "labels": {SLO_LABEL: slo.name}}


def recording_groups(config: RulesConfig, time_scale: float = 1.0) -> list[dict[str, Any]]:
    """The rule groups of the recording rules, in Prometheus's rule-file shape; ``time_scale``
    multiplies every window (a compressed clock for bench/alert_quality.py)."""
    windows = [rule for window in WINDOWS for rule in _window_rules(window, time_scale)]
    groups: list[dict[str, Any]] = [{"name": "circuit-breaker-ratios", "rules": windows}]
    if config.slos:
        groups.append({"name": "circuit-breaker-slos", "rules": [_objective_rule(slo) for slo in config.slos]})
    return groups
