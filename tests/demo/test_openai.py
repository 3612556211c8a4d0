"""The fake OpenAI, driven by the real ``openai`` SDK (strict response validation on)."""

from __future__ import annotations

import math

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

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

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "what is a circuit breaker?"}]
ECHO = "openai/gpt-4o-mini echoes: what is a circuit breaker?"


async def test_chat_completion_answers_with_a_deterministic_echo(openai_client: openai.AsyncOpenAI) -> None:
    raw = await openai_client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=USER)
    completion = raw.parse()

    assert isinstance(completion, ChatCompletion)
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    assert completion.id.startswith("chatcmpl-")
    [choice] = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content == ECHO
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == len(ECHO.split())
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.headers["x-ratelimit-remaining-requests"] == "9999"


async def test_chat_reads_text_parts_and_answers_the_last_user_message(openai_client: openai.AsyncOpenAI) -> None:
    completion = await openai_client.chat.completions.create(
        model="gpt-4o",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "question"}]},
        ],
    )

    assert completion.choices[0].message.content == "openai/gpt-4o echoes: second\nquestion"


async def test_max_tokens_cuts_the_answer_with_finish_reason_length(openai_client: openai.AsyncOpenAI) -> None:
    completion = await openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=USER, max_completion_tokens=2
    )

    assert completion.choices[0].message.content == "openai/gpt-4o-mini echoes: "
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 2


async def test_streamed_chat_sends_role_words_finish_reason_and_usage(openai_client: openai.AsyncOpenAI) -> None:
    stream = await openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]

    assert {chunk.object for chunk in chunks} == {"chat.completion.chunk"}
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ECHO
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(ECHO.split())


async def test_streamed_chat_without_include_usage_has_no_usage_chunk(openai_client: openai.AsyncOpenAI) -> None:
    stream = await openai_client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
    chunks = [chunk async for chunk in stream]

    assert all(chunk.choices and chunk.usage is None for chunk in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_stream_ends_with_done(url: str) -> None:
    body = {"model": "m", "messages": USER, "stream": True}
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{url}/v1/chat/completions", json=body, headers={"authorization": "Bearer k"})

    assert response.headers["content-type"].startswith("text/event-stream")
    events = [event for event in response.text.split("\n\n") if event]
    assert all(event.startswith("data: ") for event in events)
    assert events[-1] == "data: [DONE]"


async def test_embeddings_are_deterministic_unit_vectors(openai_client: openai.AsyncOpenAI) -> None:
    first = await openai_client.embeddings.create(
        model="text-embedding-3-small", input="circuit breakers trip", encoding_format="float"
    )
    again = await openai_client.embeddings.create(
        model="text-embedding-3-small", input=["circuit breakers trip"], encoding_format="float"
    )
    other = await openai_client.embeddings.create(
        model="text-embedding-3-small", input="vector databases", encoding_format="float"
    )

    vector = first.data[0].embedding
    assert len(vector) == 64
    assert math.fsum(x * x for x in vector) == pytest.approx(1.0)
    assert again.data[0].embedding == vector
    assert other.data[0].embedding != vector
    assert first.object == "list"
    assert first.model == "text-embedding-3-small"
    assert first.usage.prompt_tokens == first.usage.total_tokens > 0


async def test_embeddings_of_a_batch_keep_their_order_and_honour_dimensions(openai_client: openai.AsyncOpenAI) -> None:
    batch = await openai_client.embeddings.create(
        model="text-embedding-3-small", input=["one", "two", "three"], dimensions=8, encoding_format="float"
    )

    assert [item.index for item in batch.data] == [0, 1, 2]
    assert all(len(item.embedding) == 8 for item in batch.data)


async def test_embeddings_in_base64_decode_to_the_same_vectors(url: str, openai_client: openai.AsyncOpenAI) -> None:
    floats = await openai_client.embeddings.create(model="m", input=["one", "two"], encoding_format="float")
    # Without an encoding_format the SDK asks for base64 and decodes float32s after parsing; strict
    # validation would see the base64 string first and refuse it, so this client is not strict.
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="test", max_retries=0) as lenient:
        decoded = await lenient.embeddings.create(model="m", input=["one", "two"])

    for from_base64, from_floats in zip(decoded.data, floats.data, strict=True):
        assert from_base64.embedding == pytest.approx(from_floats.embedding, rel=1e-6)


