"""SQLAlchemy's async engine behind a breaker.

>>> from sqlalchemy.ext.asyncio import create_async_engine
>>> from breakerpanel.integrations.sqlalchemy import ProtectedEngine
>>> # engine = ProtectedEngine(create_async_engine("postgresql+asyncpg://app@db/app"), breaker)
>>> # async with engine.connect() as conn:
>>> #     rows = (await conn.execute(text("SELECT 1"))).all()

Checking a connection out of the pool and every statement go through the breaker, classified by
SQLSTATE like asyncpg's (``postgres_errors``): SQLAlchemy wraps driver errors in ``DBAPIError``
with the driver's error as ``orig``, which the preset reads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from breakerpanel._extras import require as require_extra

# A missing extra: one line naming it, not a bare ModuleNotFoundError from below.
require_extra("breakerpanel.integrations.sqlalchemy", "postgres", "sqlalchemy")

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from breakerpanel._breaker import CircuitBreaker
from breakerpanel._classify import Classifier
from breakerpanel.presets import postgres_errors

from ._guard import guarded

__all__ = ["ProtectedAsyncConnection", "ProtectedEngine"]


class ProtectedAsyncConnection:
    """An ``AsyncConnection`` whose statements go through the breaker."""

    def __init__(self, connection: AsyncConnection, engine: ProtectedEngine) -> None:
        self.raw = connection
        self._engine = engine

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        e = self._engine
        return await guarded(e.breaker, e.classifier, e.translate_errors, getattr(self.raw, method), *args, **kwargs)

    async def execute(self, statement: Any, parameters: Any = None, **kwargs: Any) -> Any:
        return await self._call("execute", statement, parameters, **kwargs)

    async def scalar(self, statement: Any, parameters: Any = None, **kwargs: Any) -> Any:
        return await self._call("scalar", statement, parameters, **kwargs)

    async def scalars(self, statement: Any, parameters: Any = None, **kwargs: Any) -> Any:
        return await self._call("scalars", statement, parameters, **kwargs)

    async def exec_driver_sql(self, statement: str, parameters: Any = None, **kwargs: Any) -> Any:
        return await self._call("exec_driver_sql", statement, parameters, **kwargs)

    async def commit(self) -> None:
        await self._call("commit")

    async def rollback(self) -> None:
        await self._call("rollback")


class ProtectedEngine:
    """An ``AsyncEngine`` behind a breaker."""

    def __init__(
        self,
        engine: AsyncEngine,
        breaker: CircuitBreaker,
        *,
        classifier: Classifier | None = None,
        translate_errors: bool = True,
    ) -> None:
        self.raw = engine
        self.breaker = breaker
        self.classifier = classifier or postgres_errors()
        self.translate_errors = translate_errors

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[ProtectedAsyncConnection]:
        """A connection: checking it out of the pool is a call through the breaker."""
        connection = self.raw.connect()
        await guarded(self.breaker, self.classifier, self.translate_errors, connection.start)
        try:
            yield ProtectedAsyncConnection(connection, self)
        finally:
            await connection.close()

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[ProtectedAsyncConnection]:
        """A connection in a transaction, committed at the end (through the breaker) or rolled
        back on error."""
        async with self.connect() as connection:
            await guarded(self.breaker, self.classifier, self.translate_errors, connection.raw.begin)
            try:
                yield connection
            except BaseException:
                await connection.raw.rollback()
                raise
            await connection.commit()

    async def dispose(self) -> None:
        await self.raw.dispose()
