"""Issue 8's metrics: the thresholds in force (adapted, not the static config), trip forecasts and
health probes, as Prometheus scrapes them."""

from __future__ import annotations

import asyncio
import contextlib

import prometheus_client
from prometheus_client.parser import text_string_to_metric_families

from breakerpanel import (
    AdaptiveThresholds,
    BreakerConfig,
    BreakerRegistry,
    ManualClock,
    ProbeRunner,
    TripForecast,
)
from breakerpanel.exporter import BreakerTelemetry
from breakerpanel.exporter import semconv as sc


def scrape(telemetry: BreakerTelemetry) -> dict[tuple[str, str], float]:
    """(sample name, breaker[/outcome]) -> value."""
    text = prometheus_client.generate_latest(telemetry.prometheus_registry).decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.labels.get(sc.CIRCUIT_BREAKER_NAME_LABEL)
            if name is None:
                continue
            outcome = sample.labels.get(sc.CIRCUIT_BREAKER_OUTCOME_LABEL)
            values[(sample.name, name if outcome is None else f"{name}/{outcome}")] = sample.value
    return values


async def test_thresholds_in_force_forecasts_and_probes_are_exported() -> None:
    clock = ManualClock()
    registry = BreakerRegistry(clock=clock)
    adaptive = AdaptiveThresholds(
        margin=0.1,
        floor=0.2,
        ceiling=0.8,
        interval=1,
        half_life=10,
        warmup=2,
        max_step=0.1,
        slow_call_duration_floor=0.01,
        slow_call_duration_ceiling=1.0,
        min_latency_calls=5,
    )
    qdrant = registry.service(
        "qdrant",
        BreakerConfig(minimum_calls=5, sliding_window_size=20, slow_call_duration=5.0, adaptive=adaptive),
    )
    redis = registry.service("redis", BreakerConfig(forecast=TripForecast(lookback=60, horizon=60, interval=5)))
    plain = registry.service("postgres")

    async def down() -> bool:
        return False

    runner = ProbeRunner(redis, down, interval=1, jitter=0)
    telemetry = BreakerTelemetry(registry, service_name="test", otlp=False, tracing=False)
    try:
        before = scrape(telemetry)
        assert before[("circuit_breaker_failure_rate_threshold", "qdrant")] == 0.5
        assert before[("circuit_breaker_slow_call_duration_threshold_seconds", "qdrant")] == 1.0  # clamped
        assert before[("circuit_breaker_slow_call_duration_threshold_seconds", "postgres")] == 60.0
        assert before[("circuit_breaker_trip_forecasts_total", "redis")] == 0
        assert ("circuit_breaker_trip_forecasts_total", "qdrant") not in before  # no forecast configured
        assert before[("circuit_breaker_probes_total", "redis/success")] == 0
        assert ("circuit_breaker_probes_total", "postgres/failure") not in before

        def took(seconds: float) -> None:
            clock.advance(seconds)

        for _ in range(10):  # a healthy, fast dependency: the thresholds adapt down
            for _ in range(10):
                qdrant.call(took, 0.003)
            clock.advance(1.0)
        # A redis outage, probed once.
        async with runner:
            redis.force_open()  # manual: not probed
            redis.reset()
            for _ in range(10):
                with contextlib.suppress(ZeroDivisionError):
                    redis.call(lambda: 1 / 0)
            for _ in range(10):  # the runner wakes up and waits on the clock
                await asyncio.sleep(0)
            clock.advance(1.0)
            for _ in range(10):
                await asyncio.sleep(0)
        after = scrape(telemetry)
        threshold = after[("circuit_breaker_failure_rate_threshold", "qdrant")]
        assert threshold == qdrant.snapshot().failure_rate_threshold == 0.2
        duration = after[("circuit_breaker_slow_call_duration_threshold_seconds", "qdrant")]
        assert 0.01 < duration == qdrant.snapshot().slow_call_duration < 0.05
        assert after[("circuit_breaker_probes_total", "redis/failure")] == 1
        assert plain.snapshot().failure_rate_threshold == 0.5
    finally:
        telemetry.shutdown()
