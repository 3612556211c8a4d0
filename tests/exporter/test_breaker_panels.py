"""The breaker chart's queries (breakerpanel.exporter.breaker_panels): what the detail dashboard
and the incident bot's chart share. Their live results are checked against a real Prometheus in
tests/dashboards/test_live.py (the dashboard's) and tests/incident_bot/test_charts.py (the bot's)."""

from __future__ import annotations

import pytest

from breakerpanel.exporter import promql
from breakerpanel.exporter import semconv as sc
from breakerpanel.exporter.breaker_panels import BreakerPanels
from tests.promql_names import referenced, unknown_names

#: Each query, and the series it reads.
QUERIES = {
    "state": sc.METRIC_CIRCUIT_BREAKER_STATE,
    "children_state": sc.METRIC_CIRCUIT_BREAKER_STATE,
    "failure_rate": sc.METRIC_CIRCUIT_BREAKER_FAILURE_RATE,
    "failure_rate_threshold": sc.METRIC_CIRCUIT_BREAKER_FAILURE_RATE_THRESHOLD,
    "slow_call_rate": sc.METRIC_CIRCUIT_BREAKER_SLOW_CALL_RATE,
    "slow_call_rate_threshold": sc.METRIC_CIRCUIT_BREAKER_SLOW_CALL_RATE_THRESHOLD,
    "calls_per_second": sc.METRIC_CIRCUIT_BREAKER_CALLS,
    "rejections_per_second": sc.METRIC_CIRCUIT_BREAKER_CALLS,
}


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize(
    "panels",
    [BreakerPanels("rag", "openai.chat", "1m"), BreakerPanels("$job", "$breaker", "$__rate_interval", variables=True)],
    ids=["concrete", "variables"],
)
def test_every_query_parses_and_names_only_what_the_exporter_emits(panels: BreakerPanels, query: str) -> None:
    expr = getattr(panels, query)()
    assert unknown_names(expr) == []
    assert referenced(expr).metrics == {QUERIES[query].prometheus_name}


def test_a_concrete_name_is_matched_literally_a_variable_as_grafana_substitutes_it() -> None:
    concrete = BreakerPanels("rag", "openai.chat", "1m").children_state()
    assert promql.re(sc.CIRCUIT_BREAKER_REQUIRES_LABEL, r"(.+,)?openai\.chat(,.+)?") in concrete
    assert promql.eq(sc.CIRCUIT_BREAKER_SERVICE_LABEL, "openai.chat") in concrete
    variable = BreakerPanels("$job", "$breaker", "$__rate_interval", variables=True).children_state()
    assert promql.re(sc.CIRCUIT_BREAKER_REQUIRES_LABEL, "(.+,)?$breaker(,.+)?") in variable


def test_quotes_in_a_name_cannot_break_out_of_the_matcher() -> None:
    expr = BreakerPanels("rag", 'x"} or vector(1) or {a="', "1m").calls_per_second()
    assert referenced(expr).metrics == {sc.METRIC_CIRCUIT_BREAKER_CALLS.prometheus_name}


@pytest.mark.parametrize("field", ["job", "name", "rate_window"])
def test_an_empty_breaker_is_refused_with_the_field_named(field: str) -> None:
    values = {"job": "rag", "name": "openai", "rate_window": "1m"} | {field: ""}
    with pytest.raises(ValueError, match=f"{field} must not be empty"):
        BreakerPanels(**values)
