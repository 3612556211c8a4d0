"""``breakerpanel up`` and ``down`` for real: every service as a local process on free ports.

The CLI runs in child processes, as a user runs it, with a private state folder (tests/stack/stackcli.py);
the module's stack is shared by its tests (starting it takes a few seconds) and the last test takes it
down and checks that nothing it started is left. Prometheus, Alertmanager and Redis are the Debian
binaries: missing, the tests skip locally and fail under CI.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from demo.stack.paths import REPO_ROOT
from demo.stack.procs import group_members
from tests.servers import wait_until

from .stackcli import cli, free_service_ports, live_processes_of, port_args, port_free, require_binaries


@dataclass(frozen=True)
class Stack:
    state_dir: Path
    ports: dict[str, int]
    output: str

    def state(self) -> dict[str, object]:
        state: dict[str, object] = json.loads((self.state_dir / "state.json").read_text())
        return state

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_binaries()
    ports = free_service_ports(("prometheus", "alertmanager", "grafana", "redis", "upstreams", "demo", "incident-bot"))
    state_dir = tmp_path_factory.mktemp("stack")
    result = cli(state_dir, "up", "--fast", *port_args(ports))
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        yield Stack(state_dir, ports, result.stdout)
    finally:
        cli(state_dir, "down")  # a safety net: the last test has already taken it down


def test_up_prints_each_url_when_ready(stack: Stack) -> None:
    for name in ("prometheus", "alertmanager", "upstreams", "demo", "incident-bot"):
        assert f"{stack.url(name)}/" in stack.output, name
    assert f"redis://127.0.0.1:{stack.ports['redis']}" in stack.output
    assert "load          ready" in stack.output
    assert "postgres      not started" in stack.output


def test_every_url_answers(stack: Stack) -> None:
    for name, path in (
        ("prometheus", "/-/ready"),
        ("alertmanager", "/-/ready"),
        ("upstreams", "/chaos"),
        ("demo", "/health/ready"),
        ("demo", "/metrics"),
        ("incident-bot", "/readyz"),
        ("incident-bot", "/metrics"),
    ):
        response = httpx.get(stack.url(name) + path, timeout=5, trust_env=False)
        assert response.status_code == 200, (name, path, response.text)
    with socket.create_connection(("127.0.0.1", stack.ports["redis"]), timeout=2) as conn:
        conn.sendall(b"PING\r\n")
        assert conn.recv(16).startswith(b"+PONG")


def test_logs_are_in_one_folder(stack: Stack) -> None:
    logs = {p.name for p in (stack.state_dir / "logs").iterdir()}
    assert logs == {f"{name}.log" for name in _started(stack)}


def _started(stack: Stack) -> list[str]:
    processes = stack.state()["processes"]
    assert isinstance(processes, list)
    return [str(p["name"]) for p in processes]


def test_prometheus_scrapes_demo_bot_and_itself_with_the_rules(stack: Stack) -> None:
    def all_up() -> dict[str, str] | None:
        body = httpx.get(stack.url("prometheus") + "/api/v1/targets", timeout=5, trust_env=False).json()
        health = {t["labels"]["job"]: t["health"] for t in body["data"]["activeTargets"]}
        return health if set(health.values()) == {"up"} else None

    assert set(wait_until(all_up, timeout=20, what="every target up")) == {"prometheus", "demo", "incident-bot"}
    groups = httpx.get(stack.url("prometheus") + "/api/v1/rules", timeout=5, trust_env=False).json()["data"]["groups"]
    assert {g["file"] for g in groups} == {str(REPO_ROOT / "alert_rules/generated/breakerpanel.rules.yaml")}


def test_an_alert_reaches_the_bot_with_the_bearer_token(stack: Stack) -> None:
    """Alertmanager's route, URL and token file, rendered from the compose files, reach the bot."""
    bot_log = (stack.state_dir / "logs" / "incident-bot.log").read_text()
    # A developer's .env with real credentials must not get a page out of a test.
    assert "DRY RUN" in bot_log, "the test stack's bot is not in dry run (credentials in .env?)"
    alert = {
        "labels": {
            "alertname": "CircuitBreakerOpen",
            "job": "stack-test",
            "circuit_breaker_name": "openai",
            "circuit_breaker_level": "service",
            "severity": "critical",
        },
        "annotations": {"summary": "posted by tests/stack"},
    }
    response = httpx.post(stack.url("alertmanager") + "/api/v2/alerts", json=[alert], timeout=5, trust_env=False)
    assert response.status_code == 200

    def incident() -> dict[str, object] | None:
        incidents = httpx.get(stack.url("incident-bot") + "/v1/incidents", timeout=5, trust_env=False).json()
        items = incidents if isinstance(incidents, list) else incidents.get("incidents", [])
        return next((i for i in items if i["labels"].get("job") == "stack-test"), None)

    found = wait_until(incident, timeout=15, what="the incident in the bot")
    assert found["severity"] == "critical"


