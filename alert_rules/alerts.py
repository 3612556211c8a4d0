"""Alerting rules, in the monitoring-mixin style: CamelCase names, a ``severity`` label, and
``summary``, ``description``, ``runbook_url`` and ``dashboard_url`` annotations.

Every alert about a breaker carries its identity and dependency labels
(:data:`exporter.promql.BREAKER_LABELS`), so a receiver can route on ``gen_ai_provider_name`` and
the incident bot can name what is down. Instances of one application are summed (a ratio) or
counted (how many are open), except where the condition is about one process (half-open stuck,
trip predicted, flapping, metrics absent), which keep ``instance``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dashboards import links
from exporter import promql
from exporter import semconv as sc

from .config import BurnRateWindow, RulesConfig, Severity, Slo, duration_seconds
from .recording import COUNTED_OUTCOMES, ERROR_OUTCOMES, SLO_LABEL, calls_rate, error_ratio, slo_selector

__all__ = ["ALERTS", "alert_groups", "runbook_slug"]

Rule = dict[str, Any]

_STATE = sc.CircuitBreakerStateValues
_OUTCOME = sc.CircuitBreakerOutcomeValues
_BY = ", ".join(promql.BREAKER_LABELS)
_BY_INSTANCE = f"{_BY}, instance"
#: One process's breaker: what joins its series (the state gauge, the rate and its threshold).
_ONE_BREAKER = f"{promql.JOB_LABEL}, instance, {sc.CIRCUIT_BREAKER_NAME_LABEL}"


def _label(name: str) -> str:
    return f"{{{{ $labels.{name} }}}}"


_NAME = _label(sc.CIRCUIT_BREAKER_NAME_LABEL)
_LEVEL = _label(sc.CIRCUIT_BREAKER_LEVEL_LABEL)
_JOB = _label(promql.JOB_LABEL)
_INSTANCE = _label("instance")


def _url_label(name: str) -> str:
    return f"{{{{ $labels.{name} | urlquery }}}}"


class _Context:
    def __init__(self, config: RulesConfig) -> None:
        self.config = config

    def alert(
        self,
        name: str,
        expr: str,
        *,
        severity: Severity,
        summary: str,
        description: str,
        for_: str | None = None,
        labels: dict[str, str] | None = None,
        dashboard: str | None = None,
    ) -> Rule:
        """One alerting rule, annotated; ``dashboard`` defaults to the breaker's detail dashboard."""
        rule: Rule = {"alert": name, "expr": expr}
        if for_ is not None:
            rule["for"] = for_
        rule["labels"] = {"severity": severity.value, **(labels or {})}
        rule["annotations"] = {
            "summary": summary,
            "description": description,
            "runbook_url": f"{self.config.runbook_url}/{runbook_slug(name)}.md",
            "dashboard_url": dashboard if dashboard is not None else self.breaker_dashboard(),
        }
        return rule

    def breaker_dashboard(self) -> str:
        """The detail dashboard with the alert's breaker preselected."""
        return links.url(
            links.DETAIL,
            self.config.grafana_url,
            **{
                links.Var.JOB: _url_label(promql.JOB_LABEL),
                links.Var.LEVEL: _url_label(sc.CIRCUIT_BREAKER_LEVEL_LABEL),
                # The detail dashboard's "service": an endpoint's parent, else the breaker itself.
                links.Var.SERVICE: (
                    f"{{{{ if $labels.{sc.CIRCUIT_BREAKER_PARENT_LABEL} }}}}"
                    f"{_url_label(sc.CIRCUIT_BREAKER_PARENT_LABEL)}"
                    f"{{{{ else }}}}{_url_label(sc.CIRCUIT_BREAKER_NAME_LABEL)}{{{{ end }}}}"
                ),
                links.Var.BREAKER: _url_label(sc.CIRCUIT_BREAKER_NAME_LABEL),
            },
        )


