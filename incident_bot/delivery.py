"""What the outbox hands a sender, and what a sender answers: the contract between them.

A sender delivers one outbox item (a PagerDuty event, a Slack card or reply) and returns what it
must remember (a Slack card's ``ts``), or raises :class:`DeliveryError` saying whether trying again
can help and, when the service said so, when.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Delivered", "DeliveryError", "IncidentView", "Item", "Sender"]


class DeliveryError(Exception):
    """A delivery that did not happen. ``retryable``: 429, 5xx, a network error; not: a request
    the service will never accept (400, an unknown channel), which goes to the dead letters."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None, status: int | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


@dataclass
class Item:
    """One outbox row, as the worker claimed it."""

    id: int
    #: None for a change notification (a manual breaker state), which belongs to no incident.
    incident_id: int | None
    target: str
    action: str
    destination: str
    payload: dict[str, Any]
    attempts: int
    created_at: float
    #: When this replica's claim on the row runs out, unless renewed (the worker's clock).
    claimed_until: float = 0.0


@dataclass(frozen=True)
class IncidentView:
    """The incident as it is when an item is delivered: cards show the latest state."""

    id: int
    title: str
    dedup_key: str
    status: str
    severity: str
    labels: dict[str, Any]
    annotations: dict[str, Any]
    opened_at: float
    quiet_since: float | None
    resolved_at: float | None
    flaps: int
    acknowledged_by: str | None
    resolved_by: str | None
    #: The alerts still firing: ``{"alertname", "severity", "summary", "labels", "annotations"}``.
    firing: list[dict[str, Any]]
    #: The card already posted in ``destination`` (``{"channel_id", "ts"}``), for Slack items.
    card: dict[str, str] | None = None
    #: Live figures from Prometheus, when it is configured: failure rate, threshold, transitions.
    figures: dict[str, Any] = field(default_factory=dict)
    #: The bot's page for this incident.
    url: str = ""


@dataclass(frozen=True)
class Delivered:
    """A successful delivery; ``card`` is set when a Slack card was posted (to keep its ts)."""

    detail: str = ""
    card: dict[str, str] | None = None


class Sender(Protocol):
    """Delivers one target's items (``pagerduty`` or ``slack``)."""

    target: str
    #: True for a sender that records instead of sending.
    dry_run: bool

    async def send(self, item: Item, incident: IncidentView | None) -> Delivered: ...

    def destination_configured(self, destination: str) -> bool: ...

    async def close(self) -> None:
        """Release connections (the worker calls it when it stops)."""
