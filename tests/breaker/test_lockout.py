"""Authentication-failure lockout: per principal and per address, growing lockouts, memory and Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from breakerpanel import BreakerConfigError, ManualClock
from breakerpanel.guards import (
    ConstantTime,
    GuardListener,
    LockoutGuard,
    LockoutPolicy,
    LockoutStore,
    MemoryLockoutStore,
    RedisLockoutStore,
    SubjectKind,
    constant_time_equals,
)
from breakerpanel.guards._lockout import ATTEMPT_TIMEOUT, BUSY, BUSY_RETRY
from tests.servers import REDIS_VERSIONS, RedisServer

StoreFactory = Callable[[ManualClock], LockoutStore]

POLICY = LockoutPolicy(max_failures=3, window=60, base_lockout=10, multiplier=2, max_lockout=35, forget_after=600)


@pytest.fixture(params=["memory", *REDIS_VERSIONS])
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[StoreFactory]:
    if request.param == "memory":
        yield lambda clock: MemoryLockoutStore(clock=clock)
        return
    server: RedisServer = request.getfixturevalue(f"{request.param}_server")
    client = aioredis.from_url(server.url)
    yield lambda clock: RedisLockoutStore(client, clock=clock, prefix=f"test:{id(clock)}")
    await client.aclose()


def make_guard(store: StoreFactory, clock: ManualClock, **options: object) -> LockoutGuard:
    return LockoutGuard("login", POLICY, store=store(clock), clock=clock, **options)  # type: ignore[arg-type]


def test_policy_validation_and_growth() -> None:
    assert [POLICY.lockout_for(n) for n in (1, 2, 3, 4)] == [10, 20, 35, 35]
    with pytest.raises(BreakerConfigError):
        LockoutPolicy(max_failures=0)
    with pytest.raises(BreakerConfigError):
        LockoutPolicy(base_lockout=10, max_lockout=5)
    with pytest.raises(BreakerConfigError):
        LockoutPolicy(multiplier=0.5)
    assert LockoutPolicy() == LockoutPolicy()
    assert "max_failures=5" in repr(LockoutPolicy())


async def test_locks_after_n_failures_with_growing_lockouts(make_store: StoreFactory) -> None:
    clock = ManualClock(1000.0)
    guard = make_guard(make_store, clock)
    for _ in range(2):
        assert not (await guard.failed("alice", None)).locked
    status = await guard.failed("alice", None)
    assert status.locked
    assert status.retry_after == pytest.approx(10)
    assert status.kind is SubjectKind.PRINCIPAL
    assert (await guard.check("alice", None)).retry_after == pytest.approx(10)
    clock.advance(10.5)
    assert not (await guard.check("alice", None)).locked
    for _ in range(3):
        status = await guard.failed("alice", None)
    assert status.retry_after == pytest.approx(20)  # the second lockout is longer
    clock.advance(21)
    for _ in range(3):
        status = await guard.failed("alice", None)
    assert status.retry_after == pytest.approx(35)  # capped
    stats = guard.statistics()
    assert stats.lockouts[SubjectKind.PRINCIPAL] == 3
    assert stats.failures == 9


async def test_failures_outside_the_window_do_not_add_up(make_store: StoreFactory) -> None:
    clock = ManualClock(0.0)
    guard = make_guard(make_store, clock)
    for _ in range(10):
        assert not (await guard.failed("alice", None)).locked
        clock.advance(31)  # two failures per 60 s window at most


async def test_success_resets_only_its_own_principal(make_store: StoreFactory) -> None:
    clock = ManualClock(0.0)
    guard = make_guard(make_store, clock)
    for _ in range(2):
        await guard.failed("alice", "10.0.0.1")
        await guard.failed("bob", "10.0.0.1")
    await guard.succeeded("bob", "10.0.0.1")
    assert (await guard.failed("alice", "10.0.0.1")).locked  # bob's success did not help alice
    assert not (await guard.failed("bob", "10.0.0.1")).locked  # bob starts again from zero
    assert not (await guard.check("bob", "10.0.0.9")).locked


async def test_an_address_spraying_many_principals_is_locked(make_store: StoreFactory) -> None:
    clock = ManualClock(0.0)
    address_policy = LockoutPolicy(max_failures=5, window=60, base_lockout=30)
    guard = LockoutGuard("login", POLICY, address_policy=address_policy, store=make_store(clock), clock=clock)
    for i in range(4):
        assert not (await guard.failed(f"user{i}", "203.0.113.9")).locked
    status = await guard.failed("user4", "203.0.113.9")
    assert status.locked
    assert status.kind is SubjectKind.ADDRESS
    # A valid login of one of the sprayed accounts does not unlock the address.
    await guard.succeeded("user0", "203.0.113.9")
    assert (await guard.check("someone", "203.0.113.9")).locked
    assert not (await guard.check("someone", "198.51.100.1")).locked


async def test_listener_hears_lockouts() -> None:
    heard: list[tuple[str, str, float]] = []

    class Recorder(GuardListener):
        def locked_out(self, guard: str, subject: str, kind: str, seconds: float) -> None:
            heard.append((subject, kind, seconds))

    clock = ManualClock()
    guard = LockoutGuard("login", POLICY, clock=clock, listeners=[Recorder()])
    for _ in range(3):
        await guard.failed("alice", None)
    assert heard == [("principal:alice", "principal", 10.0)]


def test_memory_store_forgets_idle_subjects() -> None:
    clock = ManualClock(0.0)
    store = MemoryLockoutStore(clock=clock, max_subjects=50)
    import asyncio

    async def spray() -> None:
        for i in range(500):
            await store.failed("login", f"principal:u{i}", POLICY)

    asyncio.run(spray())
    assert len(store) == 50
    clock.advance(61)

    async def one() -> None:
        await store.failed("login", "principal:new", POLICY)

    asyncio.run(one())
    assert len(store) == 1


async def test_redis_keys_are_hashed_and_expire(redis_server: RedisServer) -> None:
    client = aioredis.from_url(redis_server.url)
    try:
        guard = LockoutGuard("admin", POLICY, store=RedisLockoutStore(client, prefix="lk"))
        for _ in range(3):
            await guard.failed("root", "127.0.0.1")
        keys = sorted([k.decode() async for k in client.scan_iter("lk:*")])
        assert len(keys) == 2
        assert not any("root" in k or "127.0.0.1" in k for k in keys)
        assert all([await client.pttl(k) > 0 for k in keys])
        assert (await guard.check("root", None)).locked  # with Redis' own clock
    finally:
        await client.aclose()


def test_constant_time_equals() -> None:
    assert constant_time_equals("s3cret", "s3cret")
    assert constant_time_equals(b"s3cret", "s3cret")
    assert not constant_time_equals("s3cret", "s3creT")
    assert not constant_time_equals("", "x")


async def test_constant_time_pads_every_path() -> None:
    start = time.monotonic()
    async with ConstantTime(0.05):
        pass
    assert time.monotonic() - start >= 0.05
    start = time.monotonic()
    with pytest.raises(ValueError, match="x"):
        async with ConstantTime(0.05):
            raise ValueError("x")
    assert time.monotonic() - start >= 0.05


def test_policy_refuses_settings_that_would_defeat_it() -> None:
    for bad in (
        {"max_failures": True},
        {"window": float("inf")},  # Redis keeps a record as long as its longest setting
        {"base_lockout": float("nan")},
        {"forget_after": float("inf")},
        {"multiplier": None},
        {"window": "300"},
        {"base_lockout": 30, "max_lockout": 60, "forget_after": 20},  # strikes forgotten while locked
    ):
        with pytest.raises(BreakerConfigError) as caught:
            LockoutPolicy(**bad)  # type: ignore[arg-type]
        assert caught.value.field in bad
    with pytest.raises(BreakerConfigError, match="max_subjects"):
        MemoryLockoutStore(max_subjects=0)  # would forget each record as it is written


def test_lockouts_stay_capped_however_many_strikes() -> None:
    # 2 ** 1024 overflows a float: from the 1,025th strike on, every failure raised and the
    # subject was never locked again.
    assert LockoutPolicy(multiplier=2).lockout_for(1025) == 3600.0
    assert LockoutPolicy(multiplier=10).lockout_for(400) == 3600.0


async def test_failures_of_attempts_already_in_flight_when_the_lock_began_do_not_escalate(
    make_store: StoreFactory,
) -> None:
    # Concurrent attempts all pass check() before any of them fails: those that fail once the
    # subject is locked count toward no further lockout (before, 100 such failures took the
    # strikes from 1 to 34 at once: a 3,600 s lock where 10 s was due).
    clock = ManualClock(1000.0)
    guard = make_guard(make_store, clock)
    statuses = [await guard.failed("alice", None) for _ in range(20)]
    assert [s.locked for s in statuses].count(True) == 1
    assert (await guard.check("alice", None)).retry_after == pytest.approx(10)
    clock.advance(10.5)
    for _ in range(3):
        status = await guard.failed("alice", None)
    assert status.retry_after == pytest.approx(20)  # the second lockout: strikes went 1, 2
    assert guard.statistics().lockouts[SubjectKind.PRINCIPAL] == 2


async def test_lockouts_far_past_the_cap_still_lock(make_store: StoreFactory) -> None:
    clock = ManualClock(0.0)
    policy = LockoutPolicy(max_failures=1, base_lockout=1, multiplier=1000, max_lockout=5, forget_after=600)
    guard = LockoutGuard("login", policy, store=make_store(clock), clock=clock)
    for _ in range(120):  # 1000 ** 119 is past a float's range
        status = await guard.failed("alice", None)
        assert status.locked
        clock.advance(5.5)
    assert status.retry_after == pytest.approx(5)


async def test_concurrent_guesses_get_as_many_answers_as_failures_left(make_store: StoreFactory) -> None:
    # Every attempt used to pass check() before the first failure was recorded: 100 concurrent
    # wrong guesses were 100 secrets verified. An attempt now holds a place among the failures
    # left (3 here) from its check to its outcome; the others are told to come back.
    clock = ManualClock(1000.0)
    guard = make_guard(make_store, clock, busy_wait=0.05)  # waits briefly for a place, then refused
    verified = refused = 0
    outcomes_may_come, all_refused = asyncio.Event(), asyncio.Event()

    async def guess() -> tuple[bool, float]:
        nonlocal verified, refused
        async with guard.attempt("alice", "192.0.2.7") as attempt:
            if attempt.status.locked:
                refused += 1
                if refused == 27:
                    all_refused.set()
                return False, attempt.status.retry_after
            verified += 1
            await outcomes_may_come.wait()  # the secret's check takes a while (a hash, a lookup)
            status = await attempt.failed()
            return True, status.retry_after

    tasks = [asyncio.create_task(guess()) for _ in range(30)]
    await all_refused.wait()
    outcomes_may_come.set()
    results = await asyncio.gather(*tasks)
    assert verified == 3
    assert sorted(r for r in results if not r[0]) == [(False, BUSY_RETRY)] * 27
    assert sorted(r[1] for r in results if r[0]) == [0.0, 0.0, pytest.approx(10)]  # the third locks
    stats = guard.statistics()
    assert (stats.failures, stats.lockouts[SubjectKind.PRINCIPAL], stats.rejected) == (3, 1, 27)
    assert (await guard.check("alice", None)).retry_after == pytest.approx(10)
    clock.advance(10.5)
    async with guard.attempt("alice", "192.0.2.7") as attempt:  # every place was given back
        assert not attempt.status.locked
        await attempt.succeeded()


async def test_an_attempt_that_reports_no_outcome_gives_its_place_back(make_store: StoreFactory) -> None:
    clock = ManualClock(1000.0)
    guard = make_guard(make_store, clock)

    async def user_store_down() -> None:
        async with guard.attempt("alice", "192.0.2.7") as attempt:
            assert not attempt.status.locked
            raise ConnectionError("the user store is down: not a wrong secret")

    for _ in range(5):  # more than max_failures (3) attempts, one after another, none reporting
        with pytest.raises(ConnectionError):
            await user_store_down()
    started = asyncio.Event()

    async def cancelled() -> None:
        async with guard.attempt("alice", None):
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(cancelled())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    holders = [guard.attempt("alice", "192.0.2.7") for _ in range(3)]
    for holder in holders:
        assert not (await holder.__aenter__()).status.locked
    assert guard.statistics().failures == 0


async def test_a_success_gives_the_addresss_place_back_and_keeps_its_failures(make_store: StoreFactory) -> None:
    clock = ManualClock(1000.0)
    address_policy = LockoutPolicy(max_failures=2, window=60, base_lockout=30)
    guard = LockoutGuard("login", POLICY, address_policy=address_policy, store=make_store(clock), clock=clock)
    async with guard.attempt("bob", "203.0.113.9") as attempt:
        await attempt.failed()
    for _ in range(3):  # bob's successes free the address's place each time
        async with guard.attempt("bob", "203.0.113.9") as attempt:
            assert not attempt.status.locked
            await attempt.succeeded()
    async with guard.attempt("carol", "203.0.113.9") as attempt:
        assert not attempt.status.locked
        status = await attempt.failed()
    assert (status.locked, status.kind) == (True, SubjectKind.ADDRESS)  # the address kept bob's failure


async def test_places_of_attempts_that_never_report_are_forgotten(make_store: StoreFactory) -> None:
    # An attempt whose replica died mid-way never gives its place back: a store forgets it.
    clock = ManualClock(1000.0)
    store = make_store(clock)
    assert [await store.begin("login", "principal:alice", POLICY) for _ in range(4)] == [0, 0, 0, BUSY]
    clock.advance(ATTEMPT_TIMEOUT + 1)
    assert await store.begin("login", "principal:alice", POLICY) == 0


async def test_an_attempt_reports_once() -> None:
    guard = LockoutGuard("login", POLICY, clock=ManualClock())
    async with guard.attempt("alice", None) as attempt:
        await attempt.failed()
        with pytest.raises(RuntimeError):
            await attempt.succeeded()
    with pytest.raises(RuntimeError):
        await attempt.__aenter__()


async def test_concurrent_correct_logins_wait_for_a_place_instead_of_being_refused(make_store: StoreFactory) -> None:
    # Places were refused at once: 12 concurrent correct logins of one service account with
    # max_failures 5 got 5 answers and 7 refusals (a 401 with reveal_lockout=False).
    guard = make_guard(make_store, ManualClock(1000.0))
    inside = 0
    most = 0

    async def login() -> bool:
        nonlocal inside, most
        async with guard.attempt("svc-account", "192.0.2.7") as attempt:
            if attempt.status.locked:
                return False
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.02)  # the secret's check
            inside -= 1
            await attempt.succeeded()
            return True

    assert await asyncio.gather(*(login() for _ in range(12))) == [True] * 12
    assert most <= POLICY.max_failures


async def test_an_attempt_reports_the_longest_lock_of_its_subjects(make_store: StoreFactory) -> None:
    # It stopped at the first subject that refused: the principal's 10 s, where the address's
    # lock had an hour left (Retry-After sent the client back early).
    clock = ManualClock(1000.0)
    address_policy = LockoutPolicy(max_failures=3, base_lockout=3600, max_lockout=3600, forget_after=7200)
    guard = LockoutGuard("login", POLICY, address_policy=address_policy, store=make_store(clock), clock=clock)
    for _ in range(3):
        await guard.failed("alice", "192.0.2.7")
    async with guard.attempt("alice", "192.0.2.7") as attempt:
        assert attempt.status == await guard.check("alice", "192.0.2.7")
    assert (attempt.status.retry_after, attempt.status.kind) == (pytest.approx(3600), SubjectKind.ADDRESS)


async def test_a_report_that_fails_part_way_gives_the_places_back(make_store: StoreFactory) -> None:
    clock = ManualClock(1000.0)
    store = make_store(clock)
    policy = LockoutPolicy(max_failures=2, window=60, base_lockout=10, max_lockout=35, forget_after=600)
    guard = LockoutGuard("login", policy, address_policy=policy, store=store, clock=clock, busy_wait=0)
    failing = store.failed

    async def principal_store_down(
        guard_name: str, subject: str, policy: LockoutPolicy, *, reserved: bool = False
    ) -> float:
        if subject.startswith("principal:"):
            raise ConnectionError("the store went away")
        return await failing(guard_name, subject, policy, reserved=reserved)

    store.failed = principal_store_down  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        async with guard.attempt("alice", "192.0.2.7") as attempt:
            await attempt.failed()
    store.failed = failing  # type: ignore[method-assign]
    for user in ("bob", "carol"):  # both places free: the address counted no failure
        async with guard.attempt(user, "192.0.2.7") as attempt:
            assert not attempt.status.locked
            await attempt.succeeded()


async def test_a_success_keeps_the_places_of_the_attempts_still_in_flight(make_store: StoreFactory) -> None:
    clock = ManualClock(1000.0)
    policy = LockoutPolicy(max_failures=2, window=60, base_lockout=10, max_lockout=35, forget_after=600)
    guard = LockoutGuard("login", policy, store=make_store(clock), clock=clock, busy_wait=0)
    first, second = guard.attempt("alice", None), guard.attempt("alice", None)
    await first.__aenter__()
    await second.__aenter__()
    await first.succeeded()
    async with guard.attempt("alice", None) as third:  # second still holds a place: one left
        assert not third.status.locked
        async with guard.attempt("alice", None) as fourth:
            assert fourth.status.locked  # before, the success had wiped the count: a third place
        await third.succeeded()
    await second.succeeded()
