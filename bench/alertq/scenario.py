"""Alert-quality scenarios: one YAML file each (bench/alert_scenarios/), read into typed models.

Every time in a scenario file is *scenario time*: what it would be in production. The harness runs
the alerting pipeline at a compressed time scale (``--time-scale``, 0.1 by default: ten times faster)
and divides every scenario time by it too, so a ``10m`` outage lasts 60 s of wall-clock time. The
breakers themselves are not scaled (bench/alert_quality.py says why).

A bad file gives a :class:`~breakerpanel.config.ConfigFileError` naming the line, the key and the reason.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from breakerpanel.config import load_yaml_model, parse_duration

__all__ = [
    "BreakerStep",
    "ChaosStep",
    "Expectation",
    "ExpectedIncident",
    "ProcessStep",
    "Scenario",
    "Step",
    "chaos_body",
    "load_scenario",
]

#: Seconds of scenario time: ``90s``, ``5m``, ``1h``, or a number.
Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0, allow_inf_nan=False)]
Upstream = Literal["openai", "anthropic", "qdrant"]
Fault = Literal["error_rate", "latency", "outage", "rate_limit", "slow_stream", "stall_stream", "clear"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChaosStep(_Model):
    """A fault in one fake upstream (``clear`` ends it), through its chaos API."""

    upstream: Upstream
    fault: Fault
    #: Which fake-upstreams process: all of them (None), or the one serving that replica.
    replica: int | None = Field(None, ge=0)
    #: The fault's own fields (demo/upstreams/chaos.py): rate, status, seconds, mode, retry_after_s...
    params: dict[str, float | int | str] = Field(default_factory=dict)


class ProcessStep(_Model):
    """Process control: ``kill`` (SIGKILL, it stays down), ``start`` (after a kill), ``restart``
    (SIGTERM, then started again on the same port: the same ``instance``)."""

    target: str = Field(pattern=r"^(demo-\d+|redis)$", description="`demo-0`, `demo-1`... or `redis`.")
    action: Literal["kill", "start", "restart"]


class BreakerStep(_Model):
    """A person's manual change through the demo's admin API."""

    replica: int = Field(0, ge=0)
    name: str
    state: Literal["forced_open", "disabled", "metrics_only", "closed"]


class Step(_Model):
    """What happens at ``at`` (scenario time since the load started): exactly one of the three."""

    at: Duration
    chaos: ChaosStep | None = None
    process: ProcessStep | None = None
    breaker: BreakerStep | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        given = [name for name in ("chaos", "process", "breaker") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"a step has exactly one of chaos, process, breaker (got {given or 'none'})")
        return self

    def action(self) -> ChaosStep | ProcessStep | BreakerStep:
        action = self.chaos or self.process or self.breaker
        assert action is not None
        return action


class ExpectedIncident(_Model):
    """One incident an on-call engineer should get: its subject, how urgent, who was paged."""

    #: The root cause's breaker (``circuit_breaker.name``), or for an alert about no breaker its
    #: alert name (``alert: BreakerMetricsAbsent``).
    breaker: str | None = None
    alert: str | None = None
    severity: Literal["warning", "critical"]
    paged: bool
    #: Breakers whose alerts must be attached to this incident (at least these).
    children: list[str] = Field(default_factory=list)
    #: Breakers that may be attached too (a fault touches them depending on timing).
    may_attach: list[str] = Field(default_factory=list)
    #: Latest scenario times for the first notification and for the resolution, if any.
    notified_by: Duration | None = None
    resolved_by: Duration | None = None

    @model_validator(mode="after")
    def _one_subject(self) -> ExpectedIncident:
        if (self.breaker is None) == (self.alert is None):
            raise ValueError("an expected incident names either a breaker or an alert")
        return self

    @property
    def subject(self) -> str:
        return self.breaker if self.breaker is not None else f"alert:{self.alert}"


class Expectation(_Model):
    incidents: list[ExpectedIncident] = Field(default_factory=list)
    #: PagerDuty change events (manual states), at least this many.
    change_events: int = Field(0, ge=0)
    #: Slack messages (posts and edits) allowed per expected incident; a scenario with none allows
    #: this many for its change events.
    max_slack_messages_per_fault: int = Field(3, ge=0)


class Scenario(_Model):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str
    #: Demo service replicas (``demo-0``...), each with its own load generator.
    replicas: int = Field(1, ge=1, le=4)
    #: One fake-upstreams process per replica (so a fault can hit one replica only), or one shared.
    upstreams_per_replica: bool = False
    #: User requests per second to each replica.
    rps: float = Field(4.0, gt=0, le=50)
    #: Faults present from the start (a background error rate for a soak), never cleared.
    background: list[ChaosStep] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    #: How long the load runs, from its start (scenario time).
    duration: Duration
    #: A soak: every incident it raises is a false one.
    soak: bool = False
    expect: Expectation

    @model_validator(mode="after")
    def _steps_in_time(self) -> Scenario:
        for index, step in enumerate(self.steps):
            if step.at > self.duration:
                raise ValueError(f"steps.{index}.at ({step.at:g}s) is after the end of the load ({self.duration:g}s)")
            replica = getattr(step.action(), "replica", None)
            if replica is not None and replica >= self.replicas:
                raise ValueError(f"steps.{index}: replica {replica} does not exist ({self.replicas} replica(s))")
            process = step.process
            demo = process.target.removeprefix("demo-") if process is not None else "redis"
            if demo.isdigit() and int(demo) >= self.replicas:
                raise ValueError(f"steps.{index}: demo-{demo} does not exist ({self.replicas} replica(s))")
        if any(s.chaos is not None and s.chaos.replica is not None for s in self.steps) and not (
            self.upstreams_per_replica
        ):
            raise ValueError("a chaos step names a replica: set upstreams_per_replica: true")
        return self

    @property
    def faults(self) -> int:
        """Root causes the scenario injects: the incidents it expects."""
        return len(self.expect.incidents)

    def uses_redis_process(self) -> bool:
        return any(s.process is not None and s.process.target == "redis" for s in self.steps)


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Read and validate one scenario file."""
    return load_yaml_model(path, Scenario, expected="a scenario: name, description, duration, steps, expect")


def chaos_body(step: ChaosStep) -> dict[str, Any]:
    """A chaos step as the chaos API's PUT body. Its durations (``*_s``, ``seconds``) are NOT scaled:
    they are what the breakers meet (a 5 s latency, a 2 s Retry-After), and the breakers run in real
    time; only when a step happens is scenario time."""
    body: dict[str, Any] = {"fault": step.fault}
    for key, value in step.params.items():
        if isinstance(value, str) and (key.endswith("_s") or key == "seconds"):
            body[key] = parse_duration(value)
        else:
            body[key] = value
    return body
