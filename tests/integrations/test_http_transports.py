"""The httpx and httpx2 transports, driven through the real openai, anthropic and qdrant-client
SDKs against the fake upstreams (real JSON, SSE streams and error formats on loopback)."""

from __future__ import annotations

import asyncio
import gc
import gzip
import re
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException

from breakerpanel import (
    Alternate,
    BreakerConfig,
    BreakerConfigError,
    BreakerRegistry,
    CallTimeoutError,
    CallTotals,
    CircuitOpenError,
    FallbackChain,
    RejectionReason,
    State,
    rejection_in,
)
from breakerpanel.integrations import Route, Router, StreamLimits, StreamStalledError
from breakerpanel.integrations import httpx as bhttpx
from breakerpanel.integrations import httpx2 as bhttpx2
from breakerpanel.presets import llm_http
from demo.upstreams import (
    CONTEXT_OVERFLOW_MARKER,
    Chaos,
    ErrorRate,
    Outage,
    RateLimit,
    StallStream,
    Upstream,
    UpstreamServer,
)

MESSAGES = [{"role": "user", "content": "what is a circuit breaker?"}]


@dataclass
class Stack:
    registry: BreakerRegistry
    router: Router
    url: str
    chaos: Chaos

    def requests(self, upstream: Upstream) -> int:
        return self.chaos.state(upstream).requests


@pytest.fixture
def stack(upstreams: UpstreamServer, chaos: Chaos) -> Stack:
    config = BreakerConfig(minimum_calls=4, sliding_window_size=4, wait_in_open=30.0, classifier=llm_http())
    registry = BreakerRegistry()
    registry.service("openai", config)
    registry.endpoint("openai.chat", config)
    registry.endpoint("openai.embeddings", config)
    registry.service("anthropic", config)
    registry.endpoint("anthropic.messages", config)
    registry.service("qdrant", config)
    registry.endpoint("qdrant.search", config)
    host = "127.0.0.1"
    router = Router(
        [
            Route(registry["openai.chat"], host=host, path="/v1/chat/completions"),
            Route(registry["openai.embeddings"], host=host, path="/v1/embeddings"),
            Route(registry["anthropic.messages"], host=host, path="/v1/messages"),
            Route(registry["qdrant.search"], host=host, path=re.compile(r"/collections/[^/]+/points/(search|query)")),
            Route(registry["qdrant"], host=host, path="/collections"),
        ]
    )
    return Stack(registry, router, upstreams.url, chaos)


def openai_client(stack: Stack, **transport: object) -> openai.AsyncOpenAI:
    http = httpx2.AsyncClient(transport=bhttpx2.AsyncBreakerTransport(stack.router, **transport))  # type: ignore[arg-type]
    return openai.AsyncOpenAI(base_url=f"{stack.url}/v1", api_key="test", max_retries=0, http_client=http)


def anthropic_client(stack: Stack, **transport: object) -> anthropic.AsyncAnthropic:
    http = httpx2.AsyncClient(transport=bhttpx2.AsyncBreakerTransport(stack.router, **transport))  # type: ignore[arg-type]
    return anthropic.AsyncAnthropic(base_url=stack.url, api_key="test", max_retries=0, http_client=http)


@pytest.fixture
async def oai(stack: Stack) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai_client(stack) as client:
        yield client


@pytest.fixture
async def claude(stack: Stack) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic_client(stack) as client:
        yield client


def totals(stack: Stack, name: str) -> tuple[int, int, int]:
    t = stack.registry[name].snapshot().totals
    return t.successes, t.failures, t.ignored