async def test_embeddings_of_texts_sharing_words_are_closer(openai_client: openai.AsyncOpenAI) -> None:
    result = await openai_client.embeddings.create(
        model="m",
        input=["how does a circuit breaker open", "the circuit breaker opens after failures", "bananas are yellow"],
        encoding_format="float",
    )
    question, related, unrelated = (item.embedding for item in result.data)

    def cosine(a: list[float], b: list[float]) -> float:
        return math.fsum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(question, related) > cosine(question, unrelated)


async def test_embeddings_refuse_an_empty_input(openai_client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await openai_client.embeddings.create(model="m", input="", encoding_format="float")

    assert caught.value.param == "input"


async def test_models_lists_the_fake_models(openai_client: openai.AsyncOpenAI) -> None:
    page = await openai_client.models.list()

    assert [model.id for model in page.data] == [
        "gpt-4o-mini",
        "gpt-4o",
        "text-embedding-3-small",
        "text-embedding-3-large",
    ]
    assert {model.owned_by for model in page.data} == {"openai"}


@pytest.mark.parametrize("prompt", ["x" * 2001, f"short {CONTEXT_OVERFLOW_MARKER}"])
async def test_a_prompt_over_the_context_window_is_a_bad_request(
    openai_client: openai.AsyncOpenAI, prompt: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await openai_client.chat.completions.create(model="m", messages=[{"role": "user", "content": prompt}])

    error = caught.value
    assert error.status_code == 400
    assert error.code == "context_length_exceeded"
    assert error.type == "invalid_request_error"
    assert error.param == "messages"
    assert "maximum context length is 500 tokens" in error.message
    assert error.request_id is not None
    assert error.request_id.startswith("req_")


async def test_the_content_filter_marker_is_a_bad_request(openai_client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await openai_client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": f"say {CONTENT_FILTER_MARKER}"}]
        )

    assert caught.value.code == "content_filter"
    assert caught.value.param == "prompt"


async def test_an_invalid_body_names_the_parameter(openai_client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await openai_client.chat.completions.create(model="m", messages=[])

    assert caught.value.param == "messages"
    assert caught.value.code == "invalid_value"


async def test_a_missing_parameter_is_named(url: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{url}/v1/chat/completions", json={"messages": USER}, headers={"authorization": "Bearer k"}
        )

    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": "Missing required parameter: 'model'.",
            "type": "invalid_request_error",
            "param": "model",
            "code": "missing_required_parameter",
        }
    }


async def test_any_key_is_accepted_by_default_but_a_key_is_required(url: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{url}/v1/models")

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_a_configured_key_rejects_other_keys() -> None:
    with UpstreamServer(create_app(openai_api_key="sk-right-key-123")) as server:
        async with openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="sk-wrong-key-456", max_retries=0) as client:
            with pytest.raises(openai.AuthenticationError) as caught:
                await client.models.list()
        async with openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="sk-right-key-123", max_retries=0) as client:
            assert (await client.models.list()).data

    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert "sk-wrong-key-456" not in caught.value.message


async def test_rate_limit_is_a_rate_limit_error_with_retry_after(
    openai_client: openai.AsyncOpenAI, chaos: Chaos
) -> None:
    chaos.set(Upstream.OPENAI, RateLimit(retry_after_s=1.5))

    with pytest.raises(openai.RateLimitError) as caught:
        await openai_client.chat.completions.create(model="m", messages=USER)

    error = caught.value
    assert error.status_code == 429
    assert error.code == "rate_limit_exceeded"
    assert error.response.headers["retry-after"] == "2"
    assert error.response.headers["retry-after-ms"] == "1500"
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"


@pytest.mark.parametrize(
    ("fault", "status"),
    [(ErrorRate(rate=1.0), 500), (ErrorRate(rate=1.0, status=502), 502), (Outage(), 503)],
)
async def test_server_errors_are_internal_server_errors(
    openai_client: openai.AsyncOpenAI, chaos: Chaos, fault: ErrorRate | Outage, status: int
) -> None:
    chaos.set(Upstream.OPENAI, fault)

    with pytest.raises(openai.InternalServerError) as caught:
        await openai_client.chat.completions.create(model="m", messages=USER)

    assert caught.value.status_code == status
    assert caught.value.type == "server_error"
