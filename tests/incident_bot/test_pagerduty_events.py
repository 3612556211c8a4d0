"""What a PagerDuty event says, built from an incident as the outbox hands it over."""

from __future__ import annotations

import json
from typing import Any

from breakerpanel.incident_bot.delivery import FiringAlert, IncidentView
from breakerpanel.incident_bot.enrich import Figures
from breakerpanel.incident_bot.pagerduty import trigger_event
from breakerpanel.incident_bot.slack import card_blocks
from breakerpanel.incident_bot.vocabulary import IncidentStatus

from .support import breaker_labels

#: What Prometheus answers the live figures' queries (instant vectors; values are Go's float64 text).
ANSWERS = {
    "circuit_breaker_failure_rate{": "0.30000000000000004",
    "circuit_breaker_failure_rate_threshold": "0.5",
    "increase(circuit_breaker_transitions_total": "4.067796610169491",  # 4 transitions, extrapolated over 1h
    "rate(circuit_breaker_fallbacks_total": "0.016666666666666666",  # 5 fallbacks in 5m
}


class AnsweringPrometheus:
    """Answers each figure's query as Prometheus does (see :data:`ANSWERS`); the state: open."""

    async def query(self, expr: str, *, request_timeout: float | None = None) -> list[dict[str, Any]]:
        if expr.startswith("max by"):
            return [{"metric": {"circuit_breaker_state": "open"}, "value": [1.8e9, "1"]}]
        for start, value in sorted(ANSWERS.items(), key=lambda answer: -len(answer[0])):
            if start in expr:
                return [{"metric": {}, "value": [1.8e9, value]}]
        return []


def _view(figures: dict[str, float | str]) -> IncidentView:
    labels = breaker_labels("openai")
    return IncidentView(
        id=1,
        title="openai (service, rag)",
        dedup_key="k",
        status=IncidentStatus.OPEN,
        severity="critical",
        labels=labels,
        annotations={},
        opened_at=1.8e9,
        quiet_since=None,
        resolved_at=None,
        flaps=0,
        acknowledged_by=None,
        resolved_by=None,
        firing=[FiringAlert("CircuitBreakerOpen", "critical", "openai is open.", labels, {}, "")],
        figures=figures,
    )


async def test_live_figures_reach_pagerduty_rounded_as_the_card_shows_them() -> None:
    figures = await Figures(AnsweringPrometheus()).for_breaker(breaker_labels("openai"))  # type: ignore[arg-type]
    view = _view(figures)
    details = trigger_event(view)["payload"]["custom_details"]
    shown = {key: details[key] for key in figures}
    assert shown == {
        "failure_rate": 0.3,
        "failure_rate_threshold": 0.5,
        "transitions_1h": 4,
        "fallbacks_served_per_s": 0.0167,
        "state": "open",
    }
    assert isinstance(shown["transitions_1h"], int)  # a count, as the card's "4"
    card = [field["text"] for field in card_blocks(view)[1]["fields"]]
    assert "*Failure rate*\n30% (threshold 50%)" in card
    assert "*Transitions (1h)*\n4" in card


def test_a_figure_with_no_json_form_is_left_out_of_the_page() -> None:
    """NaN (a ratio of no calls) is not JSON: the client would refuse the whole page."""
    details = trigger_event(_view({"failure_rate": float("nan"), "state": "open"}))["payload"]["custom_details"]
    assert "failure_rate" not in details
    assert details["state"] == "open"
    json.dumps(details, allow_nan=False)
