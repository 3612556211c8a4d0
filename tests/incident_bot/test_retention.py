"""Retention: what is finished goes after ``INCIDENT_BOT_RETENTION``, in small batches, on SQLite and
PostgreSQL; what is live, pending or unprocessed stays whatever its age; a week of steady alerts
leaves a database the size of one retention period, not of the week."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import event, func, select, update
from sqlalchemy.engine import Connection

from breakerpanel.incident_bot import db as storage
from breakerpanel.incident_bot.alertmanager import Webhook
from breakerpanel.incident_bot.db import Database, alerts, events, incidents, outbox, slack_cards, webhooks
from breakerpanel.incident_bot.dryrun import DryRunSender
from breakerpanel.incident_bot.incidents import Engine, EngineConfig
from breakerpanel.incident_bot.intake import IntakeWriter
from breakerpanel.incident_bot.metrics import BotMetrics
from breakerpanel.incident_bot.outbox import OutboxWorker, WorkerConfig
from breakerpanel.incident_bot.runtime import Bot
from breakerpanel.incident_bot.settings import Settings
from tests.servers import PostgresServer

from .support import ROUTING, AlertSpec, ManualClock, breaker_labels, rows, webhook

HOUR = 3600.0
DAY = 24 * HOUR
TABLES = {"webhooks": webhooks, "alerts": alerts, "incidents": incidents, "events": events, "outbox": outbox}


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A fresh, created database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database("bot").replace("postgresql://", "postgresql+asyncpg://")
    db = Database(url)
    await db.create()
    yield db
    await db.dispose()


class Pipeline:
    """The bot's parts on one clock: intake, engine, a dry-run outbox worker, the pruner."""

    def __init__(self, db: Database, clock: ManualClock, *, keep: float, batch: int = 500) -> None:
        self.db = db
        self.clock = clock
        self.engine = Engine(db, EngineConfig(resolve_after=300, routing=ROUTING), clock=clock)
        self.writer = IntakeWriter(db)
        self.worker = OutboxWorker(
            db,
            {target: DryRunSender(target) for target in ("pagerduty", "slack")},
            WorkerConfig("soak", claim_timeout=30, quick_attempts=1, max_backoff=1, poll_interval=1, public_url=""),
            pacers={},
            metrics=BotMetrics(),
            clock=clock,
        )
        self.retention = storage.Retention(db, keep, batch=batch, clock=clock)

    async def receive(self, payload: dict[str, Any]) -> None:
        await self.writer.write(Webhook.model_validate(payload).dedupe_key(), payload)

    async def settle(self) -> None:
        """Process what came in, resolve what went quiet, deliver everything due."""
        await self.engine.process_pending()
        await self.engine.tick()
        while await self.worker.drain_once():
            pass

    async def counts(self) -> dict[str, int]:
        async with self.db.transaction() as conn:
            return {
                name: int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
                for name, table in TABLES.items()
            }


@pytest.fixture
async def pipeline(database: Database) -> AsyncIterator[Callable[..., Pipeline]]:
    made: list[Pipeline] = []

    def make(**options: Any) -> Pipeline:
        made.append(Pipeline(database, ManualClock(), **options))
        made[-1].writer.start()
        return made[-1]

    yield make
    for each in made:
        await each.writer.stop()
        await each.worker.close()


