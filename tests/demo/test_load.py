"""The load generator, against ``python -m demo.service`` running as the stack runs it."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import pytest

from demo.load import QUESTIONS, LoadReport, run_load
from demo.load.report import Tally
from demo.upstreams import Chaos, Latency, Outage, Upstream
from tests.servers import find_free_port

from .service_harness import service_process


@pytest.fixture
def service_url(url: str, tmp_path: Path) -> Iterator[str]:
    env = {
        "DEMO_OPENAI_BASE_URL": f"{url}/v1",
        "DEMO_ANTHROPIC_BASE_URL": url,
        "DEMO_QDRANT_URL": url,
        "DEMO_QDRANT_COLLECTION": f"load-{uuid.uuid4().hex[:8]}",
        "DEMO_SQLITE_PATH": str(tmp_path / "documents.sqlite3"),
        "DEMO_LOG_LEVEL": "warning",
    }
    with service_process(env, tmp_path) as running:
        yield running


async def test_a_steady_load_is_answered_and_reported(service_url: str) -> None:
    progress: list[LoadReport] = []

    report = await run_load(service_url, rps=20, duration=2, on_progress=progress.append, progress_interval_s=0.5)

    assert report.sent == 40  # open loop: the rate times the duration, however fast the answers came
    assert report.ok == report.sent
    assert report.errors == report.dropped == report.server_errors == 0
    assert report.by_served_by == {"openai": report.sent}
    assert report.p50_ms is not None
    assert report.p99_ms is not None
    assert 0 < report.p50_ms <= report.p99_ms
    assert len(progress) >= 2
    assert progress[-1] == report
    assert "openai=40" in report.line()


async def test_during_an_openai_outage_the_load_sees_the_fallback_not_errors(service_url: str, chaos: Chaos) -> None:
    chaos.set(Upstream.OPENAI, Outage())

    report = await run_load(service_url, rps=20, duration=1.5)

    assert report.ok == report.sent == 30
    assert report.server_errors == 0
    assert set(report.by_served_by) == {"anthropic"}


async def test_requests_beyond_the_in_flight_bound_are_dropped_not_delayed(service_url: str, chaos: Chaos) -> None:
    chaos.set(Upstream.OPENAI, Latency(seconds=1.5))

    report = await run_load(service_url, rps=20, duration=1, max_in_flight=2)

    assert report.sent + report.dropped == 20
    assert report.sent >= 2
    assert report.dropped > 0


async def test_without_a_duration_it_runs_until_stopped(service_url: str) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(1.0, stop.set)

    report = await run_load(service_url, rps=10, duration=None, stop=stop)

    assert report.sent >= 1
    assert report.ok == report.sent


async def test_a_service_that_is_not_there_is_counted_as_errors() -> None:
    report = await run_load(f"http://127.0.0.1:{find_free_port()}", rps=10, duration=0.5)

    assert report.sent == 5
    assert report.ok == 0
    assert report.by_error == {"ConnectError": 5}


def test_the_command_line_prints_a_json_report(service_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "demo.load", "--url", service_url, "--rps", "10", "--duration", "1s", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    report = json.loads(result.stdout)
    assert report["sent"] == 10
    assert report["ok"] == 10
    assert report["server_errors"] == 0
    assert report["by_served_by"] == {"openai": 10}
    assert "sent=" in result.stderr  # the progress line


@pytest.mark.parametrize(
    "command", [["breakerpanel.cli", "load"], ["demo.load"]], ids=["breakerpanel load", "demo.load"]
)
def test_ctrl_c_ends_the_load_with_its_report(service_url: str, command: list[str]) -> None:
    """Ctrl-C (SIGINT) stops sending, waits for the answers due and reports them, as the end of
    the duration does: ``breakerpanel load`` used to die with 130 and no report."""
    process = subprocess.Popen(
        [sys.executable, "-m", *command, "--url", service_url, "--rps", "5", "--duration", "60s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        progress = process.stderr if command == ["demo.load"] else process.stdout
        assert progress is not None
        while "sent=" not in (line := progress.readline()):  # a progress line: it is running
            assert line, "the load ended before sending anything"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()

    assert process.returncode == 0, out + err
    if command == ["demo.load"]:
        assert "sent=" in err
    else:
        [done] = [line for line in out.splitlines() if line.startswith("done:")]
        assert " ok=" in done
        assert "errors=0" in done


@pytest.mark.parametrize("rps", [0, -1, float("nan"), float("inf")])
async def test_the_rate_must_be_positive(rps: float) -> None:
    # NaN or inf used to pass: no request was ever due, or all at once, and the loop never yielded
    # (100% CPU, deaf to Ctrl-C and SIGTERM).
    with pytest.raises(ValueError, match="rps"):
        await run_load("http://127.0.0.1:9", rps=rps, duration=1)


@pytest.mark.parametrize("command", [["breakerpanel.cli", "load"], ["demo.load"]], ids=["breakerpanel", "demo"])
@pytest.mark.parametrize("rps", ["nan", "inf", "0", "x"])
def test_the_command_lines_refuse_a_rate_that_is_not_a_positive_number(command: list[str], rps: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *command, "--url", "http://127.0.0.1:9", "--rps", rps, "--duration", "1s"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "argument --rps:" in result.stderr
    assert "Traceback" not in result.stderr


def test_percentiles_and_the_progress_line() -> None:
    tally = Tally(latencies_ms=deque(maxlen=100))
    tally.sent = 102
    for i in range(1, 101):
        tally.answered("openai" if i % 2 else "anthropic", i / 1000)
    tally.failed("http_503", 0.2)
    tally.failed("ReadTimeout")

    report = tally.report("http://demo", 10, 10.25)

    assert report.p50_ms == pytest.approx(51.5)  # the window keeps the last 100: 2..100 ms and 200 ms
    assert report.p99_ms == pytest.approx(101.0)
    assert report.server_errors == 1
    assert report.errors == 2
    assert report.line() == (
        "  10.2s sent=102 ok=100 [anthropic=50 openai=50] errors=2 (ReadTimeout=1 http_503=1) "
        "dropped=0 p50=52ms p99=101ms"
    )


def test_questions_are_a_fixed_list() -> None:
    assert len(QUESTIONS) == len(set(QUESTIONS)) >= 10
    assert all(0 < len(q) <= 1000 for q in QUESTIONS)  # what /v1/ask accepts
