"""Authentication-failure lockout: a small breaker per principal and per source address.

Each *subject* (``principal:<name>`` or ``address:<ip>``) counts failed authentications in a
window that starts at its first failure. The ``max_failures``-th failure in the window locks the
subject out for ``base_lockout * multiplier ** (strikes - 1)`` seconds (capped at
``max_lockout``), where ``strikes`` counts the lockouts since the subject last stayed quiet for
``forget_after`` seconds: a credential-stuffing run meets longer and longer lockouts.

A successful authentication clears its own principal's failures and strikes, and nothing else:
neither another principal's state nor the address's (an attacker holding one valid account must
not be able to reset the counter of the address it sprays from).

The stores hold at most one small record per subject and forget it once it is neither counting
failures, nor locked, nor remembering strikes. In Redis, a subject is one hash updated by one Lua
script (one key per script: Redis Cluster routes it), and subjects are hashed before they are
stored. Compare secrets with :func:`constant_time_equals`; the integrations answer locked and
failed attempts after the same minimum delay (:class:`ConstantTime`), so timing reveals nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, Protocol, final, runtime_checkable

from breakerpanel._clock import Clock, MonotonicClock
from breakerpanel._exceptions import BreakerConfigError, BreakerError
from breakerpanel._lua import lua_now

from ._ratelimit import GuardListener, _notify, hash_key

__all__ = [
    "ConstantTime",
    "LockedOutError",
    "LockoutAttempt",
    "LockoutGuard",
    "LockoutPolicy",
    "LockoutStatistics",
    "LockoutStatus",
    "LockoutStore",
    "MemoryLockoutStore",
    "RedisLockoutStore",
    "SubjectKind",
    "constant_time_equals",
]


class SubjectKind(StrEnum):
    PRINCIPAL = "principal"
    ADDRESS = "address"


def constant_time_equals(presented: str | bytes, expected: str | bytes) -> bool:
    """Compare two secrets in time that depends only on their lengths (``hmac.compare_digest``)."""
    a = presented.encode() if isinstance(presented, str) else presented
    b = expected.encode() if isinstance(expected, str) else expected
    return hmac.compare_digest(a, b)


@final
class LockoutPolicy:
    """After ``max_failures`` failures within ``window`` seconds, lock the subject out, for
    ``base_lockout`` seconds the first time and ``multiplier`` times longer each time after, up to
    ``max_lockout``. Strikes are forgotten after ``forget_after`` quiet seconds."""

    __slots__ = ("base_lockout", "forget_after", "max_failures", "max_lockout", "multiplier", "window")

    def __init__(
        self,
        *,
        max_failures: int = 5,
        window: float = 300.0,
        base_lockout: float = 30.0,
        multiplier: float = 2.0,
        max_lockout: float = 3600.0,
        forget_after: float = 86_400.0,
    ) -> None:
        if isinstance(max_failures, bool) or not isinstance(max_failures, int) or max_failures < 1:
            raise BreakerConfigError("max_failures", f"must be a positive integer (got {max_failures!r})")
        seconds = (
            ("window", window),
            ("base_lockout", base_lockout),
            ("multiplier", multiplier),
            ("max_lockout", max_lockout),
            ("forget_after", forget_after),
        )
        for field, value in seconds:
            # Finite: Redis keeps each record for as long as its longest setting (PEXPIRE).
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise BreakerConfigError(field, f"must be a finite number (got {value!r})")
            if not value > 0:
                raise BreakerConfigError(field, f"must be positive (got {value!r})")
        if not multiplier >= 1:
            raise BreakerConfigError("multiplier", f"must be at least 1 (got {multiplier!r})")
        if not max_lockout >= base_lockout:
            raise BreakerConfigError("max_lockout", f"must be at least base_lockout (got {max_lockout!r})")
        if not forget_after > max_lockout:
            # A lockout is quiet time: strikes forgotten during one never escalate the next.
            raise BreakerConfigError(
                "forget_after", f"must be longer than max_lockout, {max_lockout!r} (got {forget_after!r})"
            )
        self.max_failures = max_failures
        self.window = float(window)
        self.base_lockout = float(base_lockout)
        self.multiplier = float(multiplier)
        self.max_lockout = float(max_lockout)
        self.forget_after = float(forget_after)

    def lockout_for(self, strikes: int) -> float:
        """Seconds of the ``strikes``-th lockout (1-based)."""
        try:
            seconds = self.base_lockout * self.multiplier ** max(0, strikes - 1)
        except OverflowError:  # past about a thousand strikes with the defaults: long since capped
            return self.max_lockout
        return min(self.max_lockout, seconds)

    def _key(self) -> tuple[float, ...]:
        return (self.max_failures, self.window, self.base_lockout, self.multiplier, self.max_lockout, self.forget_after)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LockoutPolicy):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"LockoutPolicy(max_failures={self.max_failures}, window={self.window}, base_lockout={self.base_lockout},"
            f" multiplier={self.multiplier}, max_lockout={self.max_lockout}, forget_after={self.forget_after})"
        )


@dataclass(frozen=True, slots=True)
class LockoutStatus:
    """Whether an attempt may proceed."""

    locked: bool
    #: Seconds until the lock ends (0 when not locked).
    retry_after: float
    #: Which subject holds the lock (``None`` when not locked).
    kind: SubjectKind | None = None


_OPEN = LockoutStatus(False, 0.0)

#: Seconds an attempt may hold its place (:meth:`LockoutGuard.attempt`) without reporting: a
#: store forgets places older than this (an attempt whose replica died never reports).
ATTEMPT_TIMEOUT = 30.0
#: What an attempt is told when the attempts in flight still fill every failure its subject has
#: left after it waited ``busy_wait``: come back once they have reported.
BUSY_RETRY = 1.0
#: What a store's ``begin`` answers while the attempts in flight fill every failure left.
BUSY = -1.0
#: How often a waiting attempt asks again for a place.
_BUSY_POLL = 0.02


@runtime_checkable
class LockoutStore(Protocol):
    """Per-subject records; each method is atomic for its subject."""

    async def locked_for(self, guard: str, subject: str) -> float:
        """Seconds ``subject`` stays locked (0: not locked)."""

    async def failed(self, guard: str, subject: str, policy: LockoutPolicy, *, reserved: bool = False) -> float:
        """Count a failure; return the seconds of the lockout it started (0: none). ``reserved``:
        of an attempt that holds a place (:meth:`begin`), which it gives back."""

    async def succeeded(self, guard: str, subject: str) -> None:
        """Forget ``subject``'s failures and strikes (not the places of attempts in flight)."""

    async def begin(self, guard: str, subject: str, policy: LockoutPolicy) -> float:
        """Give an attempt a place, in one step with the check: 0 when it has one; the seconds the
        lock has left while locked; :data:`BUSY` (negative) while the attempts in flight fill every
        failure ``subject`` has left before its next lockout."""

    async def release(self, guard: str, subject: str) -> None:
        """Give back a place taken by :meth:`begin` (an attempt that neither failed nor cleared
        ``subject``)."""


