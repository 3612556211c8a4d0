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
first token came at once. A body of server-sent events (an LLM's streamed answer) states its own
outcome: an error event after the 200 is a failure (``stream_error``), ``data: [DONE]`` a success
whatever becomes of the connection afterwards.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from breakerpanel._breaker import CircuitBreaker, Permit
from breakerpanel._classify import SUCCESS, Classifier, Verdict, classify_safely, failure
from breakerpanel._exceptions import BreakerConfigError, BreakerError
from breakerpanel.presets import TIMEOUT, llm_http

from ._guard import verdict_for

__all__ = ["Route", "Router", "StreamLimits", "StreamStalledError"]


class StreamStalledError(BreakerError, TimeoutError):
    """A streamed response sent no chunk within the configured limit."""

    def __init__(self, breaker_name: str, waited: float, first: bool) -> None:
        what = "the first chunk" if first else "the next chunk"
        super().__init__(f"{breaker_name}: no {what} of the response within {waited:g}s")
        self.breaker_name = breaker_name


def ascii_host(host: str) -> str:
    """A host as it travels: lower case, and an internationalised name in its IDNA (``xn--``)
    form, as httpx encodes it. Routes compare hosts in this form, because the libraries decode
    it back differently (httpx leaves ``api.xn--bcher-kva.de`` encoded, httpx2 decodes it). A
    fully qualified name's final dot (``api.openai.com.``) is dropped: it names the same host."""
    host = host.lower()
    if host.endswith("."):
        host = host[:-1]
    if host.isascii():
        return host
    try:
        import idna  # httpx's own encoder (IDNA 2008); the standard codec is IDNA 2003

        return str(idna.encode(host).decode("ascii"))
    except ImportError:
        return host.encode("idna").decode("ascii")
    except idna.IDNAError:
        return host


@dataclass(frozen=True)
class Route:
    """Requests that go through ``breaker``: by host (exact, case-insensitive, an international
    name in either form, any port; ``None``: any), by path (a prefix, or a compiled regex that
    must match the whole path; ``None``: any) and by method (``None``: any)."""

    breaker: CircuitBreaker
    host: str | None = None
    path: str | re.Pattern[str] | None = None
    methods: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.breaker, CircuitBreaker):
            raise BreakerConfigError("route.breaker", f"expected a CircuitBreaker (got {self.breaker!r})")
        if self.host is not None:
            host = self.host
            if host.startswith("[") and host.endswith("]"):  # an IPv6 literal as URLs write it
                host = host[1:-1]
            if "]:" in host or host.count(":") == 1:  # a port: never part of what a route matches
                raise BreakerConfigError(
                    "route.host", f"a host name without a port (got {self.host!r}): a route matches every port"
                )
            object.__setattr__(self, "host", ascii_host(host))
        if self.methods is not None:
            object.__setattr__(self, "methods", frozenset(m.upper() for m in self.methods))

    def matches(self, method: str, host: str, path: str) -> bool:
        if self.host is not None and ascii_host(host) != self.host:
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
        self._raw_memo: dict[tuple[str, str, str], CircuitBreaker | None] = {}

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
        return self._remember(self._memo, key, breaker)

    def route_url(self, method: str, url: Any) -> CircuitBreaker | None:
        """:meth:`route` for an ``httpx`` (or ``httpx2``) URL. The memo is keyed on the URL's
        parsed, still-encoded host and path: the public ``url.host`` and ``url.path`` decode
        them on every read (about 0.3 us a request in a loop, three times that inside a whole
        request). The answer is the route of the encoded host (which both libraries parse
        alike, where they decode it differently) and the decoded path (which they decode
        alike), so one key has one answer whichever library asked first."""
        try:
            parts = url._uri_reference  # httpx's parse of the URL: a named tuple of str
            key = (method, parts.host, parts.path)
        except AttributeError:  # not there in some httpx: the decoded parts, as route() has
            return self.route(method, url.host, url.path)
        try:
            return self._raw_memo[key]
        except KeyError:
            pass
        return self._remember(self._raw_memo, key, self.route(method, parts.host, url.path))

    def _remember(
        self,
        memo: dict[tuple[str, str, str], CircuitBreaker | None],
        key: tuple[str, str, str],
        breaker: CircuitBreaker | None,
    ) -> CircuitBreaker | None:
        """Keep ``breaker`` as the answer for ``key``, up to MEMO_SIZE answers (then start over)."""
        if len(memo) >= self.MEMO_SIZE:
            memo.clear()
        memo[key] = breaker
        return breaker

    def __repr__(self) -> str:
        return f"Router({len(self.routes)} routes, default={self.default.name if self.default else None})"


