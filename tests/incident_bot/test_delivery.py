"""The outbox delivering to PagerDuty and Slack, through the real clients, against the fakes:
the events and cards they get, and everything delivered once when they fail and recover."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import update

from breakerpanel import ManualClock as PaceClock
from breakerpanel.guards import RateLimiter, RateLimitPolicy
from breakerpanel.incident_bot.db import Database, outbox
from breakerpanel.incident_bot.delivery import Delivered, DeliveryError, IncidentView, Item, Sender
from breakerpanel.incident_bot.metrics import BotMetrics
from breakerpanel.incident_bot.outbox import OutboxWorker, WorkerConfig, reschedule_wait
from breakerpanel.incident_bot.pagerduty import PagerDutySender
from breakerpanel.incident_bot.runtime import Bot
from breakerpanel.incident_bot.settings import Settings
from breakerpanel.incident_bot.slack import ACK_ACTION, RESOLVE_ACTION, SlackSender
from breakerpanel.incident_bot.vocabulary import Target
from tests.fakes import FakePagerDuty, FakeSlack, SlackMessage

from .conftest import MakeEngine
from .support import EPOCH, AlertSpec, all_incidents, breaker_labels, rows, store, timeline, webhook

ROUTING_KEY = "R" * 32
#: The far side's limits (PagerDuty Events API v2, Slack), and the mark a cut text ends with.
PAGERDUTY_MAX_EVENT_BYTES = 512 * 1024
PAGERDUTY_MAX_SUMMARY = 1024
SLACK_MAX_TEXT = 40_000
SLACK_MAX_SECTION_TEXT = 3000
SLACK_MAX_BLOCKS = 50
TRUNCATED = "…(truncated)"


MakeWorker = Callable[..., OutboxWorker]


@pytest.fixture
async def make_worker() -> AsyncIterator[MakeWorker]:
    made: list[OutboxWorker] = []

    def make(*args: Any, **kwargs: Any) -> OutboxWorker:
        made.append(_worker(*args, **kwargs))
        return made[-1]

    yield make
    for worker in made:
        await worker.close()


def _worker(
    db: Database,
    pagerduty: FakePagerDuty,
    slack: FakeSlack,
    *,
    keys: dict[str, str] | None = None,
    slack_rate: float = 50.0,
    clock: Callable[[], float],
) -> OutboxWorker:
    senders = {
        "pagerduty": PagerDutySender(
            keys if keys is not None else {"env:PD_KEY": ROUTING_KEY},
            base_url=pagerduty.base_url,
            ca_file=str(pagerduty.ca_file),
            timeout=5,
        ),
        "slack": SlackSender("xoxb-test-token", base_url=slack.api_url),
    }
    return OutboxWorker(
        db,
        senders,
        WorkerConfig(
            replica_id="test",
            claim_timeout=30,
            quick_attempts=2,
            max_backoff=0.3,
            poll_interval=0.05,
            public_url="http://bot.example",
        ),
        pacers={
            Target.PAGERDUTY: RateLimiter("pagerduty", RateLimitPolicy(limit=100, period=1.0, burst=100)),
            Target.SLACK: RateLimiter("slack", RateLimitPolicy(limit=1, period=1 / slack_rate, burst=3)),
        },
        metrics=BotMetrics(),
        clock=clock,
    )


async def drain(worker: OutboxWorker, db: Database, *, within: float = 20.0) -> list[Any]:
    """Run the worker until nothing is pending; return the outbox rows."""
    deadline = time.monotonic() + within
    while True:
        await worker.drain_once()
        pending = [r for r in await rows(db, outbox) if r.status == "pending"]
        if not pending:
            return await rows(db, outbox)
        assert time.monotonic() < deadline, f"still pending: {[(r.target, r.action, r.last_error) for r in pending]}"
        await asyncio.sleep(0.05)


async def test_an_incident_reaches_pagerduty_and_slack_and_ends_there(
    make_engine: MakeEngine, make_worker: MakeWorker, fake_pagerduty: FakePagerDuty, fake_slack: FakeSlack
) -> None:
    engine, db, clock = await make_engine(resolve_after=60, real_time=True)
    worker = make_worker(db, fake_pagerduty, fake_slack, clock=clock)
    alert = AlertSpec(breaker_labels("openai") | {"gen_ai_provider_name": "openai"})
    await store(db, webhook((alert, "firing")))
    await engine.process_pending()
    await drain(worker, db)

    (incident,) = await all_incidents(db)
    (pd_alert,) = fake_pagerduty.alerts()
    assert (pd_alert.dedup_key, pd_alert.routing_key, pd_alert.status) == (incident.dedup_key, ROUTING_KEY, "triggered")
    assert pd_alert.severity == "critical"
    assert pd_alert.summary == "[critical] openai (service, rag): Circuit breaker has been open for more than 5m."
    trigger = pd_alert.events[0].body
    assert trigger["payload"]["component"] == "openai"
    assert trigger["payload"]["group"] == "rag"
    assert trigger["payload"]["custom_details"]["alerts"][0]["alert"] == "CircuitBreakerOpen"
    assert {link["text"] for link in trigger["links"]} == {
        "Grafana dashboard",
        "Runbook",
        "Prometheus",
        "Incident #1 timeline",
    }
    (card,) = fake_slack.messages("#incidents")
    assert card.text == "Open: openai (service, rag) (critical)"
    actions = next(b for b in card.blocks if b["type"] == "actions")
    assert [e.get("action_id") for e in actions["elements"]][:2] == [ACK_ACTION, RESOLVE_ACTION]

    await store(db, webhook((alert, "resolved")))
    await engine.process_pending()
    clock.advance(61)
    await engine.tick()
    await drain(worker, db)
    assert fake_pagerduty.alert(incident.dedup_key).status == "resolved"
    (card,) = fake_slack.messages("#incidents")
    assert card.edited
    assert card.text.startswith("Resolved: ")
    assert all(
        b["type"] != "actions" or all(e.get("action_id") != ACK_ACTION for e in b["elements"]) for b in card.blocks
    )
    # The edited card says it all: the thread is for what people do (incidents.py, "Few messages").
    assert any("Resolved <!date^" in text for text in _texts(list(card.blocks)))


async def test_the_card_shows_what_the_root_cause_touched(
    make_engine: MakeEngine, make_worker: MakeWorker, fake_pagerduty: FakePagerDuty, fake_slack: FakeSlack
) -> None:
    """One card per root cause: the breakers it touched are listed on it (the child alerts send
    nothing themselves), and it says so again when edited."""
    engine, db, clock = await make_engine(resolve_after=60, real_time=True)
    worker = make_worker(db, fake_pagerduty, fake_slack, clock=clock)
    openai = AlertSpec(breaker_labels("openai"))
    chat = AlertSpec(breaker_labels("openai.chat", level="endpoint", parent="openai", severity="warning"))
    answer = AlertSpec(breaker_labels("answer", level="feature", alertname="CircuitBreakerDegraded", requires="openai"))
    await store(db, webhook((openai, "firing"), (chat, "firing"), (answer, "firing")))
    await engine.process_pending()
    await drain(worker, db)
    (card,) = fake_slack.messages("#incidents")
    texts = _texts(list(card.blocks))
    assert any(
        "*Also affected (2):*" in t
        and "openai.chat (endpoint, rag): CircuitBreakerOpen" in t
        and "answer (feature, rag): CircuitBreakerDegraded" in t
        for t in texts
    ), texts
    assert len(fake_slack.calls_to("chat.postMessage")) == 1  # the children posted nothing
    assert [a.dedup_key for a in fake_pagerduty.alerts()] == [(await all_incidents(db))[0].dedup_key]


async def test_429_and_5xx_are_retried_until_delivered_once(
    make_engine: MakeEngine, make_worker: MakeWorker, fake_pagerduty: FakePagerDuty, fake_slack: FakeSlack
) -> None:
    engine, db, clock = await make_engine(real_time=True)
    worker = make_worker(db, fake_pagerduty, fake_slack, clock=clock)
    fake_pagerduty.fail_next(2, status=429)
    fake_pagerduty.fail_next(2, status=503)
    fake_slack.fail_next(3, status=429, retry_after=1)
    for name in ("openai", "anthropic", "qdrant"):
        await store(db, webhook((AlertSpec(breaker_labels(name)), "firing")))
    await engine.process_pending()
    sent = await drain(worker, db)
    assert {r.status for r in sent} == {"sent"}
    assert len(fake_pagerduty.alerts()) == 3
    assert all(a.trigger_count == 1 for a in fake_pagerduty.alerts())
    assert len(fake_slack.messages("#incidents")) == 3  # one card each, none twice
    assert sum(1 for r in fake_pagerduty.requests if r.status in (429, 503)) == 4
    assert max(r.attempts for r in sent) >= 2


async def test_a_late_resolve_never_closes_the_page_of_the_breakers_next_incident(
    make_engine: MakeEngine, make_worker: MakeWorker, fake_pagerduty: FakePagerDuty, fake_slack: FakeSlack
) -> None:
    """Every incident of a breaker pages under one dedup_key. Incident A's resolve meets a 503 and
    waits to be retried; meanwhile the breaker trips again and incident B pages. A's resolve goes
    out first, then B's trigger: B's page stays open (the other order closed it, and the on-call
    engineer was told nothing while the breaker stayed open)."""
    engine, db, clock = await make_engine(resolve_after=60, real_time=True)
    worker = make_worker(db, fake_pagerduty, fake_slack, clock=clock)
    first = AlertSpec(breaker_labels("openai"), starts=0)
    await store(db, webhook((first, "firing")))
    await engine.process_pending()
    await drain(worker, db)  # A pages
    await store(db, webhook((first, "resolved")))
    await engine.process_pending()
    clock.advance(61)
    await engine.tick()  # A resolves: its resolve is queued
    fake_pagerduty.fail_next(2, status=503)
    await worker.drain_once()  # and refused: rescheduled
    again = AlertSpec(first.labels, starts=30, fingerprint=first.fingerprint)
    await store(db, webhook((again, "firing")))
    await engine.process_pending()  # B opens and queues its trigger
    await drain(worker, db)
    a, b = await all_incidents(db)
    assert (a.status, b.status, a.dedup_key) == ("resolved", "open", b.dedup_key)
    # Accepted events only (the fake records a 202): A's trigger and resolve, then B's trigger.
    assert [e.event_action for e in fake_pagerduty.alert_events] == ["trigger", "resolve", "trigger"]
    assert [x.dedup_key for x in fake_pagerduty.open_alerts()] == [b.dedup_key]


async def test_pagerduty_down_does_not_hold_up_slack(
    make_engine: MakeEngine, make_worker: MakeWorker, fake_pagerduty: FakePagerDuty, fake_slack: FakeSlack
) -> None:
    engine, db, clock = await make_engine(real_time=True)
    worker = make_worker(db, fake_pagerduty, fake_slack, clock=clock)
    fake_pagerduty.set_down(True)
    for name in ("openai", "anthropic", "qdrant", "redis", "postgres"):
        await store(db, webhook((AlertSpec(breaker_labels(name)), "firing")))
    await engine.process_pending()
    deadline = time.monotonic() + 15
    while len(fake_slack.messages("#incidents")) < 5:
        assert time.monotonic() < deadline, "Slack cards held up by PagerDuty being down"
        await worker.drain_once()
        await asyncio.sleep(0.05)
    assert worker.breakers["pagerduty"].is_rejecting()  # our breaker around PagerDuty opened
    assert fake_pagerduty.alerts() == []
    fake_pagerduty.set_down(False)
    await drain(worker, db, within=90)  # the breaker's wait, then everything
    assert len(fake_pagerduty.open_alerts()) == 5


async def test_what_can_never_be_delivered_goes_to_the_dead_letters(
    make_engine: MakeEngine, make_worker: MakeWorker, fake_pagerduty: FakePagerDuty
) -> None:
    engine, db, clock = await make_engine(real_time=True)
    with FakeSlack(channels={"#elsewhere"}) as slack:  # #incidents does not exist there
        worker = make_worker(db, fake_pagerduty, slack, keys={"env:PD_KEY": "short-key"}, clock=clock)
        await store(db, webhook((AlertSpec(breaker_labels("openai")), "firing")))
        await engine.process_pending()
        sent = await drain(worker, db)
    assert {(r.target, r.status) for r in sent} == {("pagerduty", "dead"), ("slack", "dead")}
    pagerduty = next(r for r in sent if r.target == "pagerduty")
    assert "PagerDuty answered 400" in pagerduty.last_error
    assert "short-key" not in pagerduty.last_error
    assert "channel_not_found" in next(r for r in sent if r.target == "slack").last_error
    assert (await timeline(db, 1)).count("delivery_failed") == 2
    assert worker.breakers["pagerduty"].snapshot().totals.failures_by_type == {}  # our error, not theirs


class Destinations:
    """A PagerDuty sender that records where each item went, and sends nothing."""

    dry_run = False
    target = Target.PAGERDUTY

    def __init__(self) -> None:
        self.sent: list[str] = []

    def destination_configured(self, destination: str) -> bool:
        return True

    async def close(self) -> None:
        return None

    async def send(self, item: Item, incident: IncidentView | None) -> Delivered:
        self.sent.append(item.destination)
        return Delivered("ok")


async def test_each_destination_is_claimed_at_its_own_pace(make_engine: MakeEngine) -> None:
    """The outbox claims an item only when its destination's rate limiter lets it: a burst of two
    per routing key, then one a second, each routing key on its own schedule. An item refused is
    left pending and takes nothing from the pace."""
    _, db, clock = await make_engine()
    for destination in ("env:A", "env:B"):
        for _ in range(4):
            await _change_item(db, destination)
    pace = PaceClock()
    sender = Destinations()
    worker = OutboxWorker(
        db,
        {Target.PAGERDUTY: sender},
        WorkerConfig("me", claim_timeout=30, quick_attempts=1, max_backoff=1, poll_interval=0.05, public_url=""),
        pacers={Target.PAGERDUTY: RateLimiter("pd", RateLimitPolicy(limit=1, period=1.0, burst=2), clock=pace)},
        metrics=BotMetrics(),
        clock=clock,
    )
    assert await worker.drain_once() == 4
    assert sorted(sender.sent) == ["env:A", "env:A", "env:B", "env:B"]
    assert await worker.drain_once() == 0  # both bursts spent
    pace.advance(0.5)
    assert await worker.drain_once() == 0
    pace.advance(0.5)
    assert await worker.drain_once() == 2  # a second on: one more each, as if nothing had been refused
    assert sorted(sender.sent[4:]) == ["env:A", "env:B"]
    assert [r.status for r in await rows(db, outbox)].count("pending") == 2


async def test_an_item_for_a_target_this_version_does_not_know_goes_to_the_dead_letters(
    make_engine: MakeEngine,
) -> None:
    """A row a newer bot wrote (another target) cannot stall the outbox: it is dead-lettered with
    the reason, and the items after it are delivered."""
    _, db, _ = await make_engine()
    unknown = await _change_item(db)
    async with db.transaction() as conn:
        await conn.execute(update(outbox).where(outbox.c.id == unknown).values(target="teams"))
    await _change_item(db)
    sender = Destinations()
    worker = _flaky_worker(db, sender, claim_timeout=30)
    await worker.drain_once()
    first, second = await rows(db, outbox)
    assert (first.status, first.last_error) == (
        "dead",
        "not deliverable by this version: 'teams' is not a valid Target",
    )
    assert second.status == "sent"
    assert sender.sent == ["env:PD_KEY"]


def test_rescheduled_deliveries_back_off_exponentially_and_spread_out() -> None:
    """After its quick retries, the n-th failed attempt puts an item back for a random wait of at
    most 2**(n-1) s (an hour at most, the worker's maximum if lower) and at least half a second:
    items that failed together in an outage come back spread over that range, not at once."""
    for attempts in range(1, 40):
        ceiling = max(0.5, min(3600.0, 2.0 ** (attempts - 1)))
        waits = [reschedule_wait(attempts, maximum=86_400) for _ in range(200)]
        assert all(0.5 <= wait <= ceiling for wait in waits), attempts
    spread = [reschedule_wait(12, maximum=86_400) for _ in range(200)]  # up to 2,048 s
    assert max(spread) - min(spread) > 1000
    assert max(reschedule_wait(10_000, maximum=86_400) for _ in range(200)) <= 3600  # no overflow, capped
    assert all(0.5 <= reschedule_wait(30, maximum=60) <= 60 for _ in range(200))  # the worker's maximum


async def test_slack_pace_per_channel_is_kept(
    make_engine: MakeEngine, make_worker: MakeWorker, fake_pagerduty: FakePagerDuty
) -> None:
    engine, db, clock = await make_engine(real_time=True)
    with FakeSlack(post_message_rate=4.0, post_message_burst=3) as slack:
        # Half the fake's 4/s: a busy machine may bunch two sends on their way, never by 2x.
        worker = make_worker(db, fake_pagerduty, slack, slack_rate=2.0, clock=clock)
        for name in ("a", "b", "c", "d", "e", "f", "g", "h"):
            await store(db, webhook((AlertSpec(breaker_labels(name)), "firing")))
        await engine.process_pending()
        await drain(worker, db)
        assert len(slack.messages("#incidents")) == 8
        assert [c for c in slack.calls if c.status == 429] == []  # paced, never rate-limited


class Flaky:
    """A sender that fails with a retryable error ``failures`` times, each after ``pause`` seconds,
    running ``during_first`` (a coroutine function) inside its first call."""

    dry_run = False
    target = "pagerduty"

    def __init__(self, failures: int, pause: float, during_first: Callable[[], Any] | None = None) -> None:
        self.failures = failures
        self.pause = pause
        self.during_first = during_first
        self.calls = 0

    def destination_configured(self, destination: str) -> bool:
        return True

    async def close(self) -> None:
        return None

    async def send(self, item: Item, incident: IncidentView | None) -> Delivered:
        self.calls += 1
        if self.calls == 1 and self.during_first is not None:
            await self.during_first()
        await asyncio.sleep(self.pause)
        if self.calls <= self.failures:
            raise DeliveryError("503 from the fake", retryable=True, status=503)
        return Delivered("ok")


async def _change_item(db: Database, destination: str = "env:PD_KEY") -> int:
    """A change notification (no incident) due now."""
    async with db.transaction() as conn:
        result = await conn.execute(
            outbox.insert().values(
                incident_id=None,
                target="pagerduty",
                action="change",
                destination=destination,
                payload={"summary": "openai forced open"},
                created_at=time.time(),
                next_attempt_at=0,
            )
        )
        return int(result.inserted_primary_key[0])


def _flaky_worker(db: Database, sender: Sender, *, claim_timeout: float, replica: str = "me") -> OutboxWorker:
    return OutboxWorker(
        db,
        {Target.PAGERDUTY: sender},
        WorkerConfig(
            replica, claim_timeout=claim_timeout, quick_attempts=4, max_backoff=1, poll_interval=0.05, public_url=""
        ),
        pacers={},
        metrics=BotMetrics(),
    )


async def test_quick_retries_longer_than_the_claim_renew_it(make_engine: MakeEngine) -> None:
    """Three failed attempts take longer than the claim lasts, while another replica looks for work
    all along: the worker renews its claim before each attempt, so the item stays its own and is
    delivered once, by it."""
    _, db, _ = await make_engine()
    item_id = await _change_item(db)
    sender, other_sender = Flaky(failures=3, pause=0.4), Flaky(failures=0, pause=0)
    worker = _flaky_worker(db, sender, claim_timeout=1.5)
    other = _flaky_worker(db, other_sender, claim_timeout=1.5, replica="other")
    delivering = asyncio.create_task(worker.drain_once())
    for _ in range(1000):  # until the worker holds the claim (the task has not run yet)
        if (await rows(db, outbox))[0].claimed_by == "me":
            break
        await asyncio.sleep(0.01)
    while not delivering.done():
        await other.drain_once()
        await asyncio.sleep(0.05)
    await delivering
    (row,) = await rows(db, outbox)
    assert (row.id, row.status, row.sent_by, row.attempts) == (item_id, "sent", "me", 1)
    assert (sender.calls, other_sender.calls) == (4, 0)


async def test_a_lost_claim_is_left_to_its_new_owner(make_engine: MakeEngine) -> None:
    """While an attempt hangs past the claim, another replica claims the item. The first replica
    sees the claim is gone at its next attempt and stops: no second send, no completion."""
    _, db, _ = await make_engine()
    item_id = await _change_item(db)

    async def taken_over() -> None:
        async with db.transaction() as conn:
            await conn.execute(
                update(outbox).where(outbox.c.id == item_id).values(claimed_by="other", claimed_until=time.time() + 60)
            )

    sender = Flaky(failures=1, pause=0.3, during_first=taken_over)
    worker = _flaky_worker(db, sender, claim_timeout=0.6)
    await worker.drain_once()
    (row,) = await rows(db, outbox)
    assert (row.status, row.claimed_by, row.attempts) == ("pending", "other", 0)
    assert sender.calls == 1


# --------------------------------------------------------------------------- what alerts say


def _texts(node: Any) -> Iterator[str]:
    """Every ``text`` string in a Block Kit tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                yield value
            else:
                yield from _texts(value)
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _texts(item)


#: The bot's own markup in Slack text: dates (``<!date^...|...>``) and the mention of a person who pressed.
_OWN_MARKUP = re.compile(r"<!date\^[^<>]*>|<@U0ONCALL>")


def _shown(message: SlackMessage) -> list[str]:
    return [message.text, *_texts(list(message.blocks))]


async def test_an_oversized_alert_still_pages_and_posts_cut_with_a_visible_marker(
    make_engine: MakeEngine, make_worker: MakeWorker, fake_pagerduty: FakePagerDuty, fake_slack: FakeSlack
) -> None:
    """500,000 characters in a breaker name, a label, the summary and the description: PagerDuty
    gets an event under 512 KB with a 1,024-character summary, Slack a card within its limits,
    both cut with "…(truncated)", instead of a 400 (dead letters, nobody paged) and msg_too_long."""
    engine, db, clock = await make_engine(real_time=True)
    worker = make_worker(db, fake_pagerduty, fake_slack, clock=clock)
    huge = "x" * 500_000
    alert = AlertSpec(breaker_labels(f"openai-{huge}") | {"team": huge}, summary=f"summary {huge}")
    payload = webhook((alert, "firing"))
    payload["alerts"][0]["annotations"]["description"] = f"description {huge}"
    await store(db, payload)
    await engine.process_pending()
    sent = await drain(worker, db)
    assert {(r.target, r.action, r.status) for r in sent} == {
        ("pagerduty", "trigger", "sent"),
        ("slack", "card", "sent"),
    }

    (pd_alert,) = fake_pagerduty.alerts()
    event = pd_alert.events[0].body
    assert len(json.dumps(event).encode()) < PAGERDUTY_MAX_EVENT_BYTES
    summary = event["payload"]["summary"]
    assert len(summary) <= PAGERDUTY_MAX_SUMMARY
    assert summary.startswith("[critical] openai-xxx")
    assert summary.endswith(TRUNCATED)
    details = event["payload"]["custom_details"]
    assert details["labels"]["team"].endswith(TRUNCATED)
    assert details["description"].startswith("description xxx")
    assert details["description"].endswith(TRUNCATED)

    (card,) = fake_slack.messages("#incidents")
    assert len(card.text) <= SLACK_MAX_TEXT
    # The title is bounded where it is stored (a prefix and a digest: incident_bot.identity).
    assert "…~" in card.text
    header = next(b for b in card.blocks if b["type"] == "header")
    assert header["text"]["text"].startswith("#1 openai-xxx")
    assert header["text"]["text"].endswith(TRUNCATED)
    assert len(card.blocks) <= SLACK_MAX_BLOCKS
    assert all(len(text) <= SLACK_MAX_SECTION_TEXT for text in _texts(list(card.blocks)))
    assert any(text.startswith("description xxx") and text.endswith(TRUNCATED) for text in _texts(list(card.blocks)))


async def test_what_an_alert_says_never_notifies_anyone_in_slack(
    make_engine: MakeEngine, make_worker: MakeWorker, fake_pagerduty: FakePagerDuty, fake_slack: FakeSlack
) -> None:
    """Mentions in a breaker name, a label, a summary and a description are shown as text, in the
    card, its thread and a change message; the bot's own mention of who acknowledged stays live."""
    engine, db, clock = await make_engine(real_time=True)
    worker = make_worker(db, fake_pagerduty, fake_slack, clock=clock)
    alert = AlertSpec(
        breaker_labels("<!here>") | {"team": "<!channel>"}, summary="<@U0BOSS> & <#C0GENERAL> <https://evil|ok>"
    )
    payload = webhook((alert, "firing"))
    payload["alerts"][0]["annotations"]["description"] = "<!subteam^S0ALL> <!everyone>"
    await store(db, payload)
    manual = AlertSpec(
        breaker_labels("<!channel>", alertname="CircuitBreakerManualState", severity="info")
        | {"circuit_breaker_state": "<!here>"}
    )
    await store(db, webhook((manual, "firing"), group_key="manual"))
    await engine.process_pending()
    await drain(worker, db)
    await engine.acknowledge(1, "<@U0ONCALL>")
    await drain(worker, db)

    (card,) = fake_slack.messages("#incidents")
    thread = fake_slack.thread("#incidents", card.ts)
    (change,) = fake_slack.messages("#breakers")
    shown = [text for message in (card, *thread, change) for text in _shown(message)]
    assert shown
    live = [text for text in shown if "<" in _OWN_MARKUP.sub("", text) or ">" in _OWN_MARKUP.sub("", text)]
    assert live == [], "alert text reached Slack as markup"
    assert card.text.startswith("Acknowledged: &lt;!here&gt; (service, rag)")
    blocks = " ".join(_texts(list(card.blocks)))
    assert "&lt;@U0BOSS&gt; &amp; &lt;#C0GENERAL&gt;" in blocks
    assert "&lt;!subteam^S0ALL&gt; &lt;!everyone&gt;" in blocks
    assert "*Acknowledged by*\n<@U0ONCALL>" in blocks  # the bot's own mention
    assert [m.text for m in thread] == ["Acknowledged by <@U0ONCALL>."]
    assert "&lt;!channel&gt;" in change.text
    assert "&lt;!here&gt;" in change.text


ROUTES_YAML = """\
routes:
  - name: page critical
    match: {severity: critical}
    pagerduty: {routing_key_env: PD_KEY}
    slack: {channels: ["#incidents"]}
"""


@pytest.fixture
async def live_bot(
    tmp_path: Path, fake_pagerduty: FakePagerDuty, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., Any]]:
    """``await live_bot(routes_yaml=..., **settings)``: the bot as ``python -m breakerpanel.incident_bot``
    wires it from its settings (not dry run), sending to the fakes, started."""
    started: list[Bot] = []
    routes = tmp_path / "routes.yaml"
    monkeypatch.setenv("PD_KEY", ROUTING_KEY)

    async def start(*, routes_yaml: str = ROUTES_YAML, **overrides: Any) -> Bot:
        routes.write_text(routes_yaml)
        settings = Settings(
            **{
                "webhook_token": SecretStr("t"),
                "database_url": f"sqlite+aiosqlite:///{tmp_path / 'live.db'}",
                "routing_file": routes,
                "pagerduty_base_url": fake_pagerduty.base_url,
                "pagerduty_ca_file": fake_pagerduty.ca_file,
                "slack_bot_token": SecretStr("xoxb-test-token"),
                "slack_signing_secret": SecretStr("secret"),
                "slack_base_url": fake_slack.api_url,
                "dry_run": False,
                "poll_interval": 0.05,
                "max_backoff": 0.3,
                **overrides,
            }
        )
        bot = Bot(settings)
        await bot.start()
        started.append(bot)
        return bot

    yield start
    for bot in started:
        await bot.stop()


