"""The same engine and outbox on a real PostgreSQL: what several replicas share.

Two replicas process concurrently: one processes webhooks at a time (an advisory lock), and the
outbox's claims never hand one item to both.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from breakerpanel.guards import RateLimiter, RateLimitPolicy
from breakerpanel.incident_bot.app import create_app
from breakerpanel.incident_bot.db import Database, incidents, outbox, webhooks
from breakerpanel.incident_bot.delivery import Delivered, IncidentView, Item, SlackCard
from breakerpanel.incident_bot.incidents import Engine, EngineConfig
from breakerpanel.incident_bot.intake import IntakeWriter
from breakerpanel.incident_bot.metrics import BotMetrics
from breakerpanel.incident_bot.outbox import OutboxWorker, WorkerConfig
from breakerpanel.incident_bot.runtime import Bot
from breakerpanel.incident_bot.settings import Settings
from breakerpanel.incident_bot.vocabulary import Action, Target
from tests.servers import PostgresServer

from .support import ROUTING, AlertSpec, ManualClock, breaker_labels, rows, store, webhook


@pytest.fixture
async def pg(postgres_server: PostgresServer) -> AsyncIterator[tuple[Database, Database]]:
    """Two replicas' views of one database."""
    url = postgres_server.create_database("bot").replace("postgresql://", "postgresql+asyncpg://")
    first, second = Database(url), Database(url)
    await asyncio.gather(first.create(), second.create())  # racing starts are fine
    yield first, second
    await first.dispose()
    await second.dispose()


class Recorder:
    """A sender that records what it would send, slowly enough for claims to overlap."""

    dry_run = False

    def __init__(self, target: str, sent: list[tuple[str, int]], replica: str) -> None:
        self.target = target
        self.sent = sent
        self.replica = replica

    def destination_configured(self, destination: str) -> bool:
        return True

    async def close(self) -> None:
        return None

    async def send(self, item: Item, incident: IncidentView) -> Delivered:
        await asyncio.sleep(0.01)
        self.sent.append((self.replica, item.id))
        card = SlackCard(channel_id="C1", ts=f"{item.incident_id}.0") if item.action == Action.CARD else None
        return Delivered("ok", card=card)


def worker(db: Database, sent: list[tuple[str, int]], replica: str) -> OutboxWorker:
    return OutboxWorker(
        db,
        {t: Recorder(t, sent, replica) for t in ("pagerduty", "slack")},
        WorkerConfig(replica, claim_timeout=30, quick_attempts=1, max_backoff=1, poll_interval=0.02, public_url=""),
        pacers={target: RateLimiter(target, RateLimitPolicy(limit=1000, period=1.0)) for target in Target},
        metrics=BotMetrics(),
    )


async def test_two_replicas_process_and_deliver_everything_once(pg: tuple[Database, Database]) -> None:
    first, second = pg
    clock = ManualClock(follow_real_time=True)
    engines = [Engine(db, EngineConfig(resolve_after=300, routing=ROUTING), clock=clock) for db in pg]
    names = [f"breaker-{i}" for i in range(30)]
    for name in names:
        await store(first, webhook((AlertSpec(breaker_labels(name)), "firing")))
    # Both replicas process at once: the advisory lock lets one at a time through, in order.
    while True:
        outcomes = await asyncio.gather(*(e.process_pending(limit=5) for e in engines))
        if not any(o.opened for o in outcomes) and not [
            r for r in await rows(first, webhooks) if r.processed_at is None
        ]:
            break
    assert sum(1 for _ in await rows(first, incidents)) == 30
    sent: list[tuple[str, int]] = []
    workers = [worker(first, sent, "a"), worker(second, sent, "b")]
    for _ in range(200):
        await asyncio.gather(*(w.drain_once(limit=4) for w in workers))
        if not [r for r in await rows(first, outbox) if r.status == "pending"]:
            break
    items = await rows(first, outbox)
    assert {r.status for r in items} == {"sent"}
    delivered = [item_id for _, item_id in sent]
    assert sorted(delivered) == sorted(r.id for r in items), "each item sent exactly once"
    assert {replica for replica, _ in sent} == {"a", "b"}, "both replicas took work"
    for w in workers:
        await w.close()


