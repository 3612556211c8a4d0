"""Clocks: where a breaker reads the time and schedules its timers.

Breakers never call ``time`` or ``asyncio`` directly for this, so tests inject a
:class:`ManualClock` and move time by hand instead of sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "MonotonicClock", "TimerHandle"]


@runtime_checkable
class TimerHandle(Protocol):
    """What :meth:`Clock.call_later` returns."""

    def cancel(self) -> None:
        """Stop the timer if it has not fired yet."""


@runtime_checkable
class Clock(Protocol):
    """A source of monotonic time in seconds, and a timer."""

    def now(self) -> float:
        """Monotonic seconds; only differences matter."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        """Run ``callback`` after ``delay`` seconds, once (never, for an infinite delay)."""


def _checked_delay(delay: float) -> float:
    if math.isnan(delay):
        raise ValueError("call_later: delay must be a number of seconds (got nan)")
    return max(0.0, delay)


class _NeverTimer:
    """The handle of a timer due at infinity: nothing is scheduled, so nothing can fire."""

    __slots__ = ()

    def cancel(self) -> None:
        pass


class _ThreadTimer:
    __slots__ = ("_timer",)

    def __init__(self, delay: float, callback: Callable[[], None]) -> None:
        # threading.Timer cannot wait longer than TIMEOUT_MAX (its thread dies of OverflowError).
        self._timer = threading.Timer(min(delay, threading.TIMEOUT_MAX), callback)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()


class MonotonicClock:
    """The real clock: ``time.monotonic``.

    Timers run on the event loop of the calling thread when one is running (so callbacks run in
    the loop's thread), otherwise on a daemon ``threading.Timer``.
    """

    __slots__ = ()

    # A plain attribute, not a method: the breaker binds it once and calls it on the hot path.
    now = staticmethod(time.monotonic)

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        delay = _checked_delay(delay)
        if delay == math.inf:  # never due: no thread or loop timer waits for it
            return _NeverTimer()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return _ThreadTimer(delay, callback)
        return loop.call_later(delay, callback)

    def __repr__(self) -> str:
        return "MonotonicClock()"


class _ManualTimer:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that moves only when told to. Timers fire, in order, inside :meth:`advance`.

    >>> clock = ManualClock()
    >>> fired = []
    >>> _ = clock.call_later(5, lambda: fired.append(clock.now()))
    >>> clock.advance(4.9); fired
    []
    >>> clock.advance(0.1); fired
    [5.0]
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._timers: list[tuple[float, int, _ManualTimer, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        handle = _ManualTimer()
        delay = _checked_delay(delay)
        with self._lock:
            heapq.heappush(self._timers, (self._now + delay, next(self._seq), handle, callback))
        return handle

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, firing every timer that falls due on the way."""
        if seconds < 0:
            raise ValueError(f"seconds: a clock cannot go back (got {seconds})")
        target = self._now + seconds
        while True:
            with self._lock:
                if not self._timers or self._timers[0][0] > target:
                    break
                due, _, handle, callback = heapq.heappop(self._timers)
                self._now = max(self._now, due)
            if not handle.cancelled:
                callback()
        self._now = target

    @property
    def pending_timers(self) -> int:
        """How many timers are scheduled and not cancelled."""
        with self._lock:
            return sum(1 for _, _, handle, _ in self._timers if not handle.cancelled)

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now})"
