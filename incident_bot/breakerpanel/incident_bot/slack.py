"""Slack: one Block Kit card per incident and channel, updated in place, changes in its thread.

Sent with ``slack-sdk``'s AsyncWebClient. Its own retry handlers cover connection errors; a 429
is not retried here but handed to the outbox with Slack's ``Retry-After``, so a rate-limited
channel waits without holding up the others.

What an alert says is text, never markup: ``&``, ``<`` and ``>`` in every piece of it (titles,
summaries, descriptions, labels, breaker names) are escaped (:func:`escape`), so an alert saying
``<!here>`` or ``<@U123>`` notifies nobody. Only the bot's own markup stays live: dates, the
mention of whoever pressed a button. And every field is cut to Slack's limits (message text
40,000 characters, a section's text 3,000, 50 blocks, ...), with a visible "…(truncated)", so an
oversized label shortens the card instead of getting it refused.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from .delivery import (
    TRUNCATED,
    ChartUpload,
    Delivered,
    DeliveryError,
    IncidentView,
    Item,
    SlackCard,
    bounded,
    dashboard_link,
)
from .vocabulary import Action, IncidentStatus, Target

__all__ = [
    "ACK_ACTION",
    "RESOLVE_ACTION",
    "SlackSender",
    "card_blocks",
    "card_text",
    "chart_block",
    "chart_filename",
    "escape",
    "message_text",
]

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
#: Slack's limits (chat.postMessage, Block Kit): message text, blocks per message, a section's or
#: context element's text, a section field, a header, a button's text and URL.
MAX_MESSAGE_TEXT = 40_000
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
#: Attached incidents listed on a card (the rest: a count, and the incident's page).
MAX_CHILD_LINES = 10
MAX_FIELD_TEXT = 2000
MAX_FIELDS = 10
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_URL = 3000
#: A thread reply is a line of the timeline: more would bury the thread.
MAX_REPLY_TEXT = 3000
#: An image block's alt text and title (Block Kit).
MAX_IMAGE_ALT_TEXT = 2000
MAX_IMAGE_TITLE = 2000

#: A Slack user mention as the bot writes one for whoever pressed a button (app.py: ``<@U…>``).
_PERSON = re.compile(r"<@[A-Z0-9]+>")
#: An entity cut in half at the end of a cut text (``&am``): dropped rather than shown broken.
_HALF_ENTITY = re.compile(r"&[a-z]{0,3}$")


def escape(text: object) -> str:
    """``text`` as Slack shows it literally: ``&``, ``<`` and ``>`` escaped, the three characters
    Slack parses (mentions such as ``<!here>``, links, dates), in mrkdwn and plain text alike."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fit(text: str, limit: int) -> str:
    """Escaped ``text`` cut to ``limit`` with the marker, never inside an entity."""
    if len(text) <= limit:
        return text
    head = _HALF_ENTITY.sub("", text[: max(0, limit - len(TRUNCATED))])
    return head + TRUNCATED


def _status(incident: IncidentView) -> str:
    """What the card shows: the incident's status, or "quiet" for a live one whose alerts are over."""
    if incident.status.live and incident.quiet_since is not None:
        return "quiet"
    return incident.status.value


def _when(at: float) -> str:
    """Slack renders this in each reader's time zone."""
    fallback = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(at)}^{{date_short_pretty}} {{time}}|{fallback}>"


def _since(incident: IncidentView) -> float:
    """When the incident started: its first alert's ``startsAt``, as its PagerDuty page says, else
    when the bot opened it."""
    return incident.started_at.timestamp() if incident.started_at is not None else incident.opened_at


def _person(who: str) -> str:
    """Who pressed a button: the bot wrote ``<@U…>`` from Slack's signed payload (a live mention);
    anything else is text."""
    return who if _PERSON.fullmatch(who) else escape(who)


def card_text(incident: IncidentView) -> str:
    """The card's plain-text fallback (notifications, screen readers)."""
    status = _STATUS[_status(incident)].split(" ", 1)[1]
    return _fit(f"{status}: {escape(incident.title)} ({escape(incident.severity)})", MAX_MESSAGE_TEXT)


def message_text(text: str, incident: IncidentView | None = None, *, limit: int = MAX_MESSAGE_TEXT) -> str:
    """A message or thread reply the engine wrote, for Slack: escaped (it quotes alert names and
    breakers), but for the lines the engine writes about a person's press ("Acknowledged by
    <@U…>.", "Resolved by <@U…>."), whose mention must notify that person; cut to ``limit``."""
    if incident is not None:
        for who in (incident.acknowledged_by, incident.resolved_by):
            if who and _PERSON.fullmatch(who) and text in (f"Acknowledged by {who}.", f"Resolved by {who}."):
                return text
    return _fit(escape(text), limit)