@dataclass(slots=True)
class _Record:
    start: float = 0.0
    count: int = 0
    strikes: int = 0
    until: float = 0.0
    last: float = 0.0
    #: Attempts in flight (:meth:`LockoutStore.begin`), and when the last one began.
    pending: int = 0
    pending_at: float = 0.0

    def idle(self, now: float, policy_window: float, forget_after: float) -> bool:
        return (
            self.until <= now
            and (self.count == 0 or now - self.start > policy_window)
            and (self.strikes == 0 or now - self.last > forget_after)
            and (self.pending == 0 or now - self.pending_at > ATTEMPT_TIMEOUT)
        )


class MemoryLockoutStore:
    """Records in a dict for one process; idle ones are dropped, and beyond ``max_subjects`` the
    least recently failing subject is forgotten."""

    def __init__(self, *, clock: Clock | None = None, max_subjects: int = 100_000) -> None:
        if isinstance(max_subjects, bool) or not isinstance(max_subjects, int) or max_subjects < 1:
            # 0 would forget every record as it is written: nobody would ever be locked out.
            raise BreakerConfigError("max_subjects", f"must be a positive integer (got {max_subjects!r})")
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        self.max_subjects = max_subjects
        self._records: OrderedDict[tuple[str, str], _Record] = OrderedDict()
        self._lock = threading.Lock()
        self._forget = (0.0, 0.0)

    def __len__(self) -> int:
        return len(self._records)

    async def locked_for(self, guard: str, subject: str) -> float:
        record = self._records.get((guard, subject))
        if record is None:
            return 0.0
        return max(0.0, record.until - self.clock.now())

    async def failed(self, guard: str, subject: str, policy: LockoutPolicy, *, reserved: bool = False) -> float:
        def fail(record: _Record, now: float) -> float:
            if reserved and record.pending:
                record.pending -= 1
            return _fail(record, now, policy)

        return self._update(guard, subject, policy, fail)

    async def succeeded(self, guard: str, subject: str) -> None:
        with self._lock:
            record = self._records.get((guard, subject))
            if record is None:
                return
            if record.pending:  # other attempts are in flight: their places stay
                self._records[(guard, subject)] = _Record(pending=record.pending, pending_at=record.pending_at)
            else:
                del self._records[(guard, subject)]

    async def begin(self, guard: str, subject: str, policy: LockoutPolicy) -> float:
        return self._update(guard, subject, policy, lambda record, now: _begin(record, now, policy))

    def _update(
        self, guard: str, subject: str, policy: LockoutPolicy, change: Callable[[_Record, float], float]
    ) -> float:
        """Apply ``change`` to the subject's record (made if new) under the lock, then forget idle
        records; returns what ``change`` does."""
        now = self.clock.now()
        slot = (guard, subject)
        with self._lock:
            record = self._records.get(slot)
            if record is None:
                record = self._records[slot] = _Record()
            self._records.move_to_end(slot)
            result = change(record, now)
            self._forget = (max(self._forget[0], policy.window), max(self._forget[1], policy.forget_after))
            self._sweep(now)
        return result

    async def release(self, guard: str, subject: str) -> None:
        with self._lock:
            record = self._records.get((guard, subject))
            if record is not None and record.pending:
                record.pending -= 1

    def _sweep(self, now: float) -> None:
        records = self._records
        window, forget = self._forget
        while records:
            slot, record = next(iter(records.items()))
            if len(records) > self.max_subjects or record.idle(now, window, forget):
                del records[slot]
            else:
                break


