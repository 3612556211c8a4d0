"""Slack: one Block Kit card per incident and channel, updated in place, changes in its thread.

Sent with ``slack-sdk``'s AsyncWebClient. Its own retry handlers cover connection errors; a 429
is not retried here but handed to the outbox with Slack's ``Retry-After``, so a rate-limited
channel waits without holding up the others.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from .delivery import Delivered, DeliveryError, IncidentView, Item

__all__ = ["ACK_ACTION", "RESOLVE_ACTION", "SlackSender", "card_blocks", "card_text"]

ACK_ACTION = "incident_acknowledge"
RESOLVE_ACTION = "incident_resolve"

#: Slack errors that another try cannot fix: the request is wrong or the channel is not ours.
_PERMANENT = {
    "channel_not_found",
    "not_in_channel",
    "is_archived",
    "invalid_blocks",
    "invalid_arguments",
    "msg_too_long",
    "no_text",
    "not_authed",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "missing_scope",
    "message_not_found",
    "cant_update_message",
}

_STATUS = {
    "open": ":red_circle: Open",
    "acknowledged": ":large_orange_circle: Acknowledged",
    "quiet": ":large_yellow_circle: Recovering",
    "resolved": ":large_green_circle: Resolved",
    "attached": ":link: Attached",
}
#: Section text is limited to 3000 characters.
_TEXT_LIMIT = 2900


def _status(incident: IncidentView) -> str:
    if incident.status in ("open", "acknowledged") and incident.quiet_since is not None:
        return "quiet"
    return incident.status


def _when(at: float) -> str:
    """Slack renders this in each reader's time zone."""
    fallback = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(at)}^{{date_short_pretty}} {{time}}|{fallback}>"


def card_text(incident: IncidentView) -> str:
    """The card's plain-text fallback (notifications, screen readers)."""
    return f"{_STATUS[_status(incident)].split(' ', 1)[1]}: {incident.title} ({incident.severity})"


def card_blocks(incident: IncidentView) -> list[dict[str, Any]]:
    """The incident's card: status, figures, firing alerts, links and, while live, the buttons."""
    status = _status(incident)
    fields = [
        f"*Status*\n{_STATUS[status]}",
        f"*Severity*\n{incident.severity}",
        f"*Since*\n{_when(incident.opened_at)}",
        f"*Flaps*\n{incident.flaps}",
    ]
    figures = incident.figures
    if "failure_rate" in figures:
        threshold = figures.get("failure_rate_threshold")
        against = f" (threshold {threshold:.0%})" if isinstance(threshold, float) else ""
        fields.append(f"*Failure rate*\n{figures['failure_rate']:.0%}{against}")
    if "state" in figures:
        fields.append(f"*Breaker state*\n{figures['state']}")
    if "fallbacks_served_per_s" in figures:
        fields.append(f"*Fallbacks served*\n{figures['fallbacks_served_per_s']:.2f}/s")
    if "transitions_1h" in figures:
        fields.append(f"*Transitions (1h)*\n{figures['transitions_1h']:.0f}")
    if incident.acknowledged_by:
        fields.append(f"*Acknowledged by*\n{incident.acknowledged_by}")
    if incident.resolved_by:
        fields.append(f"*Resolved by*\n{incident.resolved_by}")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"#{incident.id} {incident.title}"[:150]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields[:10]]},
    ]
    if incident.firing:
        lines = [f"• *{a['alertname']}* ({a['severity']}): {a.get('summary', '')}" for a in incident.firing]
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:_TEXT_LIMIT]}})
    elif status == "resolved":
        ended = incident.resolved_at or time.time()
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"Resolved {_when(ended)}. No alert is firing."}}
        )
    buttons: list[dict[str, Any]] = []
    if status != "resolved" and incident.status in ("open", "acknowledged"):
        if incident.status == "open":
            buttons.append(_button("Acknowledge", ACK_ACTION, str(incident.id), style="primary"))
        buttons.append(_button("Resolve", RESOLVE_ACTION, str(incident.id), style="danger"))
    annotations = {**incident.annotations, **((incident.firing[0].get("annotations") or {}) if incident.firing else {})}
    for key, text in (("dashboard_url", "Dashboard"), ("runbook_url", "Runbook")):
        url = str(annotations.get(key, ""))
        if url.startswith(("http://", "https://")):
            buttons.append({"type": "button", "action_id": f"link_{key}", "text": _plain(text), "url": url[:3000]})
    if incident.url:
        buttons.append(
            {"type": "button", "action_id": "link_timeline", "text": _plain("Timeline"), "url": incident.url}
        )
    if buttons:
        blocks.append({"type": "actions", "block_id": f"incident-{incident.id}", "elements": buttons[:25]})
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"PagerDuty dedup key `{incident.dedup_key}`"}]}
    )
    return blocks


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:75]}


