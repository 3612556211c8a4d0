"""/metrics written directly (exporter._exposition) against the SDK's own path, the two levels of
detail, and the HTTP serving (gzip, HEAD)."""

from __future__ import annotations

import contextlib
import gzip
from collections import Counter
from collections.abc import Iterator

import httpx
import prometheus_client
import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from breakerpanel import (
    DEFAULT_DURATION_BOUNDS,
    BreakerConfig,
    BreakerRegistry,
    CircuitBreaker,
    HistogramReading,
    ManualClock,
    ProbeRunner,
    Static,
    TripForecast,
    ignore_exceptions,
)
from breakerpanel.exporter import BreakerTelemetry, semconv
from breakerpanel.exporter._series import STANDARD_DURATION_BOUNDS, SeriesPolicy, _merged

Sample = tuple[str, tuple[tuple[str, str], ...], float]


class Boom(Exception):
    pass


def ok() -> int:
    return 1


def boom() -> int:
    raise Boom


def missing() -> int:
    raise KeyError("ignored by the classifier")


def attempt(breaker: CircuitBreaker, fn: object, times: int = 1) -> None:
    for _ in range(times):
        with contextlib.suppress(Exception):
            breaker.call(fn)  # type: ignore[arg-type]


def samples(text: str) -> set[Sample]:
    """Every sample, labels the SDK fills with "" left out (Prometheus treats them as absent)."""
    return {
        (s.name, tuple(sorted((k, v) for k, v in s.labels.items() if v)), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def rich_registry() -> tuple[BreakerRegistry, ManualClock]:
    """Every kind of series: a hierarchy, a feature with fallbacks, a probe, a forecast, ignored
    calls, several error types, a manual state, a trip and a recovery."""
    clock = ManualClock()
    registry = BreakerRegistry(clock=clock)
    config = BreakerConfig(
        minimum_calls=3, sliding_window_size=6, wait_in_open=5.0, classifier=ignore_exceptions(KeyError)
    )
    openai = registry.service("openai", config, attributes={"gen_ai.provider.name": "openai"})
    chat = registry.endpoint("openai.chat", config, attributes={"gen_ai.operation.name": "chat"})
    registry.feature("answer", required=["openai.chat"], fallback=[Static("sorry")])
    postgres = registry.service("postgres", BreakerConfig(forecast=TripForecast()))

    async def select_1() -> bool:
        return True

    ProbeRunner(postgres, select_1)
    attempt(chat, ok, 4)
    attempt(chat, missing, 2)
    attempt(chat, boom, 4)
    attempt(openai, ok, 2)
    attempt(chat, ok, 3)  # rejected: open here or in the service
    registry.service("redis").force_open()
    clock.advance(6.0)
    attempt(chat, ok, 5)
    return registry, clock


@pytest.fixture
def telemetry(request: pytest.FixtureRequest) -> Iterator[BreakerTelemetry]:
    registry, _ = rich_registry()
    t = BreakerTelemetry(registry, service_name="assistant", otlp=False, detail=request.param)
    yield t
    t.shutdown()


@pytest.mark.parametrize("telemetry", ["standard", "full"], indirect=True)
def test_the_direct_text_has_the_samples_of_the_sdk_path(telemetry: BreakerTelemetry) -> None:
    direct = samples(telemetry.exposition().decode())
    through_sdk = samples(prometheus_client.generate_latest(telemetry.prometheus_registry).decode())
    assert direct == through_sdk
    assert any(name == "circuit_breaker_call_duration_seconds_bucket" for name, _, _ in direct)
    assert any(name == "target_info" for name, _, _ in direct)


@pytest.mark.parametrize("telemetry", ["standard", "full"], indirect=True)
def test_one_scrape_names_each_family_once(telemetry: BreakerTelemetry) -> None:
    types = [line.split()[2] for line in telemetry.exposition().decode().splitlines() if line.startswith("# TYPE")]
    assert len(types) == len(set(types)), Counter(types).most_common(3)


def series_of(text: str, name: str) -> Counter[str]:
    families: Counter[str] = Counter()
    for metric, labels, _ in samples(text):
        if ("circuit_breaker_name", name) in labels:
            families[metric.removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")] += 1
    return families


def test_standard_detail_keeps_a_breaker_through_an_outage_under_thirty_series() -> None:
    registry, _ = rich_registry()
    standard = BreakerTelemetry(registry, service_name="a", otlp=False)
    full = BreakerTelemetry(registry, service_name="b", otlp=False, detail="full")
    try:
        few, many = (
            series_of(standard.exposition().decode(), "openai.chat"),
            series_of(full.exposition().decode(), "openai.chat"),
        )
    finally:
        standard.shutdown()
        full.shutdown()
    # openai.chat saw successes, ignored calls, one error type, rejections, a trip and a recovery.
    assert sum(few.values()) <= 30, few
    assert sum(many.values()) > 90, many
    assert few["circuit_breaker_call_duration_seconds"] == len(STANDARD_DURATION_BOUNDS) + 3  # +Inf, count, sum


def scrape(telemetry: BreakerTelemetry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(name, labels): value for name, labels, value in samples(telemetry.exposition().decode())}


def state_series(scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float], breaker: str) -> dict[str, float]:
    return {
        dict(labels)["circuit_breaker_state"]: value
        for (name, labels), value in scraped.items()
        if name == "circuit_breaker_state" and ("circuit_breaker_name", breaker) in labels
    }


def test_a_manual_state_is_exported_while_the_breaker_is_in_it() -> None:
    registry = BreakerRegistry(clock=ManualClock())
    breaker = registry.service("redis")
    telemetry = BreakerTelemetry(registry, service_name="a", otlp=False)
    try:
        assert state_series(scrape(telemetry), "redis") == {"closed": 1, "open": 0, "half_open": 0}
        breaker.force_open()
        assert state_series(scrape(telemetry), "redis") == {"closed": 0, "open": 0, "half_open": 0, "forced_open": 1}
        breaker.reset()
        assert state_series(scrape(telemetry), "redis") == {"closed": 1, "open": 0, "half_open": 0}
    finally:
        telemetry.shutdown()


def rejected(scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float], breaker: str) -> dict[str, float]:
    return {
        dict(labels).get("circuit_breaker_rejection_reason", dict(labels)["circuit_breaker_outcome"]): value
        for (name, labels), value in scraped.items()
        if name == "circuit_breaker_calls_total"
        and ("circuit_breaker_name", breaker) in labels
        and dict(labels)["circuit_breaker_outcome"] in ("rejected", "ignored")
    }


def test_counters_rules_need_from_their_first_count_are_exported_at_zero() -> None:
    registry = BreakerRegistry(clock=ManualClock())
    registry.service("openai")
    chat = registry.endpoint("openai.chat", BreakerConfig(classifier=ignore_exceptions(KeyError)))
    telemetry = BreakerTelemetry(registry, service_name="a", otlp=False)
    try:
        scraped = scrape(telemetry)
        # A service is rejected only for being open; an endpoint also for its service.
        assert rejected(scraped, "openai") == {"open": 0}
        assert rejected(scraped, "openai.chat") == {"open": 0, "parent_open": 0}
        attempt(chat, missing)
        chat.force_open()
        attempt(chat, ok)
        assert rejected(scrape(telemetry), "openai.chat") == {
            "open": 0,
            "parent_open": 0,
            "forced_open": 1,
            "ignored": 1,
        }
    finally:
        telemetry.shutdown()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=500, allow_nan=False), max_size=60))
