"""Reading what the exporter shows of a source: /metrics text, parsed back into series."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import prometheus_client
from prometheus_client.parser import text_string_to_metric_families

from breakerpanel.exporter import BreakerSource, BreakerTelemetry

Labels = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class Scrape:
    """The samples of one /metrics page: ``(sample name, labels) -> value``."""

    samples: Mapping[tuple[str, Labels], float]

    def series(self, sample: str, breaker: str) -> dict[Labels, float]:
        """The samples named ``sample`` of breaker ``breaker``."""
        return {
            labels: value
            for (name, labels), value in self.samples.items()
            if name == sample and ("circuit_breaker_name", breaker) in labels
        }

    def labels_of(self, breaker: str) -> dict[str, str]:
        """The labels every series of ``breaker`` carries (from its state gauge)."""
        series = self.series("circuit_breaker_state", breaker)
        assert series, f"no state series for {breaker!r}"
        common = set.intersection(*(set(labels) for labels in series))
        return dict(common)

    def state(self, breaker: str) -> str:
        """The state whose gauge is 1 (asserting the others are 0)."""
        gauges = {
            dict(labels)["circuit_breaker_state"]: value
            for labels, value in self.series("circuit_breaker_state", breaker).items()
        }
        # The automatic states always; a manual one at the full detail, or while the breaker is in it.
        assert {"closed", "open", "half_open"} <= set(gauges), gauges
        assert set(gauges) <= {"closed", "open", "half_open", "forced_open", "disabled", "metrics_only"}, gauges
        on = [state for state, value in gauges.items() if value == 1]
        assert len(on) == 1, gauges
        assert sum(gauges.values()) == 1, gauges
        return on[0]

    def calls(self, breaker: str) -> dict[tuple[str, str, str], float]:
        """Non-zero ``circuit_breaker_calls_total`` by (outcome, error_type, rejection_reason)."""
        out = {}
        for labels, value in self.series("circuit_breaker_calls_total", breaker).items():
            d = dict(labels)
            if value:
                key = (
                    d["circuit_breaker_outcome"],
                    d.get("error_type", ""),
                    d.get("circuit_breaker_rejection_reason", ""),
                )
                out[key] = value
        return out

    def transitions(self, breaker: str) -> dict[tuple[str, str], float]:
        """The transitions that happened (the exporter also reports the automatic cycle's at 0)."""
        out = {}
        for labels, value in self.series("circuit_breaker_transitions_total", breaker).items():
            d = dict(labels)
            if value:
                out[(d["circuit_breaker_previous_state"], d["circuit_breaker_state"])] = value
        return out

    def duration_counts(self, breaker: str) -> dict[str, float]:
        """``circuit_breaker_call_duration_seconds_count`` by outcome."""
        return {
            dict(labels)["circuit_breaker_outcome"]: value
            for labels, value in self.series("circuit_breaker_call_duration_seconds_count", breaker).items()
        }

    def recoveries(self, breaker: str) -> float:
        series = self.series("circuit_breaker_recovery_duration_seconds_count", breaker)
        assert len(series) == 1, series
        return next(iter(series.values()))

    def names(self, sample: str = "circuit_breaker_state") -> set[str]:
        return {dict(labels)["circuit_breaker_name"] for (name, labels) in self.samples if name == sample}


def parse(text: str) -> Scrape:
    samples: dict[tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scrape(samples)


def scrape_telemetry(telemetry: BreakerTelemetry) -> Scrape:
    return parse(prometheus_client.generate_latest(telemetry.prometheus_registry).decode())


def scrape(*sources: BreakerSource) -> Scrape:
    """What /metrics shows of ``sources``, exported as the brief says: a fresh telemetry each time,
    at the full detail (durations by outcome show what the adapters count of each)."""
    telemetry = BreakerTelemetry(*sources, service_name="t", otlp=False, detail="full")
    try:
        return scrape_telemetry(telemetry)
    finally:
        telemetry.shutdown()
