"""promtool unit tests for a service's own rules, made from the same configuration as the rules:
``breakerpanel rules`` writes them into ``tests/`` beside the rule file, ``promtool test rules`` runs
them.

The breakers are those of the configuration's ``breakers_file``, labelled as the exporter labels
their series (:func:`breakerpanel.exporter.promql.breaker_labels`); without a breakers file, one
service breaker named :data:`EXAMPLE_BREAKER`. The tests pin, with the service's own thresholds:

- each breaker that opens: ``CircuitBreakerOpen`` at once as a warning (the cause), then at the
  severity of its tier or level once it has stayed open for ``open.for``;
- each SLO: every breaker it covers failing burns its budget: the fast-burn alert fires at the
  SLO's page severity with its ``slo`` and ``burn`` labels (the slow burn too, where it has one);
- each feature with fallbacks: its fallbacks failing too is user impact:
  ``CircuitBreakerFallbackFailing`` fires at its severity;
- every breaker healthy: no alert at all, firing or pending, after the longest ``for``.

Alerts are checked through Prometheus's ``ALERTS`` series, which carries each alert's labels and
state: promtool's ``alert_rule_test`` also compares the annotations, Go templates this module
would have to render itself (the hand-written tests of alert_rules/tests/ check those).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from breakerpanel import BreakerRegistry, CircuitBreaker
from breakerpanel.config import BreakersFile, load_config
from breakerpanel.exporter import promql
from breakerpanel.exporter import semconv as sc
from breakerpanel.exporter.rules_config import Level, RulesConfig, Severity, Slo, duration_seconds

from .alerts import alert_groups

__all__ = ["EXAMPLE_BREAKER", "JOB", "uncovered_slos", "unit_tests"]

#: The breaker the tests use when the configuration names no breakers file.
EXAMPLE_BREAKER = "example"
#: The scrape job and instance of the tests' series (any will do: the rules keep ``job`` as it is).
JOB = "app"
INSTANCE = "app-0:8000"

#: How often the rules are evaluated (Prometheus's default); every time below is on this grid.
_EVALUATION = 60
#: When a breaker opens in the opening tests: a few samples of it closed first.
_OPENS_AT = 2 * _EVALUATION
#: When the SLO tests look: every recording window has samples by then.
_BURN_AT = 10 * _EVALUATION

_STATE = sc.CircuitBreakerStateValues
_OUTCOME = sc.CircuitBreakerOutcomeValues
_Labels = Mapping[str, str]


@dataclass(frozen=True)
class _Breaker:
    name: str
    level: Level
    #: The labels of its series, as the exporter writes them (without job and instance).
    labels: _Labels
    #: Its fallback steps' types (features only).
    fallback_types: tuple[str, ...] = ()


def unit_tests(config: RulesConfig, rule_file: str) -> dict[str, Any]:
    """The promtool test file (as data) for the rules ``config`` generates, which promtool reads
    from ``rule_file`` (relative to the test file)."""
    breakers = _breakers(config)
    step = _sample_interval(config)
    tests = [_opening(config, breaker, step) for breaker in breakers]
    tests += [test for slo in config.slos if (test := _burning(config, slo, breakers, step)) is not None]
    tests += [_fallbacks_failing(config, breaker, step) for breaker in breakers if breaker.fallback_types]
    tests.append(_healthy(config, breakers, step))
    return {"rule_files": [rule_file], "evaluation_interval": _duration(_EVALUATION), "tests": tests}


def uncovered_slos(config: RulesConfig) -> list[str]:
    """The SLOs that cover none of the breakers: nothing to test them on."""
    breakers = _breakers(config)
    return [slo.name for slo in config.slos if not any(_covers(slo, b) for b in breakers)]


# ---------------------------------------------------------------------- the breakers


def _breakers(config: RulesConfig) -> list[_Breaker]:
    if config.breakers_file is None:
        registry = BreakerRegistry()
        return [_breaker(registry.service(EXAMPLE_BREAKER))]
    file = load_config(config.breakers_file)
    # Each type once, sorted: the exporter writes one series per type (a chain may use one twice).
    fallbacks = {name: tuple(sorted({s.type for s in feature.fallback})) for name, feature in file.features.items()}
    return [_breaker(b, fallbacks.get(b.name, ())) for b in _registered(file)]


def _breaker(breaker: CircuitBreaker, fallback_types: tuple[str, ...] = ()) -> _Breaker:
    return _Breaker(breaker.name, Level(breaker.level.value), promql.breaker_labels(breaker), fallback_types)


def _registered(file: BreakersFile) -> list[CircuitBreaker]:
    """The breakers of ``file`` with the names, levels, attributes and dependencies the
    application's registry gives them (:meth:`BreakersFile.build`), without what their behaviour
    needs (fallback functions, probes, the shared store): nothing of the service is imported here."""
    registry = BreakerRegistry()
    breakers = []
    for service_name, service in file.services.items():
        breakers.append(registry.service(service_name, attributes=service.attributes))
        for endpoint_name, endpoint in service.endpoints.items():
            breakers.append(registry.endpoint(f"{service_name}.{endpoint_name}", attributes=endpoint.attributes))
    for name, feature in file.features.items():
        registered = registry.feature(
            name, required=feature.required, optional=feature.optional, attributes=feature.attributes
        )
        breakers.append(registered.breaker)
    return breakers


def _covers(slo: Slo, breaker: _Breaker) -> bool:
    # Prometheus anchors its regular expressions; a missing label matches as "".
    return all(re.fullmatch(pattern, breaker.labels.get(label, "")) for label, pattern in slo.label_matchers().items())


# ---------------------------------------------------------------------- the tests


def _opening(config: RulesConfig, breaker: _Breaker, step: int) -> dict[str, Any]:
    cfg = config.alerts.open
    severity = _open_severity(config, breaker)
    pages_at = _OPENS_AT + _on_grid(duration_seconds(cfg.for_))
    samples = _samples(pages_at, step)
    opened = _OPENS_AT // step
    series = [
        _series(sc.METRIC_CIRCUIT_BREAKER_STATE, breaker, {sc.CIRCUIT_BREAKER_STATE_LABEL: _STATE.OPEN},
                f"0x{opened - 1} 1x{samples - opened - 1}"),
        _series(sc.METRIC_CIRCUIT_BREAKER_CALLS, breaker,
                {sc.CIRCUIT_BREAKER_OUTCOME_LABEL: _OUTCOME.REJECTED,
                 sc.CIRCUIT_BREAKER_REJECTION_REASON_LABEL: sc.CircuitBreakerRejectionReasonValues.OPEN},
                f"0x{opened - 1} 10+10x{samples - opened - 1}"),
    ]  # fmt: skip

    def alerts(state: str) -> list[dict[str, Any]]:
        expected = [_alert("CircuitBreakerOpen", "firing", Severity.WARNING, breaker)] if cfg.notify else []
        if severity is not None:
            expected.append(_alert("CircuitBreakerOpen", state, severity, breaker))
        return expected

    then = f"at {severity} once open for {cfg.for_}" if severity is not None else "no more (its severity is warning)"
    return {
        "name": f"{breaker.name} opens: CircuitBreakerOpen warns at once (the cause), then {then}",
        "interval": _duration(step),
        "input_series": series,
        "promql_expr_test": [
            _alerts_at(_OPENS_AT - _EVALUATION, "CircuitBreakerOpen", []),
            _alerts_at(_OPENS_AT, "CircuitBreakerOpen", alerts("pending")),
            _alerts_at(pages_at - _EVALUATION, "CircuitBreakerOpen", alerts("pending")),
            _alerts_at(pages_at, "CircuitBreakerOpen", alerts("firing")),
        ],
    }


def _open_severity(config: RulesConfig, breaker: _Breaker) -> Severity | None:
    """The severity of the alert for a breaker that has stayed open: its tier's, else its
    level's; none when that is a warning and the immediate warning already says it."""
    cfg = config.alerts.open
    tiers = [tier.severity for tier in cfg.tiers if breaker.name in tier.breakers]
    severity = tiers[0] if tiers else cfg.severity_by_level[breaker.level]
    return None if cfg.notify and severity is Severity.WARNING else severity


