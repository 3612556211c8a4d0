"""Durable intake: a webhook is committed to the database before Alertmanager gets its 2xx.

Committing each webhook on its own would cap intake at one disk flush per webhook. The writer
commits in groups instead: the webhooks that arrive while one commit flushes are written together
by the next, and each request is answered once the commit holding it is done. A failed commit
fails every request in it with 5xx, so Alertmanager retries them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from .db import Database, now, webhooks
from .rows import JsonObject
from .tasks import cancel_when_idle

__all__ = ["Accepted", "IntakeWriter"]

logger = logging.getLogger("breakerpanel.incident_bot.intake")

#: Webhooks written per commit at most.
MAX_BATCH = 500
#: PostgreSQL's deadlock_detected and serialization_failure: the transaction may simply be retried.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
_COMMIT_ATTEMPTS = 3


@dataclass(frozen=True)
class Accepted:
    webhook_id: int | None
    duplicate: bool


@dataclass
class _Pending:
    dedupe_key: str
    payload: JsonObject
    done: asyncio.Future[Accepted]


class IntakeWriter:
    """Group-commits webhooks; :meth:`write` returns once the webhook is durably stored."""

    def __init__(self, db: Database, *, on_written: asyncio.Event | None = None) -> None:
        self.db = db
        self.on_written = on_written
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._busy = asyncio.Lock()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="intake-writer")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_when_idle(self._task, self._busy, grace=10)
            self._task = None
        while not self._queue.empty():  # answer what is left: 5xx, Alertmanager retries
            item = self._queue.get_nowait()
            if not item.done.done():
                item.done.set_exception(RuntimeError("the bot is stopping"))

    async def write(self, dedupe_key: str, payload: JsonObject) -> Accepted:
        if self._task is None or self._task.done():
            raise RuntimeError("the intake writer is not running")
        done: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(dedupe_key, payload, done))
        return await done

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                async with self._busy:
                    results = await self._commit(batch)
            except asyncio.CancelledError:
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(RuntimeError("the bot is stopping"))
                raise
            except Exception as exc:
                logger.error("could not store %d webhook(s): %s", len(batch), exc)
                for item in batch:
                    if not item.done.done():
                        item.done.set_exception(exc)
                continue
            for item, result in zip(batch, results, strict=True):
                if not item.done.done():
                    item.done.set_result(result)
            if self.on_written is not None:
                self.on_written.set()

    async def _commit(self, batch: list[_Pending]) -> list[Accepted]:
        # One multi-row insert in key order: one round trip per batch, and replicas inserting the
        # same notifications lock their keys in the same order, so they cannot deadlock; a
        # deadlock or serialization failure that happens anyway is retried as a whole.
        first_payload: dict[str, JsonObject] = {}
        for item in batch:
            first_payload.setdefault(item.dedupe_key, item.payload)
        keys = sorted(first_payload)
        for attempt in range(1, _COMMIT_ATTEMPTS + 1):
            try:
                existing, inserted = await self._insert_new(keys, first_payload)
                break
            except DBAPIError as exc:
                if attempt == _COMMIT_ATTEMPTS or getattr(exc.orig, "sqlstate", None) not in _RETRYABLE_SQLSTATES:
                    raise
                logger.info("intake commit retried after %s", getattr(exc.orig, "sqlstate", None))
        results: list[Accepted] = []
        answered: set[str] = set()
        for item in batch:
            key = item.dedupe_key
            if key in inserted and key not in answered:
                results.append(Accepted(inserted[key], duplicate=False))
            else:  # stored before, by us or (id unknown: None) by another replica right now
                results.append(Accepted(existing.get(key, inserted.get(key)), duplicate=True))
            answered.add(key)
        return results

    async def _insert_new(
        self, keys: list[str], payloads: dict[str, JsonObject]
    ) -> tuple[dict[str, int], dict[str, int]]:
        """(ids of keys stored before, ids of keys stored now), in one transaction."""
        at = now()
        async with self.db.transaction() as conn:
            existing: dict[str, int] = {
                row.dedupe_key: row.id
                for row in await conn.execute(
                    select(webhooks.c.dedupe_key, webhooks.c.id).where(webhooks.c.dedupe_key.in_(keys))
                )
            }
            new = [key for key in keys if key not in existing]
            if not new:
                return existing, {}
            # Another replica may store the same notification meanwhile: the unique key decides.
            statement = (
                self.db.insert(webhooks)
                .values([{"dedupe_key": key, "received_at": at, "payload": payloads[key]} for key in new])
                .on_conflict_do_nothing(index_elements=[webhooks.c.dedupe_key])
                .returning(webhooks.c.dedupe_key, webhooks.c.id)
            )
            inserted = {row.dedupe_key: row.id for row in await conn.execute(statement)}
        return existing, inserted
