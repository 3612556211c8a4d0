"""Shared breaker state through Redis: per-call overhead and propagation time, in one run.

One real ``redis-server`` (started here on a free loopback port) serves every case:

- **per-call overhead** (closed path, a function that returns at once), over a bare call:
  ours with the memory store, ours with the Redis store (connected, exchanging counts every
  250 ms meanwhile), pybreaker with ``CircuitRedisStorage`` (sync: it has no asyncio support) and
  purgatory with its Redis unit of work (async, through its documented decorator). Repeats run
  round-robin, so a noisy moment of the machine hits every case alike; ours are measured on both
  paths, and the JSON's figures are the async path (the library is async-first);
- **propagation**: this process trips a breaker (one failure, consecutive threshold 1) and two
  follower processes, attached to the same Redis, report when they see it open; then a reset
  closes all three. p50 and p99 of trip-to-follower times over every trip and follower.

Usage: ``python bench/distributed.py [--quick] [--check] [--output PATH]``.
``--check`` exits with status 1 when a target does not hold.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import platform
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = Path(__file__).resolve().parent / "results" / "distributed.json"
NEVER = 10**6
# Targets from issue 8.
TARGET_REDIS_VS_MEMORY = 1.5
TARGET_PEER_VS_OURS = 50.0
TARGET_PROPAGATION_P99_MS = 100.0


class Injected(Exception):
    pass


def work() -> int:
    return 1


async def awork() -> int:
    return 1


def broken() -> int:
    raise Injected


# ---------------------------------------------------------------------- redis-server


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port; its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found: apt-get install -y --no-install-recommends redis-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    directory = tempfile.mkdtemp(prefix="bench-redis-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


# ---------------------------------------------------------------------- per-call overhead

Loop = Callable[[int], Any]


async def _measure(loop: Loop, n: int, is_async: bool) -> float:
    gc.disable()
    try:
        start = time.perf_counter_ns()
        if is_async:
            await loop(n)
        else:
            loop(n)
        return (time.perf_counter_ns() - start) / n
    finally:
        gc.enable()


async def overhead(url: str, *, calls: int, peer_calls: int, repeats: int) -> dict[str, dict[str, float]]:
    """Median ns per call and overhead over the bare call, per case."""
    import pybreaker
    import redis
    from purgatory import AsyncCircuitBreakerFactory, AsyncRedisUnitOfWork

    from breakerpanel import BreakerConfig, CircuitBreaker, MemoryStore, RedisStore

    config = BreakerConfig(
        sliding_window_type="time_based", sliding_window_size=60, minimum_calls=1, slow_call_duration=5.0
    )
    memory_store, redis_store = MemoryStore(), RedisStore(url, prefix="bench-overhead")
    in_memory, in_redis = CircuitBreaker("bench-memory", config), CircuitBreaker("bench-redis", config)
    memory_store.attach(in_memory)
    redis_store.attach(in_redis)

    sync_client = redis.Redis.from_url(url)
    storage = pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, sync_client, namespace="bench-pybreaker")
    pb = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=NEVER, state_storage=storage)
    factory = AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=NEVER, uow=AsyncRedisUnitOfWork(url))
    await factory.initialize()
    purgatory_work = factory("bench-purgatory")(awork)

    def bare_sync(n: int) -> None:
        for _ in range(n):
            work()

    async def bare_async(n: int) -> None:
        for _ in range(n):
            await awork()

    def ours_sync(breaker: CircuitBreaker) -> Loop:
        def loop(n: int) -> None:
            call = breaker.call
            for _ in range(n):
                call(work)

        return loop

    def ours_async(breaker: CircuitBreaker) -> Loop:
        async def loop(n: int) -> None:
            acall = breaker.acall
            for _ in range(n):
                await acall(awork)

        return loop

    def pybreaker_loop(n: int) -> None:
        call = pb.call
        for _ in range(n):
            call(work)

    async def purgatory_loop(n: int) -> None:
        for _ in range(n):
            await purgatory_work()

    # name: (loop, is_async, calls per repeat, baseline)
    cases: dict[str, tuple[Loop, bool, int, str]] = {
        "bare-sync": (bare_sync, False, calls, ""),
        "bare-async": (bare_async, True, calls, ""),
        "memory-sync": (ours_sync(in_memory), False, calls, "bare-sync"),
        "memory-async": (ours_async(in_memory), True, calls, "bare-async"),
        "redis-sync": (ours_sync(in_redis), False, calls, "bare-sync"),
        "redis-async": (ours_async(in_redis), True, calls, "bare-async"),
        "pybreaker-redis-sync": (pybreaker_loop, False, peer_calls, "bare-sync"),
        "purgatory-redis-async": (purgatory_loop, True, peer_calls, "bare-async"),
    }
    samples: dict[str, list[float]] = {name: [] for name in cases}
    try:
        for loop, is_async, n, _ in cases.values():  # warm-up
            await _measure(loop, max(1, n // 10), is_async)
        for _ in range(repeats):
            for name, (loop, is_async, n, _) in cases.items():
                samples[name].append(await _measure(loop, n, is_async))
    finally:
        redis_store.close()
        memory_store.close()
        sync_client.close()
        await factory.uow.contexts.redis.aclose()  # type: ignore[attr-defined]
    assert in_redis.snapshot().totals.successes > 0
    assert redis_store.status().errors == 0
    medians = {name: statistics.median(values) for name, values in samples.items()}
    return {
        name: {
            "median_ns": round(medians[name], 1),
            "overhead_ns": round(max(1.0, medians[name] - medians[baseline]), 1) if baseline else 0.0,
            "calls": cases[name][2],
        }
        for name in cases
        for baseline in [cases[name][3]]
    }


# ---------------------------------------------------------------------- propagation


def follower(url: str, prefix: str, name: str) -> None:
    """A follower process: print the wall-clock time of every state change it makes."""
    from breakerpanel import BreakerConfig, BreakerListener, CircuitBreaker, RedisStore, StateChanged

    out: queue.Queue[str] = queue.Queue()

    class Report(BreakerListener):
        def state_changed(self, event: StateChanged) -> None:
            out.put(json.dumps({"state": event.state.value, "t": time.time()}))

    breaker = CircuitBreaker(name, BreakerConfig(wait_in_open=NEVER), listeners=[Report()])
    store = RedisStore(url, prefix=prefix)
    store.attach(breaker)
    print(json.dumps({"ready": True}), flush=True)

    def writer() -> None:  # printing off the store's thread
        while True:
            print(out.get(), flush=True)

    threading.Thread(target=writer, daemon=True).start()
    sys.stdin.read()  # until the parent closes our stdin
    store.close()


def propagation(url: str, *, trips: int) -> list[float]:
    """Milliseconds from a trip here to each of two followers seeing it open."""
    from breakerpanel import BreakerConfig, CircuitBreaker, RedisStore

    prefix, name = f"bench-propagation-{time.time_ns()}", "llm"
    followers = [
        subprocess.Popen(
            [sys.executable, __file__, "--follower", url, prefix, name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    lines: list[queue.Queue[dict[str, Any]]] = [queue.Queue() for _ in followers]

    def reader(process: subprocess.Popen[str], into: queue.Queue[dict[str, Any]]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            into.put(json.loads(line))

    for process, into in zip(followers, lines, strict=True):
        threading.Thread(target=reader, args=(process, into), daemon=True).start()
    store = RedisStore(url, prefix=prefix)
    breaker = CircuitBreaker(name, BreakerConfig(consecutive_failures_threshold=1, wait_in_open=NEVER))
    try:
        for into in lines:
            assert into.get(timeout=30).get("ready")
        store.attach(breaker)

        def wait_for(state: str) -> list[float]:
            return [_next_state(into, state) for into in lines]

        samples: list[float] = []
        for _ in range(trips):
            start = time.time()
            with contextlib.suppress(Injected):
                breaker.call(broken)
            assert breaker.state.value == "open"
            samples.extend((seen - start) * 1000 for seen in wait_for("open"))
            breaker.reset()
            wait_for("closed")
        return samples
    finally:
        store.close()
        for process in followers:
            assert process.stdin is not None
            process.stdin.close()
        for process in followers:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


def _next_state(into: queue.Queue[dict[str, Any]], state: str) -> float:
    while True:
        event = into.get(timeout=30)
        if event.get("state") == state:
            return float(event["t"])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


# ---------------------------------------------------------------------- main


def run(
    quick: bool, *, calls: int | None = None, peer_calls: int | None = None, repeats: int | None = None,
    trips: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    with redis_server() as url:
        rows = asyncio.run(
            overhead(
                url,
                calls=calls or (20_000 if quick else 100_000),
                peer_calls=peer_calls or (200 if quick else 1000),
                repeats=repeats or (7 if quick else 15),
            )
        )
        samples = propagation(url, trips=trips or (50 if quick else 300))
    memory, ours = rows["memory-async"]["overhead_ns"], rows["redis-async"]["overhead_ns"]
    cheaper_peer = min(rows["pybreaker-redis-sync"]["overhead_ns"], rows["purgatory-redis-async"]["overhead_ns"])
    return {
        "memory_overhead_ns": memory,
        "redis_overhead_ns": ours,
        "redis_vs_memory_ratio": round(ours / memory, 3),
        "peer_vs_ours_ratio": round(cheaper_peer / ours, 1),
        "propagation_p50_ms": round(percentile(samples, 0.50), 3),
        "propagation_p99_ms": round(percentile(samples, 0.99), 3),
        "propagation_samples": len(samples),
        "rows": rows,
        "versions": {
            "python": platform.python_version(),
            "redis-py": version("redis"),
            "pybreaker": version("pybreaker"),
            "purgatory": version("purgatory"),
        },
        "note": "overhead figures: async closed path over a bare await; compare only within one run",
    }


def targets(result: dict[str, Any]) -> list[tuple[str, bool]]:
    ratio, peers, p99 = result["redis_vs_memory_ratio"], result["peer_vs_ours_ratio"], result["propagation_p99_ms"]
    return [
        (f"redis store <= {TARGET_REDIS_VS_MEMORY}x memory store", ratio <= TARGET_REDIS_VS_MEMORY),
        (f"Redis-backed peers >= {TARGET_PEER_VS_OURS}x ours", peers >= TARGET_PEER_VS_OURS),
        (f"propagation p99 < {TARGET_PROPAGATION_P99_MS} ms", p99 < TARGET_PROPAGATION_P99_MS),
    ]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--follower":
        follower(*argv[1:4])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and trips (under 3 minutes)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target does not hold")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = run(args.quick)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    rows = result["rows"]
    print(f"{'case':<24} {'median ns':>12} {'overhead ns':>12}")
    for name, row in rows.items():
        print(f"{name:<24} {row['median_ns']:>12.1f} {row['overhead_ns']:>12.1f}")
    for key in ("memory_overhead_ns", "redis_overhead_ns", "redis_vs_memory_ratio", "peer_vs_ours_ratio",
                "propagation_p50_ms", "propagation_p99_ms"):  # fmt: skip
        print(f"{key}: {result[key]}")
    failed = False
    for label, held in targets(result):
        print(f"{'ok  ' if held else 'MISS'} {label}")
        failed |= not held
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
