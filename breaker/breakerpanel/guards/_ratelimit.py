"""Rate limiting per key (client id, API key, address) with GCRA, in memory or shared through Redis.

GCRA (the generic cell rate algorithm) keeps one number per key, the *theoretical arrival time*
(TAT): when the key's bucket would be empty again if it made no more requests. A policy of
``limit`` requests per ``period`` with a ``burst`` spaces requests ``interval = period / limit``
apart and tolerates ``burst`` of them at once::

    tat      = max(stored_tat, now)
    new_tat  = tat + interval * cost
    allow_at = new_tat - burst * interval          # the earliest instant this request conforms
    allowed  = now >= allow_at                      # then stored_tat = new_tat

So in any stretch of ``w`` seconds a key gets at most ``burst + w / interval`` requests, and a key
whose TAT is in the past holds no state at all: idle keys are simply forgotten (the memory store
drops them, Redis expires them), which bounds memory by the number of *active* keys.

The Redis store runs one Lua script per decision (one key per script, so Redis Cluster can route
it) and reads the time from Redis itself, so replicas with skewed clocks share one schedule. Keys
are hashed before they reach Redis: API keys and addresses are not stored in the clear.

>>> import asyncio
>>> from breakerpanel import ManualClock
>>> from breakerpanel.guards import RateLimiter, RateLimitPolicy
>>> limiter = RateLimiter("api", RateLimitPolicy(limit=2, period=1.0), clock=ManualClock())
>>> [asyncio.run(limiter.acquire("alice")).allowed for _ in range(3)]
[True, True, False]
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, final, runtime_checkable

from breakerpanel._clock import Clock, MonotonicClock
from breakerpanel._exceptions import BreakerConfigError, BreakerError
from breakerpanel._lua import lua_now

__all__ = [
    "DEFAULT_MAX_KEYS",
    "GuardListener",
    "MemoryRateLimitStore",
    "RateDecision",
    "RateLimitPolicy",
    "RateLimitStore",
    "RateLimitedError",
    "RateLimiter",
    "RateLimiterStatistics",
    "RedisRateLimitStore",
    "hash_key",
]

#: Keys the memory store keeps before it forgets the least recently used ones.
DEFAULT_MAX_KEYS = 100_000

# An HTTP token (RFC 9110, section 5.6.2): what a policy's name must be in a RateLimit header.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _is_count(value: object) -> bool:
    """A positive ``int`` (``True`` is an ``int`` to Python, not a count here)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def hash_key(key: str) -> str:
    """A short, stable digest of ``key``: what shared stores keep instead of the key itself."""
    return hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


@final
class RateLimitPolicy:
    """``limit`` requests per ``period`` seconds sustained, with bursts of up to ``burst``.

    ``burst`` defaults to ``limit``: a quiet key may spend its whole period's quota at once. A
    smaller burst smooths traffic (``burst=1`` spaces every request ``period / limit`` apart).
    """

    __slots__ = ("burst", "limit", "name", "period")

    def __init__(self, *, limit: int, period: float, burst: int | None = None, name: str = "default") -> None:
        if not _is_count(limit):
            raise BreakerConfigError("limit", f"must be a positive integer (got {limit!r})")
        if not (
            isinstance(period, int | float) and not isinstance(period, bool) and math.isfinite(period) and period > 0
        ):
            raise BreakerConfigError("period", f"must be a positive number of seconds (got {period!r})")
        burst = limit if burst is None else burst
        if not _is_count(burst):
            raise BreakerConfigError("burst", f"must be a positive integer (got {burst!r})")
        if not (isinstance(name, str) and _TOKEN.fullmatch(name)):
            raise BreakerConfigError(
                "name",
                f"must be an HTTP token (letters, digits, !#$%&'*+-.^_`|~): RateLimit headers carry it (got {name!r})",
            )
        self.limit = limit
        self.period = float(period)
        self.burst = burst
        self.name = name

    @property
    def interval(self) -> float:
        """Seconds between two requests at the sustained rate."""
        return self.period / self.limit

    @property
    def rate(self) -> float:
        """The sustained rate, in requests per second."""
        return self.limit / self.period

    def header_value(self) -> str:
        """This policy as a ``RateLimit-Policy`` item (draft-ietf-httpapi-ratelimit-headers):
        ``"name";q=<burst>;w=<seconds to refill it>``."""
        return f'"{self.name}";q={self.burst};w={max(1, math.ceil(self.burst * self.interval))}'

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RateLimitPolicy):
            return NotImplemented
        return (self.limit, self.period, self.burst, self.name) == (other.limit, other.period, other.burst, other.name)

    def __hash__(self) -> int:
        return hash((self.limit, self.period, self.burst, self.name))

    def __repr__(self) -> str:
        return f"RateLimitPolicy(limit={self.limit}, period={self.period}, burst={self.burst}, name={self.name!r})"


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The answer to one request."""

    allowed: bool
    #: Requests the key may still make at once after this one (0 when limited).
    remaining: int
    #: Seconds until a request of the same cost would be allowed (0 when allowed).
    retry_after: float
    #: Seconds until the key's quota is full again.
    reset_after: float
    policy: RateLimitPolicy

    def headers(self) -> dict[str, str]:
        """``RateLimit`` and ``RateLimit-Policy`` (and ``Retry-After`` when limited)."""
        name = self.policy.name
        reset = max(0, math.ceil(self.retry_after if not self.allowed else self.reset_after))
        headers = {
            "RateLimit-Policy": self.policy.header_value(),
            "RateLimit": f'"{name}";r={self.remaining};t={reset}',
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return headers


def _decide(tat: float, now: float, policy: RateLimitPolicy, cost: int) -> tuple[RateDecision, float | None]:
    """GCRA: the decision and the new TAT (``None`` when the request is refused)."""
    interval = policy.interval
    tat = max(tat, now)
    new_tat = tat + interval * cost
    allow_at = new_tat - policy.burst * interval
    # 1 ns of slack: float rounding must not refuse a request that is exactly on schedule.
    if now + 1e-9 < allow_at:
        return RateDecision(False, 0, allow_at - now, tat - now, policy), None
    remaining = int((now - allow_at) / interval + 1e-9)
    return RateDecision(True, min(remaining, policy.burst), 0.0, new_tat - now, policy), new_tat


@runtime_checkable
class RateLimitStore(Protocol):
    """Where the keys' TATs live. One call decides one request, atomically."""

    async def decide(self, limiter: str, key: str, policy: RateLimitPolicy, cost: int) -> RateDecision: ...


