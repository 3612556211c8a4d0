"""A real Prometheus scrapes an instrumented process through successes, failures, an open period
and a recovery; its HTTP API returns what happened."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from breakerpanel import BreakerConfig, BreakerRegistry, CircuitOpenError, State
from breakerpanel.exporter import BreakerTelemetry
from tests.servers import PrometheusServer, ServerPool, find_free_port, wait_until

SCRAPE = "1s"


@pytest.fixture
def stack(server_pool: ServerPool) -> Iterator[tuple[BreakerRegistry, PrometheusServer]]:
    registry = BreakerRegistry()
    registry.service("qdrant", BreakerConfig(minimum_calls=100), attributes={"db.system.name": "qdrant"})
    registry.endpoint(
        "qdrant.search",
        BreakerConfig(minimum_calls=4, sliding_window_size=4, wait_in_open=3.0, permitted_calls_in_half_open=2),
    )
    telemetry = BreakerTelemetry(registry, service_name="rag", environment="test", otlp=False)
    port = find_free_port()
    telemetry.start_http_server(port)
    config = {
        "global": {"scrape_interval": SCRAPE, "evaluation_interval": SCRAPE},
        "scrape_configs": [{"job_name": "rag", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
    }
    prometheus = server_pool.start(PrometheusServer(config))
    prometheus.wait_for_target_up("rag", timeout=20)
    try:
        yield registry, prometheus
    finally:
        telemetry.shutdown()


def value(prometheus: PrometheusServer, expr: str) -> float:
    result = prometheus.query(expr)
    assert len(result) == 1, f"{expr}: {result}"
    return float(result[0]["value"][1])


def eventually(prometheus: PrometheusServer, expr: str, expected: float, timeout: float = 10.0) -> None:
    def check() -> bool | None:
        result = prometheus.query(expr)
        return True if len(result) == 1 and float(result[0]["value"][1]) == expected else None

    wait_until(check, timeout=timeout, interval=0.2, what=f"{expr} == {expected}")


def test_an_outage_and_its_recovery_as_prometheus_sees_them(stack: tuple[BreakerRegistry, PrometheusServer]) -> None:
    registry, prometheus = stack
    search = registry["qdrant.search"]
    name = 'circuit_breaker_name="qdrant.search"'

    for _ in range(6):
        search.call(lambda: "ok")
    eventually(prometheus, f'circuit_breaker_state{{{name},circuit_breaker_state="closed"}}', 1)

    for _ in range(2):  # 2 failures in the last 4 calls: open
        with pytest.raises(ConnectionError):
            search.call(_refused)
    assert search.state is State.OPEN
    opened = time.monotonic()
    for _ in range(3):
        with pytest.raises(CircuitOpenError):
            search.call(lambda: "rejected")
    eventually(prometheus, f'circuit_breaker_state{{{name},circuit_breaker_state="open"}}', 1)
    assert value(prometheus, f'circuit_breaker_calls_total{{{name},circuit_breaker_outcome="failure"}}') == 2
    assert (
        value(
            prometheus,
            f'circuit_breaker_calls_total{{{name},circuit_breaker_outcome="rejected",circuit_breaker_rejection_reason="open"}}',
        )
        == 3
    )
    assert value(prometheus, f"circuit_breaker_failure_rate_threshold{{{name}}}") == 0.5
    # The service counts the endpoint's failures but, at 100 minimum calls, stays closed.
    assert value(prometheus, 'circuit_breaker_state{circuit_breaker_name="qdrant",circuit_breaker_state="closed"}') == 1
    # 2 breakers x 3 automatic states (the manual ones have series while a breaker is in one)
    assert value(prometheus, 'count(circuit_breaker_state{db_system_name="qdrant"})') == 6

    time.sleep(max(0.0, 3.0 - (time.monotonic() - opened)))
    search.call(lambda: "probe")
    search.call(lambda: "probe")
    assert search.state is State.CLOSED
    eventually(prometheus, f'circuit_breaker_state{{{name},circuit_breaker_state="closed"}}', 1)
    transitions = prometheus.query(f"circuit_breaker_transitions_total{{{name}}} > 0")
    seen = {(r["metric"]["circuit_breaker_previous_state"], r["metric"]["circuit_breaker_state"]) for r in transitions}
    assert seen == {("closed", "open"), ("open", "half_open"), ("half_open", "closed")}
    # The cycle's series exist at 0 before it happens, so increase() sees the breaker's first trip.
    trip = 'circuit_breaker_previous_state="closed",circuit_breaker_state="open"'
    trips = f"circuit_breaker_transitions_total{{{name},{trip}}}"
    assert value(prometheus, f"increase({trips}[1m])") >= 0.9
    assert value(prometheus, f"circuit_breaker_recovery_duration_seconds_count{{{name}}}") == 1
    assert value(prometheus, f"circuit_breaker_recovery_duration_seconds_sum{{{name}}}") >= 3.0
    # One duration histogram per breaker at the standard detail: 8 successes and 2 failures.
    assert value(prometheus, f"circuit_breaker_call_duration_seconds_count{{{name}}}") == 10
    median = value(
        prometheus,
        f"histogram_quantile(0.5, sum by (le) (circuit_breaker_call_duration_seconds_bucket{{{name}}}))",
    )
    assert 0 < median <= 0.01  # these calls return at once: within the first bucket
    assert value(prometheus, 'count(target_info{service_name="rag",deployment_environment_name="test"})') == 1


def _refused() -> str:
    raise ConnectionError("refused")