async def test_the_description_the_grafana_url_and_when_it_started_reach_pagerduty_and_slack(
    live_bot: Callable[..., Any], fake_pagerduty: FakePagerDuty, fake_slack: FakeSlack
) -> None:
    bot = await live_bot(grafana_url="https://grafana.example.com/")
    # Seen by the bot long after it started firing (Alertmanager's group_wait, a restart): the
    # page says when the alert started.
    early = AlertSpec(breaker_labels("openai"), starts=-90)
    payload = webhook((early, "firing"))
    payload["alerts"][0]["annotations"] |= {
        "description": "The breaker opened: openai answers 5xx.",
        "dashboard_url": "http://localhost:3000/d/breakerpanel-detail/detail?var-breaker=openai",
    }
    bare = AlertSpec(breaker_labels("qdrant", parent="vectors"))
    bare_payload = webhook((bare, "firing"), group_key="bare")
    del bare_payload["alerts"][0]["annotations"]["dashboard_url"]
    await store(bot.db, payload)
    await store(bot.db, bare_payload)
    deadline = time.monotonic() + 30
    while len(fake_pagerduty.alerts()) < 2 or len(fake_slack.messages("#incidents")) < 2:
        assert time.monotonic() < deadline, "not paged and posted"
        await asyncio.sleep(0.05)

    by_component = {a.events[0].body["payload"]["component"]: a.events[0].body for a in fake_pagerduty.alerts()}
    openai, qdrant = by_component["openai"], by_component["qdrant"]
    assert openai["payload"]["timestamp"] == "2026-11-26T23:30:00+00:00"  # its startsAt: EPOCH - 90 min
    assert qdrant["payload"]["timestamp"] == EPOCH.isoformat()
    assert openai["payload"]["custom_details"]["description"] == "The breaker opened: openai answers 5xx."
    assert openai["payload"]["custom_details"]["alerts"][0]["description"] == "The breaker opened: openai answers 5xx."
    dashboards = {
        b["payload"]["component"]: [x["href"] for x in b["links"] if x["text"] == "Grafana dashboard"]
        for b in by_component.values()
    }
    assert dashboards["openai"] == ["https://grafana.example.com/d/breakerpanel-detail/detail?var-breaker=openai"]
    assert dashboards["qdrant"] == [
        "https://grafana.example.com/d/breakerpanel-detail/detail"
        "?var-job=rag&var-level=service&var-service=vectors&var-breaker=qdrant"
    ]

    cards = {card.text: card for card in fake_slack.messages("#incidents")}
    card = cards["Open: openai (service, rag) (critical)"]
    assert "The breaker opened: openai answers 5xx." in _texts(list(card.blocks))
    buttons = [e for b in card.blocks if b["type"] == "actions" for e in b["elements"]]
    urls = {e["action_id"]: e.get("url") for e in buttons}
    assert urls["link_dashboard_url"] == dashboards["openai"][0]
    qdrant_card = cards["Open: qdrant (service, rag) (critical)"]
    qdrant_urls = {
        e["action_id"]: e.get("url") for b in qdrant_card.blocks if b["type"] == "actions" for e in b["elements"]
    }
    assert qdrant_urls["link_dashboard_url"] == dashboards["qdrant"][0]