def _burning(config: RulesConfig, slo: Slo, breakers: list[_Breaker], step: int) -> dict[str, Any] | None:
    """Every call of the SLO's breakers fails: each burns its budget ``1 / (1 - target)`` times
    too fast, past every factor below that (a factor at or above it can never fire)."""
    covered = [b for b in breakers if _covers(slo, b)]
    if not covered:
        return None
    cfg = config.alerts.error_budget_burn
    per_sample = max(10, cfg.min_calls)  # min_calls within the shortest long window, with room
    series = [
        _series(sc.METRIC_CIRCUIT_BREAKER_CALLS, b,
                {sc.CIRCUIT_BREAKER_OUTCOME_LABEL: _OUTCOME.FAILURE, sc.ERROR_TYPE_LABEL: "TimeoutError"},
                f"0+{per_sample}x{_samples(_BURN_AT, step) - 1}")
        for b in covered
    ]  # fmt: skip
    # A breaker in two SLOs burns both.
    expected = [alert for b in covered for s in config.slos if _covers(s, b) for alert in _burn_alerts(config, s, b)]
    return {
        "name": f"SLO {slo.name}: every call of {', '.join(b.name for b in covered)} fails: its budget burns",
        "interval": _duration(step),
        "input_series": series,
        "promql_expr_test": [_alerts_at(_BURN_AT, "CircuitBreakerErrorBudgetBurn", expected, state="firing")],
    }


