"""One guarded call for the client integrations (Redis, asyncpg, SQLAlchemy).

The integration's own classifier decides what a driver error means (a Redis ``ResponseError`` is
the caller's, a refused connection is the dependency's), whatever classifier the breaker was
built with; what it has no opinion on falls to the breaker's. Failures are re-raised as
:class:`~breakerpanel.DependencyError` from the driver's error, so callers of a protected client see
breaker errors only: ``CircuitOpenError`` when it is open, ``DependencyError`` when a call failed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from breakerpanel._breaker import CircuitBreaker, Permit
from breakerpanel._classify import Classifier, Verdict, VerdictKind, classify_safely
from breakerpanel._exceptions import BreakerError, DependencyError

T = TypeVar("T")

_COUNTS_AGAINST = (VerdictKind.FAILURE, VerdictKind.RATE_LIMITED)


def verdict_for(breaker: CircuitBreaker, classifier: Classifier, exc: BaseException) -> Verdict:
    if isinstance(exc, Exception):
        verdict = classify_safely(classifier, exc, None, breaker.name)
        if verdict is not None:
            return verdict
    return breaker.classify_exception(exc)


def translated(breaker: CircuitBreaker, verdict: Verdict, exc: BaseException, translate: bool) -> BaseException:
    """The error the caller should see for ``exc``."""
    if not translate or not isinstance(exc, Exception) or isinstance(exc, BreakerError):
        return exc
    if verdict.kind not in _COUNTS_AGAINST:
        return exc
    error = DependencyError(breaker.name, verdict.error_type or "failure", str(exc) or type(exc).__name__)
    error.__cause__ = exc
    return error


async def guarded(
    breaker: CircuitBreaker,
    classifier: Classifier,
    translate: bool,
    fn: Callable[..., Awaitable[T]],
    *args: Any,
    **kwargs: Any,
) -> T:
    permit = breaker.acquire()
    try:
        result = await fn(*args, **kwargs)
    except BaseException as exc:
        verdict = verdict_for(breaker, classifier, exc)
        permit.record(verdict)
        error = translated(breaker, verdict, exc, translate)
        if error is exc:
            raise
        raise error from exc
    permit.success()
    return result


def record_exception(permit: Permit, classifier: Classifier, exc: BaseException, translate: bool) -> BaseException:
    """Record ``exc`` on ``permit`` and return what the caller should see."""
    verdict = verdict_for(permit.breaker, classifier, exc)
    permit.record(verdict)
    return translated(permit.breaker, verdict, exc, translate)
