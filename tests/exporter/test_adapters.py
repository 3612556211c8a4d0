"""pybreaker, aiobreaker and purgatory breakers, driven for real, exported with our conventions:
the /metrics text is parsed back and checked series by series."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import aiobreaker  # type: ignore[import-untyped]
import pybreaker
import pytest
from aiobreaker.state import CircuitBreakerState  # type: ignore[import-untyped]
from aiobreaker.storage.memory import CircuitMemoryStorage as AioMemoryStorage  # type: ignore[import-untyped]
from purgatory import AsyncCircuitBreakerFactory, ContextChanged, SyncCircuitBreakerFactory
from purgatory.domain.model import OpenedState

from breakerpanel.exporter import BreakerSource, BreakerTelemetry
from breakerpanel.exporter.adapters import (
    AdapterSource,
    AioBreakerSource,
    PurgatoryListener,
    PurgatorySource,
    PyBreakerSource,
    state_value,
)
from breakerpanel.exporter.adapters._common import MAX_ERROR_TYPES
from tests.exporter.adapters_support import scrape, scrape_telemetry

WAIT = 0.5  # the libraries' open wait, in seconds (a stall under it must not end the wait)
PAST_WAIT = WAIT + 0.02


class UpstreamError(Exception):
    """A dependency failure with a module-qualified error type."""


UPSTREAM = f"{__name__}.UpstreamError"


def ok() -> str:
    return "ok"


def refused() -> str:
    raise ConnectionError("refused")


def upstream() -> str:
    raise UpstreamError("503")


def bad_request() -> str:
    raise KeyError("bad request")  # excluded by the breakers below: says nothing of the dependency


async def aok() -> str:
    await asyncio.sleep(0)
    return "ok"


async def arefused() -> str:
    await asyncio.sleep(0)
    raise ConnectionError("refused")


async def abad_request() -> str:
    await asyncio.sleep(0)
    raise KeyError("bad request")


# ---------------------------------------------------------------------- shared


def test_state_names_map_to_ours() -> None:
    assert [state_value(s) for s in ("closed", "open", "half-open")] == ["closed", "open", "half_open"]
    assert [state_value(s) for s in ("opened", "half-opened")] == ["open", "half_open"]
    assert [state_value(s.name) for s in CircuitBreakerState] == ["open", "closed", "half_open"]


def test_every_adapter_is_a_breaker_source() -> None:
    sources = [
        PyBreakerSource(pybreaker.CircuitBreaker(name="a")),
        AioBreakerSource(aiobreaker.CircuitBreaker(name="b")),
        PurgatoryListener().source("c"),
    ]
    for source in sources:
        assert isinstance(source, BreakerSource)
        assert isinstance(source, AdapterSource)


def test_the_error_type_cap_is_ours() -> None:
    cb = pybreaker.CircuitBreaker(fail_max=1000, name="many")
    source = PyBreakerSource(cb)
    for i in range(MAX_ERROR_TYPES + 6):
        kind = type(f"Error{i}", (Exception,), {})

        def fail(kind: type[Exception] = kind) -> None:
            raise kind()

        with pytest.raises(kind):
            source.call(fail)
    failures = source.read().failures_by_type
    assert len(failures) == MAX_ERROR_TYPES + 1
    assert failures["_OTHER"] == 6
    assert scrape(source).calls("many")[("failure", "_OTHER", "")] == 6


def test_topology_labels_follow_the_level() -> None:
    """The adapters' readings go through the exporter's common attributes: a service is its own
    `circuit_breaker_service`, an endpoint its parent's; a feature has none, and no
    `circuit_breaker_requires` either (the libraries know nothing of required dependencies)."""
    # One source per scrape: in a shared family the other breakers' label names show up empty.
    service = scrape(PyBreakerSource(pybreaker.CircuitBreaker(name="openai")))
    assert service.labels_of("openai") == {
        "circuit_breaker_name": "openai",
        "circuit_breaker_level": "service",
        "circuit_breaker_service": "openai",
    }
    endpoint = scrape(
        AioBreakerSource(aiobreaker.CircuitBreaker(name="openai.chat"), level="endpoint", parent="openai")
    )
    assert endpoint.labels_of("openai.chat") == {
        "circuit_breaker_name": "openai.chat",
        "circuit_breaker_level": "endpoint",
        "circuit_breaker_parent": "openai",
        "circuit_breaker_service": "openai",
    }
    feature = scrape(PurgatoryListener().source("answer", level="feature"))
    assert feature.labels_of("answer") == {"circuit_breaker_name": "answer", "circuit_breaker_level": "feature"}


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="name"):
        PyBreakerSource(pybreaker.CircuitBreaker())
    with pytest.raises(ValueError, match="name"):
        AioBreakerSource(aiobreaker.CircuitBreaker())
    with pytest.raises(TypeError):
        AioBreakerSource(pybreaker.CircuitBreaker(name="x"))
    with pytest.raises(ValueError, match="level"):
        PyBreakerSource(pybreaker.CircuitBreaker(name="x"), level="tenant")


# ---------------------------------------------------------------------- pybreaker


def test_pybreaker_through_an_outage_and_its_recovery() -> None:
    cb = pybreaker.CircuitBreaker(fail_max=2, reset_timeout=WAIT, exclude=[KeyError], name="openai.chat")
    source = PyBreakerSource(cb, level="endpoint", parent="openai", attributes={"gen_ai.provider.name": "openai"})

    before = scrape(source)
    assert before.state("openai.chat") == "closed"
    assert before.labels_of("openai.chat") == {
        "circuit_breaker_name": "openai.chat",
        "circuit_breaker_level": "endpoint",
        "circuit_breaker_parent": "openai",
        "circuit_breaker_service": "openai",  # an endpoint's service: its parent
        "gen_ai_provider_name": "openai",
    }
    assert before.calls("openai.chat") == {}
    assert before.duration_counts("openai.chat") == {}  # no series until a call is timed

    for _ in range(3):
        assert source.call(ok) == "ok"
    with pytest.raises(KeyError):
        source.call(bad_request)  # excluded: pybreaker says "success", we say "ignored"
    with pytest.raises(UpstreamError):
        source.call(upstream)
    with pytest.raises(pybreaker.CircuitBreakerError, match="threshold"):
        source.call(refused)  # the failure that trips it (pybreaker raises its own error)
    assert cb.current_state == pybreaker.STATE_OPEN
    for _ in range(4):
        with pytest.raises(pybreaker.CircuitBreakerError, match="still open"):
            source.call(ok)

    during = scrape(source)
    assert during.state("openai.chat") == "open"
    assert during.calls("openai.chat") == {
        ("success", "", ""): 3,
        ("ignored", "", ""): 1,
        ("failure", UPSTREAM, ""): 1,
        ("failure", "ConnectionError", ""): 1,
        ("rejected", "", "open"): 4,
    }
    assert during.transitions("openai.chat") == {("closed", "open"): 1}
    assert during.duration_counts("openai.chat") == {"success": 3, "ignored": 1, "failure": 2}

    time.sleep(PAST_WAIT)
    assert source.call(ok) == "ok"  # the probe: open -> half-open -> closed
    assert scrape(source).state("openai.chat") == "closed"

    with pytest.raises(UpstreamError):
        source.call(upstream)
    with pytest.raises(pybreaker.CircuitBreakerError):
        source.call(upstream)
    time.sleep(PAST_WAIT)
    with pytest.raises(pybreaker.CircuitBreakerError, match="Trial call failed"):
        source.call(refused)  # the probe fails: half-open -> open

    after = scrape(source)
    assert after.state("openai.chat") == "open"
    assert after.calls("openai.chat") == {
        ("success", "", ""): 4,
        ("ignored", "", ""): 1,
        ("failure", UPSTREAM, ""): 3,
        ("failure", "ConnectionError", ""): 2,
        ("rejected", "", "open"): 4,
    }
    assert after.transitions("openai.chat") == {
        ("closed", "open"): 2,
        ("open", "half_open"): 2,
        ("half_open", "closed"): 1,
        ("half_open", "open"): 1,
    }
    assert after.duration_counts("openai.chat") == {"success": 4, "ignored": 1, "failure": 5}
    assert after.recoveries("openai.chat") == 1


def test_pybreaker_plain_calls_are_counted_except_rejections_and_durations() -> None:
    cb = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=60, exclude=[KeyError], name="redis")
    source = PyBreakerSource(cb)

    @cb
    def decorated() -> str:
        return "ok"

    assert decorated() == "ok"
    assert cb.call(ok) == "ok"
    try:
        raise KeyError("an exception the application is handling around its call")
    except KeyError:
        assert cb.call(ok) == "ok"  # still a success, not an ignored call
    with pytest.raises(KeyError):
        cb.call(bad_request)
    with pytest.raises(pybreaker.CircuitBreakerError):
        cb.call(refused)
    with pytest.raises(pybreaker.CircuitBreakerError):
        cb.call(ok)  # rejected: no listener hears of it
    source.record_rejection()  # ... unless counted by hand
    cb.open()  # open -> open: not a transition

    seen = scrape(source)
    assert seen.state("redis") == "open"
    assert seen.calls("redis") == {
        ("success", "", ""): 3,
        ("ignored", "", ""): 1,
        ("failure", "ConnectionError", ""): 1,
        ("rejected", "", "open"): 1,
    }
    assert seen.transitions("redis") == {("closed", "open"): 1}
    assert seen.duration_counts("redis") == {}


def test_pybreaker_state_is_read_from_the_breaker_before_any_event() -> None:
    storage = pybreaker.CircuitMemoryStorage(pybreaker.STATE_HALF_OPEN)
    source = PyBreakerSource(pybreaker.CircuitBreaker(state_storage=storage, name="shared"))
    seen = scrape(source)
    assert seen.state("shared") == "half_open"
    assert seen.transitions("shared") == {}


def test_pybreaker_close_stops_counting() -> None:
    cb = pybreaker.CircuitBreaker(name="closed-source")
    source = PyBreakerSource(cb)
    cb.call(ok)
    source.close()
    source.close()
    cb.call(ok)
    assert source.read().successes == 1
    assert cb.listeners == ()


def test_pybreaker_from_threads_counts_exactly() -> None:
    threads, per_thread = 8, 300
    cb = pybreaker.CircuitBreaker(fail_max=10**9, exclude=[KeyError], name="threads")
    source = PyBreakerSource(cb)
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work() -> None:
        barrier.wait()
        for i in range(per_thread):
            func = refused if i % 3 == 0 else bad_request if i % 5 == 0 else ok
            call = source.call if i % 2 == 0 else cb.call  # wrapped and plain calls mixed
            try:
                call(func)
            except (ConnectionError, KeyError):
                pass
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

    run_threads(work, threads)
    assert errors == []
    failures = threads * sum(1 for i in range(per_thread) if i % 3 == 0)
    ignored = threads * sum(1 for i in range(per_thread) if i % 3 and i % 5 == 0)
    successes = threads * per_thread - failures - ignored
    timed = {
        "failure": threads * sum(1 for i in range(0, per_thread, 2) if i % 3 == 0),
        "ignored": threads * sum(1 for i in range(0, per_thread, 2) if i % 3 and i % 5 == 0),
    }
    timed["success"] = threads * len(range(0, per_thread, 2)) - timed["failure"] - timed["ignored"]

    seen = scrape(source)
    assert seen.calls("threads") == {
        ("success", "", ""): successes,
        ("ignored", "", ""): ignored,
        ("failure", "ConnectionError", ""): failures,
    }
    assert seen.duration_counts("threads") == timed

    cb.open()
    barrier = threading.Barrier(threads)

    def rejected() -> None:
        barrier.wait()
        for i in range(per_thread):
            with pytest.raises(pybreaker.CircuitBreakerError):
                (source.call if i % 2 == 0 else cb.call)(ok)

    run_threads(rejected, threads)
    seen = scrape(source)
    assert seen.state("threads") == "open"
    assert seen.calls("threads")[("rejected", "", "open")] == threads * per_thread // 2
    assert seen.transitions("threads") == {("closed", "open"): 1}


def run_threads(target: object, n: int) -> None:
    """Run ``target`` in ``n`` threads, switching between them as often as the interpreter can
    (so an unguarded ``+= 1`` would lose counts)."""
    assert callable(target)
    workers = [threading.Thread(target=target) for _ in range(n)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=30)
            assert not worker.is_alive()
    finally:
        sys.setswitchinterval(interval)


# ---------------------------------------------------------------------- aiobreaker


def aio_breaker(name: str, fail_max: int = 2, wait: float = WAIT) -> aiobreaker.CircuitBreaker:
    return aiobreaker.CircuitBreaker(
        fail_max=fail_max, timeout_duration=timedelta(seconds=wait), exclude=[KeyError], name=name
    )


async def test_aiobreaker_through_an_outage_and_its_recovery() -> None:
    cb = aio_breaker("qdrant")
    source = AioBreakerSource(cb, attributes={"db.system.name": "qdrant"})
    assert scrape(source).state("qdrant") == "closed"
    assert scrape(source).labels_of("qdrant") == {
        "circuit_breaker_name": "qdrant",
        "circuit_breaker_level": "service",
        "circuit_breaker_service": "qdrant",  # a service's: its own name
        "db_system_name": "qdrant",
    }

    for _ in range(3):
        assert await source.call_async(aok) == "ok"
    assert source.call(ok) == "ok"  # the sync API too
    with pytest.raises(KeyError):
        await source.call_async(abad_request)
    with pytest.raises(ConnectionError):
        await source.call_async(arefused)
    with pytest.raises(aiobreaker.CircuitBreakerError):
        await source.call_async(arefused)  # trips it
    for _ in range(3):
        with pytest.raises(aiobreaker.CircuitBreakerError):
            await source.call_async(aok)
    with pytest.raises(aiobreaker.CircuitBreakerError):
        source.call(ok)

    during = scrape(source)
    assert during.state("qdrant") == "open"
    assert during.calls("qdrant") == {
        ("success", "", ""): 4,
        ("ignored", "", ""): 1,
        ("failure", "ConnectionError", ""): 2,
        ("rejected", "", "open"): 4,
    }
    assert during.transitions("qdrant") == {("closed", "open"): 1}

    await asyncio.sleep(PAST_WAIT)
    assert await source.call_async(aok) == "ok"  # the probe closes it
    assert scrape(source).state("qdrant") == "closed"
    for _ in range(2):
        with pytest.raises((ConnectionError, aiobreaker.CircuitBreakerError)):
            await source.call_async(arefused)
    await asyncio.sleep(PAST_WAIT)
    with pytest.raises(aiobreaker.CircuitBreakerError, match="Trial call failed"):
        await source.call_async(arefused)

    after = scrape(source)
    assert after.state("qdrant") == "open"
    assert after.calls("qdrant") == {
        ("success", "", ""): 5,
        ("ignored", "", ""): 1,
        ("failure", "ConnectionError", ""): 5,
        ("rejected", "", "open"): 4,
    }
    assert after.transitions("qdrant") == {
        ("closed", "open"): 2,
        ("open", "half_open"): 2,
        ("half_open", "closed"): 1,
        ("half_open", "open"): 1,
    }
    assert after.duration_counts("qdrant") == {"success": 5, "ignored": 1, "failure": 5}
    assert after.recoveries("qdrant") == 1


async def test_aiobreaker_concurrent_tasks_count_exactly() -> None:
    # Open for a minute: 200 tasks must all meet the open breaker, however slowly a busy machine
    # schedules them (with the 50 ms wait, a CI run under load saw some half-open).
    cb = aio_breaker("tasks", fail_max=10**9, wait=60)
    source = AioBreakerSource(cb)

    async def slow_ok() -> str:
        await asyncio.sleep(0.001)
        return "ok"

    async def slow_refused() -> str:
        await asyncio.sleep(0.001)
        raise ConnectionError("refused")

    n = 200
    results = await asyncio.gather(
        *(source.call_async(slow_refused if i % 4 == 0 else slow_ok) for i in range(n)), return_exceptions=True
    )
    assert sum(isinstance(r, ConnectionError) for r in results) == n // 4
    cb.open()
    results = await asyncio.gather(
        *((source.call_async if i % 2 == 0 else cb.call_async)(slow_ok) for i in range(n)), return_exceptions=True
    )
    assert all(isinstance(r, aiobreaker.CircuitBreakerError) for r in results)

    seen = scrape(source)
    assert seen.calls("tasks") == {
        ("success", "", ""): n - n // 4,
        ("failure", "ConnectionError", ""): n // 4,
        ("rejected", "", "open"): n // 2,  # only the wrapped calls can be seen
    }
    assert seen.duration_counts("tasks") == {"success": n - n // 4, "failure": n // 4, "ignored": 0}


async def test_aiobreaker_decorated_and_cancelled_calls() -> None:
    cb = aio_breaker("decorated")
    source = AioBreakerSource(cb)

    @cb  # type: ignore[untyped-decorator]
    async def decorated() -> str:
        await asyncio.sleep(0)
        return "ok"

    assert await decorated() == "ok"
    assert await source.call_async(decorated) == "ok"  # aiobreaker calls it once, not twice

    started = asyncio.Event()

    async def hangs() -> None:
        started.set()
        await asyncio.sleep(10)

    task = asyncio.create_task(source.call_async(hangs))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    seen = scrape(source)
    assert seen.calls("decorated") == {("success", "", ""): 2}  # aiobreaker reports no outcome for a cancellation
    assert seen.duration_counts("decorated") == {"success": 1, "failure": 0, "ignored": 0}


def test_aiobreaker_from_threads_counts_exactly() -> None:
    """aiobreaker's sync API has no lock at all: only the adapter's keeps the counts exact."""
    threads, per_thread = 8, 300
    cb = aio_breaker("aio-threads", fail_max=10**9)
    source = AioBreakerSource(cb)
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        for i in range(per_thread):
            with contextlib.suppress(ConnectionError):
                source.call(refused if i % 3 == 0 else ok)

    run_threads(work, threads)
    failures = threads * len(range(0, per_thread, 3))
    seen = scrape(source)
    assert seen.calls("aio-threads") == {
        ("success", "", ""): threads * per_thread - failures,
        ("failure", "ConnectionError", ""): failures,
    }
    assert seen.duration_counts("aio-threads") == {
        "success": threads * per_thread - failures,
        "failure": failures,
        "ignored": 0,
    }


def test_aiobreaker_state_is_read_from_the_breaker_before_any_event() -> None:
    cb = aiobreaker.CircuitBreaker(state_storage=AioMemoryStorage(CircuitBreakerState.OPEN), name="aio-open")
    source = AioBreakerSource(cb)
    assert scrape(source).state("aio-open") == "open"
    source.close()
    assert cb.listeners == ()


# ---------------------------------------------------------------------- purgatory


@pytest.fixture
def telemetry() -> Iterator[BreakerTelemetry]:
    telemetry = BreakerTelemetry(service_name="t", otlp=False)
    yield telemetry
    telemetry.shutdown()


def test_purgatory_sync_through_an_outage_and_its_recovery(telemetry: BreakerTelemetry) -> None:
    factory = SyncCircuitBreakerFactory(default_threshold=2, default_ttl=WAIT)
    listener = PurgatoryListener(on_source=telemetry.add).attach(factory)
    listener.source("anthropic", level="service", attributes={"gen_ai.provider.name": "anthropic"})
    assert scrape_telemetry(telemetry).state("anthropic") == "closed"  # declared: exported before use

    breaker = factory.get_breaker("anthropic")
    with breaker:
        pass  # a success: purgatory reports none
    for _ in range(2):
        with pytest.raises(ConnectionError), breaker:
            refused()
    for _ in range(3):
        with pytest.raises(OpenedState), factory.get_breaker("anthropic"):
            pytest.fail("an open circuit runs nothing")
    with pytest.raises(OpenedState) as rejected, breaker:
        pass
    assert listener.record_rejection(rejected.value)  # rejections are counted where they are caught
    assert not listener.record_rejection(ValueError())

    during = scrape_telemetry(telemetry)
    assert during.state("anthropic") == "open"
    assert during.labels_of("anthropic") == {
        "circuit_breaker_name": "anthropic",
        "circuit_breaker_level": "service",
        "circuit_breaker_service": "anthropic",
        "gen_ai_provider_name": "anthropic",
    }
    assert during.calls("anthropic") == {("failure", "_OTHER", ""): 2, ("rejected", "", "open"): 1}
    assert during.transitions("anthropic") == {("closed", "open"): 1}

    time.sleep(PAST_WAIT)
    with breaker:
        pass  # the probe: opened -> half-opened -> closed
    assert scrape_telemetry(telemetry).state("anthropic") == "closed"

    @factory("anthropic")  # type: ignore[untyped-decorator]
    def decorated() -> str:
        return refused()

    for _ in range(2):
        with pytest.raises(ConnectionError):
            decorated()
    time.sleep(PAST_WAIT)
    with pytest.raises(ConnectionError):
        decorated()  # the probe fails: half-opened -> opened, one failure without a "failed" event

    for seen in (scrape_telemetry(telemetry), scrape(listener.source("anthropic"))):
        assert seen.state("anthropic") == "open"
        assert seen.calls("anthropic") == {("failure", "_OTHER", ""): 5, ("rejected", "", "open"): 1}
        assert seen.transitions("anthropic") == {
            ("closed", "open"): 2,
            ("open", "half_open"): 2,
            ("half_open", "closed"): 1,
            ("half_open", "open"): 1,
        }
        assert seen.recoveries("anthropic") == 1
        assert seen.duration_counts("anthropic") == {}


async def test_purgatory_async_through_an_outage_and_its_recovery(telemetry: BreakerTelemetry) -> None:
    factory = AsyncCircuitBreakerFactory(default_threshold=2, default_ttl=WAIT)
    listener = PurgatoryListener(on_source=telemetry.add).attach(factory)
    assert listener.sources() == []

    async with await factory.get_breaker("openai"):
        await aok()
    assert scrape_telemetry(telemetry).state("openai") == "closed"  # made on circuit_breaker_created

    for _ in range(2):
        with pytest.raises(ConnectionError):
            async with await factory.get_breaker("openai"):
                await arefused()
    with pytest.raises(OpenedState):
        async with await factory.get_breaker("openai"):
            pytest.fail("an open circuit runs nothing")
    assert scrape_telemetry(telemetry).state("openai") == "open"

    await asyncio.sleep(PAST_WAIT)

    @factory("openai")  # type: ignore[untyped-decorator]
    async def probe() -> str:
        return await aok()

    assert await probe() == "ok"

    seen = scrape_telemetry(telemetry)
    assert seen.state("openai") == "closed"
    assert seen.calls("openai") == {("failure", "_OTHER", ""): 2}
    assert seen.transitions("openai") == {("closed", "open"): 1, ("open", "half_open"): 1, ("half_open", "closed"): 1}
    assert [s.name for s in listener.sources()] == ["openai"]

    listener.detach(factory)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            async with await factory.get_breaker("openai"):
                await arefused()
    assert scrape_telemetry(telemetry).calls("openai") == {("failure", "_OTHER", ""): 2}


def test_purgatory_attach_finds_the_circuits_a_factory_already_holds() -> None:
    factory = SyncCircuitBreakerFactory(default_threshold=1, default_ttl=60)
    factory.get_breaker("healthy")
    with pytest.raises(ConnectionError), factory.get_breaker("broken"):
        refused()

    made: list[PurgatorySource] = []
    listener = PurgatoryListener(on_source=made.append).attach(factory)
    assert sorted(s.name for s in made) == ["broken", "healthy"]
    seen = scrape(*made)
    assert seen.state("broken") == "open"  # read from purgatory's context, before any event
    assert seen.state("healthy") == "closed"
    assert seen.transitions("broken") == {}

    with pytest.raises(ConnectionError), factory.get_breaker("healthy"):
        refused()
    seen = scrape(*listener.sources())
    assert seen.transitions("healthy") == {("closed", "open"): 1}
    assert seen.calls("healthy") == {("failure", "_OTHER", ""): 1}


def test_purgatory_previous_states_follow_its_model() -> None:
    """The state_changed event has no previous state: when the last one announced cannot be it
    (events this process did not see, from a shared Redis repository), purgatory's model says."""
    listener = PurgatoryListener()
    source = listener.source("remote")
    assert source.current_state() == "closed"  # no in-memory factory attached: the events' state
    listener("remote", "state_changed", ContextChanged("remote", "half-opened", None))  # not from closed
    listener("remote", "state_changed", ContextChanged("remote", "opened", 1.0))
    listener("remote", "state_changed", ContextChanged("remote", "opened", 2.0))  # opened twice: from closed
    listener("remote", "state_changed", ContextChanged("remote", "closed", None))  # only from half-opened
    listener("remote", "recovered", ContextChanged("remote", "closed", None))  # nothing to count
    listener("remote", "state_changed", object())  # type: ignore[arg-type]  # never raises into the call
    assert source.current_state() == "closed"
    reading = source.read()
    assert reading.transitions == {
        ("open", "half_open"): 1,
        ("half_open", "open"): 1,
        ("closed", "open"): 1,
        ("half_open", "closed"): 1,
    }
    assert reading.failures_by_type == {"_OTHER": 1}  # the failed probe
    assert reading.successes == 0
