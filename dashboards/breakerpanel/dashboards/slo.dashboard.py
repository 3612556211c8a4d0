"""SLO and error budget: each breaker an SLO covers, its availability against the objective, its
burn rate over the alert windows, and the error budget left over the SLO period.

The SLOs, their targets and the burn-rate alerts' windows and factors are in
``alert_rules/config.yaml``; the recording rules (:mod:`breakerpanel.alert_rules.recording`, named in
:mod:`breakerpanel.exporter.loop_names`) write one
``circuit_breaker:slo_objective:ratio{slo="<name>"}`` series per SLO and breaker, valued at the
target, and the error ratios over each window. A burn rate is the error ratio over the budget,
``1 - objective``: at 1 the budget lasts exactly the period. Regenerate the dashboards when the
alert windows change (``make dashboards``).
"""

from __future__ import annotations

from breakerpanel import dashboards
from breakerpanel.dashboards.common import (
    COUNTED_OUTCOMES,
    ERROR_OUTCOMES,
    Section,
    Unit,
    defined,
    new_dashboard,
    query_variable,
    ratio,
    show,
    stat,
    table,
    target,
    thresholds,
    timeseries,
    var,
)
from breakerpanel.exporter import loop_names, promql
from breakerpanel.exporter import semconv as sc
from breakerpanel.exporter.loop_names import SLO_LABEL, SLO_OBJECTIVE, WINDOWS, Var, error_ratio, slo_calls
from breakerpanel.exporter.rules_config import BurnRateWindow, duration_seconds

JOB = promql.JOB_LABEL
NAME = sc.CIRCUIT_BREAKER_NAME_LABEL
OUTCOME = sc.CIRCUIT_BREAKER_OUTCOME_LABEL
ON_BREAKER = ", ".join(promql.BREAKER_LABELS)

RULES = dashboards.rules_config()
BURN = RULES.alerts.error_budget_burn


def _alerted_pairs() -> list[tuple[str, BurnRateWindow, list[str]]]:
    """Each window pair a burn-rate alert fires on: its ``burn`` (fast or slow), the pair, and
    the SLOs it alerts for. An SLO's own pairs replace the defaults, and an SLO without the slow
    burn has none of its pairs: a panel of the defaults would draw alert lines no alert follows.
    Without an SLO, the defaults: what one would get."""
    found: dict[tuple[str, str, str, float], tuple[str, BurnRateWindow, list[str]]] = {}
    for slo in RULES.slos:
        for burn, windows, _ in BURN.burns(slo):
            for pair in windows:
                key = (burn, pair.long, pair.short, pair.factor)
                found.setdefault(key, (burn, pair, []))[2].append(slo.name)
    if not RULES.slos:
        return [("fast", pair, []) for pair in BURN.page] + [("slow", pair, []) for pair in BURN.ticket]
    return list(found.values())


PAIRS = _alerted_pairs()
for _, _pair, _ in PAIRS:
    for _window in (_pair.long, _pair.short):
        if _window not in WINDOWS:
            raise ValueError(
                f"burn-rate window {_window} has no recording rule (breakerpanel.exporter.loop_names.WINDOWS)"
            )

#: The selected SLO's breakers.
BREAKERS = (promql.re(JOB, var(Var.JOB)), promql.re(NAME, var(Var.BREAKER)))
OBJECTIVE = promql.selector(SLO_OBJECTIVE, promql.eq(SLO_LABEL, var(Var.SLO)), *BREAKERS)


def _burn_rate(window: str) -> str:
    """The error ratio over ``window`` divided by the error budget, for the SLO's breakers."""
    return f"{defined(promql.selector(error_ratio(window), *BREAKERS))}\n/ on ({ON_BREAKER})\n(1 - {OBJECTIVE})"


def _period_error_ratio() -> str:
    """The error ratio over the SLO period, counted as the recording rules count it."""

    def rate(outcomes: tuple[sc.CircuitBreakerOutcomeValues, ...]) -> str:
        calls = promql.selector(sc.METRIC_CIRCUIT_BREAKER_CALLS, *BREAKERS, *slo_calls(outcomes))
        return promql.sum_by_breaker(f"rate({calls}[{BURN.period}])")

    return ratio(rate(ERROR_OUTCOMES), rate(COUNTED_OUTCOMES))


def _share_of_budget(pair: BurnRateWindow) -> float:
    """The share of the period's budget a burn at the alert's factor spends over its long window."""
    return pair.factor * duration_seconds(pair.long) / duration_seconds(BURN.period)


def _factor(window: str) -> float:
    """The lowest factor of the alerts that use ``window``: above it, the budget goes too fast."""
    factors = [pair.factor for _, pair, _ in PAIRS if window in (pair.long, pair.short)]
    if factors:
        return min(factors)
    # No alert on this window: the lowest factor of any; with no burn alert at all, 1 (the rate
    # at which the budget lasts exactly the period).
    return min((pair.factor for _, pair, _ in PAIRS), default=1.0)


BUDGET = thresholds("red", (0, "orange"), (0.25, "green"))
_LEGEND = show(NAME)

