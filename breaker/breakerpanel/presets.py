"""Classification presets for the HTTP APIs of LLM providers and vector databases.

An outage is a dependency that cannot answer; a bad request is the caller's mistake. These presets
tell them apart for OpenAI, Anthropic, Qdrant and any other HTTP API, whether the breaker sees a
raw HTTP response (the transport integrations) or the exception an SDK raised from one:

======================================  ==============================================
what happened                           verdict
======================================  ==============================================
429                                     rate limited, for ``Retry-After`` (or
                                        ``retry-after-ms``) seconds when given
500, 502, 503, 504, 529 (overloaded)    failure, typed by the status code
408                                     failure of type ``timeout``
connection refused, reset, broken       failure of type ``connection_error``
a timeout                               failure of type ``timeout``
401, 403                                failure of type ``auth`` (or ignored: ``auth="ignore"``)
400, 404, 413, 422 and other 4xx        ignored: context length exceeded, content
                                        filtered, unknown model are the caller's
a rejection by another breaker          ignored here (that breaker counts it)
======================================  ==============================================

Exceptions are recognised by shape, not by import, so the presets work with ``httpx``, ``httpx2``
and the SDKs built on either without depending on any of them: an exception with an integer
``status_code`` is classified by it; exception classes named like timeouts or connection errors
(``ReadTimeout``, ``APITimeoutError``, ``ConnectError``, ``RemoteProtocolError``,
``APIConnectionError``...) anywhere in the class hierarchy are what they say.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

from ._classify import IGNORED, Classifier, Verdict, failure, rate_limited
from ._exceptions import rejection_in

__all__ = [
    "CONNECTION_ERROR",
    "TIMEOUT",
    "http_exceptions",
    "http_responses",
    "http_status_verdict",
    "llm_http",
    "parse_retry_after",
    "postgres_errors",
    "redis_errors",
]

TIMEOUT = "timeout"
CONNECTION_ERROR = "connection_error"

_FAILING_STATUSES = frozenset({500, 502, 503, 504, 529})
_TIMEOUT_NAMES = ("Timeout",)  # ReadTimeout, ConnectTimeout, PoolTimeout, APITimeoutError, TimeoutError
_CONNECTION_NAMES = (
    "ConnectError",
    "ConnectionError",
    "NetworkError",
    "ReadError",
    "WriteError",
    "CloseError",
    "RemoteProtocolError",
    "ProtocolError",
    "ProxyError",
    "APIConnectionError",
    "ResponseHandlingException",
)

# Errors raised before a request leaves the client: a header value it may not send, a URL it
# cannot parse, a scheme it has no transport for. The caller's mistake, not the dependency's:
# ignored, as a 400 is, so that one caller's bad input does not open the breaker for everyone
# (LocalProtocolError is a ProtocolError, which would otherwise count as a connection error).
_CALLER_NAMES = ("LocalProtocolError", "UnsupportedProtocol", "InvalidURL")

AuthPolicy = Literal["failure", "ignore"]


def parse_retry_after(headers: Mapping[str, str] | Any, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a response's headers: ``retry-after-ms`` (OpenAI, Anthropic) first,
    then ``Retry-After`` as seconds or as an HTTP date. ``None`` when absent or unreadable."""
    try:
        millis = headers.get("retry-after-ms")
        if millis is not None:
            return max(0.0, float(millis) / 1000)
        value = headers.get("retry-after")
    except (AttributeError, TypeError, ValueError):
        return None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now())


def http_status_verdict(status: int, headers: Any = None, *, auth: AuthPolicy = "failure") -> Verdict | None:
    """The verdict for an HTTP status code; ``None`` for success (no opinion)."""
    if status < 400:
        return None
    if status == 429:
        return rate_limited(parse_retry_after(headers) if headers is not None else None)
    if status in _FAILING_STATUSES:
        return failure(str(status))
    if status == 408:
        return failure(TIMEOUT)
    if status in (401, 403):
        return failure("auth") if auth == "failure" else IGNORED
    if status < 500:
        return IGNORED
    return failure(str(status))


