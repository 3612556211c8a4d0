"""The breaker chart's queries (breakerpanel.exporter.breaker_panels): what the detail dashboard
and the incident bot's chart share. Their live results are checked against a real Prometheus in
tests/dashboards/test_live.py (the dashboard's) and tests/incident_bot/test_charts.py (the bot's)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from breakerpanel.exporter import promql
from breakerpanel.exporter import semconv as sc
from breakerpanel.exporter.breaker_panels import BreakerPanels
from tests.promql_names import referenced, unknown_names
from tests.servers import run_promtool

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


def test_a_services_calls_are_counted_once_whichever_breaker_turned_them_away(tmp_path: Path) -> None:
    """A service's series count its endpoints' calls too. Calls per second through the service are
    its own series plus what an endpoint open on its own turned away (the service never saw
    those); a call the service turned away counts at the service, and not again as the
    endpoint's ``parent_open``. Evaluated by promtool over counters at known rates (per second):
    the service 8 successes, 5 failures, 6 rejected open; openai.chat the same 8 and 5, and the
    6 as parent_open; openai.embeddings 3 rejected open by itself."""
    calls = sc.METRIC_CIRCUIT_BREAKER_CALLS.prometheus_name

    def series(name: str, outcome: str, per_second: int, reason: str | None = None) -> dict[str, str]:
        labels = {
            "job": "rag",
            sc.CIRCUIT_BREAKER_NAME_LABEL: name,
            sc.CIRCUIT_BREAKER_SERVICE_LABEL: "openai",
            sc.CIRCUIT_BREAKER_OUTCOME_LABEL: outcome,
        }
        if reason is not None:
            labels[sc.CIRCUIT_BREAKER_REJECTION_REASON_LABEL] = reason
        selector = ", ".join(f'{k}="{v}"' for k, v in labels.items())
        return {"series": f"{calls}{{{selector}}}", "values": f"0+{per_second * 60}x20"}

    input_series = [
        series("openai", "success", 8),
        series("openai", "failure", 5),
        series("openai", "rejected", 6, "open"),
        series("openai.chat", "success", 8),
        series("openai.chat", "failure", 5),
        series("openai.chat", "rejected", 6, "parent_open"),
        series("openai.embeddings", "rejected", 3, "open"),
    ]
    service, chat = BreakerPanels("rag", "openai", "5m"), BreakerPanels("rag", "openai.chat", "5m")
    reason = sc.CIRCUIT_BREAKER_REJECTION_REASON_LABEL
    expected = [
        (service.calls_per_second(), [("{}", 22)]),
        (service.rejections_per_second(), [(f'{{{reason}="open"}}', 9)]),
        (chat.calls_per_second(), [("{}", 19)]),
        (chat.rejections_per_second(), [(f'{{{reason}="parent_open"}}', 6)]),
    ]
    test = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": input_series,
                "promql_expr_test": [
                    {
                        "expr": expr,
                        "eval_time": "10m",
                        "exp_samples": [{"labels": labels, "value": value} for labels, value in samples],
                    }
                    for expr, samples in expected
                ],
            }
        ],
    }
    path = tmp_path / "panels.test.yaml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    result = run_promtool("test", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
