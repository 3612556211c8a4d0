"""The incident bot's intake: how many Alertmanager webhooks it durably accepts per second, and how
fast it answers at a given rate.

The bot runs as in production, ``python -m breakerpanel.incident_bot`` (uvicorn, the group-commit writer, the
processor and the outbox worker in dry run) over a SQLite file in a temporary directory
(``synchronous=FULL``: a 200 means the webhook is on disk). The load generator is a second process
(aiohttp on loopback). With two CPUs or more, the bot is pinned to one and the generator to
another, so the generator cannot starve the bot; both report the CPU they used.

Every webhook is a distinct notification (its own group key and fingerprints: no duplicates), with
1 to 5 alerts (1: 50%, 2: 20%, 3: 15%, 4: 10%, 5: 5%), about breakers of a few services, 20% of
them resolved, ~1 KB per alert as Alertmanager sends them, with the bearer token.

- **Open loop** (the target): webhooks are sent at a fixed rate (``--rate``, 500/s) for
  ``--duration`` seconds (30; ``--quick``: 5), each at its scheduled time whether or not earlier ones
  were answered. Latency is measured from the scheduled send time, so a stalled bot or a late
  generator counts against it (no coordinated omission). Reported: ``accepted_per_s``,
  ``p50_ms``, ``p99_ms``, ``errors`` (anything but 200, including timeouts).
- **Saturation** (closed loop): ``--concurrency`` clients (a sweep; the best level is reported as
  ``saturation_per_s``) each send a webhook as soon as their previous one is answered, for
  ``--saturation-duration`` seconds after a warm-up. Webhooks answered 200 per second.

Each phase runs against a fresh bot over an empty database: no phase inherits another's backlog
(the processor turns stored webhooks into incidents behind the intake, on the same event loop and
database connection). After each phase the bench counts the stored rows: every 200 must be there.

Target: 500 webhooks/s offered are all accepted with p99 under 50 ms.

Usage: ``python bench/bot_intake.py [--quick] [--check] [--profile] [--output PATH]``.
``--check`` exits with status 1 when the target does not hold. ``--profile`` runs the bot under
cProfile (slower: its figures are not written) and prints where its main thread spends its time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import platform
import pstats
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "bot_intake.json"
TOKEN = "bench-intake-token"
INTAKE_PATH = "/v1/alertmanager"

TARGET_RATE = 500  # webhooks/s offered
TARGET_P99_MS = 50.0
TARGET = f"{TARGET_RATE} webhooks/s offered are all accepted with p99 under {TARGET_P99_MS:.0f} ms"

ALERT_COUNTS = (1, 2, 3, 4, 5)
ALERT_WEIGHTS = (50, 20, 15, 10, 5)
RESOLVED_SHARE = 0.2
REQUEST_TIMEOUT_S = 10.0
MAX_WEBHOOKS = 500_000  # per phase: the bound on what one run can send


# --------------------------------------------------------------------------- webhooks


SERVICES = ("openai", "anthropic", "qdrant", "redis", "postgres", "search", "billing", "auth")
JOBS = ("rag", "chat", "ingest")
EPOCH = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)


def webhooks(prefix: str, seed: int) -> Iterator[bytes]:
    """Distinct Alertmanager webhooks (version 4), serialised, without end (the caller bounds them)."""
    rng = random.Random(seed)
    for n in range(MAX_WEBHOOKS):
        count = rng.choices(ALERT_COUNTS, ALERT_WEIGHTS)[0]
        resolved = rng.random() < RESOLVED_SHARE
        job = rng.choice(JOBS)
        alertname = rng.choice(("CircuitBreakerOpen", "CircuitBreakerErrorBudgetBurn", "CircuitBreakerTripPredicted"))
        starts = EPOCH + timedelta(seconds=n)
        alerts = []
        for i in range(count):
            service = rng.choice(SERVICES)
            endpoint = rng.random() < 0.5
            labels = {
                "alertname": alertname,
                "severity": rng.choice(("critical", "warning")),
                "job": job,
                "instance": f"{job}-{rng.randrange(4)}:8000",
                "namespace": "prod",
                "circuit_breaker_name": f"{service}.chat" if endpoint else service,
                "circuit_breaker_level": "endpoint" if endpoint else "service",
            }
            if endpoint:
                labels["circuit_breaker_parent"] = service
            alerts.append(
                {
                    "status": "resolved" if resolved else "firing",
                    "labels": labels,
                    "annotations": {
                        "summary": f"Circuit breaker {labels['circuit_breaker_name']} has been open for more than 5m.",
                        "description": "Calls fail fast: the dependency failed repeatedly and the breaker tripped; "
                        "it probes again after its recovery timeout.",
                        "runbook_url": "https://runbooks.example/circuit-breaker-open.md",
                        "dashboard_url": "http://grafana.example/d/breakerpanel-detail/detail?var-breaker="
                        + labels["circuit_breaker_name"],
                    },
                    "startsAt": starts.isoformat().replace("+00:00", "Z"),
                    "endsAt": (starts + timedelta(minutes=10) if resolved else datetime(1, 1, 1, tzinfo=UTC))
                    .isoformat()
                    .replace("+00:00", "Z"),
                    "generatorURL": "http://prometheus.example:9090/graph?g0.expr=breakerpanel_circuit_breaker_state",
                    "fingerprint": f"{prefix}{n:08x}{i:02x}",
                }
            )
        document = {
            "version": "4",
            "groupKey": f'{{}}/{{severity=~"critical|warning"}}:{{bench="{prefix}-{n}"}}',
            "truncatedAlerts": 0,
            "status": "resolved" if resolved else "firing",
            "receiver": "incident-bot",
            "groupLabels": {"alertname": alertname},
            "commonLabels": {"alertname": alertname, "job": job},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager.example:9093",
            "alerts": alerts,
        }
        yield json.dumps(document, separators=(",", ":")).encode()


# --------------------------------------------------------------------------- the bot


def _cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def _pin(cpus: Sequence[int] | None) -> None:
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(cpus))


def cpu_seconds(pid: int) -> float:
    """User and system CPU of a process, all its threads (0 where /proc is missing)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


