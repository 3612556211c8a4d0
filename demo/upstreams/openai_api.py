"""Fake OpenAI: chat completions (JSON and streamed), embeddings and the model list.

Bodies, headers and errors follow what the ``openai`` SDK parses: ``{"error": {"message", "type",
"param", "code"}}`` errors, ``x-request-id`` and ``x-ratelimit-*`` headers, ``retry-after`` (and
the SDK's more precise ``retry-after-ms``) on 429, and ``data: {chat.completion.chunk}`` events
ending with ``data: [DONE]`` when streaming.
"""

from __future__ import annotations

import base64
import math
import struct
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .echo import CONTENT_FILTER_MARKER, Completion, complete, context_overflow, count_tokens
from .errors import ErrorFormat, UpstreamError
from .parsing import BodyProblem, parse_body
from .sse import event_stream, sse_event
from .vectors import embed

__all__ = ["MODELS", "OPENAI_ERRORS", "openai_router"]

MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "text-embedding-3-large")
"""The models ``GET /v1/models`` lists; any model name is accepted."""

_REQUESTS_PER_MINUTE = 10_000
_TOKENS_PER_MINUTE = 10_000_000


def openai_router(*, api_key: str | None, max_prompt_chars: int, embedding_dim: int) -> APIRouter:
    """The ``/v1`` routes; ``api_key`` None accepts any bearer token."""
    router = APIRouter(prefix="/v1", dependencies=[Depends(_authenticate(api_key))])

    @router.post("/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body = await parse_body(request, _ChatRequest, reject=_invalid_body)
        if body.stream_options is not None and not body.stream:
            raise UpstreamError(
                _error(
                    400,
                    "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                    type_="invalid_request_error",
                    param="stream_options",
                    code="invalid_value",
                )
            )
        prompt = "\n".join(_text(message.content) for message in body.messages)
        _check_prompt(prompt, max_prompt_chars)
        question = next((_text(m.content) for m in reversed(body.messages) if m.role == "user"), "")
        completion = complete(
            provider="openai",
            model=body.model,
            question=question,
            prompt=prompt,
            max_tokens=body.max_completion_tokens or body.max_tokens,
        )
        head = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "created": int(time.time()),
            "model": body.model,
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }
        if body.stream:
            include_usage = body.stream_options is not None and body.stream_options.include_usage
            return event_stream(_chunks(head, completion, include_usage=include_usage), headers=_headers())
        message: dict[str, Any] = {"role": "assistant", "content": completion.text, "refusal": None, "annotations": []}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": _finish_reason(completion)}
        return JSONResponse(
            {**head, "object": "chat.completion", "choices": [choice], "usage": _usage(completion)},
            headers=_headers(),
        )

    @router.post("/embeddings")
    async def embeddings(request: Request) -> Response:
        body = await parse_body(request, _EmbeddingsRequest, reject=_invalid_body)
        texts = _embedding_inputs(body.input)
        dim = body.dimensions or embedding_dim
        data = [
            {"object": "embedding", "index": index, "embedding": _encode(embed(text, dim), body.encoding_format)}
            for index, text in enumerate(texts)
        ]
        tokens = sum(count_tokens(text) for text in texts)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
            headers=_headers(),
        )

    @router.get("/models")
    async def models() -> Response:
        listed = [{"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "openai"} for name in MODELS]
        return JSONResponse({"object": "list", "data": listed}, headers=_headers())

    return router


class _ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class _ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[_ContentPart] | None = None


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class _ChatRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[_ChatMessage] = Field(min_length=1)
    stream: bool | None = False
    stream_options: _StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)


class _EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    input: str | list[str] | list[int] | list[list[int]]
    dimensions: int | None = Field(default=None, ge=1, le=8192)
    encoding_format: Literal["float", "base64"] = "float"


def _text(content: str | list[_ContentPart] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "\n".join(part.text for part in content if part.text is not None)


def _check_prompt(prompt: str, max_prompt_chars: int) -> None:
    overflow = context_overflow(prompt, max_prompt_chars)
    if overflow is not None:
        raise UpstreamError(
            _error(
                400,
                f"This model's maximum context length is {overflow.limit} tokens. However, your messages resulted "
                f"in {overflow.tokens} tokens. Please reduce the length of the messages.",
                type_="invalid_request_error",
                param="messages",
                code="context_length_exceeded",
            )
        )
    if CONTENT_FILTER_MARKER in prompt:
        raise UpstreamError(
            _error(
                400,
                "The response was filtered due to the prompt triggering the content management policy. "
                "Please modify your prompt and retry.",
                type_="invalid_request_error",
                param="prompt",
                code="content_filter",
            )
        )


def _chunks(head: dict[str, Any], completion: Completion, *, include_usage: bool) -> list[bytes]:
    """The events of a streamed completion: role, one word per chunk, finish reason, usage, [DONE]."""
    extra = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return sse_event({**head, "object": "chat.completion.chunk", "choices": [choice], **extra})

    events = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": piece}) for piece in completion.pieces]
    events.append(chunk({}, _finish_reason(completion)))
    if include_usage:
        events.append(
            sse_event({**head, "object": "chat.completion.chunk", "choices": [], "usage": _usage(completion)})
        )
    events.append(sse_event("[DONE]"))
    return events


def _finish_reason(completion: Completion) -> str:
    return "length" if completion.truncated else "stop"


def _usage(completion: Completion) -> dict[str, Any]:
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": completion.prompt_tokens + completion.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _embedding_inputs(value: str | list[str] | list[int] | list[list[int]]) -> list[str]:
    """The texts to embed; a token array is embedded as the text of its ids."""
    items: list[str] | list[int] | list[list[int]] = [value] if isinstance(value, str) else value
    texts = [_as_text(item) for item in items]
    if texts and all(isinstance(item, int) for item in items):  # one token array, not a batch
        texts = [" ".join(texts)]
    if not texts or not all(texts):
        raise UpstreamError(
            _error(
                400,
                "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
                type_="invalid_request_error",
                param="input",
            )
        )
    return texts


def _as_text(item: str | int | list[int]) -> str:
    if isinstance(item, str):
        return item
    return str(item) if isinstance(item, int) else " ".join(map(str, item))


def _encode(vector: list[float], encoding_format: Literal["float", "base64"]) -> list[float] | str:
    if encoding_format == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def _authenticate(api_key: str | None) -> Callable[[Request], Awaitable[None]]:
    async def check(request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise UpstreamError(
                _error(
                    401,
                    "You didn't provide an API key. You need to provide your API key in an Authorization header "
                    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    type_="invalid_request_error",
                )
            )
        if api_key is not None and token != api_key:
            shown = f"{token[:3]}{'*' * max(0, len(token) - 7)}{token[-4:]}" if len(token) > 7 else "***"
            raise UpstreamError(
                _error(
                    401,
                    f"Incorrect API key provided: {shown}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    type_="invalid_request_error",
                    code="invalid_api_key",
                )
            )

    return check


def _invalid_body(problem: BodyProblem) -> Response:
    if problem.missing:
        message, code = f"Missing required parameter: '{problem.param}'.", "missing_required_parameter"
    elif problem.param is None:
        message, code = f"We could not parse the JSON body of your request. {problem.message}", None
    else:
        message, code = f"Invalid value for '{problem.param}': {problem.message}.", "invalid_value"
    return _error(400, message, type_="invalid_request_error", param=problem.param, code=code)


def _error(
    status: int,
    message: str,
    *,
    type_: str,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers or _headers())


def _headers(*, retry_after_s: float | None = None) -> dict[str, str]:
    """The headers of every answer; exhausted rate-limit counters and ``retry-after`` on a 429."""
    limited = retry_after_s is not None
    reset = _duration(retry_after_s) if retry_after_s is not None else "6ms"
    headers = {
        "x-request-id": f"req_{uuid.uuid4().hex}",
        "openai-version": "2020-10-01",
        "x-ratelimit-limit-requests": str(_REQUESTS_PER_MINUTE),
        "x-ratelimit-remaining-requests": "0" if limited else str(_REQUESTS_PER_MINUTE - 1),
        "x-ratelimit-reset-requests": reset,
        "x-ratelimit-limit-tokens": str(_TOKENS_PER_MINUTE),
        "x-ratelimit-remaining-tokens": "0" if limited else str(_TOKENS_PER_MINUTE - 1_000),
        "x-ratelimit-reset-tokens": reset,
    }
    if retry_after_s is not None:
        headers["retry-after"] = str(math.ceil(retry_after_s))
        headers["retry-after-ms"] = str(round(retry_after_s * 1000))
    return headers


def _duration(seconds: float) -> str:
    """A duration as OpenAI's reset headers write it: ``20ms``, ``1.5s``."""
    return f"{round(seconds * 1000)}ms" if seconds < 1 else f"{seconds:g}s"


def _server_error(status: int | None) -> Response:
    return _error(
        status or 500,
        "The server had an error while processing your request. Sorry about that!",
        type_="server_error",
    )


def _unavailable() -> Response:
    return _error(503, "The server is overloaded or not ready yet.", type_="server_error")


def _rate_limited(retry_after_s: float) -> Response:
    return _error(
        429,
        f"Rate limit reached for requests per min (RPM): Limit {_REQUESTS_PER_MINUTE}, Used {_REQUESTS_PER_MINUTE}, "
        f"Requested 1. Please try again in {_duration(retry_after_s)}.",
        type_="requests",
        code="rate_limit_exceeded",
        headers=_headers(retry_after_s=retry_after_s),
    )


OPENAI_ERRORS = ErrorFormat(server_error=_server_error, unavailable=_unavailable, rate_limited=_rate_limited)
"""How fake OpenAI words injected failures."""