def _begin(record: _Record, now: float, policy: LockoutPolicy) -> float:
    """The same arithmetic as the Lua script below."""
    if record.until > now:
        return record.until - now
    if record.pending and now - record.pending_at > ATTEMPT_TIMEOUT:
        record.pending = 0  # places of attempts that never reported
    failures = record.count if record.count and now - record.start <= policy.window else 0
    if failures + record.pending >= policy.max_failures:
        return BUSY
    record.pending += 1
    record.pending_at = now
    return 0.0


def _fail(record: _Record, now: float, policy: LockoutPolicy) -> float:
    """The same arithmetic as the Lua script below."""
    if record.until > now:
        # Locked already: an attempt that passed check() before the lock began. It counts
        # toward no new lockout (a burst of such attempts escalated to max_lockout at once).
        record.last = now
        return 0.0
    if record.strikes and now - record.last > policy.forget_after:
        record.strikes = 0
    if record.count == 0 or now - record.start > policy.window:
        record.start = now
        record.count = 0
    record.count += 1
    record.last = now
    if record.count < policy.max_failures:
        return 0.0
    record.strikes += 1
    locked_for = policy.lockout_for(record.strikes)
    record.until = max(record.until, now + locked_for)
    record.count = 0
    return locked_for


_LUA_CONSTANTS = f"local ATTEMPT_TIMEOUT = {ATTEMPT_TIMEOUT!r}\nlocal BUSY = {BUSY!r}\n"

