"""OTLP push through the standard OTEL_* variables, span events, and the cardinality guard."""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk.metrics.export import AggregationTemporality, Histogram, HistogramDataPoint, Metric
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from breakerpanel import (
    MAX_ERROR_TYPES,
    OTHER_ERROR_TYPE,
    BreakerConfig,
    BreakerRegistry,
    CircuitBreaker,
    CircuitOpenError,
    ManualClock,
    MemoryStore,
    RejectionReason,
    Static,
)
from breakerpanel.exporter import (
    OTHER,
    BreakerCatalog,
    BreakerTelemetry,
    CircuitBreakerSource,
    otlp_configured,
    semconv,
)
from breakerpanel.exporter._deltas import HistogramDeltas
from breakerpanel.guards import AIMDLimit, ConcurrencyLimiter, LockoutGuard, RateLimiter, RateLimitPolicy
from tests.servers import find_free_port


class _Receiver(BaseHTTPRequestHandler):
    requests: list[ExportMetricsServiceRequest]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportMetricsServiceRequest()
        request.ParseFromString(body)
        type(self).requests.append(request)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def otlp_receiver() -> Iterator[tuple[str, list[ExportMetricsServiceRequest]]]:
    received: list[ExportMetricsServiceRequest] = []
    handler = type("Receiver", (_Receiver,), {"requests": received})
    server = ThreadingHTTPServer(("127.0.0.1", find_free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/metrics", received
    server.shutdown()
    server.server_close()


def test_otlp_push_follows_the_standard_variables(
    otlp_receiver: tuple[str, list[ExportMetricsServiceRequest]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, received = otlp_receiver
    assert not otlp_configured({})
    assert otlp_configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert not otlp_configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_METRICS_EXPORTER": "none"})
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", url)
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "600000")  # only the flush below exports
    breaker = CircuitBreaker("redis", BreakerConfig(minimum_calls=1), attributes={"db.system.name": "redis"})
    telemetry = BreakerTelemetry(breaker, service_name="cache", otlp=None)
    # Guards and a store are pushed too, with the same names as on /metrics.
    telemetry.add_guard(
        RateLimiter("api", RateLimitPolicy(limit=10, period=1.0)),
        LockoutGuard("login"),
        ConcurrencyLimiter("ask", AIMDLimit(initial=4)),
    )
    telemetry.add_store(MemoryStore())
    breaker.call(lambda: "ok")
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    try:
        assert telemetry.meter_provider.force_flush(timeout_millis=5000)
    finally:
        telemetry.shutdown()
    metrics = {
        m.name: m
        for request in received
        for rm in request.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    absent = {
        semconv.METRIC_CIRCUIT_BREAKER_FALLBACKS.name,  # no fallback ran
        semconv.METRIC_CIRCUIT_BREAKER_FAILURE_RATE.name,  # the breaker opened: its new window is empty
        semconv.METRIC_CIRCUIT_BREAKER_SLOW_CALL_RATE.name,
        semconv.METRIC_CIRCUIT_BREAKER_TRIP_FORECASTS.name,  # no forecast configured
        semconv.METRIC_CIRCUIT_BREAKER_PROBES.name,  # no probe attached
        semconv.METRIC_CIRCUIT_BREAKER_SLOW_CALLS.name,  # none slow (the standard detail waits for one)
    }
    assert set(metrics) == {spec.name for spec in semconv.METRICS} - absent
    durations = metrics[semconv.METRIC_CIRCUIT_BREAKER_CALL_DURATION.name].histogram.data_points
    assert sum(p.count for p in durations) == 2
    resource = {a.key: a.value.string_value for a in received[0].resource_metrics[0].resource.attributes}
    assert resource["service.name"] == "cache"


def test_span_events_on_the_active_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    registry = BreakerRegistry(clock=ManualClock())
    registry.service("openai")
    chat = registry.endpoint("openai.chat", BreakerConfig(minimum_calls=1))
    answer = registry.feature("answer", required=["openai.chat"], fallback=[Static("sorry")])
    telemetry = BreakerTelemetry(registry, service_name="t", otlp=False)
    with tracer.start_as_current_span("request"):
        with pytest.raises(ZeroDivisionError):
            chat.call(lambda: 1 / 0)  # opens: a state change
        with pytest.raises(CircuitOpenError):
            chat.call(lambda: "rejected")
        assert answer.call(lambda: "never") == "sorry"
    chat.force_close()  # outside any span: nothing recorded, and nothing breaks
    (span,) = exporter.get_finished_spans()
    events = [(e.name, dict(e.attributes or {})) for e in span.events]
    names = [name for name, _ in events]
    assert names == [
        semconv.EVENT_CIRCUIT_BREAKER_STATE_CHANGE,
        semconv.EVENT_CIRCUIT_BREAKER_REJECTION,
        semconv.EVENT_CIRCUIT_BREAKER_REJECTION,  # the open endpoint counts the call the feature turned away
        semconv.EVENT_CIRCUIT_BREAKER_REJECTION,  # the feature's own rejection (parent_open)
        semconv.EVENT_CIRCUIT_BREAKER_FALLBACK,
    ]
    change = events[0][1]
    assert change[semconv.CIRCUIT_BREAKER_NAME] == "openai.chat"
    assert change[semconv.CIRCUIT_BREAKER_PARENT] == "openai"
    assert (change[semconv.CIRCUIT_BREAKER_PREVIOUS_STATE], change[semconv.CIRCUIT_BREAKER_STATE]) == ("closed", "open")
    assert (events[2][1][semconv.CIRCUIT_BREAKER_NAME], events[2][1][semconv.CIRCUIT_BREAKER_REJECTION_REASON]) == (
        "openai.chat",
        "open",
    )
    assert (events[3][1][semconv.CIRCUIT_BREAKER_NAME], events[3][1][semconv.CIRCUIT_BREAKER_REJECTION_REASON]) == (
        "answer",
        "parent_open",
    )
    assert events[4][1][semconv.CIRCUIT_BREAKER_FALLBACK_TYPE] == "static"
    # The listener wants no per-call events: successes keep the lock-free path.
    later = registry.service("anthropic")
    assert telemetry.catalog.breakers()[-1] is later
    assert later._span_start < later._span_end
    telemetry.shutdown()


def test_the_guard_caps_breakers_attributes_and_values(caplog: pytest.LogCaptureFixture) -> None:
    catalog = BreakerCatalog(max_breakers=3, max_values_per_attribute=2)
    breakers = [
        CircuitBreaker(
            f"tenant-{i}", BreakerConfig(minimum_calls=1), attributes={"server.address": f"h{i}", "tenant.id": str(i)}
        )
        for i in range(6)
    ]
    for b in breakers:
        catalog.add(b)
        b.call(lambda: "ok")
    with caplog.at_level(logging.WARNING, logger="breakerpanel.exporter"):
        readings = catalog.readings()
        catalog.end_collection()
        catalog.readings()  # warnings once, not per collection
    assert [r.name for r in readings] == ["tenant-0", "tenant-1", OTHER]
    assert readings[-1].successes == 4  # the other four, summed
    assert readings[0].attributes == {"server.address": "h0"}  # tenant.id is not in the registry
    assert readings[1].attributes == {"server.address": "h1"}
    values = [r.attributes.get("server.address") for r in readings[:2]]
    assert values == ["h0", "h1"]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 3
    assert any("tenant.id" in w for w in warnings)
    assert any("more than 3 breakers" in w for w in warnings)
    assert any("more than 2 values" in w for w in warnings)


def test_idle_breakers_are_evicted_until_used_again() -> None:
    now = [0.0]
    catalog = BreakerCatalog(evict_idle_after=60, clock=lambda: now[0])
    busy, idle = CircuitBreaker("busy"), CircuitBreaker("idle")
    catalog.add([busy, idle])
    assert {r.name for r in catalog.readings()} == {"busy", "idle"}
    for _ in range(3):
        now[0] += 30
        busy.call(lambda: "ok")
        catalog.end_collection()
        names = {r.name for r in catalog.readings()}
    assert names == {"busy"}
    idle.call(lambda: "back")
    catalog.end_collection()
    assert {r.name for r in catalog.readings()} == {"busy", "idle"}


def test_which_breakers_are_summed_stays_fixed_when_named_ones_go_idle() -> None:
    # Idle ones were left out before the cap: a named breaker going idle pulled one out of
    # _OTHER, which went back when it was used again: _OTHER's successes went 120 -> 22 -> 123.
    now = [0.0]
    catalog = BreakerCatalog(max_breakers=3, evict_idle_after=60, clock=lambda: now[0])
    breakers = {name: CircuitBreaker(name) for name in "abcde"}
    catalog.add(list(breakers.values()))
    for name, calls in zip("abcde", (1, 1, 100, 10, 10), strict=True):
        for _ in range(calls):
            breakers[name].call(lambda: "ok")

    def other() -> tuple[int, list[str]]:
        catalog.end_collection()
        readings = catalog.readings()
        return next(r.successes for r in readings if r.name == OTHER), [r.name for r in readings]

    seen = [other()]
    now[0] += 90
    for name in "bcde":
        breakers[name].call(lambda: "ok")
    seen.append(other())  # a is idle
    breakers["a"].call(lambda: "back")
    seen.append(other())
    assert seen == [(120, ["a", "b", OTHER]), (123, ["b", OTHER]), (123, ["a", "b", OTHER])]


def test_the_summed_breakers_failures_are_one_error_type() -> None:
    # The union of every summed breaker's error types grew with their number (640 series for 11
    # breakers of 64 types), past what one breaker may have.
    catalog = BreakerCatalog(max_breakers=2)
    for i in range(11):
        breaker = CircuitBreaker(f"b{i}", BreakerConfig(minimum_calls=1000))
        catalog.add(breaker)
        for kind in range(64):
            with contextlib.suppress(LookupError):
                breaker.call(functools.partial(_raise, type(f"E{kind}", (LookupError,), {})))
    readings = catalog.readings()
    assert readings[-1].name == OTHER
    assert readings[-1].failures_by_type == {OTHER_ERROR_TYPE: 10 * 64}
    assert len(readings[0].failures_by_type) == 64


def _raise(kind: type[Exception]) -> None:
    raise kind


def test_the_sdk_keeps_every_series_one_breaker_can_have() -> None:
    # The SDK's limit was 64 points per breaker, under a breaker's 71 possible calls series: the
    # SDK path (OTLP, generate_latest) folded the rest into otel_metric_overflow.
    import prometheus_client
    from prometheus_client.parser import text_string_to_metric_families

    registry = BreakerRegistry()
    telemetry = BreakerTelemetry(registry, service_name="x", max_breakers=10, detail="full", otlp=False, tracing=False)
    for i in range(10):
        breaker = registry.service(f"svc{i}")
        breaker.metrics_only()
        for j in range(70):
            breaker.acquire().failure(f"err{j}")  # 64 types kept, the rest counted as _OTHER

    def calls(text: str) -> list[dict[str, str]]:
        return [
            dict(sample.labels)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "circuit_breaker_calls_total"
        ]

    exposition = telemetry.exposition()
    direct = calls(exposition.decode() if isinstance(exposition, bytes) else exposition)
    through_sdk = calls(prometheus_client.generate_latest(telemetry.prometheus_registry).decode())
    assert not [labels for labels in through_sdk if "otel_metric_overflow" in labels]
    # Per breaker: success, ignored, 64 error types and _OTHER, a series per rejection reason.
    assert len(through_sdk) == len(direct) == 10 * (2 + MAX_ERROR_TYPES + 1 + len(RejectionReason))
    telemetry.shutdown()


def test_span_events_carry_the_common_attributes_metrics_carry() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = BreakerRegistry(clock=ManualClock())
    registry.service("openai")
    chat = registry.endpoint("openai.chat", BreakerConfig(minimum_calls=1))
    answer = registry.feature("answer", required=["openai.chat"])
    telemetry = BreakerTelemetry(registry, service_name="t", otlp=False)
    with provider.get_tracer("test").start_as_current_span("request"):
        with pytest.raises(ZeroDivisionError):
            chat.call(lambda: 1 / 0)
        with pytest.raises(CircuitOpenError):
            answer.call(lambda: "never")
    (span,) = exporter.get_finished_spans()
    by_breaker = {e.attributes[semconv.CIRCUIT_BREAKER_NAME]: dict(e.attributes) for e in span.events}  # type: ignore[index]
    assert by_breaker["openai.chat"][semconv.CIRCUIT_BREAKER_SERVICE] == "openai"
    assert by_breaker["answer"][semconv.CIRCUIT_BREAKER_REQUIRES] == "openai"
    telemetry.shutdown()


@pytest.mark.parametrize(("preference", "delta"), [("cumulative", False), ("delta", True), ("lowmemory", True)])
def test_pushed_histograms_follow_the_exporters_temporality_preference(
    preference: str,
    delta: bool,
    otlp_receiver: tuple[str, list[ExportMetricsServiceRequest]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, received = otlp_receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", url)
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "600000")  # only the flushes below export
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", preference)
    breaker = CircuitBreaker("redis", BreakerConfig(minimum_calls=100))
    telemetry = BreakerTelemetry(breaker, service_name="cache", otlp=True, tracing=False)

    def exported() -> tuple[int, int, int, int]:
        """The call-duration histogram of one export: temporality, count, start and end times."""
        received.clear()
        assert telemetry.meter_provider.force_flush(timeout_millis=5000)
        (histogram,) = (
            m.histogram
            for request in received
            for rm in request.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == semconv.METRIC_CIRCUIT_BREAKER_CALL_DURATION.name
        )
        points = histogram.data_points
        assert all(sum(p.bucket_counts) == p.count for p in points)
        # The breakers keep no minimum or maximum: unset, not 0 s beside a positive sum.
        assert not any(p.HasField("min") or p.HasField("max") for p in points)
        assert len({(p.start_time_unix_nano, p.time_unix_nano) for p in points}) == 1
        count = sum(p.count for p in points)
        return histogram.aggregation_temporality, count, points[0].start_time_unix_nano, points[0].time_unix_nano

    exports = []
    try:
        for calls in (2, 3, 0):
            for _ in range(calls):
                breaker.call(lambda: "ok")
            exports.append(exported())
    finally:
        telemetry.shutdown()
    temporality = {t for t, *_ in exports}
    assert temporality == {AggregationTemporality.DELTA if delta else AggregationTemporality.CUMULATIVE}
    assert [count for _, count, _, _ in exports] == ([2, 3, 0] if delta else [2, 5, 5])
    starts, ends = [start for _, _, start, _ in exports], [end for *_, end in exports]
    if delta:  # each export starts where the previous one ended
        assert starts[1:] == ends[:-1]
    else:
        assert len(set(starts)) == 1


def _histogram_metric(counts: list[int], total: float, at: int, bounds: tuple[float, ...] = (0.1,)) -> Metric:
    point = HistogramDataPoint(
        attributes={"circuit_breaker.name": "redis"},
        start_time_unix_nano=1,
        time_unix_nano=at,
        count=sum(counts),
        sum=total,
        bucket_counts=counts,
        explicit_bounds=list(bounds),
        min=0.0,
        max=0.0,
    )
    return Metric(name="d", description="", unit="s", data=Histogram([point], AggregationTemporality.CUMULATIVE))


def test_a_delta_series_goes_on_from_its_last_point_and_restarts_whole() -> None:
    deltas = HistogramDeltas()

    def converted(*metrics: Metric) -> list[tuple[list[int], float, int, int]]:
        return [
            (list(p.bucket_counts), round(p.sum, 9), p.start_time_unix_nano, p.time_unix_nano)
            for m in deltas.convert(lambda: metrics)
            for p in m.data.data_points  # type: ignore[union-attr]
        ]

    assert converted(_histogram_metric([3, 1], 1.5, 10)) == [([3, 1], 1.5, 1, 10)]  # first seen: whole
    assert converted(_histogram_metric([4, 3], 2.5, 20)) == [([1, 2], 1.0, 10, 20)]  # the change
    # Away for an export (its breaker evicted as idle), then back: it goes on from its last
    # point. Reported whole again, a backend summing the deltas counted its calls twice.
    assert converted() == []
    assert converted(_histogram_metric([4, 5], 2.7, 40)) == [([0, 2], 0.2, 20, 40)]
    # Fewer than before, or other bounds: a restarted series, reported whole from its last point.
    assert converted(_histogram_metric([1, 0], 0.05, 50)) == [([1, 0], 0.05, 40, 50)]
    assert converted(_histogram_metric([1, 0, 2], 0.9, 60, (0.1, 1.0))) == [([1, 0, 2], 0.9, 50, 60)]


def test_a_delta_conversion_reads_under_its_lock() -> None:
    # A periodic export racing a force_flush converted an older reading after a newer one: a
    # point whose interval ended before it started, and calls counted twice.
    deltas = HistogramDeltas()
    reading, release = threading.Event(), threading.Event()
    first: list[list[Metric]] = []

    def slow_read() -> list[Metric]:
        reading.set()
        assert release.wait(10)
        return [_histogram_metric([1, 0], 0.01, 10)]

    older = threading.Thread(target=lambda: first.append(deltas.convert(slow_read)))
    older.start()
    assert reading.wait(10)
    newer: list[list[Metric]] = []
    racing = threading.Thread(
        target=lambda: newer.append(deltas.convert(lambda: [_histogram_metric([3, 0], 0.03, 20)]))
    )
    racing.start()
    racing.join(0.2)
    assert racing.is_alive()  # waits for the older reading to be converted first
    release.set()
    older.join(10)
    racing.join(10)
    (point,) = newer[0][0].data.data_points  # type: ignore[union-attr]
    assert (list(point.bucket_counts), point.start_time_unix_nano, point.time_unix_nano) == ([2, 0], 10, 20)


class _EndsACollectionWhileRead:
    """A source whose read ends a collection (as a scrape racing an OTLP push does)."""

    def __init__(self, catalog: BreakerCatalog, breaker: CircuitBreaker) -> None:
        self.name = breaker.name
        self._catalog = catalog
        self._breaker = breaker
        self.reads = 0

    def read(self) -> Any:
        self.reads += 1
        if self.reads == 1:
            self._catalog.end_collection()
        return CircuitBreakerSource(self._breaker).read()


def test_a_reading_that_began_before_a_collection_ended_is_not_the_next_ones() -> None:
    catalog = BreakerCatalog()
    source = _EndsACollectionWhileRead(catalog, CircuitBreaker("redis"))
    catalog.add(source)
    catalog.readings()  # began in one collection, ended in the next
    catalog.readings()
    assert source.reads == 2  # read again: the first reading was not kept as the new collection's
    catalog.readings()
    assert source.reads == 2  # the second one is


def test_a_breaker_used_again_after_every_one_was_evicted_is_read_at_once() -> None:
    # With every breaker evicted the SDK's collection had no metric, no reader ended it, and the
    # kept empty reading hid the breaker used again until a /metrics scrape ended a collection.
    now = [0.0]
    catalog = BreakerCatalog(evict_idle_after=10, clock=lambda: now[0])
    breaker = CircuitBreaker("redis")
    catalog.add(breaker)
    breaker.call(lambda: "ok")
    assert [r.name for r in catalog.readings()] == ["redis"]
    catalog.end_collection()
    now[0] += 30
    reads = 0
    read = CircuitBreakerSource.read

    def counted(source: CircuitBreakerSource) -> Any:
        nonlocal reads
        reads += 1
        return read(source)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(CircuitBreakerSource, "read", counted)
        for _ in range(12):  # one collection's callbacks (no collection ends after this)
            assert catalog.readings() == []  # idle: evicted
        assert reads == 1  # read once for all of them, not once each
        breaker.call(lambda: "ok")
        now[0] += 5  # the next collection
        assert [r.name for r in catalog.readings()] == ["redis"]
