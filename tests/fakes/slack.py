"""A local fake of the Slack Web API methods the incident bot calls, plus helpers for Slack's inbound requests.

Served on ``http://127.0.0.1:PORT/api/<method>`` (point ``slack_sdk.WebClient``/``AsyncWebClient`` at
``base_url=fake.api_url``): ``auth.test``, ``chat.postMessage``, ``chat.update``, ``chat.postEphemeral``, and
the three steps of a file upload as slack_sdk's ``files_upload_v2`` makes them: ``files.getUploadURLExternal``
(``filename``, ``length``: answers ``file_id`` and an ``upload_url``), a POST of the file's bytes to that URL
(``http://127.0.0.1:PORT/upload/v1/<key>``, no token: the URL is the credential; raw body or multipart ``file``,
answered ``200 text/plain`` ``OK - <length>``), and ``files.completeUploadExternal`` (``files`` a JSON array of
``{id, title}``, ``channel_id``, ``thread_ts``, ``initial_comment``), which shares the files in the channel or
thread as a message carrying them and answers ``files``.
Docs: https://docs.slack.dev/reference/methods/files.getUploadURLExternal,
https://docs.slack.dev/reference/methods/files.completeUploadExternal,
https://docs.slack.dev/messaging/working-with-files#uploading_files.
Docs: https://docs.slack.dev/apis/web-api/ (conventions), https://docs.slack.dev/reference/methods/chat.postMessage,
https://docs.slack.dev/reference/methods/chat.update, https://docs.slack.dev/reference/methods/chat.postEphemeral,
https://docs.slack.dev/apis/web-api/rate-limits, https://docs.slack.dev/authentication/verifying-requests-from-slack,
https://docs.slack.dev/reference/interaction-payloads/block_actions-payload.

Web API conventions checked on every call:
    * arguments come as ``application/json`` (what slack_sdk sends for the ``chat.*`` methods),
      ``application/x-www-form-urlencoded`` (what it sends for ``auth.test`` with arguments) or the query string
      (``AsyncWebClient`` puts ``params`` there); other bodies get ``invalid_form_data``, bad JSON ``invalid_json``;
    * the token comes as ``Authorization: Bearer xox...`` or as a ``token`` form argument (not in a JSON body, not
      in the query string, both of which Slack ignores): none gives ``not_authed``, an unknown one ``invalid_auth``;
    * answers are HTTP 200 with ``{"ok": true, ...}`` or ``{"ok": false, "error": "<code>"}`` (Slack reports
      application errors with HTTP 200); an unknown method gets ``unknown_method`` (HTTP 404 here).

Per method: ``channel`` must be known (``channel_not_found``; by default any name starting with ``#`` or any ID
starting with ``C``; responses always carry the channel ID, stable per name); ``text``, ``blocks`` or
``attachments`` is required (``no_text``); ``text`` is at most 40,000 characters (``msg_too_long``); ``blocks`` must
decode to an array (``invalid_blocks_format``) of valid blocks (``invalid_blocks``, see :mod:`._blockkit`, with
Slack's ``errors`` and ``response_metadata.messages`` carrying json-pointers); ``thread_ts`` must look like a ts
(``invalid_thread_ts``). ``chat.update`` needs a known ``ts`` (``message_not_found``).

Stricter than Slack on purpose (the fake flags bot bugs that Slack would swallow): a ``thread_ts`` that names no
message, or names a reply instead of the thread's parent, gets ``thread_not_found`` (Slack accepts it and the reply
is never seen); ``chat.update`` needs the channel *ID* (a ``#name`` gets ``channel_not_found``). Uploads: bytes
that differ from the announced ``length`` get HTTP 400; completing a file whose bytes never arrived, or one
completed already, gets ``file_not_found``; an image block (or element) whose ``slack_file`` names no completed
upload gets ``invalid_blocks`` (Slack fails to download it).

Like Slack, blocks sent without a ``block_id`` get a generated one, and ``chat.update`` follows the documented rules:
new ``blocks`` replace the old ones; ``text`` without ``blocks`` removes them.

Faults: :meth:`FakeSlack.fail_next` (HTTP 429 with ``Retry-After`` and ``{"ok": false, "error": "ratelimited"}`` by
default, or 5xx), :meth:`~FakeSlack.set_rate_limit` (chat.postMessage per channel, about 1 per second with short
bursts, like Slack's special tier; the clock is injectable), :meth:`~FakeSlack.set_down`. Thread-safe.

Inbound helpers: :func:`sign_slack_request` signs a body as Slack does (v0 HMAC-SHA256 scheme);
:func:`block_actions_payload` builds the form-encoded ``payload=<json>`` body Slack POSTs for a button press.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Literal, Self
from urllib.parse import parse_qsl, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._blockkit import validate_blocks
from ._faults import DownMode, FailurePlan, FailureQueue, TokenBucketLimiter, retry_after_header
from ._server import BackgroundServer, DownSwitch, wait_for

__all__ = [
    "DEFAULT_APP_ID",
    "DEFAULT_BOT_ID",
    "DEFAULT_BOT_USER_ID",
    "DEFAULT_TEAM_ID",
    "MAX_TEXT_LENGTH",
    "FakeSlack",
    "MessageVersion",
    "SlackCall",
    "SlackFile",
    "SlackMessage",
    "block_actions_payload",
    "decode_interaction_payload",
    "sign_slack_request",
]

DEFAULT_TEAM_ID: Final = "T0FAKETEAM"
DEFAULT_TEAM_DOMAIN: Final = "fake-workspace"
DEFAULT_BOT_USER_ID: Final = "U0FAKEBOT"
DEFAULT_BOT_ID: Final = "B0FAKEBOT"
DEFAULT_APP_ID: Final = "A0FAKEAPP"
#: Slack truncates and refuses message text beyond 40,000 characters (``msg_too_long``).
MAX_TEXT_LENGTH: Final = 40_000
INJECTABLE_STATUSES: Final = frozenset({200, 429, 500, 502, 503, 504})
_DEFAULT_ERRORS: Final[Mapping[int, str]] = {
    429: "ratelimited",
    500: "internal_error",
    502: "internal_error",
    503: "service_unavailable",
    504: "internal_error",
}
_TS_PATTERN: Final = re.compile(r"\d{1,12}\.\d{1,8}")
_TOKEN_PATTERN: Final = re.compile(r"xox[abpe]-[\w-]+")
METHODS: Final = (
    "auth.test",
    "chat.postMessage",
    "chat.update",
    "chat.postEphemeral",
    "files.getUploadURLExternal",
    "files.completeUploadExternal",
)

Outcome = Literal["ok", "rejected", "rate_limited", "injected", "down"]


class _SlackError(Exception):
    """An ``ok: false`` answer; ``extra`` is merged into the body (``errors``, ``response_metadata``)."""

    def __init__(self, error: str, *, status: int = 200, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.extra = extra


@dataclass(frozen=True)
class MessageVersion:
    """A message's content before an edit (``chat.update``), with the ts of the edit that replaced it."""

    text: str
    blocks: tuple[dict[str, Any], ...]
    attachments: tuple[dict[str, Any], ...]
    replaced_at: str


