"""Concurrency: asyncio tasks against half-open permits, and the sync API from several threads."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

from breakerpanel import (
    BreakerConfig,
    CircuitBreaker,
    CircuitOpenError,
    ManualClock,
    Outcome,
    RejectionReason,
    State,
)

from .support import fail

MakeBreaker = Callable[..., CircuitBreaker]


async def test_a_thousand_tasks_never_exceed_half_open_permits(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    permitted = 5
    b = make_breaker(minimum_calls=1, wait_in_open=1.0, permitted_calls_in_half_open=permitted)
    fail(b, clock)
    clock.advance(1.0)

    release = asyncio.Event()
    running = peak = 0

    async def probe() -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1
        return "ok"

    tasks = [asyncio.create_task(b.acall(probe)) for _ in range(1000)]
    await asyncio.sleep(0)  # every task runs up to its first await
    assert peak == permitted
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    admitted = [r for r in results if r == "ok"]
    rejections = [r for r in results if isinstance(r, CircuitOpenError)]
    assert len(admitted) == permitted
    assert len(rejections) == 1000 - permitted
    assert {r.reason for r in rejections} == {RejectionReason.HALF_OPEN_FULL}
    assert peak == permitted
    assert b.state is State.CLOSED


async def test_tasks_interleaving_with_a_trip_never_count_stale_results(
    make_breaker: MakeBreaker, clock: ManualClock
) -> None:
    b = make_breaker(minimum_calls=10, sliding_window_size=10, wait_in_open=60.0)
    gate = asyncio.Event()

    async def slow_ok() -> str:
        await gate.wait()
        return "ok"

    async def boom() -> None:
        raise ConnectionError

    slow = [asyncio.create_task(b.acall(slow_ok)) for _ in range(50)]
    await asyncio.sleep(0)
    for _ in range(10):
        with pytest.raises(ConnectionError):
            await b.acall(boom)
    assert b.state is State.OPEN
    gate.set()
    assert await asyncio.gather(*slow) == ["ok"] * 50
    snap = b.snapshot()
    assert snap.state is State.OPEN  # 50 late successes changed nothing
    assert snap.totals.successes == 50


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    """Ask the interpreter to hand the GIL over every microsecond: races show up if they exist."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


