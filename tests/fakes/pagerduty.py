"""A local fake of PagerDuty's Events API v2, over HTTPS, for driving the real ``pagerduty`` client in tests.

What it serves (docs: https://developer.pagerduty.com/docs/events-api-v2/overview/, sources in
``PagerDuty/developer-docs`` ``docs/events-API-v2/01-Overview.md``, ``02-Trigger-Events.md``,
``03-Change-Events.md``, ``05-Rate-Limits.md``, and the OpenAPI document ``PagerDuty/api-schema``
``reference/events-v2/openapiv3.json``):

``POST /v2/enqueue`` (alert events), validated as documented:
    * the body is at most 512 KB, ``Content-Type: application/json``, and a JSON object;
    * ``routing_key``: required, exactly 32 alphanumeric characters;
    * ``event_action``: required, ``trigger``, ``acknowledge`` or ``resolve``;
    * ``dedup_key``: a string of at most 255 characters; required (non-blank) for acknowledge and resolve;
      a trigger without one gets a generated key (32 hex characters), returned in the response;
    * trigger only: ``payload`` object with ``summary`` (required, at most 1024 characters), ``source``
      (required), ``severity`` (required: critical, error, warning or info), ``timestamp`` (optional ISO 8601
      date-time), ``component``, ``group``, ``class`` (optional strings), ``custom_details`` (optional object);
    * ``links``: array of ``{href (required), text}``; ``images``: array of ``{src (required, https://),
      href, alt}``; ``client`` and ``client_url``: strings. Unknown top-level fields are ignored.

``POST /v2/change/enqueue`` (change events): ``routing_key`` as above (not a ruleset key, which starts with
``R``), ``payload.summary`` (required, at most 1024 characters), ``payload.source``, ``payload.timestamp``,
``payload.custom_details`` (optional, typed as above), ``links`` (and ``images``, shape-checked).

Answers:
    * 202 ``{"status": "success", "message": "Event processed", "dedup_key": ...}`` for alert events and
      ``{"status": "success", "message": "Change event processed"}`` for change events (the body PagerDuty's
      own go-pagerduty tests use);
    * 400 ``{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}`` for an invalid
      event (the shape and the routing_key messages are PagerDuty's; other messages are in the same style but
      ours: assert on the field name they quote, not on the whole text), and ``{"status": "Unrecognized
      object", "message": "Event object format is unrecognized", "errors": ["JSON parse error"]}`` (the
      OpenAPI example) for a body that is not a JSON object;
    * 429 when rate-limited or told to, 5xx when told to; PagerDuty documents only the status codes there,
      so those bodies (``{"status": ..., "message": ...}``) are ours.

Stricter than PagerDuty on purpose: ``Content-Type`` must be JSON, a malformed ``timestamp`` is rejected (PagerDuty
may ignore it), and an over-size body gets a 400 (PagerDuty's exact answer is not documented).

PagerDuty's alert model, per routing key (``02-Trigger-Events.md``, "Alert De-Duplication"): events apply to the
open (triggered or acknowledged) alert with the same ``(routing_key, dedup_key)``; a trigger on an open alert is
appended to it without changing its status; acknowledge or resolve with no open alert is *dropped* (still 202,
recorded with ``dropped=True``); a trigger after a resolve opens a new alert.

Faults: :meth:`FakePagerDuty.fail_next` (429 or 5xx, optional ``Retry-After``), :meth:`~FakePagerDuty.set_rate_limit`
(about 120 events per minute per routing key, counted over a sliding 60 s window, like PagerDuty; the clock is
injectable so tests need not wait), and :meth:`~FakePagerDuty.set_down` (connection refused, or 503 for
everything). Every method is thread-safe: the fake serves from its own thread.
"""

from __future__ import annotations

import http
import json
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._faults import DownMode, FailurePlan, FailureQueue, SlidingWindowLimiter, retry_after_header
from ._server import BackgroundServer, DownSwitch, TLSFiles, make_tls_files, wait_for

__all__ = [
    "ALERT_PATH",
    "CHANGE_PATH",
    "MAX_BODY_BYTES",
    "PAGERDUTY_RATE_LIMIT",
    "PAGERDUTY_RATE_WINDOW",
    "SEVERITIES",
    "AlertStatus",
    "FakePagerDuty",
    "PagerDutyAlert",
    "PagerDutyEvent",
    "PagerDutyRejection",
    "PagerDutyRequest",
]

