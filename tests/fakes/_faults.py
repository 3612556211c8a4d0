"""Fault-injection bookkeeping shared by the fakes: queued failures and the two rate-limiter shapes.

Not thread-safe on their own: the fakes call them with their own lock held.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DownMode",
    "FailurePlan",
    "FailureQueue",
    "SlidingWindowLimiter",
    "TokenBucketLimiter",
    "retry_after_header",
]

#: How a fake is "down": ``"refuse"`` closes the listening port (clients get connection refused),
#: ``"503"`` keeps it open and answers every request with HTTP 503.
DownMode = Literal["refuse", "503"]


@dataclass(frozen=True)
class FailurePlan:
    """One injected failure: the HTTP status, the ``Retry-After`` header (seconds; None: no header), and for
    the Slack fake an optional API method it applies to and the error code of the body."""

    status: int
    retry_after: int | None = None
    method: str | None = None
    error: str | None = None


class FailureQueue:
    """Failures to serve before answering normally, in the order they were queued (``fail_next``)."""

    def __init__(self) -> None:
        self._plans: deque[FailurePlan] = deque()

    def add(self, count: int, plan: FailurePlan) -> None:
        if count < 0:
            raise ValueError(f"count must be >= 0, not {count}")
        self._plans.extend([plan] * count)

    def take(self, method: str | None = None) -> FailurePlan | None:
        """Pop the first failure that applies to ``method`` (plans without a method apply to every request)."""
        for index, plan in enumerate(self._plans):
            if plan.method is None or plan.method == method:
                del self._plans[index]
                return plan
        return None

    def __len__(self) -> int:
        return len(self._plans)

    def clear(self) -> None:
        self._plans.clear()


class SlidingWindowLimiter:
    """At most ``limit`` hits per key within the last ``window`` seconds, as PagerDuty's Events API counts them
    ("calculated over a 60 second window looking back from the current time")."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}

    def acquire(self, key: str) -> float | None:
        """Count a hit and return None, or return the seconds until one is allowed (the hit is not counted)."""
        now = self._clock()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return hits[0] + self.window - now
        hits.append(now)
        return None


class TokenBucketLimiter:
    """``rate`` hits per second per key with bursts of up to ``burst``, like Slack's chat.postMessage limit
    ("1 message per second per channel, short bursts allowed")."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill time)

    def acquire(self, key: str) -> float | None:
        """Take a token and return None, or return the seconds until the next token (nothing is taken)."""
        now = self._clock()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens - 1.0, now)
        return None


def retry_after_header(seconds: float) -> int:
    """Whole seconds for a ``Retry-After`` header: rounded up, at least 1 (slack_sdk parses it with ``int()``)."""
    return max(1, math.ceil(seconds))
