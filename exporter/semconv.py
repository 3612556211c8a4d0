"""Semantic conventions for circuit-breaker telemetry: attributes, metrics, Prometheus names.

Generated from exporter/semconv/ by ``python -m exporter._codegen``. Do not edit: change the
registry and regenerate (tests/exporter/test_semconv.py fails when this file is stale).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

SCHEMA_URL: Final = "https://breakerpanel.dev/schemas/v0.1.0"
SEMCONV_VERSION: Final = "v0.1.0"

# ---------------------------------------------------------------------- attributes

CIRCUIT_BREAKER_FALLBACK_TYPE: Final = "circuit_breaker.fallback.type"
"""The kind of fallback step."""
CIRCUIT_BREAKER_FALLBACK_TYPE_LABEL: Final = "circuit_breaker_fallback_type"
"""Its Prometheus label."""

CIRCUIT_BREAKER_LEVEL: Final = "circuit_breaker.level"
"""Where the breaker sits in the hierarchy."""
CIRCUIT_BREAKER_LEVEL_LABEL: Final = "circuit_breaker_level"
"""Its Prometheus label."""

CIRCUIT_BREAKER_NAME: Final = "circuit_breaker.name"
"""The breaker's name, unique in the process."""
CIRCUIT_BREAKER_NAME_LABEL: Final = "circuit_breaker_name"
"""Its Prometheus label."""

CIRCUIT_BREAKER_OUTCOME: Final = "circuit_breaker.outcome"
"""How a call ended, as the breaker counts it."""
CIRCUIT_BREAKER_OUTCOME_LABEL: Final = "circuit_breaker_outcome"
"""Its Prometheus label."""

CIRCUIT_BREAKER_PARENT: Final = "circuit_breaker.parent"
"""The name of the breaker that admits this one's calls first (an endpoint's service)."""
CIRCUIT_BREAKER_PARENT_LABEL: Final = "circuit_breaker_parent"
"""Its Prometheus label."""

CIRCUIT_BREAKER_PREVIOUS_STATE: Final = "circuit_breaker.previous_state"
"""The state a transition left."""
CIRCUIT_BREAKER_PREVIOUS_STATE_LABEL: Final = "circuit_breaker_previous_state"
"""Its Prometheus label."""

CIRCUIT_BREAKER_REJECTION_REASON: Final = "circuit_breaker.rejection.reason"
"""Why a call was rejected."""
CIRCUIT_BREAKER_REJECTION_REASON_LABEL: Final = "circuit_breaker_rejection_reason"
"""Its Prometheus label."""

CIRCUIT_BREAKER_STATE: Final = "circuit_breaker.state"
"""A state of the breaker."""
CIRCUIT_BREAKER_STATE_LABEL: Final = "circuit_breaker_state"
"""Its Prometheus label."""

DB_SYSTEM_NAME: Final = "db.system.name"
"""The database management system product, as OpenTelemetry names it."""
DB_SYSTEM_NAME_LABEL: Final = "db_system_name"
"""Its Prometheus label."""

ERROR_TYPE: Final = "error.type"
"""Describes a class of error the operation ended with."""
ERROR_TYPE_LABEL: Final = "error_type"
"""Its Prometheus label."""

GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
"""The name of the GenAI operation being performed."""
GEN_AI_OPERATION_NAME_LABEL: Final = "gen_ai_operation_name"
"""Its Prometheus label."""

GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
"""The generative AI provider, as OpenTelemetry's GenAI conventions name it."""
GEN_AI_PROVIDER_NAME_LABEL: Final = "gen_ai_provider_name"
"""Its Prometheus label."""

GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
"""The name of the GenAI model a request is being made to."""
GEN_AI_REQUEST_MODEL_LABEL: Final = "gen_ai_request_model"
"""Its Prometheus label."""

SERVER_ADDRESS: Final = "server.address"
"""Server domain name, IP address or Unix domain socket name of the dependency."""
SERVER_ADDRESS_LABEL: Final = "server_address"
"""Its Prometheus label."""


class CircuitBreakerFallbackTypeValues(StrEnum):
    """Values of ``circuit_breaker.fallback.type``."""

    ALTERNATE = "alternate"
    """Another target, behind its own breaker."""

    CACHE = "cache"
    """A cached response to the same call."""

    SIMPLIFIED = "simplified"
    """A cheaper way to answer."""

    STATIC = "static"
    """A fixed value."""


class CircuitBreakerLevelValues(StrEnum):
    """Values of ``circuit_breaker.level``."""

    SERVICE = "service"
    """One dependency."""

    ENDPOINT = "endpoint"
    """One operation on a dependency; its calls are admitted by its service first."""

    FEATURE = "feature"
    """A user-facing capability that depends on services and endpoints."""


