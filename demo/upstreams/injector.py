"""The ASGI middleware that makes each request meet its upstream's fault.

It sits in front of the fake APIs, so the endpoints know nothing about chaos: it counts the
request, then answers in the upstream's own error format, waits, drops the connection, or lets the
request through with its server-sent events slowed or stalled. Stream faults touch only
``text/event-stream`` answers, and count one chunk per body message (one event each).

With a capacity limit for the upstream (demo/upstreams/capacity.py, off by default), requests that
are answered (normally, or after a latency fault) first wait for one of its slots, or are refused
with the upstream's usual server error when its queue is full.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .capacity import CapacityLimiter, Overloaded
from .chaos import Chaos, ErrorRate, Fault, Latency, Outage, RateLimit, SlowStream, StallStream, Upstream
from .connection import reset_connection
from .errors import ErrorFormat

__all__ = ["ChaosMiddleware"]


class ChaosMiddleware:
    """Applies ``chaos`` to the requests that ``upstream_for`` maps to an upstream, and the
    ``capacity`` limits (none by default) to the ones it lets through."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        chaos: Chaos,
        upstream_for: Callable[[str], Upstream | None],
        formats: Mapping[Upstream, ErrorFormat],
        capacity: Mapping[Upstream, CapacityLimiter] | None = None,
    ) -> None:
        self.app = app
        self.chaos = chaos
        self.upstream_for = upstream_for
        self.formats = formats
        self.capacity = dict(capacity or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        upstream = self.upstream_for(scope["path"]) if scope["type"] == "http" else None
        if upstream is None:
            await self.app(scope, receive, send)
            return
        errors = self.formats[upstream]
        with self.chaos.admit(upstream) as fault:
            match fault:
                case ErrorRate(status=status):
                    await errors.server_error(status)(scope, receive, send)
                case Outage(mode="reset"):
                    await reset_connection(scope, receive)
                case Outage():
                    await errors.unavailable()(scope, receive, send)
                case RateLimit(retry_after_s=retry_after_s):
                    await errors.rate_limited(retry_after_s)(scope, receive, send)
                case _:
                    limiter = self.capacity.get(upstream)
                    if limiter is None:
                        await self._answer(fault, scope, receive, send)
                        return
                    try:
                        await limiter.acquire()
                    except Overloaded:
                        await errors.server_error(None)(scope, receive, send)
                        return
                    try:
                        await limiter.serve()
                        await self._answer(fault, scope, receive, send)
                    finally:
                        limiter.release()

    async def _answer(self, fault: Fault | None, scope: Scope, receive: Receive, send: Send) -> None:
        """Let the request through, delayed or with its stream shaped as ``fault`` says."""
        match fault:
            case Latency(seconds=seconds):
                await asyncio.sleep(seconds)
                await self.app(scope, receive, send)
            case SlowStream() | StallStream():
                await self.app(scope, receive, _shaped(send, fault))
            case _:
                await self.app(scope, receive, send)


def _shaped(send: Send, fault: SlowStream | StallStream) -> Send:
    """``send``, pausing between the chunks of an event stream as ``fault`` says."""
    streaming = False
    chunks_sent = 0

    async def send_shaped(message: Message) -> None:
        nonlocal streaming, chunks_sent
        if message["type"] == "http.response.start":
            content_type = dict(message.get("headers", [])).get(b"content-type", b"")
            streaming = content_type.startswith(b"text/event-stream")
        elif streaming and message["type"] == "http.response.body" and message.get("body"):
            if isinstance(fault, SlowStream) and chunks_sent > 0:
                await asyncio.sleep(fault.chunk_delay_s)
            elif isinstance(fault, StallStream) and chunks_sent == fault.after_chunks:
                await _stall(fault.stall_s)
            chunks_sent += 1
        await send(message)

    return send_shaped


async def _stall(seconds: float | None) -> None:
    """Wait ``seconds``, or until cancelled: the server cancels the stream when its client leaves."""
    if seconds is None:
        await asyncio.Event().wait()
    else:
        await asyncio.sleep(seconds)