def test_chaos_trips_a_breaker_and_the_demo_keeps_answering(stack: Stack) -> None:
    """The tour: an OpenAI outage through the CLI opens its breaker; users still get answers."""
    result = cli(stack.state_dir, "chaos", "openai", "outage", "--for", "60s")
    assert result.returncode == 0, result.stderr
    assert "openai: outage" in result.stdout
    try:
        # New questions, so that no cached answer spares the call to OpenAI.
        for number in range(12):
            question = {"question": f"stack test {time.time_ns()} #{number}: what does a breaker do?"}
            answer = httpx.post(stack.url("demo") + "/v1/ask", json=question, timeout=30, trust_env=False)
            assert answer.status_code == 200, answer.text

        seen: list[str] = []

        def openai_open() -> str | None:
            seen.append(cli(stack.state_dir, "status").stdout)
            # The service breaker or one of its endpoints' (which trips first is the demo's business).
            return seen[-1] if re.search(r"\n\s+openai(\.\w+)?: open\n", seen[-1]) else None

        try:
            status = wait_until(openai_open, timeout=30, interval=0.5, what="the openai breaker open")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; last status:\n{seen[-1]}") from None
        assert "openai: outage (mode=error)" in status
    finally:
        assert cli(stack.state_dir, "chaos", "all", "clear").returncode == 0


def test_up_again_reports_instead_of_starting_twice(stack: Stack) -> None:
    before = stack.state()
    result = cli(stack.state_dir, "up", "--fast", *port_args(stack.ports))
    assert result.returncode == 0, result.stderr
    assert "already running" in result.stdout
    assert stack.state() == before


def test_down_leaves_no_process_behind(stack: Stack) -> None:
    """Last in the module: takes the shared stack down."""
    state = stack.state()
    processes = state["processes"]
    assert isinstance(processes, list)
    assert len(processes) == 7
    assert len(live_processes_of(stack.state_dir)) >= 7

    result = cli(stack.state_dir, "down")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(" stopped (process group ") == 7, result.stdout
    for process in processes:
        assert group_members(process["pid"], started_at_or_after=process["start_ticks"]) == [], process["name"]
    assert live_processes_of(stack.state_dir) == []
    ports = [p for name, p in stack.ports.items() if name != "grafana"]
    assert all(port_free(port) for port in ports)
    assert not (stack.state_dir / "state.json").exists()
    again = cli(stack.state_dir, "down")
    assert again.returncode == 0
    assert "nothing to stop" in again.stdout


def test_a_taken_port_stops_up_before_anything_starts(tmp_path: Path, free_ports: dict[str, int]) -> None:
    require_binaries()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", free_ports["prometheus"]))
        holder.listen()
        result = cli(tmp_path, "up", *port_args(free_ports))
    assert result.returncode == 1
    assert f"port {free_ports['prometheus']} (prometheus) is in use" in result.stderr
    assert "--port prometheus=N" in result.stderr
    assert live_processes_of(tmp_path) == []
    assert not (tmp_path / "state.json").exists()


def test_a_service_failing_to_start_stops_those_already_started(tmp_path: Path, free_ports: dict[str, int]) -> None:
    """A broken rule file makes Prometheus exit at start, after the bot and Alertmanager are up."""
    require_binaries()
    broken = tmp_path / "broken.rules.yaml"
    broken.write_text("groups:\n  - name: broken\n    rules:\n      - alert: X\n        expr: rate(\n")
    started = time.monotonic()
    result = cli(tmp_path / "state", "up", "--rule-file", str(broken), *port_args(free_ports))
    assert result.returncode == 1
    assert "prometheus exited with code" in result.stderr
    assert "broken.rules.yaml" in result.stderr  # the log tail says why
    assert "incident-bot  ready" in result.stdout
    assert live_processes_of(tmp_path / "state") == []
    assert not (tmp_path / "state" / "state.json").exists()
    assert time.monotonic() - started < 60
