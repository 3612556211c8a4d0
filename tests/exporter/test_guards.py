"""Guard metrics (rate limits, lockouts, load shedding) on /metrics, named by the registry."""

from __future__ import annotations

import prometheus_client
from prometheus_client.parser import text_string_to_metric_families

from breakerpanel import ManualClock
from breakerpanel.exporter import BreakerTelemetry
from breakerpanel.exporter import semconv as sc
from breakerpanel.guards import (
    AIMDLimit,
    ConcurrencyLimiter,
    LockoutGuard,
    LockoutPolicy,
    Priority,
    RateLimiter,
    RateLimitPolicy,
)


def samples(telemetry: BreakerTelemetry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = prometheus_client.generate_latest(telemetry.prometheus_registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_guards_are_exported_with_registry_names() -> None:
    clock = ManualClock()
    limiter = RateLimiter("api", RateLimitPolicy(limit=1, period=60.0), clock=clock)
    lockout = LockoutGuard("login", LockoutPolicy(max_failures=2, window=60), clock=clock)
    shedder = ConcurrencyLimiter("ask", AIMDLimit(initial=1), clock=clock)
    telemetry = BreakerTelemetry(service_name="test", otlp=False, tracing=False)
    telemetry.add_guard(limiter, lockout, shedder)
    try:
        await limiter.acquire("a")
        await limiter.acquire("a")
        await limiter.acquire("b")
        await lockout.failed("alice", "10.0.0.1")
        await lockout.failed("alice", "10.0.0.1")
        await lockout.check("alice", None)
        shedder.acquire()
        shedder.try_acquire()
        shedder.try_acquire(Priority.CRITICAL)
        got = samples(telemetry)
    finally:
        telemetry.shutdown()

    def value(metric: sc.MetricSpec, **labels: str) -> float:
        return got[(metric.prometheus_name, frozenset(labels.items()))]

    rl, lo, cl = sc.RATE_LIMIT_NAME_LABEL, sc.AUTH_LOCKOUT_NAME_LABEL, sc.CONCURRENCY_LIMIT_NAME_LABEL
    assert value(sc.METRIC_RATE_LIMIT_DECISIONS, **{rl: "api", sc.RATE_LIMIT_OUTCOME_LABEL: "allowed"}) == 2
    assert value(sc.METRIC_RATE_LIMIT_DECISIONS, **{rl: "api", sc.RATE_LIMIT_OUTCOME_LABEL: "limited"}) == 1
    assert value(sc.METRIC_RATE_LIMIT_LIMITED_KEYS, **{rl: "api"}) == 1
    assert value(sc.METRIC_AUTH_LOCKOUT_FAILURES, **{lo: "login"}) == 2
    assert value(sc.METRIC_AUTH_LOCKOUT_LOCKOUTS, **{lo: "login", sc.AUTH_LOCKOUT_SUBJECT_LABEL: "principal"}) == 1
    assert value(sc.METRIC_AUTH_LOCKOUT_LOCKOUTS, **{lo: "login", sc.AUTH_LOCKOUT_SUBJECT_LABEL: "address"}) == 0
    assert value(sc.METRIC_AUTH_LOCKOUT_REJECTIONS, **{lo: "login"}) == 1
    assert value(sc.METRIC_CONCURRENCY_LIMIT_LIMIT, **{cl: "ask"}) == 1
    assert value(sc.METRIC_CONCURRENCY_LIMIT_IN_FLIGHT, **{cl: "ask"}) == 2
    shed = {cl: "ask", sc.CONCURRENCY_LIMIT_OUTCOME_LABEL: "shed", sc.CONCURRENCY_LIMIT_PRIORITY_LABEL: "normal"}
    assert value(sc.METRIC_CONCURRENCY_LIMIT_REQUESTS, **shed) == 1
    critical = shed | {sc.CONCURRENCY_LIMIT_OUTCOME_LABEL: "accepted", sc.CONCURRENCY_LIMIT_PRIORITY_LABEL: "critical"}
    assert value(sc.METRIC_CONCURRENCY_LIMIT_REQUESTS, **critical) == 1