def test_coarse_buckets_count_what_the_fine_ones_counted(values: list[float]) -> None:
    """Summing the outcomes and moving to the standard buckets: each standard bucket counts the
    values at most its bound, as if they had been counted on it from the start."""
    bounds = DEFAULT_DURATION_BOUNDS
    per_outcome = []
    for part in (values[::2], values[1::2]):
        counts = [0] * (len(bounds) + 1)
        for v in part:
            counts[next((i for i, b in enumerate(bounds) if v <= b), len(bounds))] += 1
        per_outcome.append(HistogramReading(bounds=bounds, counts=tuple(counts), sum=sum(part)))
    merged = _merged(per_outcome, STANDARD_DURATION_BOUNDS)
    assert merged is not None
    assert merged.bounds == STANDARD_DURATION_BOUNDS
    cumulative = 0
    for bound, count in zip((*STANDARD_DURATION_BOUNDS, float("inf")), merged.counts, strict=True):
        cumulative += count
        assert cumulative == sum(1 for v in values if v <= bound)
    assert merged.sum == pytest.approx(sum(values))


def test_a_breaker_with_buckets_of_its_own_keeps_them() -> None:
    registry = BreakerRegistry(clock=ManualClock())
    breaker = registry.service("qdrant")
    breaker.enable_duration_histograms((0.3, 3.0))
    telemetry = BreakerTelemetry(registry, service_name="a", otlp=False)
    try:
        les = {
            dict(labels)["le"]
            for (name, labels) in scrape(telemetry)
            if name == "circuit_breaker_call_duration_seconds_bucket"
        }
    finally:
        telemetry.shutdown()
    assert les == {"0.3", "3.0", "+Inf"}


