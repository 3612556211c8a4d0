"""Alerting rules, in the monitoring-mixin style: CamelCase names, a ``severity`` label, and
``summary``, ``description``, ``runbook_url`` and ``dashboard_url`` annotations.

Every alert about a breaker carries its identity and dependency labels
(:data:`breakerpanel.exporter.promql.BREAKER_LABELS`), so a receiver can route on ``gen_ai_provider_name`` and
the incident bot can name what is down. Instances of one application are summed (a ratio) or
counted (how many are open), except where the condition is about one process (half-open stuck,
trip predicted, flapping, metrics absent), which keep ``instance``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from breakerpanel.exporter import loop_names, promql
from breakerpanel.exporter import semconv as sc
from breakerpanel.exporter.loop_names import COUNTED_OUTCOMES, ERROR_OUTCOMES, SLO_LABEL, calls_rate, error_ratio
from breakerpanel.exporter.rules_config import (
    BurnRateWindow,
    RulesConfig,
    Severity,
    Slo,
    duration_seconds,
    scaled_duration,
)

from .recording import slo_selector

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
    def __init__(self, config: RulesConfig, time_scale: float = 1.0) -> None:
        self.config = config
        self.time_scale = time_scale

    def t(self, duration: str) -> str:
        """A duration for PromQL or ``for``, scaled (see :func:`breakerpanel.alert_rules.rule_groups`)."""
        return scaled_duration(duration, self.time_scale)

    def secs(self, duration: str) -> float | int:
        """A duration's seconds, scaled, for arithmetic in an expression."""
        seconds = duration_seconds(duration) * self.time_scale
        return int(seconds) if seconds == int(seconds) else round(seconds, 3)

    def alert(
        self,
        name: str,
        expr: str,
        *,
        severity: Severity,
        summary: str,
        description: str,
        for_: str | None = None,
        keep_firing_for: str | None = None,
        labels: dict[str, str] | None = None,
        dashboard: str | None = None,
    ) -> Rule:
        """One alerting rule, annotated; ``dashboard`` defaults to the breaker's detail dashboard."""
        rule: Rule = {"alert": name, "expr": expr}
        if for_ is not None:
            rule["for"] = self.t(for_)
        if keep_firing_for is not None:
            rule["keep_firing_for"] = self.t(keep_firing_for)
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
        return loop_names.url(
            loop_names.DETAIL,
            self.config.grafana_url,
            **{
                loop_names.Var.JOB: _url_label(promql.JOB_LABEL),
                loop_names.Var.LEVEL: _url_label(sc.CIRCUIT_BREAKER_LEVEL_LABEL),
                # The detail dashboard's "service": an endpoint's parent, else the breaker itself.
                loop_names.Var.SERVICE: (
                    f"{{{{ if $labels.{sc.CIRCUIT_BREAKER_PARENT_LABEL} }}}}"
                    f"{_url_label(sc.CIRCUIT_BREAKER_PARENT_LABEL)}"
                    f"{{{{ else }}}}{_url_label(sc.CIRCUIT_BREAKER_NAME_LABEL)}{{{{ end }}}}"
                ),
                loop_names.Var.BREAKER: _url_label(sc.CIRCUIT_BREAKER_NAME_LABEL),
            },
        )


def runbook_slug(alert: str) -> str:
    """``CircuitBreakerOpen`` -> ``circuit-breaker-open``: the runbook's file name."""
    return "".join("-" + c.lower() if c.isupper() else c for c in alert).lstrip("-")


_REASON = sc.CircuitBreakerRejectionReasonValues


def _rejected(*reasons: sc.CircuitBreakerRejectionReasonValues) -> str:
    """Calls rejected for ``reasons`` (a feature's rejections for an open dependency count at the
    dependency too: :meth:`breakerpanel.CircuitBreaker.reject_on_behalf`)."""
    return promql.selector(
        sc.METRIC_CIRCUIT_BREAKER_CALLS,
        promql.eq(sc.CIRCUIT_BREAKER_OUTCOME_LABEL, _OUTCOME.REJECTED),
        promql.one_of(sc.CIRCUIT_BREAKER_REJECTION_REASON_LABEL, reasons),
    )