@pytest.mark.usefixtures("frequent_thread_switches")
def test_sync_calls_from_many_threads_are_all_counted() -> None:
    """Successes are counted without the lock on the hot path, failures under it: none is lost."""
    threads, per_thread = 8, 5000
    b = CircuitBreaker(
        "shared",
        BreakerConfig(sliding_window_type="time_based", sliding_window_size=60, failure_rate_threshold=1.0),
    )
    start = threading.Barrier(threads)

    def worker(index: int) -> None:
        start.wait()
        for i in range(per_thread):
            if i % 10 == index % 10:
                with pytest.raises(ValueError, match="injected"):
                    b.call(_raise_value_error)
            else:
                b.call(_noop)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    snap = b.snapshot()
    assert snap.totals.failures == threads * per_thread // 10
    assert snap.totals.successes == threads * per_thread * 9 // 10
    assert (snap.calls, snap.failures) == (threads * per_thread, threads * per_thread // 10)
    assert snap.state is State.CLOSED


@pytest.mark.usefixtures("frequent_thread_switches")
def test_rejections_from_many_threads_are_all_counted() -> None:
    threads, per_thread = 8, 5000
    b = CircuitBreaker("down", BreakerConfig(minimum_calls=1, wait_in_open=3600))
    with pytest.raises(ValueError, match="injected"):
        b.call(_raise_value_error)
    start = threading.Barrier(threads)

    def worker() -> None:
        start.wait()
        for _ in range(per_thread):
            with pytest.raises(CircuitOpenError):
                b.call(_noop)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert b.snapshot().totals.rejected[RejectionReason.OPEN] == threads * per_thread


@pytest.mark.usefixtures("frequent_thread_switches")
def test_threads_never_exceed_half_open_permits() -> None:
    clock = ManualClock()
    permitted, threads = 3, 16
    b = CircuitBreaker(
        "probe", BreakerConfig(minimum_calls=1, wait_in_open=1.0, permitted_calls_in_half_open=permitted), clock=clock
    )
    fail(b, clock)
    clock.advance(1.0)

    lock = threading.Lock()
    running = peak = 0
    release = threading.Event()
    start = threading.Barrier(threads)
    outcomes: list[str] = []

    def probe() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        release.wait(10)
        with lock:
            running -= 1

    def worker() -> None:
        start.wait()
        try:
            b.call(probe)
            outcome = "ran"
        except CircuitOpenError as exc:
            outcome = exc.reason.value
        with lock:
            outcomes.append(outcome)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    while True:  # wait until every thread has either been rejected or is inside probe()
        with lock:
            if len(outcomes) + running == threads:
                break
    release.set()
    for t in pool:
        t.join()
    assert peak == permitted
    assert outcomes.count("ran") == permitted
    assert outcomes.count("half_open_full") == threads - permitted
    assert b.state is State.CLOSED


def _noop() -> None:
    return None


def _raise_value_error() -> None:
    raise ValueError("injected")


@pytest.mark.usefixtures("frequent_thread_switches")
def test_an_endpoint_never_keeps_a_one_read_admission_past_a_state_change() -> None:
    """An endpoint admits by one read (its _closed_gen: its generation and its service's, packed)
    while both are closed. Threads interleave the service's and the endpoint's transitions with
    calls; when they stop, the one-read admission holds the current generations or is empty (the
    next call mends it), and it is gone as soon as either breaker opens."""
    service = CircuitBreaker("svc", BreakerConfig(wait_in_open=3600))
    endpoint = CircuitBreaker("svc.op", BreakerConfig(wait_in_open=3600), parent=service)
    rounds, flips = 200, 20

    def flip(b: CircuitBreaker, start: threading.Barrier) -> None:
        start.wait()
        for _ in range(flips):
            b.force_open()
            b.reset()

    def calls(start: threading.Barrier) -> None:
        start.wait()
        for _ in range(flips * 4):
            with contextlib.suppress(CircuitOpenError):
                endpoint.call(_noop)

    for round_ in range(rounds):
        start = threading.Barrier(3)
        pool = [
            threading.Thread(target=flip, args=(service, start)),
            threading.Thread(target=flip, args=(endpoint, start)),
            threading.Thread(target=calls, args=(start,)),
        ]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        token = endpoint._closed_gen
        assert token < 0 or token == ((service._generation + 2) << 40) | (endpoint._generation + 2)
        endpoint.call(_noop)  # mends an emptied one
        assert endpoint._closed_gen == ((service._generation + 2) << 40) | (endpoint._generation + 2)
        opened = service if round_ % 2 else endpoint
        opened.force_open()
        assert endpoint._closed_gen < 0
        with pytest.raises(CircuitOpenError):
            endpoint.call(_noop)
        opened.reset()


@pytest.mark.usefixtures("frequent_thread_switches")
def test_readings_taken_while_threads_succeed_never_lower_a_bucket() -> None:
    """The exporter reads the duration buckets while other threads count their successes
    without the lock; what it reports is cumulative, so no reading may be lower than the last."""
    b = CircuitBreaker("shared", BreakerConfig(sliding_window_type="time_based", sliding_window_size=60))
    b.enable_duration_histograms((1e-9, 60.0))  # every call in a bucket of its own, not the derived first
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            b.call(_noop)

    pool = [threading.Thread(target=worker) for _ in range(8)]
    for t in pool:
        t.start()
    lowered: list[tuple[list[int], list[int]]] = []
    last = [0, 0, 0]
    try:
        for _ in range(20_000):
            counts = b.duration_histograms()[Outcome.SUCCESS].counts
            now = [sum(counts[: i + 1]) for i in range(len(counts))]
            if any(x < y for x, y in zip(now, last, strict=True)):
                lowered.append((last, now))
                break
            last = now
    finally:
        stop.set()
        for t in pool:
            t.join()
    assert not lowered
    assert last[-1] > 0  # the threads did run meanwhile
    # Exact once they stopped: no reading meanwhile left an overcount behind.
    assert b.duration_histograms()[Outcome.SUCCESS].count == b.snapshot().totals.successes
