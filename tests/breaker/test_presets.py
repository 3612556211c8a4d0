"""The classification presets, against the real exception classes of httpx, httpx2, the SDKs,
redis-py, asyncpg and SQLAlchemy (constructed here; the integration tests raise them for real)."""

from __future__ import annotations

import email.utils
from typing import Any

import anthropic
import asyncpg
import httpx
import httpx2
import openai
import pytest
import redis.exceptions
import sqlalchemy.exc
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from breakerpanel import IGNORED, CircuitOpenError, RejectionReason, State, Verdict, VerdictKind, failure
from breakerpanel.presets import (
    http_exceptions,
    http_responses,
    llm_http,
    parse_retry_after,
    postgres_errors,
    redis_errors,
)


def response(lib: Any, status: int, headers: dict[str, str] | None = None) -> Any:
    return lib.Response(status, headers=headers or {}, request=lib.Request("POST", "https://api.example/v1/x"))


@pytest.mark.parametrize("lib", [httpx, httpx2])
@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, None),
        (204, None),
        (400, IGNORED),
        (404, IGNORED),
        (413, IGNORED),
        (422, IGNORED),
        (401, failure("auth")),
        (403, failure("auth")),
        (408, failure("timeout")),
        (500, failure("500")),
        (502, failure("502")),
        (503, failure("503")),
        (504, failure("504")),
        (529, failure("529")),
    ],
)
def test_http_responses_by_status(lib: Any, status: int, expected: Verdict | None) -> None:
    assert http_responses()(None, response(lib, status)) == expected


@pytest.mark.parametrize("lib", [httpx, httpx2])
def test_429_honours_retry_after(lib: Any) -> None:
    classify = llm_http()
    assert classify(None, response(lib, 429, {"retry-after": "7"})) == Verdict(
        VerdictKind.RATE_LIMITED, "rate_limited", 7.0
    )
    assert classify(None, response(lib, 429, {"retry-after-ms": "1500", "retry-after": "9"})).retry_after == 1.5
    assert classify(None, response(lib, 429)).retry_after is None  # the breaker counts it as a failure then


def test_retry_after_as_http_date_and_garbage() -> None:
    at = 1_000_000.0
    date = email.utils.formatdate(at + 30, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=lambda: at) == pytest.approx(30, abs=1)
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after": "-5"}) == 0.0


def test_auth_errors_can_be_ignored() -> None:
    assert http_responses(auth="ignore")(None, response(httpx, 401)) is IGNORED


def _openai_error(cls: type[openai.APIStatusError], status: int, headers: dict[str, str] | None = None) -> Any:
    return cls("boom", response=response(httpx2, status, headers), body=None)


def test_sdk_status_errors() -> None:
    classify = http_exceptions()
    assert classify(_openai_error(openai.RateLimitError, 429, {"retry-after": "3"}), None).retry_after == 3.0
    assert classify(_openai_error(openai.InternalServerError, 503), None) == failure("503")
    assert classify(_openai_error(openai.BadRequestError, 400), None) is IGNORED  # context length, content filter
    assert classify(_openai_error(openai.AuthenticationError, 401), None) == failure("auth")
    overloaded = anthropic.OverloadedError("overloaded", response=response(httpx2, 529), body=None)
    assert classify(overloaded, None) == failure("529")
    qdrant_404 = UnexpectedResponse(404, "Not Found", b"{}", httpx.Headers())
    assert classify(qdrant_404, None) is IGNORED


def test_timeouts_and_connection_errors_by_shape() -> None:
    classify = http_exceptions()
    request = httpx2.Request("GET", "https://x")
    assert classify(openai.APITimeoutError(request=request), None) == failure("timeout")
    assert classify(openai.APIConnectionError(request=request), None) == failure("connection_error")
    assert classify(httpx.ReadTimeout("slow"), None) == failure("timeout")
    assert classify(httpx2.ConnectError("refused"), None) == failure("connection_error")
    assert classify(httpx.RemoteProtocolError("peer closed"), None) == failure("connection_error")
    assert classify(ResponseHandlingException(ConnectionRefusedError()), None) == failure("connection_error")
    assert classify(ConnectionRefusedError(), None) == failure("connection_error")
    assert classify(ValueError("mine"), None) is None  # no opinion: the breaker's default decides


