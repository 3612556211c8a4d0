"""Breaker state shared through Redis (standalone, or Redis Cluster).

Design
------
Nothing here runs on the call path. The store owns one daemon thread running an asyncio loop with
redis-py's asyncio client, so it serves sync (``call``) and async (``acall``) code alike, and a slow
or dead Redis never blocks a caller.

- **State changes** made by a breaker here (a trip, probes closing it, a manual change) reach the
  store as listener events, are published by an atomic Lua script that bumps the breaker's
  generation (compare-and-set on the generation this replica last saw; manual changes always win)
  and broadcast on one pub/sub channel. Every replica follows a record whose generation is higher
  than the one it knows. Half-open is not shared: each replica gets there when the shared open
  deadline passes, and its probes' verdict is shared.
- **Window counts**: every ``sync_interval`` each replica writes its window (calls, failures, slow
  calls, whether it is open on its own) and reads the others' and the state in force, in one
  script call per breaker. The summed windows trip the breaker cluster-wide; the same read also
  catches any state message missed on pub/sub.
- **Quorum**: with ``quorum=k`` an opening is shared only when at least k replicas see failures
  (their own window at a threshold, or open on their own); until then it stays local.
- **Restarts**: :meth:`RedisStore.attach` reads the state in force (bounded by
  ``startup_timeout``), so a replica starting during an outage starts open.
- **Redis down or slow**: operations time out after ``timeout``; breakers carry on with local
  state, the store logs once and reports ``available=False`` (an exporter's metric), keeps the
  latest unpublished change of each breaker, and resyncs when Redis answers again. A Redis that
  came back empty (no persistence) gets this replica's open states republished, with their reasons,
  unless another replica wrote a record since (it is followed, as its message would be); a change
  made meanwhile is published on the empty record, not undone by it.

Keys: ``{prefix}:{<name>}:state`` and ``{prefix}:{<name>}:counts``; the ``{<name>}`` hash tag puts
a breaker's keys in one Redis Cluster slot, as its scripts require. Channel: ``{prefix}:changes``
(classic pub/sub reaches every node of a cluster).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import math
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from breakerpanel._events import BreakerControl, BreakerListener, StateChanged
from breakerpanel._exceptions import BreakerConfigError
from breakerpanel._redact import redacted
from breakerpanel._state import State, TransitionReason

from ._base import StateStore, StoreStatus
from ._shared import SHARED_STATES, PeerCounts, Record, cluster_trip, counts_key, decode_peer, state_key, votes

__all__ = ["DEFAULT_SYNC_INTERVAL", "RedisStore"]

logger = logging.getLogger("breakerpanel.store")

#: Seconds between two exchanges of window counts.
DEFAULT_SYNC_INTERVAL = 0.25
DEFAULT_TIMEOUT = 0.5
DEFAULT_STARTUP_TIMEOUT = 1.0
DEFAULT_PREFIX = "breakerpanel"

# KEYS: state, counts. ARGV: replica, calls, failures, slow, tripped, peer ttl (ms).
# Writes this replica's counts, drops stale replicas, returns the state in force and the others.
_SYNC = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[6])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ' ' .. ARGV[3] .. ' ' .. ARGV[4] .. ' ' .. ARGV[5] .. ' ' .. now)
redis.call('PEXPIRE', KEYS[2], ttl * 4)
local entries = redis.call('HGETALL', KEYS[2])
local peers = {}
for i = 1, #entries, 2 do
  local ts = tonumber(string.match(entries[i + 1], '(%d+)$'))
  if ts == nil or now - ts > ttl then
    redis.call('HDEL', KEYS[2], entries[i])
  elseif entries[i] ~= ARGV[1] then
    peers[#peers + 1] = entries[i]
    peers[#peers + 1] = entries[i + 1]
  end
end
local s = redis.call('HMGET', KEYS[1], 'gen', 'state', 'reason', 'until', 'origin', 'epoch')
local remaining = '-1'
if s[4] and tonumber(s[4]) >= 0 then remaining = tostring(math.max(0, tonumber(s[4]) - now)) end
return {s[1] or '0', s[2] or '', s[3] or '', remaining, s[5] or '', peers, s[6] or ''}
"""

