"""Circuit-breaker transports for ``httpx``.

>>> import httpx
>>> from breakerpanel import BreakerRegistry
>>> from breakerpanel.integrations.httpx import AsyncBreakerTransport
>>> from breakerpanel.integrations import Route, Router
>>> registry = BreakerRegistry()
>>> openai = registry.service("openai")
>>> chat = registry.endpoint("openai.chat")
>>> router = Router([Route(chat, host="api.openai.com", path="/v1/chat/")], default=openai)
>>> client = httpx.AsyncClient(transport=AsyncBreakerTransport(router))

Pass such a client to an SDK (``http_client=client``). A rejected request raises
:class:`~breakerpanel.CircuitOpenError` from the transport, before anything is sent. openai 3.x
lets it through unchanged and unretried; anthropic 2.x (and older SDKs) wrap it in
``APIConnectionError`` *from* it, and retry it unless ``max_retries=0``; qdrant-client wraps it in
``ResponseHandlingException``: :func:`breakerpanel.rejection_in` finds it in each. Build SDK clients with
``max_retries=0`` behind a breaker: the SDK's retries of 5xx and 429 would each count as a call,
and waiting to retry a dependency that is known to be failing only delays the fallback.
"""

from __future__ import annotations

from typing import Any

from breakerpanel._extras import require as require_extra

# A missing extra: one line naming it, not a bare ModuleNotFoundError from below.
require_extra("breakerpanel.integrations.httpx", "httpx", "httpx")

import httpx

from breakerpanel._classify import Classifier

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
    _response_class = httpx.Response


class _SyncObservedStream(SyncObservedStreamLogic, httpx.SyncByteStream):
    _response_class = httpx.Response


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