def _class_names(exc: BaseException) -> list[str]:
    return [cls.__name__ for cls in type(exc).__mro__]


class _ExceptionPreset(Classifier):
    """What the exception presets share: no opinion on results, and a rejection by another
    breaker found in the exception's chain is ignored (that breaker counts it)."""

    inspects_results = False

    def __call__(self, exc: BaseException | None, result: Any) -> Verdict | None:
        if exc is None:
            return None
        if rejection_in(exc) is not None:
            return IGNORED
        return self.classify(exc)

    def classify(self, exc: BaseException) -> Verdict | None:
        raise NotImplementedError


class _HttpExceptions(_ExceptionPreset):
    def __init__(self, auth: AuthPolicy) -> None:
        self.auth = auth

    def classify(self, exc: BaseException) -> Verdict | None:
        status = getattr(exc, "status_code", None)
        if isinstance(status, int) and not isinstance(status, bool):
            response = getattr(exc, "response", None)
            headers = getattr(response, "headers", None) or getattr(exc, "headers", None)
            return http_status_verdict(status, headers, auth=self.auth) or IGNORED
        names = _class_names(exc)
        if any(name in _CALLER_NAMES for name in names):
            return IGNORED
        if any(marker in name for name in names for marker in _TIMEOUT_NAMES):
            return failure(TIMEOUT)
        if any(name in _CONNECTION_NAMES for name in names) or isinstance(exc, OSError):
            return failure(CONNECTION_ERROR)
        return None

    def __repr__(self) -> str:
        return f"http_exceptions(auth={self.auth!r})"


class _HttpResponses(Classifier):
    inspects_results = True

    def __init__(self, auth: AuthPolicy) -> None:
        self.auth = auth

    def __call__(self, exc: BaseException | None, result: Any) -> Verdict | None:
        if exc is not None:
            return None
        status = getattr(result, "status_code", None)
        if not isinstance(status, int) or isinstance(status, bool):
            return None
        return http_status_verdict(status, getattr(result, "headers", None), auth=self.auth)

    def __repr__(self) -> str:
        return f"http_responses(auth={self.auth!r})"


def http_exceptions(*, auth: AuthPolicy = "failure") -> Classifier:
    """Classifies exceptions: SDK status errors (``openai.RateLimitError``,
    ``anthropic.OverloadedError``, qdrant's ``UnexpectedResponse``), timeouts and connection
    errors. Looks at exceptions only, so a breaker using it keeps its lock-free success path."""
    return _HttpExceptions(auth)


def http_responses(*, auth: AuthPolicy = "failure") -> Classifier:
    """Classifies returned HTTP responses (anything with ``status_code`` and ``headers``)."""
    return _HttpResponses(auth)


def llm_http(*, auth: AuthPolicy = "failure") -> Classifier:
    """Both: the preset for breakers around LLM and vector-database HTTP APIs."""
    return http_exceptions(auth=auth) | http_responses(auth=auth)


