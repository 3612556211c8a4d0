"""What the dashboard tests share: the rendered dashboards, the recording rules' names, and running
every dashboard query against a live Prometheus the way Grafana would (tests/dashboards/test_live.py
against its own, tests/stack/test_e2e.py against the stack's)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from typing import Any

from breakerpanel import dashboards
from breakerpanel.alert_rules.recording import recording_groups
from breakerpanel.exporter.rules_config import RulesConfig, Slo
from tests.promql_names import substitute
from tests.servers import PrometheusAPI, PrometheusAPIError

#: A rules configuration with one SLO, so that the SLO objective rule exists.
TEST_RULES_CONFIG = RulesConfig(
    slos=[
        Slo(
            name="llm",
            target=0.99,
            match={"circuit_breaker.level": "service|endpoint", "gen_ai.provider.name": ".+"},
        )
    ]
)
#: Every name the recording rules record.
RECORDING_RULES = frozenset(
    rule["record"] for group in recording_groups(TEST_RULES_CONFIG) for rule in group["rules"] if "record" in rule
)


@functools.cache
def rendered() -> Mapping[str, dict[str, Any]]:
    """Each dashboard's JSON model by source file name (rendered once per session)."""
    return {path.name: dashboards.render(dashboards.load(path)) for path in dashboards.sources()}


def all_expressions() -> list[tuple[str, str, str]]:
    """``(source file name, where, expression)`` for every query of every dashboard."""
    return [(name, where, expr) for name, board in rendered().items() for where, expr in dashboards.expressions(board)]


# ---------------------------------------------------------------------- Grafana's side

#: Values for Grafana's own variables: a rate window of four scrapes at least, a range that covers
#: the whole test.
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "10m", "__range_s": "600", "__range_ms": "600000"}

_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.*),\s*)?(?P<label>\w+)\)$", re.DOTALL)
_QUERY_RESULT = re.compile(r"^query_result\((?P<expr>.*)\)$", re.DOTALL)


def _options(prometheus: PrometheusAPI, variable: dict[str, Any], values: dict[str, str]) -> list[str]:
    """The options Grafana's Prometheus datasource would list for a query variable."""
    query = substitute(variable["query"], values).strip()
    label_values = _LABEL_VALUES.match(query)
    query_result = _QUERY_RESULT.match(query)
    if label_values:
        params = {"match[]": label_values["selector"]} if label_values["selector"] else None
        texts: list[str] = prometheus.api_get(f"/api/v1/label/{label_values['label']}/values", params)
    elif query_result:
        texts = [
            "{" + ",".join(f'{k}="{v}"' for k, v in r["metric"].items()) + "} " + " ".join(map(str, r["value"]))
            for r in prometheus.query(query_result["expr"])
        ]
    else:
        raise AssertionError(f"variable {variable['name']}: unsupported query {query!r}")
    regex = variable.get("regex") or ""
    if regex:
        pattern = re.compile(regex.strip("/"))
        texts = [m.group(1) for m in map(pattern.search, texts) if m]
    return sorted(set(texts))


def resolve_variables(prometheus: PrometheusAPI, board: dict[str, Any], preferred: Mapping[str, str]) -> dict[str, str]:
    """Each variable's value, resolved in order as Grafana does: ``preferred[name]`` when it is among the
    options of a single-value variable (else the first option), the ``allValue`` of a multi-value one."""
    values = dict(BUILTINS)
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        options = _options(prometheus, variable, values)
        assert options, f"{board['uid']}: variable {variable['name']} has no options: {variable['query']}"
        if variable["includeAll"]:
            values[variable["name"]] = variable["allValue"]
        else:
            choice = preferred.get(variable["name"])
            values[variable["name"]] = choice if choice in options else options[0]
    return values


def panel_queries(board: dict[str, Any]) -> Iterator[tuple[str, str, bool]]:
    """``(where, expr, instant)`` for every panel target and annotation."""
    for panel in (p for row in board["panels"] for p in (row, *row.get("panels", []))):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} target {target['refId']}", target["expr"], target["instant"]
    for annotation in board["annotations"]["list"]:
        yield f"annotation {annotation['name']!r}", annotation["expr"], False


def has_data(result: list[dict[str, Any]]) -> bool:
    return any(series.get("values") or series.get("value") for series in result)


def query_every_dashboard(
    prometheus: PrometheusAPI,
    start: float,
    end: float,
    *,
    preferred: Mapping[str, str],
    no_data_expected: Mapping[tuple[str, str], str],
) -> tuple[list[str], int]:
    """Run every panel target and annotation of every dashboard, its variables resolved: instant queries
    at ``end``, the others over ``start``..``end``. Returns the problems (a query that fails, or returns
    nothing and is not in ``no_data_expected``, keyed by dashboard uid and where) and how many ran."""
    problems: list[str] = []
    ran = 0
    for board in rendered().values():
        values = resolve_variables(prometheus, board, preferred)
        for where, expr, instant in panel_queries(board):
            query = substitute(expr, values)
            try:
                if instant:
                    result = prometheus.query(query, time=end)
                else:
                    result = prometheus.query_range(query, start, end, step=1.0)
            except PrometheusAPIError as error:
                problems.append(f"{board['uid']}, {where}: {error}\n{query}")
                continue
            ran += 1
            if not has_data(result) and (board["uid"], where) not in no_data_expected:
                problems.append(f"{board['uid']}, {where}: no data\n{query}")
    return problems, ran
