"""Response caches for the cached-response fallback.

A cache stores the results of successful primary calls so that, when the dependency is down, a
recent answer can be served instead of an error. :class:`MemoryCache` (TTL and LRU, in process) is
built in; ``breakerpanel.integrations.redis.RedisCache`` shares entries between replicas.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import threading
from collections import OrderedDict
from copy import deepcopy
from typing import Any, Protocol, runtime_checkable

from ._clock import Clock, MonotonicClock
from ._exceptions import BreakerConfigError

__all__ = ["MISSING", "AsyncResponseCache", "MemoryCache", "ResponseCache", "checked_ttl", "default_cache_key"]


class _Missing:
    """The sentinel a cache returns for an absent key (``None`` may be a cached value)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


@runtime_checkable
class ResponseCache(Protocol):
    """A cache usable from sync and async code."""

    def get(self, key: str) -> Any:
        """The value, or :data:`MISSING`."""

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` for ``ttl`` seconds (the cache's default when ``None``)."""


@runtime_checkable
class AsyncResponseCache(Protocol):
    """A cache that needs I/O (Redis): async only."""

    async def aget(self, key: str) -> Any:
        """The value, or :data:`MISSING`."""

    async def aset(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` for ``ttl`` seconds (the cache's default when ``None``)."""


def checked_ttl(ttl: object) -> float:
    """A cache's time to live: a positive number of seconds (infinite: for ever). Not NaN, which
    keeps an entry for ever while looking like a number, nor a bool."""
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl > 0:
        raise BreakerConfigError("ttl", f"must be a positive number of seconds (got {ttl!r})")
    return float(ttl)


class MemoryCache:
    """An in-process cache with a time to live per entry and least-recently-used eviction.

    It keeps a deep copy of each value and serves a deep copy (as a Redis cache, which stores
    values serialised, does): a caller that changes the answer it got changes neither what is
    stored nor what the next caller is served. A value that cannot be copied is kept as it is.
    ``copy=False`` keeps and serves the objects themselves, for values nobody changes (strings,
    frozen models), without the copying's cost.

    >>> cache = MemoryCache(max_entries=2, ttl=60)
    >>> cache.set("a", 1); cache.set("b", 2); cache.get("a"); cache.set("c", 3)
    1
    >>> cache.get("b")  # the least recently used entry went
    MISSING
    """

    def __init__(
        self, *, max_entries: int = 1024, ttl: float = 300.0, clock: Clock | None = None, copy: bool = True
    ) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise BreakerConfigError("max_entries", f"must be a whole number >= 1 (got {max_entries!r})")
        self.max_entries = max_entries
        self.ttl = checked_ttl(ttl)
        self.copy = copy
        self._now = (clock or MonotonicClock()).now
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return MISSING
            expires, value = entry
            if self._now() >= expires:
                del self._entries[key]
                return MISSING
            self._entries.move_to_end(key)
        return _copied(value) if self.copy else value

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        if self.copy:
            value = _copied(value)
        expires = self._now() + (self.ttl if ttl is None else ttl)
        with self._lock:
            self._entries[key] = (expires, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    async def aget(self, key: str) -> Any:
        return self.get(key)

    async def aset(self, key: str, value: Any, ttl: float | None = None) -> None:
        self.set(key, value, ttl)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"MemoryCache(entries={len(self._entries)}, max_entries={self.max_entries}, ttl={self.ttl:g})"


def _copied(value: Any) -> Any:
    """A deep copy of ``value``, or ``value`` itself when it cannot be copied (it holds a lock, a
    connection): served as it is rather than not cached at all."""
    try:
        return deepcopy(value)
    except Exception:
        return value


def default_cache_key(*args: Any, **kwargs: Any) -> str:
    """A stable key for a call's arguments: a SHA-256 of their JSON. A value JSON cannot hold is
    taken whole, in a form the same in every process (replicas share a Redis cache): a
    dataclass or a pydantic model by its fields, a set sorted, a numeric array by its type,
    shape and bytes, the rest by its pickle. Its ``repr`` may leave parts out (a numpy
    array's elides all but its ends, a dataclass's skips fields marked ``repr=False``), and two
    calls whose arguments differ only there would share an answer. ``repr`` only for what
    cannot be pickled (a client, a lock: handles, whose repr names the object)."""
    return hashlib.sha256(_canonical([args, kwargs]).encode()).hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=_whole, separators=(",", ":"))


def _whole(value: Any) -> dict[str, Any]:
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Each field as it is (not asdict(), which deep-copies them all, and fails on a lock).
        return {"type": kind, "fields": {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}}
    if isinstance(value, set | frozenset):  # iterated in an order each process seeds anew
        return {"type": kind, "items": sorted(_canonical(item) for item in value)}
    fields = getattr(type(value), "model_fields", None)
    if isinstance(fields, dict) and hasattr(value, "__pydantic_extra__"):
        # pydantic: every field as it is (model_dump() leaves out exclude=True fields and lists a
        # set in its hash order; the pickle holds a set of field names, in that order too).
        taken = {name: getattr(value, name) for name in fields}
        return {"type": kind, "fields": taken, "extra": value.__pydantic_extra__}
    dtype = getattr(value, "dtype", None)
    if hasattr(value, "tobytes") and hasattr(value, "shape") and not getattr(dtype, "hasobject", True):
        # numpy, of numbers: its bytes (an object array's bytes are pointers: pickled below)
        digest = hashlib.sha256(value.tobytes()).hexdigest()
        return {"type": kind, "dtype": str(value.dtype), "shape": list(value.shape), "bytes": digest}
    try:
        data = pickle.dumps(value, protocol=5)
    except Exception:
        return {"type": kind, "repr": repr(value)}
    return {"type": kind, "pickle": hashlib.sha256(data).hexdigest()}