@dataclass(frozen=True)
class StreamLimits:
    """Limits on a streamed response: to the first chunk (sync: from the request's start; async:
    from the first read), and from the reader asking for the next chunk to its arrival (the
    reader's own time between chunks does not count). Exceeding one fails the call (type ``stream_stalled``) and raises
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
    """Routing and classification for one transport.

    The transports and streams below read its fields and the permit's directly, and inline what
    would be small methods: inside a whole httpx request (about 90 us of other Python work) the
    same breaker code costs about three times what it does in a loop (a hierarchy's
    ``call`` 2.7 us against 0.75), and each call it saves counts at that rate."""

    def __init__(self, router: Router, classifier: Classifier | None, stream_limits: StreamLimits) -> None:
        if not isinstance(router, Router):
            raise BreakerConfigError("router", f"expected a Router (got {router!r})")
        self.router = router
        self.classifier = classifier if classifier is not None else llm_http()
        # llm_http() has no opinion on a response under 400: the transports answer that without
        # asking it (four calls and a property, on every request).
        self.asks_below_400 = classifier is not None
        self.stream_limits = stream_limits
        # Without a limit, reading a body takes one clock read (at its first chunk).
        self.limited = stream_limits.first_chunk_timeout is not None or stream_limits.chunk_gap_timeout is not None

    def exception_verdict(self, permit: Permit, exc: BaseException) -> Verdict:
        return verdict_for(permit.breaker, self.classifier, exc)


# A body of server-sent events starts with one of its fields, or a comment (":"), after an
# optional byte-order mark and blank lines.
_EVENT_FIELDS = (b"data:", b"event:", b"id:", b"retry:", b":")
# The byte-order mark an event stream may start with (UTF-8's), which the scan drops.
_BOM = b"\xef\xbb\xbf"
# The most of a line's start that _event_outcome reads.
_LONGEST_LINE_START = 32


# The bytes an event stream's first chunk can start with: a field's first letter, a comment, a
# byte-order mark, a line end. Any other (a JSON body's "{") settles it at one lookup.
_EVENT_LEADS = frozenset(b"deir:\xef\r\n")


def _opens_events(chunk: bytes) -> bool:
    """Whether a body's first (non-empty) chunk starts a stream of server-sent events (a first
    chunk cut inside its first field's name counts: ``b"ev"``)."""
    if chunk[0] not in _EVENT_LEADS:  # the usual case: most bodies are JSON
        return False
    if chunk.startswith(_EVENT_FIELDS) or _BOM.startswith(chunk):  # a mark cut short: as a mark alone
        return True
    head = chunk.removeprefix(_BOM).lstrip(b"\r\n")
    # Only a mark or line ends so far: read as events (a JSON body does not start so), which
    # lets the next chunk's first field count.
    return not head or any(field.startswith(head[: len(field)]) for field in _EVENT_FIELDS)


# Up to this many bytes, the scan splits a chunk into its lines; past it (a decompression bomb
# can make a chunk a million line ends), it finds the lines that tell an outcome by a regex,
# anchored on the line end before them (a regex on the line start alone tried every byte: 2.4x
# slower on a chunk of one event).
_SPLIT_AT_MOST = 1 << 16
_OUTCOME_LINES = re.compile(rb"\n(?:event|data):")
_OUTCOME_FIELDS = (b"event:", b"data:")


def _event_outcome(line: bytes) -> bool | None:
    """What one line of an event stream says of the call: False for an error event (Anthropic
    names the event ``error``; OpenAI sends the error as the data of an unnamed one), True for
    ``data: [DONE]``, None for anything else. A field's value may follow one space or none."""
    if line.startswith(b"event:"):
        return False if line[6:].strip() == b"error" else None
    if not line.startswith(b"data:"):
        return None
    value = line[5:].lstrip(b" ")
    if value.startswith(b"[DONE]"):
        return True
    if value.startswith((b'{"error"', b'{"type":"error"', b'{"type": "error"')):
        return False
    return None


