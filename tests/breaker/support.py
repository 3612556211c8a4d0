"""Helpers for breaker tests: a manual clock, and calls whose duration and outcome are chosen."""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Generator
from typing import Any

import pytest

from breakerpanel import BreakerListener, CallRecorded, CallRejected, CircuitBreaker, ManualClock, StateChanged


class Recorder(BreakerListener):
    """Every event a breaker publishes about calls and its state, by kind."""

    def __init__(self) -> None:
        self.recorded: list[CallRecorded] = []
        self.rejected: list[CallRejected] = []
        self.changes: list[StateChanged] = []

    def call_recorded(self, event: CallRecorded) -> None:
        self.recorded.append(event)

    def call_rejected(self, event: CallRejected) -> None:
        self.rejected.append(event)

    def state_changed(self, event: StateChanged) -> None:
        self.changes.append(event)


class Boom(Exception):
    """The failure the tests inject."""


class Gate:
    """An awaitable that suspends until the test opens it: a call held in flight.

    Drive a coroutine that awaits it by hand (``coro.send(None)``) or inside an event loop.
    """

    def __init__(self) -> None:
        self.value: Any = "ok"
        self.exc: BaseException | None = None

    def __await__(self) -> Generator[Any, None, Any]:
        yield self
        if self.exc is not None:
            raise self.exc
        return self.value


async def through(gate: Gate) -> Any:
    return await gate


def succeed(breaker: CircuitBreaker, clock: ManualClock, duration: float = 0.0) -> Any:
    def work() -> str:
        clock.advance(duration)
        return "ok"

    return breaker.call(work)


def fail(breaker: CircuitBreaker, clock: ManualClock, duration: float = 0.0, exc: Exception | None = None) -> None:
    def work() -> None:
        clock.advance(duration)
        raise exc if exc is not None else Boom()

    with pytest.raises(type(exc) if exc is not None else Boom):
        breaker.call(work)


def private_names(cls: type) -> list[str]:
    """The private attributes (``x._name``, not dunders) the source of ``cls`` reaches: what code
    written outside the package must not need."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    return [
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
    ]
