"""The incident engine: one incident per breaker, duplicates, flaps, hierarchy, people."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from breakerpanel.incident_bot import incidents as incidents_module
from breakerpanel.incident_bot.alertmanager import Webhook
from breakerpanel.incident_bot.db import incidents, outbox, slack_cards, webhooks
from breakerpanel.incident_bot.incidents import Engine, Outcome

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
    # Opened as a warning (Slack only); raised to critical, the paging route applies too. The
    # card waiting in #breakers will show the raise (one message, not two), no thread replies.
    assert await notifications(db) == [
        (1, "slack", "card", "#breakers"),
        (1, "pagerduty", "trigger", "env:PD_KEY"),
        (1, "slack", "card", "#incidents"),
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
    # Nor a message: the parent's card shows its children when it is next sent.
    assert await notifications(db, parent.id) == [
        (1, "pagerduty", "trigger", "env:PD_KEY"),
        (1, "slack", "card", "#incidents"),
    ]
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
        breaker_labels(
            "answer", level="feature", alertname="CircuitBreakerRejectingTraffic", severity="warning", requires="openai"
        )
    )
    await process(engine, webhook((service, "firing")))
    await process(engine, webhook((feature, "firing")))
    _, child = await all_incidents(db)
    assert child.status == "attached"  # a feature attaches to the open service it requires
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
    from breakerpanel.incident_bot.db import webhooks

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


# --------------------------------------------------------------------------- one incident per root cause


async def test_a_resolve_with_another_starts_at_still_resolves(make_engine: MakeEngine) -> None:
    """Two Prometheus replicas: the firing stored first carries one startsAt, Alertmanager's
    merged resolve the earlier one. The episode is the fingerprint's: it resolves (D1)."""
    engine, db, _ = await make_engine(resolve_after=60)
    later = AlertSpec(breaker_labels("openai"), starts=1)
    earlier = AlertSpec(later.labels, starts=0, fingerprint=later.fingerprint)
    await process(engine, webhook((later, "firing")))
    await process(engine, webhook((earlier, "resolved")))
    (incident,) = await all_incidents(db)
    assert incident.quiet_since is not None  # every alert over: resolving after resolve_after
    # The other replica's firing copy arriving late is stale, not a new episode.
    await process(engine, webhook((earlier, "firing"), group_key='{}:{alertname="Other"}'))
    (incident,) = await all_incidents(db)
    assert (incident.flaps, incident.quiet_since is not None) == (0, True)


async def test_a_new_episode_after_the_end_of_the_last_one_is_a_flap(make_engine: MakeEngine) -> None:
    engine, db, _ = await make_engine(resolve_after=60)
    first = AlertSpec(breaker_labels("openai"), starts=0)
    again = AlertSpec(first.labels, starts=10, fingerprint=first.fingerprint)
    await process(engine, webhook((first, "firing")), webhook((first, "resolved")), webhook((again, "firing")))
    (incident,) = await all_incidents(db)
    assert (incident.flaps, incident.quiet_since) == (1, None)


async def test_a_feature_attaches_to_a_service_it_requires_not_any_service(make_engine: MakeEngine) -> None:
    engine, db, _ = await make_engine()
    redis = AlertSpec(breaker_labels("redis", severity="warning"))
    search = AlertSpec(breaker_labels("search", level="feature", severity="warning", requires="openai,qdrant"))
    qdrant = AlertSpec(breaker_labels("qdrant", severity="warning"))
    await process(engine, webhook((redis, "firing")), webhook((search, "firing")))
    redis_incident, search_incident = await all_incidents(db)
    assert (search_incident.status, search_incident.parent_id) == ("open", None)  # redis explains nothing
    await process(engine, webhook((qdrant, "firing")))
    _, search_incident, qdrant_incident = await all_incidents(db)
    assert (search_incident.status, search_incident.parent_id) == ("attached", qdrant_incident.id)
    assert redis_incident.parent_id is None


async def _delivered(db: Any) -> None:
    """What the outbox holds, sent (as a worker would have by now)."""
    async with db.transaction() as conn:
        await conn.execute(update(outbox).where(outbox.c.status == "pending").values(status="sent"))


