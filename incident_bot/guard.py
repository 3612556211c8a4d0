"""The intake's gate, as ASGI middleware in front of FastAPI: the body size limit (413), the bearer
token (401, compared in constant time) and the throttling of clients that keep presenting bad
tokens (429), all before a byte of the body is parsed."""

from __future__ import annotations

import hmac
import json
import time
from collections import deque
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .metrics import BotMetrics

__all__ = ["AuthThrottle", "IntakeGuard"]


class AuthThrottle:
    """Bad tokens per client: after ``allowed`` within ``window`` seconds, the client gets 429 for
    ``lockout`` seconds, whatever it sends."""

    def __init__(
        self, allowed: int, window: float, lockout: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.allowed = allowed
        self.window = window
        self.lockout = lockout
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._locked: dict[str, float] = {}

    def locked_for(self, client: str) -> float:
        """Seconds the client stays locked out (0: it may try)."""
        until = self._locked.get(client)
        if until is None:
            return 0.0
        left = until - self.clock()
        if left <= 0:
            del self._locked[client]
            return 0.0
        return left

    def failed(self, client: str) -> None:
        at = self.clock()
        failures = self._failures.setdefault(client, deque())
        failures.append(at)
        while failures and failures[0] < at - self.window:
            failures.popleft()
        if len(failures) >= self.allowed:
            self._locked[client] = at + self.lockout
            failures.clear()
        if len(self._failures) > 10_000:  # a spray of addresses must not grow this without bound
            self._failures = {c: f for c, f in self._failures.items() if f and f[-1] >= at - self.window}

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)


class IntakeGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        paths: tuple[str, ...],
        token: str,
        max_body_bytes: int,
        throttle: AuthThrottle,
        metrics: BotMetrics,
    ) -> None:
        self.app = app
        self.paths = paths
        self._expected = f"Bearer {token}".encode()
        self.max_body_bytes = max_body_bytes
        self.throttle = throttle
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown", 0))[0]
        locked = self.throttle.locked_for(client)
        if locked:
            self.metrics.rejected.labels("throttled").inc()
            await _answer(send, 429, "too many bad tokens from this client: retry later", retry_after=locked)
            return
        headers = dict(scope["headers"])
        presented = headers.get(b"authorization", b"")
        if not hmac.compare_digest(presented, self._expected):
            self.throttle.failed(client)
            self.metrics.rejected.labels("unauthorized").inc()
            await _answer(send, 401, "a valid bearer token is required", www_authenticate=True)
            return
        self.throttle.succeeded(client)
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
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _answer(
    send: Send, status: int, detail: str, *, retry_after: float | None = None, www_authenticate: bool = False
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
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
