"""Per-call overhead of circuit breakers, ours and the Python peers, measured in one process.

For every library, in its fastest documented usage, sync and async:

- ``closed``: a call through a closed breaker to a function that returns at once;
- ``open``: a call rejected by an open breaker (the rejection raised and caught).

``median_ns`` is the median over the repeats of the mean cost of one call; ``overhead_ns`` is
``median_ns`` minus the same figure for a bare call of the function (sync or async), so it is what
the breaker adds. Repeats run round-robin over the cases, so a noisy moment of the machine hits
every library alike; compare figures only within one run.

Usage: ``python bench/overhead.py [--quick] [--check] [--output PATH]``.
``--check`` exits with status 1 when one of the targets does not hold.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import platform
import random
import socket
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "overhead.json"
OURS = "breakerpanel"
OURS_HTTPX = "breakerpanel+httpx"
OURS_EXPORTER = "breakerpanel+exporter"
# The exporter's target: ours with it attached at most this many times ours without, per path.
EXPORTER_TARGET_RATIO = 1.5
_keep_alive: list[object] = []  # telemetry objects live as long as their cases
PEERS = ("pybreaker", "aiobreaker", "purgatory", "circuitbreaker")
# Ours at most this share of the fastest peer's overhead, per mode and path.
TARGET_RATIO = 0.8
NEVER = 10**6  # seconds: an open breaker that stays open for the whole run
# As timeit does: a collection would land on whichever case happens to run then.
DISABLE_GC = True


class Injected(Exception):
    """The failure used to trip the breakers."""


def work() -> int:
    return 1


async def awork() -> int:
    return 1


def broken() -> int:
    raise Injected


async def abroken() -> int:
    raise Injected


# A case is a loop: it makes ``n`` calls and returns nothing. Loops are written out per library
# so that each one is exactly what a user of that library would write.
SyncLoop = Callable[[int], None]
AsyncLoop = Callable[[int], Awaitable[None]]


@dataclass
class Case:
    library: str
    version: str
    mode: str  # "sync" | "async"
    path: str  # "closed" | "open" | "bare"
    loop: SyncLoop | AsyncLoop
    note: str = ""


@dataclass
class Row:
    library: str
    version: str
    mode: str
    path: str
    median_ns: float
    overhead_ns: float
    repeats: int


def _trip_sync(call: Callable[[], Any]) -> None:
    for _ in range(5):
        try:
            call()
        except Exception:
            pass


async def _trip_async(call: Callable[[], Awaitable[Any]]) -> None:
    for _ in range(5):
        try:
            await call()
        except Exception:
            pass


def _sync_loops(closed_call: Callable[[], Any], open_call: Callable[[], Any]) -> tuple[SyncLoop, SyncLoop]:
    """(closed loop, open loop) for a library whose calls are ``closed_call()`` and ``open_call()``."""

    def closed(n: int) -> None:
        for _ in range(n):
            closed_call()

    def rejected(n: int) -> None:
        for _ in range(n):
            try:
                open_call()
            except Exception:
                pass

    return closed, rejected


def _async_loops(
    closed_call: Callable[[], Awaitable[Any]], open_call: Callable[[], Awaitable[Any]]
) -> tuple[AsyncLoop, AsyncLoop]:
    async def closed(n: int) -> None:
        for _ in range(n):
            await closed_call()

    async def rejected(n: int) -> None:
        for _ in range(n):
            try:
                await open_call()
            except Exception:
                pass

    return closed, rejected


async def build_cases() -> list[Case]:
    cases: list[Case] = []

    def add(library: str, dist: str, mode: str, closed: Any, rejected: Any, note: str = "") -> None:
        v = version(dist)
        cases.append(Case(library, v, mode, "closed", closed, note))
        cases.append(Case(library, v, mode, "open", rejected, note))

    # --- bare calls: the baseline subtracted from every figure
    def bare_sync(n: int) -> None:
        for _ in range(n):
            work()

    async def bare_async(n: int) -> None:
        for _ in range(n):
            await awork()

    cases.append(Case("bare", platform.python_version(), "sync", "bare", bare_sync))
    cases.append(Case("bare", platform.python_version(), "async", "bare", bare_async))

    # --- ours: a time-based window with slow-call tracking on (the configuration the target names)
    from breakerpanel import BreakerConfig, CircuitBreaker

    config = BreakerConfig(
        sliding_window_type="time_based",
        sliding_window_size=60,
        minimum_calls=1,
        slow_call_duration=5.0,
        slow_call_rate_threshold=0.5,
        wait_in_open=NEVER,
    )
    ours_sync, ours_sync_open = CircuitBreaker("bench", config), CircuitBreaker("bench-open", config)
    _trip_sync(lambda: ours_sync_open.call(broken))

    def ours_sync_closed(n: int) -> None:
        call = ours_sync.call
        for _ in range(n):
            call(work)

    def ours_sync_rejected(n: int) -> None:
        call = ours_sync_open.call
        for _ in range(n):
            try:
                call(work)
            except Exception:
                pass

    add(OURS, OURS, "sync", ours_sync_closed, ours_sync_rejected, "breaker.call(fn)")

    ours_async, ours_async_open = CircuitBreaker("abench", config), CircuitBreaker("abench-open", config)
    await _trip_async(lambda: ours_async_open.acall(abroken))

    async def ours_async_closed(n: int) -> None:
        acall = ours_async.acall
        for _ in range(n):
            await acall(awork)

    async def ours_async_rejected(n: int) -> None:
        acall = ours_async_open.acall
        for _ in range(n):
            try:
                await acall(awork)
            except Exception:
                pass

    add(OURS, OURS, "async", ours_async_closed, ours_async_rejected, "await breaker.acall(fn)")

    # --- ours with the exporter attached (durations counted into histograms on every call)
    from breakerpanel.exporter import BreakerTelemetry

    exported, exported_open = CircuitBreaker("exported", config), CircuitBreaker("exported-open", config)
    telemetry = BreakerTelemetry(exported, exported_open, service_name="bench", otlp=False)
    await _trip_async(lambda: exported_open.acall(abroken))

    async def exported_closed(n: int) -> None:
        acall = exported.acall
        for _ in range(n):
            await acall(awork)

    async def exported_rejected(n: int) -> None:
        acall = exported_open.acall
        for _ in range(n):
            try:
                await acall(awork)
            except Exception:
                pass

    def exported_sync_closed(n: int) -> None:
        call = exported.call
        for _ in range(n):
            call(work)

    def exported_sync_rejected(n: int) -> None:
        call = exported_open.call
        for _ in range(n):
            try:
                call(work)
            except Exception:
                pass

    add(OURS_EXPORTER, OURS, "async", exported_closed, exported_rejected, "await breaker.acall(fn), exported")
    add(OURS_EXPORTER, OURS, "sync", exported_sync_closed, exported_sync_rejected, "breaker.call(fn), exported")
    _keep_alive.append(telemetry)
    assert ours_sync_open.state.value == "open"
    assert ours_async_open.state.value == "open"

    # --- pybreaker: sync only (no asyncio support: an async def wrapped by it is not awaited
    # inside the breaker, so every failure counts as a success)
    import pybreaker

    pb, pb_open = pybreaker.CircuitBreaker(fail_max=5), pybreaker.CircuitBreaker(fail_max=1, reset_timeout=NEVER)
    _trip_sync(lambda: pb_open.call(broken))

    def pb_closed(n: int) -> None:
        call = pb.call
        for _ in range(n):
            call(work)

    def pb_rejected(n: int) -> None:
        call = pb_open.call
        for _ in range(n):
            try:
                call(work)
            except Exception:
                pass

    add("pybreaker", "pybreaker", "sync", pb_closed, pb_rejected, "breaker.call(fn)")

    # --- aiobreaker
    import aiobreaker

    ab = aiobreaker.CircuitBreaker(fail_max=5)
    ab_open = aiobreaker.CircuitBreaker(fail_max=1, timeout_duration=timedelta(seconds=NEVER))
    _trip_sync(lambda: ab_open.call(broken))

    def ab_closed(n: int) -> None:
        call = ab.call
        for _ in range(n):
            call(work)

    def ab_rejected(n: int) -> None:
        call = ab_open.call
        for _ in range(n):
            try:
                call(work)
            except Exception:
                pass

    add("aiobreaker", "aiobreaker", "sync", ab_closed, ab_rejected, "breaker.call(fn)")
    aab = aiobreaker.CircuitBreaker(fail_max=5)
    aab_open = aiobreaker.CircuitBreaker(fail_max=1, timeout_duration=timedelta(seconds=NEVER))
    await _trip_async(lambda: aab_open.call_async(abroken))

    async def aab_closed(n: int) -> None:
        call = aab.call_async
        for _ in range(n):
            await call(awork)

    async def aab_rejected(n: int) -> None:
        call = aab_open.call_async
        for _ in range(n):
            try:
                await call(awork)
            except Exception:
                pass

    add("aiobreaker", "aiobreaker", "async", aab_closed, aab_rejected, "await breaker.call_async(fn)")

    # --- purgatory: the breaker object fetched once from the factory (its fastest use)
    from purgatory import AsyncCircuitBreakerFactory, SyncCircuitBreakerFactory

    sfactory = SyncCircuitBreakerFactory(default_threshold=5, default_ttl=NEVER)
    pg, pg_open = sfactory.get_breaker("bench"), sfactory.get_breaker("bench-open", threshold=1)

    def pg_call_open() -> int:
        with pg_open:
            return broken()

    _trip_sync(pg_call_open)

    def pg_closed(n: int) -> None:
        for _ in range(n):
            with pg:
                work()

    def pg_rejected(n: int) -> None:
        for _ in range(n):
            try:
                with pg_open:
                    work()
            except Exception:
                pass

    add("purgatory", "purgatory", "sync", pg_closed, pg_rejected, "with breaker: fn()")
    afactory = AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=NEVER)
    apg, apg_open = await afactory.get_breaker("bench"), await afactory.get_breaker("bench-open", threshold=1)

    async def apg_call_open() -> int:
        async with apg_open:
            return await abroken()

    await _trip_async(apg_call_open)

    async def apg_closed(n: int) -> None:
        for _ in range(n):
            async with apg:
                await awork()

    async def apg_rejected(n: int) -> None:
        for _ in range(n):
            try:
                async with apg_open:
                    await awork()
            except Exception:
                pass

    add("purgatory", "purgatory", "async", apg_closed, apg_rejected, "async with breaker: await fn()")

    # --- circuitbreaker: the decorator is its documented (and only rejecting) API
    from circuitbreaker import circuit

    cb_closed_fn = circuit(failure_threshold=5, recovery_timeout=NEVER)(work)
    cb_open_fn = circuit(failure_threshold=1, recovery_timeout=NEVER)(broken)
    _trip_sync(cb_open_fn)
    closed, rejected = _sync_loops(cb_closed_fn, cb_open_fn)
    add("circuitbreaker", "circuitbreaker", "sync", closed, rejected, "@circuit")
    acb_closed_fn = circuit(failure_threshold=5, recovery_timeout=NEVER)(awork)
    acb_open_fn = circuit(failure_threshold=1, recovery_timeout=NEVER)(abroken)
    await _trip_async(acb_open_fn)
    aclosed, arejected = _async_loops(acb_closed_fn, acb_open_fn)
    add("circuitbreaker", "circuitbreaker", "async", aclosed, arejected, "@circuit")
    return cases


@contextlib.contextmanager
def local_http_server() -> Iterator[str]:
    """bench/_http_server.py in its own process (so it does not share our GIL); its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("_http_server.py")), str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)
        if server.stdout is not None:
            server.stdout.close()


