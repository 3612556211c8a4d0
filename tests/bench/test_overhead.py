"""The overhead benchmark runs and writes what the issue specifies (no timing is asserted here)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .support import load_bench

# Every documented usage of our breakers, sync and async (issue 18).
OUR_PATHS = {
    "sync": {
        "closed/call",
        "closed/decorator",
        "closed/with",
        "closed/endpoint",
        "closed/hierarchy",
        "rejected/open",
        "rejected/open/decorator",
        "rejected/open/with",
        "rejected/forced-open",
        "rejected/half-open-full",
        "rejected/parent-open",
    },
    "async": {
        "closed/call",
        "closed/decorator",
        "closed/async-with",
        "closed/endpoint",
        "closed/hierarchy",
        "rejected/open",
        "rejected/open/decorator",
        "rejected/open/async-with",
        "rejected/forced-open",
        "rejected/half-open-full",
        "rejected/parent-open",
    },
}


def test_every_usage_library_and_mode_is_measured(tmp_path: Path) -> None:
    bench = load_bench("overhead")
    rows = asyncio.run(bench.run(quick=True, calls=200, repeats=1, http_requests=20))
    measured = {(r.library, r.mode, r.path) for r in rows if r.library != "bare"}
    for mode, paths in OUR_PATHS.items():
        for path in paths:
            assert ("breakerpanel", mode, path) in measured
            assert ("breakerpanel+exporter", mode, path) in measured  # each also with the exporter
        for library in ("aiobreaker", "purgatory", "circuitbreaker"):
            assert any(lib == library and m == mode and p.startswith("closed/") for lib, m, p in measured)
            assert any(lib == library and m == mode and p.startswith("rejected/open") for lib, m, p in measured)
        assert ("httpx", mode, "closed/transport") in measured  # the transport against bare httpx
        assert ("breakerpanel+httpx", mode, "closed/transport") in measured
        assert ("breakerpanel+httpx", mode, "closed/transport/local-server") in measured
        assert ("httpx", mode, "closed/transport/second-client") in measured  # the harness's noise floor
        # httpx2, under the OpenAI and Anthropic SDKs, the same way
        assert ("httpx2", mode, "closed/transport") in measured
        assert ("breakerpanel+httpx2", mode, "closed/transport") in measured
        assert ("httpx2", mode, "closed/transport/second-client") in measured
    assert {p for lib, m, p in measured if lib == "pybreaker"} >= {"closed/call", "closed/decorator", "closed/with"}
    assert not any(lib == "pybreaker" and m == "async" for lib, m, _ in measured)  # no asyncio support
    # Each peer in the usage its README shows first, and like-with-like rows for ours.
    assert {r.library for r in rows if r.readme} == {"pybreaker", "aiobreaker", "purgatory", "circuitbreaker"}
    assert all(r.median_ns > 0 for r in rows)
    verdicts = bench.targets(rows)
    assert {v.target for v in verdicts} == {"peers", "usage", "hierarchy", "exporter", "transport"}
    assert len([v for v in verdicts if v.target == "transport"]) == 4  # httpx and httpx2, sync and async
    assert len([v for v in verdicts if v.target == "peers"]) == sum(len(p) for p in OUR_PATHS.values())
    assert len([v for v in verdicts if v.target == "exporter"]) == sum(len(p) for p in OUR_PATHS.values())
    # Every closed or rejecting path of ours is set against the language's floor for its usage.
    floors = {(r.mode, r.path) for r in rows if r.library == "python"}
    for verdict in verdicts:
        if verdict.target in ("peers", "usage", "hierarchy"):
            assert (verdict.mode, bench.floor_path(verdict.path)) in floors, verdict
            assert verdict.floor_ns is not None
        else:
            assert verdict.floor_ns is None


def test_writes_the_json_rows(tmp_path: Path) -> None:
    bench = load_bench("overhead")
    bench.run = _tiny_run(bench)  # keep the test fast: the CLI path is what is under test
    out = tmp_path / "overhead.json"
    assert bench.main(["--quick", "--output", str(out)]) == 0
    rows = json.loads(out.read_text())
    fields = ("library", "median_ns", "mode", "note", "overhead_ns", "path", "readme", "repeats", "version")
    transport = ("cpu_ns", "wall_overhead_ns")  # the transport rows also give CPU and wall time
    assert {tuple(sorted(row)) for row in rows} == {fields, tuple(sorted(fields + transport))}
    assert all(("cpu_ns" in row) == row["path"].startswith("closed/transport") for row in rows)
    assert {row["mode"] for row in rows} == {"sync", "async"}
    assert {row["path"].split("/")[0] for row in rows} == {"closed", "rejected", "floor"}
    assert all((row["library"] == "python") == row["path"].startswith("floor/") for row in rows)
    assert OUR_PATHS["async"] <= {row["path"] for row in rows if row["library"] == "breakerpanel"}


def test_cpu_pins_the_measuring_process_and_the_local_server_and_is_written_in_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = load_bench("overhead")
    bench.run = _tiny_run(bench)
    servers: list[set[int]] = []
    started: list[int] = []
    real_server, real_popen = bench.local_http_server, subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> Any:
        process = real_popen(*args, **kwargs)
        started.append(process.pid)
        return process

    @contextlib.contextmanager
    def local_http_server(cpus: set[int] | None = None) -> Iterator[str]:
        with real_server(cpus) as url:
            servers.append(os.sched_getaffinity(started[-1]))
            yield url

    monkeypatch.setattr(bench, "local_http_server", local_http_server)
    monkeypatch.setattr(subprocess, "Popen", popen)
    allowed = os.sched_getaffinity(0)
    cpu = max(allowed)
    out = tmp_path / "overhead.json"
    try:
        assert bench.main(["--quick", "--cpu", str(cpu), "--output", str(out)]) == 0
        assert os.sched_getaffinity(0) == {cpu}
    finally:
        os.sched_setaffinity(0, allowed)  # this test's process goes on running the others
    assert servers == [(allowed - {cpu}) or {cpu}]
    assert {row["cpu"] for row in json.loads(out.read_text())} == {cpu}


def test_a_cpu_the_process_may_not_use_is_refused_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench("overhead")
    allowed = os.sched_getaffinity(0)
    with pytest.raises(SystemExit) as exited:
        bench.main(["--quick", "--cpu", str(max(allowed) + 1000)])
    assert exited.value.code == 2
    assert f"--cpu {max(allowed) + 1000}: this process may run on CPUs" in capsys.readouterr().err
    assert os.sched_getaffinity(0) == allowed


def _tiny_run(bench: ModuleType) -> Callable[..., Coroutine[Any, Any, Any]]:
    real = bench.run

    async def run(quick: bool, calls: int | None = None, repeats: int | None = None, **kwargs: Any) -> Any:
        return await real(quick, calls=200, repeats=1, http_requests=20, **kwargs)

    return run


def test_a_limit_below_the_floor_is_reported() -> None:
    bench = load_bench("overhead")
    # async with: 1.2x acall's 290 ns is 348 ns, below the 460 ns a timing block alone costs.
    verdict = bench.Verdict("usage", "async", "closed/async-with", 613.0, "acall", 290.0, 613 / 290, 1.2, 460.0)
    assert verdict.below_floor
    assert not verdict.holds
    assert "floor 460 ns > the limit, 348 ns" in verdict.line()
    reachable = bench.Verdict("usage", "sync", "closed/with", 419.0, "call", 220.0, 419 / 220, 1.2, 140.0)
    assert not reachable.below_floor
    assert bench.floor_path("rejected/open/async-with") == "floor/rejected/async-with"
    assert bench.floor_path("rejected/parent-open") == "floor/rejected"
    assert bench.floor_path("closed/hierarchy") == "floor/nested-call"
    assert bench.floor_path("closed/transport") is None


def test_the_traceback_an_open_purgatory_breaker_gathers_is_dropped() -> None:
    # purgatory raises one exception object for every rejection: each raise chains its frames
    # onto the same traceback (7 GB over a full run, minutes to exit) unless dropped.
    bench = load_bench("overhead")
    from purgatory import SyncCircuitBreakerFactory

    breaker = SyncCircuitBreakerFactory(default_threshold=1, default_ttl=bench.NEVER).get_breaker("open")

    def rejected() -> None:
        with breaker:
            bench.broken()

    for _ in range(101):  # the first trips it, the others are rejected
        with contextlib.suppress(Exception):
            rejected()
    state = breaker.context._state
    depth, tb = 0, state.__traceback__
    while tb is not None:
        depth, tb = depth + 1, tb.tb_next
    assert depth >= 100  # the chain grows with every rejection (if purgatory stops it, this says so)
    bench._purgatory_traceback_dropper(breaker)()
    assert state.__traceback__ is None
