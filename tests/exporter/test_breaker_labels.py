"""``promql.breaker_labels``: the labels of a breaker's series, exactly as ``/metrics`` writes them
(the promtool tests ``breakerpanel rules`` writes label their input series with it)."""

from __future__ import annotations

from breakerpanel import BreakerRegistry
from breakerpanel.exporter import BreakerTelemetry, promql

from .adapters_support import scrape_telemetry


def test_breaker_labels_are_those_of_its_series() -> None:
    registry = BreakerRegistry()
    # team.name is not in the registry's list: the exporter drops it.
    registry.service("openai", attributes={"gen_ai.provider.name": "openai", "team.name": "ml"})
    registry.endpoint("openai.chat", attributes={"gen_ai.operation.name": "chat"})
    registry.service("qdrant", attributes={"db.system.name": "qdrant"})
    registry.feature("search", required=["openai.chat", "qdrant"])
    telemetry = BreakerTelemetry(registry, service_name="t", otlp=False)
    try:
        scraped = scrape_telemetry(telemetry)
    finally:
        telemetry.shutdown()
    for breaker in registry.breakers():
        # An empty label is no label to Prometheus (the exposition writes some, to keep one label set).
        states = [
            {k: v for k, v in labels if v and k != "circuit_breaker_state"}
            for name, labels in scraped.samples
            if name == "circuit_breaker_state" and ("circuit_breaker_name", breaker.name) in labels
        ]
        assert states, f"no state series for {breaker.name}"
        assert all(labels == promql.breaker_labels(breaker) for labels in states), (states, breaker.name)
    assert promql.breaker_labels(registry["search"]) == {
        "circuit_breaker_name": "search",
        "circuit_breaker_level": "feature",
        "circuit_breaker_requires": "openai,qdrant",
    }
