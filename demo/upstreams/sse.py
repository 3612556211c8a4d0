"""Server-sent events as the OpenAI and Anthropic APIs send them.

Each event is yielded to the server as its own body chunk, so the chaos middleware can count
chunks and slow or stall a stream between two of them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence

from starlette.responses import StreamingResponse

__all__ = ["event_stream", "sse_event"]


def sse_event(data: object, *, event: str | None = None) -> bytes:
    """One event: ``data`` as compact JSON (a string is sent as is), after an ``event:`` line if named."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event is not None else ""
    return f"{head}data: {payload}\n\n".encode()


def event_stream(events: Sequence[bytes], *, headers: Mapping[str, str]) -> StreamingResponse:
    """A ``text/event-stream`` response that sends ``events`` one chunk each."""

    async def chunks() -> AsyncIterator[bytes]:
        for event in events:
            yield event

    return StreamingResponse(
        chunks(),
        media_type="text/event-stream; charset=utf-8",
        headers={**headers, "cache-control": "no-cache"},
    )
