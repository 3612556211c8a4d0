"""How the fake upstreams answer with errors, each in its own provider's format.

Endpoints raise :class:`UpstreamError` with a ready response instead of returning it, so a check
deep in a request (a bad key, a prompt that is too long) can stop the request in one line. The
chaos middleware needs the same wording for the failures it injects, which each upstream gives as
an :class:`ErrorFormat`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["ErrorFormat", "UpstreamError", "answer_upstream_error"]


class UpstreamError(Exception):
    """Stops a request with ``response``, an error already worded as the upstream words it."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"upstream error {response.status_code}")
        self.response = response


async def answer_upstream_error(request: Request, exc: Exception) -> Response:
    """The exception handler that sends an :class:`UpstreamError`'s response."""
    if not isinstance(exc, UpstreamError):  # registered for UpstreamError only
        raise exc
    return exc.response


@dataclass(frozen=True)
class ErrorFormat:
    """The responses one upstream gives for the failures chaos injects."""

    server_error: Callable[[int | None], Response]
    """A 5xx answer; given a status, or None for the upstream's usual one."""
    unavailable: Callable[[], Response]
    """A 503 answer, for an outage."""
    rate_limited: Callable[[float], Response]
    """A 429 answer announcing a retry after the given seconds."""
