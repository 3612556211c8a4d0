"""redis-py (asyncio) behind a breaker, and a Redis-backed response cache.

>>> from breakerpanel import CircuitBreaker
>>> from breakerpanel.integrations.redis import ProtectedRedis
>>> client = ProtectedRedis.from_url("redis://127.0.0.1:6379/0", breaker=CircuitBreaker("redis"))

Every command (``get``, ``set``, pipelines...) goes through the breaker. Connection errors,
timeouts, a loading server and cluster-down errors count against Redis and reach the caller as
:class:`~breakerpanel.DependencyError`; a command Redis refused (``ResponseError``: wrong type, unknown
command) is the caller's mistake and is raised as is, uncounted. The client is built without
redis-py's own retries: while Redis is down, retrying each command with backoff only delays the
breaker's verdict and every fallback.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from breakerpanel._extras import require as require_extra

# A missing extra: one line naming it, not a bare ModuleNotFoundError from below.
require_extra("breakerpanel.integrations.redis", "redis", "redis")

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from breakerpanel._breaker import CircuitBreaker
from breakerpanel._cache import MISSING, checked_ttl
from breakerpanel._classify import Classifier
from breakerpanel.presets import redis_errors

from ._guard import guarded

__all__ = ["ProtectedPipeline", "ProtectedRedis", "RedisCache"]


def _no_retries() -> Retry:
    return Retry(NoBackoff(), 0)


class ProtectedRedis(aioredis.Redis):
    """A ``redis.asyncio.Redis`` whose commands go through ``breaker``."""

    def __init__(
        self,
        *args: Any,
        breaker: CircuitBreaker,
        classifier: Classifier | None = None,
        translate_errors: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("retry", _no_retries())
        super().__init__(*args, **kwargs)
        self.breaker = breaker
        self.classifier = classifier or redis_errors()
        self.translate_errors = translate_errors

    @classmethod
    def from_url(  # type: ignore[override]
        cls,
        url: str,
        *,
        breaker: CircuitBreaker,
        classifier: Classifier | None = None,
        translate_errors: bool = True,
        single_connection_client: bool = False,
        **kwargs: Any,
    ) -> ProtectedRedis:
        kwargs.setdefault("retry", _no_retries())
        # As redis-py's own from_url: the pool takes the connection options, the client its own.
        pool = aioredis.ConnectionPool.from_url(url, **kwargs)
        client = cls(
            connection_pool=pool,
            single_connection_client=single_connection_client,
            breaker=breaker,
            classifier=classifier,
            translate_errors=translate_errors,
        )
        client.auto_close_connection_pool = True
        return client

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        return await guarded(
            self.breaker, self.classifier, self.translate_errors, super().execute_command, *args, **options
        )

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> ProtectedPipeline:
        pipe = ProtectedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.breaker = self.breaker
        pipe.classifier = self.classifier
        pipe.translate_errors = self.translate_errors
        return pipe


class ProtectedPipeline(Pipeline):
    """A pipeline whose ``execute()`` is one call through the breaker, and so is each command it
    runs at once (``WATCH``, and the reads after it before ``MULTI``)."""

    breaker: CircuitBreaker
    classifier: Classifier
    translate_errors: bool

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        if not self.command_stack and not self.watching:
            return await super().execute(raise_on_error)  # nothing to send: no call, no success
        result: list[Any] = await guarded(
            self.breaker, self.classifier, self.translate_errors, super().execute, raise_on_error
        )
        return result

    async def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        return await guarded(
            self.breaker, self.classifier, self.translate_errors, super().immediate_execute_command, *args, **options
        )


class RedisCache:
    """A response cache in Redis, shared by every replica (for the cached-response fallback).

    Values are stored as JSON (``dumps``/``loads`` replaceable). Give it a client that does *not*
    go through the breaker the cache backs: the cache must still work while that dependency is
    down. When Redis itself fails, the cache step fails and the chain moves on.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "breakerpanel:cache:",
        ttl: float = 300.0,
        dumps: Callable[[Any], str] = json.dumps,
        loads: Callable[[str | bytes], Any] = json.loads,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = checked_ttl(ttl)
        self.dumps = dumps
        self.loads = loads

    async def aget(self, key: str) -> Any:
        raw = await self.client.get(self.prefix + key)
        return MISSING if raw is None else self.loads(raw)

    async def aset(self, key: str, value: Any, ttl: float | None = None) -> None:
        seconds = self.ttl if ttl is None else ttl
        expiry = None if seconds == math.inf else max(1, int(seconds * 1000))  # infinite: kept until evicted
        await self.client.set(self.prefix + key, self.dumps(value), px=expiry)