# KEYS[1]: the subject's hash. ARGV: max_failures, window, base, multiplier, max_lockout,
# forget_after, now ('' for the server's TIME), reserved ('1': give back an attempt's place).
_FAIL_SCRIPT = (
    lua_now(7)
    + _LUA_CONSTANTS
    + """
local max_failures = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local base = tonumber(ARGV[3])
local multiplier = tonumber(ARGV[4])
local max_lockout = tonumber(ARGV[5])
local forget = tonumber(ARGV[6])
local h = redis.call('HMGET', KEYS[1], 'start', 'count', 'strikes', 'until', 'last', 'pending', 'pending_at')
local start = tonumber(h[1]) or 0
local count = tonumber(h[2]) or 0
local strikes = tonumber(h[3]) or 0
local until_ = tonumber(h[4]) or 0
local last = tonumber(h[5]) or 0
local pending = tonumber(h[6]) or 0
local pending_at = tonumber(h[7]) or 0
if ARGV[8] == '1' and pending > 0 then pending = pending - 1 end
local locked_for = 0
if until_ > now then
  last = now  -- locked already: an attempt that passed the check before the lock (see _fail)
else
  if strikes > 0 and now - last > forget then strikes = 0 end
  if count == 0 or now - start > window then start = now; count = 0 end
  count = count + 1
  last = now
  if count >= max_failures then
    strikes = strikes + 1
    locked_for = base * multiplier ^ (strikes - 1)
    if locked_for > max_lockout then locked_for = max_lockout end
    if now + locked_for > until_ then until_ = now + locked_for end
    count = 0
  end
end
redis.call('HSET', KEYS[1], 'start', string.format('%.17g', start), 'count', count, 'strikes', strikes,
  'until', string.format('%.17g', until_), 'last', string.format('%.17g', last), 'pending', pending)
local keep = window
if until_ - now > keep then keep = until_ - now end
if strikes > 0 and forget > keep then keep = forget end
if pending > 0 and pending_at + ATTEMPT_TIMEOUT - now > keep then keep = pending_at + ATTEMPT_TIMEOUT - now end
redis.call('PEXPIRE', KEYS[1], math.ceil(keep * 1000) + 1000)
return tostring(locked_for)
"""
)

# KEYS[1]: the subject's hash. ARGV: max_failures, window, now ('' for the server's TIME).
_BEGIN_SCRIPT = (
    lua_now(3)
    + _LUA_CONSTANTS
    + """
local max_failures = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local h = redis.call('HMGET', KEYS[1], 'start', 'count', 'until', 'pending', 'pending_at')
local start = tonumber(h[1]) or 0
local count = tonumber(h[2]) or 0
local until_ = tonumber(h[3]) or 0
local pending = tonumber(h[4]) or 0
local pending_at = tonumber(h[5]) or 0
if until_ > now then return tostring(until_ - now) end
if pending > 0 and now - pending_at > ATTEMPT_TIMEOUT then pending = 0 end
local failures = count
if count == 0 or now - start > window then failures = 0 end
if failures + pending >= max_failures then return tostring(BUSY) end
redis.call('HSET', KEYS[1], 'pending', pending + 1, 'pending_at', string.format('%.17g', now))
if redis.call('PTTL', KEYS[1]) < ATTEMPT_TIMEOUT * 1000 then
  redis.call('PEXPIRE', KEYS[1], math.ceil(ATTEMPT_TIMEOUT * 1000) + 1000)
end
return '0'
"""
)

# KEYS[1]: the subject's hash. Forgets failures and strikes, keeps the places of attempts in flight.
_SUCCEEDED_SCRIPT = """
local pending = tonumber(redis.call('HGET', KEYS[1], 'pending') or '0')
if pending > 0 then
  redis.call('HDEL', KEYS[1], 'start', 'count', 'strikes', 'until', 'last')
else
  redis.call('DEL', KEYS[1])
end
return 0
"""

_RELEASE_SCRIPT = """
local pending = tonumber(redis.call('HGET', KEYS[1], 'pending') or '0')
if pending > 0 then redis.call('HSET', KEYS[1], 'pending', pending - 1) end
return 0
"""