#: ``--variant`` (diagnoses, not the bot as it runs): launchers that change one thing in the bot's
#: process before starting it as ``python -m breakerpanel.incident_bot`` would; the bot's code is untouched.
#: ``without-processor``: the processor idles, so what the intake costs alone shows.
#: ``gc-frozen``: after start-up, ``gc.freeze()`` moves every object then alive out of the
#: collector's reach, so that full collections no longer walk the libraries' objects.
VARIANTS = {
    "as-is": "",
    "without-processor": """\
from breakerpanel.incident_bot.runtime import Bot
async def _idle(self): await asyncio.Event().wait()
Bot._process_forever = _idle
""",
    "gc-frozen": """\
import gc
from breakerpanel.incident_bot.runtime import Bot
_start = Bot.start
async def _start_then_freeze(self):
    await _start(self)
    gc.collect()
    gc.freeze()
Bot.start = _start_then_freeze
""",
}
LAUNCHER = """\
import asyncio, sys
{variant}
from breakerpanel.incident_bot.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


class Bot:
    """``python -m breakerpanel.incident_bot`` (or a ``VARIANTS`` launcher) over a SQLite file in ``directory``,
    optionally under cProfile, pinned to ``cpus``."""

    def __init__(
        self,
        directory: Path,
        *,
        cpus: Sequence[int] | None,
        profile: Path | None = None,
        variant: str = "as-is",
    ) -> None:
        self.database = directory / "bot.db"
        self.log = directory / "bot.log"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {name: value for name, value in os.environ.items() if not name.startswith("INCIDENT_BOT_")}
        env |= {
            "INCIDENT_BOT_WEBHOOK_TOKEN": TOKEN,
            "INCIDENT_BOT_DATABASE_URL": f"sqlite+aiosqlite:///{self.database}",
            "INCIDENT_BOT_DRY_RUN": "true",
            # The generator is one client: the per-client limit (1000/s by default) would cap the
            # saturation phase. This measures the intake itself; the open loop's 500/s is below it.
            "INCIDENT_BOT_INTAKE_RATE_LIMIT": "1000000",
            "INCIDENT_BOT_INTAKE_RATE_BURST": "1000000",
        }
        runner = ["-m", "cProfile", "-o", str(profile)] if profile else []
        target = ["-m", "breakerpanel.incident_bot"]
        if VARIANTS[variant]:
            launcher = directory / "launcher.py"
            launcher.write_text(LAUNCHER.format(variant=VARIANTS[variant]))
            target = [str(launcher)]
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        command = [sys.executable, *runner, *target, "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [*command, "--log-level", "warning"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if cpus and hasattr(os, "sched_setaffinity"):
            # Popen returns once the exec succeeded, long before the bot starts a thread: every
            # thread it starts (aiosqlite's, uvicorn's) inherits the affinity.
            os.sched_setaffinity(self.process.pid, set(cpus))
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the bot exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"GET /readyz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the bot was not ready within {timeout:g} s:\n{self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        """SIGINT: uvicorn shuts down gracefully (and cProfile writes its file)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def rows(self) -> tuple[int, int]:
        """(webhooks stored, webhooks not processed yet): read beside the bot (WAL)."""
        with contextlib.closing(sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=30)) as db:
            stored, pending = db.execute("SELECT count(*), count(*) - count(processed_at) FROM webhooks").fetchone()
        return int(stored), int(pending)


