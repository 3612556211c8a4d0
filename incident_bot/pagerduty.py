"""PagerDuty Events API v2, through the ``pagerduty`` package's client.

The client is synchronous and, by default, retries 429 without limit with blocking sleeps: it runs
in a worker thread here, with its own retries cut to one quick attempt, so the outbox decides when
to try again (with backoff, jitter and ``Retry-After``) and one slow PagerDuty never stalls Slack.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pagerduty

from .delivery import Delivered, DeliveryError, IncidentView, Item

__all__ = ["PagerDutySender", "trigger_event"]

#: PagerDuty's limits on an event's fields (Events API v2).
SUMMARY_LIMIT = 1024
#: The client's own retries, off: ``retry[429] = 1`` with ``max_http_attempts = -1`` is the
#: one setting that makes it send exactly one request (``retry[429] = 0`` means "without limit").
_CLIENT_RETRY = {429: 1, 500: 1, 502: 1, 503: 1, 504: 1}
#: The client logs each failed request at WARNING/ERROR on its own logger; the outbox already logs
#: every failure once, with the incident and what happens next, so the client's lines are noise.
_CLIENT_LOG = logging.getLogger("incident_bot.pagerduty.client")
_CLIENT_LOG.setLevel(logging.CRITICAL)


class PagerDutySender:
    target = "pagerduty"
    dry_run = False

    def __init__(
        self,
        routing_keys: Mapping[str, str],
        *,
        base_url: str,
        ca_file: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._keys = dict(routing_keys)
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
            if action == "change":  # a change event: it belongs to no incident and never notifies
                await asyncio.to_thread(client.send_change_event, **item.payload)
                return Delivered("change")
            if incident is None:
                raise DeliveryError(f"a PagerDuty {action} needs its incident", retryable=False)
            if action == "trigger":
                event = trigger_event(incident)
                dedup_key = await asyncio.to_thread(client.send_event, "trigger", dedup_key=incident.dedup_key, **event)
            elif action in ("acknowledge", "resolve"):
                dedup_key = await asyncio.to_thread(client.send_event, action, dedup_key=incident.dedup_key)
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


def trigger_event(incident: IncidentView) -> dict[str, Any]:
    """The ``payload``, ``links`` and ``client`` of an incident's trigger event."""
    labels = incident.labels
    first = incident.firing[0] if incident.firing else {}
    summary = f"[{incident.severity}] {incident.title}"
    if first.get("summary"):
        summary += f": {first['summary']}"
    details: dict[str, Any] = {
        "incident": incident.id,
        "status": incident.status,
        "breaker": labels.get("circuit_breaker_name"),
        "level": labels.get("circuit_breaker_level"),
        "parent": labels.get("circuit_breaker_parent") or None,
        "flaps": incident.flaps,
        "alerts": [
            {"alert": a["alertname"], "severity": a["severity"], "summary": a.get("summary", "")}
            for a in incident.firing
        ],
        "labels": {k: v for k, v in labels.items() if k != "__name__"},
        **incident.figures,
    }
    payload = {
        "summary": summary[:SUMMARY_LIMIT],
        "source": labels.get("server_address") or labels.get("instance") or labels.get("job") or "breakerpanel",
        "severity": incident.severity,
        "timestamp": datetime.fromtimestamp(incident.opened_at, UTC).isoformat(),
        "component": labels.get("circuit_breaker_name") or labels.get("alertname", ""),
        "group": labels.get("job", ""),
        "class": first.get("alertname", ""),
        "custom_details": {k: v for k, v in details.items() if v is not None},
    }
    links = []
    annotations = {**incident.annotations, **(first.get("annotations") or {})}
    for key, text in (("dashboard_url", "Grafana dashboard"), ("runbook_url", "Runbook")):
        if str(annotations.get(key, "")).startswith(("http://", "https://")):
            links.append({"href": annotations[key], "text": text})
    if str(first.get("generator_url", "")).startswith(("http://", "https://")):
        links.append({"href": first["generator_url"], "text": "Prometheus"})
    if incident.url:
        links.append({"href": incident.url, "text": f"Incident #{incident.id} timeline"})
    event: dict[str, Any] = {"payload": payload, "links": links, "client": "breakerpanel incident bot"}
    if incident.url:
        event["client_url"] = incident.url
    return event