@dataclass(frozen=True)
class SlackMessage:
    """A snapshot of one message. ``history`` holds its earlier versions, oldest first."""

    channel: str
    ts: str
    text: str
    blocks: tuple[dict[str, Any], ...]
    attachments: tuple[dict[str, Any], ...]
    user: str
    thread_ts: str | None
    reply_broadcast: bool
    reply_count: int
    history: tuple[MessageVersion, ...]
    args: Mapping[str, Any]
    edited_ts: str | None = None
    #: The files shared with the message (a completed upload), as Slack lists them.
    files: tuple[dict[str, Any], ...] = ()

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    @property
    def edited(self) -> bool:
        return bool(self.history)

    def to_api(self, *, team_id: str = DEFAULT_TEAM_ID) -> dict[str, Any]:
        """The message as Slack returns it (``message`` in chat.postMessage answers and block_actions payloads)."""
        message: dict[str, Any] = {
            "type": "message",
            "user": self.user,
            "bot_id": DEFAULT_BOT_ID,
            "app_id": DEFAULT_APP_ID,
            "text": self.text,
            "ts": self.ts,
            "team": team_id,
        }
        if self.blocks:
            message["blocks"] = [dict(block) for block in self.blocks]
        if self.attachments:
            message["attachments"] = [dict(attachment) for attachment in self.attachments]
        if self.thread_ts is not None:
            message["thread_ts"] = self.thread_ts
        if self.reply_count:
            message["reply_count"] = self.reply_count
        if self.edited_ts is not None:
            message["edited"] = {"user": self.user, "ts": self.edited_ts}
        if self.files:
            message["files"] = [dict(file) for file in self.files]
            message["upload"] = True
        return message


@dataclass(frozen=True)
class SlackCall:
    """One HTTP request to ``/api/<method>`` and the answer: ``args`` as received (JSON types for JSON bodies,
    strings for form and query arguments; the token left out)."""

    received_at: datetime
    method: str
    http_method: str
    content_type: str
    args: Mapping[str, Any]
    token: str | None
    status: int
    response: Mapping[str, Any]
    outcome: Outcome

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))

    @property
    def error(self) -> str | None:
        error = self.response.get("error")
        return error if isinstance(error, str) else None