# --------------------------------------------------------------------------- the load generator


@dataclass
class Phase:
    """What a generator run measured (``kind``: "open" or "closed")."""

    kind: str
    duration_s: float
    concurrency: int = 0
    offered_per_s: float = 0.0
    sent: int = 0
    accepted: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    accepted_per_s: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    send_lag_p99_ms: float = 0.0  # open loop: how late the generator sent (its own health)
    max_in_flight: int = 0
    p99_ms_by_second: list[float] = field(default_factory=list)  # open loop, by scheduled second
    accepted_all: int = 0  # every 200 of the phase, warm-up and stragglers included
    stored: int = 0  # webhooks rows when the phase ended
    processed: int = 0  # of which the processor had turned into incidents
    bot_cpu_percent: float = 0.0  # of one CPU, over the measured window
    generator_cpu_percent: float = 0.0


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class _Counters:
    def __init__(self) -> None:
        self.sent = 0
        self.accepted = 0
        self.accepted_all = 0
        self.errors: dict[str, int] = {}
        self.latencies: list[float] = []

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def _post(session: aiohttp.ClientSession, url: str, body: bytes) -> str:
    """The status ("200" when stored), or the name of the exception that stood for one."""
    try:
        async with session.post(url, data=body) as response:
            await response.read()
            return str(response.status)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return type(exc).__name__


def _session(concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency, ttl_dns_cache=None),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        skip_auto_headers=("User-Agent",),
    )


