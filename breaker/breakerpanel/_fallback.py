"""Fallback chains: what to serve when the primary call fails or is rejected.

A chain wraps calls through one breaker. When a call is rejected, or fails in a way that breaker
counts as a failure, the chain tries its steps in order; the first that works serves the call:

- :class:`Alternate`: another target behind its own breaker (OpenAI chat -> Anthropic messages);
- :class:`CachedResponse`: a recent answer to the same call, stored when the primary succeeded;
- :class:`Simplified`: a cheaper function (a smaller model, a template answer);
- :class:`Static`: a fixed value.

Every step's use is counted on the chain's breaker (``record_fallback``: which type served, and
whether it worked). When every step fails the caller gets the original error, raised ``from`` an
``ExceptionGroup`` of the steps' errors, never ``None`` and never a swallowed error. Errors the
breaker ignores (a caller's bad request) and cancellations go straight to the caller: another
provider would refuse the same bad request, and a caller who gave up wants no answer.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ParamSpec, TypeVar, overload

from ._breaker import CircuitBreaker
from ._cache import MISSING, AsyncResponseCache, ResponseCache, checked_ttl, default_cache_key
from ._classify import VerdictKind
from ._exceptions import BreakerConfigError, BreakerError, DependencyError, rejection_in
from ._state import FallbackType
from ._wrap import wrap_calls

logger = logging.getLogger("breakerpanel.fallback")

__all__ = [
    "Alternate",
    "CacheMiss",
    "CachedResponse",
    "FallbackChain",
    "FallbackStep",
    "Simplified",
    "Static",
    "should_fall_back",
]

P = ParamSpec("P")
T = TypeVar("T")


class CacheMiss(LookupError):
    """The cached-response step had nothing for this call."""


class FallbackStep:
    """One step of a chain. Subclasses implement :meth:`aserve` (and :meth:`serve` for sync use)."""

    type: FallbackType
    name: str
    # Whether the step answers a call by its arguments alone, unable to tell two functions
    # called with the same arguments apart (see FallbackChain.check_decorates).
    answers_by_arguments: bool = False

    async def aserve(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError

    def serve(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        raise NotImplementedError(f"{type(self).__name__} {self.name!r} cannot serve sync calls")

    async def aremember(self, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        """Called with every primary success (the cache step stores it)."""

    def remember(self, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        """Sync variant of :meth:`aremember`."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def _name_of(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


