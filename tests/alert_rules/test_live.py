"""The generated rules in a real Prometheus, over what the real exporter emits: a breaker's outage
fires CircuitBreakerOpen (the warning at once, then the critical) and the fast error-budget burn
with the labels and annotations receivers see, topology labels included, and its recovery resolves
them. promtool's unit tests pin the rules' logic on hand-written series; this pins that those
series look like the exporter's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from breakerpanel import BreakerConfig, BreakerRegistry, CircuitOpenError, State
from breakerpanel.alert_rules import render
from breakerpanel.exporter import BreakerTelemetry
from breakerpanel.exporter.rules_config import RulesConfig
from tests.servers import PrometheusServer, ServerPool, find_free_port, wait_until

#: The committed configuration's shape with times a test can wait for.
CONFIG = RulesConfig.model_validate(
    {
        "slos": [{"name": "chat", "target": 0.99, "match": {"circuit_breaker.name": "openai[.]chat"}}],
        "alerts": {
            "open": {"for": "2s", "keep_firing_for": "2s"},
            "error_budget_burn": {"min_calls": 5},
        },
    }
)


@pytest.fixture
def stack(server_pool: ServerPool) -> Iterator[tuple[BreakerRegistry, PrometheusServer]]:
    registry = BreakerRegistry()
    registry.service("openai", BreakerConfig(minimum_calls=1000), attributes={"gen_ai.provider.name": "openai"})
    registry.endpoint(
        "openai.chat",
        BreakerConfig(minimum_calls=4, sliding_window_size=4, wait_in_open=8.0, permitted_calls_in_half_open=1),
        attributes={"gen_ai.operation.name": "chat"},
    )
    telemetry = BreakerTelemetry(registry, service_name="assistant", otlp=False)
    port = find_free_port()
    telemetry.start_http_server(port)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "assistant", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
    }
    prometheus = server_pool.start(PrometheusServer(config, rules={"breakerpanel.rules.yaml": render(CONFIG)}))
    prometheus.wait_for_target_up("assistant", timeout=20)
    try:
        yield registry, prometheus
    finally:
        telemetry.shutdown()


def firing(prometheus: PrometheusServer, name: str) -> list[dict[str, Any]]:
    return [a for a in prometheus.alerts() if a["labels"]["alertname"] == name and a["state"] == "firing"]


def opened(prometheus: PrometheusServer, severity: str) -> dict[str, Any] | None:
    """The one CircuitBreakerOpen alert of ``severity`` firing, if any."""
    alerts = [a for a in firing(prometheus, "CircuitBreakerOpen") if a["labels"]["severity"] == severity]
    assert len(alerts) <= 1, alerts
    return alerts[0] if alerts else None


def test_an_outage_fires_and_its_recovery_resolves(stack: tuple[BreakerRegistry, PrometheusServer]) -> None:
    registry, prometheus = stack
    chat = registry["openai.chat"]
    for _ in range(4):
        chat.call(lambda: "ok")
    time.sleep(1.5)  # a scrape of the healthy breaker first
    for _ in range(2):  # 2 failures in the last 4 calls: 50%, open
        with pytest.raises(ConnectionError):
            chat.call(_refused)
    assert chat.state is State.OPEN
    opened_at = time.monotonic()
    for _ in range(8):
        with pytest.raises(CircuitOpenError):
            chat.call(lambda: "rejected")

    warning = wait_until(lambda: opened(prometheus, "warning"), timeout=20, what="open warning")
    identity = {
        "job": "assistant",
        "circuit_breaker_name": "openai.chat",
        "circuit_breaker_level": "endpoint",
        "circuit_breaker_parent": "openai",
        "circuit_breaker_service": "openai",  # what Alertmanager's inhibit rules and the bot join on
        "gen_ai_provider_name": "openai",
        "gen_ai_operation_name": "chat",
    }
    assert warning["labels"] == {"alertname": "CircuitBreakerOpen", "severity": "warning", **identity}
    assert warning["annotations"]["summary"] == "Circuit breaker openai.chat is open."
    assert "on 1 instance(s)" in warning["annotations"]["description"]

    critical = wait_until(lambda: opened(prometheus, "critical"), timeout=20, what="open critical")
    # An endpoint in no tier: critical by its level.
    assert critical["labels"] == {"alertname": "CircuitBreakerOpen", "severity": "critical", **identity}
    assert critical["annotations"]["summary"] == "Circuit breaker openai.chat has been open for more than 2s."
    assert "on 1 instance(s)" in critical["annotations"]["description"]
    assert critical["annotations"]["dashboard_url"].endswith(
        "?var-job=assistant&var-level=endpoint&var-service=openai&var-breaker=openai.chat"
    )

    # 2 failures and 8 rejections in 14 calls: a burn far over 14.4 on both page windows.
    (burn,) = wait_until(
        lambda: (
            [a for a in firing(prometheus, "CircuitBreakerErrorBudgetBurn") if a["labels"]["burn"] == "fast"] or None
        ),
        timeout=20,
        what="budget page",
    )
    assert burn["labels"]["slo"] == "chat"
    assert burn["labels"]["severity"] == "critical"  # the SLO sets no page_severity: error_budget_burn's
    assert burn["labels"]["circuit_breaker_name"] == "openai.chat"
    assert burn["labels"]["circuit_breaker_service"] == "openai"
    # The value is the 1h burn rate: rate() extrapolates each outcome's series over its own span, so
    # it is near (10 / 14) / 0.01 = 71, not exactly.
    assert 14.4 < float(burn["value"]) <= 100

    # Recovery: the first call after wait_in_open is the probe; it succeeds, the breaker closes and
    # both open alerts resolve (after keep_firing_for).
    time.sleep(max(0.0, opened_at + 8.1 - time.monotonic()))
    chat.call(lambda: "ok")
    assert chat.state is State.CLOSED
    wait_until(lambda: not firing(prometheus, "CircuitBreakerOpen") or None, timeout=20, what="open alert resolved")


def _refused() -> None:
    raise ConnectionError("connection refused")