def runbook_slug(alert: str) -> str:
    """``CircuitBreakerOpen`` -> ``circuit-breaker-open``: the runbook's file name."""
    return "".join("-" + c.lower() if c.isupper() else c for c in alert).lstrip("-")


def _state(*states: sc.CircuitBreakerStateValues, extra: tuple[str, ...] = ()) -> str:
    return promql.selector(
        sc.METRIC_CIRCUIT_BREAKER_STATE, promql.one_of(sc.CIRCUIT_BREAKER_STATE_LABEL, states), *extra
    )


# ---------------------------------------------------------------------- the alerts


def _open(ctx: _Context) -> list[Rule]:
    """Open (or probing, half-open) for longer than ``for``; the severity from the breaker's tier,
    else from its level."""
    cfg = ctx.config.alerts.open
    variants: list[tuple[tuple[str, ...], Severity]] = []
    tiered: list[str] = []
    for tier in cfg.tiers:
        variants.append(((promql.one_of(sc.CIRCUIT_BREAKER_NAME_LABEL, tier.breakers),), tier.severity))
        tiered += tier.breakers
    untiered = (promql.nre(sc.CIRCUIT_BREAKER_NAME_LABEL, promql.alternation(tiered)),) if tiered else ()
    for severity in Severity:
        levels = [level for level, s in cfg.severity_by_level.items() if s is severity]
        if levels:
            variants.append(((promql.one_of(sc.CIRCUIT_BREAKER_LEVEL_LABEL, sorted(levels)), *untiered), severity))
    rules = []
    for severity in Severity:
        # Open and half-open both: a breaker whose probes keep failing alternates between the two,
        # and must not restart the `for` clock each time it probes.
        selected = [
            f"{_state(_STATE.OPEN, _STATE.HALF_OPEN, extra=matchers)} == 1" for matchers, s in variants if s is severity
        ]
        if not selected:
            continue
        # One rule per severity (promtool flags two rules with one name and the same labels).
        either = "\n  or ".join(selected)
        not_closed = f"(\n  {either}\n)" if len(selected) > 1 else f"({selected[0]})"
        rules.append(
            ctx.alert(
                "CircuitBreakerOpen",
                f"count by ({_BY}) {not_closed}",
                for_=cfg.for_,
                severity=severity,
                summary=f"Circuit breaker {_NAME} has been open for more than {cfg.for_}.",
                description=f"The {_LEVEL} breaker {_NAME} of {_JOB} has been open or probing for more than "
                f"{cfg.for_} on {{{{ $value }}}} instance(s): its calls fail fast or are served by fallbacks while "
                "the dependency is failing or slow.",
            )
        )
    return rules


def _flapping(ctx: _Context) -> list[Rule]:
    """Closed -> open too often in one process: it recovers and trips again (openings after failed
    probes are not counted: those belong to one outage)."""
    cfg = ctx.config.alerts.flapping
    trips = promql.selector(
        sc.METRIC_CIRCUIT_BREAKER_TRANSITIONS,
        promql.eq(sc.CIRCUIT_BREAKER_PREVIOUS_STATE_LABEL, _STATE.CLOSED),
        promql.eq(sc.CIRCUIT_BREAKER_STATE_LABEL, _STATE.OPEN),
    )
    return [
        ctx.alert(
            "CircuitBreakerFlapping",
            f"sum by ({_BY_INSTANCE}) (increase({trips}[{cfg.window}])) >= {cfg.openings}",
            severity=cfg.severity,
            summary=f"Circuit breaker {_NAME} keeps tripping and recovering.",
            description=f'The breaker {_NAME} of {_JOB} on {_INSTANCE} opened {{{{ $value | printf "%.0f" }}}} '
            f"times in {cfg.window} ({cfg.openings} or more fire this alert): its dependency is intermittently "
            "failing, or the breaker's thresholds are too tight.",
        )
    ]