def build_http_cases(url: str) -> tuple[list[Case], Callable[[], Awaitable[None]]]:
    """httpx to a local server, bare and through our transport, sync and async. Returns the cases
    and a coroutine function that closes the clients."""
    import httpx

    from breakerpanel import BreakerConfig, BreakerRegistry
    from breakerpanel.integrations import Route, Router
    from breakerpanel.integrations.httpx import AsyncBreakerTransport, BreakerTransport

    registry = BreakerRegistry()
    registry.service("local")
    endpoint = registry.endpoint(
        "local.echo", BreakerConfig(sliding_window_type="time_based", sliding_window_size=60, slow_call_duration=5.0)
    )
    router = Router([Route(endpoint, host="127.0.0.1", path="/echo")])
    clients = {
        "bare-sync": httpx.Client(),
        "ours-sync": httpx.Client(transport=BreakerTransport(router)),
        "bare-async": httpx.AsyncClient(),
        "ours-async": httpx.AsyncClient(transport=AsyncBreakerTransport(router)),
    }
    target = f"{url}/echo"
    version_httpx, version_ours = version("httpx"), version(OURS)

    def sync_loop(client: httpx.Client) -> SyncLoop:
        def loop(n: int) -> None:
            for _ in range(n):
                client.post(target, content=b"{}").read()

        return loop

    def async_loop(client: httpx.AsyncClient) -> AsyncLoop:
        async def loop(n: int) -> None:
            for _ in range(n):
                response = await client.post(target, content=b"{}")
                await response.aread()

        return loop

    cases = [
        Case("httpx", version_httpx, "sync", "closed", sync_loop(clients["bare-sync"])),  # type: ignore[arg-type]
        Case(OURS_HTTPX, version_ours, "sync", "closed", sync_loop(clients["ours-sync"])),  # type: ignore[arg-type]
        Case("httpx", version_httpx, "async", "closed", async_loop(clients["bare-async"])),  # type: ignore[arg-type]
        Case(OURS_HTTPX, version_ours, "async", "closed", async_loop(clients["ours-async"])),  # type: ignore[arg-type]
    ]

    async def close() -> None:
        clients["bare-sync"].close()
        clients["ours-sync"].close()
        await clients["bare-async"].aclose()  # type: ignore[union-attr]
        await clients["ours-async"].aclose()  # type: ignore[union-attr]
        assert endpoint.snapshot().totals.successes > 0  # the requests did go through the breaker

    return cases, close