_LOCKED_SCRIPT = (
    lua_now(1)
    + """
local until_ = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
if until_ <= now then return '0' end
return tostring(until_ - now)
"""
)


class RedisLockoutStore:
    """Records in Redis, shared by every replica: one hash per subject, one script per update,
    times from Redis ``TIME`` (or ``clock``, for tests). Redis errors propagate."""

    def __init__(self, client: Any, *, prefix: str = "breakerpanel:lockout", clock: Clock | None = None) -> None:
        self.client = client
        self.prefix = prefix
        self.clock = clock
        self._fail = client.register_script(_FAIL_SCRIPT)
        self._locked = client.register_script(_LOCKED_SCRIPT)
        self._begin = client.register_script(_BEGIN_SCRIPT)
        self._succeeded = client.register_script(_SUCCEEDED_SCRIPT)
        self._release = client.register_script(_RELEASE_SCRIPT)

    def key_for(self, guard: str, subject: str) -> str:
        return f"{self.prefix}:{guard}:{hash_key(subject)}"

    def _now(self) -> str:
        return "" if self.clock is None else repr(self.clock.now())

    async def locked_for(self, guard: str, subject: str) -> float:
        return float(await self._locked(keys=[self.key_for(guard, subject)], args=[self._now()]))

    async def failed(self, guard: str, subject: str, policy: LockoutPolicy, *, reserved: bool = False) -> float:
        args: Sequence[Any] = [
            policy.max_failures,
            repr(policy.window),
            repr(policy.base_lockout),
            repr(policy.multiplier),
            repr(policy.max_lockout),
            repr(policy.forget_after),
            self._now(),
            "1" if reserved else "0",
        ]
        return float(await self._fail(keys=[self.key_for(guard, subject)], args=args))

    async def succeeded(self, guard: str, subject: str) -> None:
        await self._succeeded(keys=[self.key_for(guard, subject)])

    async def begin(self, guard: str, subject: str, policy: LockoutPolicy) -> float:
        args = [policy.max_failures, repr(policy.window), self._now()]
        return float(await self._begin(keys=[self.key_for(guard, subject)], args=args))

    async def release(self, guard: str, subject: str) -> None:
        await self._release(keys=[self.key_for(guard, subject)])


class LockedOutError(BreakerError):
    """An authentication attempt was refused because its principal or address is locked out."""

    def __init__(self, guard: str, status: LockoutStatus) -> None:
        super().__init__(f"{guard}: locked out for {status.retry_after:.0f}s")
        self.guard = guard
        self.status = status

    @property
    def retry_after(self) -> float:
        return self.status.retry_after


@dataclass(frozen=True, slots=True)
class LockoutStatistics:
    name: str
    policy: LockoutPolicy
    #: Failed authentications recorded.
    failures: int
    successes: int
    #: Lockouts started, by subject kind.
    lockouts: dict[SubjectKind, int]
    #: Attempts refused because a subject was locked.
    rejected: int


