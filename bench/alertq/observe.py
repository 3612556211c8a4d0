"""What happened during a run, as the harness saw it: breaker transitions at the replicas, alerts in
Prometheus, and afterwards what reached the fake PagerDuty and Slack and what the bot made of it.

A :class:`Watcher` thread polls the replicas' ``/health/ready`` and Prometheus's ``/api/v1/alerts``
every ``interval`` seconds while the scenario runs, so that trip times and the moments alerts stop
firing are known to within that interval.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from demo.stack.status import breaker_nodes

from .pipeline import Pipeline

__all__ = ["AlertSpan", "Observed", "Transition", "Watcher", "collect"]


@dataclass(frozen=True)
class Transition:
    at: float
    replica: str
    breaker: str
    state: str


@dataclass
class AlertSpan:
    """One alert (by its labels) firing in Prometheus, from ``first`` to ``last`` seen."""

    labels: dict[str, str]
    first: float
    last: float


@dataclass
class Observed:
    transitions: list[Transition] = field(default_factory=list)
    alerts: dict[tuple[tuple[str, str], ...], AlertSpan] = field(default_factory=dict)
    #: Filled by :func:`collect` after the run.
    incidents: list[dict[str, Any]] = field(default_factory=list)
    pagerduty: list[dict[str, Any]] = field(default_factory=list)
    slack: list[dict[str, Any]] = field(default_factory=list)

    def trips(self, breaker: str, after: float = 0.0) -> list[Transition]:
        return [t for t in self.transitions if t.breaker == breaker and t.state == "open" and t.at >= after]


class Watcher(threading.Thread):
    def __init__(self, pipeline: Pipeline, observed: Observed, interval: float = 0.2) -> None:
        super().__init__(name="alert-quality-watcher", daemon=True)
        self.pipeline = pipeline
        self.observed = observed
        self.interval = interval
        self._halt = threading.Event()
        self._states: dict[tuple[str, str], str] = {}

    def stop(self) -> None:
        self._halt.set()
        self.join(10)

    def run(self) -> None:
        while not self._halt.is_set():
            started = time.time()
            self._breakers(started)
            self._alerts(started)
            self._halt.wait(max(0.0, self.interval - (time.time() - started)))

    def _breakers(self, now: float) -> None:
        for demo in self.pipeline.demos:
            if not demo.is_running():
                continue
            health = demo.health()
            if health is None:
                continue
            for node in breaker_nodes(health.get("breakers", health)):
                key = (demo.name, str(node["name"]))
                state = str(node["state"])
                if self._states.get(key) != state:
                    self._states[key] = state
                    self.observed.transitions.append(Transition(now, demo.name, key[1], state))

    def _alerts(self, now: float) -> None:
        prometheus = self.pipeline.prometheus
        if prometheus is None:
            return
        try:
            alerts = prometheus.alerts()
        except Exception:  # a slow answer on a busy machine: the next poll catches up
            return
        for alert in alerts:
            if alert.get("state") != "firing":
                continue
            labels = {str(k): str(v) for k, v in alert["labels"].items()}
            key = tuple(sorted(labels.items()))
            span = self.observed.alerts.get(key)
            if span is None:
                self.observed.alerts[key] = AlertSpan(labels, now, now)
            else:
                span.last = now


def _stamp(value: Any) -> float:
    return float(value.timestamp())


def collect(pipeline: Pipeline, observed: Observed) -> None:
    """What reached PagerDuty and Slack, and the bot's incidents with their alerts and children."""
    summaries = pipeline.bot_get("/v1/incidents?limit=500")
    observed.incidents = [pipeline.bot_get(f"/v1/incidents/{s['id']}") for s in summaries]
    observed.pagerduty = [
        {
            "at": _stamp(event.received_at),
            "kind": event.kind,
            "action": event.event_action,
            "dedup_key": event.dedup_key,
            "summary": (event.body.get("payload") or {}).get("summary"),
            "severity": (event.body.get("payload") or {}).get("severity"),
        }
        for event in pipeline.pagerduty.events
    ]
    observed.slack = [
        {
            "at": _stamp(call.received_at),
            "method": call.method,
            "channel": call.args.get("channel"),
            "ts": call.args.get("ts") or call.response.get("ts"),
            "thread_ts": call.args.get("thread_ts"),
            "text": str(call.args.get("text", ""))[:300],
            "ok": call.ok,
        }
        for call in pipeline.slack.calls
        if call.method in ("chat.postMessage", "chat.update") and call.ok
    ]