def _half_open_stuck(ctx: _Context) -> list[Rule]:
    """Half-open for longer than ``for``: no call arrives to probe the dependency, or the probes
    never finish."""
    cfg = ctx.config.alerts.half_open_stuck
    return [
        ctx.alert(
            "CircuitBreakerHalfOpenStuck",
            f"max by ({_BY_INSTANCE}) ({_state(_STATE.HALF_OPEN)}) == 1",
            for_=cfg.for_,
            severity=cfg.severity,
            summary=f"Circuit breaker {_NAME} has been half-open for more than {cfg.for_}.",
            description=f"The breaker {_NAME} of {_JOB} on {_INSTANCE} is waiting for probe calls to finish "
            f"and has been for more than {cfg.for_}: no traffic reaches it, or its probes hang.",
        )
    ]


def _trip_predicted(ctx: _Context) -> list[Rule]:
    """The failure rate, extrapolated over ``horizon``, reaches the threshold in force while the
    breaker is still closed and under it. Below the minimum number of calls the breaker exports
    no failure rate, so there is nothing to extrapolate."""
    cfg = ctx.config.alerts.trip_predicted
    rate = promql.selector(sc.METRIC_CIRCUIT_BREAKER_FAILURE_RATE)
    threshold = promql.selector(sc.METRIC_CIRCUIT_BREAKER_FAILURE_RATE_THRESHOLD)
    predicted = f"clamp_max(predict_linear({rate}[{cfg.lookback}], {duration_seconds(cfg.horizon)}), 1)"
    # `group_left` keeps the left side's labels: a one-to-one `on` match would keep only `on`'s.
    expr = (
        f"({predicted} >= on ({_ONE_BREAKER}) group_left {threshold})\n"
        f"and on ({_ONE_BREAKER}) ({rate} < on ({_ONE_BREAKER}) group_left {threshold})\n"
        f"and on ({_ONE_BREAKER}) ({_state(_STATE.CLOSED)} == 1)"
    )
    return [
        ctx.alert(
            "CircuitBreakerTripPredicted",
            expr,
            for_=cfg.for_,
            severity=cfg.severity,
            summary=f"Circuit breaker {_NAME} is likely to trip within {cfg.horizon}.",
            description=f"The failure rate of {_NAME} of {_JOB} on {_INSTANCE} is rising: at its pace over the "
            f"last {cfg.lookback} it reaches {{{{ $value | humanizePercentage }}}} within {cfg.horizon}, at or "
            "over the threshold in force.",
        ),
        # The breaker's own forecast (breaker.forecast in breakers.yaml): the same fit on every
        # sample, against its adaptive threshold too; it already held a trend, so no `for`.
        ctx.alert(
            "CircuitBreakerTripPredicted",
            f"(increase({promql.selector(sc.METRIC_CIRCUIT_BREAKER_TRIP_FORECASTS)}[{cfg.horizon}]) > 0)\n"
            f"and on ({_ONE_BREAKER}) ({_state(_STATE.CLOSED)} == 1)",
            severity=cfg.severity,
            labels={"predicted_by": "breaker"},  # one name, two rules: promtool wants them told apart
            summary=f"Circuit breaker {_NAME} forecasts its own trip.",
            description=f"{_NAME} of {_JOB} on {_INSTANCE} forecast its own trip: the trend of its failure rate "
            "reaches its threshold in force (adaptive thresholds included) within its forecast horizon.",
        ),
    ]


def _number(value: float) -> str:
    """``6.0`` -> ``6``, ``14.4`` -> ``14.4``: exact, without a float's trailing ``.0``."""
    return repr(value).removesuffix(".0")


def _burn_condition(slo: Slo, window: BurnRateWindow, min_calls: int) -> str:
    budget = round(1 - slo.target, 12)
    long_ratio = slo_selector(slo, error_ratio(window.long))
    short_ratio = slo_selector(slo, error_ratio(window.short))
    calls = slo_selector(slo, calls_rate(window.long))
    return (
        f"(\n  {long_ratio} / {budget!r} > {_number(window.factor)}\n"
        f"  and {short_ratio} / {budget!r} > {_number(window.factor)}\n"
        f"  and {calls} * {duration_seconds(window.long)} >= {min_calls}\n)"
    )