summary = Section(
    "Objective and budget",
    [
        stat(
            "Objective",
            [target(f"max({OBJECTIVE})", instant=True)],
            unit=Unit.RATIO,
            graph=False,
            decimals=2,
            description="The SLO's target: the share of calls that must neither fail nor be rejected.",
        ),
        stat(
            f"Availability ({BURN.period})",
            [
                target(
                    f"(1 - (\n{_period_error_ratio()}\n)) and on ({ON_BREAKER}) {OBJECTIVE}",
                    _LEGEND,
                    instant=True,
                )
            ],
            unit=Unit.RATIO,
            threshold_steps=thresholds("red", (0.99, "orange"), (0.999, "green")),
            graph=False,
            decimals=3,
            description=f"Per breaker, over the SLO period ({BURN.period}): calls that neither failed nor were "
            "rejected, over counted calls.",
        ),
        stat(
            f"Error budget left ({BURN.period})",
            [
                target(
                    f"1 - (\n{_period_error_ratio()}\n)\n/ on ({ON_BREAKER})\n(1 - {OBJECTIVE})",
                    _LEGEND,
                    instant=True,
                )
            ],
            unit=Unit.RATIO,
            threshold_steps=BUDGET,
            graph=False,
            decimals=1,
            description=f"Per breaker, the share of the period's error budget (1 - objective) not yet spent "
            f"over the last {BURN.period}; below 0 the SLO is missed.",
        ),
    ],
    widths=[4, 10, 10],
    height=5,
)

availability = Section(
    "Availability",
    [
        timeseries(
            "Availability (5m) vs objective",
            [
                target(
                    f"(1 - {defined(promql.selector(error_ratio('5m'), *BREAKERS))}) and on ({ON_BREAKER}) {OBJECTIVE}",
                    _LEGEND,
                ),
                target(f"max({OBJECTIVE})", "objective"),
            ],
            unit=Unit.RATIO,
            maximum=1,
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "objective"},
                    "properties": [
                        {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                        {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}},
                    ],
                }
            ],
            description="Per breaker, calls that neither failed nor were rejected over the last 5 minutes "
            "(recording rule), and the objective.",
        )
    ],
)

burn = Section(
    "Burn rate",
    [
        *(
            timeseries(
                f"{burn.capitalize()} burn: rate over {pair.long} and {pair.short} (alert at {pair.factor:g}x)",
                [target(_burn_rate(w), f"{show(NAME)} {w}") for w in (pair.long, pair.short)],
                unit=Unit.BURN_RATE,
                threshold_steps=thresholds("green", (pair.factor, "red")),
                show_thresholds=True,
                minimum=0,
                description=f"The error ratio over the budget for the alert's two windows: the {burn} burn "
                f"alert (CircuitBreakerErrorBudgetBurn, burn={burn}"
                + (f"; SLO {', '.join(slos)}" if slos else "")
                + f") fires when both exceed {pair.factor:g} (a {pair.long} burn at that rate spends "
                f"{_share_of_budget(pair):.1%} of the {BURN.period} budget).",
            )
            for burn, pair, slos in PAIRS
        ),
        table(
            "Burn rate per breaker and window",
            [target(_burn_rate(w)) for w in WINDOWS],
            unit=Unit.BURN_RATE,
            columns={
                JOB: "Job",
                NAME: "Breaker",
                **{f"Value #{chr(ord('A') + i)}": w for i, w in enumerate(WINDOWS)},
            },
            sort_by=WINDOWS[0],
            overrides=[
                {
                    "matcher": {"id": "byName", "options": w},
                    "properties": [
                        {"id": "thresholds", "value": thresholds("green", (_factor(w), "red"))},
                        {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                    ],
                }
                for w in WINDOWS
            ],
            description="Every window of the recording rules. A window turns red above the lowest factor of "
            "the alerts that use it: "
            + ("; ".join(f"{burn} burn {p.long}/{p.short} at {p.factor:g}x" for burn, p, _ in PAIRS) or "none, 1x")
            + ".",
        ),
    ],
    widths=[12] * len(PAIRS) + [24],
)

dashboard = new_dashboard(
    loop_names.SLO,
    description="Availability objectives of circuit-breaker-protected dependencies: availability against "
    "the objective, burn rates over the alert windows, error budget left.",
    variables=[
        query_variable(Var.SLO, f"label_values({SLO_OBJECTIVE}, {SLO_LABEL})", label="SLO"),
        query_variable(
            Var.JOB,
            f"label_values({promql.selector(SLO_OBJECTIVE, promql.eq(SLO_LABEL, var(Var.SLO)))}, {JOB})",
            label="Job",
            multi=True,
            include_all=True,
        ),
        query_variable(
            Var.BREAKER,
            "label_values("
            + promql.selector(SLO_OBJECTIVE, promql.eq(SLO_LABEL, var(Var.SLO)), promql.re(JOB, var(Var.JOB)))
            + f", {NAME})",
            label="Breaker",
            multi=True,
            include_all=True,
        ),
    ],
    sections=[summary, availability, burn],
    time_from="now-7d",
    refresh="1m",
)
