"""The answer cache behind the ``answer`` feature's cached-response step: Redis when the service
has one (every replica then serves the same recent answers), else process memory.

Entries are :class:`~demo.service.models.Answer` objects as JSON; what comes back out is marked
``served_by: cache``. Reads go through the ``redis.get`` breaker and writes through ``redis.set``.
"""

from __future__ import annotations

import logging
from typing import Any

from redis.asyncio import ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from breakerpanel import MISSING, AsyncResponseCache, BreakerError, CircuitBreaker, MemoryCache
from breakerpanel.integrations.redis import ProtectedRedis, RedisCache

from .models import Answer

__all__ = ["AnswerCache"]

logger = logging.getLogger(__name__)

_PREFIX = "breakerpanel-demo:answer:"


def _unchanged(raw: str | bytes) -> str | bytes:
    return raw


class AnswerCache:
    """An ``AsyncResponseCache`` of answers over a reader and a writer (the same memory cache, or
    two Redis clients on one connection pool, each behind its own endpoint breaker)."""

    def __init__(self, reader: AsyncResponseCache, writer: AsyncResponseCache, *, kind: str) -> None:
        self._reader = reader
        self._writer = writer
        self._clients: list[ProtectedRedis] = []
        self.kind = kind

    @classmethod
    def in_memory(cls, *, max_entries: int = 1024) -> AnswerCache:
        memory = MemoryCache(max_entries=max_entries, ttl=600)
        return cls(memory, memory, kind="memory")

    @classmethod
    def redis(cls, url: str, *, reads: CircuitBreaker, writes: CircuitBreaker) -> AnswerCache:
        # Short timeouts and no retries: a cache that makes users wait is worse than no cache.
        pool = ConnectionPool.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0))
        reader = ProtectedRedis(connection_pool=pool, breaker=reads)
        writer = ProtectedRedis(connection_pool=pool, breaker=writes)
        cache = cls(
            RedisCache(reader, prefix=_PREFIX, dumps=str, loads=_unchanged),
            RedisCache(writer, prefix=_PREFIX, dumps=str, loads=_unchanged),
            kind="redis",
        )
        cache._clients = [reader, writer]
        return cache

    async def aget(self, key: str) -> Any:
        """The cached answer, or ``MISSING``. A Redis failure is raised: the fallback chain counts
        the cache step as failed and moves on to the next one."""
        raw = await self._reader.aget(key)
        if raw is MISSING:
            return MISSING
        answer = Answer.model_validate_json(raw)
        return answer.model_copy(update={"served_by": "cache"})

    async def aset(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store an answer. A Redis failure is logged, not raised: the chain stores each answer
        after it was produced, and a cache that is down must not turn that answer into an error."""
        if not isinstance(value, Answer):
            return
        try:
            await self._writer.aset(key, value.model_dump_json(), ttl)
        except BreakerError as exc:
            logger.debug("answer not cached: %s", exc)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
        if self._clients:
            await self._clients[0].connection_pool.disconnect()
