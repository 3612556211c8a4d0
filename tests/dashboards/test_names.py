"""Every metric and label a dashboard queries exists: in the registry, the recording rules, or
Prometheus itself. Plus the name checker's own tests (tests/promql_names.py)."""

from __future__ import annotations

import pytest

from breakerpanel.exporter import semconv as sc
from tests.promql_names import KNOWN_LABELS, Referenced, known_metrics, referenced, substitute, unknown_names

from .support import RECORDING_RULES, all_expressions


@pytest.mark.parametrize(
    ("board", "where", "expr"),
    [pytest.param(*e, id=f"{e[0].removesuffix('.dashboard.py')}: {e[1]}") for e in all_expressions()],
)
def test_dashboard_queries_use_known_names_only(board: str, where: str, expr: str) -> None:
    assert unknown_names(expr, RECORDING_RULES) == [], f"{board}, {where}:\n{expr}"


def test_the_dashboards_use_every_metric_of_the_registry() -> None:
    used = set().union(*(referenced(expr).metrics for _, _, expr in all_expressions()))
    for spec in sc.METRICS:
        names = {spec.prometheus_name + s for s in ("_bucket", "_sum", "_count")} | {spec.prometheus_name}
        assert used & names, f"no dashboard shows {spec.prometheus_name}"


# ---------------------------------------------------------------------- the checker itself


def test_a_misspelled_metric_is_caught() -> None:
    assert unknown_names("sum(rate(circuit_breaker_cals_total[5m]))") == ["metric circuit_breaker_cals_total"]


def test_a_misspelled_label_is_caught_wherever_it_is() -> None:
    calls = "circuit_breaker_calls_total"
    for expr in (
        f'{calls}{{circuit_breaker_nme="x"}}',
        f"sum by (circuit_breaker_nme) ({calls})",
        f"sum without (circuit_breaker_nme) ({calls})",
        f"{calls} / on (circuit_breaker_nme) {calls}",
        f"{calls} / ignoring (circuit_breaker_nme) {calls}",
        f"{calls} * on (job) group_left (circuit_breaker_nme) {calls}",
        f"{calls} * on (job) group_right (circuit_breaker_nme) {calls}",
        f'label_replace({calls}, "dst", "$1", "circuit_breaker_nme", "(.*)")',
        f'label_join({calls}, "dst", ",", "job", "circuit_breaker_nme")',
        f'{calls}{{job="a" or circuit_breaker_nme="b"}}',
    ):
        assert unknown_names(expr) == ["label circuit_breaker_nme"], expr


def test_known_names_pass() -> None:
    expr = (
        "histogram_quantile(0.9, sum by (le, job) (rate(circuit_breaker_call_duration_seconds_bucket"
        '{circuit_breaker_name="a", instance=~".+"}[5m]))) > 0 and on (job) up'
    )
    assert unknown_names(expr) == []
    assert unknown_names('circuit_breaker:slo_objective:ratio{slo="x"}') == [
        "metric circuit_breaker:slo_objective:ratio"
    ]
    assert unknown_names('circuit_breaker:slo_objective:ratio{slo="x"}', RECORDING_RULES) == []


def test_histogram_suffixes_only_for_histograms() -> None:
    assert "circuit_breaker_recovery_duration_seconds_count" in known_metrics()
    assert "circuit_breaker_calls_total" in known_metrics()
    assert unknown_names("circuit_breaker_calls_total_bucket") == ["metric circuit_breaker_calls_total_bucket"]
    assert unknown_names("circuit_breaker_call_duration_seconds") == ["metric circuit_breaker_call_duration_seconds"]


def test_labels_an_expression_creates_are_allowed_in_it() -> None:
    expr = 'sum by (top) (label_replace(circuit_breaker_state, "top", "$1", "circuit_breaker_parent", "(.+)"))'
    assert referenced(expr) == Referenced(
        metrics=frozenset({"circuit_breaker_state"}),
        labels=frozenset({"top", "circuit_breaker_parent"}),
        created=frozenset({"top"}),
    )
    assert unknown_names(expr) == []
    assert unknown_names('count_values("value", circuit_breaker_state) > on (value) group_left vector(1)') == []
    assert unknown_names("sum by (top) (circuit_breaker_state)") == ["label top"]


def test_grafana_variables_and_variable_queries() -> None:
    assert substitute("rate(x[$__rate_interval]) [[job]] ${datasource} ${job:regex} $1") == "rate(x[5m]) .* .* .* $1"
    assert substitute('x{job=~"$job"}', {"job": "rag"}) == 'x{job=~"rag"}'
    assert unknown_names('label_values(circuit_breaker_state{job=~"$job"}, circuit_breaker_nme)') == [
        "label circuit_breaker_nme"
    ]
    assert unknown_names("label_values(jbo)") == ["label jbo"]
    assert unknown_names('query_result(group by (nme) (circuit_breaker_state{job="$job"}))') == ["label nme"]
    assert unknown_names("metrics(circuit_breaker_.*)") == []
    assert referenced('{__name__="circuit_breaker_state", job="a"}').metrics == {"circuit_breaker_state"}
    assert unknown_names('{__name__=~"circuit_breaker_.+"}') == ['metric __name__=~"circuit_breaker_.+"']


def test_a_syntax_error_names_the_expression() -> None:
    with pytest.raises(ValueError, match=r"sum\(rate"):
        referenced("sum(rate(circuit_breaker_calls_total[5m])")


def test_known_labels_are_the_registry_and_prometheus_ones() -> None:
    assert {sc.CIRCUIT_BREAKER_NAME_LABEL, sc.ERROR_TYPE_LABEL, sc.GEN_AI_REQUEST_MODEL_LABEL} <= KNOWN_LABELS
    assert {"job", "instance", "le", "slo"} <= KNOWN_LABELS
    assert "otel_scope_name" not in KNOWN_LABELS