def test_one_table_names_every_counter_and_gauge_once() -> None:
    """Both ways out (the SDK's instruments, the direct text) read the policy's one table."""
    names = [spec.name for spec, _ in SeriesPolicy().families]
    assert len(names) == len(set(names))
    assert set(names) == {spec.name for spec in semconv.BREAKER_METRICS if spec.instrument != "histogram"}


def test_detail_must_be_standard_or_full() -> None:
    with pytest.raises(ValueError, match="detail: must be 'standard' or 'full'"):
        SeriesPolicy("everything")  # type: ignore[arg-type]


def test_hundreds_of_breakers_lose_no_series_to_the_sdk_cardinality_limit() -> None:
    """The SDK folds what is beyond 2,000 attribute sets per instrument into one overflow point;
    700 breakers' states are 2,100 of them."""
    registry = BreakerRegistry(clock=ManualClock())
    for i in range(700):
        registry.service(f"tenant{i}")
    telemetry = BreakerTelemetry(registry, service_name="a", otlp=False, max_breakers=1000)
    try:
        text = prometheus_client.generate_latest(telemetry.prometheus_registry).decode()
    finally:
        telemetry.shutdown()
    assert "otel_metric_overflow" not in text
    assert sum(1 for line in text.splitlines() if line.startswith("circuit_breaker_state{")) == 2100


# ---------------------------------------------------------------------- serving


@pytest.fixture
def served() -> Iterator[str]:
    registry, _ = rich_registry()
    telemetry = BreakerTelemetry(registry, service_name="assistant", otlp=False)
    server = telemetry.start_http_server(0)
    yield f"http://127.0.0.1:{server.server_port}/metrics"
    telemetry.shutdown()


def test_the_server_gzips_for_a_scraper_that_accepts_it(served: str) -> None:
    with httpx.Client() as client:
        zipped = client.get(served, headers={"Accept-Encoding": "gzip"})
        plain = client.get(served, headers={"Accept-Encoding": "identity"})
        head = client.head(served)
    assert zipped.headers["content-encoding"] == "gzip"
    assert int(zipped.headers["content-length"]) < len(plain.content) / 5
    assert samples(zipped.text) == samples(plain.text)  # httpx decodes gzip
    assert "content-encoding" not in plain.headers
    assert plain.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert head.status_code == 200
    assert head.content == b""


async def test_the_asgi_app_gzips_too() -> None:
    registry, _ = rich_registry()
    telemetry = BreakerTelemetry(registry, service_name="assistant", otlp=False)
    app = FastAPI()
    app.mount("/metrics", telemetry.asgi_app())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        response = await client.get("/metrics/", headers={"Accept-Encoding": "gzip"})
        raw = await client.send(
            client.build_request("GET", "/metrics/", headers={"Accept-Encoding": "gzip"}), stream=True
        )
        body = b"".join([chunk async for chunk in raw.aiter_raw()])
    telemetry.shutdown()
    assert response.headers["content-encoding"] == "gzip"
    assert gzip.decompress(body).decode() == response.text
    assert 'circuit_breaker_state{circuit_breaker_level="endpoint",circuit_breaker_name="openai.chat"' in response.text
