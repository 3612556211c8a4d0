"""The real-server helpers: each server starts, answers, crashes or stops on request, comes back on the same port,
and leaves no process or directory behind. Later suites build fault-injection tests on exactly these behaviours.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tests import servers
from tests.servers import (
    AlertmanagerServer,
    PostgresServer,
    PrometheusAPIError,
    PrometheusServer,
    RedisServer,
    ServerPool,
    ServerStartError,
    find_free_port,
    require_binary,
    run_amtool,
    run_promtool,
    wait_until,
)

# Registers the fixtures (server_pool, redis_server, ...) the way a conftest would; pytester runs an inner
# session to check what a failing test's report shows.
pytest_plugins = ("tests.servers", "pytester")

METRICS = b"""\
# HELP app_requests_total Requests served.
# TYPE app_requests_total counter
app_requests_total{route="/"} 42
"""

RULES: dict[str, Any] = {
    "groups": [
        {
            "name": "app",
            "rules": [
                {"record": "app:requests:sum", "expr": "sum(app_requests_total)"},
                {"alert": "AppHasRequests", "expr": "app_requests_total > 0", "labels": {"severity": "page"}},
            ],
        }
    ]
}


# --------------------------------------------------------------------------------------------------------
# Tiny local HTTP servers: a scrape target and a webhook receiver


class _QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keep request logs out of the test output."""


class _MetricsHandler(_QuietHandler):
    def do_GET(self) -> None:
        if self.path != "/metrics":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(METRICS)))
        self.end_headers()
        self.wfile.write(METRICS)


class Webhook:
    """Collects Alertmanager webhook payloads in a queue, as our incident bot would receive them."""

    def __init__(self, address: str, received: queue.Queue[dict[str, Any]]) -> None:
        self.url = f"http://{address}/alerts"
        self.received = received


