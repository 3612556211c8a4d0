"""Dry run: every notification rendered and recorded, none sent.

The bot runs in dry run when it has no credentials at all (or is told to): incidents, cards and
PagerDuty events are computed exactly as they would be sent, kept in the outbox with the rendered
request and logged, so a new installation shows what it would do before it can page anyone.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from .delivery import Delivered, IncidentView, Item
from .pagerduty import trigger_event
from .slack import card_blocks, card_text

__all__ = ["DryRunSender"]

logger = logging.getLogger("incident_bot.dryrun")


class DryRunSender:
    dry_run = True

    def __init__(self, target: str) -> None:
        self.target = target

    def destination_configured(self, destination: str) -> bool:
        return True

    async def close(self) -> None:
        return None  # no connection outlives a call

    async def send(self, item: Item, incident: IncidentView | None) -> Delivered:
        request = self.render(item, incident)
        logger.info(
            "dry run: would send %s %s to %s: %s", item.target, item.action, item.destination, json.dumps(request)[:500]
        )
        card = None
        if item.target == "slack" and item.action == "card" and incident is not None and incident.card is None:
            card = {"channel_id": item.destination, "ts": f"dry-run-{incident.id}"}
        return Delivered(f"dry run: {json.dumps(request, sort_keys=True)}", card=card)

    @staticmethod
    def render(item: Item, incident: IncidentView | None) -> dict[str, Any]:
        """The request that would be sent (without any secret)."""
        if incident is None:  # a change event or a channel message: all in the payload
            return {
                "action": item.action,
                "channel" if item.target == "slack" else "to": item.destination,
                **item.payload,
            }
        if item.target == "pagerduty":
            if item.action == "trigger":
                return {"event_action": "trigger", "dedup_key": incident.dedup_key, **trigger_event(incident)}
            if item.action in ("acknowledge", "resolve"):
                return {"event_action": item.action, "dedup_key": incident.dedup_key}
            return dict(item.payload)
        if item.action == "card":
            method = "chat.update" if incident.card else "chat.postMessage"
            return {
                "method": method,
                "channel": item.destination,
                "text": card_text(incident),
                "blocks": card_blocks(incident),
            }
        return {
            "method": "chat.postMessage",
            "channel": item.destination,
            "thread_ts": (incident.card or {}).get("ts"),
            **item.payload,
        }