# ---------------------------------------------------------------------- Redis and PostgreSQL


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, what it wraps (SQLAlchemy's ``orig``), and its causes and contexts."""
    found: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending:
        item = pending.pop(0)
        if item is None or any(item is seen for seen in found):
            continue
        found.append(item)
        orig = getattr(item, "orig", None)
        pending.extend([orig if isinstance(orig, BaseException) else None, item.__cause__, item.__context__])
    return found


class _RedisErrors(_ExceptionPreset):
    """redis-py: connection errors, timeouts, loading and cluster-down fail; a command Redis
    refused (``ResponseError``: wrong type, unknown command) is the caller's mistake, and so is a
    watched key another client changed (``WatchError``: optimistic locking at work, which
    ``Redis.transaction()`` retries)."""

    def classify(self, exc: BaseException) -> Verdict | None:
        names = _class_names(exc)
        from_redis = type(exc).__module__.startswith("redis")
        if from_redis and "WatchError" in names:
            return IGNORED
        if "AuthenticationError" in names or "AuthenticationWrongNumberOfArgsError" in names:
            return failure("auth")
        if "BusyLoadingError" in names:
            return failure("loading")
        if "ClusterDownError" in names or "MasterDownError" in names or "TryAgainError" in names:
            return failure("cluster_down")
        if "ReadOnlyError" in names:
            return failure("read_only")
        if any(marker in name for name in names for marker in _TIMEOUT_NAMES):
            return failure(TIMEOUT)
        if "ConnectionError" in names or isinstance(exc, OSError):
            return failure(CONNECTION_ERROR)
        if from_redis and ("ResponseError" in names or "DataError" in names):
            return IGNORED
        return None

    def __repr__(self) -> str:
        return "redis_errors()"


# SQLSTATE classes that say the server is unavailable, rather than that the query was wrong.
_PG_FAILING_CLASSES = {
    "08": CONNECTION_ERROR,  # connection exception
    "53": "insufficient_resources",  # too many connections, out of memory or disk
    "57": "operator_intervention",  # admin shutdown, crash shutdown, cannot connect now
    "58": "system_error",
    "XX": "internal_error",
}
_PG_NAMED = {
    "53300": "too_many_connections",
    "57P01": "admin_shutdown",
    "57P03": "cannot_connect_now",
    "57014": TIMEOUT,
}


# asyncpg's words for a connection that is gone (see _PostgresErrors).
_LOST_CONNECTION = re.compile(r"connection is closed|connection has been released back to the pool")


class _PostgresErrors(_ExceptionPreset):
    """asyncpg and SQLAlchemy: SQLSTATE classes 08, 53, 57, 58, XX fail (connection lost, too many
    connections, admin shutdown); integrity, syntax, data and transaction-conflict errors (23, 42,
    22, 40...) are the caller's. Connection errors without a SQLSTATE fail too."""

    def classify(self, exc: BaseException) -> Verdict | None:
        chain = _chain(exc)
        for item in chain:
            sqlstate = getattr(item, "sqlstate", None) or getattr(item, "pgcode", None)
            if isinstance(sqlstate, str) and len(sqlstate) == 5:
                named = _PG_NAMED.get(sqlstate)
                if named is not None:
                    return failure(named)
                kind = _PG_FAILING_CLASSES.get(sqlstate[:2])
                return failure(kind) if kind is not None else IGNORED
        for item in chain:
            names = _class_names(item)
            if any(marker in name for name in names for marker in _TIMEOUT_NAMES):
                return failure(TIMEOUT)
            if (
                isinstance(item, OSError | ConnectionError)
                or "ConnectionDoesNotExistError" in names
                or "InternalClientError" in names
                or ("OperationalError" in names and "sqlalchemy" in type(item).__module__)
                # A pooled connection the server ended (a restart, a failover, an administrator):
                # asyncpg says it is closed, or, once its pool has noticed and taken it back, that
                # it was released to the pool; SQLAlchemy invalidates it.
                or ("InterfaceError" in names and _LOST_CONNECTION.search(str(item)) is not None)
                or getattr(item, "connection_invalidated", False) is True
            ):
                return failure(CONNECTION_ERROR)
        if any(n in ("InterfaceError", "DBAPIError", "StatementError") for i in chain for n in _class_names(i)):
            return IGNORED  # a misused client or a bad statement
        return None

    def __repr__(self) -> str:
        return "postgres_errors()"


def redis_errors() -> Classifier:
    """The preset for breakers around redis-py clients."""
    return _RedisErrors()


def postgres_errors() -> Classifier:
    """The preset for breakers around asyncpg and SQLAlchemy."""
    return _PostgresErrors()
