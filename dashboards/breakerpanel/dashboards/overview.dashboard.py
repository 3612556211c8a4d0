"""Circuit breakers overview: which breakers are open, what they reject, what the fallbacks serve.

Every panel covers the breakers of the selected jobs and levels. An endpoint's calls count at its
service as well (the service admits them first), so totals over every level count them twice: the
call-rate panel splits by level for that reason. Breaker series link to the detail dashboard.
"""

from __future__ import annotations

from breakerpanel.dashboards.common import (
    BASELINE,
    ERROR_RATIO,
    RANGE,
    RATE_INTERVAL,
    SERVICE_LABEL,
    STATE_MAPPINGS,
    Section,
    Unit,
    counter_increase,
    defined,
    detail_link,
    new_dashboard,
    query_variable,
    show,
    stat,
    state_code,
    state_timeline,
    table,
    target,
    thresholds,
    timeseries,
    transitions_annotation,
    var,
    with_service,
)
from breakerpanel.exporter import loop_names, promql
from breakerpanel.exporter import semconv as sc
from breakerpanel.exporter.loop_names import Var, calls_rate, error_ratio

JOB = promql.JOB_LABEL
NAME = sc.CIRCUIT_BREAKER_NAME_LABEL
LEVEL = sc.CIRCUIT_BREAKER_LEVEL_LABEL
OUTCOME = sc.CIRCUIT_BREAKER_OUTCOME_LABEL
REASON = sc.CIRCUIT_BREAKER_REJECTION_REASON_LABEL
STATE = sc.CIRCUIT_BREAKER_STATE_LABEL
FALLBACK_TYPE = sc.CIRCUIT_BREAKER_FALLBACK_TYPE_LABEL
IDENTITY = ", ".join(promql.IDENTITY_LABELS)

#: The selected breakers.
SELECTED = (promql.re(JOB, var(Var.JOB)), promql.re(LEVEL, var(Var.LEVEL)))


def _sel(metric: sc.MetricSpec | str, *matchers: str) -> str:
    return promql.selector(metric, *SELECTED, *matchers)


def _rate(metric: sc.MetricSpec, *matchers: str, window: str = RATE_INTERVAL) -> str:
    return f"rate({_sel(metric, *matchers)}[{window}])"


def _breakers_in(*states: sc.CircuitBreakerStateValues) -> str:
    """How many breakers are in one of ``states`` (on any instance)."""
    in_state = _sel(sc.METRIC_CIRCUIT_BREAKER_STATE, promql.one_of(STATE, states))
    return f"sum(max by ({IDENTITY}) ({in_state}))"


_STATE_ = sc.CircuitBreakerStateValues
_OUTCOME = sc.CircuitBreakerOutcomeValues
_REJECTED = promql.eq(OUTCOME, _OUTCOME.REJECTED)
_BREAKER_LEGEND = f"{show(NAME)}"

stats = Section(
    "Now",
    [
        stat(
            "Breakers",
            [target(f"count(max by ({IDENTITY}) ({_sel(sc.METRIC_CIRCUIT_BREAKER_STATE)}))")],
            unit=Unit.COUNT,
            graph=False,
            description="Breakers reporting, across instances (one breaker on three instances counts once).",
        ),
        stat(
            "Open",
            [target(_breakers_in(_STATE_.OPEN, _STATE_.FORCED_OPEN))],
            unit=Unit.COUNT,
            threshold_steps=thresholds("green", (1, "red")),
            color_background=True,
            description="Breakers open (or forced open) on at least one instance: they reject calls.",
        ),
        stat(
            "Half-open",
            [target(_breakers_in(_STATE_.HALF_OPEN))],
            unit=Unit.COUNT,
            threshold_steps=thresholds("green", (1, "yellow")),
            color_background=True,
            description="Breakers letting probe calls through to decide whether to close.",
        ),
        stat(
            "Error ratio (5m)",
            [
                target(
                    f"sum({defined(_sel(error_ratio('5m')))} * {_sel(calls_rate('5m'))})\n/\n"
                    f"(sum({_sel(calls_rate('5m'))}) > 0)"
                )
            ],
            unit=Unit.RATIO,
            threshold_steps=ERROR_RATIO,
            description="Failed and rejected calls over counted calls, weighted by each breaker's traffic "
            "(from the recording rules).",
        ),
        stat(
            "Rejected calls/s",
            [target(f"sum({_rate(sc.METRIC_CIRCUIT_BREAKER_CALLS, _REJECTED)})")],
            unit=Unit.CALLS_PER_SECOND,
            threshold_steps=thresholds("green", (0.01, "orange")),
            description="Calls refused without being attempted: open breakers, full half-open, open parents.",
        ),
        stat(
            "Fallbacks served/s",
            [target(f"sum({_rate(sc.METRIC_CIRCUIT_BREAKER_FALLBACKS, promql.eq(OUTCOME, _OUTCOME.SUCCESS))})")],
            unit=Unit.CALLS_PER_SECOND,
            threshold_steps=thresholds("green", (0.01, "orange")),
            description="Calls answered by a fallback step (alternate, cache, simplified, static).",
        ),
    ],
    height=4,
)