class LockoutGuard:
    """Locks principals and source addresses out after repeated failed authentications.

    ::

        guard = LockoutGuard("admin", LockoutPolicy(max_failures=5, window=300))

        async with guard.attempt(user, address) as attempt:
            if attempt.status.locked:
                ...  # 429 with Retry-After, or the same 401 as a bad password (reveal_lockout=False)
            elif constant_time_equals(password_hash, expected):
                await attempt.succeeded()
            else:
                await attempt.failed()

    An attempt holds a place among the failures its subjects have left before their next lockout,
    from the check to its outcome: concurrent attempts beyond those places wait for one (up to
    ``busy_wait`` seconds, then are told to retry in :data:`BUSY_RETRY`), so a burst of guesses
    gets ``max_failures`` answers, not one per request, while honest concurrent logins only wait
    a moment. ``check()`` then ``failed()``/``succeeded()`` still work, without that bound.

    Principals and addresses are policed by separate policies (``address_policy`` defaults to
    ``policy`` with ten times the failures: one address may serve many honest users).
    """

    def __init__(
        self,
        name: str,
        policy: LockoutPolicy | None = None,
        *,
        address_policy: LockoutPolicy | None = None,
        store: LockoutStore | None = None,
        clock: Clock | None = None,
        listeners: Iterable[GuardListener] = (),
        busy_wait: float = 2.0,
    ) -> None:
        if isinstance(busy_wait, bool) or not isinstance(busy_wait, int | float) or not 0 <= busy_wait < math.inf:
            raise BreakerConfigError("busy_wait", f"must be a finite number of seconds, 0 or more (got {busy_wait!r})")
        self.busy_wait = float(busy_wait)
        self.name = name
        self.policy = policy if policy is not None else LockoutPolicy()
        self.address_policy = (
            address_policy
            if address_policy is not None
            else LockoutPolicy(
                max_failures=self.policy.max_failures * 10,
                window=self.policy.window,
                base_lockout=self.policy.base_lockout,
                multiplier=self.policy.multiplier,
                max_lockout=self.policy.max_lockout,
                forget_after=self.policy.forget_after,
            )
        )
        self.clock: Clock = clock if clock is not None else MonotonicClock()
        self.store: LockoutStore = store if store is not None else MemoryLockoutStore(clock=self.clock)
        self.listeners = tuple(listeners)
        self._failures = 0
        self._successes = 0
        self._rejected = 0
        self._lockouts = dict.fromkeys(SubjectKind, 0)

    @staticmethod
    def _subjects(principal: str | None, address: str | None) -> list[tuple[SubjectKind, str]]:
        subjects = []
        if principal is not None:
            subjects.append((SubjectKind.PRINCIPAL, f"principal:{principal}"))
        if address is not None:
            subjects.append((SubjectKind.ADDRESS, f"address:{address}"))
        return subjects

    def attempt(self, principal: str | None, address: str | None) -> LockoutAttempt:
        """One authentication attempt, as an async context manager: entering checks the subjects
        and takes a place with each (``attempt.status`` says whether to go on); report the
        outcome with ``attempt.succeeded()`` or ``attempt.failed()``; leaving without one gives
        the places back."""
        return LockoutAttempt(self, principal, address)

    async def check(self, principal: str | None, address: str | None) -> LockoutStatus:
        """Whether ``principal`` or ``address`` is locked out (the longer lock wins)."""
        status = _OPEN
        for kind, subject in self._subjects(principal, address):
            left = await self.store.locked_for(self.name, subject)
            if left > status.retry_after:
                status = LockoutStatus(True, left, kind)
        if status.locked:
            self._rejected += 1
        return status

    async def failed(self, principal: str | None, address: str | None) -> LockoutStatus:
        """Record a failed authentication; returns the lock it started, if any."""
        return await self._failed(principal, address, [])

    async def _failed(self, principal: str | None, address: str | None, taken: list[str]) -> LockoutStatus:
        """Count the failure with each subject; the places in ``taken`` are given back with it,
        and taken out of the list as they are (what is left was not given back)."""
        self._failures += 1
        status = _OPEN
        for kind, subject in self._subjects(principal, address):
            policy = self.policy if kind is SubjectKind.PRINCIPAL else self.address_policy
            reserved = subject in taken
            seconds = await self.store.failed(self.name, subject, policy, reserved=reserved)
            if reserved:
                taken.remove(subject)
            if seconds > 0:
                self._lockouts[kind] += 1
                if self.listeners:
                    _notify(self.listeners, "locked_out", self.name, subject, kind.value, seconds)
                if seconds > status.retry_after:
                    status = LockoutStatus(True, seconds, kind)
        return status

    async def succeeded(self, principal: str, address: str | None = None) -> None:
        """Record a successful authentication of ``principal``: clears that principal only."""
        self._successes += 1
        await self.store.succeeded(self.name, f"principal:{principal}")

    async def _begin(self, principal: str | None, address: str | None) -> tuple[LockoutStatus, list[str]]:
        """Take a place with each subject. The status, and the subjects that hold a place (none
        unless every subject gave one). A locked subject refuses at once, with the longest lock of
        them all (Retry-After must not send the client back early); while the places are full,
        the attempt waits up to ``busy_wait`` for one: honest concurrent logins wait a moment,
        a burst of guesses gets no more answers than failures are left."""
        deadline = time.monotonic() + self.busy_wait
        while True:
            taken: list[str] = []
            locked = _OPEN
            busy: SubjectKind | None = None
            try:
                for kind, subject in self._subjects(principal, address):
                    policy = self.policy if kind is SubjectKind.PRINCIPAL else self.address_policy
                    wait = await self.store.begin(self.name, subject, policy)
                    if wait == 0:
                        taken.append(subject)
                    elif wait > 0:
                        if wait > locked.retry_after:
                            locked = LockoutStatus(True, wait, kind)
                    elif busy is None:
                        busy = kind
            except BaseException:
                await self._release(taken)
                raise
            if busy is None and not locked.locked:
                return _OPEN, taken
            await self._release(taken)
            if locked.locked or time.monotonic() >= deadline:
                self._rejected += 1
                return (locked if locked.locked else LockoutStatus(True, BUSY_RETRY, busy)), []
            await asyncio.sleep(_BUSY_POLL)

    async def _release(self, subjects: list[str]) -> None:
        """Give back the places in ``subjects``, taking each out of the list as it is given back."""
        while subjects:
            await self.store.release(self.name, subjects[0])
            del subjects[0]

    def statistics(self) -> LockoutStatistics:
        return LockoutStatistics(
            self.name, self.policy, self._failures, self._successes, dict(self._lockouts), self._rejected
        )

    def __repr__(self) -> str:
        return f"LockoutGuard({self.name!r}, {self.policy!r})"


