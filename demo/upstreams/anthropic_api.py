"""Fake Anthropic: the Messages API, as JSON and as a stream of typed server-sent events.

Follows what the ``anthropic`` SDK parses: ``{"type": "error", "error": {"type", "message"},
"request_id"}`` errors (529 ``overloaded_error`` among them), the ``request-id`` and
``anthropic-ratelimit-*`` headers, and the stream's event sequence ``message_start``,
``content_block_start``, ``ping``, ``content_block_delta``..., ``content_block_stop``,
``message_delta``, ``message_stop``. The SDK sends its key as ``Authorization: Bearer`` (2.x) or
``x-api-key``; both are accepted.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .echo import CONTENT_FILTER_MARKER, Completion, complete, context_overflow, count_tokens
from .errors import ErrorFormat, UpstreamError
from .parsing import BodyProblem, parse_body
from .sse import event_stream, sse_event

__all__ = ["ANTHROPIC_ERRORS", "anthropic_router"]

_REQUESTS_PER_MINUTE = 4_000

StopReason = Literal["end_turn", "max_tokens", "refusal"]


def anthropic_router(*, api_key: str | None, max_prompt_chars: int) -> APIRouter:
    """The ``/v1/messages`` route; ``api_key`` None accepts any key."""
    router = APIRouter(prefix="/v1", dependencies=[Depends(_check_headers(api_key))])

    @router.post("/messages")
    async def messages(request: Request) -> Response:
        body = await parse_body(request, _MessagesRequest, reject=_invalid_body)
        turns = [_text(message.content) for message in body.messages]
        prompt = "\n".join([_text(body.system), *turns])
        _check_length(prompt, max_prompt_chars)
        question = next((_text(m.content) for m in reversed(body.messages) if m.role == "user"), "")
        if CONTENT_FILTER_MARKER in prompt:
            completion = Completion(pieces=(), truncated=False, prompt_tokens=count_tokens(prompt))
            stop_reason: StopReason = "refusal"
        else:
            completion = complete(
                provider="anthropic", model=body.model, question=question, prompt=prompt, max_tokens=body.max_tokens
            )
            stop_reason = "max_tokens" if completion.truncated else "end_turn"
        message_id = f"msg_{secrets.token_hex(12)}"
        if body.stream:
            return event_stream(_events(message_id, body.model, completion, stop_reason), headers=_headers())
        content = [{"type": "text", "text": completion.text}] if completion.pieces else []
        return JSONResponse(
            _message(
                message_id,
                body.model,
                content,
                stop_reason,
                _usage(completion.prompt_tokens, completion.completion_tokens),
            ),
            headers=_headers(),
        )

    return router


class _Block(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["user", "assistant"]
    content: str | list[_Block]


class _MessagesRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    max_tokens: int = Field(ge=1)
    messages: list[_Message] = Field(min_length=1)
    system: str | list[_Block] | None = None
    stream: bool = False


def _text(content: str | list[_Block] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "\n".join(block.text for block in content if block.text is not None)


def _check_length(prompt: str, max_prompt_chars: int) -> None:
    overflow = context_overflow(prompt, max_prompt_chars)
    if overflow is not None:
        message = f"prompt is too long: {overflow.tokens} tokens > {overflow.limit} maximum"
        raise UpstreamError(_error(400, "invalid_request_error", message))


def _message(
    message_id: str, model: str, content: list[dict[str, Any]], stop_reason: StopReason | None, usage: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage,
    }


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _events(message_id: str, model: str, completion: Completion, stop_reason: StopReason) -> list[bytes]:
    """The typed events of a streamed message, one word per ``content_block_delta``."""

    def event(data: dict[str, Any]) -> bytes:
        return sse_event(data, event=str(data["type"]))

    # As the API does, message_start counts one output token before any is sent.
    start = _message(message_id, model, [], None, _usage(completion.prompt_tokens, 1))
    events = [event({"type": "message_start", "message": start})]
    if completion.pieces:
        events.append(event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))
        events.append(event({"type": "ping"}))
        events += [
            event({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}})
            for piece in completion.pieces
        ]
        events.append(event({"type": "content_block_stop", "index": 0}))
    else:
        events.append(event({"type": "ping"}))
    delta = {"stop_reason": stop_reason, "stop_sequence": None}
    events.append(
        event({"type": "message_delta", "delta": delta, "usage": {"output_tokens": completion.completion_tokens}})
    )
    events.append(event({"type": "message_stop"}))
    return events


def _check_headers(api_key: str | None) -> Callable[[Request], Awaitable[None]]:
    """The key (``x-api-key`` or bearer token) and the ``anthropic-version`` header every call needs."""

    async def check(request: Request) -> None:
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        key = request.headers.get("x-api-key") or (bearer if scheme.lower() == "bearer" else "")
        if not key:
            raise UpstreamError(_error(401, "authentication_error", "x-api-key header is required"))
        if api_key is not None and key != api_key:
            raise UpstreamError(_error(401, "authentication_error", "invalid x-api-key"))
        if not request.headers.get("anthropic-version"):
            raise UpstreamError(_error(400, "invalid_request_error", "anthropic-version: header is required"))

    return check


def _invalid_body(problem: BodyProblem) -> Response:
    where = f"{problem.param}: " if problem.param else ""
    return _error(400, "invalid_request_error", f"{where}{problem.message}")


def _error(status: int, error_type: str, message: str, *, headers: dict[str, str] | None = None) -> JSONResponse:
    headers = headers or _headers()
    body = {"type": "error", "error": {"type": error_type, "message": message}, "request_id": headers["request-id"]}
    return JSONResponse(body, status_code=status, headers=headers)


def _headers(*, retry_after_s: float | None = None) -> dict[str, str]:
    """The headers of every answer; exhausted rate-limit counters and ``retry-after`` on a 429."""
    wait = retry_after_s if retry_after_s is not None else 0.0
    reset = (datetime.now(UTC) + timedelta(seconds=wait)).isoformat(timespec="seconds").replace("+00:00", "Z")
    headers = {
        "request-id": f"req_{secrets.token_hex(12)}",
        "anthropic-ratelimit-requests-limit": str(_REQUESTS_PER_MINUTE),
        "anthropic-ratelimit-requests-remaining": "0" if retry_after_s is not None else str(_REQUESTS_PER_MINUTE - 1),
        "anthropic-ratelimit-requests-reset": reset,
    }
    if retry_after_s is not None:
        headers["retry-after"] = str(math.ceil(retry_after_s))
        headers["retry-after-ms"] = str(round(retry_after_s * 1000))
    return headers


def _server_error(status: int | None) -> Response:
    status = status or 529
    if status == 529:
        return _error(529, "overloaded_error", "Overloaded")
    if status == 504:
        return _error(504, "timeout_error", "Request timed out")
    return _error(status, "api_error", "Internal server error")


def _unavailable() -> Response:
    return _error(503, "api_error", "Service unavailable")


def _rate_limited(retry_after_s: float) -> Response:
    return _error(
        429,
        "rate_limit_error",
        f"This request would exceed the rate limit for your organization of {_REQUESTS_PER_MINUTE} requests per "
        "minute. Please reduce the prompt length or the maximum tokens requested, or try again later.",
        headers=_headers(retry_after_s=retry_after_s),
    )


ANTHROPIC_ERRORS = ErrorFormat(server_error=_server_error, unavailable=_unavailable, rate_limited=_rate_limited)
"""How fake Anthropic words injected failures."""
