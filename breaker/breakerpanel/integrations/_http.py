"""What the ``httpx`` and ``httpx2`` transports share: routing, classification, stream watching.

The two libraries have the same transport interface but separate classes (a transport must
subclass its own library's base class, a response stream its own ``AsyncByteStream``), so the
logic lives here in mixins and :mod:`.httpx` / :mod:`.httpx2` only bind them to each library.

One request is one call through its endpoint's breaker. The verdict for an error status is known
when the headers arrive; a successful response counts when its body has been read, because a
stream can still break midway (a failure the caller sees), or stall (a failure, and the caller
gets :class:`StreamStalledError`). A reader that stops early counts as a success once a chunk has
come (the dependency answered), and as nothing before. For slowness the breaker is given the time
to the first chunk, not the whole stream: an LLM answer streamed over a minute is not slow if its
first token came at once.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from breakerpanel._breaker import CircuitBreaker, Permit
from breakerpanel._classify import Classifier, Verdict
from breakerpanel._exceptions import BreakerConfigError, BreakerError
from breakerpanel.presets import llm_http

__all__ = ["Route", "Router", "StreamLimits", "StreamStalledError"]


class StreamStalledError(BreakerError, TimeoutError):
    """A streamed response sent no chunk within the configured limit."""

    def __init__(self, breaker_name: str, waited: float, first: bool) -> None:
        what = "the first chunk" if first else "the next chunk"
        super().__init__(f"{breaker_name}: no {what} of the response within {waited:g}s")
        self.breaker_name = breaker_name


@dataclass(frozen=True)
class Route:
    """Requests that go through ``breaker``: by host (exact, case-insensitive; ``None``: any), by
    path (a prefix, or a compiled regex that must match the whole path; ``None``: any) and by
    method (``None``: any)."""

    breaker: CircuitBreaker
    host: str | None = None
    path: str | re.Pattern[str] | None = None
    methods: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.breaker, CircuitBreaker):
            raise BreakerConfigError("route.breaker", f"expected a CircuitBreaker (got {self.breaker!r})")
        if self.host is not None:
            object.__setattr__(self, "host", self.host.lower())
        if self.methods is not None:
            object.__setattr__(self, "methods", frozenset(m.upper() for m in self.methods))

    def matches(self, method: str, host: str, path: str) -> bool:
        if self.host is not None and host.lower() != self.host:
            return False
        if self.methods is not None and method.upper() not in self.methods:
            return False
        if self.path is None:
            return True
        if isinstance(self.path, str):
            return path.startswith(self.path)
        return self.path.fullmatch(path) is not None


class Router:
    """Picks the breaker for a request: the first matching route, else ``default`` (``None``:
    the request goes through unprotected)."""

    # Requests to an API repeat a few (method, host, path) triples: the answer for each is kept,
    # up to this many (then the memo starts over), so most requests cost one dict lookup.
    MEMO_SIZE = 1024

    def __init__(self, routes: Iterable[Route] = (), *, default: CircuitBreaker | None = None) -> None:
        self._routes = tuple(routes)
        self._default = default
        self._memo: dict[tuple[str, str, str], CircuitBreaker | None] = {}

    # Read-only: the memo holds answers for these (a new routing is a new Router).
    @property
    def routes(self) -> tuple[Route, ...]:
        return self._routes

    @property
    def default(self) -> CircuitBreaker | None:
        return self._default

    def route(self, method: str, host: str, path: str) -> CircuitBreaker | None:
        key = (method, host, path)
        try:
            return self._memo[key]
        except KeyError:
            pass
        breaker = self.default
        for route in self.routes:
            if route.matches(method, host, path):
                breaker = route.breaker
                break
        memo = self._memo
        if len(memo) >= self.MEMO_SIZE:
            memo.clear()
        memo[key] = breaker
        return breaker

    def __repr__(self) -> str:
        return f"Router({len(self.routes)} routes, default={self.default.name if self.default else None})"


@dataclass(frozen=True)
class StreamLimits:
    """Limits on a streamed response, from the request's start to the first chunk and between
    chunks. Exceeding one fails the call (type ``stream_stalled``) and raises
    :class:`StreamStalledError` to the reader. ``None``: no limit (the client's read timeout)."""

    first_chunk_timeout: float | None = None
    chunk_gap_timeout: float | None = None

    def __post_init__(self) -> None:
        for name in ("first_chunk_timeout", "chunk_gap_timeout"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int | float) and value > 0):
                raise BreakerConfigError(
                    f"stream_limits.{name}", f"must be a positive number of seconds (got {value!r})"
                )


class TransportCore:
    """Routing and classification for one transport."""

    def __init__(self, router: Router, classifier: Classifier | None, stream_limits: StreamLimits) -> None:
        if not isinstance(router, Router):
            raise BreakerConfigError("router", f"expected a Router (got {router!r})")
        self.router = router
        self.classifier = classifier if classifier is not None else llm_http()
        # llm_http() has no opinion on a response under 400: response_verdict answers that
        # without asking it (four calls and a property, on every request).
        self._default_classifier = classifier is None
        self.stream_limits = stream_limits

    def admit(self, request: Any) -> Permit | None:
        breaker = self.router.route(request.method, request.url.host, request.url.path)
        return None if breaker is None else breaker.acquire()

    def response_verdict(self, response: Any) -> Verdict | None:
        """The verdict for an error status; ``None`` for a response whose body decides."""
        if self._default_classifier and response.status_code < 400:
            return None
        return self.classifier(None, response)

    def exception_verdict(self, permit: Permit, exc: BaseException) -> Verdict:
        if isinstance(exc, Exception):
            verdict = self.classifier(exc, None)
            if verdict is not None:
                return verdict
        return permit.breaker.classify_exception(exc)


