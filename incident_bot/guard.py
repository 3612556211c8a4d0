"""The intake's gate, as ASGI middleware in front of FastAPI: load shedding (503), the per-client
rate limit (429 with ``RateLimit`` fields), the lockout of clients that keep presenting bad
credentials (429), the bearer token (401, compared in constant time), the body size limit (413) and
the nesting limit of a JSON body (400), all before a byte of the body is parsed. The nesting limit
is the bot's own, not the JSON parser's: Python 3.11 refuses about 1,000 levels, 3.13 parses far
deeper, and an Alertmanager webhook needs 4. The rate limit, lockout and shedding are the breaker
library's (:mod:`breaker.integrations.guards`); the Slack route reports its bad signatures to the
same :class:`~breaker.LockoutGuard`.

The lockout is per source address only: the intake has one principal (Alertmanager's token), and
locking that principal out would let anyone who can reach the bot silence it."""

from __future__ import annotations

import json
import re
from itertools import accumulate

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from breaker import LockoutGuard, LockoutPolicy, RateLimiter, constant_time_equals
from breaker.integrations.guards import client_address

from .metrics import BotMetrics

__all__ = ["IntakeGuard", "intake_lockout", "json_nesting_depth"]

# A string, or an unterminated one up to the end: every quote starts a match that succeeds, so a
# hostile body (many escaped quotes, no closing one) is scanned once, not once per quote.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\[\s\S]?)*+(?:"|\Z)')
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_OPENERS = frozenset(b"[{")


def json_nesting_depth(body: bytes) -> int:
    """How deeply arrays and objects nest in a JSON document, without parsing it (no recursion:
    linear in the body's size). Brackets inside strings do not count; a malformed document gets
    a number too, and the parser refuses it later."""
    skeleton = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    openers = len(skeleton) - skeleton.count(b"]") - skeleton.count(b"}")
    if openers <= 1:
        return openers
    return max(accumulate(1 if byte in _OPENERS else -1 for byte in skeleton))


def intake_lockout(failures_allowed: int, window: float, lockout: float) -> LockoutGuard:
    """The bot's lockout: ``failures_allowed`` bad credentials from one address within ``window``
    seconds lock it out for ``lockout`` seconds, doubling on each repeat (up to 16 times)."""
    policy = LockoutPolicy(
        max_failures=failures_allowed, window=window, base_lockout=lockout, multiplier=2, max_lockout=lockout * 16
    )
    return LockoutGuard("incident_bot.auth", policy, address_policy=policy)


class IntakeGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        paths: tuple[str, ...],
        token: str,
        max_body_bytes: int,
        max_json_depth: int,
        json_paths: tuple[str, ...] = (),
        lockout: LockoutGuard,
        rate_limiter: RateLimiter | None = None,
        bearer_paths: tuple[str, ...] | None = None,
        metrics: BotMetrics,
    ) -> None:
        self.app = app
        self.paths = paths
        #: The paths that need the bearer token (the others authenticate in the route: Slack's
        #: signature, whose failures the route reports to ``lockout``).
        self.bearer_paths = paths if bearer_paths is None else bearer_paths
        self._expected = f"Bearer {token}".encode()
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        #: The paths whose bodies are JSON (the others, Slack's, are form-encoded).
        self.json_paths = json_paths
        self.lockout = lockout
        self.rate_limiter = rate_limiter
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        client = client_address(scope)
        if self.rate_limiter is not None:
            decision = await self.rate_limiter.acquire(client)
            if not decision.allowed:
                self.metrics.rejected.labels("rate_limited").inc()
                await _answer(send, 429, "too many requests from this client: retry later", extra=decision.headers())
                return
        status = await self.lockout.check(None, client)
        if status.locked:
            self.metrics.rejected.labels("throttled").inc()
            await _answer(
                send, 429, "too many bad tokens from this client: retry later", retry_after=status.retry_after
            )
            return
        headers = dict(scope["headers"])
        presented = headers.get(b"authorization", b"")
        if scope["path"] in self.bearer_paths and not constant_time_equals(presented, self._expected):
            await self.lockout.failed(None, client)
            self.metrics.rejected.labels("unauthorized").inc()
            await _answer(send, 401, "a valid bearer token is required", www_authenticate=True)
            return
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            self.metrics.rejected.labels("too_large").inc()
            await _answer(send, 413, f"the body is over {self.max_body_bytes} bytes")
            return
        body = bytearray()
        while True:  # read it all here (bounded), so a chunked body cannot slip past the limit
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                self.metrics.rejected.labels("too_large").inc()
                await _answer(send, 413, f"the body is over {self.max_body_bytes} bytes")
                return
            if not message.get("more_body", False):
                break
        if scope["path"] in self.json_paths and json_nesting_depth(bytes(body)) > self.max_json_depth:
            self.metrics.rejected.labels("too_deep").inc()
            await _answer(send, 400, f"the JSON body nests deeper than {self.max_json_depth} levels")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _answer(
    send: Send,
    status: int,
    detail: str,
    *,
    retry_after: float | None = None,
    www_authenticate: bool = False,
    extra: dict[str, str] | None = None,
) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, round(retry_after))).encode()))
    if www_authenticate:
        headers.append((b"www-authenticate", b"Bearer"))
    for name, value in (extra or {}).items():
        headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