def card_blocks(incident: IncidentView, *, grafana_url: str | None = None) -> list[dict[str, Any]]:
    """The incident's card: status, figures, firing alerts, links and, while live, the buttons."""
    status = _status(incident)
    fields = [
        f"*Status*\n{_STATUS[status]}",
        f"*Severity*\n{escape(incident.severity)}",
        f"*Since*\n{_when(_since(incident))}",
        f"*Flaps*\n{incident.flaps}",
    ]
    figures = incident.figures
    if "failure_rate" in figures:
        threshold = figures.get("failure_rate_threshold")
        against = f" (threshold {threshold:.0%})" if isinstance(threshold, float) else ""
        fields.append(f"*Failure rate*\n{figures['failure_rate']:.0%}{against}")
    if "state" in figures:
        fields.append(f"*Breaker state*\n{escape(figures['state'])}")
    if "fallbacks_served_per_s" in figures:
        fields.append(f"*Fallbacks served*\n{figures['fallbacks_served_per_s']:.2f}/s")
    if "transitions_1h" in figures:
        fields.append(f"*Transitions (1h)*\n{figures['transitions_1h']:.0f}")
    if incident.acknowledged_by:
        fields.append(f"*Acknowledged by*\n{_person(incident.acknowledged_by)}")
    if incident.resolved_by:
        fields.append(f"*Resolved by*\n{_person(incident.resolved_by)}")
    header = _fit(f"#{incident.id} {escape(incident.title)}", MAX_HEADER_TEXT)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header}},
        {"type": "section", "fields": [_mrkdwn(f, MAX_FIELD_TEXT) for f in fields[:MAX_FIELDS]]},
    ]
    first = incident.firing[0] if incident.firing else None
    annotations = {**incident.annotations, **(first.annotations if first else {})}
    if incident.firing:
        lines = [f"• *{escape(a.alertname)}* ({escape(a.severity)}): {escape(a.summary)}" for a in incident.firing]
        blocks.append({"type": "section", "text": _mrkdwn("\n".join(lines), MAX_SECTION_TEXT)})
        if annotations.get("description"):
            blocks.append({"type": "section", "text": _mrkdwn(escape(annotations["description"]), MAX_SECTION_TEXT)})
    elif status == "resolved":
        ended = incident.resolved_at or time.time()
        blocks.append({"type": "section", "text": _mrkdwn(f"Resolved {_when(ended)}. No alert is firing.")})
    if incident.children:
        # What the root cause touched: one line each, however many there are (the page has them all).
        lines = [
            f"• {escape(c.title)}: {escape(', '.join(c.alerts) or c.status)}"
            for c in incident.children[:MAX_CHILD_LINES]
        ]
        more = len(incident.children) - MAX_CHILD_LINES
        if more > 0:
            lines.append(f"• and {more} more on the incident's page")
        text = f"*Also affected ({len(incident.children)}):*\n" + "\n".join(lines)
        blocks.append({"type": "section", "text": _mrkdwn(text, MAX_SECTION_TEXT)})
    if incident.parent_id is not None:
        text = f"Attached to incident #{incident.parent_id}, its root cause: follow it there."
        blocks.append({"type": "section", "text": _mrkdwn(text, MAX_SECTION_TEXT)})
    chart = incident.chart
    if chart is not None and chart.slack_file_id:
        blocks.append(chart_block(incident, chart.slack_file_id, chart.caption))
    buttons: list[dict[str, Any]] = []
    if status != "resolved" and incident.status.live:
        if incident.status == IncidentStatus.OPEN:
            buttons.append(_button("Acknowledge", ACK_ACTION, str(incident.id), style="primary"))
        buttons.append(_button("Resolve", RESOLVE_ACTION, str(incident.id), style="danger"))
    links = (
        ("dashboard_url", "Dashboard", dashboard_link(annotations, incident.labels, grafana_url)),
        ("runbook_url", "Runbook", str(annotations.get("runbook_url", ""))),
        ("timeline", "Timeline", incident.url),
    )
    for key, text, url in links:
        # A URL is sent whole or not at all: cut, it would lead nowhere.
        if url and url.startswith(("http://", "https://")) and len(url) <= MAX_URL:
            buttons.append({"type": "button", "action_id": f"link_{key}", "text": _plain(text), "url": url})
    if buttons:
        blocks.append({"type": "actions", "block_id": f"incident-{incident.id}", "elements": buttons[:25]})
    dedup = f"PagerDuty dedup key `{escape(incident.dedup_key)}`"
    blocks.append({"type": "context", "elements": [_mrkdwn(dedup, MAX_SECTION_TEXT)]})
    return blocks[:MAX_BLOCKS]


def chart_block(incident: IncidentView, file_id: str, caption: str) -> dict[str, Any]:
    """An image block of the chart uploaded as the Slack file ``file_id`` (Block Kit's
    ``slack_file`` source: the file stays private to the workspace, no public URL needed)."""
    alt = f"{caption} of {escape(incident.title)}: state, failure and slow-call rates, calls, breakers under it"
    return {
        "type": "image",
        "block_id": "chart",
        "slack_file": {"id": file_id},
        "alt_text": _fit(alt, MAX_IMAGE_ALT_TEXT),
        "title": {"type": "plain_text", "text": _fit(escape(caption), MAX_IMAGE_TITLE)},
    }


