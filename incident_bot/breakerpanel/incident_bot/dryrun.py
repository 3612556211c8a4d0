"""Dry run: every notification rendered and recorded, none sent.

The bot runs in dry run when it has no credentials at all (or is told to): incidents, cards and
PagerDuty events are computed exactly as they would be sent, kept in the outbox with the rendered
request and logged, so a new installation shows what it would do before it can page anyone.
Charts are drawn and stored as in earnest (drawing sends nothing): the incident page shows them,
and their uploads and image events are recorded like every other request.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from .delivery import ChartUpload, Delivered, IncidentView, Item, SlackCard
from .pagerduty import NOT_AFTER_RESOLVE, bounded_event, chart_event, trigger_event
from .slack import MAX_REPLY_TEXT, card_blocks, card_text, chart_filename, message_text
from .vocabulary import Action, IncidentStatus, Target

__all__ = ["DryRunSender"]

logger = logging.getLogger("breakerpanel.incident_bot.dryrun")


class DryRunSender:
    dry_run = True

    def __init__(self, target: Target, *, grafana_url: str | None = None) -> None:
        self.target = target
        self.grafana_url = grafana_url

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
        posts_a_card = item.target == Target.SLACK and item.action == Action.CARD
        if posts_a_card and incident is not None and incident.card is None:
            card = SlackCard(channel_id=item.destination, ts=f"dry-run-{incident.id}")
        upload = None
        uploads = item.target == Target.SLACK and item.action == Action.CHART
        if uploads and incident is not None and incident.chart is not None and incident.card is not None:
            # As if Slack held the file: the card's next refresh shows what its image block would be.
            upload = ChartUpload(incident.chart.id, f"dry-run-F{incident.chart.id}")
        return Delivered(f"dry run: {json.dumps(request, sort_keys=True)}", card=card, upload=upload)

    def render(self, item: Item, incident: IncidentView | None) -> dict[str, Any]:
        """The request that would be sent (without any secret), as the real sender shapes it:
        bounded, and escaped for Slack."""
        if item.target == Target.PAGERDUTY:
            if incident is not None and item.action == Action.TRIGGER:
                event = trigger_event(incident, grafana_url=self.grafana_url)
                return {"event_action": "trigger", "dedup_key": incident.dedup_key, **event}
            if incident is not None and item.action in (Action.ACKNOWLEDGE, Action.RESOLVE):
                return {"event_action": item.action, "dedup_key": incident.dedup_key}
            if incident is not None and item.action == Action.CHART:
                if incident.status == IncidentStatus.RESOLVED:
                    return {"event_action": "none", "why": NOT_AFTER_RESOLVE}
                event = chart_event(incident, grafana_url=self.grafana_url)
                return {"event_action": "trigger", "dedup_key": incident.dedup_key, **event}
            return {"action": item.action, "to": item.destination, **bounded_event(item.payload)}
        if incident is None:  # a message in the channel, about no incident (a change)
            text = message_text(str(item.payload.get("text", "")))
            return {"method": "chat.postMessage", "action": item.action, "channel": item.destination, "text": text}
        if item.action == Action.CARD:
            method = "chat.update" if incident.card else "chat.postMessage"
            return {
                "method": method,
                "channel": item.destination,
                "text": card_text(incident),
                "blocks": card_blocks(incident, grafana_url=self.grafana_url),
            }
        if item.action == Action.CHART and incident.chart is not None:
            return {
                "method": "files.upload_v2",
                "channel": incident.card.channel_id if incident.card else item.destination,
                "thread_ts": incident.card.ts if incident.card else None,
                "filename": chart_filename(incident, incident.chart.version),
                "title": incident.chart.caption,
                "png_bytes": len(incident.chart.png),
                "chart_url": incident.chart.image_url,
            }
        return {
            "method": "chat.postMessage",
            "channel": item.destination,
            "thread_ts": incident.card.ts if incident.card else None,
            "text": message_text(str(item.payload.get("text", "")), incident, limit=MAX_REPLY_TEXT),
        }
