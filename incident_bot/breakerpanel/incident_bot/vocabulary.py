"""The words the bot stores and sends: incident, alert and delivery statuses, delivery targets and
actions, timeline entries.

Each is a :class:`~enum.StrEnum` whose values are the strings the database columns hold and the
API shows: a member *is* that string (``IncidentStatus.OPEN == "open"``), so rows written before
these types existed read back unchanged, and JSON carries the plain value.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = [
    "LIVE_STATUSES",
    "Action",
    "AlertStatus",
    "DeliveryStatus",
    "EventKind",
    "IncidentStatus",
    "Target",
]


class IncidentStatus(StrEnum):
    """``incidents.status``."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    #: Folded under the incident of its root cause (``parent_id``): no page or card of its own.
    ATTACHED = "attached"

    @property
    def live(self) -> bool:
        """A root incident still going on: people can acknowledge or resolve it."""
        return self in LIVE_STATUSES


#: The statuses of a root incident that has not ended (an attached one is live through its parent).
LIVE_STATUSES: Final = (IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED)


class AlertStatus(StrEnum):
    """An alert's status, as Alertmanager sends it and ``alerts.status`` keeps it."""

    FIRING = "firing"
    RESOLVED = "resolved"


class DeliveryStatus(StrEnum):
    """``outbox.status``: waiting (or being delivered under a claim), delivered, or given up on."""

    PENDING = "pending"
    SENT = "sent"
    #: A permanent failure (a request the far side will never accept): the dead letters.
    DEAD = "dead"


class Target(StrEnum):
    """``outbox.target``: who a delivery goes to. The wire formats are theirs (pagerduty.py, slack.py)."""

    PAGERDUTY = "pagerduty"
    SLACK = "slack"
    #: The bot itself: render an incident's chart from Prometheus, store it, queue its posts (charts.py).
    CHART = "chart"


class Action(StrEnum):
    """``outbox.action``: what a delivery does at its target."""

    #: PagerDuty: open the incident's alert, or update it (same ``dedup_key``).
    TRIGGER = "trigger"
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"
    #: PagerDuty: a change event (a breaker put in a manual state): it belongs to no incident.
    CHANGE = "change"
    #: Slack: post the incident's card in a channel, or edit the one posted there.
    CARD = "card"
    #: Slack: a line in the card's thread.
    REPLY = "reply"
    #: Slack: a line in the channel, about no incident (a change).
    MESSAGE = "message"
    #: Chart: draw the incident's chart and store it; its posts follow as CHART items.
    RENDER = "render"
    #: PagerDuty: an event (same ``dedup_key``) with the chart as its image. Slack: the chart
    #: uploaded into the card's thread (then the card shows it).
    CHART = "chart"


class EventKind(StrEnum):
    """``events.kind``: what a line of an incident's timeline records."""

    OPENED = "opened"
    ROUTED = "routed"
    ALERT_FIRING = "alert_firing"
    ALERT_RESOLVED = "alert_resolved"
    FLAP = "flap"
    QUIET = "quiet"
    RAISED = "raised"
    TRUNCATED = "truncated"
    CHANGE = "change"
    ATTACHED = "attached"
    CHILD_ATTACHED = "child_attached"
    CHILD_RESOLVED = "child_resolved"
    PROMOTED = "promoted"
    PAGE_ADOPTED = "page_adopted"
    PAGE_WITHDRAWN = "page_withdrawn"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    DELIVERY_FAILED = "delivery_failed"
    #: The incident's chart was drawn (its posts follow).
    CHART = "chart"
    #: No chart this time, and why (Prometheus unreachable, no series of the breaker).
    NO_CHART = "no_chart"