@contextmanager
def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _address(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"{host!s}:{port}"


@pytest.fixture(scope="module")
def metrics_target() -> Iterator[str]:
    with _serve(_MetricsHandler) as server:
        yield _address(server)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    received: queue.Queue[dict[str, Any]] = queue.Queue()

    class Handler(_QuietHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.put(json.loads(body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    with _serve(Handler) as server:
        yield Webhook(_address(server), received)


def _alertmanager_config(webhook_url: str) -> dict[str, Any]:
    return {
        "route": {
            "receiver": "bot",
            "group_by": ["alertname"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [{"name": "bot", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}],
    }


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


# --------------------------------------------------------------------------------------------------------
# Ports and binaries


def test_find_free_port_returns_a_bindable_loopback_port() -> None:
    port = find_free_port()
    udp_port = find_free_port(udp=True)
    assert 1024 < port < 65536
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", udp_port))


def test_require_binary_returns_an_absolute_path() -> None:
    path = require_binary("redis-server")
    assert Path(path).is_absolute()
    assert os.access(path, os.X_OK)
    assert require_binary(path) == path


def test_require_binary_takes_postgres_binaries_from_the_highest_versioned_dir() -> None:
    initdb = Path(require_binary("initdb"))
    postgres = Path(require_binary("postgres"))
    assert initdb.parent == postgres.parent  # never mix versions
    versions = sorted(servers.POSTGRES_LIB_DIR.glob("*/bin"), key=servers._version_key)
    if versions:
        assert initdb.parent == versions[-1]


@pytest.mark.parametrize("ci", [None, "", "0", "false", "no"])
def test_require_binary_skips_locally_naming_the_package(
    ci: str | None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match=r"redis-cli.*'redis-server'"):
        require_binary("redis-cli")


@pytest.mark.parametrize("ci", ["1", "true", "yes", "TRUE"])
def test_require_binary_fails_in_ci_naming_the_package(
    ci: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match=r"promtool.*'prometheus'"):
        require_binary("promtool")
    with pytest.raises(pytest.fail.Exception, match="no known Debian package"):
        require_binary("no-such-binary-anywhere")


def test_binary_package_mapping() -> None:
    assert servers.BINARY_PACKAGES["amtool"] == "prometheus-alertmanager"
    assert servers.BINARY_PACKAGES["pg_ctl"] == "postgresql"
    assert servers.BINARY_PACKAGES["redis-cli"] == "redis-server"


# --------------------------------------------------------------------------------------------------------
# Redis


async def test_redis_kill_refuses_connections_and_restarts_empty_on_the_same_port(redis_server: RedisServer) -> None:
    port = redis_server.port
    assert redis_server.url == f"redis://127.0.0.1:{port}/0"
    client = aioredis.Redis.from_url(redis_server.url, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    try:
        assert await client.ping()
        await client.set("key", "value")
        assert await client.get("key") == b"value"

        redis_server.kill()
        assert not redis_server.is_running()
        assert not redis_server.ping()
        assert _refused(port)
        with pytest.raises(redis.exceptions.ConnectionError):
            await client.get("key")

        redis_server.restart()
        assert redis_server.port == port
        assert redis_server.is_running()
        assert await client.get("key") is None  # no persistence: a crash loses everything
    finally:
        await client.aclose()


async def test_redis_extra_args_and_context_manager() -> None:
    with RedisServer(extra_args=["--notify-keyspace-events", "KEA"]) as server:
        directory = server.directory
        client = aioredis.Redis.from_url(server.url)
        try:
            assert await client.config_get("notify-keyspace-events") == {"notify-keyspace-events": "AKE"}
            assert await client.config_get("save") == {"save": ""}
            assert await client.config_get("bind") == {"bind": "127.0.0.1"}
        finally:
            await client.aclose()
        assert server.log_path.parent == directory
    assert not server.is_running()
    assert not directory.exists()


def test_redis_retries_on_another_port_when_its_port_was_taken(
    monkeypatch: pytest.MonkeyPatch, server_pool: ServerPool
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        real = servers.find_free_port
        monkeypatch.setattr(servers, "find_free_port", lambda udp=False: next(ports, None) or real(udp=udp))
        server = server_pool.start(RedisServer())
        assert server.port != taken
        assert server.ping()
        assert "Address already in use" in server.log_tail()


def test_redis_startup_failure_raises_with_the_log_tail(server_pool: ServerPool) -> None:
    with pytest.raises(ServerStartError, match=r"(?s)exited with code.*no-such-directive"):
        server_pool.start(RedisServer(extra_args=["--no-such-directive", "1"]))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        pinned = RedisServer(port=squatter.getsockname()[1])  # a fixed port is never swapped for another
        with pytest.raises(ServerStartError, match=r"(?i)address already in use"):
            server_pool.start(pinned)
    assert not pinned.is_running()


def test_stop_escalates_to_sigkill_when_the_server_hangs(redis_server: RedisServer) -> None:
    pid = redis_server.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # a stopped process cannot act on SIGTERM
    started = time.monotonic()
    redis_server.stop(timeout=0.5)
    assert not redis_server.is_running()
    assert time.monotonic() - started < 5


def test_atexit_safety_net_closes_forgotten_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers, "_LIVE", set())  # only this test's server, not the module's Prometheus
    server = RedisServer().start()
    directory = server.directory
    servers._close_leftovers()
    assert not server.is_running()
    assert not directory.exists()


# --------------------------------------------------------------------------------------------------------
# PostgreSQL


async def test_postgres_immediate_stop_refuses_then_restarts_with_data(postgres_server: PostgresServer) -> None:
    port = postgres_server.port
    assert postgres_server.dsn == f"postgresql://postgres@127.0.0.1:{port}/postgres"
    conn = await asyncpg.connect(postgres_server.dsn)
    try:
        assert await conn.fetchval("SELECT 1") == 1
        await conn.execute("CREATE TABLE kept (id int PRIMARY KEY)")
        await conn.execute("INSERT INTO kept VALUES (1), (2)")
    finally:
        await conn.close()

    orders_dsn = postgres_server.create_database("orders")
    assert orders_dsn.endswith(f":{port}/orders")
    conn = await asyncpg.connect(orders_dsn)
    try:
        assert await conn.fetchval("SELECT current_database()") == "orders"
    finally:
        await conn.close()

    postgres_server.stop("immediate")
    assert not postgres_server.is_running()
    with pytest.raises(ConnectionRefusedError):
        await asyncpg.connect(postgres_server.dsn, timeout=2)

    postgres_server.restart()
    assert postgres_server.port == port
    conn = await asyncpg.connect(postgres_server.dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM kept") == 2
    finally:
        await conn.close()


def test_postgres_kill_then_start_recovers_committed_data(postgres_server: PostgresServer) -> None:
    postgres_server.execute("CREATE TABLE t (x int); INSERT INTO t VALUES (7)")
    postgres_server.kill()
    assert not postgres_server.is_running()
    assert _refused(postgres_server.port)
    postgres_server.start()
    assert postgres_server.execute("SELECT x FROM t").strip() == "7"


async def test_postgres_max_connections_can_be_exhausted(server_pool: ServerPool) -> None:
    server = server_pool.start(PostgresServer(max_connections=3))
    conns = [await asyncpg.connect(server.dsn) for _ in range(3)]
    try:
        with pytest.raises(asyncpg.TooManyConnectionsError):
            await asyncpg.connect(server.dsn)
    finally:
        for conn in conns:
            await conn.close()


def test_postgres_close_removes_the_data_dir() -> None:
    with PostgresServer() as server:
        assert (server.data_dir / "PG_VERSION").exists()
        directory = server.directory
    assert not directory.exists()


# --------------------------------------------------------------------------------------------------------
# Prometheus and promtool


@pytest.fixture(scope="module")
def prometheus(metrics_target: str, module_server_pool: ServerPool) -> PrometheusServer:
    """One Prometheus for the module: its first scrape takes about 5 s. The target outlives it."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "app", "static_configs": [{"targets": [metrics_target]}]}],
    }
    server = PrometheusServer(config, rules={"app.rules.yml": RULES}, extra_args=["--rules.alert.resend-delay=1s"])
    return module_server_pool.start(server)


def test_prometheus_scrapes_the_target_and_answers_queries(prometheus: PrometheusServer) -> None:
    target = prometheus.wait_for_target_up("app", timeout=20)
    assert target["health"] == "up"
    [sample] = prometheus.query('app_requests_total{job="app"}')
    assert sample["metric"]["route"] == "/"
    assert sample["value"][1] == "42"
    assert prometheus.query("1 + 1", time=datetime.now(UTC))[0]["value"][1] == "2"


def test_prometheus_invalid_query_raises_with_its_message(prometheus: PrometheusServer) -> None:
    with pytest.raises(PrometheusAPIError, match="parse error") as raised:
        prometheus.query("sum(")
    assert raised.value.error_type == "bad_data"


def test_prometheus_loads_rule_files_and_fires_alerts(prometheus: PrometheusServer) -> None:
    [group] = prometheus.rules()
    assert group["name"] == "app"
    assert [rule["name"] for rule in group["rules"]] == ["app:requests:sum", "AppHasRequests"]
    alert = prometheus.wait_for_alert("AppHasRequests", "firing", timeout=15)
    assert alert["labels"]["severity"] == "page"
    wait_until(lambda: prometheus.query("app:requests:sum"), timeout=10, what="recording rule evaluated")


def test_prometheus_query_range(prometheus: PrometheusServer) -> None:
    prometheus.wait_for_target_up("app", timeout=20)
    now = time.time()
    [series] = prometheus.query_range("app_requests_total", now - 30, now, step=1)
    assert {value for _, value in series["values"]} == {"42"}


def test_prometheus_reload_accepts_text_config_and_rejects_a_bad_one(
    prometheus: PrometheusServer, metrics_target: str
) -> None:
    text = f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: [app.rules.yml]
scrape_configs:
  - job_name: app
    static_configs: [{{targets: ["{metrics_target}"]}}]
"""
    prometheus.reload(text)
    with pytest.raises(RuntimeError, match=r"(?s)reload.*500"):
        prometheus.reload("scrape_configs: [{job_name: app, bogus_field: 1}]\n")
    prometheus.reload(text)  # running on the last good config all along
    assert prometheus.rules()[0]["name"] == "app"


def test_promtool_checks_and_tests_rules(tmp_path: Path) -> None:
    good = tmp_path / "good.rules.yml"
    good.write_text(json.dumps(RULES))
    result = run_promtool("check", "rules", good)
    assert result.returncode == 0, result.stderr
    assert "SUCCESS: 2 rules found" in result.stdout

    bad = tmp_path / "bad.rules.yml"
    bad.write_text('groups: [{name: bad, rules: [{alert: Broken, expr: "sum("}]}]\n')
    result = run_promtool("check", "rules", bad)
    assert result.returncode == 1
    assert "parse error" in result.stderr

    unit = tmp_path / "unit.yml"
    unit.write_text(
        json.dumps(
            {
                "rule_files": [good.name],
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": [{"series": 'app_requests_total{route="/"}', "values": "1 2 3"}],
                        "alert_rule_test": [
                            {
                                "eval_time": "2m",
                                "alertname": "AppHasRequests",
                                "exp_alerts": [{"exp_labels": {"severity": "page", "route": "/"}}],
                            }
                        ],
                    }
                ],
            }
        )
    )
    result = run_promtool("test", "rules", unit)
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------------------------------------
# Alertmanager


def test_alertmanager_routes_a_posted_alert_to_the_webhook(webhook: Webhook, server_pool: ServerPool) -> None:
    alertmanager = server_pool.start(AlertmanagerServer(_alertmanager_config(webhook.url)))
    assert alertmanager.status()["cluster"]["status"] == "disabled"
    alertmanager.post_alerts([{"labels": {"alertname": "BreakerOpen", "breaker": "llm"}, "annotations": {"x": "y"}}])

    payload = webhook.received.get(timeout=10)
    assert payload["status"] == "firing"
    assert payload["receiver"] == "bot"
    [alert] = payload["alerts"]
    assert alert["labels"] == {"alertname": "BreakerOpen", "breaker": "llm"}
    assert [a["labels"]["breaker"] for a in alertmanager.alerts(['alertname="BreakerOpen"'])] == ["llm"]

    alertmanager.reload()
    with pytest.raises(RuntimeError, match="500"):
        alertmanager.reload({"route": {"receiver": "missing"}, "receivers": []})

    port = alertmanager.port
    alertmanager.kill()
    assert not alertmanager.is_running()
    assert _refused(port)


def test_alertmanager_run_amtool_checks_config(tmp_path: Path, webhook: Webhook) -> None:
    config = tmp_path / "alertmanager.yml"
    config.write_text(json.dumps(_alertmanager_config(webhook.url)))
    result = run_amtool("check-config", config)
    assert result.returncode == 0, result.stderr


def test_alertmanager_ha_pair_gossips_and_delivers(webhook: Webhook, server_pool: ServerPool) -> None:
    first, second = server_pool.start_ha_pair(_alertmanager_config(webhook.url))
    assert first.cluster_address != second.cluster_address
    for alertmanager in (first, second):
        cluster = alertmanager.status()["cluster"]
        assert cluster["status"] == "ready"
        assert len(cluster["peers"]) == 2
    assert {p["name"] for p in first.cluster_peers()} == {p["name"] for p in second.cluster_peers()}

    now = datetime.now(UTC)
    silence = {
        "matchers": [{"name": "alertname", "value": "Muted", "isRegex": False, "isEqual": True}],
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(hours=1)).isoformat(),
        "createdBy": "test_servers",
        "comment": "silences are gossiped",
    }
    silence_id = first.http.post("/api/v2/silences", json=silence).json()["silenceID"]

    def replicated() -> bool:
        return any(s["id"] == silence_id for s in second.http.get("/api/v2/silences").json())

    wait_until(replicated, timeout=5, what="silence replicated to the second alertmanager")

    alert = {"labels": {"alertname": "BreakerOpen", "breaker": "db"}}
    first.post_alerts([alert])
    second.post_alerts([alert])
    payload = webhook.received.get(timeout=10)
    assert payload["alerts"][0]["labels"]["breaker"] == "db"


# --------------------------------------------------------------------------------------------------------
# Failure reports


def test_a_failing_test_report_includes_the_server_log(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_inner="""
        pytest_plugins = ["tests.servers"]

        def test_fails(redis_server):
            assert False
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(failed=2)  # once per Redis version
    result.stdout.fnmatch_lines(["*redis-server log (*redis-server.log)*", "*Ready to accept connections*"])


def test_http_client_ignores_proxy_settings(monkeypatch: pytest.MonkeyPatch, server_pool: ServerPool) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "")
    alertmanager = server_pool.start(AlertmanagerServer(_alertmanager_config("http://127.0.0.1:9/")))
    assert isinstance(alertmanager.http, httpx.Client)
    assert alertmanager.status()["cluster"]["status"] == "disabled"
