"""/metrics scraped over HTTP: the exact metric names, types and label sets of the registry."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from breakerpanel import (
    BreakerConfig,
    BreakerRegistry,
    CircuitOpenError,
    FallbackType,
    ManualClock,
    ProbeRunner,
    Static,
    TripForecast,
    ignore_exceptions,
)
from breakerpanel.exporter import BreakerTelemetry, semconv
from tests.servers import find_free_port

#: Identity and place in the hierarchy (`circuit_breaker_service` on services and endpoints,
#: `circuit_breaker_requires` on features with required dependencies): on every breaker series.
COMMON = {
    "circuit_breaker_name",
    "circuit_breaker_level",
    "circuit_breaker_parent",
    "circuit_breaker_service",
    "circuit_breaker_requires",
}
STORE_METRICS = (semconv.METRIC_CIRCUIT_BREAKER_STORE_AVAILABLE, semconv.METRIC_CIRCUIT_BREAKER_STORE_ERRORS)


@pytest.fixture
def registry() -> BreakerRegistry:
    clock = ManualClock()
    registry = BreakerRegistry(clock=clock)
    registry.service("openai", attributes={"gen_ai.provider.name": "openai", "server.address": "api.openai.com"})
    registry.endpoint(
        "openai.chat",
        BreakerConfig(
            minimum_calls=3, sliding_window_size=3, slow_call_duration=1.0, classifier=ignore_exceptions(KeyError)
        ),
        attributes={"gen_ai.operation.name": "chat"},
    )
    registry.feature("answer", required=["openai.chat"], fallback=[Static("sorry")])
    # A trip forecast and a health probe: their counters are reported from 0.
    postgres = registry.service(
        "postgres", BreakerConfig(forecast=TripForecast()), attributes={"db.system.name": "postgresql"}
    )

    async def select_1() -> bool:
        return True

    ProbeRunner(postgres, select_1)
    return registry


def drive(registry: BreakerRegistry) -> None:
    """Successes, a slow success, an ignored call, failures up to opening, a rejection, and a
    fallback, so that every metric has series."""
    chat = registry["openai.chat"]
    clock = registry.clock
    assert isinstance(clock, ManualClock)

    def slow() -> str:
        clock.advance(1.5)
        return "ok"

    chat.call(lambda: "ok")
    chat.call(slow)
    with pytest.raises(KeyError):
        chat.call(lambda: {}["missing"])
    for _ in range(2):
        with pytest.raises(ZeroDivisionError):
            chat.call(lambda: 1 / 0)
    with pytest.raises(CircuitOpenError):
        chat.call(lambda: "rejected")
    assert registry.get_feature("answer").call(lambda: "never") == "sorry"
    clock.advance(120)
    for _ in range(5):  # half-open: five successful probes close it again
        chat.call(lambda: "probe")
    for _ in range(3):  # enough calls in the new window for a failure rate
        chat.call(lambda: "ok")


Scraped = dict[str, tuple[str, list[dict[str, str]], list[float]]]


@pytest.fixture(params=["standard", "full"])
def detail(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def scraped(registry: BreakerRegistry, detail: str) -> Iterator[Scraped]:
    telemetry = BreakerTelemetry(
        registry,
        service_name="assistant",
        environment="test",
        otlp=False,
        detail=detail,  # type: ignore[arg-type]
    )
    drive(registry)
    port = find_free_port()
    telemetry.start_http_server(port)
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        telemetry.shutdown()
    families: dict[str, tuple[str, list[dict[str, str]], list[float]]] = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = (
            family.type,
            [dict(s.labels) for s in family.samples],
            [s.value for s in family.samples],
        )
        for sample in family.samples:  # and each histogram series (_count, _sum, _bucket) on its own
            if sample.name != family.name:
                _, labels, values = families.setdefault(sample.name, (family.type, [], []))
                labels.append(dict(sample.labels))
                values.append(sample.value)
    return families


def labels_of(samples: list[dict[str, str]]) -> set[str]:
    return {key for labels in samples for key, value in labels.items() if value != "" and key != "le"}


def test_names_and_types_are_the_registrys(scraped: Scraped) -> None:
    # Guard metrics need guards (tests/exporter/test_guards.py); the registry's store is exported with it.
    for spec in (*semconv.BREAKER_METRICS, *STORE_METRICS):
        family = spec.prometheus_name.removesuffix("_total")  # the parser names counter families without it
        assert family in scraped, f"{spec.prometheus_name} missing"
        assert scraped[family][0] == spec.prometheus_type
    assert "target_info" in scraped


def test_label_sets(scraped: Scraped, detail: str) -> None:
    dependency = {"gen_ai_provider_name", "server_address", "gen_ai_operation_name", "db_system_name"}
    for spec in semconv.BREAKER_METRICS:
        family = spec.prometheus_name.removesuffix("_total")
        labels = labels_of(scraped[family][1])
        assert {"circuit_breaker_name", "circuit_breaker_level"} <= labels
        expected = set(spec.labels)
        if detail == "standard" and spec is semconv.METRIC_CIRCUIT_BREAKER_CALL_DURATION:
            expected.discard(semconv.CIRCUIT_BREAKER_OUTCOME_LABEL)  # one histogram per breaker
        assert labels - COMMON - dependency == expected, spec.name
    # Series are per breaker, never per request: the whole label space is small.
    states = 6 if detail == "full" else 3  # the manual states only while a breaker is in one
    assert len(scraped["circuit_breaker_state"][1]) == 4 * states


def test_topology_labels(scraped: Scraped) -> None:
    """Every series of a breaker names the service it belongs to (its own name for a service, its
    parent for an endpoint) or, for a feature, the services it requires (none: no label)."""
    topology = {"circuit_breaker_service", "circuit_breaker_requires"}
    expected = {
        "openai": {"circuit_breaker_service": "openai"},
        "openai.chat": {"circuit_breaker_service": "openai"},
        "postgres": {"circuit_breaker_service": "postgres"},
        "answer": {"circuit_breaker_requires": "openai"},  # requires openai.chat: its service
    }
    for spec in semconv.BREAKER_METRICS:
        family = spec.prometheus_name.removesuffix("_total")
        for labels in scraped[family][1]:
            got = {k: v for k, v in labels.items() if k in topology and v != ""}
            assert got == expected[labels["circuit_breaker_name"]], (spec.name, labels)


def test_values(scraped: Scraped, detail: str) -> None:
    def value(family: str, **labels: str) -> float:
        _, samples, values = scraped[family]
        matches = [v for s, v in zip(samples, values, strict=True) if all(s.get(k) == x for k, x in labels.items())]
        assert len(matches) == 1, (family, labels, matches)
        return matches[0]

    chat = {"circuit_breaker_name": "openai.chat"}
    assert value("circuit_breaker_state", circuit_breaker_state="closed", **chat) == 1
    assert value("circuit_breaker_state", circuit_breaker_state="open", **chat) == 0
    assert value("circuit_breaker_calls", circuit_breaker_outcome="success", **chat) == 10
    assert value("circuit_breaker_calls", circuit_breaker_outcome="ignored", **chat) == 1
    assert (
        value("circuit_breaker_calls", circuit_breaker_outcome="failure", error_type="ZeroDivisionError", **chat) == 2
    )
    # One call rejected by openai.chat itself, one turned away on behalf of the feature `answer`
    # that requires it (CircuitBreaker.reject_on_behalf: the dependency counts every caller).
    assert (
        value(
            "circuit_breaker_calls", circuit_breaker_outcome="rejected", circuit_breaker_rejection_reason="open", **chat
        )
        == 2
    )
    assert value("circuit_breaker_slow_calls", circuit_breaker_outcome="success", **chat) == 1
    assert (
        value(
            "circuit_breaker_transitions", circuit_breaker_previous_state="closed", circuit_breaker_state="open", **chat
        )
        == 1
    )
    assert value("circuit_breaker_recovery_duration_seconds_count", **chat) == 1
    if detail == "full":
        assert value("circuit_breaker_call_duration_seconds_count", circuit_breaker_outcome="success", **chat) == 10
    else:  # every outcome in one histogram: 10 successes, 2 failures, 1 ignored
        assert value("circuit_breaker_call_duration_seconds_count", **chat) == 13
    assert value("circuit_breaker_failure_rate", **chat) == 0.0
    assert (
        value(
            "circuit_breaker_fallbacks",
            circuit_breaker_name="answer",
            circuit_breaker_fallback_type=FallbackType.STATIC.value,
            circuit_breaker_outcome="success",
        )
        == 1
    )
    assert (
        value(
            "circuit_breaker_calls",
            circuit_breaker_name="answer",
            circuit_breaker_outcome="rejected",
            circuit_breaker_rejection_reason="parent_open",
        )
        == 1
    )
    # Series that would otherwise appear at 1 and lose that first event to rate(): the declared
    # fallback's failure outcome and the automatic cycle's transitions are there at 0.
    assert (
        value(
            "circuit_breaker_fallbacks",
            circuit_breaker_name="answer",
            circuit_breaker_fallback_type=FallbackType.STATIC.value,
            circuit_breaker_outcome="failure",
        )
        == 0
    )
    postgres = {"circuit_breaker_name": "postgres"}
    for previous, state in (("closed", "open"), ("open", "half_open"), ("half_open", "closed"), ("half_open", "open")):
        transitions = value(
            "circuit_breaker_transitions",
            circuit_breaker_previous_state=previous,
            circuit_breaker_state=state,
            **postgres,
        )
        assert transitions == 0
    # The parent label names the service; dependency attributes are inherited and added to.
    _, samples, _ = scraped["circuit_breaker_failure_rate_threshold"]
    chat_labels = next(s for s in samples if s["circuit_breaker_name"] == "openai.chat")
    assert chat_labels["circuit_breaker_parent"] == "openai"
    assert chat_labels["gen_ai_provider_name"] == "openai"
    assert chat_labels["gen_ai_operation_name"] == "chat"
    # The registry's store (in memory by default) is exported with it: available, no errors.
    assert value("circuit_breaker_store_available", circuit_breaker_store_backend="memory") == 1
    assert value("circuit_breaker_store_errors", circuit_breaker_store_backend="memory") == 0
    assert not any(family.startswith(("rate_limit_", "auth_lockout_", "concurrency_limit_")) for family in scraped)


async def test_asgi_app_in_fastapi(registry: BreakerRegistry) -> None:
    telemetry = BreakerTelemetry(registry, service_name="assistant", otlp=False)
    app = FastAPI()
    app.mount("/metrics", telemetry.asgi_app())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
        response = await client.get("/metrics/")
    telemetry.shutdown()
    assert response.status_code == 200
    assert "circuit_breaker_state{" in response.text
    assert 'service_name="assistant"' in response.text  # target_info carries the resource
