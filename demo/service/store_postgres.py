"""The documents in PostgreSQL, through asyncpg and the breaker integration."""

from __future__ import annotations

from collections.abc import Sequence

from breakerpanel import CircuitBreaker
from breakerpanel.integrations.asyncpg import ProtectedPool

from .corpus import Document

__all__ = ["PostgresDocuments"]

# Prefixed: the demo may share its database with the incident bot.
_CREATE = "CREATE TABLE IF NOT EXISTS demo_documents (id integer PRIMARY KEY, title text NOT NULL, body text NOT NULL)"
_UPSERT = (
    "INSERT INTO demo_documents (id, title, body) VALUES ($1, $2, $3) "
    "ON CONFLICT (id) DO UPDATE SET title = excluded.title, body = excluded.body"
)
_FETCH = "SELECT id, title, body FROM demo_documents WHERE id = any($1::integer[])"


class PostgresDocuments:
    kind = "postgres"

    def __init__(self, dsn: str, breaker: CircuitBreaker) -> None:
        self._dsn = dsn
        self._breaker = breaker
        self._pool: ProtectedPool | None = None

    async def _connected(self) -> ProtectedPool:
        # Created on first use, through the breaker; min_size 0 opens no connection until a query
        # needs one, so the service starts while PostgreSQL is down.
        if self._pool is None:
            self._pool = await ProtectedPool.create(
                self._dsn, breaker=self._breaker, min_size=0, max_size=5, timeout=2.0, command_timeout=2.0
            )
        return self._pool

    async def seed(self, documents: Sequence[Document]) -> None:
        pool = await self._connected()
        await pool.execute(_CREATE)
        await pool.executemany(_UPSERT, [(d.id, d.title, d.body) for d in documents])

    async def fetch(self, ids: Sequence[int]) -> dict[int, Document]:
        pool = await self._connected()
        rows = await pool.fetch(_FETCH, list(ids))
        return {row["id"]: Document(id=row["id"], title=row["title"], body=row["body"]) for row in rows}

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