def _error_budget_burn(ctx: _Context) -> list[Rule]:
    """Per SLO, a page (fast burn) and a ticket (slow burn), each the `or` of its window pairs."""
    cfg = ctx.config.alerts.error_budget_burn
    rules = []
    for slo in ctx.config.slos:
        dashboard = links.url(
            links.SLO,
            ctx.config.grafana_url,
            **{
                links.Var.JOB: _url_label(promql.JOB_LABEL),
                links.Var.SLO: slo.name,
                links.Var.BREAKER: _url_label(sc.CIRCUIT_BREAKER_NAME_LABEL),
            },
        )
        for kind, windows, severity in (
            ("page", cfg.page, cfg.page_severity),
            ("ticket", cfg.ticket, cfg.ticket_severity),
        ):
            if not windows:
                continue
            pairs = ", ".join(f"{w.long}/{w.short} over {_number(w.factor)}x" for w in windows)
            burn = '{{ $value | printf "%.1f" }}'
            rules.append(
                ctx.alert(
                    "CircuitBreakerErrorBudgetBurn",
                    "\nor\n".join(_burn_condition(slo, w, cfg.min_calls) for w in windows),
                    severity=severity,
                    labels={SLO_LABEL: slo.name},
                    summary=f"Circuit breaker {_NAME} is burning the {slo.name} error budget {burn}x too fast.",
                    description=f"Calls through {_NAME} of {_JOB} fail or are rejected {burn} times faster than "
                    f"the {slo.target!r} objective of SLO {slo.name} allows over {cfg.period} ({kind} windows: "
                    f"{pairs}).",
                    dashboard=dashboard,
                )
            )
    return rules


def _fallback_failing(ctx: _Context) -> list[Rule]:
    """Of the calls that failed or were rejected, the share no fallback served, for breakers whose
    calls fall back: these are errors users see despite the fallbacks."""
    cfg = ctx.config.alerts.fallback_failing
    served = promql.selector(
        sc.METRIC_CIRCUIT_BREAKER_FALLBACKS, promql.eq(sc.CIRCUIT_BREAKER_OUTCOME_LABEL, _OUTCOME.SUCCESS)
    )
    needed = promql.selector(
        sc.METRIC_CIRCUIT_BREAKER_CALLS,
        promql.one_of(sc.CIRCUIT_BREAKER_OUTCOME_LABEL, ERROR_OUTCOMES),
    )
    needed_rate = promql.sum_by_breaker(f"rate({needed}[{cfg.window}])")
    served_rate = promql.sum_by_breaker(f"rate({served}[{cfg.window}])")
    fallbacks = promql.sum_by_breaker(f"rate({promql.selector(sc.METRIC_CIRCUIT_BREAKER_FALLBACKS)}[{cfg.window}])")
    expr = (
        f"1 - clamp_max(({served_rate} or 0 * {fallbacks}) / {needed_rate}, 1) > {cfg.ratio!r}\n"
        f"and {fallbacks} > 0\n"
        f"and {needed_rate} * {duration_seconds(cfg.window)} >= {cfg.min_calls}"
    )
    return [
        ctx.alert(
            "CircuitBreakerFallbackFailing",
            expr,
            for_=cfg.for_,
            severity=cfg.severity,
            summary=f"Fallbacks of {_NAME} are failing: users see errors.",
            description=f"{{{{ $value | humanizePercentage }}}} of the calls through {_NAME} of {_JOB} that failed "
            f"or were rejected in the last {cfg.window} got no answer from any fallback (over {cfg.ratio!r} fires "
            "this alert): the fallback path is down too.",
        )
    ]


