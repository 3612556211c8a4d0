"""Circuit-breaker transports for ``httpx``.

>>> import httpx
>>> from breaker import BreakerRegistry
>>> from breaker.integrations.httpx import AsyncBreakerTransport
>>> from breaker.integrations import Route, Router
>>> registry = BreakerRegistry()
>>> openai = registry.service("openai")
>>> chat = registry.endpoint("openai.chat")
>>> router = Router([Route(chat, host="api.openai.com", path="/v1/chat/")], default=openai)
>>> client = httpx.AsyncClient(transport=AsyncBreakerTransport(router))

Pass such a client to an SDK (``http_client=client``). A rejected request raises
:class:`~breaker.CircuitOpenError` from the transport; SDKs wrap what their transport raises
(openai raises ``APIConnectionError`` *from* it: find it with :func:`breaker.rejection_in`) and
retry it unless told not to, so build SDK clients with ``max_retries=0`` behind a breaker: retrying
a dependency that is known to be down only delays the fallback.
"""

from __future__ import annotations

from typing import Any

import httpx

from breaker._classify import Classifier

from ._http import (
    AsyncObservedStreamLogic,
    AsyncTransportLogic,
    Router,
    StreamLimits,
    SyncObservedStreamLogic,
    SyncTransportLogic,
    TransportCore,
)

__all__ = ["AsyncBreakerTransport", "BreakerTransport"]


class _AsyncObservedStream(AsyncObservedStreamLogic, httpx.AsyncByteStream):
    pass


class _SyncObservedStream(SyncObservedStreamLogic, httpx.SyncByteStream):
    pass


class AsyncBreakerTransport(AsyncTransportLogic, httpx.AsyncBaseTransport):
    """Sends each request through the breaker its route picks, over ``inner`` (a new
    ``httpx.AsyncHTTPTransport()`` by default)."""

    _stream_class = _AsyncObservedStream

    def __init__(
        self,
        router: Router,
        inner: httpx.AsyncBaseTransport | None = None,
        *,
        classifier: Classifier | None = None,
        stream_limits: StreamLimits | None = None,
    ) -> None:
        self._inner: Any = inner if inner is not None else httpx.AsyncHTTPTransport()
        self._core = TransportCore(router, classifier, stream_limits or StreamLimits())


class BreakerTransport(SyncTransportLogic, httpx.BaseTransport):
    """The sync twin of :class:`AsyncBreakerTransport`, for ``httpx.Client``."""

    _stream_class = _SyncObservedStream

    def __init__(
        self,
        router: Router,
        inner: httpx.BaseTransport | None = None,
        *,
        classifier: Classifier | None = None,
        stream_limits: StreamLimits | None = None,
    ) -> None:
        self._inner: Any = inner if inner is not None else httpx.HTTPTransport()
        self._core = TransportCore(router, classifier, stream_limits or StreamLimits())
