"""The bot as a process behind real Alertmanagers (Debian's 0.25), delivering to the PagerDuty and Slack
fakes: alerts become one incident per breaker, paged once with the bot's dedup key, carded once in Slack,
and resolved after ``INCIDENT_BOT_RESOLVE_AFTER`` once Alertmanager says they are over; duplicates
(the same webhook twice, two Alertmanagers) and a flaky PagerDuty or Slack change none of that.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.fakes import FakePagerDuty, FakeSlack
from tests.servers import AlertmanagerServer, ServerPool, wait_until

from .processes import (
    INCIDENTS_CHANNEL,
    ROUTING_KEY,
    WARNINGS_CHANNEL,
    WEBHOOK_TOKEN,
    BotProcess,
    alertmanager_config,
    am_alert,
    card_incident_id,
    cards_by_incident,
    fake_environment,
    pagerduty_triggers,
)
from .support import AlertSpec, breaker_labels, webhook

#: Long enough for every wait here on a busy 2-core machine; the waits end as soon as the condition holds.
TIMEOUT = 30.0


def token_file(directory: Path) -> Path:
    path = directory / "bot-token"
    path.write_text(WEBHOOK_TOKEN + "\n")
    return path


def start_alertmanager(
    pool: ServerPool,
    bot: BotProcess,
    directory: Path,
    *,
    group_by: Sequence[str] = ("alertname",),
    repeat_interval: str = "1h",
) -> AlertmanagerServer:
    """An Alertmanager sending every alert to ``bot`` (group_wait 0s, group_interval 1s)."""
    config = alertmanager_config(bot.url, token_file(directory), group_by=group_by, repeat_interval=repeat_interval)
    return pool.start(AlertmanagerServer(config))


def test_alertmanager_alerts_page_card_and_resolve_through_the_bot(
    server_pool: ServerPool, fake_pagerduty: FakePagerDuty, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    bot = server_pool.start(BotProcess(fake_environment(fake_pagerduty, fake_slack, tmp_path, resolve_after=2)))
    # Small intervals; repeat_interval 2s makes Alertmanager re-send each group while it fires: duplicates
    # the bot must recognise.
    alertmanager = start_alertmanager(server_pool, bot, tmp_path, repeat_interval="2s")
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    openai = breaker_labels("openai")
    openai_burn = breaker_labels("openai", alertname="CircuitBreakerErrorBudgetBurn")
    qdrant = breaker_labels("qdrant")
    redis = breaker_labels("redis", severity="warning")
    alertmanager.post_alerts([am_alert(labels, starts_at=started) for labels in (openai, openai_burn, qdrant, redis)])

    # One incident per breaker, whatever Alertmanager's groups (by alertname: openai is in two of them).
    def all_delivered() -> bool:
        return (
            len(bot.incidents(status="open")) == 3
            and len(fake_pagerduty.open_alerts()) == 2
            and len(cards_by_incident(fake_slack)) == 2
            and len(cards_by_incident(fake_slack, WARNINGS_CHANNEL)) == 1
            and not bot.pending_deliveries()
        )

    wait_until(all_delivered, timeout=TIMEOUT, what="3 incidents: 2 paged and carded, 1 carded")
    incidents = {i["labels"]["circuit_breaker_name"]: i for i in bot.incidents()}
    assert set(incidents) == {"openai", "qdrant", "redis"}
    assert {i["status"] for i in incidents.values()} == {"open"}
    paged = {a.dedup_key: a for a in fake_pagerduty.alerts()}
    assert set(paged) == {incidents["openai"]["dedup_key"], incidents["qdrant"]["dedup_key"]}
    assert {a.routing_key for a in paged.values()} == {ROUTING_KEY}
    assert paged[incidents["openai"]["dedup_key"]].payload["component"] == "openai"
    assert incidents["redis"]["dedup_key"] not in pagerduty_triggers(fake_pagerduty)  # a warning pages nobody
    assert cards_by_incident(fake_slack) == {incidents["openai"]["id"]: 1, incidents["qdrant"]["id"]: 1}
    assert cards_by_incident(fake_slack, WARNINGS_CHANNEL) == {incidents["redis"]["id"]: 1}
    # Both openai alerts in its one incident, both firing.
    openai_alerts = bot.incident(incidents["openai"]["id"])["alerts"]
    assert sorted(a["alertname"] for a in openai_alerts) == ["CircuitBreakerErrorBudgetBurn", "CircuitBreakerOpen"]

    # Alertmanager re-sends every firing group (repeat_interval): the bot stores them as duplicates, and
    # PagerDuty and Slack hear nothing new.
    wait_until(
        lambda: bot.metric("incident_bot_webhooks_duplicate_total") >= 2,
        timeout=TIMEOUT,
        what="Alertmanager's repeated notifications reaching the bot",
    )
    assert pagerduty_triggers(fake_pagerduty) == {
        incidents["openai"]["dedup_key"]: 1,
        incidents["qdrant"]["dedup_key"]: 1,
    }

    # openai is over in Alertmanager (endsAt in the past, same startsAt): its incident goes quiet, then
    # resolves after INCIDENT_BOT_RESOLVE_AFTER; qdrant still fires and stays open.
    ended = datetime.now(UTC) - timedelta(seconds=1)
    alertmanager.post_alerts([am_alert(labels, starts_at=started, ends_at=ended) for labels in (openai, openai_burn)])
    openai_key = incidents["openai"]["dedup_key"]
    wait_until(
        lambda: fake_pagerduty.alert(openai_key).status == "resolved",
        timeout=TIMEOUT,
        what="openai's PagerDuty alert resolved",
    )
    resolved = bot.incident(incidents["openai"]["id"])
    assert resolved["status"] == "resolved"
    kinds = [e["kind"] for e in resolved["timeline"]]
    assert kinds.index("quiet") < kinds.index("resolved")
    quiet_at = next(e["at"] for e in resolved["timeline"] if e["kind"] == "quiet")
    assert resolved["resolved_at"] - quiet_at >= 2.0  # INCIDENT_BOT_RESOLVE_AFTER
    assert {a["status"] for a in resolved["alerts"]} == {"resolved"}

    # The card is updated in place (no new card), and says so.
    def openai_card_resolved() -> bool:
        card = next(m for m in fake_slack.messages(INCIDENTS_CHANNEL) if card_incident_id(m) == resolved["id"])
        return card.text.startswith("Resolved: ") and not bot.pending_deliveries()

    wait_until(openai_card_resolved, timeout=TIMEOUT, what="openai's card updated to Resolved")
    assert cards_by_incident(fake_slack) == {incidents["openai"]["id"]: 1, incidents["qdrant"]["id"]: 1}
    card = next(m for m in fake_slack.messages(INCIDENTS_CHANNEL) if card_incident_id(m) == resolved["id"])
    assert card.edited
    assert not any(b["type"] == "actions" and "Acknowledge" in str(b) for b in card.blocks)
    # The edited card says it resolved (the thread is for what people do: incidents.py, "Few messages").
    assert card.text.startswith("Resolved: "), card.text

    # One trigger and one resolve for openai; qdrant untouched.
    (openai_alert,) = fake_pagerduty.alerts(dedup_key=openai_key)
    assert [e.event_action for e in openai_alert.events] == ["trigger", "resolve"]
    assert fake_pagerduty.alert(incidents["qdrant"]["dedup_key"]).status == "triggered"
    assert bot.incident(incidents["qdrant"]["id"])["status"] == "open"
    assert fake_pagerduty.rejected == []
    assert fake_slack.rejected == []


def test_the_same_webhook_twice_and_two_alertmanagers_give_one_page_and_one_card(
    server_pool: ServerPool, fake_pagerduty: FakePagerDuty, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    bot = server_pool.start(BotProcess(fake_environment(fake_pagerduty, fake_slack, tmp_path)))

    # The same webhook, twice (an Alertmanager retrying after a lost answer).
    payload = webhook((AlertSpec(breaker_labels("anthropic")), "firing"))
    first, second = bot.post_webhook(payload), bot.post_webhook(payload)
    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.json()["duplicate"], second.json()["duplicate"]) == (False, True)
    assert first.json()["webhook_id"] == second.json()["webhook_id"]

    # Two Alertmanagers that do not gossip (independent, not an HA pair: each always sends), given the same
    # alerts, both sending to the one bot.
    alertmanagers = [start_alertmanager(server_pool, bot, tmp_path) for _ in range(2)]
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    alerts = [
        am_alert(breaker_labels("openai"), starts_at=started),
        am_alert(breaker_labels("qdrant"), starts_at=started),
    ]
    for alertmanager in alertmanagers:
        alertmanager.post_alerts(alerts)

    def delivered() -> bool:
        return (
            len(fake_pagerduty.open_alerts()) == 3
            and len(cards_by_incident(fake_slack)) == 3
            and not bot.pending_deliveries()
        )

    wait_until(delivered, timeout=TIMEOUT, what="3 incidents paged and carded")
    # Both Alertmanagers did notify the bot: it got the same alerts twice.
    wait_until(
        lambda: all(_notifications(am) >= 1 for am in alertmanagers),
        timeout=TIMEOUT,
        what="both Alertmanagers notified the bot",
    )

    # ... and recognised the second copy: as a whole webhook (the same notification: the first duplicate
    # is the one posted by hand above) or alert by alert (when the two grouped the alerts differently).
    def second_copy_recognised() -> bool:
        webhooks = bot.metric("incident_bot_webhooks_duplicate_total") - 1
        alerts = bot.metric("incident_bot_alerts_total", effect="duplicates")
        return webhooks >= 1 or alerts >= 2

    wait_until(second_copy_recognised, timeout=TIMEOUT, what="the second Alertmanager's copy seen as a duplicate")

    incidents = bot.incidents()
    assert len(incidents) == 3
    keys = {i["dedup_key"] for i in incidents}
    assert pagerduty_triggers(fake_pagerduty) == dict.fromkeys(keys, 1)  # one trigger each, none twice
    assert {a.dedup_key for a in fake_pagerduty.alerts()} == keys  # one alert each
    assert cards_by_incident(fake_slack) == dict.fromkeys((i["id"] for i in incidents), 1)  # one card each
    assert len(fake_slack.calls_to("chat.postMessage")) == 3  # and nothing else posted


def _notifications(alertmanager: AlertmanagerServer) -> float:
    """Webhook notifications this Alertmanager sent successfully (its own counters)."""
    text = alertmanager.http.get("/metrics").text
    total = failed = 0.0
    for line in text.splitlines():
        if 'integration="webhook"' not in line:
            continue
        if line.startswith("alertmanager_notifications_total"):
            total += float(line.rsplit(" ", 1)[1])
        elif line.startswith("alertmanager_notifications_failed_total"):
            failed += float(line.rsplit(" ", 1)[1])
    return total - failed


def test_pagerduty_429_and_5xx_and_slack_429_delay_but_deliver_everything_once(
    server_pool: ServerPool, fake_pagerduty: FakePagerDuty, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    bot = server_pool.start(BotProcess(fake_environment(fake_pagerduty, fake_slack, tmp_path)))
    alertmanager = start_alertmanager(server_pool, bot, tmp_path, group_by=["circuit_breaker_name"])
    # Each failure also counts against the bot's circuit breaker around PagerDuty, which waits longer after
    # each failed probe (2 s, 4 s, ...): three failures in a row keep this test under 15 s.
    fake_pagerduty.fail_next(1, status=429, retry_after=1)
    fake_pagerduty.fail_next(1, status=503)
    fake_pagerduty.fail_next(1, status=502)
    fake_slack.fail_next(3, status=429, retry_after=1, method="chat.postMessage")
    names = ["openai", "anthropic", "qdrant", "redis"]
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    alertmanager.post_alerts([am_alert(breaker_labels(name), starts_at=started) for name in names])

    def delivered() -> bool:
        return (
            len(fake_pagerduty.open_alerts()) == len(names)
            and len(cards_by_incident(fake_slack)) == len(names)
            and not bot.pending_deliveries()
        )

    wait_until(delivered, timeout=TIMEOUT, what="every incident paged and carded after the faults")
    # The faults were served (they delayed delivery), and nothing got through twice.
    assert sorted(r.status for r in fake_pagerduty.requests if r.outcome == "injected") == [429, 502, 503]
    assert [c.status for c in fake_slack.calls if c.outcome == "injected"] == [429, 429, 429]
    incidents = bot.incidents()
    keys = {i["dedup_key"] for i in incidents}
    assert len(keys) == len(names)
    assert pagerduty_triggers(fake_pagerduty) == dict.fromkeys(keys, 1)
    assert {a.dedup_key for a in fake_pagerduty.alerts()} == keys
    assert cards_by_incident(fake_slack) == dict.fromkeys((i["id"] for i in incidents), 1)
    assert len(fake_pagerduty.requests) == len(fake_pagerduty.events) + 3  # each fault answered once
    assert all(d["status"] == "sent" for i in incidents for d in bot.incident(i["id"])["deliveries"])
