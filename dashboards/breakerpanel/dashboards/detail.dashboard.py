"""Circuit breaker detail: one breaker's state, rates against its thresholds, latency, recoveries,
transitions, and its calls by outcome and error type.

The variables chain: job, then level, then service, then breaker. ``service`` is the service-level
breaker at the top of the hierarchy (:func:`breakerpanel.dashboards.common.with_service`): a service's own name,
an endpoint's parent, and for a feature the feature itself (features have no parent). ``breaker``
lists the service and its endpoints at the selected level.
"""

from __future__ import annotations

from grafanalib.core import DashboardLink, TimeSeries  # type: ignore[import-untyped]

from breakerpanel.dashboards.common import (
    BUCKET_LABEL,
    ERROR_RATIO,
    INSTANCE_LABEL,
    RANGE,
    RATE_INTERVAL,
    SERVICE_LABEL,
    STATE_MAPPINGS,
    Section,
    Unit,
    bar_gauge,
    counter_increase,
    defined,
    new_dashboard,
    query_variable,
    show,
    stat,
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
from breakerpanel.exporter.breaker_panels import BreakerPanels
from breakerpanel.exporter.loop_names import Var, error_ratio

JOB = promql.JOB_LABEL
NAME = sc.CIRCUIT_BREAKER_NAME_LABEL
LEVEL = sc.CIRCUIT_BREAKER_LEVEL_LABEL
PARENT = sc.CIRCUIT_BREAKER_PARENT_LABEL
OUTCOME = sc.CIRCUIT_BREAKER_OUTCOME_LABEL
REASON = sc.CIRCUIT_BREAKER_REJECTION_REASON_LABEL
ERROR_TYPE = sc.ERROR_TYPE_LABEL
PREVIOUS = sc.CIRCUIT_BREAKER_PREVIOUS_STATE_LABEL
STATE = sc.CIRCUIT_BREAKER_STATE_LABEL
FALLBACK_TYPE = sc.CIRCUIT_BREAKER_FALLBACK_TYPE_LABEL

#: The selected breaker's chart queries, shared with the incident bot's chart of an incident's breaker.
PANELS = BreakerPanels(var(Var.JOB), var(Var.BREAKER), RATE_INTERVAL, variables=True)
#: The selected breaker.
BREAKER = PANELS.matchers
_OUTCOME = sc.CircuitBreakerOutcomeValues
#: The outcomes a slow call has (rejected calls take no time).
_SLOW_OUTCOMES = promql.one_of(OUTCOME, (_OUTCOME.SUCCESS, _OUTCOME.FAILURE))


def _sel(metric: sc.MetricSpec | str, *matchers: str, suffix: str = "") -> str:
    return promql.selector(metric, *BREAKER, *matchers, suffix=suffix)


def _rate(metric: sc.MetricSpec, *matchers: str, suffix: str = "", window: str = RATE_INTERVAL) -> str:
    return f"rate({_sel(metric, *matchers, suffix=suffix)}[{window}])"


def _quantile(q: float, window: str = RATE_INTERVAL) -> str:
    buckets = _rate(sc.METRIC_CIRCUIT_BREAKER_CALL_DURATION, suffix="_bucket", window=window)
    return f"histogram_quantile({q}, sum by ({BUCKET_LABEL}) ({buckets}))"


def _vs_threshold(title: str, rate: str, threshold: str, what: str) -> TimeSeries:
    return timeseries(
        title,
        [target(rate, show(INSTANCE_LABEL)), target(threshold, "threshold")],
        unit=Unit.RATIO,
        minimum=0,
        maximum=1,
        overrides=[
            {
                "matcher": {"id": "byName", "options": "threshold"},
                "properties": [
                    {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                    {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}},
                ],
            }
        ],
        description=f"The {what} in each instance's sliding window (absent below the minimum calls), and the "
        "threshold in force: the breaker trips when the rate reaches it.",
    )


now = Section(
    "Now",
    [
        stat(
            "State",
            [target(PANELS.state())],
            unit=Unit.STATE,
            mappings=STATE_MAPPINGS,
            graph=False,
            color_background=True,
            no_value="no data",
            description="The worst state across the breaker's instances.",
        ),
        stat(
            "Calls/s",
            [target(PANELS.calls_per_second())],
            unit=Unit.CALLS_PER_SECOND,
            description="Every call through the breaker (a service's endpoints' included), rejected ones included.",
        ),
        stat(
            "Error ratio (5m)",
            [target(f"max{defined(_sel(error_ratio('5m')))}")],
            unit=Unit.RATIO,
            threshold_steps=ERROR_RATIO,
            description="Failed and rejected calls over counted calls in the last 5 minutes (recording rule).",
        ),
        stat(
            "Failure rate",
            [target(f"max({_sel(sc.METRIC_CIRCUIT_BREAKER_FAILURE_RATE)})")],
            unit=Unit.RATIO,
            threshold_steps=thresholds("green", (0.25, "orange"), (0.5, "red")),
            no_value="below minimum calls",
            description="The highest sliding-window failure rate across instances (see the threshold panel).",
        ),
        stat(
            "Recoveries (range)",
            [
                target(
                    f"sum(increase({_sel(sc.METRIC_CIRCUIT_BREAKER_RECOVERY_DURATION, suffix='_count')}[{RANGE}]))",
                    instant=True,
                )
            ],
            unit=Unit.COUNT,
            graph=False,
            description="Times the breaker closed again after leaving the closed state, in the dashboard's range.",
        ),
        stat(
            "Median recovery (range)",
            [
                target(
                    # Without a recovery in the range every bucket's increase is 0 and the
                    # quantile NaN: defined() leaves no value, which the stat shows as such.
                    defined(
                        f"histogram_quantile(0.5, sum by ({BUCKET_LABEL}) (increase("
                        f"{_sel(sc.METRIC_CIRCUIT_BREAKER_RECOVERY_DURATION, suffix='_bucket')}[{RANGE}])))"
                    ),
                    instant=True,
                )
            ],
            unit=Unit.SECONDS,
            threshold_steps=thresholds("green", (60, "orange"), (600, "red")),
            graph=False,
            no_value="no recovery",
            description="From leaving closed to closed again, median over the recoveries in the range "
            "(interpolated within the histogram's buckets).",
        ),
    ],
    height=4,
)

rates = Section(
    "Rates against thresholds",
    [
        state_timeline(
            "State",
            [target(PANELS.state(), f"{show(NAME)}")],
            description="The breaker's state over time (worst across instances).",
        ),
        _vs_threshold(
            "Failure rate vs threshold", PANELS.failure_rate(), PANELS.failure_rate_threshold(), "failure rate"
        ),
        _vs_threshold(
            "Slow-call rate vs threshold",
            PANELS.slow_call_rate(),
            PANELS.slow_call_rate_threshold(),
            "slow-call rate",
        ),
        state_timeline(
            "Breakers under it",
            [target(PANELS.children_state(), f"{show(NAME)}")],
            description="The state of each breaker under this one: a service's endpoints and the features that "
            "require it (what the incident bot attaches to its incident). Empty for an endpoint or a feature.",
        ),
    ],
    widths=[24, 12, 12, 24],
    height=8,
)

latency = Section(
    "Latency",
    [
        timeseries(
            "Call duration p50 / p95 / p99",
            [target(_quantile(q), f"p{round(q * 100)}") for q in (0.5, 0.95, 0.99)],
            unit=Unit.SECONDS,
            description="Quantiles of the duration of attempted calls (rejections take no time and are not "
            "counted), interpolated within the histogram's buckets.",
        ),
        timeseries(
            "Slow calls by outcome",
            [
                target(
                    f"sum by ({OUTCOME}) ({_rate(sc.METRIC_CIRCUIT_BREAKER_SLOW_CALLS)})\nor\n"
                    # The exporter's standard detail has no slow-call series before the first slow
                    # call: 0 per outcome from the calls, so the panel says "none" rather than nothing.
                    f"sum by ({OUTCOME}) (0 * {_rate(sc.METRIC_CIRCUIT_BREAKER_CALLS, _SLOW_OUTCOMES)})",
                    f"{show(OUTCOME)}",
                )
            ],
            unit=Unit.CALLS_PER_SECOND,
            stack=True,
            description="Calls that took at least the breaker's slow-call duration, per second (0 until the first).",
        ),
        bar_gauge(
            "Recovery durations (range)",
            [
                target(
                    f"sum by ({BUCKET_LABEL}) (increase("
                    f"{_sel(sc.METRIC_CIRCUIT_BREAKER_RECOVERY_DURATION, suffix='_bucket')}[{RANGE}]))",
                    show(BUCKET_LABEL),
                    instant=True,
                    heatmap=True,
                )
            ],
            unit=Unit.COUNT,
            description="How long recoveries took (leaving closed to closed again), as a histogram over the "
            "dashboard's range: each bar counts the recoveries up to its bound (in seconds).",
        ),
    ],
    height=8,
)

adaptive = Section(
    "Adaptive thresholds, forecasts, probes",
    [
        timeseries(
            "Slow-call duration in force",
            [target(f"max({_sel(sc.METRIC_CIRCUIT_BREAKER_SLOW_CALL_DURATION_THRESHOLD)})", "slow-call duration")],
            unit=Unit.SECONDS,
            description="A call at least this long is slow. Adaptive thresholds derive it from the latency "
            "baseline, within their bounds; otherwise it is the configured value.",
        ),
        timeseries(
            "Trip forecasts",
            [
                target(
                    f"sum({counter_increase(_sel(sc.METRIC_CIRCUIT_BREAKER_TRIP_FORECASTS), RATE_INTERVAL)})",
                    "forecasts",
                )
            ],
            unit=Unit.COUNT,
            bars=True,
            description="Early warnings: the failure rate's trend reached the threshold within the forecast "
            "horizon (the CircuitBreakerTripPredicted rule's arithmetic, computed in the process).",
        ),
        timeseries(
            "Health probes by outcome",
            [
                target(
                    f"sum by ({OUTCOME}) ({_rate(sc.METRIC_CIRCUIT_BREAKER_PROBES)})",
                    f"{show(OUTCOME)}",
                )
            ],
            unit=Unit.CALLS_PER_SECOND,
            stack=True,
            description="Active probes of the dependency while the breaker was open: a success moves it to "
            "half-open at once, a failure extends the open wait.",
        ),
    ],
    height=8,
)

calls = Section(
    "Calls",
    [
        timeseries(
            "Calls by outcome",
            [target(f"sum by ({OUTCOME}) ({_rate(sc.METRIC_CIRCUIT_BREAKER_CALLS)})", f"{show(OUTCOME)}")],
            unit=Unit.CALLS_PER_SECOND,
            stack=True,
            description="success and failure count in the window; ignored calls (a caller's bad request, a "
            "cancellation) count as neither; rejected calls were never attempted.",
        ),
        timeseries(
            "Failures by error.type",
            [
                target(
                    f"sum by ({ERROR_TYPE}) "
                    f"({_rate(sc.METRIC_CIRCUIT_BREAKER_CALLS, promql.eq(OUTCOME, _OUTCOME.FAILURE))})",
                    f"{show(ERROR_TYPE)}",
                )
            ],
            unit=Unit.CALLS_PER_SECOND,
            stack=True,
            description="Failed calls by the classifier's error type (timeout, connection_error, rate_limited, "
            "an HTTP status, an exception class).",
        ),
        timeseries(
            "Rejections by reason",
            [target(PANELS.rejections_per_second(), f"{show(REASON)}")],
            unit=Unit.CALLS_PER_SECOND,
            stack=True,
            description="Calls through the breaker (a service's endpoints' included) rejected, by reason: open, "
            "half_open_full, parent_open, forced_open.",
        ),
        timeseries(
            "Fallbacks by type and outcome",
            [
                target(
                    f"sum by ({FALLBACK_TYPE}, {OUTCOME}) ({_rate(sc.METRIC_CIRCUIT_BREAKER_FALLBACKS)})",
                    f"{show(FALLBACK_TYPE)} {show(OUTCOME)}",
                )
            ],
            unit=Unit.CALLS_PER_SECOND,
            stack=True,
            description="Fallback steps used for this breaker's calls (none unless a fallback chain wraps it).",
        ),
    ],
    height=8,
)

transitions = Section(
    "Transitions",
    [
        timeseries(
            "Transitions",
            [
                target(
                    f"sum by ({PREVIOUS}, {STATE}) "
                    f"{counter_increase(_sel(sc.METRIC_CIRCUIT_BREAKER_TRANSITIONS), RATE_INTERVAL)} > 0",
                    f"{show(PREVIOUS)} → {show(STATE)}",
                )
            ],
            unit=Unit.COUNT,
            bars=True,
            description="State changes (summed over instances) in each interval.",
        ),
        table(
            "Transitions (range)",
            [
                target(
                    f"sum by ({PREVIOUS}, {STATE}) "
                    f"{counter_increase(_sel(sc.METRIC_CIRCUIT_BREAKER_TRANSITIONS), RANGE)} > 0"
                )
            ],
            unit=Unit.COUNT,
            columns={PREVIOUS: "From", STATE: "To", "Value #A": "Transitions"},
            sort_by="Transitions",
            description="State changes in the dashboard's range, by the state left and the state entered.",
        ),
    ],
    widths=[16, 8],
    height=8,
)

_STATE_SERIES = sc.METRIC_CIRCUIT_BREAKER_STATE
_IN_LEVEL = (promql.eq(JOB, var(Var.JOB)), promql.re(LEVEL, var(Var.LEVEL)))

dashboard = new_dashboard(
    loop_names.DETAIL,
    description="One circuit breaker: state, rates against thresholds, latency, recoveries, transitions, calls.",
    variables=[
        query_variable(Var.JOB, f"label_values({_STATE_SERIES.prometheus_name}, {JOB})", label="Job"),
        query_variable(
            Var.LEVEL,
            f"label_values({promql.selector(_STATE_SERIES, promql.eq(JOB, var(Var.JOB)))}, {LEVEL})",
            label="Level",
            include_all=True,
        ),
        query_variable(
            Var.SERVICE,
            f"query_result(group by ({SERVICE_LABEL}) ({with_service(promql.selector(_STATE_SERIES, *_IN_LEVEL))}))",
            label="Service",
            regex=f'/{SERVICE_LABEL}="([^"]+)"/',
            description="The service at the top of the hierarchy: a service itself, an endpoint's service; a "
            "feature is its own.",
        ),
        query_variable(
            Var.BREAKER,
            f"query_result(group by ({NAME}) (\n  "
            f"{promql.selector(_STATE_SERIES, *_IN_LEVEL, promql.eq(NAME, var(Var.SERVICE)))}\nor\n  "
            f"{promql.selector(_STATE_SERIES, *_IN_LEVEL, promql.eq(PARENT, var(Var.SERVICE)))}\n))",
            label="Breaker",
            regex=f'/{NAME}="([^"]+)"/',
            description="The service and its endpoints, at the selected level.",
        ),
    ],
    sections=[now, rates, latency, adaptive, calls, transitions],
    annotations=[transitions_annotation(BREAKER)],
    extra_links=[
        DashboardLink(
            type="link",
            title="Its service",
            tooltip="The detail of the service-level breaker above this one",
            icon="dashboard",
            keepTime=True,
            uri=loop_names.url(
                loop_names.DETAIL,
                "",
                **{
                    Var.DATASOURCE: var("{" + Var.DATASOURCE + "}"),
                    Var.JOB: var(Var.JOB),
                    Var.LEVEL: loop_names.ALL,
                    Var.SERVICE: var(Var.SERVICE),
                    Var.BREAKER: var(Var.SERVICE),
                },
            ),
        )
    ],
)
