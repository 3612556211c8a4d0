"""Shared state across three replica processes against a real redis-server (and a 3-node Redis Cluster).

Each replica is ``tests/breaker/store_driver.py`` in its own process: a breaker attached to a
RedisStore, driven over stdin. Waits for propagation are polls with generous deadlines; nothing
here asserts a duration.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import RedisCluster, RedisServer, require_binary

DRIVER = Path(__file__).with_name("store_driver.py")
ROOT = Path(__file__).resolve().parents[2]
PROPAGATION_DEADLINE = 10.0  # seconds: generous; the store's target is well under 0.1 s
REPLY_TIMEOUT = 30.0


class Replica:
    """One driver process; :meth:`send` writes a command and returns its JSON reply."""

    def __init__(self, url: str, *extra: str) -> None:
        self.args = [sys.executable, str(DRIVER), url, *extra]
        self._start()

    def _start(self) -> None:
        self.process = subprocess.Popen(
            self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.ready = self._reply()
        assert self.ready.get("ready"), self.ready

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)

    def _reply(self) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=REPLY_TIMEOUT)
        except queue.Empty:
            self.process.kill()
            _, err = self.process.communicate(timeout=10)
            raise AssertionError(f"replica did not answer; stderr:\n{err}") from None
        data: dict[str, Any] = json.loads(line)
        return data

    def send(self, command: str) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._reply()

    def wait_state(self, state: str, timeout: float = PROPAGATION_DEADLINE) -> bool:
        return bool(self.send(f"wait {state} {timeout}")["reached"])

    def restart(self) -> None:
        self.stop()
        self._start()

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.send("quit")
                self.process.wait(timeout=10)
            except Exception:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def start_replicas(url: str, *extra: str, count: int = 3) -> list[Replica]:
    # The first replica drives its calls async, the others sync: both paths share state alike.
    modes = ["async"] + ["sync"] * (count - 1)
    return [Replica(url, "--mode", mode, *extra) for mode in modes]


@pytest.fixture
def replicas_factory() -> Iterator[Any]:
    started: list[Replica] = []

    def factory(url: str, *extra: str, count: int = 3) -> list[Replica]:
        replicas = start_replicas(url, *extra, count=count)
        started.extend(replicas)
        return replicas

    yield factory
    for replica in started:
        replica.stop()


def _outage_opens_every_replica(replicas: list[Replica]) -> None:
    first, *others = replicas
    assert all(r.ready["state"] == "closed" for r in replicas)
    result = first.send("fail 10")
    assert result["errors"] == []
    assert result["state"] == "open"
    for replica in others:
        assert replica.wait_state("open"), "the open state did not reach every replica"
        assert replica.send("ok 3")["rejected"] == 3  # rejected without calling anything


def test_an_outage_seen_by_one_replica_opens_it_in_all(redis_server: RedisServer, replicas_factory: Any) -> None:
    _outage_opens_every_replica(replicas_factory(redis_server.url))


def test_the_same_outage_through_a_three_node_redis_cluster(redis_cluster: RedisCluster, replicas_factory: Any) -> None:
    replicas = replicas_factory(redis_cluster.url, "--cluster")
    _outage_opens_every_replica(replicas)
    # And back: a reset on one replica closes all of them.
    replicas[1].send("reset")
    for replica in replicas:
        assert replica.wait_state("closed")


def test_with_a_quorum_one_replica_alone_opens_only_itself(redis_server: RedisServer, replicas_factory: Any) -> None:
    first, second, third = replicas_factory(redis_server.url, "--quorum", "2")
    assert first.send("fail 10")["state"] == "open"
    # Several sync intervals pass: the others stay closed (one broken replica does not open all).
    assert not second.wait_state("open", timeout=1.5)
    assert third.send("state")["state"] == "closed"
    assert third.send("ok 5")["ok"] == 5
    # A second replica sees the outage: the quorum is met and every replica opens.
    assert second.send("fail 10")["state"] == "open"
    assert third.wait_state("open")
    assert first.send("state")["state"] == "open"


def test_redis_killed_mid_run_no_caller_error_and_resync(redis_server: RedisServer, replicas_factory: Any) -> None:
    first, second, third = replicas_factory(redis_server.url)
    assert first.send("ok 20")["errors"] == []
    redis_server.kill()
    for replica in (first, second, third):
        result = replica.send("ok 50")
        assert result["errors"] == []
        assert result["ok"] == 50
    # Each replica notices, and carries on with local state: an outage opens the one that sees it.
    for replica in (first, second, third):
        deadline = time.monotonic() + PROPAGATION_DEADLINE
        while replica.send("status")["available"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert replica.send("status")["available"] is False
    result = first.send("fail 10")
    assert result["errors"] == []
    assert result["state"] == "open"
    assert second.send("state")["state"] == "closed"
    # Redis returns (empty: no persistence). The stores reconnect and the pending opening is shared.
    redis_server.start()
    for replica in (first, second, third):
        deadline = time.monotonic() + PROPAGATION_DEADLINE
        while not replica.send("status")["available"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert replica.send("status")["available"] is True
    assert second.wait_state("open")
    assert third.wait_state("open")


def test_a_replica_restarting_during_an_outage_starts_open(redis_server: RedisServer, replicas_factory: Any) -> None:
    first, _second, third = replicas_factory(redis_server.url)
    assert first.send("fail 10")["state"] == "open"
    assert third.wait_state("open")
    third.restart()
    assert third.ready["state"] == "open"
    assert third.send("ok 3")["rejected"] == 3


def test_manual_states_propagate(redis_server: RedisServer, replicas_factory: Any) -> None:
    first, second, _third = replicas_factory(redis_server.url, count=3)
    first.send("force_open")
    assert second.wait_state("forced_open")
    second.send("reset")
    assert first.wait_state("closed")


def test_cluster_fixture_needs_redis_cli() -> None:
    assert require_binary("redis-cli")