def _burn_alerts(config: RulesConfig, slo: Slo, breaker: _Breaker) -> list[dict[str, Any]]:
    cfg = config.alerts.error_budget_burn
    budget = round(1 - slo.target, 12)
    kinds = cfg.burns(slo)
    return [
        _alert("CircuitBreakerErrorBudgetBurn", "firing", severity, breaker, slo=slo.name, burn=burn)
        for burn, windows, severity in kinds
        if any(1 / budget > window.factor for window in windows)
    ]


def _fallbacks_failing(config: RulesConfig, breaker: _Breaker, step: int) -> dict[str, Any]:
    cfg = config.alerts.fallback_failing
    # The rate needs two samples (one evaluation in), then the alert waits `for`.
    fires_at = _EVALUATION + _on_grid(duration_seconds(cfg.for_)) + _EVALUATION
    count = f"0+{max(10, cfg.min_calls)}x{_samples(fires_at, step) - 1}"
    series = [
        _series(sc.METRIC_CIRCUIT_BREAKER_CALLS, breaker,
                {sc.CIRCUIT_BREAKER_OUTCOME_LABEL: _OUTCOME.FAILURE, sc.ERROR_TYPE_LABEL: "TimeoutError"}, count),
        _series(sc.METRIC_CIRCUIT_BREAKER_FALLBACKS, breaker,
                {sc.CIRCUIT_BREAKER_FALLBACK_TYPE_LABEL: breaker.fallback_types[0],
                 sc.CIRCUIT_BREAKER_OUTCOME_LABEL: _OUTCOME.FAILURE}, count),
    ]  # fmt: skip
    return {
        "name": f"{breaker.name}: its calls fail and so do its fallbacks: users see errors",
        "interval": _duration(step),
        "input_series": series,
        "promql_expr_test": [
            _alerts_at(
                fires_at,
                "CircuitBreakerFallbackFailing",
                [_alert("CircuitBreakerFallbackFailing", "firing", cfg.severity, breaker)],
                state="firing",
            )
        ],
    }