#: The routes, and manual states (severity info) as PagerDuty change events (to a service's
#: integration key: PagerDuty refuses change events to a ruleset's) and a line in #breakers.
MANUAL_ROUTES_YAML = (
    ROUTES_YAML
    + """\
  - name: manual states
    match: {severity: info}
    pagerduty: {routing_key_env: PD_CHANGE_KEY}
    slack: {channels: ["#breakers"]}
"""
)
CHANGE_ROUTING_KEY = "K" * 32


def _manual(state: str, *, starts: int) -> AlertSpec:
    """A CircuitBreakerManualState alert of qdrant on rag-0 (the state is a label: each its own alert)."""
    labels = breaker_labels("qdrant", alertname="CircuitBreakerManualState", severity="info")
    return AlertSpec(labels | {"circuit_breaker_state": state, "instance": "rag-0:8000"}, starts=starts)


async def _until(condition: Callable[[], object], what: str, *, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_a_change_event_links_the_configured_grafana_and_says_when_the_state_changed(
    live_bot: Callable[..., Any], fake_pagerduty: FakePagerDuty, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Heard 30 min late, a manual state's change events carry its startsAt and endsAt, and link the
    dashboard on INCIDENT_BOT_GRAFANA_URL, as a page does, not on the generator's localhost:3000."""
    monkeypatch.setenv("PD_CHANGE_KEY", CHANGE_ROUTING_KEY)
    bot = await live_bot(routes_yaml=MANUAL_ROUTES_YAML, grafana_url="https://grafana.example.com")
    manual = _manual("forced_open", starts=-30)
    generated = "http://localhost:3000/d/breakerpanel-detail/detail?var-breaker=qdrant"
    for sent, status in enumerate(("firing", "resolved"), start=1):
        payload = webhook((manual, status), group_key="manual")
        payload["alerts"][0]["annotations"]["dashboard_url"] = generated
        await store(bot.db, payload)
        await _until(lambda n=sent: len(fake_pagerduty.change_events) >= n, f"change event of the {status} alert")

    started, ended = (e.body for e in fake_pagerduty.change_events)
    assert started["payload"]["timestamp"] == (EPOCH - timedelta(minutes=30)).isoformat()  # its startsAt
    assert ended["payload"]["timestamp"] == (EPOCH + timedelta(minutes=30)).isoformat()  # its endsAt
    for event in (started, ended):
        dashboards = [link["href"] for link in event["links"] if link["text"] == "Grafana dashboard"]
        assert dashboards == ["https://grafana.example.com/d/breakerpanel-detail/detail?var-breaker=qdrant"]


async def test_the_cards_since_is_when_the_first_alert_started_as_on_the_page(
    live_bot: Callable[..., Any], fake_pagerduty: FakePagerDuty, fake_slack: FakeSlack
) -> None:
    """An alert heard 90 min after it started (a restart, a backlog): the card's Since and the
    page's timestamp both say when it started."""
    bot = await live_bot()
    await store(bot.db, webhook((AlertSpec(breaker_labels("openai"), starts=-90), "firing")))
    await _until(lambda: fake_pagerduty.alert_events and fake_slack.messages("#incidents"), "paged and posted")

    started = EPOCH - timedelta(minutes=90)
    assert fake_pagerduty.alert_events[0].body["payload"]["timestamp"] == started.isoformat()
    (card,) = fake_slack.messages("#incidents")
    fields = [f["text"] for b in card.blocks if b["type"] == "section" for f in b.get("fields", [])]
    (since,) = [f for f in fields if f.startswith("*Since*")]
    assert since == f"*Since*\n<!date^{int(started.timestamp())}^{{date_short_pretty}} {{time}}|2026-11-26 23:30 UTC>"


async def test_a_page_raised_by_an_attached_alert_says_which_and_links_its_runbook(
    live_bot: Callable[..., Any], fake_pagerduty: FakePagerDuty
) -> None:
    """openai's breaker opens (a warning: no page), then the feature answer, which requires it,
    degrades for users (critical): attached to openai's incident, it raises it to a page, which
    must say that answer is why, list its alert and link its runbook, not only openai's."""
    bot = await live_bot()
    cause = AlertSpec(breaker_labels("openai", severity="warning"), summary="Circuit breaker openai is open.")
    await store(bot.db, webhook((cause, "firing")))
    users = AlertSpec(
        breaker_labels("answer", level="feature", requires="openai", alertname="CircuitBreakerDegraded"),
        summary="answer gives 80% of its answers from fallbacks.",
    )
    degraded = webhook((users, "firing"), group_key="degraded")
    degraded["alerts"][0]["annotations"]["runbook_url"] = "https://runbooks.example/circuit-breaker-degraded.md"
    await store(bot.db, degraded)
    await _until(lambda: fake_pagerduty.alert_events, "paged")

    (page,) = fake_pagerduty.alert_events
    payload = page.body["payload"]
    assert payload["severity"] == "critical"
    assert payload["summary"] == (
        "[critical] openai (service, rag): Circuit breaker openai is open; raised by CircuitBreakerDegraded on "
        "answer (feature, rag): answer gives 80% of its answers from fallbacks."
    )
    assert payload["custom_details"]["raised_by"] == [
        {
            "incident": 2,
            "title": "answer (feature, rag)",
            "alert": "CircuitBreakerDegraded",
            "severity": "critical",
            "summary": "answer gives 80% of its answers from fallbacks.",
        }
    ]
    runbooks = [(link["text"], link["href"]) for link in page.body["links"] if link["text"].startswith("Runbook")]
    assert runbooks == [
        ("Runbook", "https://runbooks.example/circuit-breaker-open.md"),
        (
            "Runbook: CircuitBreakerDegraded on answer (feature, rag)",
            "https://runbooks.example/circuit-breaker-degraded.md",
        ),
    ]
