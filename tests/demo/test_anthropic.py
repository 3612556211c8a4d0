"""The fake Anthropic Messages API, driven by the real ``anthropic`` SDK (strict response validation on)."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest

from demo.upstreams import (
    CONTENT_FILTER_MARKER,
    CONTEXT_OVERFLOW_MARKER,
    Chaos,
    ErrorRate,
    Outage,
    RateLimit,
    Upstream,
    UpstreamServer,
    create_app,
)

MODEL = "claude-fake"  # a real name could join the SDK's deprecation table and warn
USER: list[anthropic.types.MessageParam] = [{"role": "user", "content": "what is a circuit breaker?"}]
ECHO = f"anthropic/{MODEL} echoes: what is a circuit breaker?"
HEADERS = {"x-api-key": "test", "anthropic-version": "2023-06-01"}


async def test_message_answers_with_a_deterministic_echo(anthropic_client: anthropic.AsyncAnthropic) -> None:
    raw = await anthropic_client.messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=USER)
    message = await raw.parse()

    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == MODEL
    assert message.id.startswith("msg_")
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].type == "text"
    assert message.content[0].text == ECHO
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == len(ECHO.split())
    assert message.usage.input_tokens > 0
    assert raw.headers["request-id"].startswith("req_")
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == "3999"


async def test_max_tokens_cuts_the_answer(anthropic_client: anthropic.AsyncAnthropic) -> None:
    message = await anthropic_client.messages.create(model=MODEL, max_tokens=1, messages=USER)

    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 1


async def test_system_and_block_content_count_as_prompt(anthropic_client: anthropic.AsyncAnthropic) -> None:
    short = await anthropic_client.messages.create(model=MODEL, max_tokens=64, messages=USER)
    longer = await anthropic_client.messages.create(
        model=MODEL,
        max_tokens=64,
        system="You answer questions about resilience engineering, briefly.",
        messages=[{"role": "user", "content": [{"type": "text", "text": "what is a circuit breaker?"}]}],
    )

    assert longer.content == short.content
    assert longer.usage.input_tokens > short.usage.input_tokens


async def test_stream_helper_accumulates_the_message(anthropic_client: anthropic.AsyncAnthropic) -> None:
    async with anthropic_client.messages.stream(model=MODEL, max_tokens=64, messages=USER) as stream:
        texts = [text async for text in stream.text_stream]
        message = await stream.get_final_message()

    assert "".join(texts) == ECHO
    assert len(texts) == len(ECHO.split())
    assert message.content[0].type == "text"
    assert message.content[0].text == ECHO
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == len(ECHO.split())


async def test_raw_stream_events_come_in_the_api_order(anthropic_client: anthropic.AsyncAnthropic) -> None:
    stream = await anthropic_client.messages.create(model=MODEL, max_tokens=64, messages=USER, stream=True)
    events = [event async for event in stream]

    words = len(ECHO.split())
    assert [event.type for event in events] == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * words,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0].type == "message_start"
    assert events[0].message.stop_reason is None
    assert events[-2].type == "message_delta"
    assert events[-2].delta.stop_reason == "end_turn"


async def test_the_wire_sends_a_ping_after_the_first_content_block(url: str) -> None:
    body = {"model": MODEL, "max_tokens": 64, "messages": USER, "stream": True}
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{url}/v1/messages", json=body, headers=HEADERS)

    assert response.headers["content-type"].startswith("text/event-stream")
    events = [event.split("\n") for event in response.text.split("\n\n") if event]
    names = [lines[0].removeprefix("event: ") for lines in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    for name, lines in zip(names, events, strict=True):
        assert json.loads(lines[1].removeprefix("data: "))["type"] == name


async def test_the_content_filter_marker_ends_in_a_refusal(anthropic_client: anthropic.AsyncAnthropic) -> None:
    message = await anthropic_client.messages.create(
        model=MODEL, max_tokens=64, messages=[{"role": "user", "content": f"say {CONTENT_FILTER_MARKER}"}]
    )

    assert message.stop_reason == "refusal"
    assert message.content == []


@pytest.mark.parametrize("prompt", ["x" * 2001, f"short {CONTEXT_OVERFLOW_MARKER}"])
async def test_a_prompt_over_the_context_window_is_a_bad_request(
    anthropic_client: anthropic.AsyncAnthropic, prompt: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        await anthropic_client.messages.create(
            model=MODEL, max_tokens=64, messages=[{"role": "user", "content": prompt}]
        )

    error = caught.value
    assert error.status_code == 400
    assert error.type == "invalid_request_error"
    assert error.api_message is not None
    assert error.api_message.startswith("prompt is too long:")
    assert error.api_message.endswith("tokens > 500 maximum")
    assert error.request_id is not None
    assert error.request_id.startswith("req_")


async def test_an_invalid_body_is_an_invalid_request_error(anthropic_client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        await anthropic_client.messages.create(model=MODEL, max_tokens=0, messages=USER)

    assert caught.value.type == "invalid_request_error"
    assert caught.value.api_message is not None
    assert caught.value.api_message.startswith("max_tokens: ")


async def test_the_version_header_is_required(url: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{url}/v1/messages",
            json={"model": MODEL, "max_tokens": 8, "messages": USER},
            headers={"x-api-key": "test"},
        )

    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "error"
    assert body["error"] == {"type": "invalid_request_error", "message": "anthropic-version: header is required"}
    assert body["request_id"] == response.headers["request-id"]


async def test_a_configured_key_is_checked_in_either_header() -> None:
    with UpstreamServer(create_app(anthropic_api_key="sk-ant-right")) as server:
        async with anthropic.AsyncAnthropic(base_url=server.url, api_key="sk-ant-wrong", max_retries=0) as client:
            with pytest.raises(anthropic.AuthenticationError) as caught:
                await client.messages.create(model=MODEL, max_tokens=8, messages=USER)
        # The 2.x SDK sends its key as a bearer token; older clients and curl use x-api-key.
        async with anthropic.AsyncAnthropic(base_url=server.url, api_key="sk-ant-right", max_retries=0) as client:
            assert (await client.messages.create(model=MODEL, max_tokens=8, messages=USER)).content
        async with httpx.AsyncClient() as raw:
            response = await raw.post(
                f"{server.url}/v1/messages",
                json={"model": MODEL, "max_tokens": 8, "messages": USER},
                headers={**HEADERS, "x-api-key": "sk-ant-right"},
            )

    assert caught.value.status_code == 401
    assert caught.value.type == "authentication_error"
    assert response.status_code == 200


async def test_error_rate_is_a_529_overloaded_error(anthropic_client: anthropic.AsyncAnthropic, chaos: Chaos) -> None:
    chaos.set(Upstream.ANTHROPIC, ErrorRate(rate=1.0))

    with pytest.raises(anthropic.OverloadedError) as caught:
        await anthropic_client.messages.create(model=MODEL, max_tokens=8, messages=USER)

    error = caught.value
    assert isinstance(error, anthropic.InternalServerError)
    assert error.status_code == 529
    assert error.type == "overloaded_error"
    assert error.api_message == "Overloaded"


@pytest.mark.parametrize(
    ("fault", "error_class", "error_type"),
    [
        (ErrorRate(rate=1.0, status=500), anthropic.InternalServerError, "api_error"),
        (ErrorRate(rate=1.0, status=504), anthropic.GatewayTimeoutError, "timeout_error"),
        (Outage(), anthropic.ServiceUnavailableError, "api_error"),
    ],
)
async def test_other_server_errors(
    anthropic_client: anthropic.AsyncAnthropic,
    chaos: Chaos,
    fault: ErrorRate | Outage,
    error_class: type[anthropic.APIStatusError],
    error_type: str,
) -> None:
    chaos.set(Upstream.ANTHROPIC, fault)

    with pytest.raises(error_class) as caught:
        await anthropic_client.messages.create(model=MODEL, max_tokens=8, messages=USER)

    assert isinstance(caught.value, anthropic.InternalServerError)
    assert caught.value.type == error_type


async def test_rate_limit_is_a_rate_limit_error_with_retry_after(
    anthropic_client: anthropic.AsyncAnthropic, chaos: Chaos
) -> None:
    chaos.set(Upstream.ANTHROPIC, RateLimit(retry_after_s=3))

    with pytest.raises(anthropic.RateLimitError) as caught:
        await anthropic_client.messages.create(model=MODEL, max_tokens=8, messages=USER)

    error = caught.value
    assert error.type == "rate_limit_error"
    assert error.response.headers["retry-after"] == "3"
    assert error.response.headers["anthropic-ratelimit-requests-remaining"] == "0"
