"""The incident engine: one incident per breaker, duplicates, flaps, hierarchy, people."""

from __future__ import annotations

from incident_bot.db import incidents
from incident_bot.incidents import Engine

from .conftest import MakeEngine
from .support import (
    AlertSpec,
    ManualClock,
    all_incidents,
    breaker_labels,
    notifications,
    rows,
    store,
    timeline,
    webhook,
)


async def process(engine: Engine, *payloads: dict[str, object]) -> None:
    for payload in payloads:
        await store(engine.db, payload)
    await engine.process_pending()


async def test_an_open_breaker_pages_once_with_a_card(make_engine: MakeEngine) -> None:
    engine, db, _ = await make_engine()
    openai = AlertSpec(breaker_labels("openai"))
    await process(engine, webhook((openai, "firing")))
    (incident,) = await all_incidents(db)
    assert (incident.status, incident.severity, incident.title) == ("open", "critical", "openai (service, rag)")
    assert incident.dedup_key.startswith("breakerpanel/breaker:rag:service:openai/")
    assert await notifications(db) == [(1, "pagerduty", "trigger", "env:PD_KEY"), (1, "slack", "card", "#incidents")]
    assert await timeline(db, 1) == ["opened", "routed"]


async def test_duplicates_and_ha_copies_change_nothing(make_engine: MakeEngine) -> None:
    engine, db, _ = await make_engine()
    openai = AlertSpec(breaker_labels("openai"))
    first = webhook((openai, "firing"))
    ha_copy = {**first, "externalURL": "http://alertmanager-2.example:9093"}
    assert await store(db, first)
    assert not await store(db, first)  # Alertmanager retrying
    assert not await store(db, ha_copy)  # the other member of the pair
    # A later notification of the same group, repeated (repeat_interval): stored, no change.
    await process(engine, {**first, "notification_reason": "repeat interval elapsed", "groupKey": '{}:{x="y"}'})
    assert len(await all_incidents(db)) == 1
    assert len(await notifications(db)) == 2


async def test_every_alert_about_a_breaker_joins_its_incident(make_engine: MakeEngine) -> None:
    engine, db, _ = await make_engine()
    open_alert = AlertSpec(breaker_labels("openai", severity="warning"))
    burn = AlertSpec(breaker_labels("openai", alertname="CircuitBreakerErrorBudgetBurn", severity="critical"))
    await process(engine, webhook((open_alert, "firing")))
    await process(engine, webhook((burn, "firing"), group_key='{}:{alertname="CircuitBreakerErrorBudgetBurn"}'))
    (incident,) = await all_incidents(db)
    assert incident.severity == "critical"  # raised by the second alert
    # Opened as a warning (Slack only); raised to critical, the paging route applies too.
    assert await notifications(db) == [
        (1, "slack", "card", "#breakers"),
        (1, "pagerduty", "trigger", "env:PD_KEY"),
        (1, "slack", "card", "#breakers"),
        (1, "slack", "card", "#incidents"),
        (1, "slack", "reply", "#breakers"),
        (1, "slack", "reply", "#incidents"),
    ]
    assert incident.receivers["routes"] == ["default", "page critical"]


async def test_a_flap_is_folded_and_resolution_waits_for_quiet(make_engine: MakeEngine) -> None:
    engine, db, clock = await make_engine(resolve_after=300)
    first = AlertSpec(breaker_labels("qdrant"))
    await process(engine, webhook((first, "firing")))
    clock.advance(60)
    await process(engine, webhook((first, "resolved")))
    (incident,) = await all_incidents(db)
    assert incident.status == "open"
    assert incident.quiet_since == clock.at
    clock.advance(120)
    await engine.tick()  # 120 s of quiet: not yet
    second = AlertSpec(breaker_labels("qdrant"), starts=3)  # it opened again: a new episode
    await process(engine, webhook((second, "firing")))
    (incident,) = await all_incidents(db)
    assert (incident.status, incident.flaps, incident.quiet_since) == ("open", 1, None)
    clock.advance(60)
    await process(engine, webhook((second, "resolved")))
    clock.advance(299)
    await engine.tick()
    assert (await all_incidents(db))[0].status == "open"
    clock.advance(1)
    outcome = await engine.tick()
    assert outcome.resolved == 1
    (incident,) = await all_incidents(db)
    assert incident.status == "resolved"
    pagerduty = [n for n in await notifications(db) if n[1] == "pagerduty"]
    assert pagerduty == [(1, "pagerduty", "trigger", "env:PD_KEY"), (1, "pagerduty", "resolve", "env:PD_KEY")]
    assert await timeline(db, 1) == ["opened", "routed", "quiet", "flap", "quiet", "resolved"]


async def test_a_late_firing_of_a_resolved_episode_is_stale(make_engine: MakeEngine) -> None:
    engine, db, _ = await make_engine(resolve_after=1)
    alert = AlertSpec(breaker_labels("redis"))
    await process(engine, webhook((alert, "firing")), webhook((alert, "resolved")))
    # The other Alertmanager's copy of the firing, grouped differently, arrives last.
    assert await store(db, webhook((alert, "firing"), group_key='{}:{alertname="Other"}'))
    outcome = await engine.process_pending()
    assert (outcome.stale, outcome.alerts_new, outcome.flaps) == (1, 0, 0)
    (incident,) = await all_incidents(db)
    assert incident.flaps == 0
    assert incident.quiet_since is not None


