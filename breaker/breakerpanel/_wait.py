"""How long an open breaker waits before it lets probes through.

A wait strategy maps the number of consecutive openings (1 for the first, 2 when the first
probes failed, ...) to seconds. The breaker resets the count when it closes.

Every wait is finite and positive, as resilience4j's ``waitDurationInOpenState`` (at least 1 ms):
an open breaker always has a deadline. For "open until told otherwise" there is
``force_open()``; for "half-open at the next call", a wait of a millisecond.

>>> ExponentialBackoff(initial=1, multiplier=2, maximum=10, jitter=0)(4)
8.0
>>> ExponentialBackoff(initial=1, multiplier=2, maximum=10, jitter=0)(5)
10.0
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias, runtime_checkable

from ._exceptions import BreakerConfigError
from .durations import Seconds

__all__ = ["ExponentialBackoff", "FixedWait", "WaitStrategy", "WaitStrategyLike", "as_wait_strategy"]


@runtime_checkable
class WaitStrategy(Protocol):
    def __call__(self, attempt: int) -> float:
        """Seconds to stay open on the ``attempt``-th consecutive opening (from 1)."""


@dataclass(frozen=True, slots=True)
class FixedWait:
    """Always the same wait."""

    seconds: float

    def __post_init__(self) -> None:
        _check_seconds("wait_in_open.seconds", self.seconds)

    def __call__(self, attempt: int) -> float:
        return float(self.seconds)


@dataclass(frozen=True, slots=True)
class ExponentialBackoff:
    """``initial * multiplier ** (attempt - 1)``, capped at ``maximum``, minus random jitter.

    ``jitter`` is the fraction of the wait that may be cut at random (0 = none, 1 = anywhere from
    zero to the full wait), so that replicas which opened together do not probe together.
    """

    #: The first wait, in seconds.
    initial: Seconds = 1.0
    #: Each further wait is this many times the last.
    multiplier: float = 2.0
    #: The longest wait, in seconds.
    maximum: Seconds = 60.0
    #: Share of each wait that may be cut at random.
    jitter: float = 0.2
    rng: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        _check_seconds("wait_in_open.initial", self.initial)
        if not self.multiplier >= 1:
            raise BreakerConfigError("wait_in_open.multiplier", f"must be >= 1 (got {self.multiplier})")
        if not self.maximum >= self.initial:
            raise BreakerConfigError(
                "wait_in_open.maximum", f"must be >= initial ({self.initial}) (got {self.maximum})"
            )
        _check_seconds("wait_in_open.maximum", self.maximum)
        if not 0 <= self.jitter <= 1:
            raise BreakerConfigError("wait_in_open.jitter", f"must be within [0, 1] (got {self.jitter})")

    def __call__(self, attempt: int) -> float:
        exponent = max(0, attempt - 1)
        # multiplier ** exponent overflows a float after a long outage; the cap applies then.
        try:
            wait = min(self.maximum, self.initial * self.multiplier**exponent)
        except OverflowError:
            wait = self.maximum
        if self.jitter:
            wait -= wait * self.jitter * self.rng()
        return float(wait)


WaitStrategyLike: TypeAlias = float | int | WaitStrategy


def _check_seconds(field: str, value: object) -> None:
    """A wait: a finite number of seconds above 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BreakerConfigError(field, f"expected a number of seconds (got {value!r})")
    if value == math.inf:
        raise BreakerConfigError(
            field, "must be finite (got inf): for a breaker open until told otherwise, use force_open()"
        )
    if not 0 < value < math.inf:
        raise BreakerConfigError(field, f"must be a positive, finite number of seconds (got {value!r})")


def as_wait_strategy(value: WaitStrategyLike) -> WaitStrategy:
    """A number means a fixed wait in seconds: finite and positive.

    >>> as_wait_strategy(30)
    FixedWait(seconds=30.0)
    >>> try:
    ...     as_wait_strategy(float("inf"))
    ... except BreakerConfigError as exc:
    ...     print(exc.reason)
    must be finite (got inf): for a breaker open until told otherwise, use force_open()
    """
    if isinstance(value, bool):
        raise BreakerConfigError("wait_in_open", "expected seconds or a wait strategy, got a bool")
    if isinstance(value, int | float):
        _check_seconds("wait_in_open", value)
        return FixedWait(float(value))
    if callable(value):
        return value
    raise BreakerConfigError("wait_in_open", f"expected seconds or a wait strategy, got {type(value).__name__}")