def _state(*states: sc.CircuitBreakerStateValues, extra: tuple[str, ...] = ()) -> str:
    return promql.selector(
        sc.METRIC_CIRCUIT_BREAKER_STATE, promql.one_of(sc.CIRCUIT_BREAKER_STATE_LABEL, states), *extra
    )


# ---------------------------------------------------------------------- the alerts


def _open(ctx: _Context) -> list[Rule]:
    """A warning as soon as a breaker is seen open with calls failing or turned away (the cause,
    for Slack); then, for one that has stayed open for ``for``, the severity of its tier, else of
    its level (critical pages). The second rule reads "open at some point within
    ``keep_firing_for``, not closed now": a breaker whose probes keep failing alternates open and
    half-open without restarting its clock, while a breaker nobody calls (stuck half-open, or open
    with no caller left) affects nobody and does not page. Both keep firing through a restart or a
    death (BreakerMetricsAbsent takes over)."""
    cfg = ctx.config.alerts.open
    keep = cfg.keep_firing_for
    # Calls failed or turned away lately: the gauge says `open` until the next call finds the wait
    # over, so a breaker nobody calls any more would stay "open" for ever.
    turned_away = promql.selector(
        sc.METRIC_CIRCUIT_BREAKER_CALLS, promql.one_of(sc.CIRCUIT_BREAKER_OUTCOME_LABEL, ERROR_OUTCOMES)
    )
    affected = (
        f"on ({_ONE_BREAKER}) sum by ({_ONE_BREAKER}) (increase({turned_away}[{ctx.t(cfg.affected_window)}])) > 0"
    )
    rules = []
    if cfg.notify:
        rules.append(
            ctx.alert(
                "CircuitBreakerOpen",
                f"count by ({_BY}) ({_state(_STATE.OPEN)} == 1 and {affected})",
                keep_firing_for=keep,
                severity=Severity.WARNING,
                summary=f"Circuit breaker {_NAME} is open.",
                description=f"The {_LEVEL} breaker {_NAME} of {_JOB} is open on {{{{ $value }}}} instance(s): its "
                "calls fail fast or are served by fallbacks while the dependency is failing or slow.",
            )
        )
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
    for severity in Severity:
        if cfg.notify and severity is Severity.WARNING:
            continue  # the warning above already says it, from the first second
        # Open within `keep_firing_for`, not closed now, and calls failing or turned away:
        # probing between two open periods keeps the clock; a recovered breaker does not page on
        # its way out, nor one nobody calls any more (stuck half-open, or open with no caller).
        not_closed = f"on ({_ONE_BREAKER}) {_state(_STATE.OPEN, _STATE.HALF_OPEN)} == 1"
        recently_open = [
            f"max_over_time({_state(_STATE.OPEN, extra=matchers)}[{ctx.t(keep)}]) == 1"
            for matchers, s in variants
            if s is severity
        ]
        selected = [f"({opened} and {not_closed} and {affected})" for opened in recently_open]
        if not selected:
            continue
        # One rule per severity (promtool flags two rules with one name and the same labels).
        either = "\n  or ".join(selected)
        stayed_open = f"(\n  {either}\n)" if len(selected) > 1 else selected[0]
        rules.append(
            ctx.alert(
                "CircuitBreakerOpen",
                f"count by ({_BY}) {stayed_open}",
                for_=cfg.for_,
                keep_firing_for=keep,
                severity=severity,
                summary=f"Circuit breaker {_NAME} has been open for more than {cfg.for_}.",
                description=f"The {_LEVEL} breaker {_NAME} of {_JOB} has been open for more than {cfg.for_} on "
                "{{ $value }} instance(s), its probes failing: the dependency is not recovering by itself. Its "
                "calls fail fast or are served by fallbacks meanwhile.",
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
            f"sum by ({_BY_INSTANCE}) (increase({trips}[{ctx.t(cfg.window)}])) >= {cfg.openings}",
            severity=cfg.severity,
            summary=f"Circuit breaker {_NAME} keeps tripping and recovering.",
            description=f'The breaker {_NAME} of {_JOB} on {_INSTANCE} opened {{{{ $value | printf "%.0f" }}}} '
            f"times in {cfg.window} ({cfg.openings} or more fire this alert): its dependency is intermittently "
            "failing, or the breaker's thresholds are too tight.",
        )
    ]


