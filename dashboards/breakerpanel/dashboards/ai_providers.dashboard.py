"""AI providers: availability, latency and rate limiting per ``gen_ai`` provider and model, and the
traffic fallback chains send to alternate providers.

A provider's calls pass through its service breaker and, for an operation with a breaker of its
own, through that endpoint too: both count the call. The panels count each call once, at the
most specific breaker: endpoints, and services that have no endpoints (:func:`_leaf`). The
provider and model are breaker attributes (``gen_ai.provider.name``, ``gen_ai.request.model``);
endpoints inherit their service's.
"""

from __future__ import annotations

from breakerpanel.dashboards.common import (
    BUCKET_LABEL,
    COUNTED_OUTCOMES,
    ERROR_OUTCOMES,
    RANGE,
    RATE_INTERVAL,
    RATE_LIMITED_ERROR_TYPE,
    Section,
    Unit,
    new_dashboard,
    query_variable,
    ratio,
    show,
    stat,
    target,
    thresholds,
    timeseries,
    transitions_annotation,
    var,
)
from breakerpanel.exporter import loop_names, promql
from breakerpanel.exporter import semconv as sc
from breakerpanel.exporter.loop_names import Var

JOB = promql.JOB_LABEL
NAME = sc.CIRCUIT_BREAKER_NAME_LABEL
LEVEL = sc.CIRCUIT_BREAKER_LEVEL_LABEL
PARENT = sc.CIRCUIT_BREAKER_PARENT_LABEL
OUTCOME = sc.CIRCUIT_BREAKER_OUTCOME_LABEL
ERROR_TYPE = sc.ERROR_TYPE_LABEL
PROVIDER = sc.GEN_AI_PROVIDER_NAME_LABEL
MODEL = sc.GEN_AI_REQUEST_MODEL_LABEL
FALLBACK_TYPE = sc.CIRCUIT_BREAKER_FALLBACK_TYPE_LABEL
BY_MODEL = f"{PROVIDER}, {MODEL}"
MODEL_LEGEND = f"{show(PROVIDER)} {show(MODEL)}"

_LEVEL = sc.CircuitBreakerLevelValues
_OUTCOME = sc.CircuitBreakerOutcomeValues
#: The selected providers' breakers.
SELECTED = (
    promql.re(JOB, var(Var.JOB)),
    promql.re(PROVIDER, var(Var.PROVIDER)),
    promql.re(MODEL, var(Var.MODEL)),
)
_COUNTED = promql.one_of(OUTCOME, COUNTED_OUTCOMES)
_ERRORS = promql.one_of(OUTCOME, ERROR_OUTCOMES)


def _leaf(metric: sc.MetricSpec, *matchers: str, suffix: str = "", window: str = RATE_INTERVAL) -> str:
    """``rate(metric[window])`` over the breakers that see each call once: endpoints, and services
    without endpoints (a service with endpoints also counts its endpoints' calls)."""

    def rate(level: sc.CircuitBreakerLevelValues) -> str:
        series = promql.selector(metric, *SELECTED, promql.eq(LEVEL, level), *matchers, suffix=suffix)
        return f"rate({series}[{window}])"

    endpoints = promql.selector(
        sc.METRIC_CIRCUIT_BREAKER_STATE, promql.re(JOB, var(Var.JOB)), promql.eq(LEVEL, _LEVEL.ENDPOINT)
    )
    parents = f'label_replace(group by ({JOB}, {PARENT}) ({endpoints}), "{NAME}", "$1", "{PARENT}", "(.+)")'
    return f"(\n  {rate(_LEVEL.ENDPOINT)}\nor\n  ({rate(_LEVEL.SERVICE)} unless on ({JOB}, {NAME}) {parents})\n)"


def _per_model(expr: str) -> str:
    return f"sum by ({BY_MODEL}) {expr}"


def _availability(window: str) -> str:
    errors = _per_model(_leaf(sc.METRIC_CIRCUIT_BREAKER_CALLS, _ERRORS, window=window))
    counted = _per_model(_leaf(sc.METRIC_CIRCUIT_BREAKER_CALLS, _COUNTED, window=window))
    return f"1 - (\n{ratio(errors, counted)}\n)"


def _quantile(q: float) -> str:
    buckets = _leaf(sc.METRIC_CIRCUIT_BREAKER_CALL_DURATION, suffix="_bucket")
    return f"histogram_quantile({q}, sum by ({BY_MODEL}, {BUCKET_LABEL}) {buckets})"


AVAILABILITY = thresholds("red", (0.95, "orange"), (0.99, "green"))

availability = Section(
    "Availability",
    [
        stat(
            "Availability (range)",
            [target(_availability(RANGE), MODEL_LEGEND, instant=True)],
            unit=Unit.RATIO,
            threshold_steps=AVAILABILITY,
            graph=False,
            decimals=2,
            description="Calls that neither failed nor were rejected, over counted calls (ignored calls, "
            "a caller's bad request, count on neither side), in the dashboard's range.",
        ),
        timeseries(
            "Availability",
            [target(_availability(RATE_INTERVAL), MODEL_LEGEND)],
            unit=Unit.RATIO,
            threshold_steps=AVAILABILITY,
            show_thresholds=True,
            maximum=1,
            description="Calls that neither failed nor were rejected, over counted calls, per provider and model.",
        ),
    ],
    widths=[8, 16],
)

