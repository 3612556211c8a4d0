"""Semantic conventions for circuit-breaker telemetry: attributes, metrics, Prometheus names.

Generated from exporter/breakerpanel/exporter/semconv/ by ``python -m breakerpanel.exporter._codegen``.
Do not edit: change the registry and regenerate (tests/exporter/test_semconv.py fails when this file
is stale).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

SCHEMA_URL: Final = "https://breakerpanel.dev/schemas/v0.1.0"
SEMCONV_VERSION: Final = "v0.1.0"

# ---------------------------------------------------------------------- attributes

AUTH_LOCKOUT_NAME: Final = "auth_lockout.name"
"""The lockout guard's name, unique in the process."""
AUTH_LOCKOUT_NAME_LABEL: Final = "auth_lockout_name"
"""Its Prometheus label."""

AUTH_LOCKOUT_SUBJECT: Final = "auth_lockout.subject"
"""What a lockout applies to."""
AUTH_LOCKOUT_SUBJECT_LABEL: Final = "auth_lockout_subject"
"""Its Prometheus label."""

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

CIRCUIT_BREAKER_REQUIRES: Final = "circuit_breaker.requires"
"""The services a feature's required dependencies belong to, sorted and comma-separated."""
CIRCUIT_BREAKER_REQUIRES_LABEL: Final = "circuit_breaker_requires"
"""Its Prometheus label."""

CIRCUIT_BREAKER_SERVICE: Final = "circuit_breaker.service"
"""The service a breaker belongs to, the root cause its trouble points at."""
CIRCUIT_BREAKER_SERVICE_LABEL: Final = "circuit_breaker_service"
"""Its Prometheus label."""

CIRCUIT_BREAKER_STATE: Final = "circuit_breaker.state"
"""A state of the breaker."""
CIRCUIT_BREAKER_STATE_LABEL: Final = "circuit_breaker_state"
"""Its Prometheus label."""

CIRCUIT_BREAKER_STORE_BACKEND: Final = "circuit_breaker.store.backend"
"""Where breakers share their state."""
CIRCUIT_BREAKER_STORE_BACKEND_LABEL: Final = "circuit_breaker_store_backend"
"""Its Prometheus label."""

CONCURRENCY_LIMIT_NAME: Final = "concurrency_limit.name"
"""The concurrency limiter's name (a route or a dependency)."""
CONCURRENCY_LIMIT_NAME_LABEL: Final = "concurrency_limit_name"
"""Its Prometheus label."""

CONCURRENCY_LIMIT_OUTCOME: Final = "concurrency_limit.outcome"
"""What the concurrency limiter did with a request."""
CONCURRENCY_LIMIT_OUTCOME_LABEL: Final = "concurrency_limit_outcome"
"""Its Prometheus label."""

CONCURRENCY_LIMIT_PRIORITY: Final = "concurrency_limit.priority"
"""The request's priority under overload."""
CONCURRENCY_LIMIT_PRIORITY_LABEL: Final = "concurrency_limit_priority"
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

RATE_LIMIT_NAME: Final = "rate_limit.name"
"""The rate limiter's name, unique in the process."""
RATE_LIMIT_NAME_LABEL: Final = "rate_limit_name"
"""Its Prometheus label."""

RATE_LIMIT_OUTCOME: Final = "rate_limit.outcome"
"""What the rate limiter decided."""
RATE_LIMIT_OUTCOME_LABEL: Final = "rate_limit_outcome"
"""Its Prometheus label."""

SERVER_ADDRESS: Final = "server.address"
"""Server domain name, IP address or Unix domain socket name of the dependency."""
SERVER_ADDRESS_LABEL: Final = "server_address"
"""Its Prometheus label."""


class AuthLockoutSubjectValues(StrEnum):
    """Values of ``auth_lockout.subject``."""

    PRINCIPAL = "principal"
    """A user, an API client or another principal that authenticates."""

    ADDRESS = "address"
    """A source address."""


class CircuitBreakerFallbackTypeValues(StrEnum):
    """Values of ``circuit_breaker.fallback.type``."""

    ALTERNATE = "alternate"
    """Another target, behind its own breaker."""

    CACHE = "cache"
    """A cached response to the same call."""

    SEMANTIC_CACHE = "semantic_cache"
    """The stored answer of the most similar earlier question (a Redis 8 Vector Set lookup)."""

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


