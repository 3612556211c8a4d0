"""The documents in a SQLite file, for running without PostgreSQL.

sqlite3 is blocking, so each operation runs in a worker thread with a connection of its own; the
call counts on the ``postgres.query`` breaker like a PostgreSQL query, and a SQLite error reaches
the caller as a ``DependencyError``, as asyncpg's do through the integration.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from breakerpanel import CircuitBreaker, DependencyError

from .corpus import Document

__all__ = ["SqliteDocuments"]

T = TypeVar("T")

_CREATE = "CREATE TABLE IF NOT EXISTS demo_documents (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT NOT NULL)"
_UPSERT = (
    "INSERT INTO demo_documents (id, title, body) VALUES (?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET title = excluded.title, body = excluded.body"
)


class SqliteDocuments:
    kind = "sqlite"

    def __init__(self, path: Path, breaker: CircuitBreaker) -> None:
        self.path = path
        self._breaker = breaker

    async def seed(self, documents: Sequence[Document]) -> None:
        rows = [(d.id, d.title, d.body) for d in documents]

        def write(db: sqlite3.Connection) -> None:
            db.execute(_CREATE)
            db.executemany(_UPSERT, rows)

        await self._run(write)

    async def fetch(self, ids: Sequence[int]) -> dict[int, Document]:
        query = f"SELECT id, title, body FROM demo_documents WHERE id IN ({', '.join('?' * len(ids))})"
        wanted = list(ids)
        rows = await self._run(lambda db: db.execute(query, wanted).fetchall() if wanted else [])
        return {row[0]: Document(id=row[0], title=row[1], body=row[2]) for row in rows}

    async def aclose(self) -> None:
        return None

    async def _run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        def in_thread() -> T:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=2.0)
            try:
                with db:  # one transaction: committed on success, rolled back on error
                    return operation(db)
            finally:
                db.close()

        async def call() -> T:
            return await asyncio.to_thread(in_thread)

        try:
            return await self._breaker.acall(call)
        except sqlite3.Error as exc:
            raise DependencyError(self._breaker.name, type(exc).__name__, str(exc)) from exc