ALERT_PATH: Final = "/v2/enqueue"
CHANGE_PATH: Final = "/v2/change/enqueue"
ROUTING_KEY_LENGTH: Final = 32
MAX_DEDUP_KEY_LENGTH: Final = 255
MAX_SUMMARY_LENGTH: Final = 1024
MAX_BODY_BYTES: Final = 512 * 1024
SEVERITIES: Final = ("critical", "error", "warning", "info")
EVENT_ACTIONS: Final = ("trigger", "acknowledge", "resolve")
#: PagerDuty's documented limit: "approximately 120 calls/minute per integration key", over a 60 s lookback.
PAGERDUTY_RATE_LIMIT: Final = 120
PAGERDUTY_RATE_WINDOW: Final = 60.0
INJECTABLE_STATUSES: Final = frozenset({429, 500, 502, 503, 504})

AlertStatus = Literal["triggered", "acknowledged", "resolved"]
EventKind = Literal["alert", "change"]
Outcome = Literal["accepted", "rejected", "rate_limited", "injected", "down"]

_INVALID_EVENT: Final = {"status": "invalid event", "message": "Event object is invalid"}
_UNRECOGNIZED: Final = {"status": "Unrecognized object", "message": "Event object format is unrecognized"}
_OPEN: Final = ("triggered", "acknowledged")


@dataclass(frozen=True)
class PagerDutyRequest:
    """Any HTTP request the fake received, with what it answered (``outcome``): for counting client retries."""

    received_at: datetime
    method: str
    path: str
    status: int
    outcome: Outcome
    body: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True)
class PagerDutyEvent:
    """An accepted (202) event. ``body`` is the JSON the client sent; ``alert_id`` names the alert it opened
    or applied to (None for a change event or a dropped acknowledge/resolve)."""

    received_at: datetime
    kind: EventKind
    routing_key: str
    event_action: str | None
    dedup_key: str | None
    body: dict[str, Any]
    dropped: bool = False
    alert_id: str | None = None

    @property
    def payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = self.body.get("payload") or {}
        return payload


@dataclass(frozen=True)
class PagerDutyAlert:
    """A snapshot of one alert: its status and every event applied to it, oldest first."""

    id: str
    routing_key: str
    dedup_key: str
    status: AlertStatus
    created_at: datetime
    payload: dict[str, Any]
    events: tuple[PagerDutyEvent, ...]
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None

    @property
    def summary(self) -> str:
        return str(self.payload["summary"])

    @property
    def severity(self) -> str:
        return str(self.payload["severity"])

    @property
    def source(self) -> str:
        return str(self.payload["source"])

    @property
    def is_open(self) -> bool:
        return self.status in _OPEN

    @property
    def trigger_count(self) -> int:
        return sum(1 for event in self.events if event.event_action == "trigger")


