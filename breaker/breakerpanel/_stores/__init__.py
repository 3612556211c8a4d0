"""State stores: where breakers of several replicas share their state.

A store is attached to breakers (or to a :class:`~breakerpanel.BreakerRegistry`, which attaches every
breaker it creates). :class:`MemoryStore`, the default, shares nothing: each process decides
alone. :class:`RedisStore` shares state changes at once and window counts periodically through
Redis, without touching the call path. See ``docs/shared-state.md``.
"""

from ._base import MemoryStore, StateStore, StoreStatus
from ._redis import DEFAULT_SYNC_INTERVAL, RedisStore

__all__ = ["DEFAULT_SYNC_INTERVAL", "MemoryStore", "RedisStore", "StateStore", "StoreStatus"]
