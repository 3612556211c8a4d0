"""Builders for Alertmanager webhooks and a bot engine over a temporary SQLite database."""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from breakerpanel.incident_bot.alertmanager import Webhook
from breakerpanel.incident_bot.db import Database, events, incidents, outbox
from breakerpanel.incident_bot.intake import IntakeWriter
from breakerpanel.incident_bot.routing import RoutingFile

EPOCH = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)

#: A routes file that pages critical alerts and posts everything to Slack.
ROUTING = RoutingFile.model_validate(
    {
        "routes": [
            {
                "name": "page critical",
                "match": {"severity": "critical"},
                "pagerduty": {"routing_key_env": "PD_KEY"},
                "slack": {"channels": ["#incidents"]},
            }
        ],
        "default": {"slack": {"channels": ["#breakers"]}},
    }
)


def breaker_labels(
    name: str,
    *,
    level: str = "service",
    parent: str = "",
    alertname: str = "CircuitBreakerOpen",
    severity: str = "critical",
    job: str = "rag",
    requires: str = "",
) -> dict[str, str]:
    """An alert's labels about a breaker, as the rules write them (``requires``: a feature's
    ``circuit_breaker_requires``)."""
    labels = {
        "alertname": alertname,
        "severity": severity,
        "job": job,
        "circuit_breaker_name": name,
        "circuit_breaker_level": level,
    }
    if parent:
        labels["circuit_breaker_parent"] = parent
    if requires:
        labels["circuit_breaker_requires"] = requires
    return labels


_fingerprints = itertools.count(1)


@dataclass
class AlertSpec:
    labels: dict[str, str]
    starts: int = 0  # minutes after EPOCH
    fingerprint: str = field(default_factory=lambda: f"{next(_fingerprints):016x}")
    summary: str = "Circuit breaker has been open for more than 5m."

    def payload(self, status: str, *, ends: int | None = None) -> dict[str, Any]:
        starts_at = EPOCH + timedelta(minutes=self.starts)
        ends_at = starts_at + timedelta(minutes=ends if ends is not None else 60)
        return {
            "status": status,
            "labels": self.labels,
            "annotations": {
                "summary": self.summary,
                "runbook_url": "https://runbooks.example/circuit-breaker-open.md",
                "dashboard_url": "http://grafana.example/d/breakerpanel-detail/detail",
            },
            "startsAt": starts_at.isoformat().replace("+00:00", "Z"),
            "endsAt": (ends_at if status == "resolved" else datetime(1, 1, 1, tzinfo=UTC))
            .isoformat()
            .replace("+00:00", "Z"),
            "generatorURL": "http://prometheus.example/graph",
            "fingerprint": self.fingerprint,
        }


def webhook(
    *alerts: tuple[AlertSpec, str], group_key: str = '{}:{alertname="CircuitBreakerOpen"}', **extra: Any
) -> dict[str, Any]:
    """A version-4 webhook as Alertmanager 0.25 sends it (``extra`` adds newer fields)."""
    rendered = [spec.payload(status) for spec, status in alerts]
    status = "firing" if any(a["status"] == "firing" for a in rendered) else "resolved"
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "incident-bot",
        "groupLabels": {"alertname": rendered[0]["labels"]["alertname"]},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": rendered,
        **extra,
    }


class ManualClock:
    """Wall-clock seconds that move only when told (``follow_real_time``: real time, shifted by
    every :meth:`advance`, for tests where real waits such as retries happen too)."""

    def __init__(self, at: float = 1_800_000_000.0, *, follow_real_time: bool = False) -> None:
        self._at = at
        self._offset = 0.0
        self.follow_real_time = follow_real_time

    @property
    def at(self) -> float:
        return self()

    def __call__(self) -> float:
        return time.time() + self._offset if self.follow_real_time else self._at

    def advance(self, seconds: float) -> None:
        self._at += seconds
        self._offset += seconds


async def store(db: Database, payload: Mapping[str, Any]) -> bool:
    """Store a webhook as intake does; False when it was a duplicate."""
    writer = IntakeWriter(db)
    writer.start()
    try:
        accepted = await writer.write(Webhook.model_validate(payload).dedupe_key(), dict(payload))
    finally:
        await writer.stop()
    return not accepted.duplicate


async def rows(db: Database, table: Any, *where: Any) -> list[Any]:
    async with db.transaction() as conn:
        return list(
            (await conn.execute(select(table).where(*where).order_by(table.c[next(iter(table.c.keys()))]))).all()
        )


async def notifications(db: Database, incident_id: int | None = None) -> list[tuple[int, str, str, str]]:
    """``(incident, target, action, destination)`` of every outbox item, in order."""
    where = [outbox.c.incident_id == incident_id] if incident_id is not None else []
    return [(r.incident_id, r.target, r.action, r.destination) for r in await rows(db, outbox, *where)]


async def timeline(db: Database, incident_id: int) -> list[str]:
    return [r.kind for r in await rows(db, events, events.c.incident_id == incident_id)]


async def all_incidents(db: Database) -> list[Any]:
    return await rows(db, incidents)