async def open_loop(
    url: str, bodies: Iterator[bytes], rate: float, duration: float, warmup: float, bot_pid: int
) -> Phase:
    """Send at ``rate`` per second for ``warmup + duration`` seconds, each webhook at its scheduled
    time whatever the answers; measure the ones scheduled after the warm-up."""
    loop = asyncio.get_running_loop()
    warm = int(rate * warmup)
    count = warm + int(rate * duration)
    payloads = [next(bodies) for _ in range(count)]  # serialised beforehand: not on the clock
    counters = _Counters()
    lags: list[float] = []
    done_at: list[float] = []
    by_second: dict[int, list[float]] = {}
    outstanding: dict[int, float] = {}  # measured webhooks not answered yet: their scheduled times
    max_in_flight = 0
    cpu_bot = cpu_me = 0.0

    def record(i: int, at: float, outcome: str) -> None:
        finished = loop.time()
        done_at.append(finished)
        counters.latencies.append(finished - at)  # from the scheduled time
        by_second.setdefault(int((i - warm) / rate), []).append(finished - at)
        if outcome == "200":
            counters.accepted += 1
        else:
            counters.error(outcome)

    async with _session(concurrency=10_000) as session:

        async def one(i: int, at: float, body: bytes) -> None:
            nonlocal max_in_flight
            max_in_flight = max(max_in_flight, len(tasks))
            outcome = await _post(session, url, body)
            counters.accepted_all += outcome == "200"
            if outstanding.pop(i, None) is not None:
                record(i, at, outcome)

        tasks: set[asyncio.Task[None]] = set()
        start = loop.time() + 0.05
        for i, body in enumerate(payloads):
            at = start + i / rate
            if i == warm:
                cpu_bot, cpu_me = cpu_seconds(bot_pid), time.process_time()
            delay = at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if i >= warm:
                lags.append(max(0.0, loop.time() - at))
                counters.sent += 1
                outstanding[i] = at
            task = loop.create_task(one(i, at, body))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_S + 5)
        for i, at in sorted(outstanding.items()):  # never answered: errors, as late as they are now
            record(i, at, "unanswered")
        for task in tasks:
            task.cancel()
        measured_from = start + warmup
        elapsed = max(duration, (max(done_at) if done_at else loop.time()) - measured_from)
        cpu_bot, cpu_me = cpu_seconds(bot_pid) - cpu_bot, time.process_time() - cpu_me
    phase = _phase(
        "open", counters, elapsed, bot=cpu_bot, me=cpu_me, offered=rate, lags=lags, max_in_flight=max_in_flight
    )
    phase.p99_ms_by_second = [
        round(_percentile([latency * 1000 for latency in by_second[second]], 0.99), 1) for second in sorted(by_second)
    ]
    return phase


async def closed_loop(
    url: str, bodies: Iterator[bytes], concurrency: int, duration: float, warmup: float, bot_pid: int
) -> Phase:
    """``concurrency`` clients, each sending its next webhook once its last one is answered."""
    loop = asyncio.get_running_loop()
    counters = _Counters()
    measuring = False
    async with _session(concurrency) as session:

        async def client() -> None:
            for body in bodies:
                if loop.time() >= end:
                    return
                sent = loop.time()
                outcome = await _post(session, url, body)
                counters.accepted_all += outcome == "200"
                if not measuring or loop.time() > end:
                    continue
                counters.sent += 1
                counters.latencies.append(loop.time() - sent)
                if outcome == "200":
                    counters.accepted += 1
                else:
                    counters.error(outcome)

        end = loop.time() + warmup + duration
        clients = [loop.create_task(client()) for _ in range(concurrency)]
        await asyncio.sleep(warmup)
        measuring = True
        cpu_bot, cpu_me = cpu_seconds(bot_pid), time.process_time()
        await asyncio.sleep(duration)
        cpu_bot, cpu_me = cpu_seconds(bot_pid) - cpu_bot, time.process_time() - cpu_me
        await asyncio.gather(*clients)
    phase = _phase("closed", counters, duration, bot=cpu_bot, me=cpu_me)
    phase.concurrency = concurrency
    return phase


