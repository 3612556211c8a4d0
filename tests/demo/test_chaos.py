"""Faults as the real SDKs meet them: shares of errors, latency, outages, 429 storms, slow and stalled streams."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import anthropic
import httpx
import httpx2
import openai
import pytest
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionMessageParam
from qdrant_client import AsyncQdrantClient
from qdrant_client.http.exceptions import ResponseHandlingException

import demo
from breakerpanel import failure
from breakerpanel.integrations.httpx2 import AsyncBreakerTransport
from breakerpanel.presets import llm_http
from demo.service.breakers import Breakers
from demo.upstreams import Chaos, ErrorRate, Latency, Outage, RateLimit, SlowStream, StallStream, Upstream

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "one two three four five"}]
CLAUDE_USER: list[MessageParam] = [{"role": "user", "content": "one two three four five"}]
CHUNKS = 1 + 7 + 1  # role chunk, one chunk per word of "openai/m echoes: one two three four five", finish reason


async def _outcomes(call: Callable[[], Awaitable[object]], n: int) -> list[bool]:
    """Whether each of ``n`` sequential calls failed with a server error."""
    failed = []
    for _ in range(n):
        try:
            await call()
        except openai.InternalServerError:
            failed.append(True)
        else:
            failed.append(False)
    return failed


T = TypeVar("T")


async def _collect(stream: AsyncIterable[T], into: list[T]) -> None:
    async for item in stream:
        into.append(item)


async def _collect_event_types(client: anthropic.AsyncAnthropic, into: list[str]) -> None:
    async with client.messages.stream(model="claude-fake", max_tokens=8, messages=CLAUDE_USER) as stream:
        async for event in stream:
            into.append(event.type)


async def test_error_rate_fails_a_seeded_share_of_requests(openai_client: openai.AsyncOpenAI, chaos: Chaos) -> None:
    chaos.set(Upstream.OPENAI, ErrorRate(rate=0.3))
    first = await _outcomes(openai_client.models.list, 200)
    chaos.set(Upstream.OPENAI, ErrorRate(rate=0.3))  # a new fault restarts the seeded draws
    second = await _outcomes(openai_client.models.list, 200)

    assert first == second
    assert 0.2 < sum(first) / len(first) < 0.4
    state = chaos.state(Upstream.OPENAI)
    assert state.requests == 400
    assert state.failed == 2 * sum(first)


async def test_error_rate_zero_and_one(openai_client: openai.AsyncOpenAI, chaos: Chaos) -> None:
    chaos.set(Upstream.OPENAI, ErrorRate(rate=0.0))
    assert not any(await _outcomes(openai_client.models.list, 20))
    chaos.set(Upstream.OPENAI, ErrorRate(rate=1.0))
    assert all(await _outcomes(openai_client.models.list, 20))


async def test_latency_delays_only_its_upstream(
    openai_client: openai.AsyncOpenAI, anthropic_client: anthropic.AsyncAnthropic, chaos: Chaos
) -> None:
    # A first call opens the client's connection and loads the SDK's lazy modules (0.2 s on a
    # busy machine): not what is timed. The margins are wide for the same reason.
    await anthropic_client.messages.create(model="claude-fake", max_tokens=8, messages=CLAUDE_USER)
    chaos.set(Upstream.OPENAI, Latency(seconds=1.0))

    started = time.monotonic()
    await openai_client.models.list()
    slow = time.monotonic() - started
    started = time.monotonic()
    await anthropic_client.messages.create(model="claude-fake", max_tokens=8, messages=CLAUDE_USER)
    fast = time.monotonic() - started

    assert slow >= 1.0
    assert fast < 0.5


async def test_outage_fails_every_request_and_counts_them(
    openai_client: openai.AsyncOpenAI, qdrant: AsyncQdrantClient, chaos: Chaos
) -> None:
    chaos.set(Upstream.OPENAI, Outage())

    for _ in range(5):
        with pytest.raises(openai.InternalServerError) as caught:
            await openai_client.chat.completions.create(model="m", messages=USER)
        assert caught.value.status_code == 503
    await qdrant.get_collections()  # another upstream is unaffected

    states = chaos.states()
    assert (states[Upstream.OPENAI].requests, states[Upstream.OPENAI].failed) == (5, 5)
    assert (states[Upstream.QDRANT].requests, states[Upstream.QDRANT].failed) == (1, 0)
    assert states[Upstream.ANTHROPIC].requests == 0


async def test_outage_reset_drops_the_connection_for_every_sdk(
    openai_client: openai.AsyncOpenAI,
    anthropic_client: anthropic.AsyncAnthropic,
    qdrant: AsyncQdrantClient,
    url: str,
    chaos: Chaos,
) -> None:
    for upstream in Upstream:
        chaos.set(upstream, Outage(mode="reset"))

    with pytest.raises(openai.APIConnectionError) as openai_error:
        await openai_client.chat.completions.create(model="m", messages=USER)
    with pytest.raises(anthropic.APIConnectionError) as anthropic_error:
        await anthropic_client.messages.create(model="claude-fake", max_tokens=8, messages=CLAUDE_USER)
    with pytest.raises(ResponseHandlingException) as qdrant_error:
        await qdrant.get_collections()
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.TransportError):
            await client.get(f"{url}/v1/models", headers={"authorization": "Bearer k"})

    assert not isinstance(openai_error.value, openai.APITimeoutError)
    assert isinstance(openai_error.value.__cause__, httpx2.TransportError)
    assert isinstance(anthropic_error.value.__cause__, httpx2.TransportError)
    assert isinstance(qdrant_error.value.source, httpx.TransportError)
    assert chaos.state(Upstream.OPENAI).failed == 2


async def test_sdk_retries_honour_retry_after_ms_and_reach_the_server(url: str, chaos: Chaos) -> None:
    chaos.set(Upstream.OPENAI, RateLimit(retry_after_s=0.1))

    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="test", max_retries=2) as client:
        started = time.monotonic()
        with pytest.raises(openai.RateLimitError):
            await client.models.list()
        elapsed = time.monotonic() - started

    assert chaos.state(Upstream.OPENAI).requests == 3  # the first try and two retries
    assert 0.2 <= elapsed < 1.0  # waited retry-after-ms twice, not the SDK's own backoff


async def _chunk_times(client: openai.AsyncOpenAI) -> list[float]:
    """When each chunk of a streamed completion arrived, in seconds since the request was sent."""
    started = time.monotonic()
    stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
    return [time.monotonic() - started async for _ in stream]


async def test_slow_stream_spaces_the_chunks(openai_client: openai.AsyncOpenAI, chaos: Chaos) -> None:
    chaos.set(Upstream.OPENAI, SlowStream(chunk_delay_s=0.1))

    times = await _chunk_times(openai_client)

    assert len(times) == CHUNKS
    assert times[-1] >= (CHUNKS - 1) * 0.1  # the server waited before every chunk but the first
    gaps = sorted(later - earlier for earlier, later in itertools.pairwise(times))
    # ...and spread the waits out: a client hiccup may bunch two chunks (half the wait is slack).
    assert gaps[len(gaps) // 2] >= 0.05


async def test_stream_faults_leave_plain_answers_alone(openai_client: openai.AsyncOpenAI, chaos: Chaos) -> None:
    chaos.set(Upstream.OPENAI, StallStream(after_chunks=0))

    completion = await asyncio.wait_for(
        openai_client.chat.completions.create(model="m", messages=USER),
        timeout=2,
    )

    assert completion.choices[0].finish_reason == "stop"


async def test_a_timed_stall_pauses_then_finishes_the_stream(openai_client: openai.AsyncOpenAI, chaos: Chaos) -> None:
    chaos.set(Upstream.OPENAI, StallStream(after_chunks=2, stall_s=1.0))  # longer than any hiccup

    times = await _chunk_times(openai_client)

    assert len(times) == CHUNKS
    assert times[2] >= 1.0  # the third chunk waited for the stall
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps.index(max(gaps)) == 1  # between the second and the third chunk


async def test_an_open_stall_holds_until_the_client_gives_up(url: str, chaos: Chaos) -> None:
    chaos.set(Upstream.OPENAI, StallStream(after_chunks=2))
    received: list[object] = []

    # The read timeout ends the stall; the connection and the two chunks before it have 30 s.
    timeout = openai.Timeout(30, read=2)
    async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="test", max_retries=0, timeout=timeout) as client:
        stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
        assert chaos.state(Upstream.OPENAI).in_flight == 1
        with pytest.raises(openai.APITimeoutError):
            await _collect(stream, received)

    assert len(received) == 2
    for _ in range(100):  # the server notices the client left and ends the stalled stream
        if chaos.state(Upstream.OPENAI).in_flight == 0:
            break
        await asyncio.sleep(0.01)
    assert chaos.state(Upstream.OPENAI).in_flight == 0


def _demo_breakers() -> Breakers:
    return Breakers(Path(demo.__file__).parent / "breakers.yaml")


async def test_an_anthropic_stream_stall_fails_the_provider(url: str, chaos: Chaos) -> None:
    """A stream that stalls mid-way is the provider's failure, whichever way the SDK reports it:
    anthropic 2.x has raised both the raw ``httpx2.ReadTimeout`` and ``anthropic.APITimeoutError``
    for it. The demo's transport breaker sees the raw error; the caller sees the SDK's."""
    chaos.set(Upstream.ANTHROPIC, StallStream(after_chunks=2))  # stalls until the client leaves
    breakers = _demo_breakers()
    events: list[str] = []
    # The read timeout ends a stall that never ends by itself; it is generous, because the two
    # chunks before the stall must arrive within it however busy the machine is.
    http = httpx2.AsyncClient(
        transport=AsyncBreakerTransport(breakers.router_for("anthropic")), timeout=httpx2.Timeout(30, read=2)
    )
    async with http, anthropic.AsyncAnthropic(base_url=url, api_key="test", max_retries=0, http_client=http) as client:
        with pytest.raises((anthropic.APITimeoutError, httpx2.ReadTimeout)) as info:
            await _collect_event_types(client, events)

    assert events == ["message_start", "content_block_start"]
    assert breakers.registry["anthropic.messages"].snapshot().totals.failures_by_type == {"timeout": 1}
    # A feature breaker around the call (the demo's `answer`) judges what the caller saw the same way.
    assert breakers.registry["anthropic.messages"].classify_exception(info.value) == failure("timeout")


@pytest.mark.parametrize(
    "surfaced",
    [
        httpx2.ReadTimeout("timed out", request=httpx2.Request("POST", "http://anthropic/v1/messages")),
        anthropic.APITimeoutError(request=httpx2.Request("POST", "http://anthropic/v1/messages")),
        openai.APITimeoutError(request=httpx2.Request("POST", "http://openai/v1/chat/completions")),
        httpx.ReadTimeout("timed out"),
    ],
    ids=["raw-httpx2", "anthropic-wrapped", "openai-wrapped", "raw-httpx"],
)
def test_every_shape_of_a_stream_timeout_is_a_provider_failure(surfaced: Exception) -> None:
    """The demo's classifiers (breakers.yaml: the providers', which the features inherit) count a timed-out
    stream as a timeout, raw or wrapped by the SDK: it must never read as the caller's mistake."""
    breakers = _demo_breakers()
    for name in ("openai.chat", "anthropic.messages", "openai", "anthropic"):
        assert breakers.registry[name].classify_exception(surfaced) == failure("timeout"), name
    assert llm_http()(surfaced, None) == failure("timeout")


