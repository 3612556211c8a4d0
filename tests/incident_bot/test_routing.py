"""Routes see the incident as it is paged: its severity normalised before matching."""

from __future__ import annotations

import pytest

from breakerpanel.incident_bot.routing import incident_labels

from .conftest import MakeEngine
from .support import AlertSpec, all_incidents, breaker_labels, notifications, store, webhook


@pytest.mark.parametrize("severity", ["PAGE", "page", "Critical", "CRITICAL"])
async def test_a_severity_that_becomes_critical_takes_the_critical_route(
    make_engine: MakeEngine, severity: str
) -> None:
    """``severity: PAGE`` makes a critical incident: the route that pages critical incidents pages it."""
    engine, db, _ = await make_engine()
    await store(db, webhook((AlertSpec(breaker_labels("openai", severity=severity)), "firing")))
    await engine.process_pending()
    (incident,) = await all_incidents(db)
    assert incident.severity == "critical"
    assert incident.receivers["routes"] == ["page critical"]
    assert (1, "pagerduty", "trigger", "env:PD_KEY") in await notifications(db)


def test_routes_see_the_incident_severity() -> None:
    assert incident_labels({"severity": "PAGE"})["severity"] == "critical"
    assert incident_labels({"severity": "Warning"})["severity"] == "warning"
    assert incident_labels({})["severity"] == "warning"  # as the incident has it