def _phase(
    kind: str,
    counters: _Counters,
    elapsed: float,
    *,
    bot: float,
    me: float,
    offered: float = 0.0,
    lags: list[float] | None = None,
    max_in_flight: int = 0,
) -> Phase:
    ms = [latency * 1000 for latency in counters.latencies]
    return Phase(
        kind=kind,
        duration_s=round(elapsed, 2),
        offered_per_s=offered,
        sent=counters.sent,
        accepted=counters.accepted,
        errors=counters.sent - counters.accepted,
        error_kinds=dict(sorted(counters.errors.items())),
        accepted_per_s=round(counters.accepted / elapsed, 1),
        p50_ms=round(statistics.median(ms), 2) if ms else 0.0,
        p90_ms=round(_percentile(ms, 0.90), 2),
        p99_ms=round(_percentile(ms, 0.99), 2),
        max_ms=round(max(ms), 2) if ms else 0.0,
        send_lag_p99_ms=round(_percentile([lag * 1000 for lag in lags or []], 0.99), 2),
        max_in_flight=max_in_flight,
        bot_cpu_percent=round(100 * bot / elapsed, 1),
        generator_cpu_percent=round(100 * me / elapsed, 1),
        accepted_all=counters.accepted_all,
    )


def generator(spec: dict[str, Any]) -> Phase:
    """One phase, in this (the generator's) process."""
    _pin(spec.get("cpus"))
    bodies = webhooks(spec["prefix"], spec["seed"])
    url = spec["url"] + INTAKE_PATH
    if spec["kind"] == "open":
        run = open_loop(url, bodies, spec["rate"], spec["duration"], spec["warmup"], spec["bot_pid"])
    else:
        run = closed_loop(url, bodies, spec["concurrency"], spec["duration"], spec["warmup"], spec["bot_pid"])
    return asyncio.run(run)