states = Section(
    "States",
    [
        state_timeline(
            "State per breaker",
            [
                target(
                    with_service(state_code(SELECTED, by=promql.IDENTITY_LABELS)),
                    _BREAKER_LEGEND,
                )
            ],
            description="The worst state of each breaker across its instances. Click a breaker for its detail.",
            data_links=[detail_link("field")],
        ),
        timeseries(
            "Failure rate / threshold",
            [
                target(
                    with_service(
                        f"max by ({IDENTITY}) (\n  {_sel(sc.METRIC_CIRCUIT_BREAKER_FAILURE_RATE)}\n/\n"
                        f"  {_sel(sc.METRIC_CIRCUIT_BREAKER_FAILURE_RATE_THRESHOLD)}\n)"
                    ),
                    _BREAKER_LEGEND,
                )
            ],
            unit=Unit.RATIO,
            threshold_steps=thresholds("green", (0.8, "orange"), (1, "red")),
            show_thresholds=True,
            minimum=0,
            description="Each breaker's sliding-window failure rate as a share of the failure-rate threshold in "
            "force: at 100% the breaker trips. Breakers below their minimum calls have no rate.",
            data_links=[detail_link("field")],
        ),
    ],
    height=9,
)

traffic = Section(
    "Traffic",
    [
        timeseries(
            "Calls by level and outcome",
            [
                target(
                    f"sum by ({LEVEL}, {OUTCOME}) ({_rate(sc.METRIC_CIRCUIT_BREAKER_CALLS)})",
                    f"{show(LEVEL)}: {show(OUTCOME)}",
                )
            ],
            unit=Unit.CALLS_PER_SECOND,
            stack=True,
            description="Calls per second by outcome, per level: an endpoint's call also counts at its service, "
            "and a feature's call at the breakers it calls.",
        ),
        timeseries(
            "Rejections by reason",
            [
                target(
                    f"sum by ({JOB}, {NAME}, {LEVEL}, {REASON}) "
                    f"({_rate(sc.METRIC_CIRCUIT_BREAKER_CALLS, _REJECTED)}) > 0",
                    f"{show(NAME)}: {show(REASON)}",
                )
            ],
            unit=Unit.CALLS_PER_SECOND,
            stack=True,
            description="Rejected calls per second: open, half_open_full (every probe permit taken), "
            "parent_open (the service or a feature's dependency is open), forced_open.",
        ),
        timeseries(
            "Fallbacks by type and outcome",
            [
                target(
                    f"sum by ({JOB}, {NAME}, {FALLBACK_TYPE}, {OUTCOME}) "
                    f"({_rate(sc.METRIC_CIRCUIT_BREAKER_FALLBACKS)}) > 0",
                    f"{show(NAME)}: {show(FALLBACK_TYPE)} {show(OUTCOME)}",
                )
            ],
            unit=Unit.CALLS_PER_SECOND,
            stack=True,
            description="Fallback steps used per second, by the breaker whose calls they served, the step's type, "
            "and whether the step served the call (success) or failed too (failure).",
        ),
    ],
    height=9,
)