async def measure(case: Case, n: int) -> float:
    """Mean nanoseconds per call over ``n`` calls."""
    if DISABLE_GC:
        gc.disable()
    try:
        start = time.perf_counter_ns()
        if case.mode == "async":
            await case.loop(n)  # type: ignore[misc]
        else:
            case.loop(n)
        elapsed = time.perf_counter_ns() - start
    finally:
        gc.enable()
    return elapsed / n


async def run(
    quick: bool, calls: int | None = None, repeats: int | None = None, http_requests: int | None = None
) -> list[Row]:
    rows = await run_breakers(quick, calls, repeats)
    with local_http_server() as url:
        rows += await run_http(url, quick, http_requests, repeats)
    return rows


async def run_http(url: str, quick: bool, requests: int | None, repeats: int | None) -> list[Row]:
    """Rows for httpx through our transport against bare httpx: overhead_ns is what ours adds
    per request (the bare rows carry 0).

    A request to a local server takes a few hundred microseconds and drifts by more than the
    transport adds, so the two are measured in alternating small batches and the overhead is the
    median of the paired differences (drift cancels within a pair)."""
    cases, close = build_http_cases(url)
    batch = requests or 100
    pairs = repeats or (25 if quick else 61)
    by_key = {(c.library, c.mode): c for c in cases}
    rows: list[Row] = []
    try:
        for case in cases:
            await measure(case, min(20, batch))  # warm up the connections
        for mode in ("sync", "async"):
            bare, ours = by_key[("httpx", mode)], by_key[(OURS_HTTPX, mode)]
            bare_times, ours_times, differences = [], [], []
            for i in range(pairs):
                first, second = (bare, ours) if i % 2 == 0 else (ours, bare)  # alternate who goes first
                a = await measure(first, batch)
                b = await measure(second, batch)
                t_bare, t_ours = (a, b) if first is bare else (b, a)
                bare_times.append(t_bare)
                ours_times.append(t_ours)
                differences.append(t_ours - t_bare)
            rows.append(
                Row(bare.library, bare.version, mode, "closed", round(statistics.median(bare_times), 1), 0.0, pairs)
            )
            rows.append(
                Row(
                    ours.library,
                    ours.version,
                    mode,
                    "closed",
                    round(statistics.median(ours_times), 1),
                    round(statistics.median(differences), 1),
                    pairs,
                )
            )
    finally:
        await close()
    return rows