async def test_a_child_first_then_its_parent_one_incident_and_one_page(make_engine: MakeEngine) -> None:
    """A feature's user impact (critical) arrives before its provider's alert: it pages on its own.
    When the provider's incident opens it adopts the feature's: the page is the root's now (same
    dedup_key, so PagerDuty updates the alert already out), the root is as urgent as the child,
    and the child's card becomes the root's card. Nobody is paged twice."""
    engine, db, _ = await make_engine()
    degraded = AlertSpec(
        breaker_labels("answer", level="feature", alertname="CircuitBreakerDegraded", requires="openai")
    )
    openai = AlertSpec(breaker_labels("openai", severity="warning"))
    await process(engine, webhook((degraded, "firing")))
    (child,) = await all_incidents(db)
    assert (child.status, child.severity) == ("open", "critical")
    await _delivered(db)  # its page and card are out
    async with db.transaction() as conn:
        await conn.execute(
            insert(slack_cards).values(incident_id=child.id, channel="#incidents", channel_id="C1", ts="1.1")
        )
    await process(engine, webhook((openai, "firing")))
    child, root = await all_incidents(db)
    assert (child.status, child.parent_id) == ("attached", root.id)
    assert (root.status, root.severity, root.dedup_key) == ("open", "critical", child.dedup_key)
    triggers = [n for n in await notifications(db) if n[2] == "trigger"]
    # The root's trigger carries the child's dedup_key: an update of the same PagerDuty alert.
    assert triggers == [
        (child.id, "pagerduty", "trigger", "env:PD_KEY"),
        (root.id, "pagerduty", "trigger", "env:PD_KEY"),
    ]
    # The child's card is the root's now: edited, not a second card.
    async with db.transaction() as conn:
        cards = (await conn.execute(select(slack_cards.c.incident_id, slack_cards.c.ts))).all()
    assert [tuple(c) for c in cards] == [(root.id, "1.1")]
    assert "page_adopted" in await timeline(db, root.id)
    assert "child_attached" in await timeline(db, root.id)


async def test_two_paged_children_adopted_by_their_root_leave_one_page_open(make_engine: MakeEngine) -> None:
    """Two endpoints paged on their own before their service's alert came. The service's incident
    takes over the first page and withdraws the second: a PagerDuty resolve of its dedup_key goes
    out, or that page stays open with nobody to close it (attached incidents send nothing more)."""
    engine, db, _ = await make_engine()
    chat = AlertSpec(breaker_labels("openai.chat", level="endpoint", parent="openai"))
    embeddings = AlertSpec(breaker_labels("openai.embeddings", level="endpoint", parent="openai"))
    await process(engine, webhook((chat, "firing")))
    await _delivered(db)
    await process(engine, webhook((embeddings, "firing")))
    await _delivered(db)  # two pages out, two dedup_keys
    await process(engine, webhook((AlertSpec(breaker_labels("openai")), "firing")))
    first, second, root = await all_incidents(db)
    assert (first.parent_id, second.parent_id, root.dedup_key) == (root.id, root.id, first.dedup_key)
    assert "page_withdrawn" in await timeline(db, second.id)
    assert [n for n in await notifications(db) if n[1] == "pagerduty"] == [
        (first.id, "pagerduty", "trigger", "env:PD_KEY"),
        (second.id, "pagerduty", "trigger", "env:PD_KEY"),
        (second.id, "pagerduty", "resolve", "env:PD_KEY"),
        (root.id, "pagerduty", "trigger", "env:PD_KEY"),
    ]


async def test_a_child_adopted_before_its_notifications_went_out_sends_none(make_engine: MakeEngine) -> None:
    """Both alerts in one evaluation: the child opened first for a moment, its page and card still
    in the outbox. They never go out: the root's say it all."""
    engine, db, _ = await make_engine()
    chat = AlertSpec(breaker_labels("openai.chat", level="endpoint", parent="openai"))
    openai = AlertSpec(breaker_labels("openai", severity="warning"))
    await process(engine, webhook((chat, "firing")), webhook((openai, "firing")))
    child, root = await all_incidents(db)
    assert (child.status, child.parent_id, root.severity) == ("attached", root.id, "critical")
    assert await notifications(db) == [
        (root.id, "pagerduty", "trigger", "env:PD_KEY"),
        (root.id, "slack", "card", "#incidents"),
    ]


async def test_a_critical_child_raises_its_root_and_pages_through_it(make_engine: MakeEngine) -> None:
    engine, db, _ = await make_engine()
    openai = AlertSpec(breaker_labels("openai", severity="warning"))
    degraded = AlertSpec(
        breaker_labels("answer", level="feature", alertname="CircuitBreakerDegraded", requires="openai")
    )
    await process(engine, webhook((openai, "firing")), webhook((degraded, "firing")))
    root, child = await all_incidents(db)
    assert (child.status, child.parent_id) == ("attached", root.id)
    assert root.severity == "critical"
    assert [n for n in await notifications(db) if n[1] == "pagerduty"] == [
        (root.id, "pagerduty", "trigger", "env:PD_KEY")
    ]
    assert await notifications(db, child.id) == []