def _rejecting_traffic(ctx: _Context) -> list[Rule]:
    """A large share of a feature's calls rejected: the feature is degraded for users."""
    cfg = ctx.config.alerts.rejecting_traffic
    levels = promql.one_of(sc.CIRCUIT_BREAKER_LEVEL_LABEL, sorted(cfg.levels))

    def rate(outcomes: tuple[sc.CircuitBreakerOutcomeValues, ...]) -> str:
        calls = promql.selector(
            sc.METRIC_CIRCUIT_BREAKER_CALLS, levels, promql.one_of(sc.CIRCUIT_BREAKER_OUTCOME_LABEL, outcomes)
        )
        return promql.sum_by_breaker(f"rate({calls}[{cfg.window}])")

    expr = (
        f"{rate((_OUTCOME.REJECTED,))} / {rate(COUNTED_OUTCOMES)} > {cfg.ratio!r}\n"
        f"and {rate(COUNTED_OUTCOMES)} * {duration_seconds(cfg.window)} >= {cfg.min_calls}"
    )
    share = "{{ $value | humanizePercentage }}"
    return [
        ctx.alert(
            "CircuitBreakerRejectingTraffic",
            expr,
            for_=cfg.for_,
            severity=cfg.severity,
            summary=f"{_NAME} rejects {share} of its calls.",
            description=f"The {_LEVEL} {_NAME} of {_JOB} rejected {share} of its calls over the last {cfg.window} "
            f"(over {cfg.ratio!r} fires this alert): a dependency it needs, or its own breaker, is open.",
        )
    ]


def _manual_state(ctx: _Context) -> list[Rule]:
    """A person put a breaker in a manual state (forced open, disabled, metrics only): not a
    problem, a change to know of. The incident bot sends it to PagerDuty as a change event."""
    cfg = ctx.config.alerts.manual_state
    manual = (_STATE.FORCED_OPEN, _STATE.DISABLED, _STATE.METRICS_ONLY)
    by = f"{_BY_INSTANCE}, {sc.CIRCUIT_BREAKER_STATE_LABEL}"
    return [
        ctx.alert(
            "CircuitBreakerManualState",
            f"max by ({by}) ({_state(*manual)}) == 1",
            severity=cfg.severity,
            summary=f"Circuit breaker {_NAME} is in the manual state {_label(sc.CIRCUIT_BREAKER_STATE_LABEL)}.",
            description=f"The breaker {_NAME} of {_JOB} on {_INSTANCE} is in the manual state "
            f"{_label(sc.CIRCUIT_BREAKER_STATE_LABEL)}: it does not follow its dependency's health until someone "
            "returns it to automatic.",
        )
    ]


def _metrics_absent(ctx: _Context) -> list[Rule]:
    """A target that exported breaker metrics still is a target, but its breaker metrics are gone
    (the process is down, or its exporter broke). A target removed from service discovery (scaled
    down) leaves ``up`` too and does not fire."""
    cfg = ctx.config.alerts.metrics_absent
    state = promql.selector(sc.METRIC_CIRCUIT_BREAKER_STATE)
    by = f"{promql.JOB_LABEL}, instance"
    expr = (
        f"(\n  group by ({by}) (last_over_time({state}[{cfg.lookback}]))\n"
        f"  unless on ({by}) group by ({by}) ({state})\n)\n"
        f"and on ({by}) up"
    )
    return [
        ctx.alert(
            "BreakerMetricsAbsent",
            expr,
            for_=cfg.for_,
            severity=cfg.severity,
            summary=f"{_JOB} on {_INSTANCE} stopped exporting circuit-breaker metrics.",
            description=f"Prometheus scraped circuit-breaker metrics from {_INSTANCE} of {_JOB} in the last "
            f"{cfg.lookback} but has had none for {cfg.for_}, while the target is still configured: the process "
            "is down or its exporter stopped. Its breakers are invisible to every other alert.",
            dashboard=links.url(
                links.OVERVIEW, ctx.config.grafana_url, **{links.Var.JOB: _url_label(promql.JOB_LABEL)}
            ),
        )
    ]