latency = Section(
    "Latency",
    [
        timeseries(
            f"Latency p{round(q * 100)}",
            [target(_quantile(q), MODEL_LEGEND)],
            unit=Unit.SECONDS,
            description="Duration of attempted calls (rejections excluded), interpolated within the buckets.",
        )
        for q in (0.5, 0.95, 0.99)
    ],
)

errors = Section(
    "Rate limits and errors",
    [
        timeseries(
            "Rate-limited share of calls",
            [
                target(
                    ratio(
                        _per_model(
                            _leaf(
                                sc.METRIC_CIRCUIT_BREAKER_CALLS,
                                promql.eq(OUTCOME, _OUTCOME.FAILURE),
                                promql.eq(ERROR_TYPE, RATE_LIMITED_ERROR_TYPE),
                            )
                        ),
                        _per_model(_leaf(sc.METRIC_CIRCUIT_BREAKER_CALLS, _COUNTED)),
                    ),
                    MODEL_LEGEND,
                )
            ],
            unit=Unit.RATIO,
            threshold_steps=thresholds("green", (0.01, "orange"), (0.1, "red")),
            show_thresholds=True,
            minimum=0,
            description=f"Calls the provider answered with 429 (error.type {RATE_LIMITED_ERROR_TYPE}) over counted "
            "calls. A 429 with a retry-after also opens the breaker for that long.",
        ),
        timeseries(
            "Failures by error.type",
            [
                target(
                    f"sum by ({PROVIDER}, {ERROR_TYPE}) "
                    f"{_leaf(sc.METRIC_CIRCUIT_BREAKER_CALLS, promql.eq(OUTCOME, _OUTCOME.FAILURE))}",
                    f"{show(PROVIDER)} {show(ERROR_TYPE)}",
                )
            ],
            unit=Unit.CALLS_PER_SECOND,
            stack=True,
            description="Failed calls per second by provider and error type.",
        ),
    ],
)

traffic = Section(
    "Traffic and fallbacks",
    [
        timeseries(
            "Calls by provider and model",
            [target(_per_model(_leaf(sc.METRIC_CIRCUIT_BREAKER_CALLS, _COUNTED)), MODEL_LEGEND)],
            unit=Unit.CALLS_PER_SECOND,
            stack=True,
            description="Counted calls per second (rejected included): traffic moving to an alternate provider "
            "shows here as one provider's share growing while another's breaker is open.",
        ),
        timeseries(
            "Calls served by alternate providers",
            [
                target(
                    f"sum by ({JOB}, {NAME}, {OUTCOME}) (rate("
                    + promql.selector(
                        sc.METRIC_CIRCUIT_BREAKER_FALLBACKS,
                        promql.re(JOB, var(Var.JOB)),
                        promql.eq(FALLBACK_TYPE, sc.CircuitBreakerFallbackTypeValues.ALTERNATE),
                    )
                    + f"[{RATE_INTERVAL}]))",
                    f"{show(NAME)} → alternate: {show(OUTCOME)}",
                )
            ],
            unit=Unit.CALLS_PER_SECOND,
            stack=True,
            description="Calls a fallback chain sent to an alternate target (another provider, behind its own "
            "breaker), by the breaker whose calls they replaced: success when the alternate answered.",
        ),
    ],
)

_CALLS = sc.METRIC_CIRCUIT_BREAKER_CALLS
_JOBS = promql.re(JOB, var(Var.JOB))
dashboard = new_dashboard(
    loop_names.AI_PROVIDERS,
    description="Generative AI providers and models behind circuit breakers: availability, latency, rate "
    "limits, and traffic sent to alternate providers.",
    variables=[
        query_variable(
            Var.JOB,
            f"label_values({promql.selector(_CALLS, promql.ne(PROVIDER, ''))}, {JOB})",
            label="Job",
            multi=True,
            include_all=True,
        ),
        query_variable(
            Var.PROVIDER,
            f"label_values({promql.selector(_CALLS, _JOBS, promql.ne(PROVIDER, ''))}, {PROVIDER})",
            label="Provider",
            multi=True,
            include_all=True,
            all_value=".+",
        ),
        query_variable(
            Var.MODEL,
            f"label_values({promql.selector(_CALLS, _JOBS, promql.re(PROVIDER, var(Var.PROVIDER)))}, {MODEL})",
            label="Model",
            multi=True,
            include_all=True,
        ),
    ],
    sections=[availability, latency, errors, traffic],
    annotations=[transitions_annotation((promql.re(JOB, var(Var.JOB)), promql.re(PROVIDER, var(Var.PROVIDER))))],
    time_from="now-6h",
)