async def test_an_endpoint_attaches_to_its_open_service_and_pages_when_left_alone(make_engine: MakeEngine) -> None:
    engine, db, clock = await make_engine(resolve_after=60)
    service = AlertSpec(breaker_labels("openai"))
    endpoint = AlertSpec(breaker_labels("openai.chat", level="endpoint", parent="openai"))
    await process(engine, webhook((service, "firing")))
    await process(engine, webhook((endpoint, "firing")))
    parent, child = await all_incidents(db)
    assert (child.status, child.parent_id) == ("attached", parent.id)
    assert list(await notifications(db, child.id)) == []  # no page for the child
    assert (await notifications(db, parent.id))[-1] == (1, "slack", "reply", "#incidents")
    assert "child_attached" in await timeline(db, parent.id)
    # The service recovers, the endpoint still fails: it becomes an incident of its own, and pages.
    await process(engine, webhook((service, "resolved")))
    clock.advance(61)
    await engine.tick()
    parent, child = await all_incidents(db)
    assert parent.status == "resolved"
    assert (child.status, child.parent_id) == ("open", None)
    assert await notifications(db, child.id) == [
        (2, "pagerduty", "trigger", "env:PD_KEY"),
        (2, "slack", "card", "#incidents"),
    ]
    assert await timeline(db, child.id) == ["attached", "promoted", "routed"]


async def test_an_attached_child_that_recovers_first_closes_quietly(make_engine: MakeEngine) -> None:
    engine, db, _ = await make_engine()
    service = AlertSpec(breaker_labels("openai"))
    feature = AlertSpec(
        breaker_labels("answer", level="feature", alertname="CircuitBreakerRejectingTraffic", severity="warning")
    )
    await process(engine, webhook((service, "firing")))
    await process(engine, webhook((feature, "firing")))
    _, child = await all_incidents(db)
    assert child.status == "attached"  # a feature attaches to an open service of its job
    await process(engine, webhook((feature, "resolved")))
    _, child = await all_incidents(db)
    assert child.status == "resolved"
    assert await notifications(db, child.id) == []


async def test_people_acknowledge_and_resolve(make_engine: MakeEngine) -> None:
    engine, db, _ = await make_engine()
    await process(engine, webhook((AlertSpec(breaker_labels("openai")), "firing")))
    assert await engine.acknowledge(1, "<@U1>") == "Incident #1 acknowledged."
    assert await engine.acknowledge(1, "<@U1>") == "Incident #1 is acknowledged: nothing to acknowledge."
    assert await engine.resolve(1, "<@U2>") == "Incident #1 resolved."
    assert await engine.resolve(1, "<@U2>") == "Incident #1 is resolved: it cannot be resolved from here."
    assert await engine.acknowledge(99, "<@U1>") == "Incident #99 does not exist."
    (incident,) = await all_incidents(db)
    assert (incident.acknowledged_by, incident.resolved_by) == ("<@U1>", "<@U2>")
    pagerduty = [n[2] for n in await notifications(db) if n[1] == "pagerduty"]
    assert pagerduty == ["trigger", "acknowledge", "resolve"]


async def test_an_alert_about_no_breaker_is_about_its_instance(make_engine: MakeEngine) -> None:
    engine, db, _ = await make_engine()
    labels = {"alertname": "BreakerMetricsAbsent", "severity": "warning", "job": "rag", "instance": "rag-0:8000"}
    await process(engine, webhook((AlertSpec(labels), "firing")))
    (incident,) = await all_incidents(db)
    assert incident.title == "BreakerMetricsAbsent (rag rag-0:8000)"
    assert incident.identity == "alert:BreakerMetricsAbsent:rag:rag-0:8000"


async def test_a_truncated_notification_is_noted(make_engine: MakeEngine) -> None:
    engine, db, _ = await make_engine()
    await process(engine, webhook((AlertSpec(breaker_labels("openai")), "firing"), truncatedAlerts=3))
    assert "truncated" in await timeline(db, 1)


async def test_a_webhook_that_cannot_be_processed_is_marked_and_skipped(make_engine: MakeEngine) -> None:
    engine, db, _ = await make_engine()
    from incident_bot.db import webhooks

    async with db.transaction() as conn:  # stored by an older version, say: not valid any more
        await conn.execute(webhooks.insert().values(dedupe_key="x", received_at=0.0, payload={"version": "3"}))
    await process(engine, webhook((AlertSpec(breaker_labels("openai")), "firing")))
    bad, good = await rows(db, webhooks)
    assert bad.error is not None
    assert "validation error" in bad.error
    assert good.error is None
    assert good.processed_at is not None
    assert len(await rows(db, incidents)) == 1


def test_manual_clock_is_a_clock() -> None:
    clock = ManualClock(5.0)
    clock.advance(2)
    assert clock() == 7.0