async def _sample(cases: list[Case], calls: int, repeats: int, warmup: int) -> dict[int, float]:
    """Median over ``repeats`` of the mean cost per call, repeats in a new order each time."""
    samples: dict[int, list[float]] = {i: [] for i in range(len(cases))}
    for case in cases:  # warm up (and check that every loop runs)
        await measure(case, warmup)
    order = list(range(len(cases)))
    shuffle = random.Random(20261126).shuffle  # seeded: the same order sequence every run
    for _ in range(repeats):
        # A new order each repeat: what runs just before a case (caches, branch predictors) varies
        # instead of favouring the same library every time.
        shuffle(order)
        gc.collect()  # once per round: a full collection takes longer than many measurements
        for i in order:
            samples[i].append(await measure(cases[i], calls))
    return {i: statistics.median(s) for i, s in samples.items()}


async def run_breakers(quick: bool, calls: int | None = None, repeats: int | None = None) -> list[Row]:
    cases = await build_cases()
    default_calls, default_repeats = (20_000, 11) if quick else (50_000, 21)
    calls, repeats = calls or default_calls, repeats or default_repeats
    medians = await _sample(cases, calls, repeats, warmup=min(2_000, calls))
    bare = {case.mode: medians[i] for i, case in enumerate(cases) if case.path == "bare"}
    return [
        Row(
            case.library,
            case.version,
            case.mode,
            case.path,
            round(medians[i], 1),
            round(medians[i] - bare[case.mode], 1),
            repeats,
        )
        for i, case in enumerate(cases)
        if case.path != "bare"
    ] + [
        Row(case.library, case.version, case.mode, case.path, round(medians[i], 1), 0.0, repeats)
        for i, case in enumerate(cases)
        if case.path == "bare"
    ]