PADDING = ["x" * 100] * 10  # about the size of a small webhook


async def test_replicas_storing_the_same_notifications_in_any_order_store_each_once(
    pg: tuple[Database, Database],
) -> None:
    """An Alertmanager HA pair sends the same notifications to two replicas, in different orders,
    at once. Each key is stored once, every request is answered, and exactly one answer per key
    says it is new (the other replica's insert found the row: a duplicate)."""
    first, second = pg
    ROUNDS, KEYS = 10, 200
    writers = [IntakeWriter(first), IntakeWriter(second)]
    for writer in writers:
        writer.start()
    try:
        for round_ in range(ROUNDS):
            keys = [f"r{round_}-k{i:03d}" for i in range(KEYS)]
            forward = [writers[0].write(key, {"key": key, "alerts": PADDING}) for key in keys]
            backward = [writers[1].write(key, {"key": key, "alerts": PADDING}) for key in reversed(keys)]
            answers = await asyncio.gather(*forward, *backward)
            fresh = [answer for answer in answers if not answer.duplicate]
            assert len(fresh) == len(keys), "each notification is new exactly once"
    finally:
        for writer in writers:
            await writer.stop()
    stored = [row.dedupe_key for row in await rows(first, webhooks)]
    assert len(stored) == len(set(stored)) == ROUNDS * KEYS


async def test_characters_postgresql_cannot_store_cost_no_alert(postgres_server: PostgresServer) -> None:
    """NUL and a lone surrogate in labels (PostgreSQL's text holds neither): every alert of the
    webhook still becomes an incident, with U+FFFD where the character was."""
    url = postgres_server.create_database("bot").replace("postgresql://", "postgresql+asyncpg://")
    settings = Settings(webhook_token=SecretStr("t"), database_url=url, dry_run=True)
    bot = Bot(settings)
    app = create_app(settings, bot=bot, listen_host="127.0.0.1")
    await bot.start()
    try:
        payload = webhook(
            (AlertSpec(breaker_labels("openai")), "firing"),
            (AlertSpec(breaker_labels("qdrant-NUL")), "firing"),
            (AlertSpec(breaker_labels("redis-SURROGATE")), "firing"),
        )
        body = json.dumps(payload).replace("NUL", "\\u0000").replace("SURROGATE", "\\udc00")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot") as http:
            response = await http.post(
                "/v1/alertmanager",
                content=body,
                headers={"Authorization": "Bearer t", "Content-Type": "application/json"},
            )
        assert response.status_code == 200, response.text
        deadline = asyncio.get_running_loop().time() + 30
        while not all(w.processed_at for w in await rows(bot.db, webhooks)):  # the bot's own processor
            assert asyncio.get_running_loop().time() < deadline, "not processed"
            await asyncio.sleep(0.05)
        assert [w.error for w in await rows(bot.db, webhooks)] == [None]
        assert sorted(i.title.split(" ")[0] for i in await rows(bot.db, incidents)) == [
            "openai",
            "qdrant-\ufffd",
            "redis-\ufffd",
        ]
        assert response.json()["repaired"] == [
            "alerts.1.labels.circuit_breaker_name",
            "alerts.2.labels.circuit_breaker_name",
        ]
    finally:
        await bot.stop()


async def test_a_breaker_with_an_endless_name_still_gets_its_incident(pg: tuple[Database, Database]) -> None:
    """An alert's labels have no length bound, the identity and title columns do (400): the bot
    stores a readable prefix and a digest, so nobody goes unpaged for a long name, and two long
    names that share the prefix stay two incidents."""
    db, _ = pg
    engine = Engine(db, EngineConfig(resolve_after=60, routing=ROUTING), clock=ManualClock())
    long = "x" * 5000
    first = AlertSpec(breaker_labels(long + "a", alertname="A" * 1000))
    second = AlertSpec(breaker_labels(long + "b"))
    for spec in (first, second):
        await store(db, webhook((spec, "firing")))
    await engine.process_pending()
    found = await rows(db, incidents)
    assert len(found) == 2
    assert all(len(i.identity) <= 300 and len(i.title) <= 300 for i in found)
    assert found[0].identity != found[1].identity
    assert {w.error for w in await rows(db, webhooks)} == {None}
