"""Seeding the corpus into the database and Qdrant at startup, and again whenever it is lost.

Every step is idempotent (create if missing, upsert by id), so any number of replicas and
restarts converge on the same data, against the fakes or the real servers. A dependency that is
down at startup does not stop the service: seeding is retried in the background every
``retry_s`` seconds, and a search that finds the collection gone asks for it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

from .corpus import Document
from .llm import Providers
from .store import DocumentStore
from .vectors import VectorIndex

__all__ = ["Seeder"]

logger = logging.getLogger(__name__)


class Seeder:
    def __init__(
        self,
        documents: Sequence[Document],
        store: DocumentStore,
        index: VectorIndex,
        providers: Providers,
        *,
        retry_s: float,
    ) -> None:
        self.documents = tuple(documents)
        self.store = store
        self.index = index
        self.providers = providers
        self.retry_s = retry_s
        self.database_seeded = False
        self.vectors_seeded = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def done(self) -> bool:
        return self.database_seeded and self.vectors_seeded

    async def seed_once(self) -> bool:
        """Try each part not seeded yet; whether everything is seeded now."""
        if not self.database_seeded:
            self.database_seeded = await self._attempt("database", self._seed_database)
        if not self.vectors_seeded:
            self.vectors_seeded = await self._attempt("vectors", self._seed_vectors)
        return self.done

    def start(self) -> None:
        """Keep seeding in the background until done, and again after :meth:`invalidate_vectors`."""
        self._task = asyncio.create_task(self._run(), name="demo-seeder")

    def invalidate_vectors(self) -> None:
        """The collection is gone: seed it again now."""
        self.vectors_seeded = False
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            if not self.done:
                await self.seed_once()
            if self.done:
                await self._wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.retry_s)
            self._wake.clear()

    async def _attempt(self, part: str, seed: Callable[[], Awaitable[None]]) -> bool:
        try:
            await seed()
        except Exception as exc:  # whatever failed, the part is retried later
            logger.warning("seeding the %s failed, retrying in %gs: %r", part, self.retry_s, exc)
            return False
        logger.info("seeded the %s with %d documents", part, len(self.documents))
        return True

    async def _seed_database(self) -> None:
        await self.store.seed(self.documents)

    async def _seed_vectors(self) -> None:
        vectors = await self.providers.embed([f"{doc.title}. {doc.body}" for doc in self.documents])
        await self.index.ensure_collection(self.providers.settings.embedding_dim)
        await self.index.upsert(
            [
                (doc.id, vector, {"doc_id": doc.id, "title": doc.title})
                for doc, vector in zip(self.documents, vectors, strict=True)
            ]
        )