def _half_open_stuck(ctx: _Context) -> list[Rule]:
    """Half-open for longer than ``for`` while turning callers away (its probe calls never
    finish, so the calls beyond them are rejected): a breaker stuck half-open that nobody calls
    affects nobody and is left alone."""
    cfg = ctx.config.alerts.half_open_stuck
    turned_away = f"increase({_rejected(_REASON.HALF_OPEN_FULL)}[{ctx.t(cfg.for_)}])"
    return [
        ctx.alert(
            "CircuitBreakerHalfOpenStuck",
            f"max by ({_BY_INSTANCE}) ({_state(_STATE.HALF_OPEN)}) == 1\n"
            f"and on ({_ONE_BREAKER}) sum by ({_ONE_BREAKER}) ({turned_away}) > 0",
            for_=cfg.for_,
            severity=cfg.severity,
            summary=f"Circuit breaker {_NAME} has been half-open for more than {cfg.for_}.",
            description=f"The breaker {_NAME} of {_JOB} on {_INSTANCE} has been waiting for its probe calls to "
            f"finish for more than {cfg.for_}, turning the other calls away meanwhile: its probes hang.",
        )
    ]


def _trip_predicted(ctx: _Context) -> list[Rule]:
    """The breaker's own forecast (``forecast`` in breakers.yaml: a trend fit on every sample,
    against the threshold in force, adaptive ones included) while it is still closed: not once
    it has tripped (within ``window``), and not for a breaker rejecting because a dependency is
    open (the dependency is the news, and its alert says so)."""
    cfg = ctx.config.alerts.trip_predicted
    window = ctx.t(cfg.window)
    forecasts = promql.selector(sc.METRIC_CIRCUIT_BREAKER_TRIP_FORECASTS)
    trips = promql.selector(
        sc.METRIC_CIRCUIT_BREAKER_TRANSITIONS, promql.eq(sc.CIRCUIT_BREAKER_STATE_LABEL, _STATE.OPEN)
    )
    parent_open = _rejected(_REASON.PARENT_OPEN)
    expr = (
        f"(increase({forecasts}[{window}]) > 0)\n"
        f"and on ({_ONE_BREAKER}) ({_state(_STATE.CLOSED)} == 1)\n"
        f"unless on ({_ONE_BREAKER}) (sum by ({_ONE_BREAKER}) (increase({trips}[{window}])) > 0)\n"
        f"unless on ({_ONE_BREAKER}) (sum by ({_ONE_BREAKER}) (increase({parent_open}[{window}])) > 0)"
    )
    return [
        ctx.alert(
            "CircuitBreakerTripPredicted",
            expr,
            severity=cfg.severity,
            summary=f"Circuit breaker {_NAME} forecasts its own trip.",
            description=f"{_NAME} of {_JOB} on {_INSTANCE} forecast its own trip: the trend of its failure rate "
            "reaches its threshold in force (adaptive thresholds included) within its forecast horizon. It is "
            "still closed.",
        )
    ]


def _number(value: float) -> str:
    """``6.0`` -> ``6``, ``14.4`` -> ``14.4``: exact, without a float's trailing ``.0``."""
    return repr(value).removesuffix(".0")