def _healthy(config: RulesConfig, breakers: list[_Breaker], step: int) -> dict[str, Any]:
    waits = [
        duration_seconds(rule["for"]) for group in alert_groups(config) for rule in group["rules"] if "for" in rule
    ]
    look_at = _on_grid(max(waits, default=0)) + 2 * _EVALUATION
    samples = _samples(look_at, step)
    flat, rising = f"0x{samples - 1}", f"0+100x{samples - 1}"
    series = [_series("up", None, {}, f"1x{samples - 1}")]
    for b in breakers:
        # As the exporter writes a healthy breaker: its rejections and its fallbacks at 0, not
        # absent, so that a ratio over them is 0 rather than no data.
        series += [
            _series(sc.METRIC_CIRCUIT_BREAKER_STATE, b, {sc.CIRCUIT_BREAKER_STATE_LABEL: _STATE.CLOSED},
                    f"1x{samples - 1}"),
            _series(sc.METRIC_CIRCUIT_BREAKER_STATE, b, {sc.CIRCUIT_BREAKER_STATE_LABEL: _STATE.OPEN}, flat),
            _series(sc.METRIC_CIRCUIT_BREAKER_CALLS, b, {sc.CIRCUIT_BREAKER_OUTCOME_LABEL: _OUTCOME.SUCCESS}, rising),
            _series(sc.METRIC_CIRCUIT_BREAKER_CALLS, b,
                    {sc.CIRCUIT_BREAKER_OUTCOME_LABEL: _OUTCOME.REJECTED,
                     sc.CIRCUIT_BREAKER_REJECTION_REASON_LABEL: sc.CircuitBreakerRejectionReasonValues.OPEN}, flat),
        ]  # fmt: skip
        series += [
            _series(sc.METRIC_CIRCUIT_BREAKER_FALLBACKS, b,
                    {sc.CIRCUIT_BREAKER_FALLBACK_TYPE_LABEL: kind, sc.CIRCUIT_BREAKER_OUTCOME_LABEL: outcome}, flat)
            for kind in b.fallback_types for outcome in (_OUTCOME.SUCCESS, _OUTCOME.FAILURE)
        ]  # fmt: skip
    return {
        "name": "every breaker closed, every call succeeding: no alert, firing or pending",
        "interval": _duration(step),
        "input_series": series,
        "promql_expr_test": [{"expr": "ALERTS", "eval_time": _duration(look_at), "exp_samples": []}],
    }


# ---------------------------------------------------------------------- series and times


def _series(metric: sc.MetricSpec | str, breaker: _Breaker | None, labels: _Labels, values: str) -> dict[str, str]:
    identity = breaker.labels if breaker is not None else {}
    selector = promql.selector(metric, *_matchers({promql.JOB_LABEL: JOB, "instance": INSTANCE, **identity, **labels}))
    return {"series": selector, "values": values}


def _alert(name: str, state: str, severity: Severity, breaker: _Breaker, **labels: str) -> dict[str, Any]:
    """One ``ALERTS`` sample: an alert about ``breaker`` (its labels kept by the rules' ``by``)."""
    kept = {k: v for k, v in breaker.labels.items() if k in promql.BREAKER_LABELS}
    every = {"alertname": name, "alertstate": state, "severity": severity.value, **labels, promql.JOB_LABEL: JOB}
    return {"labels": promql.selector("ALERTS", *_matchers({**every, **kept})), "value": 1}


def _alerts_at(at: int, name: str, expected: list[dict[str, Any]], state: str | None = None) -> dict[str, Any]:
    matchers = [promql.eq("alertname", name), *([promql.eq("alertstate", state)] if state else [])]
    return {"expr": promql.selector("ALERTS", *matchers), "eval_time": _duration(at), "exp_samples": expected}


def _matchers(labels: _Labels) -> Iterable[str]:
    return (promql.eq(label, value) for label, value in labels.items())


def _sample_interval(config: RulesConfig) -> int:
    """Seconds between samples: at least four in the shortest window a rule takes an increase or
    a rate over here (with one a minute, a 1m window holds one sample in Prometheus 3)."""
    windows = (config.alerts.open.affected_window, config.alerts.fallback_failing.window)
    return max(1, min(15, *(duration_seconds(w) // 4 for w in windows)))


def _samples(until: int, step: int) -> int:
    """Samples from 0 to ``until`` (inclusive) and one more evaluation after it."""
    return (until + _EVALUATION) // step + 1


def _on_grid(seconds: int) -> int:
    """``seconds`` rounded up to an evaluation: when an alert with that ``for`` first fires."""
    return math.ceil(seconds / _EVALUATION) * _EVALUATION


def _duration(seconds: int) -> str:
    """``150`` -> ``2m30s``, as promtool reads durations."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)
    return text or "0s"
