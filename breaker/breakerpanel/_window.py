"""Sliding windows over cumulative counters.

A breaker keeps three cumulative counters of the calls that count: ``calls``, ``failures`` and
``slow``. A window does not store calls; it remembers just enough about those counters to say how
many of them fall inside it:

- :class:`TimeWindow` stores the counters' values at the start of each bucket (one snapshot per
  bucket), so "the last N seconds" is ``now_counts - snapshot[oldest bucket]``;
- :class:`CountWindow` stores the positions of the (rare) failed and slow calls, so "the last N
  calls" is ``min(N, calls)`` calls, with the failures whose position is among the last N.

Why: a successful call then only has to increment one counter, which the breaker does without its
lock (the hot path); windows are read and updated under the breaker's lock.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

__all__ = ["MAX_TIME_BUCKETS", "CountWindow", "SlidingWindow", "TimeWindow", "WindowCounts"]

# The time window keeps at most this many buckets; longer windows get wider buckets.
MAX_TIME_BUCKETS = 120

WindowCounts = tuple[int, int, int]  # (calls, failures, slow) inside the window


class SlidingWindow(Protocol):
    """What a breaker needs from a window. Every method is called under the breaker's lock."""

    #: Width of a bucket in seconds (infinite for count windows), and the end of the current one:
    #: calls that end before it may be counted without telling the window.
    bucket_width: float
    bucket_end: float

    def clear(self, now: float, calls: int, failures: int, slow: int) -> None:
        """Start empty: nothing counted so far is inside the window any more."""

    def advance(self, now: float, calls: int, failures: int, slow: int) -> None:
        """Time moved to ``now``; the counters have these values (before any new call)."""

    def add(self, calls: int, failed: bool, slow: bool) -> None:
        """A failed or slow call was just counted; ``calls`` includes it."""

    def counts(self, now: float, calls: int, failures: int, slow: int) -> WindowCounts:
        """How many of the counted calls, failures and slow calls are inside the window."""


class CountWindow:
    """The last ``size`` calls."""

    __slots__ = ("_failed_at", "_floor", "_size", "_slow_at", "bucket_end", "bucket_width")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size: must be at least 1 (got {size})")
        self._size = size
        self._floor = 0  # the counters' `calls` when the window was last cleared
        # Positions (1-based call numbers) of failed and slow calls that may still be inside.
        self._failed_at: deque[int] = deque()
        self._slow_at: deque[int] = deque()
        self.bucket_width = math.inf
        self.bucket_end = math.inf

    def clear(self, now: float, calls: int, failures: int, slow: int) -> None:
        self._floor = calls
        self._failed_at.clear()
        self._slow_at.clear()

    def advance(self, now: float, calls: int, failures: int, slow: int) -> None:
        return None

    def add(self, calls: int, failed: bool, slow: bool) -> None:
        if failed:
            self._failed_at.append(calls)
        if slow:
            self._slow_at.append(calls)

    def counts(self, now: float, calls: int, failures: int, slow: int) -> WindowCounts:
        oldest = max(self._floor, calls - self._size)  # positions <= oldest have left the window
        failed_at, slow_at = self._failed_at, self._slow_at
        while failed_at and failed_at[0] <= oldest:
            failed_at.popleft()
        while slow_at and slow_at[0] <= oldest:
            slow_at.popleft()
        return calls - oldest, len(failed_at), len(slow_at)

    def __repr__(self) -> str:
        return f"CountWindow(size={self._size})"


class TimeWindow:
    """The calls of the last ``seconds`` seconds, in buckets.

    Up to :data:`MAX_TIME_BUCKETS` one-second buckets; longer windows use wider buckets, so the
    window's far edge is accurate to one bucket width.
    """

    __slots__ = ("_base", "_head", "_n", "_seconds", "bucket_end", "bucket_width")

    def __init__(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError(f"seconds: must be positive (got {seconds})")
        n = max(1, min(MAX_TIME_BUCKETS, round(seconds)))
        self._seconds = float(seconds)
        self._n = n
        self.bucket_width = float(seconds) / n
        # _base[e % n]: the counters at the start of bucket e, for the last n buckets.
        self._base: list[WindowCounts] = [(0, 0, 0)] * n
        self._head = 0  # the current bucket's number
        self.bucket_end = -math.inf  # forces an advance() before the first fast-path count

    def _epoch(self, now: float) -> int:
        return math.floor(now / self.bucket_width)

    def clear(self, now: float, calls: int, failures: int, slow: int) -> None:
        self._base = [(calls, failures, slow)] * self._n
        self._head = self._epoch(now)
        self.bucket_end = (self._head + 1) * self.bucket_width

    def advance(self, now: float, calls: int, failures: int, slow: int) -> None:
        epoch = self._epoch(now)
        head = self._head
        if epoch <= head:
            return
        n = self._n
        current = (calls, failures, slow)
        if epoch - head >= n:
            self._base = [current] * n
        else:
            base = self._base
            for e in range(head + 1, epoch + 1):
                base[e % n] = current
        self._head = epoch
        self.bucket_end = (epoch + 1) * self.bucket_width

    def add(self, calls: int, failed: bool, slow: bool) -> None:
        return None

    def counts(self, now: float, calls: int, failures: int, slow: int) -> WindowCounts:
        self.advance(now, calls, failures, slow)
        c0, f0, s0 = self._base[(self._head + 1) % self._n]
        return calls - c0, failures - f0, slow - s0

    def __repr__(self) -> str:
        return f"TimeWindow(seconds={self._seconds:g}, buckets={self._n})"
