"""The incident bot's own pipeline, from a stored Alertmanager webhook to its senders, for the consumer tests.

What reaches PagerDuty and Slack in the consumer tests is what the bot really sends: webhooks go through the
engine (incidents, outbox items) and the outbox worker hands the items to the real :class:`PagerDutySender` and
:class:`SlackSender`, pointed at a Pact mock server. Nothing is sent by hand. The clock is fixed, so timestamps
in what is sent are the same on every run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

from breakerpanel.guards import RateLimiter, RateLimitPolicy
from breakerpanel.incident_bot.db import Database, outbox
from breakerpanel.incident_bot.delivery import Sender
from breakerpanel.incident_bot.incidents import Engine, EngineConfig
from breakerpanel.incident_bot.metrics import BotMetrics
from breakerpanel.incident_bot.outbox import OutboxWorker, WorkerConfig
from breakerpanel.incident_bot.routing import RoutingFile
from breakerpanel.incident_bot.vocabulary import Target
from tests.incident_bot.support import ManualClock, rows, store

__all__ = ["PUBLIC_URL", "BotPipeline", "running_bot"]

#: The bot's own address, as links in what it sends show it.
PUBLIC_URL: Final = "https://incident-bot.example"


class BotPipeline:
    """An engine and an outbox worker over one SQLite file, with the given senders."""

    def __init__(self, engine: Engine, worker: OutboxWorker, db: Database) -> None:
        self.engine = engine
        self.worker = worker
        self.db = db

    async def receive(self, webhook: Mapping[str, Any]) -> None:
        """Store a webhook as the intake does and process it (incidents, outbox items)."""
        await store(self.db, webhook)
        await self.engine.process_pending()

    async def deliver(self, *, within: float = 20.0) -> None:
        """Hand every pending item to its sender. A contract test expects every request to be answered as the
        contract says the first time, so the first failed attempt fails the test with the sender's error."""
        deadline = time.monotonic() + within
        while True:
            await self.worker.drain_once()
            items = await rows(self.db, outbox)
            failed = [(i.target, i.action, i.last_error) for i in items if i.last_error]
            assert not failed, f"a delivery failed: {failed}"
            if all(i.status == "sent" for i in items):
                return
            assert time.monotonic() < deadline, f"still pending: {[(i.target, i.action) for i in items]}"
            await asyncio.sleep(0.02)


@asynccontextmanager
async def running_bot(
    directory: Path, routing: RoutingFile, senders: Mapping[Target, Sender]
) -> AsyncIterator[BotPipeline]:
    """The bot's pipeline over a fresh database in ``directory``, closed (senders too) on exit."""
    db = Database(f"sqlite+aiosqlite:///{directory / 'incident_bot.db'}")
    await db.create()
    clock = ManualClock()
    engine = Engine(db, EngineConfig(resolve_after=300.0, routing=routing), clock=clock)
    worker = OutboxWorker(
        db,
        senders,
        WorkerConfig(
            replica_id="contract-test",
            claim_timeout=30,
            quick_attempts=1,
            max_backoff=1,
            poll_interval=0.05,
            public_url=PUBLIC_URL,
        ),
        pacers={target: RateLimiter(target, RateLimitPolicy(limit=100, period=1.0)) for target in senders},
        metrics=BotMetrics(),
        clock=clock,
    )
    try:
        yield BotPipeline(engine, worker, db)
    finally:
        await worker.close()
        await db.dispose()
