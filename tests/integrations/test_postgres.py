"""asyncpg and SQLAlchemy's async engine behind a breaker, against a real PostgreSQL stopped and
restarted mid-run."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
import sqlalchemy.exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from breakerpanel import BreakerConfig, BreakerError, CircuitBreaker, CircuitOpenError, DependencyError, State
from breakerpanel.integrations.asyncpg import ProtectedPool
from breakerpanel.integrations.sqlalchemy import ProtectedEngine
from tests.servers import PostgresServer, find_free_port

WINDOW = BreakerConfig(
    sliding_window_type="time_based",
    sliding_window_size=10,
    minimum_calls=4,
    failure_rate_threshold=0.5,
    wait_in_open=0.3,
    permitted_calls_in_half_open=2,
)


@pytest.fixture
async def pool(postgres_server: PostgresServer) -> AsyncIterator[ProtectedPool]:
    protected = await ProtectedPool.create(
        postgres_server.dsn, breaker=CircuitBreaker("postgres", WINDOW), max_size=4, timeout=1.0
    )
    await protected.execute("CREATE TABLE docs (id int PRIMARY KEY, body text)")
    await protected.executemany("INSERT INTO docs VALUES ($1, $2)", [(1, "breakers"), (2, "fallbacks")])
    yield protected
    await protected.close()


async def until_closed(breaker: CircuitBreaker, attempt: Callable[[], Awaitable[object]]) -> None:
    deadline = time.monotonic() + 15
    while breaker.state is not State.CLOSED:
        assert time.monotonic() < deadline, "the breaker did not close after PostgreSQL came back"
        try:
            await attempt()
        except BreakerError:
            await asyncio.sleep(0.05)


async def test_queries_and_caller_mistakes(pool: ProtectedPool) -> None:
    assert await pool.fetchval("SELECT body FROM docs WHERE id = $1", 1) == "breakers"
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO docs VALUES (3, 'txn')")
    assert [r["id"] for r in await pool.fetch("SELECT id FROM docs ORDER BY id")] == [1, 2, 3]
    for _ in range(5):  # integrity and syntax errors: raised as they are, not counted
        with pytest.raises(asyncpg.UniqueViolationError):
            await pool.execute("INSERT INTO docs VALUES (1, 'again')")
        with pytest.raises(asyncpg.PostgresSyntaxError):
            await pool.fetch("SELEKT 1")
    snap = pool.breaker.snapshot()
    assert snap.state is State.CLOSED
    assert snap.totals.ignored == 10
    assert snap.totals.failures == 0


async def test_stopped_server_opens_the_breaker_and_restart_closes_it(
    postgres_server: PostgresServer, pool: ProtectedPool
) -> None:
    breaker = pool.breaker
    for _ in range(4):
        await pool.fetchval("SELECT count(*) FROM docs")
    postgres_server.stop(mode="immediate")

    seen: list[type[BaseException]] = []
    for _ in range(20):
        try:
            await pool.fetchval("SELECT count(*) FROM docs")
        except BreakerError as exc:  # no raw driver error reaches the caller
            seen.append(type(exc))
    assert breaker.state is State.OPEN
    totals = breaker.snapshot().totals
    failures = totals.failures
    assert failures == totals.successes  # it opened on the first failure that made the rate 50%
    assert set(seen[:failures]) == {DependencyError}
    assert set(seen[failures:]) == {CircuitOpenError}

    postgres_server.start()
    await until_closed(breaker, lambda: pool.fetchval("SELECT count(*) FROM docs"))
    assert await pool.fetchval("SELECT count(*) FROM docs") == 2  # the data survived


async def test_too_many_connections_is_a_failure(postgres_server: PostgresServer) -> None:
    breaker = CircuitBreaker("postgres", WINDOW.replace(minimum_calls=100))
    slots = int(postgres_server.settings["max_connections"])
    holders = [await asyncpg.connect(postgres_server.dsn) for _ in range(slots)]
    try:
        pool = await ProtectedPool.create(postgres_server.dsn, breaker=breaker, max_size=2)
        with pytest.raises(DependencyError, match="too_many_connections") as info:
            await pool.fetchval("SELECT 1")
        assert isinstance(info.value.__cause__, asyncpg.TooManyConnectionsError)
        assert breaker.snapshot().totals.failures_by_type == {"too_many_connections": 1}
    finally:
        for connection in holders:
            await connection.close()
    assert await pool.fetchval("SELECT 1") == 1
    await pool.close()


async def test_admin_shutdown_of_a_busy_connection_is_a_failure(
    postgres_server: PostgresServer, pool: ProtectedPool
) -> None:
    async def sleep_in_postgres() -> None:
        await pool.execute("SELECT pg_sleep(10)")

    busy = asyncio.create_task(sleep_in_postgres())
    await asyncio.sleep(0.3)
    postgres_server.stop(mode="fast")  # the server terminates its backends: 57P01
    with pytest.raises(DependencyError) as info:
        await busy
    assert info.value.error_type in ("admin_shutdown", "connection_error")
    postgres_server.start()


async def test_sqlalchemy_async_engine(postgres_server: PostgresServer) -> None:
    url = postgres_server.dsn.replace("postgresql://", "postgresql+asyncpg://")
    engine = ProtectedEngine(
        create_async_engine(url, pool_pre_ping=False, connect_args={"timeout": 1.0}), CircuitBreaker("postgres", WINDOW)
    )
    breaker = engine.breaker
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE notes (id int PRIMARY KEY)"))
            await conn.execute(text("INSERT INTO notes VALUES (1)"))
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT count(*) FROM notes")) == 1
            with pytest.raises(sqlalchemy.exc.IntegrityError):
                await conn.execute(text("INSERT INTO notes VALUES (1)"))
        assert breaker.snapshot().totals.ignored == 1

        postgres_server.stop(mode="immediate")
        await engine.raw.dispose()  # the pooled connections died with the server
        seen: set[type[BaseException]] = set()
        for _ in range(10):
            try:
                async with engine.connect() as conn:
                    await conn.scalar(text("SELECT 1"))
            except BreakerError as exc:
                seen.add(type(exc))
        assert seen == {DependencyError, CircuitOpenError}
        assert breaker.state is State.OPEN

        postgres_server.start()

        async def select_one() -> None:
            async with engine.connect() as conn:
                await conn.scalar(text("SELECT 1"))

        await until_closed(breaker, select_one)
    finally:
        await engine.dispose()


async def test_a_pooled_connection_the_server_ended_is_a_failure(
    postgres_server: PostgresServer, pool: ProtectedPool
) -> None:
    # A restart or failover ends idle connections: the next query's "connection is closed"
    # (asyncpg InterfaceError) was ignored and reached the caller raw.
    admin = await asyncpg.connect(postgres_server.dsn)
    async with pool.acquire() as connection:
        pid = await connection.fetchval("SELECT pg_backend_pid()")
        await admin.execute("SELECT pg_terminate_backend($1)", pid)
        with contextlib.suppress(DependencyError):
            await connection.fetchval("SELECT 1")  # the first may still learn it mid-query
        with pytest.raises(DependencyError) as info:
            await connection.fetchval("SELECT 1")
    await admin.close()
    assert info.value.error_type == "connection_error"
    assert pool.breaker.snapshot().totals.ignored == 0


async def test_a_connection_lost_inside_a_transaction_counts_once_and_keeps_its_error(
    postgres_server: PostgresServer, pool: ProtectedPool
) -> None:
    # The ROLLBACK on the dead connection went through the breaker too: a second failure, and
    # its error replaced the query's.
    admin = await asyncpg.connect(postgres_server.dsn)
    before = pool.breaker.snapshot().totals.failures

    async def update_then_lose_the_connection() -> None:
        async with pool.acquire() as connection:
            pid = await connection.fetchval("SELECT pg_backend_pid()")
            async with connection.transaction():
                await connection.execute("UPDATE docs SET body = 'x' WHERE id = 1")
                await admin.execute("SELECT pg_terminate_backend($1)", pid)
                await connection.execute("SELECT pg_sleep(1)")

    with pytest.raises(DependencyError) as info:
        await update_then_lose_the_connection()
    await admin.close()
    assert "rollback" not in str(info.value).lower()
    assert pool.breaker.snapshot().totals.failures == before + 1


async def test_a_pool_that_opens_no_connection_is_no_call(postgres_server: PostgresServer) -> None:
    # min_size=0 sends nothing: its success could close a half-open breaker while PostgreSQL is down.
    breaker = CircuitBreaker("postgres", WINDOW)
    pool = await ProtectedPool.create(f"postgresql://app@127.0.0.1:{find_free_port()}/app", breaker=breaker)
    assert breaker.snapshot().totals.successes == 0
    await pool.close()
