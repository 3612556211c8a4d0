"""``breakerpanel chaos`` and ``status`` driving the real fake upstreams over HTTP."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from demo.cli import main
from demo.stack.procs import process_info
from demo.stack.state import STATE_FILE, ProcessRecord, StackState, save_state
from demo.upstreams import Chaos, UpstreamServer, create_app
from demo.upstreams.chaos import ErrorRate, Outage, Upstream


@pytest.fixture
def chaos() -> Chaos:
    return Chaos(seed=1)


@pytest.fixture
def upstreams(chaos: Chaos) -> Iterator[str]:
    with UpstreamServer(create_app(chaos=chaos)) as server:
        yield server.url


def _chaos(url: str, *args: str) -> int:
    return main(["chaos", *args, "--url", url])


def test_outage_for_a_while(upstreams: str, chaos: Chaos, capsys: pytest.CaptureFixture[str]) -> None:
    assert _chaos(upstreams, "openai", "outage", "--for", "60s") == 0
    state = chaos.state(Upstream.OPENAI)
    assert isinstance(state.fault, Outage)
    assert state.fault.mode == "error"
    assert state.expires_in_s is not None
    assert 55 < state.expires_in_s <= 60
    assert "openai: outage (mode=error), clears in 60s" in capsys.readouterr().out


def test_fault_options_reach_the_server(upstreams: str, chaos: Chaos) -> None:
    assert _chaos(upstreams, "anthropic", "error-rate", "--rate", "0.25", "--status", "529") == 0
    fault = chaos.state(Upstream.ANTHROPIC).fault
    assert isinstance(fault, ErrorRate)
    assert (fault.rate, fault.status, fault.for_s) == (0.25, 529, None)


def test_server_side_validation_names_the_option(
    upstreams: str, chaos: Chaos, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _chaos(upstreams, "openai", "error_rate") == 1
    assert "--rate: Field required" in capsys.readouterr().err
    assert _chaos(upstreams, "qdrant", "slow_stream", "--chunk-delay", "1s") == 1
    assert "qdrant has no streaming endpoints" in capsys.readouterr().err
    assert chaos.state(Upstream.OPENAI).fault is None
    assert chaos.state(Upstream.QDRANT).fault is None


def test_show_and_clear(upstreams: str, chaos: Chaos, capsys: pytest.CaptureFixture[str]) -> None:
    chaos.set(Upstream.QDRANT, Outage(mode="reset"))
    chaos.set(Upstream.OPENAI, Outage())
    assert _chaos(upstreams) == 0
    shown = capsys.readouterr().out
    assert "qdrant: outage (mode=reset), until cleared" in shown
    assert "anthropic: healthy" in shown
    assert _chaos(upstreams, "qdrant", "clear") == 0
    assert chaos.state(Upstream.QDRANT).fault is None
    assert chaos.state(Upstream.OPENAI).fault is not None
    assert _chaos(upstreams, "all", "clear") == 0
    assert chaos.state(Upstream.OPENAI).fault is None


def test_unreachable_upstreams_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert _chaos("http://127.0.0.1:9", "openai", "outage") == 1
    assert "cannot reach the fake upstreams at http://127.0.0.1:9" in capsys.readouterr().err


def test_status_shows_the_faults_of_a_running_stack(
    upstreams: str, chaos: Chaos, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A state file naming the in-process upstreams (served by this very process): status checks
    the process is alive, probes the port and reads the faults from it."""
    port = int(upstreams.rsplit(":", 1)[1])
    me = process_info(os.getpid())
    assert me is not None
    record = ProcessRecord("upstreams", me.pid, me.start_ticks, port, f"{upstreams}/docs", "log", ["python"])
    save_state(StackState(state_dir=str(tmp_path), started_at=0.0, processes=[record], skipped={"qdrant": "stand-in"}))
    chaos.set(Upstream.OPENAI, Outage())
    assert main(["status", "--state-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"upstreams\s+up\s+{re.escape(upstreams)}/docs", out)
    assert re.search(r"qdrant\s+stand-in", out)
    assert "openai: outage (mode=error), until cleared" in out


@pytest.mark.parametrize(
    ("write", "reason"),
    [
        (lambda p: p.write_text("garbage"), "Expecting value"),
        (lambda p: p.write_text('{"state_dir": "/tmp"}'), "no 'processes'"),
        (lambda p: p.mkdir(), "Is a directory"),
    ],
    ids=["not JSON", "no processes", "a directory"],
)
@pytest.mark.parametrize("command", [["status"], ["down"], ["chaos"], ["load", "--duration", "1s"]])
def test_an_unreadable_state_file_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], write: Any, reason: str, command: list[str]
) -> None:
    """A state file that is not the stack's (hand-edited, cut short, a directory): each command
    that reads it says which file, why, and what to do, where it used to end in a traceback."""
    path = tmp_path / STATE_FILE
    write(path)
    assert main([command[0], "--state-dir", str(tmp_path), *command[1:]]) == 1
    err = capsys.readouterr().err
    assert f"breakerpanel {command[0]}: {path}: cannot read the stack's state (" in err
    assert reason in err
    assert "remove it" in err
