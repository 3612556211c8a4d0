"""The semantic-conventions registry: valid, resolved, and the generated files current."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from breakerpanel.exporter import semconv
from breakerpanel.exporter._codegen import outputs
from breakerpanel.exporter._registry import REGISTRY_DIR, RegistryError, load_registry, prometheus_metric_name

ROOT = Path(__file__).resolve().parents[2]

# The issue's table: OTel name, instrument, unit, Prometheus name, attributes beyond the common ones.
EXPECTED = [
    ("circuit_breaker.state", "gauge", "1", "circuit_breaker_state", {"circuit_breaker.state"}),
    (
        "circuit_breaker.calls",
        "counter",
        "{call}",
        "circuit_breaker_calls_total",
        {"circuit_breaker.outcome", "error.type", "circuit_breaker.rejection.reason"},
    ),
    (
        "circuit_breaker.slow_calls",
        "counter",
        "{call}",
        "circuit_breaker_slow_calls_total",
        {"circuit_breaker.outcome"},
    ),
    (
        "circuit_breaker.call.duration",
        "histogram",
        "s",
        "circuit_breaker_call_duration_seconds",
        {"circuit_breaker.outcome"},
    ),
    (
        "circuit_breaker.transitions",
        "counter",
        "{transition}",
        "circuit_breaker_transitions_total",
        {"circuit_breaker.previous_state", "circuit_breaker.state"},
    ),
    ("circuit_breaker.failure_rate", "gauge", "1", "circuit_breaker_failure_rate", set()),
    ("circuit_breaker.slow_call_rate", "gauge", "1", "circuit_breaker_slow_call_rate", set()),
    ("circuit_breaker.failure_rate.threshold", "gauge", "1", "circuit_breaker_failure_rate_threshold", set()),
    ("circuit_breaker.slow_call_rate.threshold", "gauge", "1", "circuit_breaker_slow_call_rate_threshold", set()),
    ("circuit_breaker.recovery.duration", "histogram", "s", "circuit_breaker_recovery_duration_seconds", set()),
    (
        "circuit_breaker.fallbacks",
        "counter",
        "{call}",
        "circuit_breaker_fallbacks_total",
        {"circuit_breaker.fallback.type", "circuit_breaker.outcome"},
    ),
    # Issue 8: adaptive thresholds, trip forecast, health probes.
    (
        "circuit_breaker.slow_call_duration.threshold",
        "gauge",
        "s",
        "circuit_breaker_slow_call_duration_threshold_seconds",
        set(),
    ),
    ("circuit_breaker.trip_forecasts", "counter", "{forecast}", "circuit_breaker_trip_forecasts_total", set()),
    ("circuit_breaker.probes", "counter", "{probe}", "circuit_breaker_probes_total", {"circuit_breaker.outcome"}),
    # Issue 9: the guards (rate limiters, authentication lockouts, concurrency limiters); no common attributes.
    (
        "rate_limit.decisions",
        "counter",
        "{request}",
        "rate_limit_decisions_total",
        {"rate_limit.name", "rate_limit.outcome"},
    ),
    ("rate_limit.limited_keys", "gauge", "{key}", "rate_limit_limited_keys", {"rate_limit.name"}),
    ("auth_lockout.failures", "counter", "{attempt}", "auth_lockout_failures_total", {"auth_lockout.name"}),
    (
        "auth_lockout.lockouts",
        "counter",
        "{lockout}",
        "auth_lockout_lockouts_total",
        {"auth_lockout.name", "auth_lockout.subject"},
    ),
    ("auth_lockout.rejections", "counter", "{attempt}", "auth_lockout_rejections_total", {"auth_lockout.name"}),
    ("concurrency_limit.limit", "gauge", "{request}", "concurrency_limit_limit", {"concurrency_limit.name"}),
    ("concurrency_limit.in_flight", "gauge", "{request}", "concurrency_limit_in_flight", {"concurrency_limit.name"}),
    (
        "concurrency_limit.requests",
        "counter",
        "{request}",
        "concurrency_limit_requests_total",
        {"concurrency_limit.name", "concurrency_limit.outcome", "concurrency_limit.priority"},
    ),
    # Issue 8: the state store's availability (Redis down: breakers decide on local state).
    (
        "circuit_breaker.store.available",
        "gauge",
        "1",
        "circuit_breaker_store_available",
        {"circuit_breaker.store.backend"},
    ),
    (
        "circuit_breaker.store.errors",
        "counter",
        "{error}",
        "circuit_breaker_store_errors_total",
        {"circuit_breaker.store.backend"},
    ),
]


def test_the_metrics_are_the_issues_table() -> None:
    got = [(m.name, m.instrument, m.unit, m.prometheus_name, set(m.attributes)) for m in semconv.METRICS]
    assert got == EXPECTED
    breaker_metrics = [m.name for m in semconv.BREAKER_METRICS]
    expected = [name for name, *_ in EXPECTED if name.startswith("circuit_breaker.") and ".store." not in name]
    assert breaker_metrics == expected


def test_attributes_and_their_values() -> None:
    assert semconv.COMMON_ATTRIBUTES[:3] == ("circuit_breaker.name", "circuit_breaker.level", "circuit_breaker.parent")
    assert set(semconv.DEPENDENCY_ATTRIBUTES) == {
        "server.address",
        "db.system.name",
        "gen_ai.provider.name",
        "gen_ai.operation.name",
        "gen_ai.request.model",
    }
    assert [v.value for v in semconv.CircuitBreakerStateValues] == [
        "closed",
        "open",
        "half_open",
        "forced_open",
        "disabled",
        "metrics_only",
    ]
    assert [v.value for v in semconv.CircuitBreakerRejectionReasonValues] == [
        "open",
        "half_open_full",
        "parent_open",
        "forced_open",
    ]
    assert [v.value for v in semconv.CircuitBreakerFallbackTypeValues] == [
        "alternate",
        "cache",
        "semantic_cache",
        "simplified",
        "static",
    ]
    assert semconv.label("circuit_breaker.rejection.reason") == "circuit_breaker_rejection_reason"


def test_the_registry_matches_the_breakers_vocabulary() -> None:
    """The registry's enums are the breaker library's own enums, value for value."""
    from breakerpanel import FallbackType, Level, Outcome, RejectionReason, State
    from breakerpanel.guards import Priority, SubjectKind

    pairs = [
        (semconv.CircuitBreakerStateValues, State),
        (semconv.CircuitBreakerPreviousStateValues, State),
        (semconv.CircuitBreakerLevelValues, Level),
        (semconv.CircuitBreakerOutcomeValues, Outcome),
        (semconv.CircuitBreakerRejectionReasonValues, RejectionReason),
        (semconv.CircuitBreakerFallbackTypeValues, FallbackType),
        (semconv.AuthLockoutSubjectValues, SubjectKind),
        (semconv.ConcurrencyLimitPriorityValues, Priority),
    ]
    for generated, ours in pairs:
        assert [v.value for v in generated] == [v.value for v in ours]
    from breakerpanel import MemoryStore

    assert MemoryStore().status().backend in {v.value for v in semconv.CircuitBreakerStoreBackendValues}


def test_generated_files_are_current() -> None:
    stale = [str(path.relative_to(ROOT)) for path, text in outputs().items() if path.read_text() != text]
    assert not stale, f"run `python -m breakerpanel.exporter._codegen`: stale {stale}"
    result = subprocess.run(
        [sys.executable, "-m", "breakerpanel.exporter._codegen", "--check"], cwd=ROOT, capture_output=True
    )
    assert result.returncode == 0


@pytest.mark.parametrize(
    ("name", "unit", "expected"),
    [
        ("circuit_breaker.calls", "{call}", "circuit_breaker_calls"),
        ("circuit_breaker.call.duration", "s", "circuit_breaker_call_duration_seconds"),
        ("circuit_breaker.state", "1", "circuit_breaker_state"),
        ("queue.size", "By", "queue_size_bytes"),
        ("lag", "ms", "lag_milliseconds"),
    ],
)
def test_prometheus_names(name: str, unit: str, expected: str) -> None:
    assert prometheus_metric_name(name, unit) == expected


def broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    copy = tmp_path / "semconv"
    shutil.copytree(REGISTRY_DIR, copy)
    model = copy / "model" / "circuit_breaker.yaml"
    text = model.read_text()
    assert old in text
    model.write_text(text.replace(old, new, 1))
    return copy


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "      - ref: circuit_breaker.outcome\n",
            "      - ref: circuit_breaker.outcom\n",
            "is not a defined attribute",
        ),
        ('    unit: "{call}"\n', "", "unit is missing"),
        ("    instrument: counter\n", "    instrument: meter\n", "instrument"),
        ("id: circuit_breaker.parent\n", "id: circuit_breaker.name\n", "defined twice"),
        ("metric_name: circuit_breaker.calls\n", "metric_name: circuit_breaker.call\n", "id should be"),
        ("extends: attributes.circuit_breaker.common\n", "extends: attributes.nowhere\n", "not a group"),
        (
            "    stability: development\n    brief: Calls through",
            "    stabilty: development\n    brief: Calls through",
            "stabilty",
        ),
        ('              value: "half_open"\n', '              value: "open"\n', "must be unique"),
    ],
)
def test_invalid_registries_are_explained(tmp_path: Path, old: str, new: str, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        load_registry(broken_copy(tmp_path, old, new))


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    copy = broken_copy(tmp_path, "groups:\n", "groups: [\n")
    with pytest.raises(RegistryError, match=r"circuit_breaker\.yaml: not valid YAML"):
        load_registry(copy)