class CircuitBreakerStoreBackendValues(StrEnum):
    """Values of ``circuit_breaker.store.backend``."""

    MEMORY = "memory"
    """Nothing shared; every process decides on its own calls (the default)."""

    REDIS = "redis"
    """Shared through Redis (standalone or Redis Cluster)."""


class ConcurrencyLimitOutcomeValues(StrEnum):
    """Values of ``concurrency_limit.outcome``."""

    ACCEPTED = "accepted"
    """The request was admitted below the limit (or was critical)."""

    SHED = "shed"
    """The request was refused at once (503) because the limit was reached."""


class ConcurrencyLimitPriorityValues(StrEnum):
    """Values of ``concurrency_limit.priority``."""

    CRITICAL = "critical"
    """Never shed (health checks, admin calls)."""

    NORMAL = "normal"
    """Shed when the limit is reached."""

    SHEDDABLE = "sheddable"
    """Shed first, before the limit is reached."""


class RateLimitOutcomeValues(StrEnum):
    """Values of ``rate_limit.outcome``."""

    ALLOWED = "allowed"
    """The request was within its key's rate."""

    LIMITED = "limited"
    """The request was refused (429) until its key's quota refills."""


#: Attributes on every breaker series: the breaker's identity, then its dependency attributes.
COMMON_ATTRIBUTES: Final = (
    CIRCUIT_BREAKER_NAME,
    CIRCUIT_BREAKER_LEVEL,
    CIRCUIT_BREAKER_PARENT,
    CIRCUIT_BREAKER_SERVICE,
    CIRCUIT_BREAKER_REQUIRES,
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
    #: The attributes beyond COMMON_ATTRIBUTES (all of them, for metrics not in BREAKER_METRICS).
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
    description="Duration of the calls through the breaker (rejected calls excluded); by outcome at the full detail.",
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

METRIC_CIRCUIT_BREAKER_SLOW_CALL_DURATION_THRESHOLD: Final = MetricSpec(
    name="circuit_breaker.slow_call_duration.threshold",
    instrument="gauge",
    unit="s",
    description="The slow-call duration in force, in seconds; a call at least this long is slow.",
    prometheus_name="circuit_breaker_slow_call_duration_threshold_seconds",
    prometheus_type="gauge",
    attributes=(),
)

METRIC_CIRCUIT_BREAKER_TRIP_FORECASTS: Final = MetricSpec(
    name="circuit_breaker.trip_forecasts",
    instrument="counter",
    unit="{forecast}",
    description="Early warnings that the failure rate's trend reaches the threshold in force within the horizon.",
    prometheus_name="circuit_breaker_trip_forecasts_total",
    prometheus_type="counter",
    attributes=(),
)

METRIC_CIRCUIT_BREAKER_PROBES: Final = MetricSpec(
    name="circuit_breaker.probes",
    instrument="counter",
    unit="{probe}",
    description="Active health probes run while the breaker was open, by outcome.",
    prometheus_name="circuit_breaker_probes_total",
    prometheus_type="counter",
    attributes=(CIRCUIT_BREAKER_OUTCOME,),
)

METRIC_RATE_LIMIT_DECISIONS: Final = MetricSpec(
    name="rate_limit.decisions",
    instrument="counter",
    unit="{request}",
    description="Requests decided by the rate limiter, by outcome.",
    prometheus_name="rate_limit_decisions_total",
    prometheus_type="counter",
    attributes=(
        RATE_LIMIT_NAME,
        RATE_LIMIT_OUTCOME,
    ),
)

METRIC_RATE_LIMIT_LIMITED_KEYS: Final = MetricSpec(
    name="rate_limit.limited_keys",
    instrument="gauge",
    unit="{key}",
    description="Distinct keys (clients, API keys, addresses) the rate limiter refused in the last minute.",
    prometheus_name="rate_limit_limited_keys",
    prometheus_type="gauge",
    attributes=(RATE_LIMIT_NAME,),
)

METRIC_AUTH_LOCKOUT_FAILURES: Final = MetricSpec(
    name="auth_lockout.failures",
    instrument="counter",
    unit="{attempt}",
    description="Failed authentications recorded by the lockout guard.",
    prometheus_name="auth_lockout_failures_total",
    prometheus_type="counter",
    attributes=(AUTH_LOCKOUT_NAME,),
)

METRIC_AUTH_LOCKOUT_LOCKOUTS: Final = MetricSpec(
    name="auth_lockout.lockouts",
    instrument="counter",
    unit="{lockout}",
    description="Lockouts started, by what was locked out (a principal or a source address).",
    prometheus_name="auth_lockout_lockouts_total",
    prometheus_type="counter",
    attributes=(
        AUTH_LOCKOUT_NAME,
        AUTH_LOCKOUT_SUBJECT,
    ),
)

METRIC_AUTH_LOCKOUT_REJECTIONS: Final = MetricSpec(
    name="auth_lockout.rejections",
    instrument="counter",
    unit="{attempt}",
    description="Authentication attempts refused because their principal or address was locked out.",
    prometheus_name="auth_lockout_rejections_total",
    prometheus_type="counter",
    attributes=(AUTH_LOCKOUT_NAME,),
)

METRIC_CONCURRENCY_LIMIT_LIMIT: Final = MetricSpec(
    name="concurrency_limit.limit",
    instrument="gauge",
    unit="{request}",
    description="The adaptive concurrency limit in force.",
    prometheus_name="concurrency_limit_limit",
    prometheus_type="gauge",
    attributes=(CONCURRENCY_LIMIT_NAME,),
)

METRIC_CONCURRENCY_LIMIT_IN_FLIGHT: Final = MetricSpec(
    name="concurrency_limit.in_flight",
    instrument="gauge",
    unit="{request}",
    description="Requests in flight through the concurrency limiter, critical ones included.",
    prometheus_name="concurrency_limit_in_flight",
    prometheus_type="gauge",
    attributes=(CONCURRENCY_LIMIT_NAME,),
)

METRIC_CONCURRENCY_LIMIT_REQUESTS: Final = MetricSpec(
    name="concurrency_limit.requests",
    instrument="counter",
    unit="{request}",
    description="Requests through the concurrency limiter, by outcome and priority.",
    prometheus_name="concurrency_limit_requests_total",
    prometheus_type="counter",
    attributes=(
        CONCURRENCY_LIMIT_NAME,
        CONCURRENCY_LIMIT_OUTCOME,
        CONCURRENCY_LIMIT_PRIORITY,
    ),
)

METRIC_CIRCUIT_BREAKER_STORE_AVAILABLE: Final = MetricSpec(
    name="circuit_breaker.store.available",
    instrument="gauge",
    unit="1",
    description="Whether the shared breaker state is reachable (1) or breakers decide on local state alone (0).",
    prometheus_name="circuit_breaker_store_available",
    prometheus_type="gauge",
    attributes=(CIRCUIT_BREAKER_STORE_BACKEND,),
)

METRIC_CIRCUIT_BREAKER_STORE_ERRORS: Final = MetricSpec(
    name="circuit_breaker.store.errors",
    instrument="counter",
    unit="{error}",
    description="Failed operations against the state store since the process started; they never reach callers.",
    prometheus_name="circuit_breaker_store_errors_total",
    prometheus_type="counter",
    attributes=(CIRCUIT_BREAKER_STORE_BACKEND,),
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
    METRIC_CIRCUIT_BREAKER_SLOW_CALL_DURATION_THRESHOLD,
    METRIC_CIRCUIT_BREAKER_TRIP_FORECASTS,
    METRIC_CIRCUIT_BREAKER_PROBES,
    METRIC_RATE_LIMIT_DECISIONS,
    METRIC_RATE_LIMIT_LIMITED_KEYS,
    METRIC_AUTH_LOCKOUT_FAILURES,
    METRIC_AUTH_LOCKOUT_LOCKOUTS,
    METRIC_AUTH_LOCKOUT_REJECTIONS,
    METRIC_CONCURRENCY_LIMIT_LIMIT,
    METRIC_CONCURRENCY_LIMIT_IN_FLIGHT,
    METRIC_CONCURRENCY_LIMIT_REQUESTS,
    METRIC_CIRCUIT_BREAKER_STORE_AVAILABLE,
    METRIC_CIRCUIT_BREAKER_STORE_ERRORS,
)
#: The metrics of breakers, with COMMON_ATTRIBUTES on every series (the others describe guards
#: and the state store, and carry their attributes only).
BREAKER_METRICS: Final = (
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
    METRIC_CIRCUIT_BREAKER_SLOW_CALL_DURATION_THRESHOLD,
    METRIC_CIRCUIT_BREAKER_TRIP_FORECASTS,
    METRIC_CIRCUIT_BREAKER_PROBES,
)


def label(attribute: str) -> str:
    """The Prometheus label of an attribute: ``circuit_breaker.name`` -> ``circuit_breaker_name``."""
    return "".join(c if c.isalnum() else "_" for c in attribute)