# KEYS: state. ARGV: expected generation, state, reason, open for (ms, '' for none), origin,
# force ('1': manual, wins whatever the generation), channel, breaker name, a new epoch (kept
# only by the first write of the record: the epoch tells a record Redis lost from a late reply),
# expected epoch ('' for none: generation 1 of a record written after Redis lost the one this
# replica knew at generation 1 is another record).
# Returns {1, record...} when written and published, {0, record in force...} when the record
# moved meanwhile (the caller follows the record in force instead, or publishes again on an
# empty one: generation 0).
_PUBLISH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if ARGV[6] ~= '1' and (gen ~= tonumber(ARGV[1]) or (epoch or '') ~= ARGV[10]) then
  local s = redis.call('HMGET', KEYS[1], 'state', 'reason', 'until', 'origin')
  local remaining = '-1'
  if s[3] and tonumber(s[3]) >= 0 then remaining = tostring(math.max(0, tonumber(s[3]) - now)) end
  return {0, tostring(gen), s[1] or '', s[2] or '', remaining, s[4] or '', epoch or ''}
end
if not epoch then epoch = ARGV[9] end
gen = gen + 1
local deadline = -1
local remaining = '-1'
if ARGV[4] ~= '' then
  deadline = now + tonumber(ARGV[4])
  remaining = ARGV[4]
end
redis.call('HSET', KEYS[1], 'gen', gen, 'state', ARGV[2], 'reason', ARGV[3], 'until', deadline, 'origin', ARGV[5],
  'epoch', epoch)
local message = {n = ARGV[8], g = gen, s = ARGV[2], r = ARGV[3], f = remaining, o = ARGV[5], e = epoch}
redis.call('PUBLISH', ARGV[7], cjson.encode(message))
return {1, tostring(gen), ARGV[2], ARGV[3], remaining, ARGV[5], epoch}
"""

_AUTOMATIC_TRIPS = frozenset(
    {
        TransitionReason.FAILURE_RATE,
        TransitionReason.SLOW_CALL_RATE,
        TransitionReason.CONSECUTIVE_FAILURES,
        TransitionReason.RATE_LIMITED,
    }
)


@dataclass(slots=True)
class _Change:
    """A state change made here, waiting to be published."""

    state: State
    reason: TransitionReason
    open_for: float | None
    at: float  # time.monotonic() of the change
    previous: State
    #: Not a change made here: the state the cluster was in, published again after Redis lost it.
    #: Compare-and-set like an automatic change whatever its reason: a record written since wins.
    republish: bool = False

    @property
    def manual(self) -> bool:
        """Made by hand here: published whatever the generation, and supersedes records meanwhile."""
        return self.reason is TransitionReason.MANUAL and not self.republish

    def remaining(self) -> float | None:
        """Seconds left of ``open_for`` now (``None``: no deadline)."""
        if self.open_for is None or not math.isfinite(self.open_for):
            return None
        return max(0.0, self.open_for - (time.monotonic() - self.at))


@dataclass(eq=False)
class _Shared:
    """One shared breaker's bookkeeping (touched by the store thread; ``pending`` under the lock)."""

    breaker: BreakerControl
    keys: list[str]
    listener: _StoreListener
    seen_gen: int = 0
    #: The epoch of the record seen_gen counts in ("" before any).
    seen_epoch: str = ""
    record_state: State = State.CLOSED
    record_reason: str = ""
    #: Open here on its own, not shared (the quorum was not met).
    local_only: bool = False
    local_reason: TransitionReason = TransitionReason.FAILURE_RATE
    pending: _Change | None = None
    #: The change being published now (store thread only).
    publishing: _Change | None = None
    #: Records that arrived while ``publishing``: followed once its reply is handled (one of them
    #: may be this replica's own, which it knows only from the reply).
    deferred: list[Record] = field(default_factory=list)
    peers: list[PeerCounts] = field(default_factory=list)
    detached: bool = False
    push_lock: asyncio.Lock | None = None  # created in the store's thread
    pushing: bool = False  # a publishing task runs (store thread only)


