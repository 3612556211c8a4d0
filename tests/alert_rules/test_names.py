"""Every metric and label the rules, their annotations and the runbooks' queries reference exists:
in the registry, among the recording rules, or among what Prometheus adds itself."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from breakerpanel.alert_rules import RULES_FILE
from tests.promql_names import KNOWN_LABELS, unknown_names

ROOT = Path(__file__).resolve().parents[2]
PROMQL_FENCE = re.compile(r"^```promql\n(.*?)^```", re.S | re.M)


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES_FILE.read_text())["groups"] for rule in group["rules"]]


RECORDED = {rule["record"] for rule in rules() if "record" in rule}


def rule_id(rule: dict[str, Any]) -> str:
    return rule.get("record") or f"{rule['alert']}-{rule['labels']['severity']}"


@pytest.mark.parametrize("rule", rules(), ids=rule_id)
def test_rule_expressions_use_known_names(rule: dict[str, Any]) -> None:
    assert unknown_names(rule["expr"], RECORDED) == []


@pytest.mark.parametrize("rule", [r for r in rules() if "alert" in r], ids=rule_id)
def test_annotation_templates_use_known_labels(rule: dict[str, Any]) -> None:
    used = {m for text in rule["annotations"].values() for m in re.findall(r"\$labels\.(\w+)", text)}
    assert used, "annotations should name what fired"
    assert used - KNOWN_LABELS == set()


def test_a_misspelled_name_in_a_rule_is_caught() -> None:
    expr = next(r["expr"] for r in rules() if r.get("alert") == "CircuitBreakerFlapping")
    assert unknown_names(expr.replace("circuit_breaker_transitions_total", "circuit_breaker_transition_total"))
    assert unknown_names(expr.replace("circuit_breaker_previous_state", "circuit_breaker_prev_state"))


def runbook_queries() -> list[tuple[str, str]]:
    return [
        (f"{path.name}#{index}", match.group(1))
        for path in sorted((ROOT / "docs" / "runbooks").glob("*.md"))
        for index, match in enumerate(PROMQL_FENCE.finditer(path.read_text()))
    ]


def test_runbooks_have_queries() -> None:
    assert len(runbook_queries()) >= 8


@pytest.mark.parametrize(("where", "query"), runbook_queries(), ids=[w for w, _ in runbook_queries()])
def test_runbook_queries_use_known_names(where: str, query: str) -> None:
    assert unknown_names(query, RECORDED) == []
