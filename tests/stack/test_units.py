"""The stack's small parts: durations, .env and interpolation, /proc identity, the breaker tree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from demo.stack.dotenv import InterpolationError, interpolate, read_dotenv
from demo.stack.procs import group_members, process_info
from demo.stack.rewrite import Endpoint, Rewriter
from demo.stack.status import breaker_lines


def test_interpolation_like_compose() -> None:
    variables = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d}/${EMPTY:-d}/${UNSET:-d}/${EMPTY-d}/${UNSET-d}/$SET/$$SET", variables) == (
        "x/d/d//d/x/$SET"
    )
    with pytest.raises(InterpolationError):
        interpolate("${SET:?required}", variables)


def test_dotenv(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("# comment\n\nA=1\nexport B='two words'\nC=\"q\"\nD=3 # trailing\n")
    assert read_dotenv(env) == {"A": "1", "B": "two words", "C": "q", "D": "3"}
    assert read_dotenv(tmp_path / "missing") == {}
    env.write_text("not a pair\n")
    with pytest.raises(ValueError, match=":1:"):
        read_dotenv(env)


def test_rewriter_maps_hosts_ports_and_paths() -> None:
    rewriter = Rewriter(
        {("postgres", 5432): Endpoint("postgres", None), ("upstreams", 8600): Endpoint("upstreams", 18600)},
        {"/etc/app": Path("/repo/deploy/app"), "/etc/app/rules": Path("/repo/rules")},
    )
    assert rewriter.text("http://upstreams:8600/v1") == ("http://127.0.0.1:18600/v1", frozenset({"upstreams"}))
    assert rewriter.text("postgresql://u:p@postgres:5432/db") == ("postgresql://u:p@postgres:5432/db", {"postgres"})
    assert rewriter.text("http://other:8600") == ("http://other:8600", frozenset())
    assert rewriter.argument("--config.file=/etc/app/x.yml") == "--config.file=/repo/deploy/app/x.yml"
    assert rewriter.path("/etc/app/rules/*.yaml") == "/repo/rules/*.yaml"  # the longest prefix wins
    assert rewriter.path("/etc/application") == "/etc/application"


def test_process_identity_survives_only_for_the_same_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        info = process_info(child.pid)
        assert info is not None
        assert info.pgid == child.pid
        assert not info.zombie
        assert [m.pid for m in group_members(child.pid, started_at_or_after=info.start_ticks)] == [child.pid]
        assert group_members(child.pid, started_at_or_after=info.start_ticks + 1) == []
        mine = process_info(os.getpid())
        assert mine is not None
        assert mine.start_ticks <= info.start_ticks
    finally:
        child.kill()
        child.wait()
    assert process_info(child.pid) is None


def test_breaker_tree_from_either_shape() -> None:
    nested = {
        "status": "degraded",
        "breakers": [{"name": "openai", "state": "open", "children": [{"name": "chat", "state": "open"}]}],
    }
    assert breaker_lines(nested) == ["openai: open", "  chat: open"]
    keyed = {"breakers": {"qdrant": {"state": "closed", "endpoints": {"search": {"state": "half_open"}}}}}
    assert breaker_lines(keyed) == ["qdrant: closed", "  search: half_open"]
    assert breaker_lines({"status": "ok"}) == []