def _overview(ctx: _Context) -> str:
    """The overview dashboard for the alert's job (the guards and the store are shown there)."""
    return links.url(links.OVERVIEW, ctx.config.grafana_url, **{links.Var.JOB: _url_label(promql.JOB_LABEL)})


def _rate_limit_sustained(ctx: _Context) -> list[Rule]:
    """A rate limiter has kept refusing requests from a few keys only: one client (or a few) over
    its rate for a long time, not an overload spread over many."""
    cfg = ctx.config.alerts.rate_limit_sustained
    by = f"{promql.JOB_LABEL}, {sc.RATE_LIMIT_NAME_LABEL}"
    limited = promql.selector(
        sc.METRIC_RATE_LIMIT_DECISIONS, promql.eq(sc.RATE_LIMIT_OUTCOME_LABEL, sc.RateLimitOutcomeValues.LIMITED)
    )
    keys = promql.selector(sc.METRIC_RATE_LIMIT_LIMITED_KEYS)
    expr = (
        f"sum by ({by}) (rate({limited}[{cfg.window}])) > {cfg.min_limited_rate!r}\n"
        f"and on ({by}) max by ({by}) ({keys}) <= {cfg.max_keys}"
    )
    name = _label(sc.RATE_LIMIT_NAME_LABEL)
    return [
        ctx.alert(
            "CircuitBreakerRateLimitSustained",
            expr,
            for_=cfg.for_,
            severity=cfg.severity,
            summary=f"Rate limiter {name} keeps refusing a few clients.",
            description=f"The rate limiter {name} of {_JOB} refused {{{{ $value | humanize }}}} requests/s over the "
            f"last {cfg.window}, for {cfg.for_}, from at most {cfg.max_keys} keys: a client over its rate for "
            "long (a runaway job, a scraper, abuse). The keys are in the access logs.",
            dashboard=_overview(ctx),
        )
    ]


def _credential_stuffing(ctx: _Context) -> list[Rule]:
    """A spike of authentication lockouts, of source addresses or of many principals: what
    credential stuffing and password spraying look like."""
    cfg = ctx.config.alerts.credential_stuffing
    by = f"{promql.JOB_LABEL}, {sc.AUTH_LOCKOUT_NAME_LABEL}"
    subject = sc.AUTH_LOCKOUT_SUBJECT_LABEL

    def lockouts(kind: sc.AuthLockoutSubjectValues) -> str:
        series = promql.selector(sc.METRIC_AUTH_LOCKOUT_LOCKOUTS, promql.eq(subject, kind))
        return f"sum by ({by}) (increase({series}[{cfg.window}]))"

    expr = (
        f"{lockouts(sc.AuthLockoutSubjectValues.ADDRESS)} >= {cfg.address_lockouts}\n"
        f"or {lockouts(sc.AuthLockoutSubjectValues.PRINCIPAL)} >= {cfg.principal_lockouts}"
    )
    name = _label(sc.AUTH_LOCKOUT_NAME_LABEL)
    return [
        ctx.alert(
            "CircuitBreakerCredentialStuffing",
            expr,
            severity=cfg.severity,
            summary=f"Lockouts spike at {name}: it looks like credential stuffing.",
            description=f"The lockout guard {name} of {_JOB} started {{{{ $value | humanize }}}} lockouts in the last "
            f"{cfg.window} (alert at {cfg.address_lockouts} address lockouts or {cfg.principal_lockouts} principal "
            "lockouts): many failed logins from a few addresses, or across many accounts.",
            dashboard=_overview(ctx),
        )
    ]