class _StoreListener(BreakerListener):
    """Hands a breaker's own state changes to the store (not those the store applied)."""

    def __init__(self, store: RedisStore, name: str) -> None:
        self._store = store
        self._name = name

    def state_changed(self, event: StateChanged) -> None:
        self._store._local_change(self._name, event)


class _Applying(threading.local):
    active = False


def _is_redis_error(exc: BaseException) -> bool:
    try:
        from redis.exceptions import RedisError
    except ImportError:  # pragma: no cover - the store cannot start without redis
        return isinstance(exc, OSError | TimeoutError)
    return isinstance(exc, RedisError | OSError | TimeoutError | asyncio.TimeoutError)


def _check_url(url: str) -> None:
    """Refuse a URL that redis-py cannot read (a port that is no number, or out of range), here
    rather than in the store's thread, where it failed after attach() had started to wait."""
    try:
        from redis.asyncio.connection import parse_url
    except ImportError:  # said when a breaker is attached (the redis extra is missing)
        return
    try:
        parse_url(url)
    except ValueError as exc:
        raise BreakerConfigError("store.url", redacted(f"{exc} (got {url!r})")) from None


class RedisStore(StateStore):
    """Share breaker state across replicas through Redis; requires the ``redis`` extra.

    **Parameters:**

    * **url** - ``redis://host:port/db`` (``rediss://`` for TLS); for a cluster, any node.
    * **cluster** - ``True`` for Redis Cluster.
    * **prefix** - key prefix: replicas sharing a prefix share breakers of the same name.
    * **sync_interval** - seconds between exchanges of window counts (default 0.25).
    * **quorum** - share an opening only when at least this many replicas see failures (default 1).
    * **timeout** - seconds before a Redis operation counts as failed (default 0.5).
    * **startup_timeout** - how long :meth:`attach` may wait for the state in force (default 1).
    * **replica_id** - this process's name among the replicas (default host, pid and a random part).

    >>> store = RedisStore("redis://127.0.0.1:6379/0", quorum=2)
    >>> store
    RedisStore('redis://127.0.0.1:6379/0', quorum=2, sync_interval=0.25)
    """

    def __init__(
        self,
        url: str,
        *,
        cluster: bool = False,
        prefix: str = DEFAULT_PREFIX,
        sync_interval: float = DEFAULT_SYNC_INTERVAL,
        quorum: int = 1,
        timeout: float = DEFAULT_TIMEOUT,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        replica_id: str | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise BreakerConfigError("store.url", redacted(f"expected redis://, rediss:// or unix:// (got {url!r})"))
        _check_url(url)
        for name, value in (("sync_interval", sync_interval), ("timeout", timeout)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
                raise BreakerConfigError(f"store.{name}", f"must be a positive number of seconds (got {value!r})")
        if isinstance(startup_timeout, bool) or not isinstance(startup_timeout, int | float) or startup_timeout < 0:
            raise BreakerConfigError("store.startup_timeout", f"must be zero or more seconds (got {startup_timeout!r})")
        if isinstance(quorum, bool) or not isinstance(quorum, int) or quorum < 1:
            raise BreakerConfigError("store.quorum", f"must be a whole number of replicas, at least 1 (got {quorum!r})")
        if not isinstance(prefix, str) or not prefix or "{" in prefix or "}" in prefix:
            raise BreakerConfigError("store.prefix", f"must be a non-empty string without braces (got {prefix!r})")
        self.url = url
        self.cluster = cluster
        self.prefix = prefix
        self.sync_interval = float(sync_interval)
        self.quorum = quorum
        self.timeout = float(timeout)
        self.startup_timeout = float(startup_timeout)
        self.replica_id = replica_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        #: Replicas silent for this long no longer count.
        self.peer_ttl = max(1.0, 4 * self.sync_interval, 2 * self.timeout)
        self.channel = f"{prefix}:changes"

        self._lock = threading.Lock()
        self._shared: dict[str, _Shared] = {}
        self._applying = _Applying()
        self._available = True
        self._errors = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._sync_script: Any = None
        self._publish_script: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._pushes: set[asyncio.Task[None]] = set()
        self._wake: asyncio.Event | None = None
        self._closed = False

    # ------------------------------------------------------------------ public API

    def attach(self, breaker: BreakerControl) -> None:
        """Share ``breaker`` and adopt the state in force (waits up to ``startup_timeout``)."""
        if self._closed:
            raise RuntimeError("RedisStore: attach() after close()")
        name = breaker.name
        listener = _StoreListener(self, name)
        shared = _Shared(breaker, [state_key(self.prefix, name), counts_key(self.prefix, name)], listener)
        with self._lock:
            if name in self._shared:
                raise BreakerConfigError(name, "this store already shares a breaker with this name")
            self._shared[name] = shared
        breaker.add_listener(listener)
        loop = self._ensure_started()
        if threading.current_thread() is self._thread or self.startup_timeout == 0:
            loop.call_soon_threadsafe(self._wake_up)
            return
        future = asyncio.run_coroutine_threadsafe(self._sync_one(shared), loop)
        try:
            future.result(self.startup_timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            logger.warning(
                "breaker store: no answer from Redis within %gs for %r; it starts on local state",
                self.startup_timeout,
                name,
            )
        except Exception:  # _sync_one handles Redis errors; anything else is a bug, but not the caller's problem
            logger.exception("breaker store: initial sync of %r failed", name)

    def detach(self, breaker: BreakerControl) -> None:
        with self._lock:
            shared = self._shared.pop(breaker.name, None)
        if shared is None:
            return
        shared.detached = True
        with contextlib.suppress(ValueError):
            breaker.remove_listener(shared.listener)

    def status(self) -> StoreStatus:
        with self._lock:
            count = len(self._shared)
        return StoreStatus(
            backend="redis", available=self._available, errors=self._errors, breakers=count, replica_id=self.replica_id
        )

    def sync_now(self, timeout: float | None = None) -> None:
        """Run one exchange of counts and states now and wait for it (tests, shutdown hooks)."""
        loop = self._ensure_started()
        future = asyncio.run_coroutine_threadsafe(self._sync_all(), loop)
        future.result(timeout if timeout is not None else self.startup_timeout + self.timeout * 4)

    def close(self) -> None:
        """Stop the background thread, remove this replica's counts, close the connections."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            shared = list(self._shared.values())
            self._shared.clear()
        for item in shared:
            with contextlib.suppress(ValueError):
                item.breaker.remove_listener(item.listener)
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(shared), loop)
        try:
            future.result(self.timeout * 4 + 1)
        except Exception:
            logger.debug("breaker store: shutdown did not finish cleanly", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        if not thread.is_alive():
            loop.close()

    def __repr__(self) -> str:
        extra = ", cluster=True" if self.cluster else ""
        return (
            f"RedisStore({redacted(repr(self.url))}{extra}, quorum={self.quorum}, sync_interval={self.sync_interval:g})"
        )

    # ------------------------------------------------------------------ the background thread

    def _ensure_started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is not None:
                return self._loop
            try:
                import redis  # noqa: F401
            except ImportError as exc:
                raise BreakerConfigError(
                    "store", "RedisStore needs the redis package: pip install 'breakerpanel[redis]'"
                ) from exc
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            thread = threading.Thread(target=self._run_loop, args=(loop, ready), name="breakerpanel-store", daemon=True)
            self._loop, self._thread = loop, thread
            thread.start()
        ready.wait()
        return loop

    def _run_loop(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        try:
            self._wake = asyncio.Event()
            self._client = self._make_client()
            self._sync_script = self._client.register_script(_SYNC)
            self._publish_script = self._client.register_script(_PUBLISH)
            self._tasks = [loop.create_task(self._sync_loop()), loop.create_task(self._subscribe_loop())]
        except BaseException:
            # Said, and the loop runs anyway: attach() waits for it (never for good), and its
            # breakers go on with their own state, as when Redis cannot be reached.
            logger.exception("breaker store: cannot set up the Redis client; breakers keep their own state")
            ready.set()
        else:
            loop.call_soon(ready.set)
        loop.run_forever()

    def _make_client(self) -> Any:
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # No retries: the next sync is the retry, and a dead Redis must be noticed within `timeout`.
        options: dict[str, Any] = {
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
            "retry": Retry(NoBackoff(), 0),
        }
        if self.cluster:
            from redis.asyncio.cluster import RedisCluster

            return RedisCluster.from_url(self.url, **options)
        from redis.asyncio import Redis

        return Redis.from_url(self.url, **options)

    def _wake_up(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _sync_loop(self) -> None:
        assert self._wake is not None
        while True:
            started = time.monotonic()
            try:
                await self._sync_all()
            except Exception:
                logger.exception("breaker store: sync failed unexpectedly")
            left = self.sync_interval - (time.monotonic() - started)
            if left > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), left)
            self._wake.clear()

    async def _sync_all(self) -> None:
        with self._lock:
            shared = list(self._shared.values())
        if shared:
            await asyncio.gather(*(self._sync_one(item) for item in shared))

    async def _subscribe_loop(self) -> None:
        from redis.asyncio import Redis

        nodes: list[tuple[str, int]] = []
        attempt = 0
        while True:
            client = None
            try:
                if self.cluster:
                    if not nodes:
                        nodes = await self._cluster_nodes()
                    if not nodes:
                        raise OSError("no cluster node known")
                    host, port = nodes[attempt % len(nodes)]
                    client = Redis(host=host, port=port, socket_connect_timeout=self.timeout)
                else:
                    client = Redis.from_url(self.url, socket_connect_timeout=self.timeout, socket_timeout=None)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self.channel)
                attempt = 0
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._on_message(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not _is_redis_error(exc):
                    logger.exception("breaker store: subscriber failed unexpectedly")
                self._failed(exc)
                attempt += 1
                nodes = [] if attempt % 3 == 0 else nodes
                await asyncio.sleep(min(1.0, self.sync_interval * attempt))
            finally:
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.aclose()

    async def _cluster_nodes(self) -> list[tuple[str, int]]:
        client = self._client
        try:
            await client.initialize()
            return [(node.host, int(node.port)) for node in client.get_nodes()]
        except Exception:
            from urllib.parse import urlparse

            parsed = urlparse(self.url)
            return [(parsed.hostname or "127.0.0.1", parsed.port or 6379)]

    async def _shutdown(self, shared: list[_Shared]) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # A change not yet published (a trip, or force_open() just before close(): a script's
        # last words) still reaches the other replicas, within the budget: cancelled with the
        # pushes in flight, it was lost.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._publish_pending(shared), self.timeout * 2)
        pushes = list(self._pushes)
        for task in pushes:
            task.cancel()
        await asyncio.gather(*pushes, return_exceptions=True)
        if self._available:
            for item in shared:
                try:
                    await asyncio.wait_for(self._client.hdel(item.keys[1], self.replica_id), self.timeout)
                except Exception:
                    break
        with contextlib.suppress(Exception):
            await self._client.aclose()

    async def _publish_pending(self, shared: list[_Shared]) -> None:
        """Let the pushes in flight finish, then push each breaker's change still unpublished."""
        await asyncio.gather(*list(self._pushes), return_exceptions=True)
        for item in shared:
            if item.pending is not None and not item.detached:
                await self._push(item)

    # ------------------------------------------------------------------ availability

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self._errors += 1
            was = self._available
            self._available = False
        if was:
            logger.warning(
                "breaker store: Redis at %s is unreachable (%s: %s); breakers continue on local state "
                "and resync when it returns",
                redacted(self.url),
                type(exc).__name__,
                redacted(str(exc)),
            )

    def _succeeded(self) -> None:
        if self._available:
            return
        with self._lock:
            was = self._available
            self._available = True
        if not was:
            logger.warning("breaker store: Redis at %s answers again; breaker state resynced", redacted(self.url))

    # ------------------------------------------------------------------ local changes -> Redis

    def _local_change(self, name: str, event: StateChanged) -> None:
        """A breaker changed state here (listener thread: any). Applied changes are not echoed."""
        if self._applying.active:
            return
        with self._lock:
            shared = self._shared.get(name)
            if shared is None or event.state not in SHARED_STATES:
                return
            shared.pending = _Change(event.state, event.reason, event.open_for, time.monotonic(), event.previous)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._spawn_push, shared)

    def _spawn_push(self, shared: _Shared) -> None:
        # One publishing task per breaker at a time; changes made meanwhile coalesce into the
        # latest one (a burst of flips publishes the last state, not every step).
        if shared.pushing or self._closed:
            return
        shared.pushing = True
        task = asyncio.get_running_loop().create_task(self._drain(shared))
        self._pushes.add(task)
        task.add_done_callback(self._pushes.discard)
        task.add_done_callback(_log_task_error)

    async def _drain(self, shared: _Shared) -> None:
        try:
            while shared.pending is not None and not self._closed:
                if not await self._push(shared):
                    break  # Redis failed: the change stays pending for the next sync
        finally:
            shared.pushing = False

    async def _push(self, shared: _Shared, *, quorum_met: bool = False) -> bool:
        """Publish the breaker's latest unpublished change; ``False`` when Redis failed.

        One at a time per breaker: each publication expects the generation the last one wrote."""
        if shared.push_lock is None:
            shared.push_lock = asyncio.Lock()
        async with shared.push_lock:
            return await self._push_locked(shared, quorum_met)

    async def _push_locked(self, shared: _Shared, quorum_met: bool) -> bool:
        with self._lock:
            change, shared.pending = shared.pending, None
        if change is None or shared.detached:
            return True
        manual = change.manual
        if not manual and not change.republish:
            if change.state is State.OPEN and shared.record_state is State.CLOSED and not quorum_met:
                # An opening while the cluster is closed: shared only with a quorum.
                snap = shared.breaker.snapshot()
                threshold, slow_threshold = snap.failure_rate_threshold, snap.slow_call_rate_threshold
                if votes(True, shared.peers, threshold, slow_threshold) < self.quorum:
                    shared.local_only = True
                    shared.local_reason = change.reason
                    return True
            elif change.state is State.CLOSED and shared.local_only:
                shared.local_only = False  # closed again on its own; the cluster never opened
                return True
        shared.local_only = False
        # At most twice: the second attempt expects the empty record, which only another record
        # written meanwhile can fail (followed then).
        for _attempt in range(2):
            left = change.remaining()
            remaining = "" if left is None else str(round(left * 1000))
            shared.publishing = change
            reply: Any = None
            failed = False
            try:
                reply = await self._publish_script(
                    keys=[shared.keys[0]],
                    args=[
                        shared.seen_gen,
                        change.state.value,
                        change.reason.value,
                        remaining,
                        self.replica_id,
                        "1" if manual else "0",
                        self.channel,
                        shared.breaker.name,
                        uuid.uuid4().hex[:16],
                        shared.seen_epoch,
                    ],
                )
            except Exception as exc:
                if not _is_redis_error(exc):
                    raise
                self._failed(exc)
                failed = True
            finally:
                shared.publishing = None
            if failed:
                with self._lock:
                    if shared.pending is None:
                        shared.pending = change  # retried by the next sync
                self._follow_deferred(shared)
                return False
            self._succeeded()
            written = int(reply[0]) == 1
            record = Record.parse(*reply[1:7])
            if written:
                if record.epoch != shared.seen_epoch:  # the first write of the record (or Redis started over)
                    shared.seen_epoch, shared.seen_gen = record.epoch, 0
                shared.seen_gen = max(shared.seen_gen, record.generation)
                shared.record_state, shared.record_reason = record.state, record.reason
                self._follow_deferred(shared)
                return True
            if record.generation > 0:
                self._follow(shared, record)  # the record moved on: it wins over an automatic change
                self._follow_deferred(shared)
                return True
            # No record in Redis although this replica knew one (it expected its generation): Redis
            # lost it, restarted empty, and nobody wrote one since. Following that nothing would
            # undo the change (an empty record reads as closed) and publish nothing: start over from
            # it and publish the change on it, unless a record that arrived meanwhile overtook it.
            shared.seen_epoch, shared.seen_gen = record.epoch, 0
            shared.record_state, shared.record_reason = record.state, record.reason
            self._follow_deferred(shared)
            if shared.seen_gen > 0:
                return True
        return True

    def _follow_deferred(self, shared: _Shared) -> None:
        """Follow the records that arrived while a publication was in flight, now that its reply
        is handled: this replica's own record, if one is among them, is no longer newer than the
        record it knows, and is skipped."""
        deferred, shared.deferred = shared.deferred, []
        for record in deferred:
            self._follow(shared, record)

    # ------------------------------------------------------------------ Redis -> breakers

    def _on_message(self, data: bytes | str) -> None:
        try:
            message = json.loads(data)
            name = str(message["n"])
            with self._lock:
                shared = self._shared.get(name)
            if shared is None:
                return
            # A replica of a release before epochs sends none: its record is the one this one knows.
            epoch = message.get("e", shared.seen_epoch)
            record = Record.parse(message["g"], message["s"], message["r"], message["f"], message["o"], epoch)
        except (ValueError, KeyError, TypeError, AttributeError):
            logger.debug("breaker store: ignored a malformed message %r", data)
            return
        self._follow(shared, record)

    def _follow(self, shared: _Shared, record: Record) -> None:
        """Adopt a record newer than what this replica knows: a higher generation of the record it
        knows, or any generation of a record Redis started over (another epoch)."""
        if record.generation == 0:
            # No record in Redis (none published yet, or Redis lost it): nothing to follow. It reads
            # as closed, which would undo an open breaker; the callers that read one handle the loss.
            return
        if record.epoch == shared.seen_epoch and record.generation <= shared.seen_gen:
            return
        if shared.publishing is not None:
            # This replica's own record may be the one arriving before the reply of its publication
            # tells what it wrote; followed once the reply is handled. (The origin cannot tell: a
            # replica restarted with the same replica_id must follow what its predecessor wrote.)
            shared.deferred.append(record)
            return
        if self._manual_unpublished(shared) is not None:
            # A change made by hand here is not in Redis yet: it supersedes this record (a manual
            # change always wins), so the breaker must not take the record's state meanwhile, or it
            # would hold one state and publish another. The sync after the publication reads
            # whatever is in force then.
            return
        shared.seen_epoch, shared.seen_gen = record.epoch, record.generation
        shared.record_state, shared.record_reason = record.state, record.reason
        shared.local_only = False
        if shared.detached:
            return
        with self._lock:
            if shared.pending is not None and not shared.pending.manual:
                # An automatic change (a trip, probes closing it) decided on the state this record
                # replaces: published now, it would win the compare-and-set against the generation
                # just seen, while the breaker holds the record's state. Its own state machine
                # decides again from the record's state.
                shared.pending = None
        try:
            reason = TransitionReason(record.reason)
        except ValueError:
            reason = TransitionReason.MANUAL
        open_for = None if record.remaining_ms is None else record.remaining_ms / 1000
        if record.state is State.OPEN and open_for is None:
            open_for = 0.0
        self._applying.active = True
        try:
            shared.breaker.apply_shared_state(record.state, reason, open_for)
            manual = self._manual_unpublished(shared)
            if manual is not None:
                # Changed by hand in another thread since the check above: that change wins when
                # published, so the breaker holds its state, not the record's.
                shared.breaker.apply_shared_state(manual.state, TransitionReason.MANUAL, manual.remaining())
        finally:
            self._applying.active = False

    @staticmethod
    def _manual_unpublished(shared: _Shared) -> _Change | None:
        """The latest change made by hand here that waits to be published or is being published."""
        for change in (shared.pending, shared.publishing):
            if change is not None and change.manual:
                return change
        return None

    async def _sync_one(self, shared: _Shared) -> None:
        """Push what is pending, exchange counts, follow the state in force, trip cluster-wide."""
        if shared.pending is not None and not await self._push(shared):
            return
        breaker = shared.breaker
        snap = breaker.snapshot()
        tripped = snap.state is State.OPEN or snap.state is State.HALF_OPEN
        try:
            reply = await self._sync_script(
                keys=shared.keys,
                args=[
                    self.replica_id,
                    snap.calls,
                    snap.failures,
                    snap.slow_calls,
                    "1" if tripped else "0",
                    round(self.peer_ttl * 1000),
                ],
            )
        except Exception as exc:
            if not _is_redis_error(exc):
                raise
            self._failed(exc)
            return
        self._succeeded()
        gen, state, reason, remaining, origin = reply[:5]
        record = Record.parse(gen, state, reason, remaining, origin, reply[6] if len(reply) > 6 else "")
        raw = list(reply[5])
        shared.peers = [p for p in (decode_peer(raw[i + 1]) for i in range(0, len(raw) - 1, 2)) if p is not None]
        if shared.seen_gen > 0 and record.generation == 0:
            # No record although this replica knew one: Redis lost it (restarted empty) and nobody
            # wrote one since. A publication in flight meets the same empty record and publishes on
            # it. A record with another epoch is one another replica wrote since: followed below, as
            # its message would be (republishing over it would undo a newer change, a manual one
            # too). A lower generation of the same record is only a reply that a newer message
            # overtook: _follow ignores it, and the next sync reads the newer one.
            if shared.publishing is None:
                self._redis_lost_state(shared, record, snap.state, snap.open_remaining)
            return
        self._follow(shared, record)
        threshold, slow_threshold = snap.failure_rate_threshold, snap.slow_call_rate_threshold
        if shared.record_state is not State.CLOSED:
            return
        if snap.state is State.CLOSED:
            own = PeerCounts(snap.calls, snap.failures, snap.slow_calls, False)
            reason = cluster_trip(
                own,
                shared.peers,
                minimum_calls=snap.minimum_calls,
                failure_rate_threshold=threshold,
                slow_call_rate_threshold=slow_threshold,
                quorum=self.quorum,
            )
            if reason is not None:
                # A decision of this replica's: its listener publishes it (the quorum holds).
                breaker.apply_shared_state(State.OPEN, TransitionReason(reason), None, only_from=State.CLOSED)
        elif shared.local_only and tripped and votes(True, shared.peers, threshold, slow_threshold) >= self.quorum:
            # Open here alone until now: enough replicas see failures to open them all.
            with self._lock:
                if shared.pending is None:
                    shared.pending = _Change(
                        State.OPEN, shared.local_reason, snap.open_remaining or 0.0, time.monotonic(), snap.state
                    )
            await self._push(shared, quorum_met=True)

    def _redis_lost_state(self, shared: _Shared, record: Record, local: State, remaining: float | None) -> None:
        """Redis has no record although this replica saw one: it restarted empty. Republish what
        this replica holds from the cluster (an open state), or start over from the empty record."""
        lost_reason = shared.record_reason  # read before the empty record's "" replaces it
        shared.seen_epoch, shared.seen_gen = record.epoch, record.generation
        shared.record_state, shared.record_reason = record.state, record.reason
        if local in (State.OPEN, State.FORCED_OPEN, State.DISABLED, State.METRICS_ONLY) and not shared.local_only:
            try:
                reason = TransitionReason(lost_reason)
            except ValueError:
                reason = TransitionReason.MANUAL  # a reason this release does not know
            with self._lock:
                if shared.pending is None:
                    # The reason of the replica that decided, as before the loss; a compare-and-set
                    # on the empty record even for a manual state, so that a record another replica
                    # writes meanwhile (a reset by hand) wins over this copy of an older one.
                    shared.pending = _Change(local, reason, remaining, time.monotonic(), local, republish=True)
            # Not a fresh opening: no quorum needed, for this republication or a reopening before it.
            shared.record_state, shared.record_reason = local, reason.value
            if self._wake is not None:
                self._wake.set()


def _log_task_error(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("breaker store: background task failed", exc_info=task.exception())