def _burn_condition(ctx: _Context, slo: Slo, window: BurnRateWindow, min_calls: int) -> str:
    budget = round(1 - slo.target, 12)
    long_ratio = slo_selector(slo, error_ratio(window.long))
    short_ratio = slo_selector(slo, error_ratio(window.short))
    calls = slo_selector(slo, calls_rate(window.long))
    return (
        f"(\n  {long_ratio} / {budget!r} > {_number(window.factor)}\n"
        f"  and {short_ratio} / {budget!r} > {_number(window.factor)}\n"
        f"  and {calls} * {ctx.secs(window.long)} >= {min_calls}\n)"
    )


def _error_budget_burn(ctx: _Context) -> list[Rule]:
    """Per SLO, a page (fast burn) and a ticket (slow burn), each the `or` of its window pairs."""
    cfg = ctx.config.alerts.error_budget_burn
    rules = []
    for slo in ctx.config.slos:
        dashboard = loop_names.url(
            loop_names.SLO,
            ctx.config.grafana_url,
            **{
                loop_names.Var.JOB: _url_label(promql.JOB_LABEL),
                loop_names.Var.SLO: slo.name,
                loop_names.Var.BREAKER: _url_label(sc.CIRCUIT_BREAKER_NAME_LABEL),
            },
        )
        for burn_label, windows, severity in cfg.burns(slo):
            if not windows:
                continue
            kind = "page" if burn_label == "fast" else "ticket"
            pairs = ", ".join(f"{w.long}/{w.short} over {_number(w.factor)}x" for w in windows)
            burn = '{{ $value | printf "%.1f" }}'
            rules.append(
                ctx.alert(
                    "CircuitBreakerErrorBudgetBurn",
                    "\nor\n".join(_burn_condition(ctx, slo, w, cfg.min_calls) for w in windows),
                    severity=severity,
                    # `burn` tells the two apart (their severities may be the same) and lets
                    # receivers route the fast burn differently from the slow one.
                    labels={SLO_LABEL: slo.name, "burn": burn_label},
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
    needed_rate = promql.sum_by_breaker(f"rate({needed}[{ctx.t(cfg.window)}])")
    served_rate = promql.sum_by_breaker(f"rate({served}[{ctx.t(cfg.window)}])")
    fallbacks = promql.sum_by_breaker(
        f"rate({promql.selector(sc.METRIC_CIRCUIT_BREAKER_FALLBACKS)}[{ctx.t(cfg.window)}])"
    )
    expr = (
        f"1 - clamp_max(({served_rate} or 0 * {fallbacks}) / {needed_rate}, 1) > {cfg.ratio!r}\n"
        f"and {fallbacks} > 0\n"
        f"and {needed_rate} * {ctx.secs(cfg.window)} >= {cfg.min_calls}"
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


def _degraded(ctx: _Context) -> list[Rule]:
    """A large share of a feature's calls answered by its last-resort fallbacks (a cached or a
    canned answer): users are served, but not as they should be."""
    cfg = ctx.config.alerts.degraded
    feature = promql.eq(sc.CIRCUIT_BREAKER_LEVEL_LABEL, sc.CircuitBreakerLevelValues.FEATURE)
    watched = (promql.one_of(sc.CIRCUIT_BREAKER_NAME_LABEL, cfg.breakers),) if cfg.breakers else ()
    last_resort = promql.selector(
        sc.METRIC_CIRCUIT_BREAKER_FALLBACKS,
        feature,
        *watched,
        promql.one_of(sc.CIRCUIT_BREAKER_FALLBACK_TYPE_LABEL, cfg.fallback_types),
        promql.eq(sc.CIRCUIT_BREAKER_OUTCOME_LABEL, _OUTCOME.SUCCESS),
    )
    calls = promql.selector(
        sc.METRIC_CIRCUIT_BREAKER_CALLS,
        feature,
        *watched,
        promql.one_of(sc.CIRCUIT_BREAKER_OUTCOME_LABEL, COUNTED_OUTCOMES),
    )
    window = ctx.t(cfg.window)
    total = promql.sum_by_breaker(f"rate({calls}[{window}])")
    expr = (
        f"{promql.sum_by_breaker(f'rate({last_resort}[{window}])')} / {total} > {cfg.ratio!r}\n"
        f"and {total} * {ctx.secs(cfg.window)} >= {cfg.min_calls}"
    )
    share = "{{ $value | humanizePercentage }}"
    names = [str(t) for t in cfg.fallback_types]
    kinds = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return [
        ctx.alert(
            "CircuitBreakerDegraded",
            expr,
            for_=cfg.for_,
            severity=cfg.severity,
            summary=f"{_NAME} gives {share} of its answers from {kinds} fallbacks.",
            description=f"Over the last {cfg.window}, {share} of the calls to the feature {_NAME} of {_JOB} were "
            f"answered by a {kinds} fallback (over {cfg.ratio!r} fires this alert): users get degraded answers, "
            "because the dependencies it needs and their alternates are failing.",
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
        return promql.sum_by_breaker(f"rate({calls}[{ctx.t(cfg.window)}])")

    expr = (
        f"{rate((_OUTCOME.REJECTED,))} / {rate(COUNTED_OUTCOMES)} > {cfg.ratio!r}\n"
        f"and {rate(COUNTED_OUTCOMES)} * {ctx.secs(cfg.window)} >= {cfg.min_calls}"
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
        f"(\n  group by ({by}) (last_over_time({state}[{ctx.t(cfg.lookback)}]))\n"
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
            dashboard=loop_names.url(
                loop_names.OVERVIEW, ctx.config.grafana_url, **{loop_names.Var.JOB: _url_label(promql.JOB_LABEL)}
            ),
        )
    ]


def _overview(ctx: _Context) -> str:
    """The overview dashboard for the alert's job (the guards and the store are shown there)."""
    return loop_names.url(
        loop_names.OVERVIEW, ctx.config.grafana_url, **{loop_names.Var.JOB: _url_label(promql.JOB_LABEL)}
    )


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
        f"sum by ({by}) (rate({limited}[{ctx.t(cfg.window)}])) > {cfg.min_limited_rate!r}\n"
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
        return f"sum by ({by}) (increase({series}[{ctx.t(cfg.window)}]))"

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
            # increase() extrapolates (4 lockouts read 4.1): a whole number, as the flapping alert's.
            description=f'The lockout guard {name} of {_JOB} started {{{{ $value | printf "%.0f" }}}} lockouts '
            f"in the last {cfg.window} (alert at {cfg.address_lockouts} address lockouts or "
            f"{cfg.principal_lockouts} principal lockouts): many failed logins from a few addresses, or across "
            "many accounts.",
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
    total = f"sum by ({by}) (rate({requests}[{ctx.t(cfg.window)}]))"
    expr = (
        f"sum by ({by}) (rate({shed}[{ctx.t(cfg.window)}])) / {total} > {cfg.ratio!r}\n"
        f"and {total} * {ctx.secs(cfg.window)} >= {cfg.min_calls}"
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
    "CircuitBreakerDegraded": _degraded,
    "CircuitBreakerRejectingTraffic": _rejecting_traffic,
    "BreakerMetricsAbsent": _metrics_absent,
    "CircuitBreakerManualState": _manual_state,
    "CircuitBreakerRateLimitSustained": _rate_limit_sustained,
    "CircuitBreakerCredentialStuffing": _credential_stuffing,
    "CircuitBreakerLoadShedding": _load_shedding,
    "CircuitBreakerStoreUnavailable": _store_unavailable,
}


def alert_groups(config: RulesConfig, time_scale: float = 1.0) -> list[Rule]:
    """The alerting rule groups, in Prometheus's rule-file shape (``time_scale``: see
    :func:`breakerpanel.alert_rules.rule_groups`)."""
    ctx = _Context(config, time_scale)
    return [{"name": "circuit-breaker-alerts", "rules": [rule for build in ALERTS.values() for rule in build(ctx)]}]