class _ObservedStream(Permit):
    """What the async and sync stream wrappers share: the state of one response body, and the
    permit of its request (one object a request: the transport builds it before sending, and
    records an error or an error status through it before any body exists).

    The state lives on the object, not in the iterator, because readers may iterate more than
    once (the openai SDK stops at ``[DONE]`` and later drains the rest with a new iterator).
    A reader that stops after the first chunk is not a failure of the dependency, which answered:
    it counts as a success; one that stops before any chunk counts as nothing.
    """

    _inner: Any  # the response's own stream, set once the response has come
    _headers: Any = None  # the response's headers, set with _inner
    _response_class: Any  # the library's Response: it builds the decoder of a compressed body
    # For a body of server-sent events (an LLM's streamed answer): the start of its last line,
    # not yet ended by a newline. None for any other body, which is not scanned.
    _events: bytes | None = None
    # For an event stream a gateway compressed: a decoder of the body, as the reader's library
    # builds it for the reader (the same encodings, and as many).
    _decoder: Any = None
    # Whether the scan has yet to pass the stream's first bytes (a byte-order mark to drop, which
    # the first chunks, or the first decoded pieces, may cut anywhere).
    _at_start = True

    def __init__(self, breaker: CircuitBreaker, token: int, start: float, core: TransportCore) -> None:
        # Permit's fields set here, not by Permit.__init__: a call less on every request.
        self._breaker = breaker
        self._token = token
        self._done = False
        self.start = start
        self._core = core
        self._first_chunk_at: float | None = None

    def _ended(self) -> None:
        """The body was read: a success, as slow as its time to the first chunk. The callers
        skip it once an outcome has counted (the permit would ignore a second one anyway)."""
        # Permit.record(SUCCESS, duration=...) inlined: inside a whole request the call costs
        # about 1 us (measured with bench/overhead.py's transport rows).
        if self._done:
            return
        self._done = True
        breaker = self._breaker
        end = breaker._now()
        start = self.start
        first = self._first_chunk_at
        duration = (first if first is not None else end) - start
        if not breaker._fast_success(start, end, duration):
            breaker._record(self._token, SUCCESS, duration, end)

    def _abandoned(self) -> None:
        """Closed: after a chunk a success, before any neither success nor failure (the reader
        stopped, the dependency may have been fine). Skipped, as ``_ended``, once one counted."""
        if self._first_chunk_at is not None:
            self._ended()
        else:
            self.cancel()

    def _broken(self, exc: BaseException) -> None:
        if isinstance(exc, Exception):
            self.record(self._core.exception_verdict(self, exc))
        elif not self._done:  # GeneratorExit, CancelledError: the reader stopped
            self._abandoned()

    def _first(self, chunk: bytes) -> None:
        """The first chunk came: its time, and whether the body is a stream of server-sent
        events: told by its first field, without a header lookup on every response; a body that
        starts as neither events nor a JSON object may be events a gateway compressed (its
        headers tell)."""
        self._first_chunk_at = self._breaker._now()
        if _opens_events(chunk):
            self._events = b""
            self._scan(chunk)
        elif chunk[0] != 0x7B and self._headers is not None:  # "{": JSON, at one comparison
            self._decode_events(chunk)

    def _decode_events(self, chunk: bytes) -> None:
        """Scan a compressed body when its headers say it is an event stream: decoded by a
        decoder the reader's library builds as it builds the reader's (from a response with the
        same headers), so the scan reads what the caller reads. A body whose encoding the library
        does not decode is not scanned."""
        headers = self._headers
        try:
            if "content-encoding" not in headers:
                return
            if not headers.get("content-type", "").lower().startswith("text/event-stream"):
                return
            decoder = self._response_class(200, headers=headers)._get_content_decoder()
        except Exception:  # a library without that method: no scan, as before
            return
        if type(decoder).__name__ == "IdentityDecoder":  # no encoding it decodes
            return
        self._decoder, self._events = decoder, b""
        self._scan(chunk)

    def _scan(self, chunk: bytes) -> None:
        """Read the events' lines for the two outcomes an SSE body states itself: an error event
        after the 200 (Anthropic's ``event: error``, OpenAI's ``data: {"error": ...}``), which the
        SDK raises to its caller, is a failure; ``data: [DONE]`` is the answer complete, a
        success whatever happens to the connection afterwards. The first outcome ends the scan.

        Nothing it raises reaches the reader: a body that does not decode, or a chunk too large
        to copy, ends the scan, and the reader's own decoding decides what the caller sees."""
        try:
            if self._decoder is None:
                outcome = self._outcome_in(chunk)
            else:
                outcome = None
                decoded = self._decoder.decode(chunk)  # httpx2 yields it in bounded pieces
                for piece in (decoded,) if isinstance(decoded, bytes) else decoded:
                    outcome = self._outcome_in(piece)
                    if outcome is not None:
                        break
        except Exception:
            self._events = self._decoder = None
            return
        if outcome is None:
            return
        self._events = self._decoder = None  # the first outcome counts: nothing more to read
        if not self._done:
            if outcome:
                self._ended()
            else:
                self.failure("stream_error")

    def _outcome_in(self, chunk: bytes) -> bool | None:
        """The first outcome the complete lines of ``_events + chunk`` state (see _event_outcome);
        the last line's start waits in ``_events`` for its end."""
        assert self._events is not None
        data = self._events + chunk
        if self._at_start:
            if len(data) < len(_BOM) and _BOM.startswith(data):  # maybe a mark, cut short
                self._events = data
                return None
            self._at_start = False
            data = data.removeprefix(_BOM)
        data = data.replace(b"\r", b"\n")  # CRLF, CR or LF
        if len(data) <= _SPLIT_AT_MOST:
            lines = data.split(b"\n")
            self._events = lines.pop()[:_LONGEST_LINE_START]  # only a line's start is ever read
            for line in lines:
                outcome = _event_outcome(line)
                if outcome is not None:
                    return outcome
            return None
        end = data.rfind(b"\n") + 1
        self._events = data[end : end + _LONGEST_LINE_START]
        starts = [0] if end and data.startswith(_OUTCOME_FIELDS) else []  # the first line, if complete
        for start in (*starts, *(m.start() + 1 for m in _OUTCOME_LINES.finditer(data, 0, end))):
            line = data[start : start + _LONGEST_LINE_START].split(b"\n", 1)[0]
            outcome = _event_outcome(line)
            if outcome is not None:
                return outcome
        return None

    def _stalled(self, limit: float) -> StreamStalledError:
        self.failure("stream_stalled")
        return StreamStalledError(self._breaker.name, limit, self._first_chunk_at is None)

    def _limit(self) -> float | None:
        """The limit on the wait for the next chunk (``None``: none)."""
        limits = self._core.stream_limits
        return limits.first_chunk_timeout if self._first_chunk_at is None else limits.chunk_gap_timeout


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
        chunks = self._chunks
        if chunks is None:
            chunks = self._chunks = self._inner.__aiter__()
        limit = self._limit() if self._core.limited else None
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
            if not self._done:  # else the first outcome counted already
                self._ended()
            raise
        except BaseException as exc:
            self._broken(exc)  # a no-op after a stall, which counted already
            raise
        if self._first_chunk_at is None:
            if chunk:  # an empty chunk is no answer yet, and tells nothing of the body
                self._first(chunk)
        elif self._events is not None:
            self._scan(chunk)
        return chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if not self._done:  # else the body was read: the first outcome counts
                self._abandoned()


