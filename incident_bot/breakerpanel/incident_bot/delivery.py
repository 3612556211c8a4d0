"""What the outbox hands a sender, and what a sender answers: the contract between them.

A sender delivers one outbox item (a PagerDuty event, a Slack card or reply) and returns what it
must remember (a Slack card's ``ts``), or raises :class:`DeliveryError` saying whether trying again
can help and, when the service said so, when.

Everything an alert says (labels, annotations) is someone else's text of any length: senders cut
each field to what the far side accepts with :func:`bounded`, so that an oversized label shortens
a page instead of getting it refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeAlias
from urllib.parse import urlencode

from breakerpanel.exporter.loop_names import DETAIL, OVERVIEW, Var

from .identity import breaker_of
from .rows import Item, Labels, SlackCard
from .vocabulary import IncidentStatus, Target

__all__ = [
    "TRUNCATED",
    "AttachedIncident",
    "BreakerFigures",
    "ChartUpload",
    "ChartView",
    "Delivered",
    "DeliveryError",
    "FiringAlert",
    "IncidentView",
    "Item",
    "Sender",
    "SlackCard",
    "bounded",
    "dashboard_link",
]

#: Ends every text that was cut to fit: whoever reads it knows there was more.
TRUNCATED = "…(truncated)"


def bounded(text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else its start and :data:`TRUNCATED`,
    ``limit`` characters in all."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(TRUNCATED))] + TRUNCATED


#: The Grafana base the alert rules' generator writes into ``dashboard_url`` unless told another
#: (:mod:`breakerpanel.exporter.rules_config`, ``grafana_url``): on any other machine it points nowhere.
GENERATOR_GRAFANA_URL = "http://localhost:3000"


def dashboard_link(annotations: Mapping[str, str], labels: Mapping[str, str], grafana_url: str | None) -> str | None:
    """Where the alert's dashboard is: its ``dashboard_url`` (moved onto ``grafana_url`` when it
    carries the generator's default base), else, with ``grafana_url``, the breaker's detail
    dashboard with the breaker selected (the overview for an alert about no breaker), else none."""
    given = str(annotations.get("dashboard_url") or "")
    base = grafana_url.rstrip("/") if grafana_url else None
    if given.startswith(("http://", "https://")):
        if base is not None and (given == GENERATOR_GRAFANA_URL or given.startswith(GENERATOR_GRAFANA_URL + "/")):
            return base + given.removeprefix(GENERATOR_GRAFANA_URL)
        return given
    if base is None:
        return None
    breaker = breaker_of(labels)
    if breaker is None:
        return base + OVERVIEW.path()
    # The detail dashboard's variables, as the alert rules' links set them (loop_names.url).
    variables = {
        f"var-{Var.JOB}": breaker.job,
        f"var-{Var.LEVEL}": breaker.level,
        f"var-{Var.SERVICE}": breaker.service or breaker.parent or breaker.name,
        f"var-{Var.BREAKER}": breaker.name,
    }
    return f"{base}{DETAIL.path()}?{urlencode(variables)}"


class DeliveryError(Exception):
    """A delivery that did not happen. ``retryable``: 429, 5xx, a network error; not: a request
    the service will never accept (400, an unknown channel), which goes to the dead letters."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None, status: int | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


#: Live figures of a breaker from Prometheus (:mod:`.enrich`): rates and counts, its state's name.
BreakerFigures: TypeAlias = dict[str, float | str]


@dataclass(frozen=True, slots=True)
class FiringAlert:
    """An alert of the incident still firing, as cards and pages show it."""

    alertname: str
    severity: str
    #: Its ``summary`` annotation ("" without one).
    summary: str
    labels: Labels
    annotations: Labels
    generator_url: str


@dataclass(frozen=True, slots=True)
class AttachedIncident:
    """An incident attached to the one delivered (what its root cause touched)."""

    id: int
    title: str
    status: IncidentStatus
    #: The names of its alerts still firing.
    alerts: list[str]
    #: Those alerts, most severe first: a page raised by one of them says which (:mod:`.pagerduty`).
    firing: list[FiringAlert] = field(default_factory=list)


@dataclass(frozen=True)
class ChartView:
    """An incident's chart as a delivery needs it (:mod:`.charts` draws and stores it)."""

    id: int
    #: 1, 2, ... per incident.
    version: int
    #: Why it was drawn: opened, raised, resolved.
    reason: str
    #: The signed, expiring URL of its PNG (:mod:`.chart_links`), "" when chart URLs are off.
    image_url: str
    #: The PNG itself, for an upload (a Slack CHART item); empty otherwise.
    png: bytes = b""
    #: The Slack file the item's channel holds it as (the card shows it), once uploaded there.
    slack_file_id: str | None = None
    #: How many minutes it covers.
    minutes: int = 30

    @property
    def caption(self) -> str:
        return f"Chart v{self.version} ({self.reason}): the last {self.minutes} min"


@dataclass(frozen=True)
class IncidentView:
    """The incident as it is when an item is delivered: cards show the latest state."""

    id: int
    title: str
    dedup_key: str
    status: IncidentStatus
    severity: str
    labels: Labels
    annotations: Labels
    opened_at: float
    quiet_since: float | None
    resolved_at: float | None
    flaps: int
    acknowledged_by: str | None
    resolved_by: str | None
    #: The alerts still firing, most severe first.
    firing: list[FiringAlert]
    #: The card already posted in ``destination``, for Slack items.
    card: SlackCard | None = None
    #: Live figures from Prometheus, when it is configured: failure rate, threshold, transitions.
    figures: BreakerFigures = field(default_factory=dict)
    #: The bot's page for this incident.
    url: str = ""
    #: When the incident's first alert started firing (its ``startsAt``), when known.
    started_at: datetime | None = None
    #: The incidents attached to this one (what its root cause touched).
    children: list[AttachedIncident] = field(default_factory=list)
    #: For an attached incident, its root cause's incident.
    parent_id: int | None = None
    #: The chart a CHART item posts; for a Slack card, the latest chart uploaded to its channel.
    chart: ChartView | None = None


@dataclass(frozen=True)
class ChartUpload:
    """A chart uploaded to Slack: the file its channel's card will show."""

    chart_id: int
    file_id: str


@dataclass(frozen=True)
class Delivered:
    """A successful delivery; ``card`` is set when a Slack card was posted (to keep its ts),
    ``upload`` when a chart was uploaded (the card is refreshed to show it)."""

    detail: str = ""
    card: SlackCard | None = None
    upload: ChartUpload | None = None


class Sender(Protocol):
    """Delivers one target's items."""

    target: Target
    #: True for a sender that records instead of sending.
    dry_run: bool

    async def send(self, item: Item, incident: IncidentView | None) -> Delivered: ...

    def destination_configured(self, destination: str) -> bool: ...

    async def close(self) -> None:
        """Release connections (the worker calls it when it stops)."""
