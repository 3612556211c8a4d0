"""Clocks: where a breaker reads the time and schedules its timers.

Breakers never call ``time`` or ``asyncio`` directly for this, so tests inject a
:class:`ManualClock` and move time by hand instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import itertools
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "MonotonicClock", "TimerHandle"]

logger = logging.getLogger("breakerpanel")


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


# How long a timer handed to an event loop may wait there before the timer thread checks that
# the loop still runs (a loop closed with the callback queued drops it).
_HANDOVER_GRACE = 1.0
# How long a runner waits with no timer to run before it ends (the next timer starts another).
# The timer thread itself never ends: from Python 3.12 no thread starts once the interpreter
# shuts down (while it joins non-daemon threads, say), and timers set then would never fire.
_IDLE_EXIT = 5.0
# At most this many threads run the timers due outside a running loop at once; a timer due while
# all of them are busy waits for the first one free. A callback that blocks holds one of them,
# not every timer; a burst (a thousand breakers opened together) holds this many threads.
_MAX_RUNNERS = 16


def _nothing() -> None:
    """What a cancelled timer calls instead of its callback (it never calls it)."""


class _Timer:
    """A timer of :class:`MonotonicClock`: its callback runs once, in the loop that set it while
    that loop runs, else in a runner thread (:class:`_Runners`), in the context (``contextvars``)
    it was set in, as ``loop.call_later`` runs one. :meth:`cancel` stops it unless it has
    started: a callback already claimed may still run after ``cancel()`` returns (waiting for it
    there could deadlock against the lock its caller holds)."""

    __slots__ = ("_claim", "callback", "cancelled", "context", "loop")

    def __init__(self, callback: Callable[[], None], loop: asyncio.AbstractEventLoop | None) -> None:
        self.callback = callback
        self.loop = loop
        self.cancelled = False
        self.context = contextvars.copy_context()
        self._claim = threading.Lock()  # taken by whichever runs it first, or by cancel()

    def cancel(self) -> None:
        if self._claim.acquire(blocking=False):  # not started: now it never will
            self.cancelled = True
            # Nothing kept alive until the entry leaves the heap (its due time, or a compaction):
            # the callback holds its breaker. The context stays a context: a firing that has
            # just passed its own check may still copy it.
            self.callback, self.loop, self.context = _nothing, None, contextvars.Context()
            _timer_thread().forget()

    @property
    def done(self) -> bool:
        return self._claim.locked()

    def run(self) -> None:
        if not self._claim.acquire(blocking=False):
            return
        self.loop = None  # no reference to a loop that has fired its last timer
        self.callback()

    def run_in_thread(self) -> None:
        # A copy of the context: the loop, if it runs again, may still enter the original to
        # find the timer claimed.
        try:
            self.context.copy().run(self.run)
        except BaseException:  # the thread ends here anyway: say why
            logger.exception("breakerpanel: a timer's callback %r raised", self.callback)


class _Runners:
    """The threads that run the timers due outside a running loop: started as timers come due,
    up to ``_MAX_RUNNERS``, each ending once no timer has come for ``_IDLE_EXIT`` seconds."""

    def __init__(self) -> None:
        self._cv = threading.Condition(threading.Lock())
        self.ready: deque[_Timer] = deque()
        self._threads = 0  # runner threads alive
        self._waiting = 0  # of them, those waiting for a timer

    def run(self, timer: _Timer) -> None:
        with self._cv:
            self.ready.append(timer)
            if len(self.ready) <= self._waiting:  # a waiting runner takes it
                self._cv.notify()
                return
            if self._threads >= _MAX_RUNNERS:  # a busy runner takes it once it is free
                return
            self._threads += 1
        try:
            threading.Thread(target=self._serve, name="breakerpanel-timer", daemon=True).start()
        except RuntimeError:  # no thread to be had: run it here rather than never
            with self._cv:
                self._threads -= 1
                try:
                    self.ready.remove(timer)
                except ValueError:  # a runner took it meanwhile
                    return
            timer.run_in_thread()

    def _serve(self) -> None:
        while True:
            with self._cv:
                while not self.ready:
                    self._waiting += 1
                    woke = self._cv.wait(_IDLE_EXIT)
                    self._waiting -= 1
                    if not woke and not self.ready:
                        self._threads -= 1
                        return
                timer = self.ready.popleft()
            with contextlib.suppress(BaseException):  # its log failing, say: the runner goes on
                timer.run_in_thread()


class _TimerThread:
    """One daemon thread that waits for every :class:`MonotonicClock` timer of the process.

    A timer set while an event loop ran is handed to that loop when due (``call_soon_threadsafe``),
    so it runs in the loop's thread as before; a loop that has stopped or closed by then (one
    ``asyncio.run`` per job: Celery, ``async_to_sync``) no longer takes its timers down with it.
    Those, and the timers set outside a loop, run in other threads (:class:`_Runners`), so that a
    callback that blocks delays no other timer (while fewer than ``_MAX_RUNNERS`` block). The
    wait is shared: a ``threading.Timer`` per timer kept a thread for every open breaker and
    monitor for as long as it waited."""

    def __init__(self) -> None:
        self._lock = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, _Timer, bool]] = []
        self._seq = itertools.count()
        self._cancelled = 0
        self._thread: threading.Thread | None = None
        self._runners = _Runners()

    def schedule(self, due: float, timer: _Timer, *, handed: bool = False) -> None:
        # Never raises: a breaker sets its timers in the middle of a state change.
        with self._lock:
            heapq.heappush(self._heap, (due, next(self._seq), timer, handed))
            if self._thread is None:
                self._start_locked()
            self._lock.notify()

    def _start_locked(self) -> None:
        thread = threading.Thread(target=self._run, name="breakerpanel-timers", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no more threads: the timers wait for the next schedule to start one
            logger.warning("breakerpanel: cannot start the timer thread; timers wait until one starts")
            return
        self._thread = thread

    def forget(self) -> None:
        """Count a cancelled timer; drop the cancelled ones when they are half of those waiting
        (a flapping breaker cancels a timer on every change)."""
        with self._lock:
            self._cancelled += 1
            if self._cancelled > 64 and self._cancelled * 2 > len(self._heap):
                self._heap = [entry for entry in self._heap if not entry[2].cancelled]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def _run(self) -> None:
        try:
            while True:
                timer, handed = self._next_due()
                try:
                    self._fire(timer, handed)
                except BaseException:  # a loop that raises, SystemExit included: not every timer's end
                    logger.exception("breakerpanel: the timer thread could not fire %r", timer.callback)
                    with contextlib.suppress(BaseException):
                        timer.run_in_thread()  # here, then: once (the claim), rather than never
        finally:  # whatever ended it (interpreter shutdown aside), the timers waiting get a thread
            with self._lock:
                self._thread = None
                if self._heap:
                    self._start_locked()

    def _next_due(self) -> tuple[_Timer, bool]:
        with self._lock:
            while True:
                if not self._heap:
                    self._lock.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._lock.wait(min(wait, threading.TIMEOUT_MAX))
                    continue
                _, _, timer, handed = heapq.heappop(self._heap)
                if timer.cancelled:
                    self._cancelled = max(0, self._cancelled - 1)
                return timer, handed

    def _fire(self, timer: _Timer, handed: bool) -> None:
        if timer.done:
            return
        loop = timer.loop
        if loop is not None and loop.is_running():
            if not handed:
                try:
                    loop.call_soon_threadsafe(timer.run, context=timer.context)
                except RuntimeError:  # closed since: run it in a thread
                    pass
                else:
                    handed = True
            if handed:  # check again later that the loop ran it, or still runs
                self.schedule(time.monotonic() + _HANDOVER_GRACE, timer, handed=True)
                return
        self._runners.run(timer)


_TIMERS: _TimerThread | None = None
_TIMERS_LOCK = threading.Lock()


def _timer_thread() -> _TimerThread:
    global _TIMERS
    timers = _TIMERS
    if timers is None:
        with _TIMERS_LOCK:
            if _TIMERS is None:
                _TIMERS = _TimerThread()
            timers = _TIMERS
    return timers


def _timers_after_fork() -> None:
    """A forked child has no timer thread, whatever its parent had: its copies of the parent's
    breakers and monitors (made at import, before a pre-forking server forks its workers) keep
    their timers, in a thread of the child's own."""
    global _TIMERS, _TIMERS_LOCK
    _TIMERS_LOCK = threading.Lock()  # the parent's may have been held by another thread
    parent = _TIMERS
    if parent is None:
        return
    timers = _TimerThread()  # not the parent's lock or Condition either, for the same reason
    # Copies, pushed again: a fork mid-compaction is mended. Those due already, waiting for a
    # runner of the parent's, are due in the child at once.
    waiting = [(due, timer) for due, _, timer, _ in list(parent._heap)]
    waiting += [(0.0, timer) for timer in list(parent._runners.ready)]
    for due, timer in waiting:
        if not timer.done:
            timer.loop = None  # a loop of the parent's: in the child, it never runs again
            heapq.heappush(timers._heap, (due, next(timers._seq), timer, False))
    _TIMERS = timers
    if timers._heap:
        timers._start_locked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_timers_after_fork)


class MonotonicClock:
    """The real clock: ``time.monotonic``.

    Timers wait in one daemon thread. A timer set while an event loop runs fires in that loop's
    thread (where asyncio code expects it) as long as the loop runs; once that loop has stopped
    or closed, it fires in a runner thread (up to 16 at once, each ending when idle, and reused:
    a ``threading.local`` one timer sets, the next may see), as a timer set outside any loop does.
    """

    __slots__ = ()

    # A plain attribute, not a method: the breaker binds it once and calls it on the hot path.
    now = staticmethod(time.monotonic)

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        delay = _checked_delay(delay)
        if delay == math.inf:  # never due: nothing waits for it
            return _NeverTimer()
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        timer = _Timer(callback, loop)
        _timer_thread().schedule(time.monotonic() + delay, timer)
        return timer

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