class TestOpenAI:
    async def test_requests_count_in_their_endpoint_and_service(self, stack: Stack, oai: openai.AsyncOpenAI) -> None:
        chat = await oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
        assert "what is a circuit breaker?" in (chat.choices[0].message.content or "")
        embedded = await oai.embeddings.create(model="text-embedding-3-small", input="hello", encoding_format="float")
        assert len(embedded.data[0].embedding) > 0
        assert totals(stack, "openai.chat") == (1, 0, 0)
        assert totals(stack, "openai.embeddings") == (1, 0, 0)
        assert totals(stack, "openai") == (2, 0, 0)

    async def test_an_outage_opens_the_breaker_and_then_no_call_reaches_the_provider(
        self, stack: Stack, oai: openai.AsyncOpenAI
    ) -> None:
        stack.chaos.set(Upstream.OPENAI, Outage())
        for _ in range(4):
            with pytest.raises(openai.InternalServerError):
                await oai.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
        assert stack.registry["openai.chat"].state is State.OPEN
        assert stack.registry["openai"].state is State.OPEN  # the service saw the same four failures
        reached = stack.requests(Upstream.OPENAI)
        # openai 3.x lets the transport's rejection through as is (neither wrapped nor retried).
        with pytest.raises(CircuitOpenError) as info:
            await oai.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
        assert info.value.breaker_name == "openai.chat"
        assert info.value.reason is RejectionReason.OPEN
        assert stack.requests(Upstream.OPENAI) == reached  # fail fast: nothing was sent
        assert stack.registry["openai.chat"].snapshot().totals.failures_by_type == {"503": 4}

    async def test_dropped_connections_are_failures(self, stack: Stack, oai: openai.AsyncOpenAI) -> None:
        stack.chaos.set(Upstream.OPENAI, Outage(mode="reset"))
        with pytest.raises(openai.APIConnectionError) as info:
            await oai.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
        assert rejection_in(info.value) is None
        assert stack.registry["openai.chat"].snapshot().totals.failures_by_type == {"connection_error": 1}

    async def test_a_429_opens_for_its_retry_after(self, stack: Stack, oai: openai.AsyncOpenAI) -> None:
        stack.chaos.set(Upstream.OPENAI, RateLimit(retry_after_s=7))
        with pytest.raises(openai.RateLimitError):
            await oai.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
        snap = stack.registry["openai.chat"].snapshot()
        assert snap.state is State.OPEN
        assert snap.open_remaining == pytest.approx(7, abs=0.5)

    async def test_a_callers_bad_request_is_not_an_outage(self, stack: Stack, oai: openai.AsyncOpenAI) -> None:
        long_prompt = [{"role": "user", "content": CONTEXT_OVERFLOW_MARKER}]
        for _ in range(6):
            with pytest.raises(openai.BadRequestError) as info:
                await oai.chat.completions.create(model="m", messages=long_prompt)  # type: ignore[arg-type]
            assert info.value.code == "context_length_exceeded"
        assert stack.registry["openai.chat"].state is State.CLOSED
        assert totals(stack, "openai.chat") == (0, 0, 6)

    async def test_streams_count_when_read_to_the_end(self, stack: Stack, oai: openai.AsyncOpenAI) -> None:
        stream = await oai.chat.completions.create(model="m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        assert totals(stack, "openai.chat") == (0, 0, 0)  # in flight: headers are not the answer
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
        assert "circuit breaker" in text
        assert totals(stack, "openai.chat") == (1, 0, 0)

    async def test_a_stalled_stream_fails_and_the_reader_sees_it(self, stack: Stack) -> None:
        stack.chaos.set(Upstream.OPENAI, StallStream(after_chunks=2, stall_s=5))
        async with openai_client(stack, stream_limits=StreamLimits(chunk_gap_timeout=0.2)) as client:
            stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
            with pytest.raises(Exception) as info:  # noqa: PT011 - the SDK may wrap it; the chain is checked below
                async for _ in stream:
                    pass
        error = info.value
        while (not isinstance(error, StreamStalledError) and error.__cause__) or error.__context__:
            if isinstance(error, StreamStalledError):
                break
            error = error.__cause__ or error.__context__  # type: ignore[assignment]
        assert isinstance(error, StreamStalledError)
        assert stack.registry["openai.chat"].snapshot().totals.failures_by_type == {"stream_stalled": 1}

    async def test_a_reader_that_stops_early(self, stack: Stack, oai: openai.AsyncOpenAI) -> None:
        stream = await oai.chat.completions.create(model="m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        async for _ in stream:
            break
        await stream.close()
        assert totals(stack, "openai.chat") == (1, 0, 0)  # it answered: a success
        stream = await oai.chat.completions.create(model="m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        await stream.close()
        assert totals(stack, "openai.chat") == (1, 0, 1)  # closed before any chunk: nothing

    async def test_slowness_is_judged_by_the_first_chunk(self, stack: Stack) -> None:
        from demo.upstreams import SlowStream

        # The whole stream is slow (chunks 0.15 s apart: over a second); its first chunk is far inside 0.6 s.
        stack.chaos.set(Upstream.OPENAI, SlowStream(chunk_delay_s=0.15))
        stack.registry.endpoint(
            "openai.slow-judge", BreakerConfig(slow_call_duration=0.6), service="openai"
        )  # a strict endpoint just for this test
        judge = Router([Route(stack.registry["openai.slow-judge"], path="/v1/chat/completions")])
        http = httpx2.AsyncClient(transport=bhttpx2.AsyncBreakerTransport(judge))
        async with openai.AsyncOpenAI(base_url=f"{stack.url}/v1", api_key="t", max_retries=0, http_client=http) as c:
            stream = await c.chat.completions.create(model="m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
            chunks = [chunk async for chunk in stream]
        assert len(chunks) > 5  # the whole stream took longer than 0.6 s...
        snap = stack.registry["openai.slow-judge"].snapshot()
        assert (snap.totals.successes, snap.totals.slow) == (1, 0)  # ...but its first chunk came fast


class TestAnthropic:
    async def test_messages_and_streams(self, stack: Stack, claude: anthropic.AsyncAnthropic) -> None:
        message = await claude.messages.create(model="claude-fake", max_tokens=100, messages=MESSAGES)  # type: ignore[arg-type]
        assert message.content[0].type == "text"
        async with claude.messages.stream(model="claude-fake", max_tokens=100, messages=MESSAGES) as stream:  # type: ignore[arg-type]
            text = "".join([t async for t in stream.text_stream])
        assert "circuit breaker" in text
        assert totals(stack, "anthropic.messages") == (2, 0, 0)

    async def test_overloaded_is_a_failure(self, stack: Stack, claude: anthropic.AsyncAnthropic) -> None:
        stack.chaos.set(Upstream.ANTHROPIC, ErrorRate(rate=1.0))
        with pytest.raises(anthropic.OverloadedError):
            await claude.messages.create(model="claude-fake", max_tokens=10, messages=MESSAGES)  # type: ignore[arg-type]
        assert stack.registry["anthropic.messages"].snapshot().totals.failures_by_type == {"529": 1}

    async def test_a_rejection_comes_wrapped_and_is_found(self, stack: Stack, claude: anthropic.AsyncAnthropic) -> None:
        # As docs/integrations.md says: anthropic 2.x wraps the rejection (openai 3.x does not),
        # so callers find it with rejection_in, and max_retries=0 keeps it from being retried.
        stack.registry["anthropic.messages"].force_open()
        with pytest.raises(anthropic.APIConnectionError) as caught:
            await claude.messages.create(model="claude-fake", max_tokens=10, messages=MESSAGES)  # type: ignore[arg-type]
        rejection = rejection_in(caught.value)
        assert rejection is not None
        assert rejection.breaker_name == "anthropic.messages"
        assert stack.registry["anthropic.messages"].snapshot().totals.rejected[RejectionReason.FORCED_OPEN] == 1


async def test_openai_falls_back_to_anthropic(
    stack: Stack, oai: openai.AsyncOpenAI, claude: anthropic.AsyncAnthropic
) -> None:
    """The chain in the mission: OpenAI chat, then Anthropic messages behind its own breaker."""

    async def ask_openai(question: str) -> str:
        chat = await oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": question}])
        return chat.choices[0].message.content or ""

    async def ask_anthropic(question: str) -> str:
        message = await claude.messages.create(
            model="claude-fake", max_tokens=200, messages=[{"role": "user", "content": question}]
        )
        block = message.content[0]
        return block.text if block.type == "text" else ""

    # The SDK calls go through the endpoint breakers in the transport; the chain's own breaker
    # (answer) sees the SDK's errors, and rejections found in their chain.
    answer = stack.registry.feature("answer", fallback=[Alternate(ask_anthropic, name="anthropic")]).chain
    assert isinstance(answer, FallbackChain)
    assert "openai" in await answer.acall(ask_openai, "hello")
    stack.chaos.set(Upstream.OPENAI, Outage())
    for _ in range(6):
        assert "anthropic" in await answer.acall(ask_openai, "hello")
    assert stack.registry["openai.chat"].state is State.OPEN
    assert stack.requests(Upstream.OPENAI) == 4  # after the trip, OpenAI was not called again


class TestQdrant:
    async def test_search_through_httpx_transport(self, stack: Stack) -> None:
        client = AsyncQdrantClient(
            url=stack.url, check_compatibility=False, transport=bhttpx.AsyncBreakerTransport(stack.router)
        )
        try:
            await client.create_collection(
                "docs", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE)
            )
            await client.upsert(
                "docs", points=[models.PointStruct(id=1, vector=[1, 0, 0, 0], payload={"title": "breakers"})]
            )
            found = await client.query_points("docs", query=[1, 0, 0, 0], limit=1, with_payload=True)
            assert found.points[0].payload == {"title": "breakers"}
            assert totals(stack, "qdrant.search") == (1, 0, 0)
            assert totals(stack, "qdrant") == (3, 0, 0)  # collection calls count for the service
            stack.chaos.set(Upstream.QDRANT, Outage())
            for _ in range(4):
                with pytest.raises(Exception):  # noqa: B017, PT011 - qdrant-client's own UnexpectedResponse
                    await client.query_points("docs", query=[1, 0, 0, 0], limit=1)
            with pytest.raises(ResponseHandlingException) as info:
                await client.query_points("docs", query=[1, 0, 0, 0], limit=1)
            assert isinstance(rejection_in(info.value), CircuitOpenError)
        finally:
            await client.close()


def test_sync_clients(stack: Stack) -> None:
    http = httpx2.Client(transport=bhttpx2.BreakerTransport(stack.router))
    with openai.OpenAI(base_url=f"{stack.url}/v1", api_key="t", max_retries=0, http_client=http) as client:
        chat = client.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
        assert chat.choices[0].message.content
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        assert list(stream)
    assert totals(stack, "openai.chat") == (2, 0, 0)
    with httpx.Client(transport=bhttpx.BreakerTransport(stack.router)) as plain:
        assert plain.get(f"{stack.url}/collections").status_code == 200
    assert totals(stack, "qdrant") == (1, 0, 0)


async def test_unrouted_requests_pass_through(stack: Stack) -> None:
    async with httpx.AsyncClient(transport=bhttpx.AsyncBreakerTransport(Router([]))) as client:
        response = await client.get(f"{stack.url}/chaos")
    assert response.status_code == 200
    assert all(b.snapshot().totals.calls == 0 for b in stack.registry)


async def test_a_bodys_own_timeout_within_a_chunk_limit_is_not_a_stall() -> None:
    """Under a chunk limit, a TimeoutError the body raises itself (not the limit's) reaches the
    reader as it is and counts as what the classifier makes of it, not as ``stream_stalled``."""

    class Body(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            raise TimeoutError("the body's own")
            yield b""  # an async generator  # pragma: no cover

    class Upstream(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, stream=Body(), request=request)

    registry = BreakerRegistry()
    endpoint = registry.service("local")
    transport = bhttpx.AsyncBreakerTransport(
        Router(default=endpoint), Upstream(), stream_limits=StreamLimits(first_chunk_timeout=5)
    )
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(TimeoutError, match="the body's own") as info:
            await client.get("http://local/x")  # reads the body
    assert not isinstance(info.value, StreamStalledError)
    failures = endpoint.snapshot().totals.failures_by_type
    assert sum(failures.values()) == 1
    assert "stream_stalled" not in failures


def test_a_router_answers_from_memory_within_its_bound(stack: Stack) -> None:
    router = stack.router
    assert router.route("POST", "127.0.0.1", "/v1/chat/completions") is stack.registry["openai.chat"]
    assert router.route("post", "127.0.0.1", "/v1/chat/completions") is stack.registry["openai.chat"]
    assert router.route("GET", "example.com", "/v1/chat/completions") is None
    for n in range(Router.MEMO_SIZE * 2):  # many distinct paths: the memo stays bounded
        assert router.route("POST", "127.0.0.1", f"/collections/c{n}/points/search") is stack.registry["qdrant.search"]
    assert len(router._memo) <= Router.MEMO_SIZE
    with pytest.raises(AttributeError):
        router.routes = ()  # type: ignore[misc]


@pytest.mark.parametrize("url_class", [httpx.URL, httpx2.URL])
@pytest.mark.parametrize(
    "url",
    [
        "http://api.example.com/v1/chat/completions",
        "http://API.Example.COM/v1/chat/completions",  # hosts compare without case
        "http://api.example.com/v1/%63hat/completions",  # decodes to /v1/chat/...: routed
        "http://api.example.com/v1/chat%2Fcompletions",  # decodes to /v1/chat/completions too
        "http://api.example.com/v1/embeddings?model=x",  # the query plays no part
        "http://xn--fiqs8s.icom.museum/v1/chat/x",  # an IDNA host, matched decoded
        "http://other.example.com/v1/chat/completions",
        "http://api.example.com/v1/models",
    ],
)
def test_a_router_routes_a_url_as_it_routes_its_decoded_parts(url_class: type, url: str) -> None:
    """The transports route by ``route_url``, whose memo is keyed on the URL's encoded parts:
    each answer is the one ``route`` gives for the decoded host and path, first and from memory."""
    registry = BreakerRegistry()
    service = registry.service("api")
    chat = registry.endpoint("api.chat")
    museum = registry.endpoint("api.museum")
    router = Router(
        [
            Route(chat, host="api.example.com", path="/v1/chat/"),
            Route(museum, host="中国.icom.museum"),
            Route(service, host="api.example.com", methods=frozenset({"post"})),
        ]
    )
    parsed = url_class(url)
    expected = Router(router.routes).route("POST", parsed.host, parsed.path)
    assert router.route_url("POST", parsed) is expected
    assert router.route_url("POST", url_class(url)) is expected  # from the memo
    assert router.route_url("GET", parsed) is Router(router.routes).route("GET", parsed.host, parsed.path)
    if "/v1/chat/" in parsed.path and parsed.host == "api.example.com":
        assert expected is chat
    if parsed.host == "中国.icom.museum":
        assert expected is museum


@pytest.mark.parametrize("first", [httpx.URL, httpx2.URL])
@pytest.mark.parametrize("host", ["api.bücher.de", "api.xn--bcher-kva.de", "API.XN--BCHER-KVA.DE"])
def test_one_router_routes_httpx_and_httpx2_alike_whoever_asks_first(first: type, host: str) -> None:
    """httpx leaves ``api.xn--bcher-kva.de`` encoded where httpx2 decodes it: the memo, keyed on
    the encoded host both parse alike, kept the answer of whichever asked first, and the other's
    requests went through unprotected. A route's host matches in either form."""
    registry = BreakerRegistry()
    books = registry.service("books")
    router = Router([Route(books, host=host)])
    second = httpx2.URL if first is httpx.URL else httpx.URL
    for url_class in (first, second, first):
        assert router.route_url("POST", url_class("https://api.xn--bcher-kva.de/v1/x")) is books
        assert router.route_url("POST", url_class("https://api.bücher.de/v1/x")) is books
    assert router.route("POST", "api.bücher.de", "/v1/x") is books
    assert router.route("POST", "bücher.de", "/v1/x") is None


@pytest.mark.parametrize("url_class", [httpx.URL, httpx2.URL])
@pytest.mark.parametrize(
    ("route_host", "request_host"), [("api.openai.com", "api.openai.com."), ("API.openai.com.", "api.openai.com")]
)
def test_a_fully_qualified_host_with_its_final_dot_is_the_same_host(
    url_class: type, route_host: str, request_host: str
) -> None:
    # Requests to "api.openai.com." matched no route of "api.openai.com": they went unprotected.
    openai_breaker = BreakerRegistry().service("openai")
    router = Router([Route(openai_breaker, host=route_host)])
    assert router.route_url("POST", url_class(f"https://{request_host}/v1/chat/completions")) is openai_breaker
    assert router.route("POST", request_host, "/v1/chat/completions") is openai_breaker
    assert router.route("POST", "api.openai.co", "/v1/chat/completions") is None


@pytest.mark.parametrize("host", ["localhost:6333", "api.example.com:443", "[::1]:8080"])
def test_a_route_host_with_a_port_is_refused(host: str) -> None:
    # It was accepted and matched nothing: the requests it meant went through unprotected.
    with pytest.raises(BreakerConfigError, match="without a port"):
        Route(BreakerRegistry().service("qdrant"), host=host)
    assert Route(BreakerRegistry().service("v6"), host="[::1]").host == "::1"  # an IPv6 literal is a host


def test_a_router_routes_urls_without_httpxs_parse_by_their_public_parts() -> None:
    """A URL object without httpx's private parse (another httpx version) is routed by its
    public ``host`` and ``path``; the URL memo stays bounded like the other."""

    @dataclass
    class PlainURL:
        host: str
        path: str

    registry = BreakerRegistry()
    chat = registry.service("chat")
    router = Router([Route(chat, host="api.example.com", path="/v1/chat/")])
    assert router.route_url("POST", PlainURL("api.example.com", "/v1/chat/x")) is chat
    assert router.route_url("POST", PlainURL("api.example.com", "/v1/models")) is None
    for n in range(Router.MEMO_SIZE * 2):
        assert router.route_url("POST", httpx.URL(f"http://api.example.com/v1/chat/{n}")) is chat
    assert len(router._raw_memo) <= Router.MEMO_SIZE


@pytest.mark.parametrize("lib", [(httpx, bhttpx), (httpx2, bhttpx2)], ids=["httpx", "httpx2"])
async def test_an_endpoints_call_timeout_bounds_the_wait_for_headers(lib: tuple[Any, Any]) -> None:
    """The transports never read call_timeout: an answer after 0.5 s under a 0.1 s limit was a
    success through them, a CallTimeoutError through acall() of the same breaker."""
    http, transports = lib

    class SlowAsync(http.AsyncBaseTransport):  # type: ignore[name-defined,misc]
        async def handle_async_request(self, request: Any) -> Any:
            await asyncio.sleep(0.5)
            return http.Response(200, json={"ok": True})

    class SlowSync(http.BaseTransport):  # type: ignore[name-defined,misc]
        def handle_request(self, request: Any) -> Any:
            time.sleep(0.3)
            return http.Response(200, json={"ok": True})

    endpoint = BreakerRegistry().service("llm", BreakerConfig(call_timeout=0.1, slow_call_duration=10))
    router = Router(default=endpoint)
    async with http.AsyncClient(transport=transports.AsyncBreakerTransport(router, SlowAsync())) as client:
        with pytest.raises(CallTimeoutError):  # cancelled at the limit
            await client.get("http://llm.local/v1/x")
    with http.Client(transport=transports.BreakerTransport(router, SlowSync())) as client:
        assert client.get("http://llm.local/v1/x").json() == {"ok": True}  # cannot be interrupted...
    assert endpoint.snapshot().totals.failures_by_type == {"timeout": 2}  # ...and counts as a timeout
    assert endpoint.snapshot().totals.successes == 0


ANTHROPIC_OVERLOADED = [
    b'event: message_start\ndata: {"type": "message_start"}\n\n',
    b'event: content_block_delta\ndata: {"type": "content_block_delta", "delta": {"text": "Hi"}}\n\n',
    b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n',
]
# OpenAI's error event, its line cut in two chunks well past its start.
OPENAI_ERROR = [
    b'data: {"choices": [{"delta": {"content": "event: error is just text here"}}]}\n\n',
    b'data: {"error": {"message": "The server had an er',
    b'ror while processing your request.", "type": "server_error"}}\n\n',
]
DONE_THEN_CUT = [b'data: {"choices": [{"delta": {"content": "t0"}}]}\n\n', b"data: [DONE]\n\n", None]
NOT_EVENTS = [b'{"error_rate": 1, "text": "data: [DONE]\\nevent: error"}']
BOM_THEN_FIELD = [b'\xef\xbb\xbfdata: {"error": {"type": "server_error"}}\n\n']
LINE_END_FIRST = [b"\n", b'event: error\ndata: {"type": "error"}\n\n']
# What the event-stream format allows: an empty first chunk, one cut inside the first field's
# name, bare CR line ends, no space after the colon; a byte-order mark and a blank line first.
CUT_AND_CR = [b"", b"ev", b"ent: message_start\rdata: {}\r\r", b'event:error\rdata:{"type":"error"}\r\r']
BOM_FIRST = [b'\xef\xbb\xbf\ndata: {"choices": []}\n\n', b'data:{"error": {"type": "server_error"}}\n\n']


async def _read_events(
    lib: tuple[Any, Any], chunks: list[bytes | None], headers: dict[str, str] | None = None, *, raw: bool = False
) -> CallTotals:
    """The totals of an endpoint after reading ``chunks`` as a 200's body through the async and
    the sync transport (``None``: the connection breaks there), decoded as a caller reads it or,
    ``raw``, as it came."""
    headers = headers or {}
    http, transports = lib
    endpoint = BreakerRegistry().service("llm", BreakerConfig(slow_call_duration=10))
    router = Router(default=endpoint)

    class Body(http.SyncByteStream, http.AsyncByteStream):  # type: ignore[name-defined,misc]
        def __iter__(self) -> Any:
            for chunk in chunks:
                if chunk is None:
                    raise http.ReadError("connection reset")
                yield chunk

        async def __aiter__(self) -> Any:
            for chunk in chunks:
                if chunk is None:
                    raise http.ReadError("connection reset")
                yield chunk

    class Upstream(http.BaseTransport, http.AsyncBaseTransport):  # type: ignore[name-defined,misc]
        def handle_request(self, request: Any) -> Any:
            return http.Response(200, headers={"content-type": "text/event-stream", **headers}, stream=Body())

        async def handle_async_request(self, request: Any) -> Any:
            return http.Response(200, headers={"content-type": "text/event-stream", **headers}, stream=Body())

    async with (
        http.AsyncClient(transport=transports.AsyncBreakerTransport(router, Upstream())) as client,
        client.stream("POST", "http://llm.local/v1/x") as response,
    ):
        try:
            async for _ in response.aiter_raw() if raw else response.aiter_bytes():
                pass
        except http.ReadError:
            pass
    with (
        http.Client(transport=transports.BreakerTransport(router, Upstream())) as client,
        client.stream("POST", "http://llm.local/v1/x") as response,
    ):
        try:
            for _ in response.iter_raw() if raw else response.iter_bytes():
                pass
        except http.ReadError:
            pass
    return endpoint.snapshot().totals


# Bodies, and the (successes, failures by type) each counts once read.
EVENT_STREAMS: dict[str, tuple[list[bytes | None], tuple[int, dict[str, int]]]] = {
    "anthropic-error-event": (ANTHROPIC_OVERLOADED, (0, {"stream_error": 1})),
    "openai-error-split": (OPENAI_ERROR, (0, {"stream_error": 1})),
    "done-then-cut": (DONE_THEN_CUT, (1, {})),
    "json-body": (NOT_EVENTS, (1, {})),
    "cut-and-cr": (CUT_AND_CR, (0, {"stream_error": 1})),
    "bom-first": (BOM_FIRST, (0, {"stream_error": 1})),
    "bom-then-field": (BOM_THEN_FIELD, (0, {"stream_error": 1})),
    "line-end-first": (LINE_END_FIRST, (0, {"stream_error": 1})),
    # A byte-order mark cut across the first chunks: the stream was read as no events at all.
    "bom-split": ([b"\xef", b"\xbb", b'\xbfdata: {"error": {"type": "server_error"}}\n\n'], (0, {"stream_error": 1})),
}


@pytest.mark.parametrize("lib", [(httpx, bhttpx), (httpx2, bhttpx2)], ids=["httpx", "httpx2"])
@pytest.mark.parametrize(("chunks", "expected"), list(EVENT_STREAMS.values()), ids=list(EVENT_STREAMS))
async def test_a_stream_of_events_states_its_own_outcome(
    lib: tuple[Any, Any], chunks: list[bytes | None], expected: tuple[int, dict[str, int]]
) -> None:
    """An SSE body that reports an error after its 200 (the SDK raises it to the caller) counted
    as a success; one cut after ``[DONE]`` (the answer complete) counted as a connection error
    through the async SDKs, whose drain after [DONE] reads on. ``None``: the connection breaks."""
    totals = await _read_events(lib, chunks)
    successes, failures = expected
    assert (totals.successes, totals.failures_by_type) == (2 * successes, {k: 2 * v for k, v in failures.items()})


def _compressed(chunks: list[bytes | None], encoding: str) -> list[bytes | None]:
    """``chunks`` compressed as one body with ``encoding``, cut in pieces of 7 bytes (the first
    holds no byte of the body yet); a ``None`` at the end stays there."""
    body = b"".join(c for c in chunks if c is not None)
    if encoding == "gzip":
        packed = gzip.compress(body)
    elif encoding == "deflate":  # zlib data, as the standard says
        packed = zlib.compress(body)
    else:  # "raw deflate": what some servers send as deflate
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        packed = packer.compress(body) + packer.flush()
    pieces: list[bytes | None] = [packed[i : i + 7] for i in range(0, len(packed), 7)]
    return [*pieces, None] if chunks[-1] is None else pieces


@pytest.mark.parametrize("lib", [(httpx, bhttpx), (httpx2, bhttpx2)], ids=["httpx", "httpx2"])
@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw deflate"])
@pytest.mark.parametrize(("chunks", "expected"), list(EVENT_STREAMS.values()), ids=list(EVENT_STREAMS))
async def test_a_compressed_stream_of_events_states_its_own_outcome_too(
    lib: tuple[Any, Any], encoding: str, chunks: list[bytes | None], expected: tuple[int, dict[str, int]]
) -> None:
    """A gateway that compresses an event stream (gzip, deflate) hid its error events: the scan
    read the compressed bytes, and such a body counted as a success."""
    header = "deflate" if encoding == "raw deflate" else encoding
    body = _compressed(chunks, encoding)
    totals = await _read_events(lib, body, {"content-encoding": header})
    successes, failures = expected
    if body[0] and body[0][0] == ord("{"):  # raw deflate of a byte-order mark starts so: read as JSON
        successes, failures = 1, {}
    assert (totals.successes, totals.failures_by_type) == (2 * successes, {k: 2 * v for k, v in failures.items()})


@pytest.mark.parametrize("lib", [(httpx, bhttpx), (httpx2, bhttpx2)], ids=["httpx", "httpx2"])
@pytest.mark.parametrize(
    ("header", "layers"),
    [
        ("gzip, identity", [gzip.compress]),
        ("identity, gzip", [gzip.compress]),
        ("GZIP", [gzip.compress]),
        ("gzip, gzip", [gzip.compress, gzip.compress]),
        ("deflate, gzip", [zlib.compress, gzip.compress]),  # in the order they were applied
    ],
)
async def test_a_stream_compressed_under_any_header_its_library_decodes_is_scanned(
    lib: tuple[Any, Any], header: str, layers: list[Callable[[bytes], bytes]]
) -> None:
    """Several encodings (identity among them, or one applied twice) and the header's spellings
    are decoded by the reader's library, and were not by the scan: the error counted a success."""
    body = b"".join(c for c in ANTHROPIC_OVERLOADED if c is not None)
    for compress in layers:
        body = compress(body)
    totals = await _read_events(lib, [body[:5], body[5:]], {"content-encoding": header})
    assert (totals.successes, totals.failures_by_type) == (0, {"stream_error": 2})


@pytest.mark.parametrize("lib", [(httpx, bhttpx), (httpx2, bhttpx2)], ids=["httpx", "httpx2"])
@pytest.mark.parametrize("content_type", ["application/json", "application/x-ndjson"])
async def test_a_compressed_body_that_is_not_an_event_stream_is_not_decoded(
    lib: tuple[Any, Any], content_type: str
) -> None:
    # What its headers say decides: a JSON body (an array, or lines of objects) read as events
    # cost the decoding of its first chunk, for a body that states no outcome.
    body = gzip.compress(b'[{"text": "x"}]\nevent: error\n')
    totals = await _read_events(lib, [body], {"content-encoding": "gzip", "content-type": content_type})
    assert (totals.successes, totals.failures_by_type) == (2, {})


@pytest.mark.parametrize("lib", [(httpx, bhttpx), (httpx2, bhttpx2)], ids=["httpx", "httpx2"])
@pytest.mark.parametrize("encoding", ["gzip", "compress"])
async def test_a_body_whose_encoding_is_not_what_its_header_says_is_not_scanned(
    lib: tuple[Any, Any], encoding: str
) -> None:
    """Bytes that do not decode (or an encoding the library does not decode) leave the body
    unscanned, as any other body, read raw here so that the reader's decoder raises nothing."""
    chunks: list[bytes | None] = [b"\x00\x01 not gzip", b'event: error\ndata: {"type": "error"}\n\n']
    totals = await _read_events(lib, chunks, {"content-encoding": encoding}, raw=True)
    assert (totals.successes, totals.failures_by_type) == (2, {})


@pytest.mark.parametrize("lib", [(httpx, bhttpx), (httpx2, bhttpx2)], ids=["httpx", "httpx2"])
async def test_a_decompression_bomb_costs_the_scan_no_more_than_a_copy_of_the_chunk(lib: tuple[Any, Any]) -> None:
    """4 KB of gzip that inflates to 4 MiB of line ends, then an error event: the scan split
    every line into an object of its own (37 MiB at the peak, where the reader needs 4)."""
    body = gzip.compress(b"\n" * (4 << 20) + b'event: error\ndata: {"type": "error"}\n\n')
    tracemalloc.start()
    try:
        totals = await _read_events(lib, [body], {"content-encoding": "gzip"})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (totals.successes, totals.failures_by_type) == (0, {"stream_error": 2})
    assert peak < 24 << 20, f"{peak / 2**20:.1f} MiB at the peak"


@pytest.mark.parametrize("lib", [(httpx, bhttpx), (httpx2, bhttpx2)], ids=["httpx", "httpx2"])
@pytest.mark.parametrize("limits", [None, StreamLimits(first_chunk_timeout=5, chunk_gap_timeout=5)])
def test_a_reader_that_breaks_off_and_never_closes_gives_back_the_probe(
    lib: tuple[Any, Any], limits: StreamLimits | None
) -> None:
    """httpx's iter_raw does not close the response when its reader breaks off: a stream that
    waited for close() to record held a half-open breaker's only probe until max_wait."""
    http, transports = lib

    class Body(http.SyncByteStream):  # type: ignore[name-defined,misc]
        def __iter__(self) -> Any:
            yield b"a"
            yield b"b"

    config = BreakerConfig(minimum_calls=1, wait_in_open=0.001, permitted_calls_in_half_open=1)
    endpoint = BreakerRegistry().service("api", config)
    endpoint.force_open(0.001)
    time.sleep(0.01)  # the next request is the half-open probe
    upstream = http.MockTransport(lambda request: http.Response(200, stream=Body()))
    options = {} if limits is None else {"stream_limits": limits}
    client = http.Client(transport=transports.BreakerTransport(Router(default=endpoint), upstream, **options))
    response = client.send(client.build_request("GET", "http://api.local/x"), stream=True)
    for _ in response.iter_raw():
        break  # and never closed
    gc.collect()
    assert endpoint.snapshot().totals.successes == 1  # the dependency answered: a success
    assert client.get("http://api.local/x").status_code == 200  # the probe slot is free again
    client.close()
