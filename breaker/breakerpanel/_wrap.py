"""Turning an object with ``call``/``acall`` into a decorator (breakers, chains, features)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec

__all__ = ["check_decoratable", "wrap_calls"]

P = ParamSpec("P")


def wrap_calls(
    fn: Callable[P, Any],
    acall: Callable[..., Awaitable[Any]],
    call: Callable[..., Any],
    owner: str,
) -> Callable[P, Any]:
    """A wrapper of ``fn`` that runs each call as ``acall(fn, ...)`` (coroutine functions) or
    ``call(fn, ...)`` (plain functions), keeping ``fn``'s name, docstring and signature."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            return await acall(fn, *args, **kwargs)

        return async_wrapper
    check_decoratable(fn, owner)

    @functools.wraps(fn)
    def sync_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        return call(fn, *args, **kwargs)

    return sync_wrapper


def check_decoratable(fn: object, owner: str) -> None:
    """Raise ``TypeError`` unless ``fn`` is a plain function or callable that a wrapper running
    ``call(fn, ...)`` protects (coroutine functions are checked before this)."""
    if inspect.isasyncgenfunction(fn) or inspect.isgeneratorfunction(fn):
        raise TypeError(
            f"{owner}: cannot decorate generator function {getattr(fn, '__qualname__', fn)!r}; "
            "wrap the code that consumes it with `with breaker:` / `async with breaker:`"
        )
    if not callable(fn):
        raise TypeError(f"{owner}: cannot decorate {fn!r}, it is not callable")