class CircuitBreakerOutcomeValues(StrEnum):
    """Values of ``circuit_breaker.outcome``."""

    SUCCESS = "success"
    """The call succeeded."""

    FAILURE = "failure"
    """The call failed in a way that counts against the dependency."""

    IGNORED = "ignored"
    """The call ended in a way that says nothing about the dependency (a bad request, a cancellation)."""

    REJECTED = "rejected"
    """The breaker rejected the call without attempting it."""


class CircuitBreakerPreviousStateValues(StrEnum):
    """Values of ``circuit_breaker.previous_state``."""

    CLOSED = "closed"
    """Calls pass and are counted; the breaker trips on its thresholds."""

    OPEN = "open"
    """Calls are rejected until the open wait ends."""

    HALF_OPEN = "half_open"
    """A bounded number of probe calls decides whether to close or reopen."""

    FORCED_OPEN = "forced_open"
    """Calls are rejected, by hand."""

    DISABLED = "disabled"
    """Calls pass and nothing is counted, by hand."""

    METRICS_ONLY = "metrics_only"
    """Calls pass and are counted, but the breaker never trips (a dry run)."""


class CircuitBreakerRejectionReasonValues(StrEnum):
    """Values of ``circuit_breaker.rejection.reason``."""

    OPEN = "open"
    """The breaker is open."""

    HALF_OPEN_FULL = "half_open_full"
    """The breaker is half-open and every probe permit is taken."""

    PARENT_OPEN = "parent_open"
    """A breaker this one depends on (its service, a feature's dependency) is open."""

    FORCED_OPEN = "forced_open"
    """The breaker was opened by hand."""


class CircuitBreakerStateValues(StrEnum):
    """Values of ``circuit_breaker.state``."""

    CLOSED = "closed"
    """Calls pass and are counted; the breaker trips on its thresholds."""

    OPEN = "open"
    """Calls are rejected until the open wait ends."""

    HALF_OPEN = "half_open"
    """A bounded number of probe calls decides whether to close or reopen."""

    FORCED_OPEN = "forced_open"
    """Calls are rejected, by hand."""

    DISABLED = "disabled"
    """Calls pass and nothing is counted, by hand."""

    METRICS_ONLY = "metrics_only"
    """Calls pass and are counted, but the breaker never trips (a dry run)."""


#: Attributes on every breaker series: the breaker's identity, then its dependency attributes.
COMMON_ATTRIBUTES: Final = (
    CIRCUIT_BREAKER_NAME,
    CIRCUIT_BREAKER_LEVEL,
    CIRCUIT_BREAKER_PARENT,
    SERVER_ADDRESS,
    DB_SYSTEM_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_OPERATION_NAME,
    GEN_AI_REQUEST_MODEL,
)
#: The dependency attributes a breaker may carry (configured per breaker; others are dropped).
DEPENDENCY_ATTRIBUTES: Final = (
    SERVER_ADDRESS,
    DB_SYSTEM_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_OPERATION_NAME,
    GEN_AI_REQUEST_MODEL,
)

