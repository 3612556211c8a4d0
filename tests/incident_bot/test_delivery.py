"""The outbox delivering to PagerDuty and Slack, through the real clients, against the fakes:
the events and cards they get, and everything delivered once when they fail and recover."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy import update

from incident_bot.db import Database, outbox
from incident_bot.delivery import Delivered, DeliveryError, IncidentView, Item
from incident_bot.metrics import BotMetrics
from incident_bot.outbox import OutboxWorker, Pacer, WorkerConfig
from incident_bot.pagerduty import PagerDutySender
from incident_bot.slack import ACK_ACTION, RESOLVE_ACTION, SlackSender
from tests.fakes import FakePagerDuty, FakeSlack

from .conftest import MakeEngine
from .support import AlertSpec, all_incidents, breaker_labels, rows, store, timeline, webhook

ROUTING_KEY = "R" * 32


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
        pacers={"pagerduty": Pacer(100, burst=100), "slack": Pacer(slack_rate, burst=3)},
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
    replies = [m.text for m in fake_slack.thread("#incidents", card.ts)]
    assert replies[0].startswith("CircuitBreakerOpen resolved: every alert is over.")
    assert replies[1].startswith("Resolved: quiet for 60s")


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


async def test_slack_pace_per_channel_is_kept(
    make_engine: MakeEngine, make_worker: MakeWorker, fake_pagerduty: FakePagerDuty
) -> None:
    engine, db, clock = await make_engine(real_time=True)
    with FakeSlack(post_message_rate=4.0, post_message_burst=3) as slack:
        worker = make_worker(db, fake_pagerduty, slack, slack_rate=3.5, clock=clock)  # under its 4/s
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


async def _change_item(db: Database) -> int:
    """A change notification (no incident) due now."""
    async with db.transaction() as conn:
        result = await conn.execute(
            outbox.insert().values(
                incident_id=None,
                target="pagerduty",
                action="change",
                destination="env:PD_KEY",
                payload={"summary": "openai forced open"},
                created_at=time.time(),
                next_attempt_at=0,
            )
        )
        return int(result.inserted_primary_key[0])


def _flaky_worker(db: Database, sender: Flaky, *, claim_timeout: float, replica: str = "me") -> OutboxWorker:
    return OutboxWorker(
        db,
        {"pagerduty": sender},
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
