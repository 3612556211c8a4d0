"""What the dashboard tests share: the rendered dashboards and the recording rules' names."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import dashboards
from alert_rules.config import RulesConfig, Slo
from alert_rules.recording import recording_groups

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