class MemoryRateLimitStore:
    """TATs in a dict, for one process. A key whose TAT has passed is dropped (it is equivalent to
    an unknown key); beyond ``max_keys`` live keys the least recently used is forgotten, which
    can only let that key through early, never refuse anyone wrongly."""

    def __init__(self, *, clock: Clock | None = None, max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise BreakerConfigError("max_keys", f"must be positive (got {max_keys})")
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        self.max_keys = max_keys
        self._tats: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._tats)

    def decide_now(self, limiter: str, key: str, policy: RateLimitPolicy, cost: int) -> RateDecision:
        now = self.clock.now()
        slot = (limiter, key)
        with self._lock:
            decision, new_tat = _decide(self._tats.get(slot, now), now, policy, cost)
            if new_tat is not None:
                self._tats[slot] = new_tat
                self._tats.move_to_end(slot)
            tats = self._tats
            # The front holds the least recently updated keys: drop those that are idle (amortised
            # O(1)), and the oldest beyond the cap.
            while tats:
                first = next(iter(tats))
                if tats[first] <= now or len(tats) > self.max_keys:
                    del tats[first]
                else:
                    break
        return decision

    async def decide(self, limiter: str, key: str, policy: RateLimitPolicy, cost: int) -> RateDecision:
        return self.decide_now(limiter, key, policy, cost)


# KEYS[1]: the key's TAT. ARGV: interval, burst, cost, now ('' to use the server's TIME).
# Numbers come back as strings: Redis would truncate Lua floats to integers.
_GCRA_SCRIPT = (
    lua_now(4)
    + """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval * cost
local allow_at = new_tat - burst * interval
if now + 0.000000001 < allow_at then
  return {0, '0', tostring(allow_at - now), tostring(tat - now)}
end
local ttl = math.ceil((new_tat - now) * 1000)
if ttl < 1 then ttl = 1 end
redis.call('SET', KEYS[1], string.format('%.17g', new_tat), 'PX', ttl)
local remaining = math.floor((now - allow_at) / interval + 0.000000001)
if remaining > burst then remaining = burst end
return {1, tostring(remaining), '0', tostring(new_tat - now)}
"""
)