def _load_shedding(ctx: _Context) -> list[Rule]:
    """A concurrency limiter sheds a share of its requests (503 at once): the service is over the
    concurrency it can serve with its usual latency."""
    cfg = ctx.config.alerts.load_shedding
    by = f"{promql.JOB_LABEL}, {sc.CONCURRENCY_LIMIT_NAME_LABEL}"
    requests = promql.selector(sc.METRIC_CONCURRENCY_LIMIT_REQUESTS)
    shed = promql.selector(
        sc.METRIC_CONCURRENCY_LIMIT_REQUESTS,
        promql.eq(sc.CONCURRENCY_LIMIT_OUTCOME_LABEL, sc.ConcurrencyLimitOutcomeValues.SHED),
    )
    total = f"sum by ({by}) (rate({requests}[{cfg.window}]))"
    expr = (
        f"sum by ({by}) (rate({shed}[{cfg.window}])) / {total} > {cfg.ratio!r}\n"
        f"and {total} * {duration_seconds(cfg.window)} >= {cfg.min_calls}"
    )
    name = _label(sc.CONCURRENCY_LIMIT_NAME_LABEL)
    share = "{{ $value | humanizePercentage }}"
    return [
        ctx.alert(
            "CircuitBreakerLoadShedding",
            expr,
            for_=cfg.for_,
            severity=cfg.severity,
            summary=f"{name} sheds {share} of its requests.",
            description=f"The concurrency limiter {name} of {_JOB} refused {share} of its requests (503 with "
            f"Retry-After) over the last {cfg.window} (over {cfg.ratio!r} fires this alert): more concurrent "
            "requests than it serves at its usual latency.",
            dashboard=_overview(ctx),
        )
    ]


def _store_unavailable(ctx: _Context) -> list[Rule]:
    """The store that shares breaker state across replicas (Redis) is unreachable from a process:
    its breakers decide on its own calls only until it answers again."""
    cfg = ctx.config.alerts.store_unavailable
    by = f"{promql.JOB_LABEL}, instance, {sc.CIRCUIT_BREAKER_STORE_BACKEND_LABEL}"
    available = promql.selector(sc.METRIC_CIRCUIT_BREAKER_STORE_AVAILABLE)
    backend = _label(sc.CIRCUIT_BREAKER_STORE_BACKEND_LABEL)
    return [
        ctx.alert(
            "CircuitBreakerStoreUnavailable",
            f"min by ({by}) ({available}) == 0",
            for_=cfg.for_,
            severity=cfg.severity,
            summary=f"{_JOB} on {_INSTANCE} cannot reach its breaker state store ({backend}).",
            description=f"The {backend} store of {_JOB} on {_INSTANCE} has been unavailable for {cfg.for_}: its "
            "breakers keep working on local state with no error to callers, but no longer share state with "
            "the other replicas (each must see an outage on its own). They resync when it answers again.",
            dashboard=_overview(ctx),
        )
    ]


#: Alert name -> its builder, in the order of the rule file.
ALERTS: dict[str, Callable[[_Context], list[Rule]]] = {
    "CircuitBreakerOpen": _open,
    "CircuitBreakerFlapping": _flapping,
    "CircuitBreakerHalfOpenStuck": _half_open_stuck,
    "CircuitBreakerTripPredicted": _trip_predicted,
    "CircuitBreakerErrorBudgetBurn": _error_budget_burn,
    "CircuitBreakerFallbackFailing": _fallback_failing,
    "CircuitBreakerRejectingTraffic": _rejecting_traffic,
    "BreakerMetricsAbsent": _metrics_absent,
    "CircuitBreakerManualState": _manual_state,
    "CircuitBreakerRateLimitSustained": _rate_limit_sustained,
    "CircuitBreakerCredentialStuffing": _credential_stuffing,
    "CircuitBreakerLoadShedding": _load_shedding,
    "CircuitBreakerStoreUnavailable": _store_unavailable,
}


def alert_groups(config: RulesConfig) -> list[Rule]:
    """The alerting rule groups, in Prometheus's rule-file shape."""
    ctx = _Context(config)
    return [{"name": "circuit-breaker-alerts", "rules": [rule for build in ALERTS.values() for rule in build(ctx)]}]