# ---------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its OpenTelemetry definition and the Prometheus series it becomes."""

    name: str
    instrument: str
    unit: str
    description: str
    #: The series name in Prometheus (histograms add _bucket, _sum and _count).
    prometheus_name: str
    prometheus_type: str
    #: The attributes beyond COMMON_ATTRIBUTES.
    attributes: tuple[str, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        """Prometheus labels beyond the common ones."""
        return tuple(label(a) for a in self.attributes)


METRIC_CIRCUIT_BREAKER_STATE: Final = MetricSpec(
    name="circuit_breaker.state",
    instrument="gauge",
    unit="1",
    description="The breaker's state, as one series per state set to 1 for the current state and 0 for the others.",
    prometheus_name="circuit_breaker_state",
    prometheus_type="gauge",
    attributes=(CIRCUIT_BREAKER_STATE,),
)

METRIC_CIRCUIT_BREAKER_CALLS: Final = MetricSpec(
    name="circuit_breaker.calls",
    instrument="counter",
    unit="{call}",
    description="Calls through the breaker, by outcome; rejected calls included.",
    prometheus_name="circuit_breaker_calls_total",
    prometheus_type="counter",
    attributes=(
        CIRCUIT_BREAKER_OUTCOME,
        ERROR_TYPE,
        CIRCUIT_BREAKER_REJECTION_REASON,
    ),
)

METRIC_CIRCUIT_BREAKER_SLOW_CALLS: Final = MetricSpec(
    name="circuit_breaker.slow_calls",
    instrument="counter",
    unit="{call}",
    description="Calls that took at least the breaker's slow-call duration, by outcome.",
    prometheus_name="circuit_breaker_slow_calls_total",
    prometheus_type="counter",
    attributes=(CIRCUIT_BREAKER_OUTCOME,),
)

METRIC_CIRCUIT_BREAKER_CALL_DURATION: Final = MetricSpec(
    name="circuit_breaker.call.duration",
    instrument="histogram",
    unit="s",
    description="Duration of the calls through the breaker, by outcome (rejected calls excluded).",
    prometheus_name="circuit_breaker_call_duration_seconds",
    prometheus_type="histogram",
    attributes=(CIRCUIT_BREAKER_OUTCOME,),
)

METRIC_CIRCUIT_BREAKER_TRANSITIONS: Final = MetricSpec(
    name="circuit_breaker.transitions",
    instrument="counter",
    unit="{transition}",
    description="State changes of the breaker, by the state left and the state entered.",
    prometheus_name="circuit_breaker_transitions_total",
    prometheus_type="counter",
    attributes=(
        CIRCUIT_BREAKER_PREVIOUS_STATE,
        CIRCUIT_BREAKER_STATE,
    ),
)

METRIC_CIRCUIT_BREAKER_FAILURE_RATE: Final = MetricSpec(
    name="circuit_breaker.failure_rate",
    instrument="gauge",
    unit="1",
    description="The failure rate in the breaker's sliding window, from 0 to 1.",
    prometheus_name="circuit_breaker_failure_rate",
    prometheus_type="gauge",
    attributes=(),
)

METRIC_CIRCUIT_BREAKER_SLOW_CALL_RATE: Final = MetricSpec(
    name="circuit_breaker.slow_call_rate",
    instrument="gauge",
    unit="1",
    description="The slow-call rate in the breaker's sliding window, from 0 to 1.",
    prometheus_name="circuit_breaker_slow_call_rate",
    prometheus_type="gauge",
    attributes=(),
)

METRIC_CIRCUIT_BREAKER_FAILURE_RATE_THRESHOLD: Final = MetricSpec(
    name="circuit_breaker.failure_rate.threshold",
    instrument="gauge",
    unit="1",
    description="The failure-rate threshold in force, from 0 to 1.",
    prometheus_name="circuit_breaker_failure_rate_threshold",
    prometheus_type="gauge",
    attributes=(),
)

METRIC_CIRCUIT_BREAKER_SLOW_CALL_RATE_THRESHOLD: Final = MetricSpec(
    name="circuit_breaker.slow_call_rate.threshold",
    instrument="gauge",
    unit="1",
    description="The slow-call-rate threshold in force, from 0 to 1.",
    prometheus_name="circuit_breaker_slow_call_rate_threshold",
    prometheus_type="gauge",
    attributes=(),
)

METRIC_CIRCUIT_BREAKER_RECOVERY_DURATION: Final = MetricSpec(
    name="circuit_breaker.recovery.duration",
    instrument="histogram",
    unit="s",
    description="Time from the breaker leaving the closed state to its being closed again.",
    prometheus_name="circuit_breaker_recovery_duration_seconds",
    prometheus_type="histogram",
    attributes=(),
)

METRIC_CIRCUIT_BREAKER_FALLBACKS: Final = MetricSpec(
    name="circuit_breaker.fallbacks",
    instrument="counter",
    unit="{call}",
    description="Uses of fallback steps for the breaker's calls, by type and by whether the step served the call.",
    prometheus_name="circuit_breaker_fallbacks_total",
    prometheus_type="counter",
    attributes=(
        CIRCUIT_BREAKER_FALLBACK_TYPE,
        CIRCUIT_BREAKER_OUTCOME,
    ),
)

# ---------------------------------------------------------------------- span events

EVENT_CIRCUIT_BREAKER_STATE_CHANGE: Final = "circuit_breaker.state_change"
"""The breaker changed state, recorded on the span that was active when it did."""
EVENT_CIRCUIT_BREAKER_REJECTION: Final = "circuit_breaker.rejection"
"""The breaker rejected a call, recorded on the caller's span."""
EVENT_CIRCUIT_BREAKER_FALLBACK: Final = "circuit_breaker.fallback"
"""A fallback step ran for one of the breaker's calls, recorded on the caller's span."""

METRICS: Final = (
    METRIC_CIRCUIT_BREAKER_STATE,
    METRIC_CIRCUIT_BREAKER_CALLS,
    METRIC_CIRCUIT_BREAKER_SLOW_CALLS,
    METRIC_CIRCUIT_BREAKER_CALL_DURATION,
    METRIC_CIRCUIT_BREAKER_TRANSITIONS,
    METRIC_CIRCUIT_BREAKER_FAILURE_RATE,
    METRIC_CIRCUIT_BREAKER_SLOW_CALL_RATE,
    METRIC_CIRCUIT_BREAKER_FAILURE_RATE_THRESHOLD,
    METRIC_CIRCUIT_BREAKER_SLOW_CALL_RATE_THRESHOLD,
    METRIC_CIRCUIT_BREAKER_RECOVERY_DURATION,
    METRIC_CIRCUIT_BREAKER_FALLBACKS,
)


def label(attribute: str) -> str:
    """The Prometheus label of an attribute: ``circuit_breaker.name`` -> ``circuit_breaker_name``."""
    return "".join(c if c.isalnum() else "_" for c in attribute)