_TABLE_BY = promql.IDENTITY_LABELS
worst = Section(
    "Worst breakers",
    [
        table(
            "Breakers by error ratio (5m)",
            [
                target(with_service(f"max by ({IDENTITY}) {defined(_sel(error_ratio('5m')))}")),
                target(with_service(state_code(SELECTED, by=_TABLE_BY))),
                target(with_service(f"max by ({IDENTITY}) ({_sel(calls_rate('5m'))})")),
                target(
                    with_service(
                        f"sum by ({IDENTITY}) (increase({_sel(sc.METRIC_CIRCUIT_BREAKER_CALLS, _REJECTED)}[{RANGE}]))"
                    )
                ),
                target(
                    with_service(
                        f"sum by ({IDENTITY}) "
                        + counter_increase(
                            _sel(sc.METRIC_CIRCUIT_BREAKER_FALLBACKS, promql.eq(OUTCOME, _OUTCOME.SUCCESS)), RANGE
                        )
                    )
                ),
            ],
            unit=Unit.COUNT,
            columns={
                NAME: "Breaker",
                LEVEL: "Level",
                SERVICE_LABEL: "Service",
                JOB: "Job",
                "Value #A": "Error ratio (5m)",
                "Value #B": "State",
                "Value #C": "Calls/s (5m)",
                "Value #D": "Rejected (range)",
                "Value #E": "Fallbacks served (range)",
            },
            sort_by="Error ratio (5m)",
            data_links=[detail_link("data")],
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "Error ratio (5m)"},
                    "properties": [
                        {"id": "unit", "value": Unit.RATIO},
                        {"id": "thresholds", "value": ERROR_RATIO},
                        {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                    ],
                },
                {
                    "matcher": {"id": "byName", "options": "State"},
                    "properties": [
                        {"id": "unit", "value": Unit.STATE},
                        {"id": "mappings", "value": STATE_MAPPINGS},
                        {"id": "custom.cellOptions", "value": {"type": "color-text"}},
                    ],
                },
                {
                    "matcher": {"id": "byName", "options": "Calls/s (5m)"},
                    "properties": [
                        {"id": "unit", "value": Unit.CALLS_PER_SECOND},
                        {"id": "thresholds", "value": BASELINE},
                    ],
                },
            ],
            description="Every selected breaker, worst error ratio first (failed and rejected over counted calls, "
            "5m, from the recording rules); rejections and fallbacks served over the dashboard's range. "
            "Click a row for the breaker's detail.",
        )
    ],
    height=10,
)

# ---------------------------------------------------------------------- guards and the state store

RATE_LIMIT = sc.RATE_LIMIT_NAME_LABEL
LOCKOUT = sc.AUTH_LOCKOUT_NAME_LABEL
SUBJECT = sc.AUTH_LOCKOUT_SUBJECT_LABEL
LIMITER = sc.CONCURRENCY_LIMIT_NAME_LABEL
PRIORITY = sc.CONCURRENCY_LIMIT_PRIORITY_LABEL
BACKEND = sc.CIRCUIT_BREAKER_STORE_BACKEND_LABEL


def _guard_rate(metric: sc.MetricSpec, *matchers: str) -> str:
    # Guards are not breakers: every job's guards show (the incident bot has guards and no breakers).
    return f"rate({promql.selector(metric, *matchers)}[{RATE_INTERVAL}])"