@dataclass(frozen=True)
class SlackFile:
    """A file uploaded through the three steps of ``files_upload_v2``; ``content`` is the bytes received
    (None until they arrive), ``shares`` the ``(channel, ts of the message that shared it)`` once completed."""

    id: str
    filename: str
    length: int
    alt_txt: str | None
    content: bytes | None
    title: str | None
    shares: tuple[tuple[str, str], ...]

    @property
    def completed(self) -> bool:
        return bool(self.shares)

    def to_api(self) -> dict[str, Any]:
        """The file object in ``files.completeUploadExternal`` answers and in the message that shares it."""
        return {"id": self.id, "name": self.filename, "title": self.title or self.filename, "size": self.length}


@dataclass
class _File:
    id: str
    filename: str
    length: int
    alt_txt: str | None
    upload_key: str
    content: bytes | None = None
    title: str | None = None
    shares: list[tuple[str, str]] = field(default_factory=list)

    def snapshot(self) -> SlackFile:
        return SlackFile(
            self.id, self.filename, self.length, self.alt_txt, self.content, self.title, tuple(self.shares)
        )


@dataclass
class _Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    attachments: list[dict[str, Any]]
    user: str
    thread_ts: str | None
    reply_broadcast: bool
    args: dict[str, Any]
    replies: list[str] = field(default_factory=list)
    history: list[MessageVersion] = field(default_factory=list)
    edited_ts: str | None = None
    files: list[dict[str, Any]] = field(default_factory=list)

    def snapshot(self) -> SlackMessage:
        return SlackMessage(
            channel=self.channel,
            ts=self.ts,
            text=self.text,
            blocks=tuple(self.blocks),
            attachments=tuple(self.attachments),
            user=self.user,
            thread_ts=self.thread_ts if self.thread_ts is not None else (self.ts if self.replies else None),
            reply_broadcast=self.reply_broadcast,
            reply_count=len(self.replies),
            history=tuple(self.history),
            args=dict(self.args),
            edited_ts=self.edited_ts,
            files=tuple(self.files),
        )


@dataclass
class _Channel:
    id: str
    name: str | None
    top_level: list[str] = field(default_factory=list)  # ts of top-level messages and broadcast replies
    messages: dict[str, _Message] = field(default_factory=dict)  # every message by ts, replies included
    ephemeral: list[_Message] = field(default_factory=list)


def channel_id_for(name: str) -> str:
    """The stable fake ID for a channel name (``#incidents`` and ``incidents`` give the same ``C...`` ID)."""
    digest = hashlib.sha256(name.lstrip("#").encode()).digest()
    return "C" + base64.b32encode(digest).decode()[:10]


def _truthy(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("1", "true")) or value == 1


def _json_list(args: Mapping[str, Any], name: str, error: str) -> list[dict[str, Any]] | None:
    """A JSON array argument, given decoded (JSON body) or as a JSON string (form body); None when absent."""
    value = args.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise _SlackError(error, response_metadata={"messages": [f"[ERROR] {name} is not valid JSON"]}) from None
    if not isinstance(value, list):
        raise _SlackError(error, response_metadata={"messages": [f"[ERROR] {name} must be a JSON array"]})
    return value