class SyncObservedStreamLogic(_ObservedStream):
    """Counts a response body as the call's outcome once it has been read (sync). A blocking read
    cannot be interrupted, so a stall is detected when the late chunk arrives (the client's read
    timeout bounds the wait).

    Iterating again goes on where the last iteration stopped. An iteration dropped or closed
    midway (``GeneratorExit``) counts as the reader stopping there: httpx's ``iter_raw`` does not
    close the response when its reader breaks off, and a permit unrecorded until someone closes
    it would hold a half-open breaker's probe. A generator, not an iterator object: its end
    costs no StopIteration raised and caught in Python (1 to 4 us a response, measured)."""

    _chunks: Iterator[bytes] | None = None
    _closed = False

    def __iter__(self) -> Iterator[bytes]:
        chunks = self._chunks
        if chunks is None:
            chunks = self._chunks = iter(self._inner)
        now = self._breaker._now
        try:
            if not self._core.limited:
                for chunk in chunks:
                    if self._first_chunk_at is None:
                        if chunk:  # an empty chunk is no answer yet, and tells nothing of the body
                            self._first(chunk)
                    elif self._events is not None:
                        self._scan(chunk)
                    yield chunk
            else:
                limits = self._core.stream_limits
                gap_limit = limits.chunk_gap_timeout
                # The wait for the first chunk starts with the request, for a later one when the
                # reader asks for it: its own time between chunks (or between two iterations) is
                # not the dependency's, as the async stream's limit does not count it either.
                asked = self.start if self._first_chunk_at is None else now()
                for chunk in chunks:
                    if self._first_chunk_at is None:
                        limit = limits.first_chunk_timeout
                        if limit is not None and now() - asked > limit:
                            raise self._stalled(limit)
                        if chunk:
                            self._first(chunk)
                    else:
                        if gap_limit is not None and now() - asked > gap_limit:
                            raise self._stalled(gap_limit)
                        if self._events is not None:
                            self._scan(chunk)
                    yield chunk
                    if gap_limit is not None:  # else no clock read per chunk after the first
                        asked = now()
        except BaseException as exc:
            self._broken(exc)
            raise
        if not self._done:  # else the first outcome counted already
            self._ended()

    def close(self) -> None:
        if self._closed:  # once, however many times httpx closes it
            return
        self._closed = True
        try:
            self._inner.close()
        finally:
            if not self._done:  # else the body was read: the first outcome counts
                self._abandoned()