class RedisRateLimitStore:
    """TATs in Redis, shared by every replica: one atomic Lua script per decision.

    ``client`` is a ``redis.asyncio.Redis`` (or ``RedisCluster``); redis-py is needed only to
    build it. Keys are ``{prefix}:{limiter}:{digest}``, one per script, so a cluster routes each
    decision to one node. The time comes from Redis (``TIME``) unless ``clock`` is given (tests).
    A Redis error propagates: the caller decides whether to fail open or closed.
    """

    def __init__(self, client: Any, *, prefix: str = "breakerpanel:rl", clock: Clock | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.clock = clock
        self._script = client.register_script(_GCRA_SCRIPT)

    def key_for(self, limiter: str, key: str) -> str:
        return f"{self.prefix}:{limiter}:{hash_key(key)}"

    async def decide(self, limiter: str, key: str, policy: RateLimitPolicy, cost: int) -> RateDecision:
        now = "" if self.clock is None else repr(self.clock.now())
        reply: Sequence[Any] = await self._script(
            keys=[self.key_for(limiter, key)], args=[repr(policy.interval), policy.burst, cost, now]
        )
        allowed, remaining, retry_after, reset_after = reply
        return RateDecision(bool(int(allowed)), int(remaining), float(retry_after), float(reset_after), policy)


class RateLimitedError(BreakerError):
    """A request was over its key's rate limit. ``decision`` carries ``retry_after``."""

    def __init__(self, limiter: str, decision: RateDecision) -> None:
        super().__init__(f"rate limit {limiter!r} exceeded: retry in {decision.retry_after:.3f}s")
        self.limiter = limiter
        self.decision = decision

    @property
    def retry_after(self) -> float:
        return self.decision.retry_after


class GuardListener:
    """Receives the decisions of rate limiters, lockout guards and load shedders; override what
    you need. Called synchronously after the decision, outside any lock; an exception is logged by
    the caller's logger and otherwise ignored. The exporter reads counters instead (``statistics()``)."""

    def rate_decided(self, limiter: str, key: str, decision: RateDecision) -> None:
        """A rate limiter allowed or limited a request of ``key``."""

    def locked_out(self, guard: str, subject: str, kind: str, seconds: float) -> None:
        """A lockout guard locked ``subject`` (a principal or an address) out for ``seconds``."""

    def shed(self, limiter: str, priority: str, limit: int, in_flight: int) -> None:
        """A concurrency limiter refused a request."""


@dataclass(frozen=True, slots=True)
class RateLimiterStatistics:
    name: str
    policy: RateLimitPolicy
    allowed: int
    limited: int
    #: Distinct keys limited in the last ``recent_window`` seconds (bounded by ``max_recent``).
    recently_limited_keys: int
    #: Decisions the store could not make (Redis down), by how they were answered.
    store_errors: int


def _notify(listeners: Iterable[GuardListener], method: str, *args: Any) -> None:
    import logging

    for listener in listeners:
        try:
            getattr(listener, method)(*args)
        except Exception:
            logging.getLogger("breakerpanel").exception("guard listener %r failed", listener)


class RateLimiter:
    """Decides, per key, whether a request is within ``policy``.

    ``store`` defaults to a :class:`MemoryRateLimitStore`; pass a :class:`RedisRateLimitStore` to
    share the limit across replicas. When the store fails, ``fail_open`` (default) lets the
    request through and counts a store error; otherwise the error propagates.
    """

    def __init__(
        self,
        name: str,
        policy: RateLimitPolicy,
        *,
        store: RateLimitStore | None = None,
        clock: Clock | None = None,
        listeners: Iterable[GuardListener] = (),
        fail_open: bool = True,
        recent_window: float = 60.0,
        max_recent: int = 1000,
    ) -> None:
        if not name or not isinstance(name, str):
            raise BreakerConfigError("name", f"must be a non-empty string (got {name!r})")
        self.name = name
        self.policy = policy
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        self.store: RateLimitStore = store if store is not None else MemoryRateLimitStore(clock=self.clock)
        self.listeners = tuple(listeners)
        self.fail_open = fail_open
        self.recent_window = recent_window
        self.max_recent = max_recent
        self._allowed = 0
        self._limited = 0
        self._store_errors = 0
        self._recent: OrderedDict[str, float] = OrderedDict()
        # statistics() runs in the exporter's thread while the event loop notes limited keys.
        self._recent_lock = threading.Lock()

    async def acquire(self, key: str, cost: int = 1) -> RateDecision:
        """Decide on one request of ``key`` (never raises for a limited request).

        ``cost``: how many requests this one counts as, from 1 to the policy's ``burst`` (a
        costlier request could never be allowed); anything else raises ``BreakerConfigError``."""
        if not _is_count(cost) or cost > self.policy.burst:
            raise BreakerConfigError(
                "cost", f"must be an integer from 1 to the burst, {self.policy.burst} (got {cost!r})"
            )
        try:
            decision = await self.store.decide(self.name, key, self.policy, cost)
        except Exception:
            if not self.fail_open:
                raise
            self._store_errors += 1
            decision = RateDecision(True, 0, 0.0, 0.0, self.policy)
        if decision.allowed:
            self._allowed += 1
        else:
            self._limited += 1
            self._note_limited(key)
        if self.listeners:
            _notify(self.listeners, "rate_decided", self.name, key, decision)
        return decision

    async def check(self, key: str, cost: int = 1) -> RateDecision:
        """Like :meth:`acquire`, but raise :class:`RateLimitedError` when limited."""
        decision = await self.acquire(key, cost)
        if not decision.allowed:
            raise RateLimitedError(self.name, decision)
        return decision

    def _note_limited(self, key: str) -> None:
        now = self.clock.now()
        recent = self._recent
        with self._recent_lock:
            recent[key] = now
            recent.move_to_end(key)
            while recent and (len(recent) > self.max_recent or next(iter(recent.values())) < now - self.recent_window):
                recent.popitem(last=False)

    def statistics(self) -> RateLimiterStatistics:
        now = self.clock.now()
        with self._recent_lock:
            recent = sum(1 for at in self._recent.values() if at >= now - self.recent_window)
        return RateLimiterStatistics(self.name, self.policy, self._allowed, self._limited, recent, self._store_errors)

    def __repr__(self) -> str:
        return f"RateLimiter({self.name!r}, {self.policy!r})"