def run_generator(spec: dict[str, Any]) -> Phase:
    """Run one phase in a second process (this script, ``--generator SPEC``) and read its result."""
    done = subprocess.run(
        [sys.executable, __file__, "--generator", json.dumps(spec)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=spec["duration"] + spec.get("warmup", 0) + 120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return Phase(**json.loads(done.stdout.strip().splitlines()[-1]))


# --------------------------------------------------------------------------- the run


@dataclass
class RunConfig:
    rate: float
    duration: float
    concurrency: list[int]
    saturation_duration: float
    warmup: float
    variant: str = "as-is"


def settings_for(args: argparse.Namespace) -> RunConfig:
    quick = args.quick
    return RunConfig(
        rate=args.rate,
        duration=args.duration or (5.0 if quick else 30.0),
        concurrency=args.concurrency or ([32] if quick else [8, 32, 128]),
        saturation_duration=args.saturation_duration or (5.0 if quick else 15.0),
        warmup=args.warmup if args.warmup is not None else (1.0 if quick else 2.0),
        variant=args.variant,
    )


def _load_average() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def run_phase(
    spec: dict[str, Any], *, bot_cpus: list[int] | None, profile: Path | None, variant: str = "as-is"
) -> tuple[Phase, str]:
    """One phase against a fresh bot over an empty database; (the phase, the bot's log if it logged
    a traceback)."""
    with tempfile.TemporaryDirectory(prefix="bot-intake-") as directory:
        bot = Bot(Path(directory), cpus=bot_cpus, profile=profile, variant=variant)
        try:
            phase = run_generator({**spec, "url": bot.url, "bot_pid": bot.process.pid})
            phase.stored, unprocessed = bot.rows()
            phase.processed = phase.stored - unprocessed
        finally:
            bot.stop()
        log = bot.log_tail()
    return phase, log if "Traceback" in log else ""


def run(config: RunConfig, *, profile: Path | None = None) -> dict[str, Any]:
    cpus = _cpus()
    bot_cpus, generator_cpus = ([cpus[0]], cpus[1:]) if len(cpus) >= 2 else (None, None)
    logs: list[str] = []
    load_before = _load_average()

    def phase(name: str, spec: dict[str, Any]) -> Phase:
        print(f"{name} ...", flush=True)
        prof = profile.with_name(f"{profile.stem}-{len(logs)}.prof") if profile else None
        result, log = run_phase(
            {**spec, "cpus": generator_cpus},
            bot_cpus=bot_cpus,
            profile=prof,
            variant=config.variant,
        )
        logs.append(log)
        if prof is not None:
            print_profile(prof, title=name)
        return result

    offered = phase(
        f"open loop: {config.rate:g} webhooks/s for {config.duration:g} s",
        {
            "kind": "open",
            "prefix": "o",
            "seed": 1,
            "rate": config.rate,
            "duration": config.duration,
            "warmup": config.warmup,
        },
    )
    closed = [
        phase(
            f"closed loop: {concurrency} clients for {config.saturation_duration:g} s",
            {
                "kind": "closed",
                "prefix": f"c{n}",
                "seed": 2 + n,
                "concurrency": concurrency,
                "duration": config.saturation_duration,
                "warmup": config.warmup,
            },
        )
        for n, concurrency in enumerate(config.concurrency)
    ]
    best = max(closed, key=lambda p: p.accepted_per_s)
    return {
        "offered_per_s": config.rate,
        "accepted_per_s": offered.accepted_per_s,
        "p50_ms": offered.p50_ms,
        "p99_ms": offered.p99_ms,
        "errors": offered.errors,
        "saturation_per_s": best.accepted_per_s,
        "saturation_concurrency": best.concurrency,
        "target": TARGET,
        "target_holds": config.rate >= TARGET_RATE
        and offered.errors == 0
        and offered.accepted == offered.sent
        and offered.p99_ms < TARGET_P99_MS,
        # Every 200 is a stored row (durable intake), in every phase.
        "all_accepted_stored": all(p.stored == p.accepted_all for p in (offered, *closed)),
        "open_loop": asdict(offered),
        "closed_loop": [asdict(p) for p in closed],
        "bot_cpus": bot_cpus,
        "generator_cpus": generator_cpus,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "database": "SQLite (WAL, synchronous=FULL) in a temporary directory, a fresh one per phase",
        "variant": config.variant,
        # 1-minute load average before and after: other work on the machine skews the figures.
        "load_average": [load_before, _load_average()],
        "durations_s": {
            "open_loop": config.duration,
            "closed_loop": config.saturation_duration,
            "warmup": config.warmup,
        },
        "bot_tracebacks": [log[-1500:] for log in logs if log],
    }


def print_summary(result: dict[str, Any]) -> None:
    o = result["open_loop"]
    print(
        f"\nbot intake, Python {result['python']}, bot on CPU {result['bot_cpus']}, generator on CPU "
        f"{result['generator_cpus']}, bot {result['variant']}, load average before/after {result['load_average']}"
    )
    print(
        f"  open loop   {o['offered_per_s']:g}/s for {o['duration_s']:g} s: {o['accepted']}/{o['sent']} accepted "
        f"({o['accepted_per_s']:.1f}/s), p50 {o['p50_ms']:.1f} ms, p90 {o['p90_ms']:.1f} ms, p99 {o['p99_ms']:.1f} ms, "
        f"max {o['max_ms']:.1f} ms, errors {o['errors']} {o['error_kinds'] or ''}"
    )
    print(
        f"              bot CPU {o['bot_cpu_percent']:.0f}%, generator CPU {o['generator_cpu_percent']:.0f}%, "
        f"send lag p99 {o['send_lag_p99_ms']:.1f} ms, at most {o['max_in_flight']} in flight"
    )
    print(f"              p99 by second (ms): {' '.join(f'{v:.0f}' for v in o['p99_ms_by_second'])}")
    for c in result["closed_loop"]:
        print(
            f"  closed loop {c['concurrency']:>4} clients: {c['accepted_per_s']:8.1f} accepted/s, p50 "
            f"{c['p50_ms']:.1f} ms, p99 {c['p99_ms']:.1f} ms, errors {c['errors']}, bot CPU "
            f"{c['bot_cpu_percent']:.0f}%, generator CPU {c['generator_cpu_percent']:.0f}%"
        )
    print(f"  saturation: {result['saturation_per_s']:.1f} webhooks/s ({result['saturation_concurrency']} clients)")
    for p in (o, *result["closed_loop"]):
        name = "open loop" if p["kind"] == "open" else f"closed loop, {p['concurrency']} clients"
        print(
            f"  {name}: {p['stored']} rows stored for {p['accepted_all']} answered 200, "
            f"{p['processed']} processed into incidents by the end"
        )
    if not result["all_accepted_stored"]:
        print("  !! some webhooks answered 200 are not stored")
    for traceback in result["bot_tracebacks"]:
        print(f"  the bot logged a traceback:\n{traceback}")
    verdict = "PASS" if result["target_holds"] else "FAIL"
    print(f"\nTarget: {result['target']}\n  {verdict}  {o['accepted']}/{o['sent']} accepted, p99 {o['p99_ms']:.1f} ms")


def _package(filename: str) -> str:
    """What a profiled function belongs to: a site-packages distribution, ``incident_bot``, the
    standard library module, or C built-ins."""
    path = Path(filename)
    if "site-packages" in path.parts:
        return path.parts[path.parts.index("site-packages") + 1].removesuffix(".py")
    if "incident_bot" in path.parts:
        return "incident_bot"
    if filename.startswith("<") or filename == "~":
        return "(built-ins: C calls such as socket, select, json, pydantic-core)"
    return f"stdlib {path.stem if path.parent.name.startswith('python3') else path.parent.name}"


def print_profile(path: Path, *, title: str, limit: int = 20) -> None:
    """The bot's main thread (cProfile sees no other: SQLite runs in aiosqlite's thread): own time
    by package, then the functions with the most own time."""
    stats = pstats.Stats(str(path), stream=io.StringIO())
    entries: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in entries.values()) or 1.0
    by_package: dict[str, float] = {}
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in entries.items():
        package = _package(filename)
        by_package[package] = by_package.get(package, 0.0) + tottime
    print(f"\n--- the bot's main thread under cProfile, {title}: {total:.2f} s of own time")
    for package, seconds in sorted(by_package.items(), key=lambda item: -item[1])[:limit]:
        print(f"  {seconds:7.2f} s {100 * seconds / total:5.1f}%  {package}")
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(limit)
    print(out.getvalue().split("\n\n", 1)[-1].rstrip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 s phases, one saturation level (under a minute)")
    parser.add_argument("--check", action="store_true", help="exit 1 when the target does not hold")
    parser.add_argument("--profile", action="store_true", help="run the bot under cProfile; print, do not write")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"where to write the JSON (default {RESULTS})")
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="open loop: webhooks offered per second")
    parser.add_argument("--duration", type=float, help="open loop: seconds (30; --quick: 5)")
    parser.add_argument("--concurrency", type=int, action="append", help="closed loop clients (repeat for a sweep)")
    parser.add_argument("--saturation-duration", type=float, help="closed loop: seconds per level (15; --quick: 5)")
    parser.add_argument("--warmup", type=float, help="closed loop: seconds not measured first (2; --quick: 1)")
    parser.add_argument(
        "--variant",
        choices=sorted(VARIANTS),
        default="as-is",
        help="diagnosis: the bot without its processor, or with its start-up objects frozen for the GC; "
        "print, do not write",
    )
    parser.add_argument("--generator", help=argparse.SUPPRESS)  # internal: run one phase, print its JSON
    args = parser.parse_args(argv)
    if args.generator:
        print(json.dumps(asdict(generator(json.loads(args.generator)))))
        return 0

    started = time.monotonic()
    config = settings_for(args)
    with tempfile.TemporaryDirectory(prefix="bot-intake-profile-") as scratch:
        result = run(config, profile=Path(scratch) / "bot.prof" if args.profile else None)
    print_summary(result)
    if args.profile or args.variant != "as-is":
        print("(a diagnosis, not the bot as it runs: figures not written)")
        return 0
    result["quick"] = args.quick
    result["run_s"] = round(time.monotonic() - started, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.output} in {result['run_s']:.1f}s")
    return 1 if args.check and not result["target_holds"] else 0


if __name__ == "__main__":
    sys.exit(main())
