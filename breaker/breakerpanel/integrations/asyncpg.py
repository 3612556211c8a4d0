"""asyncpg behind a breaker: connection acquisition and queries.

>>> from breakerpanel.integrations.asyncpg import ProtectedPool
>>> # pool = await ProtectedPool.create("postgresql://app@db/app", breaker=registry["postgres.query"])
>>> # rows = await pool.fetch("SELECT id, body FROM documents WHERE id = any($1)", ids)

Connection failures, too many connections and an administrator shutdown count against PostgreSQL
and reach the caller as :class:`~breakerpanel.DependencyError`; integrity, syntax and data errors are
the caller's and are raised as is, uncounted (the ``postgres_errors`` preset, by SQLSTATE).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from breakerpanel._extras import require as require_extra

# A missing extra: one line naming it, not a bare ModuleNotFoundError from below.
require_extra("breakerpanel.integrations.asyncpg", "postgres", "asyncpg")

import asyncpg

from breakerpanel._breaker import CircuitBreaker
from breakerpanel._classify import Classifier
from breakerpanel.presets import postgres_errors

from ._guard import guarded, record_exception

__all__ = ["ProtectedConnection", "ProtectedPool"]


class _Queries:
    """The query methods, through the breaker, over ``self._target`` (a pool or a connection)."""

    _target: Any
    breaker: CircuitBreaker
    classifier: Classifier
    translate_errors: bool

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await guarded(
            self.breaker, self.classifier, self.translate_errors, getattr(self._target, method), *args, **kwargs
        )

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        status: str = await self._call("execute", query, *args, timeout=timeout)
        return status

    async def executemany(self, command: str, args: Any, *, timeout: float | None = None) -> None:
        await self._call("executemany", command, args, timeout=timeout)

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._call("fetch", query, *args, timeout=timeout)
        return rows

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._call("fetchrow", query, *args, timeout=timeout)
        return row

    async def fetchval(self, query: str, *args: Any, column: int = 0, timeout: float | None = None) -> Any:
        return await self._call("fetchval", query, *args, column=column, timeout=timeout)


class ProtectedConnection(_Queries):
    """A pooled connection whose queries go through the breaker."""

    def __init__(self, connection: Any, pool: ProtectedPool) -> None:
        self._target = connection
        self.breaker = pool.breaker
        self.classifier = pool.classifier
        self.translate_errors = pool.translate_errors

    @property
    def raw(self) -> Any:
        """The asyncpg connection itself (unprotected)."""
        return self._target

    @asynccontextmanager
    async def transaction(self, **options: Any) -> AsyncIterator[ProtectedConnection]:
        """A transaction whose BEGIN, COMMIT and ROLLBACK go through the breaker too."""
        tx = self._target.transaction(**options)
        await guarded(self.breaker, self.classifier, self.translate_errors, tx.start)
        try:
            yield self
        except BaseException:
            # A connection that is gone rolled its transaction back with it: calling ROLLBACK on
            # it would count the loss a second time and replace the body's error with its own.
            if not _closed(self._target):
                await guarded(self.breaker, self.classifier, self.translate_errors, tx.rollback)
            raise
        await guarded(self.breaker, self.classifier, self.translate_errors, tx.commit)


def _closed(connection: Any) -> bool:
    """Whether a pooled connection is gone: closed, or taken back by its pool when it was lost."""
    try:
        return bool(connection.is_closed())
    except asyncpg.InterfaceError:  # "released back to the pool": the pool noticed the loss first
        return True


class ProtectedPool(_Queries):
    """An asyncpg pool behind a breaker."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        breaker: CircuitBreaker,
        *,
        classifier: Classifier | None = None,
        translate_errors: bool = True,
    ) -> None:
        self._target = pool
        self.breaker = breaker
        self.classifier = classifier or postgres_errors()
        self.translate_errors = translate_errors

    @classmethod
    async def create(
        cls,
        dsn: str,
        *,
        breaker: CircuitBreaker,
        classifier: Classifier | None = None,
        translate_errors: bool = True,
        min_size: int = 0,
        **pool_options: Any,
    ) -> ProtectedPool:
        """Create the pool through the breaker. ``min_size`` is 0 by default, so the pool opens
        connections when needed: an application can start while PostgreSQL is down."""
        classifier = classifier or postgres_errors()
        if min_size == 0:
            # Opens no connection, so it tells nothing of PostgreSQL: not a call (a success here
            # could close a half-open breaker while the server is down).
            pool = await asyncpg.create_pool(dsn, min_size=0, **pool_options)
        else:
            pool = await guarded(
                breaker, classifier, translate_errors, asyncpg.create_pool, dsn, min_size=min_size, **pool_options
            )
        return cls(pool, breaker, classifier=classifier, translate_errors=translate_errors)

    @property
    def raw(self) -> asyncpg.Pool:
        """The asyncpg pool itself (unprotected)."""
        pool: asyncpg.Pool = self._target
        return pool

    @asynccontextmanager
    async def acquire(self, *, timeout: float | None = None) -> AsyncIterator[ProtectedConnection]:
        """A connection from the pool: acquiring it is a call through the breaker."""
        permit = self.breaker.acquire()
        try:
            connection = await self._target.acquire(timeout=timeout)
        except BaseException as exc:
            error = record_exception(permit, self.classifier, exc, self.translate_errors)
            if error is exc:
                raise
            raise error from exc
        permit.success()
        try:
            yield ProtectedConnection(connection, self)
        finally:
            await self._target.release(connection)

    async def close(self) -> None:
        await self._target.close()
