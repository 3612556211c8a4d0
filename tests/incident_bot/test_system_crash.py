"""The bot (SQLite) killed with SIGKILL while its outbox delivers a burst of incidents, then restarted on
the same database: every incident still reaches PagerDuty and Slack, each breaker with one dedup key.

Delivery is at least once: a notification sent just before the kill, whose success the bot had not yet
committed, is sent again after the restart. For PagerDuty that is harmless (a trigger with the same dedup
key joins the same alert); for Slack it is a second card, which the test counts and bounds.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.fakes import FakePagerDuty, FakeSlack
from tests.servers import ServerPool, wait_until

from .processes import BotProcess, cards_by_incident, fake_environment, pagerduty_triggers
from .support import AlertSpec, breaker_labels, webhook

BREAKERS = [f"dependency-{i:02d}" for i in range(40)]
TIMEOUT = 40.0
#: The bot's Slack pace, per channel (INCIDENT_BOT_SLACK_MESSAGES_PER_SECOND): 40 cards take about 10 s,
#: which leaves time to kill it half-way.
SLACK_PER_SECOND = 4
#: The outbox claims Slack items only as its pace allows: at most this many (the pacer's burst) are in
#: flight for one channel at any moment, so at most this many can be sent and not yet recorded when the
#: bot dies, and be sent again after the restart.
SLACK_IN_FLIGHT_MAX = 3


def _post(bot: BotProcess, payload: dict[str, object]) -> httpx.Response:
    return bot.post_webhook(payload)


def test_killed_mid_delivery_and_restarted_everything_arrives_with_one_dedup_key_per_breaker(
    server_pool: ServerPool,
    fake_pagerduty: FakePagerDuty,
    fake_slack: FakeSlack,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    env = fake_environment(
        fake_pagerduty,
        fake_slack,
        tmp_path,
        slack_messages_per_second=SLACK_PER_SECOND,
        pagerduty_events_per_minute=240,  # 4 a second after a burst of 10
        claim_timeout=3,  # what the dead process had claimed is taken again 3 s after the restart
    )
    bot = server_pool.start(BotProcess(env))
    payloads = [
        webhook((AlertSpec(breaker_labels(name)), "firing"), group_key=f'{{}}:{{circuit_breaker_name="{name}"}}')
        for name in BREAKERS
    ]

    # The burst: 40 webhooks at once. Each 200 means stored and committed.
    with ThreadPoolExecutor(max_workers=len(payloads)) as pool:
        answers = list(pool.map(lambda p: _post(bot, p), payloads))
    assert [a.status_code for a in answers] == [200] * len(payloads)
    assert not any(a.json()["duplicate"] for a in answers)

    # Kill it while the outbox is half-way through the cards (the Slack pace holds it back), at the worst
    # moment: the instant the fake Slack has recorded the 8th card, before its answer reaches the bot. That
    # card is posted and claimed but not recorded as sent: after the restart the claim expires
    # (INCIDENT_BOT_CLAIM_TIMEOUT) and the card is posted again.
    fake_slack.wait_for_calls(8, method="chat.postMessage", timeout=TIMEOUT)
    bot.kill()
    cards_at_kill = sum(cards_by_incident(fake_slack).values())
    pages_at_kill = len(fake_pagerduty.open_alerts())
    assert cards_at_kill < len(BREAKERS), "killed too late: every card was out already"

    bot.restart()  # same port, same SQLite file
    # Alertmanager re-sending after the crash (it would, for any webhook it got no answer to): nothing new.
    again = [bot.post_webhook(p) for p in payloads]
    assert all(a.status_code == 200 and a.json()["duplicate"] for a in again)

    def everything_delivered() -> bool:
        return (
            len(fake_pagerduty.open_alerts()) == len(BREAKERS)
            and len(cards_by_incident(fake_slack)) == len(BREAKERS)
            and not bot.pending_deliveries()
        )

    wait_until(everything_delivered, timeout=TIMEOUT, what="every incident paged and carded after the restart")

    incidents = bot.incidents()
    assert sorted(i["labels"]["circuit_breaker_name"] for i in incidents) == BREAKERS  # one per breaker
    keys = {i["dedup_key"] for i in incidents}
    assert len(keys) == len(BREAKERS)

    # PagerDuty: one open alert per breaker, one alert per dedup key, and never two keys for one breaker.
    # A trigger may repeat (same key: PagerDuty folds it into the alert); that is the at-least-once window.
    assert {a.dedup_key for a in fake_pagerduty.open_alerts()} == keys
    assert len(fake_pagerduty.alerts()) == len(BREAKERS)
    keys_by_breaker: dict[str, set[str]] = defaultdict(set)
    for event in fake_pagerduty.alert_events:
        if event.event_action == "trigger":
            assert event.dedup_key is not None
            keys_by_breaker[event.payload["component"]].add(event.dedup_key)
    assert {breaker: len(k) for breaker, k in keys_by_breaker.items()} == dict.fromkeys(BREAKERS, 1)
    repeated_triggers = sum(n - 1 for n in pagerduty_triggers(fake_pagerduty).values())

    # Slack: every incident has its card. A card posted in the instant between Slack's answer and the
    # commit that records it is posted again after the restart: at most what was in flight at the kill.
    cards = cards_by_incident(fake_slack)
    assert set(cards) == {i["id"] for i in incidents}
    duplicate_cards = sum(n - 1 for n in cards.values())
    record_property("cards_at_kill", cards_at_kill)
    record_property("pages_at_kill", pages_at_kill)
    record_property("duplicate_cards", duplicate_cards)
    record_property("repeated_triggers", repeated_triggers)
    print(
        f"at kill: {cards_at_kill} cards, {pages_at_kill} pages; after restart: "
        f"{duplicate_cards} duplicate card(s), {repeated_triggers} repeated trigger(s)"
    )
    assert duplicate_cards <= SLACK_IN_FLIGHT_MAX
    assert fake_slack.rejected == []
    assert fake_pagerduty.rejected == []