guards = Section(
    "Guards: rate limits, lockouts, load shedding (every job)",
    [
        timeseries(
            "Rate limiting decisions by outcome",
            [
                target(
                    f"sum by ({JOB}, {RATE_LIMIT}, {sc.RATE_LIMIT_OUTCOME_LABEL}) "
                    f"({_guard_rate(sc.METRIC_RATE_LIMIT_DECISIONS)})",
                    f"{show(JOB)} {show(RATE_LIMIT)}: {show(sc.RATE_LIMIT_OUTCOME_LABEL)}",
                )
            ],
            unit=Unit.CALLS_PER_SECOND,
            stack=True,
            description="Requests per second each rate limiter allowed or limited (429 with Retry-After).",
        ),
        timeseries(
            "Limited keys (last minute)",
            [
                target(
                    f"max by ({JOB}, {RATE_LIMIT}) ({promql.selector(sc.METRIC_RATE_LIMIT_LIMITED_KEYS)})",
                    f"{show(JOB)} {show(RATE_LIMIT)}",
                )
            ],
            unit=Unit.COUNT,
            minimum=0,
            description="Distinct keys (clients, API keys, addresses) each rate limiter refused in the last "
            "minute, on its busiest instance. Many refusals from one key: an abusive client; from many keys: "
            "an overload or a limit set too low. The keys are in the service's log, never in labels.",
        ),
        timeseries(
            "Authentication failures and lockouts by kind",
            [
                target(
                    f"sum by ({JOB}, {LOCKOUT}, {SUBJECT}) ({_guard_rate(sc.METRIC_AUTH_LOCKOUT_LOCKOUTS)})",
                    f"{show(JOB)} {show(LOCKOUT)}: {show(SUBJECT)} lockouts",
                ),
                target(
                    f"sum by ({JOB}, {LOCKOUT}) ({_guard_rate(sc.METRIC_AUTH_LOCKOUT_FAILURES)})",
                    f"{show(JOB)} {show(LOCKOUT)}: failed logins",
                ),
                target(
                    f"sum by ({JOB}, {LOCKOUT}) ({_guard_rate(sc.METRIC_AUTH_LOCKOUT_REJECTIONS)})",
                    f"{show(JOB)} {show(LOCKOUT)}: refused while locked",
                ),
            ],
            unit=Unit.CALLS_PER_SECOND,
            description="Failed authentications, lockouts started (of a principal or of a source address) and "
            "attempts refused while locked, per second. Address lockouts, or principal lockouts across many "
            "principals, look like credential stuffing.",
        ),
        timeseries(
            "Concurrency limit vs in flight",
            [
                target(
                    f"max by ({JOB}, {LIMITER}) ({promql.selector(sc.METRIC_CONCURRENCY_LIMIT_LIMIT)})",
                    f"{show(JOB)} {show(LIMITER)}: limit",
                ),
                target(
                    f"max by ({JOB}, {LIMITER}) ({promql.selector(sc.METRIC_CONCURRENCY_LIMIT_IN_FLIGHT)})",
                    f"{show(JOB)} {show(LIMITER)}: in flight",
                ),
            ],
            unit=Unit.COUNT,
            minimum=0,
            description="The adaptive concurrency limit in force and the requests in flight (critical ones "
            "included), on the busiest instance. In flight at the limit: normal requests are shed.",
        ),
        timeseries(
            "Shed requests by priority",
            [
                target(
                    f"sum by ({JOB}, {LIMITER}, {PRIORITY}) ("
                    + _guard_rate(
                        sc.METRIC_CONCURRENCY_LIMIT_REQUESTS,
                        promql.eq(sc.CONCURRENCY_LIMIT_OUTCOME_LABEL, sc.ConcurrencyLimitOutcomeValues.SHED),
                    )
                    + ")",
                    f"{show(JOB)} {show(LIMITER)}: {show(PRIORITY)}",
                )
            ],
            unit=Unit.CALLS_PER_SECOND,
            stack=True,
            description="Requests refused at once (503 with Retry-After) because the concurrency limit was "
            "reached, by priority: sheddable first, then normal; critical ones (health, admin) never.",
        ),
    ],
    height=8,
    widths=[5, 5, 5, 5, 4],
)

store = Section(
    "State store",
    [
        stat(
            "State store available",
            [
                target(
                    f"min by ({JOB}, {BACKEND}) "
                    f"({promql.selector(sc.METRIC_CIRCUIT_BREAKER_STORE_AVAILABLE, promql.re(JOB, var(Var.JOB)))})",
                    f"{show(JOB)} {show(BACKEND)}",
                )
            ],
            unit=Unit.STATE,
            threshold_steps=thresholds("red", (1, "green")),
            color_background=True,
            mappings=[
                {"type": "value", "options": {"0": {"text": "unavailable"}, "1": {"text": "available"}}},
            ],
            no_value="no store",
            description="Whether every instance reaches the store its breakers share state through (Redis): "
            "unavailable, breakers decide on their own instance's calls only, with no error to callers.",
        ),
        timeseries(
            "State store errors",
            [
                target(
                    f"sum by ({JOB}, {BACKEND}) (rate("
                    f"{promql.selector(sc.METRIC_CIRCUIT_BREAKER_STORE_ERRORS, promql.re(JOB, var(Var.JOB)))}"
                    f"[{RATE_INTERVAL}]))",
                    f"{show(JOB)} {show(BACKEND)}",
                )
            ],
            unit=Unit.CALLS_PER_SECOND,
            minimum=0,
            description="Failed operations against the state store per second (they never reach callers); "
            "a burst usually comes with the store marked unavailable.",
        ),
    ],
    height=5,
    widths=[6, 18],
)

dashboard = new_dashboard(
    loop_names.OVERVIEW,
    description="Circuit breakers at a glance: states, traffic, rejections, fallbacks, the worst breakers; "
    "the guards (rate limits, lockouts, load shedding) and the state store.",
    variables=[
        query_variable(
            Var.JOB,
            f"label_values({sc.METRIC_CIRCUIT_BREAKER_STATE.prometheus_name}, {JOB})",
            label="Job",
            multi=True,
            include_all=True,
        ),
        query_variable(
            Var.LEVEL,
            f"label_values({promql.selector(sc.METRIC_CIRCUIT_BREAKER_STATE, promql.re(JOB, var(Var.JOB)))}, {LEVEL})",
            label="Level",
            multi=True,
            include_all=True,
        ),
    ],
    sections=[stats, states, traffic, worst, guards, store],
    annotations=[transitions_annotation(SELECTED)],
)