async def test_alerts_joining_flapping_and_going_quiet_send_nothing_to_slack(make_engine: MakeEngine) -> None:
    """Slack gets the card when the incident opens and an edit when it resolves (D3: nothing per
    alert, so 50 instances of one breaker's alerts are one card, not a queue of replies)."""
    engine, db, clock = await make_engine(resolve_after=60)
    instances = [AlertSpec(breaker_labels("qdrant", severity="warning") | {"instance": f"rag-{i}"}) for i in range(50)]
    await process(engine, webhook(*((spec, "firing") for spec in instances)))
    assert await notifications(db) == [(1, "slack", "card", "#breakers")]
    await process(engine, webhook(*((spec, "resolved") for spec in instances)))
    again = AlertSpec(instances[0].labels, starts=10, fingerprint=instances[0].fingerprint)
    await process(engine, webhook((again, "firing")), webhook((again, "resolved")))
    assert await notifications(db) == [(1, "slack", "card", "#breakers")]  # the card waiting covers it
    clock.advance(61)
    await engine.tick()
    assert await notifications(db) == [(1, "slack", "card", "#breakers")]  # still one pending refresh
    assert (await all_incidents(db))[0].status == "resolved"


async def test_a_large_webhook_is_processed_in_short_transactions(
    make_engine: MakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """D4: each transaction handles at most CHUNK alerts, so intake and reads get the database
    between them; a webhook cut short by a crash is processed again from the start harmlessly."""
    monkeypatch.setattr(incidents_module, "CHUNK", 10)
    engine, db, _ = await make_engine()
    specs = [AlertSpec(breaker_labels(f"b{i}", severity="warning")) for i in range(35)]
    opened = 0
    real = db.transaction

    @contextlib.asynccontextmanager
    async def counting() -> AsyncIterator[Any]:
        nonlocal opened
        opened += 1
        async with real() as conn:
            yield conn

    monkeypatch.setattr(db, "transaction", counting)
    await process(engine, webhook(*((spec, "firing") for spec in specs)))
    assert len(await all_incidents(db)) == 35
    assert opened >= 35 // 10 + 1 + 2  # four chunks, plus finding and marking the webhook
    # Processing the same alerts again (a crash before the webhook was marked) changes nothing.
    again = Outcome()
    await engine._process(Webhook.model_validate(webhook(*((spec, "firing") for spec in specs))), again)
    assert (again.duplicates, again.alerts_new, len(await all_incidents(db))) == (35, 0, 35)


async def test_an_endpoint_that_tripped_before_its_service_gathers_the_features_then_hands_all_over(
    make_engine: MakeEngine,
) -> None:
    """Half of OpenAI's calls failing: openai.embeddings trips first, then the search feature
    (it requires openai), then the openai service. One incident throughout: the feature attaches
    to the endpoint's, and the service's adopts both, one level deep."""
    engine, db, _ = await make_engine()
    embeddings = AlertSpec(breaker_labels("openai.embeddings", level="endpoint", parent="openai", severity="warning"))
    search = AlertSpec(breaker_labels("search", level="feature", severity="warning", requires="openai,qdrant"))
    openai = AlertSpec(breaker_labels("openai", severity="warning"))
    await process(engine, webhook((embeddings, "firing")), webhook((search, "firing")))
    first, feature = await all_incidents(db)
    assert (feature.status, feature.parent_id) == ("attached", first.id)
    await process(engine, webhook((openai, "firing")))
    first, feature, root = await all_incidents(db)
    assert (root.status, root.parent_id) == ("open", None)
    assert {(i.status, i.parent_id) for i in (first, feature)} == {("attached", root.id)}
    # One card for the whole fault: the endpoint's, not yet sent, was the only one queued before.
    assert [n for n in await notifications(db) if n[1] == "slack"] == [(root.id, "slack", "card", "#breakers")]


def _ended(payload: dict[str, Any], minutes: int) -> dict[str, Any]:
    """``payload`` with its alerts ending ``minutes`` after they started."""
    for alert in payload["alerts"]:
        starts = datetime.fromisoformat(alert["startsAt"].replace("Z", "+00:00"))
        alert["endsAt"] = (starts + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
    return payload


async def test_a_late_resolve_of_an_earlier_episode_leaves_the_current_one_firing(make_engine: MakeEngine) -> None:
    # Before, the late copy resolved the newest episode: its page closed while it fired on.
    engine, db, clock = await make_engine(resolve_after=60)
    first = AlertSpec(breaker_labels("openai"), starts=0)
    second = AlertSpec(first.labels, starts=30, fingerprint=first.fingerprint)
    await process(engine, webhook((first, "firing")), _ended(webhook((first, "resolved")), 10))
    clock.advance(61)
    await engine.tick()
    await process(engine, webhook((second, "firing")))
    late = _ended(webhook((first, "resolved"), group_key='{}:{alertname="Other"}'), 10)
    assert await store(db, late)
    outcome = await engine.process_pending()
    assert (outcome.stale, outcome.alerts_resolved) == (1, 0)
    clock.advance(61)
    await engine.tick()
    old, current = await all_incidents(db)
    assert (old.status, current.status, current.quiet_since) == ("resolved", "open", None)
    assert [n[2] for n in await notifications(db, current.id) if n[1] == "pagerduty"] == ["trigger"]


async def test_a_firing_that_arrives_after_its_resolve_is_stale(make_engine: MakeEngine) -> None:
    # The resolve got through first (the firing's notification was retried, or came from the
    # other Alertmanager). Before, the firing opened an incident and a page that Alertmanager,
    # having sent the resolve, never closed.
    engine, db, _ = await make_engine(resolve_after=60)
    alert = AlertSpec(breaker_labels("openai"))
    await process(engine, webhook((alert, "resolved")))
    assert await store(db, webhook((alert, "firing"), group_key='{}:{alertname="Other"}'))
    outcome = await engine.process_pending()
    assert (outcome.stale, outcome.alerts_new, outcome.opened) == (1, 0, 0)
    assert await all_incidents(db) == []
    assert await notifications(db) == []
    # A new episode of the same alert still opens an incident.
    again = AlertSpec(alert.labels, starts=90, fingerprint=alert.fingerprint)
    await process(engine, webhook((again, "firing")))
    (incident,) = await all_incidents(db)
    assert incident.status == "open"


async def test_a_child_promoted_when_its_root_resolves_keeps_the_page_the_root_took_over(
    make_engine: MakeEngine,
) -> None:
    # The root's resolve and the child's trigger of one dedup_key belong to two incidents, whose
    # deliveries the outbox does not order: PagerDuty could hear the resolve last, and the firing
    # endpoint had no page. The root now resolves nothing of it: the child's trigger updates it.
    engine, db, clock = await make_engine(resolve_after=60)
    chat = AlertSpec(breaker_labels("openai.chat", level="endpoint", parent="openai"))
    openai = AlertSpec(breaker_labels("openai"))
    await process(engine, webhook((chat, "firing")))
    await _delivered(db)
    await process(engine, webhook((openai, "firing")))
    await _delivered(db)
    await process(engine, webhook((openai, "resolved")))
    clock.advance(61)
    await engine.tick()
    child, root = await all_incidents(db)
    assert (root.status, child.status, child.parent_id) == ("resolved", "open", None)
    assert child.dedup_key == root.dedup_key
    pending = [
        (o.incident_id, o.action) for o in await rows(db, outbox) if o.status == "pending" and o.target == "pagerduty"
    ]
    assert pending == [(child.id, "trigger")]
    assert "promoted" in await timeline(db, child.id)


async def test_a_late_firing_with_a_later_starts_at_than_its_resolve_is_stale(make_engine: MakeEngine) -> None:
    # The resolve (Alertmanager's merge of two Prometheus replicas: the earlier startsAt) came
    # first; the other replica's firing copy, a minute later, opened an incident and a page.
    engine, db, _ = await make_engine(resolve_after=60)
    merged = AlertSpec(breaker_labels("openai"), starts=0)
    replica = AlertSpec(merged.labels, starts=1, fingerprint=merged.fingerprint)
    await process(engine, _ended(webhook((merged, "resolved")), 60))
    assert await store(db, webhook((replica, "firing"), group_key='{}:{alertname="Other"}'))
    outcome = await engine.process_pending()
    assert (outcome.stale, outcome.opened) == (1, 0)
    assert await notifications(db) == []


def _manual(state: str, *, starts: int, instance: str = "rag-0:8000") -> AlertSpec:
    """A CircuitBreakerManualState alert of qdrant (the state is a label: each state its own alert)."""
    labels = breaker_labels("qdrant", alertname="CircuitBreakerManualState", severity="info")
    return AlertSpec(labels | {"circuit_breaker_state": state, "instance": instance}, starts=starts)


async def _messages(engine: Engine) -> list[str]:
    return [r.payload["text"] for r in await rows(engine.db, outbox) if r.action == "message"]


async def test_a_switch_between_manual_states_is_not_back_to_automatic(make_engine: MakeEngine) -> None:
    engine, _, _ = await make_engine()
    forced = _manual("forced_open", starts=-20)
    await process(engine, webhook((forced, "firing"), group_key="manual"))
    # A person switches straight to disabled: Alertmanager 0.25 sends the new state first.
    disabled = _manual("disabled", starts=0)
    await process(engine, webhook((disabled, "firing"), (forced, "resolved"), group_key="manual"))
    assert await _messages(engine) == [
        ":wrench: qdrant (service, rag) put in forced_open by hand on rag-0:8000.",
        ":wrench: qdrant (service, rag) put in disabled by hand on rag-0:8000.",
    ]
    # And back, in the other order: the new state fires in the same notification.
    forced_again = _manual("forced_open", starts=70)
    await process(engine, webhook((disabled, "resolved"), (forced_again, "firing"), group_key="manual"))
    assert (await _messages(engine))[2:] == [":wrench: qdrant (service, rag) put in forced_open by hand on rag-0:8000."]
    # The last manual state on rag-0 ends: back to automatic there, whatever another instance does.
    elsewhere = _manual("disabled", starts=80, instance="rag-1:8000")
    await process(engine, webhook((forced_again, "resolved"), (elsewhere, "firing"), group_key="manual"))
    assert (await _messages(engine))[3:] == [
        ":wrench: qdrant (service, rag) back to automatic (was forced_open) on rag-0:8000.",
        ":wrench: qdrant (service, rag) put in disabled by hand on rag-1:8000.",
    ]
    changes = [(r.action, r.destination) for r in await rows(engine.db, outbox)]
    assert changes == [("message", "#breakers")] * 5  # no PagerDuty route for info here


async def test_a_webhook_met_by_a_database_that_went_away_is_processed_again(
    make_engine: MakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dropped connection or a lock timeout while a webhook is processed is not the webhook's
    fault: it stays unprocessed, and the next pass pages. Marked as failed, its alert never paged,
    though Alertmanager had its 200. A webhook that cannot be processed is still marked."""
    engine, db, _ = await make_engine()
    firing = engine._firing
    failures = [OperationalError("UPDATE alerts", {}, Exception("server closed the connection unexpectedly"))]

    async def flaky(*args: Any) -> int | None:
        if failures:
            raise failures.pop()
        return await firing(*args)

    monkeypatch.setattr(engine, "_firing", flaky)
    assert await store(db, webhook((AlertSpec(breaker_labels("openai")), "firing")))
    await engine.process_pending()  # the database goes away
    ((processed_at, error),) = [(w.processed_at, w.error) for w in await rows(db, webhooks)]
    assert (processed_at, error) == (None, None)
    await engine.process_pending()  # and is back
    (incident,) = await all_incidents(db)
    assert [n for n in await notifications(db) if n[1] == "pagerduty"] == [
        (incident.id, "pagerduty", "trigger", "env:PD_KEY")
    ]
    # A webhook that cannot be processed (a bug: an integrity error; a query SQLite cannot run,
    # which it reports as an OperationalError too) is marked and skipped: it holds up no other.
    failures.append(IntegrityError("INSERT INTO alerts", {}, Exception("duplicate key")))
    assert await store(db, webhook((AlertSpec(breaker_labels("qdrant")), "firing")))
    failures.append(OperationalError("SELECT nocol", {}, sqlite3.OperationalError("no such column: nocol")))
    assert await store(db, webhook((AlertSpec(breaker_labels("redis")), "firing")))
    await engine.process_pending()
    first, second, third = await rows(db, webhooks)
    assert first.error is None
    assert None not in (second.processed_at, third.processed_at)
    assert third.error.startswith("IntegrityError: (builtins.Exception) duplicate key")
    assert second.error.startswith("OperationalError: (sqlite3.OperationalError) no such column")
    # SQLite's busy database is the database being away.
    failures.append(OperationalError("UPDATE alerts", {}, sqlite3.OperationalError("database is locked")))
    assert await store(db, webhook((AlertSpec(breaker_labels("postgres")), "firing")))
    await engine.process_pending()
    assert [w.processed_at for w in await rows(db, webhooks)][-1] is None
    await engine.process_pending()
    assert len(await all_incidents(db)) == 2  # openai, then postgres; qdrant and redis met bugs