async def test_a_week_of_steady_alerts_keeps_the_database_bounded(pipeline: Callable[..., Pipeline]) -> None:
    """Every hour a breaker trips (its alert fires, pages, posts a card) and the one before
    recovers (resolves, quiet, resolved); retention one day, pruned hourly. From the second day on,
    every table holds about one day of it, and no more at the end of the week than after two days."""
    bot = pipeline(keep=DAY)
    step = HOUR
    steps_per_day = int(DAY // step)
    daily: list[dict[str, int]] = []
    previous: AlertSpec | None = None
    for index in range(7 * steps_per_day):
        alert = AlertSpec(breaker_labels(f"breaker-{index % 20}"), starts=index * 60)
        await bot.receive(webhook((alert, "firing"), group_key=f"g{index}"))
        if previous is not None:
            await bot.receive(webhook((previous, "resolved"), group_key=f"g{index - 1}"))
        previous = alert
        await bot.settle()
        bot.clock.advance(step)
        await bot.settle()  # the quiet incident resolves
        await bot.retention.prune()
        if (index + 1) % steps_per_day == 0:
            daily.append(await bot.counts())

    incidents_per_day = steps_per_day
    assert daily[1]["incidents"] <= 2 * incidents_per_day, daily  # a day's worth kept (and the one live)
    for day, counts in enumerate(daily[2:], start=3):
        for table, count in counts.items():
            assert count <= daily[1][table] * 1.1 + 5, (day, table, daily)
    assert daily[-1]["incidents"] < 7 * incidents_per_day / 3, daily  # without pruning: a week's worth
    live = [i for i in await rows(bot.db, incidents) if i.status != "resolved"]
    assert len(live) == 1  # the breaker that tripped last is still open: never pruned


async def test_only_what_is_finished_goes(pipeline: Callable[..., Pipeline]) -> None:
    bot = pipeline(keep=DAY)
    finished = AlertSpec(breaker_labels("finished"))
    live = AlertSpec(breaker_labels("live"))
    forced = AlertSpec(breaker_labels("forced"))  # resolved by a person while its alert still fires
    undelivered = AlertSpec(breaker_labels("undelivered"))
    change = AlertSpec(breaker_labels("manual", alertname="CircuitBreakerManualState", severity="info"))
    for spec in (finished, live, forced, undelivered, change):
        await bot.receive(webhook((spec, "firing"), group_key=str(spec.labels)))
    await bot.settle()
    ids = {i.title.split(" ")[0]: i.id for i in await rows(bot.db, incidents)}
    await bot.engine.resolve(ids["forced"], "<@U0ONCALL>")
    for spec in (finished, undelivered, change):
        await bot.receive(webhook((spec, "resolved"), group_key=str(spec.labels)))
    await bot.settle()
    bot.clock.advance(600)
    await bot.engine.tick()  # finished and undelivered resolve; their resolve events wait in the outbox
    async with bot.db.transaction() as conn:  # PagerDuty refuses undelivered's resolve for now
        await conn.execute(
            update(outbox)
            .where(outbox.c.incident_id == ids["undelivered"], outbox.c.status == "pending")
            .values(next_attempt_at=bot.clock() + 100 * DAY)
        )
    await bot.settle()
    stray = webhook((AlertSpec(breaker_labels("late")), "firing"), group_key="late")
    await bot.receive(stray)  # stored, not yet processed (the processor is behind)
    bot.clock.advance(2 * DAY)

    pruned = await bot.retention.prune()
    assert pruned.incidents == 1
    left = {i.title.split(" ")[0] for i in await rows(bot.db, incidents)}
    assert left == {"live", "forced", "undelivered"}
    assert {r.incident_id for r in await rows(bot.db, events)} == {ids["live"], ids["forced"], ids["undelivered"]}
    assert ids["finished"] not in {r.incident_id for r in await rows(bot.db, outbox)}
    assert [r for r in await rows(bot.db, slack_cards) if r.incident_id == ids["finished"]] == []
    assert {a.labels["circuit_breaker_name"] for a in await rows(bot.db, alerts)} == {"live", "forced", "undelivered"}
    assert [w.payload["groupKey"] for w in await rows(bot.db, webhooks)] == ["late"]  # unprocessed: kept
    pending = {r.incident_id for r in await rows(bot.db, outbox) if r.status == "pending"}
    assert pending == {ids["undelivered"]}

    async with bot.db.transaction() as conn:  # PagerDuty took it at last
        await conn.execute(
            update(outbox).where(outbox.c.status == "pending").values(status="sent", sent_at=bot.clock())
        )
    bot.clock.advance(2 * DAY)
    await bot.retention.prune()
    assert {i.title.split(" ")[0] for i in await rows(bot.db, incidents)} == {"live", "forced"}


async def test_each_batch_deletes_at_most_batch_rows(pipeline: Callable[..., Pipeline]) -> None:
    """However much is due, one transaction deletes at most ``batch`` rows of a table: the database
    is never held for long."""
    bot = pipeline(keep=HOUR, batch=10)
    for index in range(25):
        spec = AlertSpec(breaker_labels(f"b{index}"))
        await bot.receive(webhook((spec, "firing"), group_key=f"g{index}"))
        await bot.receive(webhook((spec, "resolved"), group_key=f"g{index}"))
    await bot.settle()
    bot.clock.advance(600)
    await bot.settle()
    bot.clock.advance(2 * HOUR)
    deleted: list[int] = []

    def count(conn: Connection, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE"):
            deleted.append(cursor.rowcount)

    event.listen(bot.db.engine.sync_engine, "after_cursor_execute", count)
    try:
        pruned = await bot.retention.prune()
    finally:
        event.remove(bot.db.engine.sync_engine, "after_cursor_execute", count)
    assert (pruned.webhooks, pruned.incidents) == (50, 25)
    assert max(deleted) <= 10 * 20  # an incident's batch takes its own rows with it: 10 incidents' worth
    assert (await bot.counts())["incidents"] == 0
    assert sum(1 for rowcount in deleted if rowcount) >= 50 // 10 + 25 // 10  # in several batches


async def test_the_bot_prunes_in_the_background(tmp_path: Path) -> None:
    settings = Settings(
        webhook_token=SecretStr("t"),
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        dry_run=True,
        retention=2.0,
        resolve_after=0.2,
    )
    bot = Bot(settings)
    await bot.start()
    try:
        spec = AlertSpec(breaker_labels("openai"))
        for status in ("firing", "resolved"):
            payload = webhook((spec, status))
            await bot.writer.write(Webhook.model_validate(payload).dedupe_key(), payload)
        deadline = time.monotonic() + 60
        seen_incident = False
        while True:
            async with bot.db.transaction() as conn:
                found = int((await conn.execute(select(func.count()).select_from(incidents))).scalar_one())
                stored = int((await conn.execute(select(func.count()).select_from(webhooks))).scalar_one())
            seen_incident = seen_incident or found > 0
            if seen_incident and found == 0 and stored == 0:
                break
            assert time.monotonic() < deadline, f"not pruned: {found} incident(s), {stored} webhook(s)"
            await asyncio.sleep(0.1)
        assert bot.metrics.registry.get_sample_value("incident_bot_pruned_rows_total", {"table": "incidents"}) == 1
    finally:
        await bot.stop()
