"""PagerDuty Events API v2, through the ``pagerduty`` package's client.

The client is synchronous and, by default, retries 429 without limit with blocking sleeps: it runs
in a worker thread here, with its own retries cut to one quick attempt, so the outbox decides when
to try again (with backoff, jitter and ``Retry-After``) and one slow PagerDuty never stalls Slack.

Every event is cut to PagerDuty's limits before it leaves (:func:`bounded_event`): PagerDuty
refuses an event over 512 KB with a 400, which would put the page in the dead letters, so an
oversized label shortens the page (with a visible "…(truncated)") instead of stopping it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pagerduty

from .delivery import (
    AttachedIncident,
    BreakerFigures,
    Delivered,
    DeliveryError,
    FiringAlert,
    IncidentView,
    Item,
    bounded,
    dashboard_link,
)
from .vocabulary import Action, IncidentStatus, Target

__all__ = ["NOT_AFTER_RESOLVE", "PagerDutySender", "bounded_event", "chart_event", "trigger_event"]

#: PagerDuty's limits on an event's fields (Events API v2): ``payload.summary`` is cut at 1,024
#: characters and an event over 512 KB is refused.
SUMMARY_LIMIT = 1024
MAX_EVENT_BYTES = 512 * 1024
#: What an event may weigh here: the client wraps it (routing key, action, dedup key) and a few
#: bytes of room cost nothing.
EVENT_BUDGET = MAX_EVENT_BYTES - 4096
#: The payload's other short fields have no documented limit: the summary's keeps them readable.
SHORT_FIELD_LIMIT = SUMMARY_LIMIT
#: A link longer than this is left out: cut, it would lead nowhere.
MAX_LINK_LENGTH = 3000
#: When ``custom_details`` make the event too big, their strings are cut to these lengths in turn
#: until it fits.
_DETAIL_STRING_LIMITS = (8192, 1024, 256, 64)
#: The client's own retries, off: ``retry[429] = 1`` with ``max_http_attempts = -1`` is the
#: one setting that makes it send exactly one request (``retry[429] = 0`` means "without limit").
_CLIENT_RETRY = {429: 1, 500: 1, 502: 1, 503: 1, 504: 1}
#: The client logs each failed request at WARNING/ERROR on its own logger; the outbox already logs
#: every failure once, with the incident and what happens next, so the client's lines are noise.
_CLIENT_LOG = logging.getLogger("breakerpanel.incident_bot.pagerduty.client")
_CLIENT_LOG.setLevel(logging.CRITICAL)


class PagerDutySender:
    target = Target.PAGERDUTY
    dry_run = False

    def __init__(
        self,
        routing_keys: Mapping[str, str],
        *,
        base_url: str,
        ca_file: str | None = None,
        timeout: float = 10.0,
        grafana_url: str | None = None,
    ) -> None:
        self._keys = dict(routing_keys)
        self._grafana_url = grafana_url
        self._base_url = base_url
        self._verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
        self._timeout = timeout
        self._clients: dict[str, pagerduty.EventsApiV2Client] = {}

    def destination_configured(self, destination: str) -> bool:
        return destination in self._keys

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def _client(self, destination: str) -> pagerduty.EventsApiV2Client:
        client = self._clients.get(destination)
        if client is None:
            key = self._keys.get(destination)
            if key is None:
                raise DeliveryError(f"no routing key for {destination}", retryable=False)
            client = pagerduty.EventsApiV2Client(key, base_url=self._base_url, verify=self._verify)
            client.log = _CLIENT_LOG
            client.retry = dict(_CLIENT_RETRY)
            client.max_http_attempts = -1
            client.sleep_timer = 0.2
            client.max_network_attempts = 0
            client.timeout = self._timeout  # type: ignore[assignment]  # httpx2 takes float seconds
            self._clients[destination] = client
        return client

    async def send(self, item: Item, incident: IncidentView | None) -> Delivered:
        client = self._client(item.destination)
        action = item.action
        try:
            if action == Action.CHANGE:  # a change event: it belongs to no incident and never notifies
                await asyncio.to_thread(client.send_change_event, **bounded_event(item.payload))
                return Delivered("change")
            if incident is None:
                raise DeliveryError(f"a PagerDuty {action} needs its incident", retryable=False)
            if action == Action.TRIGGER:
                event = trigger_event(incident, grafana_url=self._grafana_url)
                dedup_key = await asyncio.to_thread(client.send_event, "trigger", dedup_key=incident.dedup_key, **event)
            elif action == Action.CHART:
                if incident.status == IncidentStatus.RESOLVED:
                    return Delivered(NOT_AFTER_RESOLVE)
                event = chart_event(incident, grafana_url=self._grafana_url)
                dedup_key = await asyncio.to_thread(client.send_event, "trigger", dedup_key=incident.dedup_key, **event)
            elif action in (Action.ACKNOWLEDGE, Action.RESOLVE):
                # The client's own vocabulary: the plain string (it checks it against its own list).
                dedup_key = await asyncio.to_thread(client.send_event, action.value, dedup_key=incident.dedup_key)
            else:
                raise DeliveryError(f"unknown PagerDuty action {action!r}", retryable=False)
        except pagerduty.HttpError as exc:
            raise _http_error(exc) from None
        except pagerduty.Error as exc:  # no response at all: the network
            raise DeliveryError(f"PagerDuty unreachable: {exc}", retryable=True) from None
        return Delivered(f"{action} {dedup_key}")


def _http_error(exc: pagerduty.HttpError) -> DeliveryError:
    response = exc.response
    assert response is not None  # an HttpError always carries its response
    status = response.status_code
    retry_after = _retry_after(response.headers.get("retry-after"))
    try:
        body = response.json()
        errors = "; ".join(str(e) for e in body.get("errors", [])) or body.get("message", "")
    except ValueError:
        errors = response.text[:200]
    retryable = status == 429 or status >= 500
    return DeliveryError(
        f"PagerDuty answered {status}: {errors}", retryable=retryable, retry_after=retry_after, status=status
    )


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def trigger_event(incident: IncidentView, *, grafana_url: str | None = None) -> dict[str, Any]:
    """The ``payload``, ``links`` and ``client`` of an incident's trigger event, within PagerDuty's
    limits (:func:`bounded_event`)."""
    labels = incident.labels
    first = incident.firing[0] if incident.firing else None
    annotations = {**incident.annotations, **(first.annotations if first else {})}
    raisers = _raised_by(incident)
    summary = _summary(incident, first, raisers)
    details: dict[str, Any] = {
        "incident": incident.id,
        "status": incident.status.value,
        "breaker": labels.get("circuit_breaker_name"),
        "level": labels.get("circuit_breaker_level"),
        "parent": labels.get("circuit_breaker_parent") or None,
        "flaps": incident.flaps,
        "description": annotations.get("description") or None,
        "alerts": [_alert_details(a) for a in incident.firing],
        "raised_by": [{"incident": child.id, "title": child.title, **_alert_details(a)} for child, a in raisers]
        or None,
        "labels": {k: v for k, v in labels.items() if k != "__name__"},
        **_figures(incident.figures),
    }
    # When it started: the first alert's startsAt (the bot may hear of it later, after a restart or
    # Alertmanager's group_wait), else when the bot opened the incident.
    started = incident.started_at or datetime.fromtimestamp(incident.opened_at, UTC)
    payload = {
        "summary": summary,
        "source": labels.get("server_address") or labels.get("instance") or labels.get("job") or "breakerpanel",
        "severity": incident.severity,
        "timestamp": started.isoformat(),
        "component": labels.get("circuit_breaker_name") or labels.get("alertname", ""),
        "group": labels.get("job", ""),
        "class": first.alertname if first else "",
        "custom_details": {k: v for k, v in details.items() if v is not None},
    }
    links = []
    dashboard = dashboard_link(annotations, labels, grafana_url)
    if dashboard is not None:
        links.append({"href": dashboard, "text": "Grafana dashboard"})
    if str(annotations.get("runbook_url", "")).startswith(("http://", "https://")):
        links.append({"href": annotations["runbook_url"], "text": "Runbook"})
    for child, alert in raisers:  # what to do about what made it this urgent
        runbook = str(alert.annotations.get("runbook_url", ""))
        if runbook.startswith(("http://", "https://")) and runbook not in {link["href"] for link in links}:
            links.append({"href": runbook, "text": f"Runbook: {alert.alertname} on {child.title}"})
    if first and first.generator_url.startswith(("http://", "https://")):
        links.append({"href": first.generator_url, "text": "Prometheus"})
    if incident.url:
        links.append({"href": incident.url, "text": f"Incident #{incident.id} timeline"})
    event: dict[str, Any] = {"payload": payload, "links": links, "client": "breakerpanel incident bot"}
    if incident.url:
        event["client_url"] = incident.url
    return bounded_event(event)


def _raised_by(incident: IncidentView) -> list[tuple[AttachedIncident, FiringAlert]]:
    """The attached incidents' firing alerts that make the incident as urgent as it is, when none
    of its own does (a feature degraded for users raised its provider's incident to a page)."""
    first = incident.firing[0] if incident.firing else None
    if first is not None and first.severity == incident.severity:
        return []
    return [
        (child, alert) for child in incident.children for alert in child.firing if alert.severity == incident.severity
    ]


def _summary(
    incident: IncidentView, first: FiringAlert | None, raisers: list[tuple[AttachedIncident, FiringAlert]]
) -> str:
    """The severity, the title and the first alert's summary; and, when an attached incident's
    alert made it this urgent, that alert too: a page must say why it pages."""
    summary = f"[{incident.severity}] {incident.title}"
    if first and first.summary:
        summary += f": {first.summary}"
    if raisers:
        child, alert = raisers[0]
        summary = summary.rstrip(".") + f"; raised by {alert.alertname} on {child.title}"
        if alert.summary:
            summary += f": {alert.summary}"
        if len(raisers) > 1:
            summary += f" (and {len(raisers) - 1} more)"
    return summary


def chart_event(incident: IncidentView, *, grafana_url: str | None = None) -> dict[str, Any]:
    """The trigger event that brings the incident's chart to its PagerDuty alert (same
    ``dedup_key``: PagerDuty adds it to the open alert): the page's own event, with the chart's
    signed URL as an image when it is https:// (PagerDuty shows no other) and as a link always."""
    event = trigger_event(incident, grafana_url=grafana_url)
    chart = incident.chart
    if chart is None or not chart.image_url:
        return event
    links = list(event.get("links", []))
    if len(chart.image_url) <= MAX_LINK_LENGTH:
        links.append({"href": chart.image_url, "text": f"{chart.caption} (PNG)"})
        if chart.image_url.startswith("https://"):
            event["images"] = [{"src": chart.image_url, "href": chart.image_url, "alt": bounded(chart.caption, 256)}]
    event["links"] = links
    return bounded_event(event)


#: Why a chart event is not sent once its incident resolved.
NOT_AFTER_RESOLVE = "not sent: the incident is resolved (a trigger now would open a new PagerDuty alert)"


#: Live figures that count things (:mod:`.enrich`): whole numbers, as the card shows them, though
#: Prometheus extrapolates ``increase()`` (4 transitions read 4.0678).
_COUNT_FIGURES = frozenset({"transitions_1h"})


def _figures(figures: BreakerFigures) -> dict[str, float | int | str]:
    """The live figures as ``custom_details`` numbers a person reads: counts whole, rates and
    ratios to three significant digits (Prometheus answers 0.30000000000000004). A NaN or an
    infinity is left out: it has no JSON form, and the client would refuse the whole page."""
    out: dict[str, float | int | str] = {}
    for key, value in figures.items():
        if isinstance(value, str):
            out[key] = value
        elif math.isfinite(value):
            out[key] = round(value) if key in _COUNT_FIGURES else _significant(value)
    return out


def _significant(value: float, digits: int = 3) -> float:
    """``value`` to ``digits`` significant digits, but never rounded inside its integer part
    (0.016666 gives 0.0167, 1234.56 gives 1235.0, not 1230)."""
    if value == 0:
        return 0.0
    return round(value, max(0, digits - 1 - math.floor(math.log10(abs(value)))))


def _alert_details(alert: FiringAlert) -> dict[str, str]:
    details = {"alert": alert.alertname, "severity": alert.severity, "summary": alert.summary}
    description = alert.annotations.get("description")
    if description:
        details["description"] = description
    return details


def bounded_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """``event`` (a trigger's or a change event's ``payload``, ``links``, ...) within PagerDuty's
    limits: the summary and the payload's other short fields cut with "…(truncated)", links too
    long to work left out, and ``custom_details`` cut until the whole event weighs under 512 KB:
    their strings shorter and shorter, as a last resort their JSON text, cut. Never raises."""
    out = dict(event)
    payload = dict(out.get("payload") or {})
    for key in ("summary", "source", "component", "group", "class"):
        if isinstance(payload.get(key), str):
            payload[key] = bounded(payload[key], SUMMARY_LIMIT if key == "summary" else SHORT_FIELD_LIMIT)
    out["payload"] = payload
    if isinstance(out.get("links"), list):
        out["links"] = [
            {**link, "text": bounded(str(link.get("text", "")), SHORT_FIELD_LIMIT)}
            for link in out["links"]
            if isinstance(link, Mapping) and len(str(link.get("href", ""))) <= MAX_LINK_LENGTH
        ]
    if _event_bytes(out) <= EVENT_BUDGET or not isinstance(payload.get("custom_details"), Mapping):
        return out
    details = payload["custom_details"]
    for limit in _DETAIL_STRING_LIMITS:
        payload["custom_details"] = _strings_cut(details, limit)
        if _event_bytes(out) <= EVENT_BUDGET:
            return out
    # Too many fields, however short: keep the start of their JSON text, as one string.
    payload["custom_details"] = {}
    room = max(0, (EVENT_BUDGET - _event_bytes(out)) // 6 - 64)  # \uXXXX: 6 bytes a character at most
    payload["custom_details"] = {"truncated": bounded(json.dumps(details, default=str), room)}
    return out


def _strings_cut(value: Any, limit: int) -> Any:
    """``value`` with every string in it (keys too) cut to ``limit`` characters."""
    if isinstance(value, str):
        return bounded(value, limit)
    if isinstance(value, Mapping):
        return {bounded(str(k), limit): _strings_cut(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strings_cut(v, limit) for v in value]
    return value


def _event_bytes(event: Mapping[str, Any]) -> int:
    """What the event weighs as JSON, at most (ASCII escapes: never less than the UTF-8 the client may send)."""
    return len(json.dumps(event, default=str))