@dataclass(frozen=True)
class PagerDutyRejection:
    """A request answered 400, with the error strings sent back."""

    received_at: datetime
    path: str
    errors: tuple[str, ...]
    body: bytes

    @property
    def json(self) -> Any:
        """The request body decoded, or None when it was not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass
class _Alert:
    id: str
    routing_key: str
    dedup_key: str
    status: AlertStatus
    created_at: datetime
    payload: dict[str, Any]
    events: list[PagerDutyEvent] = field(default_factory=list)
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None

    def snapshot(self) -> PagerDutyAlert:
        return PagerDutyAlert(
            id=self.id,
            routing_key=self.routing_key,
            dedup_key=self.dedup_key,
            status=self.status,
            created_at=self.created_at,
            payload=self.payload,
            events=tuple(self.events),
            acknowledged_at=self.acknowledged_at,
            resolved_at=self.resolved_at,
        )


# --------------------------------------------------------------------------------------------------------
# Validation


def _is_blank(value: object) -> bool:
    return not isinstance(value, str) or not value.strip()


def _check_routing_key(body: Mapping[str, Any], errors: list[str]) -> None:
    key = body.get("routing_key")
    if _is_blank(key):
        errors.append("'routing_key' is missing or blank")
        return
    assert isinstance(key, str)
    if len(key) != ROUTING_KEY_LENGTH:
        errors.append(f"Length of 'routing_key' is incorrect (should be {ROUTING_KEY_LENGTH} characters)")
    if not (key.isascii() and key.isalnum()):
        errors.append("'routing_key' cannot contain non-alphanumeric characters.")


def _check_timestamp(value: object, name: str, errors: list[str]) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        errors.append(f"'{name}' must be a string")
        return
    try:
        datetime.fromisoformat(value)
    except ValueError:
        errors.append(f"'{name}' is not a valid ISO 8601 date-time")
        return
    if len(value) <= len("YYYY-MM-DD"):  # a date alone is ISO 8601 but not a date-time
        errors.append(f"'{name}' is not a valid ISO 8601 date-time")


def _check_optional_string(container: Mapping[str, Any], key: str, name: str, errors: list[str]) -> None:
    if key in container and container[key] is not None and not isinstance(container[key], str):
        errors.append(f"'{name}' must be a string")


def _check_summary(payload: Mapping[str, Any], errors: list[str]) -> None:
    summary = payload.get("summary")
    if _is_blank(summary):
        errors.append("'payload.summary' is missing or blank")
    elif isinstance(summary, str) and len(summary) > MAX_SUMMARY_LENGTH:
        errors.append(f"'payload.summary' is too long (maximum is {MAX_SUMMARY_LENGTH} characters)")


def _check_custom_details(payload: Mapping[str, Any], errors: list[str]) -> None:
    details = payload.get("custom_details")
    if details is not None and not isinstance(details, dict):
        errors.append("'payload.custom_details' must be an object")


def _check_context(body: Mapping[str, Any], errors: list[str]) -> None:
    """``links`` need an ``href``; ``images`` need an HTTPS ``src`` (``02-Trigger-Events.md``, context properties)."""
    links = body.get("links")
    if links is not None:
        if not isinstance(links, list):
            errors.append("'links' must be an array of objects")
        else:
            for index, link in enumerate(links):
                if not isinstance(link, dict):
                    errors.append(f"'links[{index}]' must be an object")
                    continue
                if _is_blank(link.get("href")):
                    errors.append(f"'links[{index}].href' is missing or blank")
                _check_optional_string(link, "text", f"links[{index}].text", errors)
    images = body.get("images")
    if images is not None:
        if not isinstance(images, list):
            errors.append("'images' must be an array of objects")
        else:
            for index, image in enumerate(images):
                if not isinstance(image, dict):
                    errors.append(f"'images[{index}]' must be an object")
                    continue
                src = image.get("src")
                if _is_blank(src):
                    errors.append(f"'images[{index}].src' is missing or blank")
                elif isinstance(src, str) and not src.startswith("https://"):
                    errors.append(f"'images[{index}].src' must be an HTTPS URL")
                _check_optional_string(image, "href", f"images[{index}].href", errors)
                _check_optional_string(image, "alt", f"images[{index}].alt", errors)


def validate_alert_event(body: Mapping[str, Any]) -> list[str]:
    """The errors PagerDuty would report for an alert event (``POST /v2/enqueue``); empty when valid."""
    errors: list[str] = []
    _check_routing_key(body, errors)
    action = body.get("event_action")
    if _is_blank(action):
        errors.append("'event_action' is missing or blank")
    elif action not in EVENT_ACTIONS:
        errors.append(f"'event_action' is invalid (must be one of: {', '.join(EVENT_ACTIONS)})")
    dedup_key = body.get("dedup_key")
    if dedup_key is not None:
        if not isinstance(dedup_key, str):
            errors.append("'dedup_key' must be a string")
        elif len(dedup_key) > MAX_DEDUP_KEY_LENGTH:
            errors.append(f"'dedup_key' is too long (maximum is {MAX_DEDUP_KEY_LENGTH} characters)")
    if action in ("acknowledge", "resolve") and _is_blank(dedup_key):
        errors.append(f"'dedup_key' is missing or blank (required when event_action is {action})")
    if action == "trigger":
        payload = body.get("payload")
        if not isinstance(payload, dict):
            errors.append("'payload' is missing or not an object")
        else:
            _check_summary(payload, errors)
            if _is_blank(payload.get("source")):
                errors.append("'payload.source' is missing or blank")
            severity = payload.get("severity")
            if _is_blank(severity):
                errors.append("'payload.severity' is missing or blank")
            elif severity not in SEVERITIES:
                errors.append(f"'payload.severity' is invalid (must be one of: {', '.join(SEVERITIES)})")
            _check_timestamp(payload.get("timestamp"), "payload.timestamp", errors)
            for key in ("component", "group", "class"):
                _check_optional_string(payload, key, f"payload.{key}", errors)
            _check_custom_details(payload, errors)
    _check_context(body, errors)
    for key in ("client", "client_url"):
        _check_optional_string(body, key, key, errors)
    return errors


def validate_change_event(body: Mapping[str, Any]) -> list[str]:
    """The errors PagerDuty would report for a change event (``POST /v2/change/enqueue``); empty when valid."""
    errors: list[str] = []
    _check_routing_key(body, errors)
    key = body.get("routing_key")
    if isinstance(key, str) and key.startswith("R"):
        errors.append("Change events cannot be sent to a ruleset routing key ('routing_key' starting with R)")
    payload = body.get("payload")
    if not isinstance(payload, dict):
        errors.append("'payload' is missing or not an object")
    else:
        _check_summary(payload, errors)
        _check_optional_string(payload, "source", "payload.source", errors)
        _check_timestamp(payload.get("timestamp"), "payload.timestamp", errors)
        _check_custom_details(payload, errors)
    _check_context(body, errors)
    return errors


# --------------------------------------------------------------------------------------------------------
# The fake


def _now() -> datetime:
    return datetime.now(UTC)


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {"status": http.HTTPStatus(status).phrase, "message": message}


class FakePagerDuty(DownSwitch):
    """PagerDuty's Events API v2 on ``https://127.0.0.1:PORT``; see the module docstring for what is validated.

    **Parameters:**

    * ``rate_limit``: events per ``rate_window`` seconds per routing key before answering 429 (None: no limit;
      :data:`PAGERDUTY_RATE_LIMIT` is PagerDuty's documented value). Accepted alert and change events count.
    * ``clock``: monotonic seconds for the rate limiter; pass a settable clock to test limits without waiting.

    Use as a context manager (``with FakePagerDuty() as pd: ...``) or ``start()``/``close()``. Point the real
    client at it::

        client = pagerduty.EventsApiV2Client(key, base_url=pd.base_url, verify=pd.ssl_context())

    Records: :attr:`requests` (every HTTP request), :attr:`events` (accepted), :attr:`change_events`,
    :attr:`dropped`, :attr:`rejected` (400s), :meth:`alerts`, :meth:`open_alerts`, :meth:`alert`.
    """

    def __init__(
        self,
        *,
        rate_limit: int | None = None,
        rate_window: float = PAGERDUTY_RATE_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._initial_rate = (rate_limit, rate_window)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._directory: tempfile.TemporaryDirectory[str] | None = None
        self._tls: TLSFiles | None = None
        self._server: BackgroundServer | None = None
        self._down: DownMode | None = None
        self._failures = FailureQueue()
        self._limiter: SlidingWindowLimiter | None = None
        self._requests: list[PagerDutyRequest] = []
        self._events: list[PagerDutyEvent] = []
        self._rejected: list[PagerDutyRejection] = []
        self._alerts: list[_Alert] = []
        self._open: dict[tuple[str, str], _Alert] = {}
        self.set_rate_limit(rate_limit, window=rate_window)
        self.app = Starlette(
            routes=[
                Route(ALERT_PATH, self._endpoint, methods=["POST"]),
                Route(CHANGE_PATH, self._endpoint, methods=["POST"]),
            ]
        )

    # Lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Generate the certificates (first start only) and serve; returns once connections are accepted."""
        if self._server is None:
            self._directory = tempfile.TemporaryDirectory(prefix="breakerpanel-fake-pagerduty-")
            self._tls = make_tls_files(Path(self._directory.name))
            self._server = BackgroundServer(self.app, name="fake-pagerduty", tls=self._tls)
        self._server.start()
        return self

    def close(self) -> None:
        """Stop serving and delete the certificates; safe to call twice."""
        if self._server is not None:
            self._server.stop()
            self._server = None  # a later start() makes new certificates and a new port
        if self._directory is not None:
            self._directory.cleanup()
            self._directory = self._tls = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake PagerDuty has not been started")
        return self._server.port

    @property
    def base_url(self) -> str:
        """``https://127.0.0.1:PORT``: the client's ``base_url`` (the certificate also covers ``localhost``)."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        """The CA certificate (PEM) that signed the server certificate: ``ssl.create_default_context(cafile=...)``."""
        if self._tls is None:
            raise RuntimeError("the fake PagerDuty has not been started")
        return self._tls.ca_file

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this fake only (hostname checking on)."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    # Fault injection ---------------------------------------------------------------------------------

    def fail_next(self, n: int = 1, *, status: int = 500, retry_after: int | None = None) -> None:
        """Answer the next ``n`` requests (to either endpoint) with ``status`` (429, 500, 502, 503 or 504),
        with a ``Retry-After: <retry_after>`` header when given. Queued after failures already pending."""
        if status not in INJECTABLE_STATUSES:
            raise ValueError(f"status must be one of {sorted(INJECTABLE_STATUSES)}, not {status}")
        with self._lock:
            self._failures.add(n, FailurePlan(status=status, retry_after=retry_after))

    def set_rate_limit(
        self, limit: int | None = PAGERDUTY_RATE_LIMIT, *, window: float = PAGERDUTY_RATE_WINDOW
    ) -> None:
        """Rate-limit each routing key to ``limit`` events per ``window`` seconds (None: off). Resets the counts."""
        with self._lock:
            self._limiter = None if limit is None else SlidingWindowLimiter(limit, window, self._clock)

    def reset(self) -> None:
        """Forget every request, alert and pending failure, restore the constructor's rate limit, come back up."""
        with self._lock:
            self._failures.clear()
            self._requests.clear()
            self._events.clear()
            self._rejected.clear()
            self._alerts.clear()
            self._open.clear()
            limit, window = self._initial_rate
            self.set_rate_limit(limit, window=window)
        if self.is_down:
            self.set_down(False)

    # Records -----------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[PagerDutyRequest]:
        """Every HTTP request received, oldest first, whatever the answer (retries show up here)."""
        with self._lock:
            return list(self._requests)

    @property
    def events(self) -> list[PagerDutyEvent]:
        """Every accepted (202) event, alert and change, oldest first; dropped ones included."""
        with self._lock:
            return list(self._events)

    @property
    def alert_events(self) -> list[PagerDutyEvent]:
        with self._lock:
            return [event for event in self._events if event.kind == "alert"]

    @property
    def change_events(self) -> list[PagerDutyEvent]:
        with self._lock:
            return [event for event in self._events if event.kind == "change"]

    @property
    def dropped(self) -> list[PagerDutyEvent]:
        """Accepted acknowledge/resolve events that found no open alert (PagerDuty drops them silently)."""
        with self._lock:
            return [event for event in self._events if event.dropped]

    @property
    def rejected(self) -> list[PagerDutyRejection]:
        """Requests answered 400, with the errors sent back."""
        with self._lock:
            return list(self._rejected)

    def alerts(
        self, *, routing_key: str | None = None, dedup_key: str | None = None, status: AlertStatus | None = None
    ) -> list[PagerDutyAlert]:
        """Every alert ever opened, oldest first, optionally filtered."""
        with self._lock:
            return [
                alert.snapshot()
                for alert in self._alerts
                if (routing_key is None or alert.routing_key == routing_key)
                and (dedup_key is None or alert.dedup_key == dedup_key)
                and (status is None or alert.status == status)
            ]

    def open_alerts(self, *, routing_key: str | None = None) -> list[PagerDutyAlert]:
        """Triggered or acknowledged alerts."""
        with self._lock:
            return [
                alert.snapshot()
                for alert in self._open.values()
                if routing_key is None or alert.routing_key == routing_key
            ]

    def alert(self, dedup_key: str, *, routing_key: str | None = None) -> PagerDutyAlert:
        """The most recent alert with this dedup key; LookupError if there is none."""
        found = self.alerts(routing_key=routing_key, dedup_key=dedup_key)
        if not found:
            raise LookupError(f"no alert with dedup_key {dedup_key!r}")
        return found[-1]

    def wait_for_events(self, count: int, *, timeout: float = 5.0) -> list[PagerDutyEvent]:
        """Block until at least ``count`` events were accepted and return them (for code that sends from
        another thread or task); TimeoutError otherwise."""
        return wait_for(
            lambda: list(self._events) if len(self._events) >= count else None,
            timeout=timeout,
            what=f"{count} accepted PagerDuty events",
            condition=self._changed,
        )

    # Serving -----------------------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        body = await request.body()
        status, content, headers = self._handle(request.url.path, request.method, dict(request.headers), body)
        return JSONResponse(content, status_code=status, headers=headers)

    def _handle(
        self, path: str, method: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            received_at = _now()
            status, content, extra, outcome = self._answer(path, headers, body, received_at)
            self._requests.append(PagerDutyRequest(received_at, method, path, status, outcome, body, headers))
            self._changed.notify_all()
            return status, content, extra

    def _answer(
        self, path: str, headers: Mapping[str, str], body: bytes, received_at: datetime
    ) -> tuple[int, dict[str, Any], dict[str, str], Outcome]:
        if self._down is not None:
            return 503, _error_body(503, "the fake PagerDuty is down"), {}, "down"
        plan = self._failures.take()
        if plan is not None:
            extra = {} if plan.retry_after is None else {"Retry-After": str(plan.retry_after)}
            message = "Too many API calls at a time." if plan.status == 429 else "injected failure"
            return plan.status, _error_body(plan.status, message), extra, "injected"

        def reject(content: dict[str, Any], errors: list[str]) -> tuple[int, dict[str, Any], dict[str, str], Outcome]:
            self._rejected.append(PagerDutyRejection(received_at, path, tuple(errors), body))
            return 400, {**content, "errors": errors}, {}, "rejected"

        if len(body) > MAX_BODY_BYTES:
            return reject(_INVALID_EVENT, [f"Event object is too large (maximum is {MAX_BODY_BYTES // 1024} KB)"])
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return reject(_UNRECOGNIZED, [f"Content-Type must be application/json, not {content_type or 'none'!r}"])
        try:
            event = json.loads(body)
        except ValueError:
            return reject(_UNRECOGNIZED, ["JSON parse error"])
        if not isinstance(event, dict):
            return reject(_UNRECOGNIZED, ["Event object is not a JSON object"])
        kind: EventKind = "alert" if path == ALERT_PATH else "change"
        errors = validate_alert_event(event) if kind == "alert" else validate_change_event(event)
        if errors:
            return reject(_INVALID_EVENT, errors)

        routing_key: str = event["routing_key"]
        if self._limiter is not None:
            wait = self._limiter.acquire(routing_key)
            if wait is not None:
                extra = {"Retry-After": str(retry_after_header(wait))}
                return 429, _error_body(429, "Too many API calls at a time."), extra, "rate_limited"

        if kind == "change":
            self._events.append(PagerDutyEvent(received_at, "change", routing_key, None, None, event))
            return 202, {"status": "success", "message": "Change event processed"}, {}, "accepted"
        dedup_key = self._apply_alert_event(event, routing_key, received_at)
        return 202, {"status": "success", "message": "Event processed", "dedup_key": dedup_key}, {}, "accepted"

    def _apply_alert_event(self, event: dict[str, Any], routing_key: str, received_at: datetime) -> str:
        action: str = event["event_action"]
        dedup_key = event.get("dedup_key")
        if action == "trigger" and _is_blank(dedup_key):
            dedup_key = uuid.uuid4().hex
        assert isinstance(dedup_key, str)
        record = PagerDutyEvent(received_at, "alert", routing_key, action, dedup_key, event)
        alert = self._open.get((routing_key, dedup_key))
        if alert is None:
            if action != "trigger":
                self._events.append(replace(record, dropped=True))
                return dedup_key
            alert = _Alert(
                id=f"A{len(self._alerts) + 1:05d}",
                routing_key=routing_key,
                dedup_key=dedup_key,
                status="triggered",
                created_at=received_at,
                payload=event["payload"],
            )
            self._alerts.append(alert)
            self._open[(routing_key, dedup_key)] = alert
        elif action == "acknowledge":
            alert.status = "acknowledged"
            alert.acknowledged_at = alert.acknowledged_at or received_at
        elif action == "resolve":
            alert.status = "resolved"
            alert.resolved_at = received_at
            del self._open[(routing_key, dedup_key)]
        record = replace(record, alert_id=alert.id)
        alert.events.append(record)
        self._events.append(record)
        return dedup_key