def targets(rows: list[Row], library: str = OURS, baseline: str = "fastest peer") -> list[tuple[str, float, bool]]:
    """(description, ratio, holds) for each mode and path: ours over the fastest peer."""
    results = []
    for mode in ("sync", "async"):
        for path in ("closed", "open"):
            ours = next(r for r in rows if r.library == library and r.mode == mode and r.path == path)
            peers = [r for r in rows if r.library in PEERS and r.mode == mode and r.path == path]
            best = min(peers, key=lambda r: r.overhead_ns)
            ratio = ours.overhead_ns / best.overhead_ns
            results.append(
                (
                    f"{mode} {path}: {library} {ours.overhead_ns:.0f} ns vs {best.library} {best.overhead_ns:.0f} ns",
                    ratio,
                    ratio <= TARGET_RATIO,
                )
            )
    return results


def exporter_targets(rows: list[Row]) -> list[tuple[str, float, bool]]:
    """(description, ratio, holds): ours with the exporter over ours without, async closed path."""
    results = []
    for mode in ("async",):
        for path in ("closed",):
            plain = next(r for r in rows if r.library == OURS and r.mode == mode and r.path == path)
            exported = next(r for r in rows if r.library == OURS_EXPORTER and r.mode == mode and r.path == path)
            ratio = exported.overhead_ns / plain.overhead_ns
            text = f"{mode} {path}: {OURS_EXPORTER} {exported.overhead_ns:.0f} ns vs {OURS} {plain.overhead_ns:.0f} ns"
            results.append((text, ratio, ratio <= EXPORTER_TARGET_RATIO))
    return results


def print_table(rows: list[Row]) -> None:
    width = max(len("library"), *(len(r.library) for r in rows)) + 2
    print(f"{'library':<{width}}{'version':<10}{'mode':<7}{'path':<8}{'median ns':>11}{'overhead ns':>13}")
    for r in sorted(rows, key=lambda r: (r.mode, r.path, r.overhead_ns)):
        print(f"{r.library:<{width}}{r.version:<10}{r.mode:<7}{r.path:<8}{r.median_ns:>11.0f}{r.overhead_ns:>13.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer calls and repeats (under a minute)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target does not hold")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"where to write the JSON (default {RESULTS})")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", DeprecationWarning)  # peers' own deprecations are not ours to fix

    started = time.monotonic()
    rows = asyncio.run(run(args.quick))
    print_table(rows)
    print(
        "\npybreaker has no asyncio support (an async def wrapped by it counts every failure as a success): sync only."
    )
    print(f"\nTargets: ours at most {TARGET_RATIO}x the fastest peer, in this run")
    verdicts = targets(rows)
    for text, ratio, holds in verdicts:
        print(f"  {'PASS' if holds else 'FAIL'}  {ratio:.2f}x  {text}")
    print(f"\nExporter: ours with it attached at most {EXPORTER_TARGET_RATIO}x ours without, in this run")
    exporter_verdicts = exporter_targets(rows)
    for text, ratio, holds in exporter_verdicts:
        print(f"  {'PASS' if holds else 'FAIL'}  {ratio:.2f}x  {text}")
    verdicts = verdicts + exporter_verdicts
    print("\nTransport: what httpx through our transport adds per request")
    for mode in ("sync", "async"):
        ours = next(r for r in rows if r.library == OURS_HTTPX and r.mode == mode)
        bare = next(r for r in rows if r.library == "httpx" and r.mode == mode)
        print(
            f"  httpx {mode}: our transport adds {ours.overhead_ns / 1000:.1f} us per request "
            f"({ours.overhead_ns / bare.median_ns:.1%} of {bare.median_ns / 1000:.0f} us to a local server)"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps([asdict(r) for r in rows if r.library != "bare"], indent=2) + "\n")
    print(f"\nwrote {args.output} in {time.monotonic() - started:.1f}s (Python {sys.version.split()[0]})")
    return 1 if args.check and not all(holds for _, _, holds in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
