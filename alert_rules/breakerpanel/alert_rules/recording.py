"""Recording rules: per-breaker call rates and error ratios over the SLO windows, and each SLO's
objective as a series.

The error ratio is the share of the calls a breaker counted that failed or were rejected; ignored
calls (a caller's bad request, a cancellation) and rejections of a breaker forced open by hand
are in neither side. Every ratio keeps the breaker's
identity and dependency labels (:data:`breakerpanel.exporter.promql.BREAKER_LABELS`) and sums the instances.
"""

from __future__ import annotations

from typing import Any

from breakerpanel.exporter import promql
from breakerpanel.exporter import semconv as sc

from .config import RulesConfig, Slo, scaled_duration

__all__ = [
    "COUNTED_OUTCOMES",
    "ERROR_OUTCOMES",
    "SLO_LABEL",
    "SLO_OBJECTIVE",
    "WINDOWS",
    "calls_rate",
    "error_ratio",
    "recording_groups",
]

#: The windows of the multiwindow burn-rate alerts (and of the SLO dashboard).
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")

#: The label the objective series and the burn-rate alerts carry: the SLO's name.
SLO_LABEL = "slo"
#: One series per SLO and breaker it covers, valued at the objective (e.g. 0.99).
SLO_OBJECTIVE = "circuit_breaker:slo_objective:ratio"

_OUTCOME = sc.CircuitBreakerOutcomeValues
#: The calls an error ratio counts (ignored calls, a caller's bad request, count on neither side)...
COUNTED_OUTCOMES = (_OUTCOME.SUCCESS, _OUTCOME.FAILURE, _OUTCOME.REJECTED)
#: ... and the ones that are errors.
ERROR_OUTCOMES = (_OUTCOME.FAILURE, _OUTCOME.REJECTED)


def calls_rate(window: str) -> str:
    """The record name: counted calls (success, failure, rejected) per second over ``window``."""
    return f"circuit_breaker:calls:rate{window}"


def error_ratio(window: str) -> str:
    """The record name: failed and rejected calls over counted calls, over ``window``."""
    return f"circuit_breaker:error_ratio:rate{window}"


def _rate(outcomes: tuple[sc.CircuitBreakerOutcomeValues, ...], window: str) -> str:
    # A breaker a person holds open rejects on purpose: no call reached the dependency, and the
    # dependency failed nobody, so those rejections count on neither side of its error ratio.
    calls = promql.selector(
        sc.METRIC_CIRCUIT_BREAKER_CALLS,
        promql.one_of(sc.CIRCUIT_BREAKER_OUTCOME_LABEL, outcomes),
        promql.ne(sc.CIRCUIT_BREAKER_REJECTION_REASON_LABEL, sc.CircuitBreakerRejectionReasonValues.FORCED_OPEN),
    )
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