def _mrkdwn(text: str, limit: int = MAX_SECTION_TEXT) -> dict[str, Any]:
    """A mrkdwn text object of already escaped ``text``, cut to ``limit``."""
    return {"type": "mrkdwn", "text": _fit(text, limit)}


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": bounded(text, MAX_BUTTON_TEXT)}


def _button(text: str, action_id: str, value: str, *, style: str) -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "text": _plain(text), "value": value, "style": style}


class SlackSender:
    target = Target.SLACK
    dry_run = False

    def __init__(self, token: str, *, base_url: str, timeout: int = 10, grafana_url: str | None = None) -> None:
        self.grafana_url = grafana_url
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
            if item.action == Action.MESSAGE:  # a line in the channel, about no incident (a change)
                text = message_text(str(item.payload["text"]))
                response = await self.client.chat_postMessage(channel=item.destination, text=text)
                return Delivered(f"posted {response['ts']}")
            if incident is None:
                raise DeliveryError(f"a Slack {item.action} needs its incident", retryable=False)
            if item.action == Action.CARD:
                return await self._card(item, incident)
            if item.action == Action.REPLY:
                return await self._reply(item, incident)
            if item.action == Action.CHART:
                return await self._upload_chart(item, incident)
        except SlackApiError as exc:
            raise _api_error(exc) from None
        except SlackRequestError as exc:  # a file upload's own request (files_upload_v2's second step) failed
            raise DeliveryError(f"Slack file upload failed: {exc}", retryable=True) from None
        except (OSError, TimeoutError) as exc:
            raise DeliveryError(f"Slack unreachable: {exc}", retryable=True) from None
        raise DeliveryError(f"unknown Slack action {item.action!r}", retryable=False)

    async def _card(self, item: Item, incident: IncidentView) -> Delivered:
        blocks, text = card_blocks(incident, grafana_url=self.grafana_url), card_text(incident)
        if incident.card is not None:
            try:
                await self.client.chat_update(
                    channel=incident.card.channel_id, ts=incident.card.ts, blocks=blocks, text=text
                )
            except SlackApiError as exc:
                # Slack can refuse an image block whose file it has not finished processing
                # (invalid_blocks): the card is updated without its chart rather than not at all.
                charted = any(block.get("type") == "image" for block in blocks)
                if not charted or exc.response.get("error") != "invalid_blocks":
                    raise
                blocks = [block for block in blocks if block.get("type") != "image"]
                await self.client.chat_update(
                    channel=incident.card.channel_id, ts=incident.card.ts, blocks=blocks, text=text
                )
                return Delivered(f"updated {incident.card.ts} without its chart: Slack refused the image block")
            return Delivered(f"updated {incident.card.ts}")
        response = await self.client.chat_postMessage(channel=item.destination, blocks=blocks, text=text)
        card = SlackCard(channel_id=str(response["channel"]), ts=str(response["ts"]))
        return Delivered(f"posted {card.ts}", card=card)

    async def _reply(self, item: Item, incident: IncidentView) -> Delivered:
        text = message_text(str(item.payload.get("text", "")), incident, limit=MAX_REPLY_TEXT)
        if incident.card is None:
            # The card never made it (it went to the dead letters): say it in the channel instead.
            title = _fit(escape(incident.title), MAX_HEADER_TEXT)
            response = await self.client.chat_postMessage(
                channel=item.destination, text=f"#{incident.id} {title}: {text}"
            )
        else:
            response = await self.client.chat_postMessage(
                channel=incident.card.channel_id, thread_ts=incident.card.ts, text=text
            )
        return Delivered(f"replied {response['ts']}")

    async def _upload_chart(self, item: Item, incident: IncidentView) -> Delivered:
        chart = incident.chart
        if chart is None or not chart.png:
            raise DeliveryError("a Slack chart upload needs its chart", retryable=False)
        if chart.slack_file_id:  # uploaded already (this is a retry): the card refresh is queued
            return Delivered(f"uploaded already as {chart.slack_file_id}")
        if incident.card is None:
            # The card never made it (the dead letters say why): no thread to put the chart in.
            return Delivered("not uploaded: the incident has no card in this channel")
        response = await self.client.files_upload_v2(
            channel=incident.card.channel_id,
            thread_ts=incident.card.ts,
            file=chart.png,
            filename=chart_filename(incident, chart.version),
            title=_fit(f"#{incident.id} {escape(incident.title)}: {chart.caption}", MAX_IMAGE_TITLE),
            alt_txt=_fit(f"{chart.caption} of {escape(incident.title)}", MAX_IMAGE_ALT_TEXT),
            initial_comment=message_text(f"{chart.caption}.", limit=MAX_REPLY_TEXT),
        )
        uploaded = response.get("file")
        file_id = uploaded.get("id") if isinstance(uploaded, dict) else None
        if not isinstance(file_id, str) or not file_id:
            raise DeliveryError("Slack completed the upload without a file id", retryable=False)
        return Delivered(f"uploaded {file_id}", upload=ChartUpload(chart.id, file_id))


def chart_filename(incident: IncidentView, version: int) -> str:
    return f"incident-{incident.id}-chart-v{version}.png"


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