class Alternate(FallbackStep):
    """Call another target, through its own breaker when given one.

    ``fn`` takes the same arguments as the primary call (write an adapter when the alternate's API
    differs, as Anthropic's does from OpenAI's). When ``fn``'s client already calls through the
    breaker (the httpx transport integration does), give no ``breaker``: it would count each call
    twice.
    """

    type = FallbackType.ALTERNATE

    def __init__(
        self, fn: Callable[..., Any], *, breaker: CircuitBreaker | None = None, name: str | None = None
    ) -> None:
        self.fn = fn
        self.breaker = breaker
        self.name = name or (breaker.name if breaker is not None else _name_of(fn))

    async def aserve(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.breaker is not None:
            return await self.breaker._acall_args(self.fn, args, kwargs)
        result = self.fn(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result

    def serve(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.breaker is not None:
            return self.breaker._call_args(self.fn, args, kwargs)
        return self.fn(*args, **kwargs)


class CachedResponse(FallbackStep):
    """Serve the last successful answer to the same call, if the cache still has it.

    ``key`` maps the call's arguments to a cache key (by default a hash of all of them); the chain
    stores every primary success under it, for ``ttl`` seconds (``None``: the cache's own).
    """

    type = FallbackType.CACHE

    def __init__(
        self,
        cache: ResponseCache | AsyncResponseCache,
        *,
        key: Callable[..., str] = default_cache_key,
        ttl: float | None = None,
        name: str = "cache",
    ) -> None:
        if not isinstance(cache, ResponseCache | AsyncResponseCache):
            raise BreakerConfigError("cache", f"expected a ResponseCache or AsyncResponseCache (got {cache!r})")
        if type(cache).__module__.split(".")[0] == "redis":
            # It has get() and set(), but a miss is None (served as the answer), not MISSING.
            raise BreakerConfigError(
                "cache", "a redis client is not a response cache: wrap it in breakerpanel.integrations.redis.RedisCache"
            )
        self.cache = cache
        self.key = key
        # None: the cache's own. 0 or less would store answers already expired: never served.
        self.ttl = None if ttl is None else checked_ttl(ttl)
        self.name = name

    @property
    def answers_by_arguments(self) -> bool:  # type: ignore[override]
        return self.key is default_cache_key

    async def aserve(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        cache = self.cache
        key = self.key(*args, **kwargs)
        value = await cache.aget(key) if isinstance(cache, AsyncResponseCache) else cache.get(key)
        if value is MISSING:
            raise CacheMiss(f"no cached response for key {key[:16]}")
        return value

    def serve(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        cache = self._sync_cache()
        key = self.key(*args, **kwargs)
        value = cache.get(key)
        if value is MISSING:
            raise CacheMiss(f"no cached response for key {key[:16]}")
        return value

    async def aremember(self, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        cache = self.cache
        key = self.key(*args, **kwargs)
        if isinstance(cache, AsyncResponseCache):
            await cache.aset(key, result, self.ttl)
        else:
            cache.set(key, result, self.ttl)

    def remember(self, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        self._sync_cache().set(self.key(*args, **kwargs), result, self.ttl)

    def _sync_cache(self) -> ResponseCache:
        if not isinstance(self.cache, ResponseCache):
            raise BreakerConfigError("cache", f"{self.cache!r} is async-only; use acall() with it")
        return self.cache


class Simplified(FallbackStep):
    """A cheaper way to answer: another function taking the same arguments."""

    type = FallbackType.SIMPLIFIED

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None) -> None:
        self.fn = fn
        self.name = name or _name_of(fn)

    async def aserve(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        result = self.fn(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result

    def serve(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self.fn(*args, **kwargs)


class Static(FallbackStep):
    """A fixed value (the last resort: it cannot fail)."""

    type = FallbackType.STATIC

    def __init__(self, value: Any, *, name: str = "static") -> None:
        self.value = value
        self.name = name

    async def aserve(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self.value

    def serve(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self.value


def should_fall_back(breaker: CircuitBreaker, exc: BaseException) -> bool:
    """Whether ``exc`` from a call through ``breaker`` should go to the fallbacks: a rejection
    (even wrapped by an SDK), a protected client's :class:`DependencyError`, or an error the
    breaker counts as a failure. Not: errors it ignores, cancellation, ``KeyboardInterrupt``."""
    if not isinstance(exc, Exception):
        return False
    if rejection_in(exc) is not None or isinstance(exc, BreakerError):
        return True
    return breaker.classify_exception(exc).kind in (VerdictKind.FAILURE, VerdictKind.RATE_LIMITED)


class FallbackChain:
    """Calls through ``breaker``, with ``steps`` tried in order when one is rejected or fails.

    >>> import asyncio
    >>> from breakerpanel import CircuitBreaker
    >>> primary = CircuitBreaker("primary")
    >>> chain = FallbackChain(primary, Static("a canned answer"))
    >>> async def down() -> str:
    ...     raise ConnectionError("refused")
    >>> asyncio.run(chain.acall(down))
    'a canned answer'
    """

    def __init__(
        self,
        breaker: CircuitBreaker,
        *steps: FallbackStep,
        when: Callable[[CircuitBreaker, BaseException], bool] = should_fall_back,
    ) -> None:
        if not isinstance(breaker, CircuitBreaker):
            raise BreakerConfigError("breaker", f"expected a CircuitBreaker (got {breaker!r})")
        for step in steps:
            if not isinstance(step, FallbackStep):
                raise BreakerConfigError("steps", f"expected fallback steps (got {step!r})")
        self.breaker = breaker
        self.steps: Sequence[FallbackStep] = steps
        self.when = when
        self._remembering: tuple[Sequence[FallbackStep], tuple[FallbackStep, ...]] = ((), ())
        self._decorated: Callable[..., Any] | None = None  # see check_decorates
        breaker.declare_fallbacks(*(step.type for step in steps))

    async def acall(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``await breaker.acall(fn, ...)``, or a fallback's answer."""
        try:
            result = await self.breaker._acall_args(fn, args, kwargs)
        except Exception as exc:
            if not self.falls_back(exc):
                raise
            served: T = await self.aserve(exc, args, kwargs)
            return served
        if self.breaker._classify_results or self._remembering[1] or self._remembering[0] is not self.steps:
            settled: T = await self.asettle(result, args, kwargs)
            return settled
        return result

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``breaker.call(fn, ...)``, or a fallback's answer (steps must support sync use)."""
        try:
            result = self.breaker._call_args(fn, args, kwargs)
        except Exception as exc:
            if not self.falls_back(exc):
                raise
            served: T = self.serve(exc, args, kwargs)
            return served
        if self.breaker._classify_results or self._remembering[1] or self._remembering[0] is not self.steps:
            settled: T = self.settle(result, args, kwargs)
            return settled
        return result

    # The parts of acall/call, also for Feature's call paths, which call the breaker themselves
    # (a frame less per call). Callers skip settle() while the breaker looks at no results and the
    # steps in force (cached in _remembering) remember nothing.

    async def asettle(self, result: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """What a call that returned ``result`` answers: the steps' answer when the breaker
        counts the result as a failure and one of them serves, else the result (a failed one is
        never remembered as an answer, and comes back as it was when no step serves). Such a
        result is classified twice, here and by the breaker: only classifiers that look at
        results cost it."""
        if self.breaker._classify_results and (failed := self.failed_result(result)) is not None:
            if self.falls_back(failed):
                try:
                    return await self.aserve(failed, args, kwargs)
                except DependencyError as exc:
                    if exc is not failed:
                        raise
            return result
        await self.aremember(args, kwargs, result)
        return result

    def settle(self, result: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.breaker._classify_results and (failed := self.failed_result(result)) is not None:
            if self.falls_back(failed):
                try:
                    return self.serve(failed, args, kwargs)
                except DependencyError as exc:
                    if exc is not failed:
                        raise
            return result
        self.remember(args, kwargs, result)
        return result

    def failed_result(self, result: Any) -> DependencyError | None:
        """The error a returned result stands for when the breaker counts it as a failure (a
        classifier that inspects results: a 503 response, ``record_results``): the steps serve
        instead, and it is never remembered as an answer. ``None`` for an answer."""
        breaker = self.breaker
        verdict = breaker._safe_classify(None, result)
        if verdict is None or verdict.kind not in (VerdictKind.FAILURE, VerdictKind.RATE_LIMITED):
            return None
        error_type = verdict.error_type or "failure"
        return DependencyError(breaker.name, error_type, f"{type(result).__name__} result counted as {error_type}")

    def falls_back(self, error: Exception) -> bool:
        """Whether a call that raised ``error`` goes to the steps (there are some, and ``when``
        says so); else the caller sees ``error``."""
        return bool(self.steps) and self.when(self.breaker, error)

    async def aremember(self, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        """Offer a successful call's result to the steps that keep results (a cache)."""
        for step in self._rememberers():
            try:
                await step.aremember(args, kwargs, result)
            except Exception as exc:  # a cache that is down must not fail a call that worked
                _forgot(self.breaker, step, exc)

    def remember(self, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        for step in self._rememberers():
            try:
                step.remember(args, kwargs, result)
            except Exception as exc:
                _forgot(self.breaker, step, exc)

    def _rememberers(self) -> tuple[FallbackStep, ...]:
        """The steps that remember results: the base ``aremember``/``remember`` do nothing, and
        awaiting them after each success would cost a coroutine per step and call. Cached for
        the ``steps`` in force."""
        steps, rememberers = self._remembering
        if steps is not self.steps:
            steps = self.steps
            rememberers = tuple(step for step in steps if _remembers(step))
            self._remembering = (steps, rememberers)
        return rememberers

    async def aserve(self, error: BaseException, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Try the steps for a call that failed with ``error``; raise ``error`` if none works."""
        failures: list[Exception] = []
        for step in self.steps:
            try:
                result = await step.aserve(args, kwargs)
            except Exception as exc:
                self.breaker.record_fallback(step.type, succeeded=False, step=step.name, error=exc)
                failures.append(exc)
                continue
            self.breaker.record_fallback(step.type, succeeded=True, step=step.name)
            return result
        raise self._exhausted(error, failures)

    def serve(self, error: BaseException, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        failures: list[Exception] = []
        for step in self.steps:
            try:
                result = step.serve(args, kwargs)
            except Exception as exc:
                self.breaker.record_fallback(step.type, succeeded=False, step=step.name, error=exc)
                failures.append(exc)
                continue
            self.breaker.record_fallback(step.type, succeeded=True, step=step.name)
            return result
        raise self._exhausted(error, failures)

    def _exhausted(self, error: BaseException, failures: list[Exception]) -> BaseException:
        if failures:
            tried = ", ".join(f"{s.name} ({type(e).__name__}: {e})" for s, e in zip(self.steps, failures, strict=True))
            error.add_note(f"fallbacks of {self.breaker.name!r} all failed: {tried}")
            group = ExceptionGroup(f"fallbacks of {self.breaker.name!r} failed", failures)
            # Below the group, what the error was raised from: an SDK's error raised from a
            # breaker's rejection must still lead to it (rejection_in), a DependencyError to its
            # driver's error.
            group.__cause__ = error.__cause__ if error.__cause__ is not None else error.__context__
            error.__cause__ = group
        return error

    @overload
    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]: ...

    @overload
    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate a function so that its calls go through the chain."""
        self.check_decorates(fn)
        return wrap_calls(fn, self.acall, self.call, f"fallback chain {self.breaker.name!r}")

    def check_decorates(self, fn: Callable[..., Any]) -> None:
        """A chain whose steps answer a call by its arguments alone serves one function: a
        second one's call with the same arguments would get the first one's answer (the default
        key of CachedResponse, and SemanticCache's default question: a translation and a summary
        of the same text are one question to it). Calls through ``acall``/``call`` are the
        caller's to keep apart: the steps key them by their arguments, not by the function."""
        keyed = [step for step in self.steps if step.answers_by_arguments]
        if not keyed:
            return
        first = self._decorated
        if first is not None and first is not fn:
            raise BreakerConfigError(
                "steps",
                f"fallback chain {self.breaker.name!r} answers by arguments alone ({keyed[0]!r}) and "
                f"already serves {getattr(first, '__qualname__', first)!r}: use a chain per function, or "
                "give the step a key (CachedResponse) or a question (SemanticCache) that tells the functions apart",
            )
        self._decorated = fn

    def __repr__(self) -> str:
        return f"FallbackChain({self.breaker.name!r}, {', '.join(repr(s) for s in self.steps)})"


def _forgot(breaker: CircuitBreaker, step: FallbackStep, exc: Exception) -> None:
    logger.warning(
        "breaker %s: %r could not store a result for later (%s: %s); the call itself succeeded",
        breaker.name,
        step,
        type(exc).__name__,
        exc,
    )


def _remembers(step: FallbackStep) -> bool:
    """Whether a step's ``aremember`` or ``remember`` may do something (it overrides one)."""
    own = getattr(step, "__dict__", {})
    return (
        type(step).aremember is not FallbackStep.aremember
        or type(step).remember is not FallbackStep.remember
        or "aremember" in own
        or "remember" in own
    )