def _button(text: str, action_id: str, value: str, *, style: str) -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "text": _plain(text), "value": value, "style": style}


class SlackSender:
    target = "slack"
    dry_run = False

    def __init__(self, token: str, *, base_url: str, timeout: int = 10) -> None:
        self.client = AsyncWebClient(
            token=token,
            base_url=base_url,
            timeout=timeout,
            retry_handlers=[AsyncConnectionErrorRetryHandler(max_retry_count=1)],
        )

    def destination_configured(self, destination: str) -> bool:
        return True

    async def close(self) -> None:
        return None  # no connection outlives a call

    async def send(self, item: Item, incident: IncidentView | None) -> Delivered:
        try:
            if item.action == "message":  # a line in the channel, about no incident (a change)
                response = await self.client.chat_postMessage(channel=item.destination, text=str(item.payload["text"]))
                return Delivered(f"posted {response['ts']}")
            if incident is None:
                raise DeliveryError(f"a Slack {item.action} needs its incident", retryable=False)
            if item.action == "card":
                return await self._card(item, incident)
            if item.action == "reply":
                return await self._reply(item, incident)
        except SlackApiError as exc:
            raise _api_error(exc) from None
        except (OSError, TimeoutError) as exc:
            raise DeliveryError(f"Slack unreachable: {exc}", retryable=True) from None
        raise DeliveryError(f"unknown Slack action {item.action!r}", retryable=False)

    async def _card(self, item: Item, incident: IncidentView) -> Delivered:
        blocks, text = card_blocks(incident), card_text(incident)
        if incident.card is not None:
            await self.client.chat_update(
                channel=incident.card["channel_id"], ts=incident.card["ts"], blocks=blocks, text=text
            )
            return Delivered(f"updated {incident.card['ts']}")
        response = await self.client.chat_postMessage(channel=item.destination, blocks=blocks, text=text)
        card = {"channel_id": str(response["channel"]), "ts": str(response["ts"])}
        return Delivered(f"posted {card['ts']}", card=card)

    async def _reply(self, item: Item, incident: IncidentView) -> Delivered:
        text = str(item.payload.get("text", ""))[:_TEXT_LIMIT]
        if incident.card is None:
            # The card never made it (it went to the dead letters): say it in the channel instead.
            response = await self.client.chat_postMessage(
                channel=item.destination, text=f"#{incident.id} {incident.title}: {text}"
            )
        else:
            response = await self.client.chat_postMessage(
                channel=incident.card["channel_id"], thread_ts=incident.card["ts"], text=text
            )
        return Delivered(f"replied {response['ts']}")


def _api_error(exc: SlackApiError) -> DeliveryError:
    response = exc.response
    status = response.status_code
    error = str(response.get("error", "")) if isinstance(response.data, dict) else ""
    retry_after = None
    header = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), None)
    if header is not None:
        try:
            retry_after = max(0.0, float(header))
        except ValueError:
            retry_after = None
    retryable = (
        status == 429
        or status >= 500
        or error in ("ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout")
    )
    if error in _PERMANENT:
        retryable = False
    return DeliveryError(
        f"Slack answered {status} {error}".strip(), retryable=retryable, retry_after=retry_after, status=status
    )