async def test_a_fault_clears_itself_after_for_s(openai_client: openai.AsyncOpenAI, chaos: Chaos) -> None:
    chaos.set(Upstream.OPENAI, Outage(for_s=2))  # the first request (a new connection) lands well inside it

    with pytest.raises(openai.InternalServerError):
        await openai_client.models.list()
    assert chaos.state(Upstream.OPENAI).expires_in_s is not None
    await asyncio.sleep(2.1)
    await openai_client.models.list()

    state = chaos.state(Upstream.OPENAI)
    assert state.fault is None
    assert state.expires_in_s is None
    assert (state.requests, state.failed) == (2, 1)


async def test_faults_on_several_upstreams_at_once(
    openai_client: openai.AsyncOpenAI,
    anthropic_client: anthropic.AsyncAnthropic,
    qdrant: AsyncQdrantClient,
    chaos: Chaos,
) -> None:
    chaos.set(Upstream.OPENAI, Outage())
    chaos.set(Upstream.ANTHROPIC, RateLimit(retry_after_s=1))

    with pytest.raises(openai.InternalServerError):
        await openai_client.models.list()
    with pytest.raises(anthropic.RateLimitError):
        await anthropic_client.messages.create(model="claude-fake", max_tokens=8, messages=CLAUDE_USER)
    await qdrant.get_collections()
    chaos.clear(Upstream.OPENAI)
    await openai_client.models.list()

    assert chaos.state(Upstream.ANTHROPIC).fault == RateLimit(retry_after_s=1)