class AsyncTransportLogic:
    """``handle_async_request`` through the routed breaker."""

    _inner: Any
    _core: TransportCore
    _stream_class: type[AsyncObservedStreamLogic]

    async def handle_async_request(self, request: Any) -> Any:
        core = self._core
        breaker = core.router.route_url(request.method, request.url)
        if breaker is None:
            return await self._inner.handle_async_request(request)
        gen = breaker._closed_gen  # acquire() inlined: the stream is the permit
        if gen < 0:
            gen = breaker._admit()
        stream = self._stream_class(breaker, gen, breaker._now(), core)
        try:
            if breaker._timeout is None:
                response = await self._inner.handle_async_request(request)
            else:  # the endpoint's call_timeout bounds the wait for the headers (StreamLimits, the body)
                response = await breaker._await_with_timeout(self._inner.handle_async_request(request))
        except BaseException as exc:
            stream.record(core.exception_verdict(stream, exc))
            raise
        if core.asks_below_400 or response.status_code >= 400:  # else the body decides
            verdict = classify_safely(core.classifier, None, response, breaker.name)
            if verdict is not None:
                stream.record(verdict)
                return response
        if response.is_closed:  # its body read already (built with content=, as mock transports do)
            stream.record(SUCCESS)
            return response
        stream._inner, stream._headers = response.stream, response.headers
        response.stream = stream
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class SyncTransportLogic:
    """``handle_request`` through the routed breaker."""

    _inner: Any
    _core: TransportCore
    _stream_class: type[SyncObservedStreamLogic]

    def handle_request(self, request: Any) -> Any:
        core = self._core
        breaker = core.router.route_url(request.method, request.url)
        if breaker is None:
            return self._inner.handle_request(request)
        gen = breaker._closed_gen  # acquire() inlined: the stream is the permit
        if gen < 0:
            gen = breaker._admit()
        stream = self._stream_class(breaker, gen, breaker._now(), core)
        try:
            response = self._inner.handle_request(request)
        except BaseException as exc:
            stream.record(core.exception_verdict(stream, exc))
            raise
        timeout = breaker._timeout
        if timeout is not None and breaker._now() - stream.start >= timeout:
            # A sync request cannot be interrupted (as call()): headers that came after the
            # endpoint's call_timeout are returned, and counted as a timeout.
            stream.record(failure(TIMEOUT))
            return response
        if core.asks_below_400 or response.status_code >= 400:  # else the body decides
            verdict = classify_safely(core.classifier, None, response, breaker.name)
            if verdict is not None:
                stream.record(verdict)
                return response
        if response.is_closed:  # its body read already (built with content=, as mock transports do)
            stream.record(SUCCESS)
            return response
        stream._inner, stream._headers = response.stream, response.headers
        response.stream = stream
        return response

    def close(self) -> None:
        self._inner.close()
