"""The incident bot: Alertmanager webhooks in; one incident per circuit breaker, durable and
idempotent; PagerDuty (Events API v2) and Slack (Block Kit cards with buttons) out.

Run it with ``python -m breakerpanel.incident_bot``; embed it with :func:`create_app`.
"""

from __future__ import annotations

from . import _extra  # noqa: F401  (first: a missing extra fails here, named)
from .app import create_app
from .runtime import Bot, StartupError
from .settings import Settings

__all__ = ["Bot", "Settings", "StartupError", "create_app"]