class _ObservedStream:
    """What the async and sync stream wrappers share: the state of one response body.

    The state lives on the object, not in the iterator, because readers may iterate more than
    once (the openai SDK stops at ``[DONE]`` and later drains the rest with a new iterator).
    A reader that stops after the first chunk is not a failure of the dependency, which answered:
    it counts as a success; one that stops before any chunk counts as nothing.
    """

    def __init__(self, inner: Any, permit: Permit, limits: StreamLimits, core: TransportCore) -> None:
        self._inner = inner
        self._permit = permit
        self._limits = limits
        self._core = core
        self._first_chunk_at: float | None = None

    def _ended(self) -> None:
        """The body was read: a success, as slow as its time to the first chunk."""
        permit = self._permit
        if not permit.done:
            first = self._first_chunk_at
            at = first if first is not None else permit.breaker.clock.now()
            permit.success(duration=at - permit.start)

    def _abandoned(self) -> None:
        if self._permit.done:  # read to the end (or broken) already: closing records nothing
            return
        if self._first_chunk_at is not None:
            self._ended()
        else:
            self._permit.cancel()

    def _broken(self, exc: BaseException) -> None:
        if isinstance(exc, Exception):
            self._permit.record(self._core.exception_verdict(self._permit, exc))
        else:  # GeneratorExit, CancelledError: the reader stopped
            self._abandoned()

    def _stalled(self, limit: float) -> StreamStalledError:
        self._permit.failure("stream_stalled")
        return StreamStalledError(self._permit.breaker.name, limit, self._first_chunk_at is None)


class AsyncObservedStreamLogic(_ObservedStream):
    """Counts a response body as the call's outcome once it has been read (async).

    The stream is its own iterator (``__anext__``), not an async generator, which cost each
    response 0.3 to 0.6 us more (asyncio registers every async generator it starts, for
    finalization). Iterating again goes on where the last iteration stopped."""

    _chunks: AsyncIterator[bytes] | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._chunks is None:
            self._chunks = self._inner.__aiter__()
        return self

    async def __anext__(self) -> bytes:
        chunks = self._chunks if self._chunks is not None else self.__aiter__()
        limits = self._limits
        limit = limits.first_chunk_timeout if self._first_chunk_at is None else limits.chunk_gap_timeout
        try:
            if limit is None:
                chunk: bytes = await chunks.__anext__()
            else:
                deadline = asyncio.timeout(limit)
                try:
                    async with deadline:
                        chunk = await chunks.__anext__()
                except TimeoutError as exc:
                    if not deadline.expired():  # the body's own error, not a stall
                        raise
                    raise self._stalled(limit) from exc
        except StopAsyncIteration:
            self._ended()  # a no-op after the first end: the first outcome counts
            raise
        except BaseException as exc:
            self._broken(exc)  # a no-op after a stall, which counted already
            raise
        if self._first_chunk_at is None:
            self._first_chunk_at = self._permit.breaker.clock.now()
        return chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._abandoned()  # a no-op when the body was read: the first outcome counts


class SyncObservedStreamLogic(_ObservedStream):
    """Counts a response body as the call's outcome once it has been read (sync). A blocking read
    cannot be interrupted, so a stall is detected when the late chunk arrives (the client's read
    timeout bounds the wait)."""

    _chunks: Iterator[bytes] | None = None

    def __iter__(self) -> Iterator[bytes]:
        gap_limit = self._limits.chunk_gap_timeout
        if self._chunks is None:
            self._chunks = iter(self._inner)
        last = self._first_chunk_at or self._permit.start
        try:
            for chunk in self._chunks:
                if self._first_chunk_at is None:
                    arrived = self._permit.breaker.clock.now()
                    limit = self._limits.first_chunk_timeout
                    if limit is not None and arrived - last > limit:
                        raise self._stalled(limit)
                    self._first_chunk_at = last = arrived
                elif gap_limit is not None:  # else no clock read per chunk
                    arrived = self._permit.breaker.clock.now()
                    if arrived - last > gap_limit:
                        raise self._stalled(gap_limit)
                    last = arrived
                yield chunk
        except BaseException as exc:
            self._broken(exc)
            raise
        self._ended()

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._abandoned()


class AsyncTransportLogic:
    """``handle_async_request`` through the routed breaker."""

    _inner: Any
    _core: TransportCore
    _stream_class: type[AsyncObservedStreamLogic]

    async def handle_async_request(self, request: Any) -> Any:
        permit = self._core.admit(request)
        if permit is None:
            return await self._inner.handle_async_request(request)
        try:
            response = await self._inner.handle_async_request(request)
        except BaseException as exc:
            permit.record(self._core.exception_verdict(permit, exc))
            raise
        verdict = self._core.response_verdict(response)
        if verdict is not None:
            permit.record(verdict)
            return response
        response.stream = self._stream_class(response.stream, permit, self._core.stream_limits, self._core)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class SyncTransportLogic:
    """``handle_request`` through the routed breaker."""

    _inner: Any
    _core: TransportCore
    _stream_class: type[SyncObservedStreamLogic]

    def handle_request(self, request: Any) -> Any:
        permit = self._core.admit(request)
        if permit is None:
            return self._inner.handle_request(request)
        try:
            response = self._inner.handle_request(request)
        except BaseException as exc:
            permit.record(self._core.exception_verdict(permit, exc))
            raise
        verdict = self._core.response_verdict(response)
        if verdict is not None:
            permit.record(verdict)
            return response
        response.stream = self._stream_class(response.stream, permit, self._core.stream_limits, self._core)
        return response

    def close(self) -> None:
        self._inner.close()