class FakeSlack(DownSwitch):
    """Slack's Web API (the methods in :data:`METHODS`) on ``http://127.0.0.1:PORT/api/``.

    **Parameters:**

    * ``tokens``: the tokens accepted (None: any ``xoxb-``/``xoxp-``/``xoxa-``/``xoxe-`` token).
    * ``channels``: the known channels, as a mapping of names (``#incidents``) to IDs, or a collection of names
      (``#...``, given stable derived IDs) and IDs; None: any ``#name`` and any ``C...`` ID.
    * ``post_message_rate``/``post_message_burst``: chat.postMessage limit per channel (None: no limit).
    * ``clock``: monotonic seconds for the rate limiter.

    Records: :attr:`calls` (every request), :attr:`rejected` (answered ``ok: false`` by validation),
    :meth:`messages`, :meth:`thread`, :meth:`message`, :meth:`ephemeral_messages`.
    """

    def __init__(
        self,
        *,
        tokens: Collection[str] | None = None,
        channels: Mapping[str, str] | Collection[str] | None = None,
        post_message_rate: float | None = None,
        post_message_burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        team_id: str = DEFAULT_TEAM_ID,
        bot_user_id: str = DEFAULT_BOT_USER_ID,
    ) -> None:
        self.tokens = None if tokens is None else frozenset(tokens)
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self._names: dict[str, str] | None = None  # name without '#' -> id; None: any '#name'
        self._ids: set[str] | None = None  # known IDs; None: any 'C...'
        if channels is not None:
            self._names, self._ids = {}, set()
            pairs = channels.items() if isinstance(channels, Mapping) else ((c, None) for c in channels)
            for key, value in pairs:
                if key.startswith("#"):
                    channel_id = value or channel_id_for(key)
                    self._names[key.lstrip("#")] = channel_id
                    self._ids.add(channel_id)
                else:
                    self._ids.add(value or key)
                    if value is not None:
                        self._names[key] = value
        self._clock = clock
        self._initial_rate = (post_message_rate, post_message_burst)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._server: BackgroundServer | None = None
        self._down: DownMode | None = None
        self._failures = FailureQueue()
        self._limiter: TokenBucketLimiter | None = None
        self._calls: list[SlackCall] = []
        self._channels: dict[str, _Channel] = {}
        self._files: dict[str, _File] = {}
        self._last_ts_us = 0
        self.set_rate_limit(post_message_rate, burst=post_message_burst)
        self.app = Starlette(
            routes=[
                Route("/api/{method}", self._endpoint, methods=["GET", "POST"]),
                Route("/upload/v1/{key}", self._upload_endpoint, methods=["POST"]),
            ]
        )

    # Lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is None:
            self._server = BackgroundServer(self.app, name="fake-slack")
        self._server.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake Slack has not been started")
        return self._server.port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT/api/``: slack_sdk's ``base_url``."""
        return f"{self.base_url}/api/"

    # Fault injection ---------------------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 429,
        retry_after: int | None = 1,
        method: str | None = None,
        error: str | None = None,
    ) -> None:
        """Answer the next ``n`` calls (to ``method`` only, if given) with HTTP ``status`` and ``{"ok": false,
        "error": error}``. Defaults: 429 ``ratelimited`` with ``Retry-After: 1``; 500/502/504 ``internal_error``,
        503 ``service_unavailable``; status 200 needs an ``error`` (e.g. ``fatal_error``). ``retry_after=None``
        leaves the header out (slack_sdk's retry handler then sleeps 1-2 s)."""
        if status not in INJECTABLE_STATUSES:
            raise ValueError(f"status must be one of {sorted(INJECTABLE_STATUSES)}, not {status}")
        code = error or _DEFAULT_ERRORS.get(status)
        if code is None:
            raise ValueError("status 200 needs an error code")
        with self._lock:
            self._failures.add(n, FailurePlan(status=status, retry_after=retry_after, method=method, error=code))

    def set_rate_limit(self, per_second: float | None = 1.0, *, burst: int = 1) -> None:
        """Limit chat.postMessage to ``per_second`` per channel with bursts of ``burst`` (None: off); over the limit
        the answer is HTTP 429 ``ratelimited`` with ``Retry-After`` in whole seconds. Resets the buckets."""
        with self._lock:
            self._limiter = None if per_second is None else TokenBucketLimiter(per_second, burst, self._clock)

    def reset(self) -> None:
        """Forget every call, message and pending failure, restore the constructor's rate limit, come back up."""
        with self._lock:
            self._failures.clear()
            self._calls.clear()
            self._channels.clear()
            self._files.clear()
            rate, burst = self._initial_rate
            self.set_rate_limit(rate, burst=burst)
        if self.is_down:
            self.set_down(False)

    # Records -----------------------------------------------------------------------------------------

    @property
    def calls(self) -> list[SlackCall]:
        """Every request to ``/api/<method>``, oldest first, whatever the answer (retries show up here)."""
        with self._lock:
            return list(self._calls)

    @property
    def rejected(self) -> list[SlackCall]:
        """Calls answered ``ok: false`` by the fake's checks (auth, arguments, blocks), not by injected faults."""
        with self._lock:
            return [call for call in self._calls if call.outcome == "rejected"]

    def calls_to(self, method: str) -> list[SlackCall]:
        with self._lock:
            return [call for call in self._calls if call.method == method]

    def channel_id(self, channel: str) -> str:
        """The ID the fake uses for ``channel`` (a ``#name`` or an ID); LookupError if it is not known."""
        resolved = self._resolve(channel, allow_name=True)
        if resolved is None:
            raise LookupError(f"unknown channel {channel!r}")
        return resolved

    def messages(self, channel: str) -> list[SlackMessage]:
        """Top-level messages of ``channel`` (a name or an ID), oldest first; broadcast replies included."""
        with self._lock:
            found = self._channels.get(self.channel_id(channel))
            return [] if found is None else [found.messages[ts].snapshot() for ts in found.top_level]

    def thread(self, channel: str, ts: str) -> list[SlackMessage]:
        """The replies to the message ``ts`` (not the parent itself), oldest first."""
        with self._lock:
            parent = self._get_message(self.channel_id(channel), ts)
            channel_state = self._channels[parent.channel]
            return [channel_state.messages[reply].snapshot() for reply in parent.replies]

    def message(self, channel: str, ts: str) -> SlackMessage:
        """One message (top-level or reply); LookupError if there is none."""
        with self._lock:
            return self._get_message(self.channel_id(channel), ts).snapshot()

    @property
    def files(self) -> list[SlackFile]:
        """Every file announced with files.getUploadURLExternal, oldest first, with what arrived of it."""
        with self._lock:
            return [file.snapshot() for file in self._files.values()]

    def ephemeral_messages(self, channel: str) -> list[SlackMessage]:
        """Messages sent with chat.postEphemeral (``args["user"]`` says to whom)."""
        with self._lock:
            found = self._channels.get(self.channel_id(channel))
            return [] if found is None else [message.snapshot() for message in found.ephemeral]

    def wait_for_calls(self, count: int, *, method: str | None = None, timeout: float = 5.0) -> list[SlackCall]:
        """Block until at least ``count`` calls (to ``method``, if given) arrived and return them."""

        def check() -> list[SlackCall] | None:
            matching = [call for call in self._calls if method is None or call.method == method]
            return matching if len(matching) >= count else None

        return wait_for(
            check, timeout=timeout, what=f"{count} Slack calls to {method or 'any method'}", condition=self._changed
        )

    # Channels and messages ---------------------------------------------------------------------------

    def _resolve(self, channel: object, *, allow_name: bool) -> str | None:
        if not isinstance(channel, str) or not channel:
            return None
        if channel.startswith("#"):
            if not allow_name:
                return None
            name = channel[1:]
            if self._names is None:
                return channel_id_for(name) if name else None
            return self._names.get(name)
        if self._ids is None:
            return channel if channel.startswith("C") else None
        if channel in self._ids:
            return channel
        return self._names.get(channel) if allow_name and self._names is not None else None

    def _get_message(self, channel_id: str, ts: str) -> _Message:
        found = self._channels.get(channel_id)
        if found is None or ts not in found.messages:
            raise LookupError(f"no message {ts} in {channel_id}")
        return found.messages[ts]

    def _channel_state(self, channel_id: str, requested: str) -> _Channel:
        name = requested.lstrip("#") if requested.startswith("#") else None
        state = self._channels.setdefault(channel_id, _Channel(channel_id, name))
        state.name = state.name or name
        return state

    def _next_ts(self) -> str:
        micros = max(time.time_ns() // 1000, self._last_ts_us + 1)
        self._last_ts_us = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    # Serving -----------------------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        body = await request.body()
        method = request.path_params["method"]
        status, content, headers = self._handle(
            method,
            request.method,
            request.headers.get("content-type", ""),
            request.headers.get("authorization"),
            dict(request.query_params),
            body,
        )
        return JSONResponse(content, status_code=status, headers=headers)

    def _handle(
        self,
        method: str,
        http_method: str,
        content_type: str,
        authorization: str | None,
        query: dict[str, str],
        body: bytes,
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            received_at = datetime.now(UTC)
            # Slack no longer takes tokens in the query string (apps created since 2021-02-24): ignore one there.
            args: dict[str, Any] = {key: value for key, value in query.items() if key != "token"}
            token: str | None = None
            headers: dict[str, str] = {}
            outcome: Outcome = "ok"
            try:
                if self._down is not None:
                    outcome = "down"
                    raise _SlackError("service_unavailable", status=503)
                plan = self._failures.take(method)
                if plan is not None:
                    outcome = "injected"
                    if plan.retry_after is not None:
                        headers["Retry-After"] = str(plan.retry_after)
                    raise _SlackError(plan.error or "internal_error", status=plan.status)
                outcome = "rejected"
                args.update(self._parse_body(content_type, body))
                token = self._authenticate(authorization, args)
                answer = self._dispatch(method, args)
                outcome = "ok"
                status, content = 200, {"ok": True, **answer}
            except _SlackError as error:
                if error.error == "ratelimited" and outcome == "rejected":
                    outcome = "rate_limited"
                    headers["Retry-After"] = str(error.extra.pop("retry_after"))
                status, content = error.status, {"ok": False, "error": error.error, **error.extra}
            self._calls.append(
                SlackCall(received_at, method, http_method, content_type, args, token, status, content, outcome)
            )
            self._changed.notify_all()
            return status, content, headers

    async def _upload_endpoint(self, request: Request) -> Response:
        """Step 2 of an upload: the file's bytes, POSTed to the URL step 1 handed out."""
        key = request.path_params["key"]
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type == "multipart/form-data":
            form = await request.form()
            uploaded = form.get("file")
            content = await uploaded.read() if uploaded is not None and not isinstance(uploaded, str) else None
        else:
            content = await request.body()
        with self._lock:
            file = next((f for f in self._files.values() if f.upload_key == key), None)
            if file is None or content is None:
                return Response("invalid upload", status_code=404 if file is None else 400, media_type="text/plain")
            if len(content) != file.length:
                message = f"length mismatch: announced {file.length}, received {len(content)}"
                return Response(message, status_code=400, media_type="text/plain")
            file.content = content
            self._changed.notify_all()
        return Response(f"OK - {len(content)}", media_type="text/plain")

    @staticmethod
    def _parse_body(content_type: str, body: bytes) -> dict[str, Any]:
        media_type = content_type.split(";")[0].strip().lower()
        if not body:
            return {}
        if media_type == "application/json":
            try:
                decoded = json.loads(body)
            except ValueError:
                raise _SlackError("invalid_json") from None
            if not isinstance(decoded, dict):
                raise _SlackError("invalid_json")
            decoded.pop("token", None)  # Slack ignores a token inside a JSON body: it must be a header
            return decoded
        if media_type == "application/x-www-form-urlencoded":
            try:
                return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True))
            except (UnicodeDecodeError, ValueError):
                raise _SlackError("invalid_form_data") from None
        raise _SlackError("invalid_form_data")  # multipart (file uploads) and anything else

    def _authenticate(self, authorization: str | None, args: dict[str, Any]) -> str:
        token: str | None = None
        if authorization:
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() != "bearer" or not credentials.strip():
                raise _SlackError("invalid_auth")
            token = credentials.strip()
        form_token = args.pop("token", None)
        token = token or (form_token if isinstance(form_token, str) and form_token else None)
        if token is None:
            raise _SlackError("not_authed")
        valid = _TOKEN_PATTERN.fullmatch(token) is not None if self.tokens is None else token in self.tokens
        if not valid:
            raise _SlackError("invalid_auth")
        return token

    def _dispatch(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {
                "url": f"https://{DEFAULT_TEAM_DOMAIN}.slack.com/",
                "team": "Fake Workspace",
                "user": "incident-bot",
                "team_id": self.team_id,
                "user_id": self.bot_user_id,
                "bot_id": DEFAULT_BOT_ID,
                "is_enterprise_install": False,
            }
        if method == "chat.postMessage":
            return self._post_message(args)
        if method == "chat.update":
            return self._update(args)
        if method == "chat.postEphemeral":
            return self._post_ephemeral(args)
        if method == "files.getUploadURLExternal":
            return self._get_upload_url(args)
        if method == "files.completeUploadExternal":
            return self._complete_upload(args)
        raise _SlackError("unknown_method", status=404, req_method=method)

    def _content(
        self, args: Mapping[str, Any]
    ) -> tuple[str | None, list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
        """Check text, blocks and attachments; return them (None where not given)."""
        text = args.get("text")
        if text is not None and not isinstance(text, str):
            text = str(text)
        if text is not None and len(text) > MAX_TEXT_LENGTH:
            raise _SlackError("msg_too_long")
        blocks = _json_list(args, "blocks", "invalid_blocks_format")
        attachments = _json_list(args, "attachments", "invalid_attachments")
        if blocks is not None:
            errors = validate_blocks(blocks) or self._unknown_slack_files(blocks)
            if errors:
                raise _SlackError(
                    "invalid_blocks", errors=errors, response_metadata={"messages": [f"[ERROR] {e}" for e in errors]}
                )
            blocks = [
                block if "block_id" in block else {**block, "block_id": secrets.token_urlsafe(3)} for block in blocks
            ]
        if not text and not blocks and not attachments:
            raise _SlackError("no_text")
        return text, blocks, attachments

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        requested = args.get("channel")
        channel_id = self._resolve(requested, allow_name=True)
        if channel_id is None:
            raise _SlackError("channel_not_found")
        assert isinstance(requested, str)
        text, blocks, attachments = self._content(args)
        channel = self._channel_state(channel_id, requested)
        thread_ts = args.get("thread_ts")
        parent: _Message | None = None
        if thread_ts is not None and thread_ts != "":
            thread_ts = str(thread_ts)
            if _TS_PATTERN.fullmatch(thread_ts) is None:
                raise _SlackError(
                    "invalid_thread_ts",
                    response_metadata={"messages": [f"[ERROR] {thread_ts} is not a valid thread_ts"]},
                )
            parent = channel.messages.get(thread_ts)
            if parent is None or parent.thread_ts is not None:
                raise _SlackError("thread_not_found")
        if self._limiter is not None:
            wait = self._limiter.acquire(channel_id)
            if wait is not None:
                raise _SlackError("ratelimited", status=429, retry_after=retry_after_header(wait))
        message = _Message(
            channel=channel_id,
            ts=self._next_ts(),
            text=text or "",
            blocks=blocks or [],
            attachments=attachments or [],
            user=self.bot_user_id,
            thread_ts=parent.ts if parent is not None else None,
            reply_broadcast=parent is not None and _truthy(args.get("reply_broadcast")),
            args=dict(args),
        )
        channel.messages[message.ts] = message
        if parent is not None:
            parent.replies.append(message.ts)
        if parent is None or message.reply_broadcast:
            channel.top_level.append(message.ts)
        return {"channel": channel_id, "ts": message.ts, "message": message.snapshot().to_api(team_id=self.team_id)}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel_id = self._resolve(args.get("channel"), allow_name=False)
        if channel_id is None:
            raise _SlackError("channel_not_found")
        ts = args.get("ts")
        channel = self._channels.get(channel_id)
        if not isinstance(ts, str) or channel is None or ts not in channel.messages:
            raise _SlackError("message_not_found")
        message = channel.messages[ts]
        text, blocks, attachments = self._content(args)
        message.history.append(
            MessageVersion(message.text, tuple(message.blocks), tuple(message.attachments), self._next_ts())
        )
        if blocks is not None:
            message.blocks = blocks
        elif text is not None:
            message.blocks = []  # "If text is provided and blocks are not, the blocks are removed"
            message.edited_ts = message.history[-1].replaced_at
        if text is not None:
            message.text = text
        if attachments is not None:
            message.attachments = attachments
        snapshot = message.snapshot()
        return {
            "channel": channel_id,
            "ts": ts,
            "text": snapshot.text,
            "message": snapshot.to_api(team_id=self.team_id),
        }

    def _unknown_slack_files(self, blocks: list[dict[str, Any]]) -> list[str]:
        """Errors for image blocks and elements whose ``slack_file`` names no completed upload (Slack
        cannot download them)."""
        errors = []
        for index, block in enumerate(blocks):
            images = [(f"/blocks/{index}", block)]
            images += [(f"/blocks/{index}/elements/{i}", e) for i, e in enumerate(block.get("elements") or [])]
            if isinstance(block.get("accessory"), dict):
                images.append((f"/blocks/{index}/accessory", block["accessory"]))
            for pointer, image in images:
                source = image.get("slack_file") if isinstance(image, dict) else None
                file_id = source.get("id") if isinstance(source, dict) else None
                if file_id is not None and not (file_id in self._files and self._files[file_id].shares):
                    errors.append(f"invalid slack file: {file_id} [json-pointer:{pointer}/slack_file]")
        return errors

    def _get_upload_url(self, args: dict[str, Any]) -> dict[str, Any]:
        filename = args.get("filename")
        length = str(args.get("length", ""))
        if not isinstance(filename, str) or not filename or not length.isdigit() or int(length) <= 0:
            raise _SlackError(
                "invalid_arguments",
                response_metadata={"messages": ["[ERROR] filename and a positive length are required"]},
            )
        file_id = "F" + secrets.token_hex(5).upper()
        key = secrets.token_urlsafe(12)
        alt_txt = args.get("alt_txt")
        self._files[file_id] = _File(
            file_id, filename, int(length), alt_txt if isinstance(alt_txt, str) else None, upload_key=key
        )
        return {"upload_url": f"{self.base_url}/upload/v1/{key}", "file_id": file_id}

    def _complete_upload(self, args: dict[str, Any]) -> dict[str, Any]:
        listed = _json_list(args, "files", "invalid_arguments")
        if not listed:
            raise _SlackError("invalid_arguments", response_metadata={"messages": ["[ERROR] files is required"]})
        found: list[_File] = []
        for entry in listed:
            file = self._files.get(entry.get("id")) if isinstance(entry, dict) else None
            if file is None or file.content is None or file.shares:
                raise _SlackError("file_not_found")
            found.append(file)
        for entry, file in zip(listed, found, strict=True):
            if isinstance(entry.get("title"), str):
                file.title = entry["title"]
        requested = args.get("channel_id")
        if requested is None or requested == "":
            return {"files": [file.snapshot().to_api() for file in found]}  # uploaded, shared nowhere
        channel_id = self._resolve(requested, allow_name=False)
        if channel_id is None:
            raise _SlackError("channel_not_found")
        channel = self._channel_state(channel_id, str(requested))
        thread_ts = args.get("thread_ts")
        parent: _Message | None = None
        if thread_ts is not None and thread_ts != "":
            parent = channel.messages.get(str(thread_ts))
            if parent is None or parent.thread_ts is not None:
                raise _SlackError("thread_not_found")
        comment = args.get("initial_comment")
        message = _Message(
            channel=channel_id,
            ts=self._next_ts(),
            text=comment if isinstance(comment, str) else "",
            blocks=[],
            attachments=[],
            user=self.bot_user_id,
            thread_ts=parent.ts if parent is not None else None,
            reply_broadcast=False,
            args=dict(args),
            files=[file.snapshot().to_api() for file in found],
        )
        channel.messages[message.ts] = message
        if parent is not None:
            parent.replies.append(message.ts)
        else:
            channel.top_level.append(message.ts)
        for file in found:
            file.shares.append((channel_id, message.ts))
        return {"files": [file.snapshot().to_api() for file in found]}

    def _post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        requested = args.get("channel")
        channel_id = self._resolve(requested, allow_name=True)
        if channel_id is None:
            raise _SlackError("channel_not_found")
        assert isinstance(requested, str)
        user = args.get("user")
        if not isinstance(user, str) or not user:
            raise _SlackError("user_not_found")
        text, blocks, attachments = self._content(args)
        message = _Message(
            channel=channel_id,
            ts=self._next_ts(),
            text=text or "",
            blocks=blocks or [],
            attachments=attachments or [],
            user=self.bot_user_id,
            thread_ts=None,
            reply_broadcast=False,
            args=dict(args),
        )
        self._channel_state(channel_id, requested).ephemeral.append(message)
        return {"message_ts": message.ts}


# --------------------------------------------------------------------------------------------------------
# Inbound requests: signing and interaction payloads


def sign_slack_request(signing_secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack adds to a request it sends: ``X-Slack-Request-Timestamp`` (Unix seconds; now by default)
    and ``X-Slack-Signature`` = ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}`` keyed with the signing
    secret (https://docs.slack.dev/authentication/verifying-requests-from-slack). Receivers reject timestamps more
    than five minutes away from their clock: pass an old ``timestamp`` to test that."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + stamp.encode() + b":" + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


def _find_button(message: Mapping[str, Any], action_id: str) -> tuple[str | None, Mapping[str, Any] | None]:
    """The block_id and element of the button ``action_id`` in ``message``'s blocks."""
    for block in message.get("blocks") or []:
        elements = list(block.get("elements") or [])
        if "accessory" in block:
            elements.append(block["accessory"])
        for element in elements:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return block.get("block_id"), element
    return None, None


def block_actions_payload(
    action_id: str,
    value: str,
    user_id: str,
    channel_id: str,
    message_ts: str,
    *,
    message: Mapping[str, Any] | None = None,
    block_id: str | None = None,
    button_text: str | None = None,
    style: str | None = None,
    user_name: str = "oncall",
    channel_name: str = "incidents",
    team_id: str = DEFAULT_TEAM_ID,
    team_domain: str = DEFAULT_TEAM_DOMAIN,
    api_app_id: str = DEFAULT_APP_ID,
    response_url: str | None = None,
    trigger_id: str | None = None,
    action_ts: str | None = None,
) -> bytes:
    """The body Slack POSTs to the app's Request URL when a user presses a button: ``payload=<json>`` form-encoded
    (``Content-Type: application/x-www-form-urlencoded``), with the documented ``block_actions`` shape: ``type``,
    ``user``, ``api_app_id``, ``token``, ``container`` (``message_ts``, ``channel_id``), ``trigger_id``, ``team``,
    ``channel``, ``message``, ``state``, ``response_url`` and ``actions`` (one button: ``action_id``, ``block_id``,
    ``text``, ``value``, ``style``, ``type``, ``action_ts``).

    ``message`` is the message as Slack knows it (``fake_slack.message(channel, ts).to_api()``); when given, the
    button's ``block_id``, text and style are taken from its blocks unless passed explicitly.
    """
    found_block_id, element = _find_button(message or {}, action_id)
    element = element or {}
    now = time.time()
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id or found_block_id or "incident_actions",
        "text": {
            "type": "plain_text",
            "text": button_text or element.get("text", {}).get("text") or action_id,
            "emoji": True,
        },
        "value": value,
        "type": "button",
        "action_ts": action_ts or f"{now:.6f}",
    }
    if style or element.get("style"):
        action["style"] = style or element["style"]
    container: dict[str, Any] = {
        "type": "message",
        "message_ts": message_ts,
        "channel_id": channel_id,
        "is_ephemeral": False,
    }
    if message is not None and message.get("thread_ts") not in (None, message_ts):
        container["thread_ts"] = message["thread_ts"]
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": "fakeverificationtoken",  # the deprecated verification token; verify signatures instead
        "container": container,
        "trigger_id": trigger_id or f"{int(now)}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}",
        "team": {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_name},
        "message": dict(message) if message is not None else {"type": "message", "ts": message_ts, "text": ""},
        "state": {"values": {}},
        "response_url": response_url
        or f"https://hooks.slack.com/actions/{team_id}/{secrets.randbelow(10**12)}/{secrets.token_urlsafe(18)}",
        "actions": [action],
    }
    return urlencode({"payload": json.dumps(payload, separators=(",", ":"))}).encode()


def decode_interaction_payload(body: bytes) -> dict[str, Any]:
    """The JSON inside a ``payload=<json>`` form body, as an interaction endpoint would parse it."""
    fields = dict(parse_qsl(body.decode("utf-8"), strict_parsing=True))
    payload: dict[str, Any] = json.loads(fields["payload"])
    return payload