class LockoutAttempt:
    """One authentication attempt holding a place with its subjects (:meth:`LockoutGuard.attempt`)."""

    __slots__ = ("_address", "_entered", "_guard", "_principal", "_reported", "_taken", "status")

    def __init__(self, guard: LockoutGuard, principal: str | None, address: str | None) -> None:
        self._guard = guard
        self._principal = principal
        self._address = address
        self._taken: list[str] = []
        self._entered = False
        self._reported = False
        #: Whether the attempt may go on (``locked`` False), set on entering.
        self.status = _OPEN

    async def __aenter__(self) -> LockoutAttempt:
        if self._entered:
            raise RuntimeError("a lockout attempt is entered once: take a new one per attempt")
        self._entered = True
        self.status, self._taken = await self._guard._begin(self._principal, self._address)
        return self

    def _report(self) -> None:
        if not self._entered or self._reported or self.status.locked:
            raise RuntimeError("report the outcome of an attempt once, inside its block, after it was let through")
        self._reported = True

    async def succeeded(self) -> None:
        """The secret was right: clears the principal (as :meth:`LockoutGuard.succeeded`) and
        gives the places back; the address keeps its failures."""
        self._report()
        if self._principal is not None:
            await self._guard.succeeded(self._principal, self._address)
        await self._guard._release(self._taken)

    async def failed(self) -> LockoutStatus:
        """The secret was wrong: counts the failure (as :meth:`LockoutGuard.failed`), giving the
        places back; returns the lock it started, if any."""
        self._report()
        return await self._guard._failed(self._principal, self._address, self._taken)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Places not given back: no outcome reported (an error, a cancellation: not a failure of
        # the secret), or a report that failed part way (the store went away).
        if self._taken:
            with contextlib.suppress(Exception):  # the error on its way out says more
                await self._guard._release(self._taken)


class ConstantTime:
    """An async context manager that makes its block last at least ``seconds`` (on every path,
    exceptions included), so that a locked, a failed and a successful attempt take the same time.

    >>> async def login() -> None:
    ...     async with ConstantTime(0.01):
    ...         ...  # check the lock, compare the secret, record the outcome
    """

    __slots__ = ("_deadline", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._deadline = 0.0

    async def __aenter__(self) -> ConstantTime:
        self._deadline = time.monotonic() + self.seconds
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None and issubclass(exc_type, asyncio.CancelledError):
            return
        left = self._deadline - time.monotonic()
        if left > 0:
            await asyncio.sleep(left)
