"""What a response body counts as, through the sync and async transports of httpx and httpx2.

The upstream is a transport in this process whose body follows a script: chunks, a clock that
moves between them (the breakers' ManualClock), an error midway. Each case is read the way an
SDK reads it (to the end, or closed early) and checked against the breaker's totals: a body read
to the end is one success, as slow as its time to the first chunk; one closed after a chunk is a
success; one closed before any chunk is neither (ignored, as a cancelled call is); one that
breaks is a failure; a stalled one is a ``stream_stalled`` failure and the reader gets
:class:`StreamStalledError`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import httpx
import httpx2
import pytest

from breakerpanel import BreakerConfig, BreakerRegistry, ManualClock, Verdict, failure
from breakerpanel.integrations import Route, Router, StreamLimits, StreamStalledError
from breakerpanel.integrations import httpx as bhttpx
from breakerpanel.integrations import httpx2 as bhttpx2

URL = "http://api.local/v1/chat"
SLOW = 5.0  # the endpoint's slow_call_duration

# A script step: bytes (a chunk), a float (the clock moves on), an exception (raised).
Step = bytes | float | BaseException


@dataclass
class Bound:
    """One library (httpx or httpx2) and our transports for it."""

    lib: Any
    ours: ModuleType


LIBRARIES = [pytest.param(Bound(httpx, bhttpx), id="httpx"), pytest.param(Bound(httpx2, bhttpx2), id="httpx2")]


def upstreams(lib: Any, clock: ManualClock, script: list[Step], closed: list[bool]) -> tuple[Any, Any]:
    """Sync and async transports whose response bodies play ``script``."""

    def play() -> Iterator[bytes]:
        for step in script:
            if isinstance(step, bytes):
                yield step
            elif isinstance(step, float):
                clock.advance(step)
            else:
                raise step

    class Body(lib.SyncByteStream, lib.AsyncByteStream):  # type: ignore[misc]
        def __iter__(self) -> Iterator[bytes]:
            yield from play()

        async def __aiter__(self) -> AsyncIterator[bytes]:
            for chunk in play():
                yield chunk

        def close(self) -> None:
            closed.append(True)

        async def aclose(self) -> None:
            closed.append(True)

    class Upstream(lib.BaseTransport):  # type: ignore[misc]
        def handle_request(self, request: Any) -> Any:
            return lib.Response(200, stream=Body(), request=request)

    class AsyncUpstream(lib.AsyncBaseTransport):  # type: ignore[misc]
        async def handle_async_request(self, request: Any) -> Any:
            return lib.Response(200, stream=Body(), request=request)

    return Upstream(), AsyncUpstream()


@dataclass
class Setup:
    clock: ManualClock
    registry: BreakerRegistry
    closed: list[bool]

    def totals(self) -> tuple[int, int, int, int]:
        """successes, failures, ignored, slow, of the endpoint (and the same in its service)."""
        results = []
        for name in ("api.chat", "api"):
            t = self.registry[name].snapshot().totals
            results.append((t.successes, t.failures, t.ignored, t.slow))
        assert results[0] == results[1], "the endpoint and its service disagree"
        return results[0]

    def failure_types(self) -> dict[str, int]:
        return self.registry["api.chat"].snapshot().totals.failures_by_type


def build(
    bound: Bound, script: list[Step], limits: StreamLimits | None = None, async_inner: Any = None
) -> tuple[Setup, Any, Any]:
    clock = ManualClock(start=100.0)
    registry = BreakerRegistry(clock=clock)
    config = BreakerConfig(slow_call_duration=SLOW)
    registry.service("api", config)
    registry.endpoint("api.chat", config)
    router = Router([Route(registry["api.chat"], host="api.local", path="/v1/chat")])
    closed: list[bool] = []
    upstream, async_upstream = upstreams(bound.lib, clock, script, closed)
    sync = bound.lib.Client(transport=bound.ours.BreakerTransport(router, upstream, stream_limits=limits))
    asynchronous = bound.lib.AsyncClient(
        transport=bound.ours.AsyncBreakerTransport(router, async_inner or async_upstream, stream_limits=limits)
    )
    return Setup(clock, registry, closed), sync, asynchronous


async def read_all(bound: Bound, mode: str, script: list[Step], limits: StreamLimits | None = None) -> Setup:
    """Read the whole body, as ``client.post(...)`` does; errors reach the caller."""
    setup, sync, asynchronous = build(bound, script, limits)
    await post(mode, sync, asynchronous)
    return setup


async def post(mode: str, sync: Any, asynchronous: Any) -> None:
    """One ``client.post(...)`` (which reads the body) with the client of ``mode``, closed after."""
    if mode == "sync":
        with sync:
            sync.post(URL, content=b"{}")
    else:
        async with asynchronous:
            await asynchronous.post(URL, content=b"{}")


async def read_chunks(bound: Bound, mode: str, script: list[Step], chunks: int) -> tuple[Setup, list[bytes]]:
    """Read ``chunks`` chunks of a streamed body (none: do not iterate), then close the response."""
    setup, sync, asynchronous = build(bound, script)
    got: list[bytes] = []
    if mode == "sync":
        with sync, sync.stream("POST", URL, content=b"{}") as response:
            for chunk in response.iter_raw() if chunks else ():
                got.append(chunk)
                if len(got) == chunks:
                    break
    else:
        async with asynchronous, asynchronous.stream("POST", URL, content=b"{}") as response:
            if chunks:
                async for chunk in response.aiter_raw():
                    got.append(chunk)
                    if len(got) == chunks:
                        break
    return setup, got


MODES = ["sync", "async"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bound", LIBRARIES)
class TestABody:
    async def test_read_to_the_end_is_one_success_as_slow_as_its_first_chunk(self, bound: Bound, mode: str) -> None:
        # 1 s to the first chunk, 30 s for the rest: not slow (the limit is 5 s)
        setup = await read_all(bound, mode, [1.0, b"a", 30.0, b"b"])
        assert setup.totals() == (1, 0, 0, 0)
        assert setup.closed == [True]

    async def test_a_late_first_chunk_is_a_slow_success(self, bound: Bound, mode: str) -> None:
        setup = await read_all(bound, mode, [SLOW + 1, b"a", b"b"])
        assert setup.totals() == (1, 0, 0, 1)

    async def test_an_empty_body_read_to_its_end_is_a_success(self, bound: Bound, mode: str) -> None:
        setup = await read_all(bound, mode, [])
        assert setup.totals() == (1, 0, 0, 0)

    async def test_a_body_that_breaks_midway_is_a_failure_the_reader_sees(self, bound: Bound, mode: str) -> None:
        setup, sync, asynchronous = build(bound, [b"a", bound.lib.ReadError("connection reset")])
        with pytest.raises(bound.lib.ReadError, match="connection reset"):
            await post(mode, sync, asynchronous)
        successes, failures, ignored, _ = setup.totals()
        assert (successes, failures, ignored) == (0, 1, 0)

    async def test_closed_after_a_chunk_is_a_success(self, bound: Bound, mode: str) -> None:
        setup, got = await read_chunks(bound, mode, [b"a", b"b", b"c"], chunks=1)
        assert got == [b"a"]
        assert setup.totals() == (1, 0, 0, 0)
        assert setup.closed == [True]

    async def test_closed_before_any_chunk_is_neither_success_nor_failure(self, bound: Bound, mode: str) -> None:
        setup, got = await read_chunks(bound, mode, [b"a"], chunks=0)
        assert got == []
        assert setup.totals() == (0, 0, 1, 0)  # ignored, as a cancelled call is
        assert setup.closed == [True]

    async def test_a_stalled_first_chunk_fails_and_the_reader_sees_it(self, bound: Bound, mode: str) -> None:
        if mode == "sync":  # a blocking read is judged when the late chunk comes
            setup, sync, asynchronous = build(bound, [3.0, b"a"], StreamLimits(first_chunk_timeout=2.0))
        else:  # an async read is cut at the limit: a body that never sends stalls
            limits = StreamLimits(first_chunk_timeout=0.05)
            setup, sync, asynchronous = build(bound, [b"a"], limits, async_inner=_stalling(bound.lib))
        with pytest.raises(StreamStalledError, match="first chunk"):
            await post(mode, sync, asynchronous)
        assert setup.failure_types() == {"stream_stalled": 1}


@pytest.mark.parametrize("bound", LIBRARIES)
async def test_a_sync_gap_over_the_limit_fails_and_a_gap_under_it_does_not(bound: Bound) -> None:
    """A blocking read cannot be cut: the gap is judged when the late chunk arrives."""
    limits = StreamLimits(chunk_gap_timeout=2.0)
    setup = await read_all(bound, "sync", [b"a", 1.5, b"b", 1.5, b"c"], limits)
    assert setup.totals() == (1, 0, 0, 0)
    with pytest.raises(StreamStalledError, match="next chunk"):
        await read_all(bound, "sync", [b"a", 2.5, b"b"], limits)


@pytest.mark.parametrize("bound", LIBRARIES)
def test_a_sync_readers_own_time_between_chunks_is_not_a_gap(bound: Bound) -> None:
    """The wait for a chunk starts when the reader asks for it, as the async limit's does: a
    reader that takes 3 s over each chunk under a 2 s gap limit, or pauses between two
    iterations, sees no stall when the dependency itself sends each chunk within 1.5 s."""
    setup, sync, _ = build(bound, [b"a", 1.5, b"b", 1.5, b"c"], StreamLimits(chunk_gap_timeout=2.0))
    got = []
    with sync, sync.stream("POST", URL, content=b"{}") as response:
        for chunk in response.iter_raw():
            got.append(chunk)
            setup.clock.advance(3.0)  # the reader's own work
    assert got == [b"a", b"b", b"c"]
    assert setup.totals() == (1, 0, 0, 0)

    setup, sync, _ = build(bound, [b"a", 1.5, b"b"], StreamLimits(chunk_gap_timeout=2.0))
    with sync, sync.stream("POST", URL, content=b"{}") as response:
        stream = response.stream  # the transport's stream, iterated twice
        first = iter(stream)
        assert next(first) == b"a"
        setup.clock.advance(10.0)  # a pause between the two iterations
        assert list(stream) == [b"b"]
    assert setup.totals() == (1, 0, 0, 0)


@pytest.mark.parametrize("bound", LIBRARIES)
def test_a_transports_own_classifier_judges_every_response(bound: Bound) -> None:
    """Given a classifier, the transport asks it about responses under 400 too (the default
    one has no opinion there); its verdict counts at once, its ``None`` leaves it to the body."""

    def classify(exc: BaseException | None, response: Any) -> Verdict | None:
        if response is not None and response.headers.get("x-degraded") == "1":
            return failure("degraded")
        return None

    clock = ManualClock(start=100.0)
    registry = BreakerRegistry(clock=clock)
    endpoint = registry.service("api")

    class Upstream(bound.lib.BaseTransport):  # type: ignore[misc,name-defined]
        def handle_request(self, request: Any) -> Any:
            degraded = request.url.path == "/degraded"
            return bound.lib.Response(200, headers={"x-degraded": "1" if degraded else "0"}, content=b"{}")

    transport = bound.ours.BreakerTransport(Router(default=endpoint), Upstream(), classifier=classify)
    with bound.lib.Client(transport=transport) as client:
        assert client.get("http://api.local/degraded").status_code == 200
        assert client.get("http://api.local/fine").status_code == 200
    totals = endpoint.snapshot().totals
    assert (totals.successes, totals.failures, totals.failures_by_type) == (1, 1, {"degraded": 1})


@pytest.mark.parametrize("bound", LIBRARIES)
async def test_a_response_whose_body_is_read_already_counts_at_once(bound: Bound) -> None:
    """A mock transport answers with a body in memory (``Response(200, json=...)`` is read and
    closed when built): nothing will read it again, so it counts when it is returned. (Before,
    it never counted, and a half-open probe's permit was never given back.)"""
    registry = BreakerRegistry()
    endpoint = registry.service("api")
    mock = bound.lib.MockTransport(lambda request: bound.lib.Response(200, json={"ok": True}))
    with bound.lib.Client(transport=bound.ours.BreakerTransport(Router(default=endpoint), mock)) as client:
        assert client.get(URL).json() == {"ok": True}
    async with bound.lib.AsyncClient(
        transport=bound.ours.AsyncBreakerTransport(Router(default=endpoint), mock)
    ) as aclient:
        assert (await aclient.get(URL)).json() == {"ok": True}
    totals = endpoint.snapshot().totals
    assert (totals.successes, totals.failures, totals.ignored) == (2, 0, 0)


def _raises(exc: BaseException | None, result: Any) -> Verdict | None:
    raise RuntimeError("a classifier with a bug")


def _not_a_verdict(exc: BaseException | None, result: Any) -> Any:
    return True


@pytest.mark.parametrize("classifier", [_raises, _not_a_verdict], ids=["raises", "not-a-verdict"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bound", LIBRARIES)
async def test_a_broken_classifier_leaves_no_call_unrecorded(
    bound: Bound, mode: str, classifier: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A transport classifier that raises (one reading an unread body, say) or answers something
    that is not a Verdict has no opinion, and says so in the log: the response reaches the caller
    and counts as its body decides, a connection error reaches the caller as itself and counts as
    the breaker's default. (Before, the classifier's own error reached the caller, the call was
    never recorded, and a half-open probe's permit was never given back: the breaker admitted
    nothing until its max wait in half-open ran out.)"""
    registry = BreakerRegistry()
    endpoint = registry.service("api")

    def answer(request: Any) -> Any:
        if request.url.path == "/down":
            raise bound.lib.ConnectError("connection refused", request=request)
        return bound.lib.Response(503, content=b"{}")

    mock = bound.lib.MockTransport(answer)
    router = Router(default=endpoint)
    with caplog.at_level("ERROR", logger="breakerpanel"):
        if mode == "sync":
            with bound.lib.Client(transport=bound.ours.BreakerTransport(router, mock, classifier=classifier)) as c:
                assert c.get("http://api.local/up").status_code == 503
                with pytest.raises(bound.lib.ConnectError):
                    c.get("http://api.local/down")
        else:
            atransport = bound.ours.AsyncBreakerTransport(router, mock, classifier=classifier)
            async with bound.lib.AsyncClient(transport=atransport) as ac:
                assert (await ac.get("http://api.local/up")).status_code == 503
                with pytest.raises(bound.lib.ConnectError):
                    await ac.get("http://api.local/down")
    totals = endpoint.snapshot().totals
    assert (totals.successes, totals.failures, totals.ignored) == (1, 1, 0)
    assert sum("classifier" in r.getMessage() and "using the default" in r.getMessage() for r in caplog.records) == 2


def _stalling(lib: Any) -> Any:
    """An async upstream whose body never sends its first chunk."""
    import asyncio

    class Never(lib.AsyncByteStream):  # type: ignore[misc]
        async def __aiter__(self) -> AsyncIterator[bytes]:
            await asyncio.Event().wait()
            yield b""  # pragma: no cover

    class Upstream(lib.AsyncBaseTransport):  # type: ignore[misc]
        async def handle_async_request(self, request: Any) -> Any:
            return lib.Response(200, stream=Never(), request=request)

    return Upstream()


@pytest.mark.parametrize("bound", LIBRARIES)
async def test_an_async_gap_over_the_limit_is_cut_and_fails(bound: Bound) -> None:
    import asyncio

    class Gap(bound.lib.AsyncByteStream):  # type: ignore[misc,name-defined]
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b"a"
            await asyncio.sleep(1.0)
            yield b"b"  # pragma: no cover

    class Upstream(bound.lib.AsyncBaseTransport):  # type: ignore[misc,name-defined]
        async def handle_async_request(self, request: Any) -> Any:
            return bound.lib.Response(200, stream=Gap(), request=request)

    registry = BreakerRegistry()
    endpoint = registry.service("api")
    transport = bound.ours.AsyncBreakerTransport(
        Router(default=endpoint), Upstream(), stream_limits=StreamLimits(chunk_gap_timeout=0.05)
    )
    async with bound.lib.AsyncClient(transport=transport) as client:
        with pytest.raises(StreamStalledError, match="next chunk"):
            await client.post(URL, content=b"{}")
    assert endpoint.snapshot().totals.failures_by_type == {"stream_stalled": 1}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bound", LIBRARIES)
async def test_a_body_iterated_twice_goes_on_where_it_stopped_and_counts_once(bound: Bound, mode: str) -> None:
    """The openai SDK stops at ``[DONE]`` and drains the rest with a new iterator."""
    clock = ManualClock(start=100.0)
    registry = BreakerRegistry(clock=clock)
    endpoint = registry.service("api")
    closed: list[bool] = []
    upstream, async_upstream = upstreams(bound.lib, clock, [b"a", b"b", b"c"], closed)
    if mode == "sync":
        transport = bound.ours.BreakerTransport(Router(default=endpoint), upstream)
        response = transport.handle_request(bound.lib.Request("POST", URL))
        first = next(iter(response.stream))
        rest = list(response.stream)
        response.stream.close()
    else:
        atransport = bound.ours.AsyncBreakerTransport(Router(default=endpoint), async_upstream)
        response = await atransport.handle_async_request(bound.lib.Request("POST", URL))
        first = await response.stream.__aiter__().__anext__()
        rest = [chunk async for chunk in response.stream]
        await response.stream.aclose()
    assert (first, rest) == (b"a", [b"b", b"c"])
    totals = endpoint.snapshot().totals
    assert (totals.successes, totals.failures, totals.ignored) == (1, 0, 0)