@pytest.mark.parametrize("lib", [httpx, httpx2])
def test_a_request_the_client_refuses_to_send_is_the_callers_error(lib: Any) -> None:
    # An illegal header value (an API key with a trailing newline, a caller's input in a
    # header), a URL or a scheme the client cannot use: nothing reached the dependency, and
    # four such calls opened a healthy provider's breaker for every other caller.
    classify = llm_http()
    assert classify(lib.LocalProtocolError("Illegal header value b'k\\n'"), None) == IGNORED
    assert classify(lib.UnsupportedProtocol("Request URL has an unsupported protocol 'htp://'"), None) == IGNORED
    assert classify(lib.InvalidURL("Invalid port: 'x'"), None) == IGNORED
    assert classify(lib.RemoteProtocolError("peer closed"), None) == failure("connection_error")


def test_a_rejection_by_another_breaker_is_not_counted_again() -> None:
    rejection = CircuitOpenError("openai.chat", State.OPEN, RejectionReason.OPEN, 3.0)
    wrapped = openai.APIConnectionError(request=httpx2.Request("GET", "https://x"))
    wrapped.__cause__ = rejection
    assert http_exceptions()(wrapped, None) is IGNORED
    assert redis_errors()(wrapped, None) is IGNORED
    assert postgres_errors()(wrapped, None) is IGNORED


def test_redis_errors() -> None:
    classify = redis_errors()
    assert classify(redis.exceptions.ConnectionError("refused"), None) == failure("connection_error")
    assert classify(redis.exceptions.TimeoutError("slow"), None) == failure("timeout")
    assert classify(redis.exceptions.BusyLoadingError("loading"), None) == failure("loading")
    assert classify(redis.exceptions.AuthenticationError("no"), None) == failure("auth")
    assert classify(redis.exceptions.ReadOnlyError("replica"), None) == failure("read_only")
    assert classify(redis.exceptions.ResponseError("WRONGTYPE"), None) is IGNORED
    assert classify(redis.exceptions.DataError("bad arg"), None) is IGNORED


def test_postgres_errors_by_sqlstate() -> None:
    classify = postgres_errors()
    assert classify(asyncpg.TooManyConnectionsError("too many"), None) == failure("too_many_connections")
    assert classify(asyncpg.AdminShutdownError("shutdown"), None) == failure("admin_shutdown")
    assert classify(asyncpg.CannotConnectNowError("starting"), None) == failure("cannot_connect_now")
    assert classify(asyncpg.ConnectionDoesNotExistError("gone"), None) == failure("connection_error")
    assert classify(asyncpg.QueryCanceledError("statement timeout"), None) == failure("timeout")
    assert classify(asyncpg.UniqueViolationError("dup"), None) is IGNORED
    assert classify(asyncpg.PostgresSyntaxError("syntax"), None) is IGNORED
    assert classify(asyncpg.UndefinedTableError("no table"), None) is IGNORED
    assert classify(asyncpg.SerializationError("conflict"), None) is IGNORED
    assert classify(ConnectionRefusedError(), None) == failure("connection_error")
    assert classify(TimeoutError(), None) == failure("timeout")


def test_postgres_errors_through_sqlalchemy_wrapping() -> None:
    classify = postgres_errors()

    class AdaptedError(Exception):  # what SQLAlchemy's asyncpg adapter raises: .sqlstate copied
        sqlstate = "57P01"

    wrapped = sqlalchemy.exc.OperationalError("SELECT 1", {}, AdaptedError("terminating connection"))
    assert classify(wrapped, None) == failure("admin_shutdown")

    class Duplicate(Exception):
        sqlstate = "23505"

    assert classify(sqlalchemy.exc.IntegrityError("INSERT", {}, Duplicate()), None) is IGNORED
    refused = sqlalchemy.exc.OperationalError("connect", {}, ConnectionRefusedError())
    assert classify(refused, None) == failure("connection_error")
