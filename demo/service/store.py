"""Where the documents' bodies live: PostgreSQL when a database URL is set, else a SQLite file.

Both go through the ``postgres.query`` breaker and raise breaker errors only
(``CircuitOpenError`` when it is open, ``DependencyError`` when a call failed), so the caller
handles one family whichever database it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from breakerpanel import CircuitBreaker

from .corpus import Document
from .settings import Settings
from .store_postgres import PostgresDocuments
from .store_sqlite import SqliteDocuments

__all__ = ["DocumentStore", "open_store"]


class DocumentStore(Protocol):
    kind: str

    async def seed(self, documents: Sequence[Document]) -> None:
        """Create the table if needed and write ``documents`` (existing ids are updated)."""

    async def fetch(self, ids: Sequence[int]) -> dict[int, Document]:
        """The documents with these ids, by id."""

    async def aclose(self) -> None: ...


def open_store(settings: Settings, breaker: CircuitBreaker) -> DocumentStore:
    if settings.database_url:
        return PostgresDocuments(settings.database_url, breaker)
    return SqliteDocuments(settings.sqlite_path, breaker)
