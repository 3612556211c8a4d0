"""The real clock's timers: one thread waits for them all, and a timer set inside an event loop
fires in that loop while it runs, and in the timer thread once it has stopped or closed.

Opt-in timers (automatic transition to half-open, adaptive thresholds, the trip forecast) were
event-loop timers when a loop ran: an app that runs each job in its own ``asyncio.run`` (Celery,
``async_to_sync``) lost them when that job's loop closed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from breakerpanel import BreakerConfig, CircuitBreaker, MonotonicClock, State, StateChanged
from breakerpanel import _clock as clock_module

from .support import Recorder

WAIT = 10.0  # seconds a test waits for a timer at most (they are due within 0.2 s)


def test_a_timer_set_outside_a_loop_fires_in_the_timer_thread() -> None:
    fired = threading.Event()
    threads: list[int] = []
    MonotonicClock().call_later(0.02, lambda: (threads.append(threading.get_ident()), fired.set()))
    assert fired.wait(WAIT)
    assert threads != [threading.get_ident()]


def test_a_timer_set_inside_a_running_loop_fires_in_that_loop() -> None:
    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        fired: asyncio.Future[int] = loop.create_future()
        MonotonicClock().call_later(0.02, lambda: fired.set_result(threading.get_ident()))
        return await asyncio.wait_for(fired, WAIT), threading.get_ident()

    fired_in, loop_thread = asyncio.run(main())
    assert fired_in == loop_thread


def test_a_timer_outlives_the_loop_that_set_it() -> None:
    fired = threading.Event()
    threads: list[int] = []

    async def job() -> None:  # one asyncio.run per job: its loop is closed when the job ends
        MonotonicClock().call_later(0.1, lambda: (threads.append(threading.get_ident()), fired.set()))

    asyncio.run(job())
    assert fired.wait(WAIT)
    assert threads != [threading.get_ident()]


def test_a_cancelled_timer_never_fires_wherever_it_waits() -> None:
    fired = threading.Event()
    MonotonicClock().call_later(0.02, fired.set).cancel()

    async def job() -> None:
        MonotonicClock().call_later(0.02, fired.set).cancel()
        await asyncio.sleep(0.1)

    asyncio.run(job())
    sentinel = threading.Event()
    MonotonicClock().call_later(0.1, sentinel.set)
    assert sentinel.wait(WAIT)
    assert not fired.is_set()


class _DroppingLoop:
    """A loop that says it runs and drops what it is handed: one closed with the callback queued."""

    def __init__(self) -> None:
        self.handed = 0

    def is_running(self) -> bool:
        return self.handed == 0  # it stops once it has dropped the callback

    def call_soon_threadsafe(self, callback: Any) -> None:
        self.handed += 1


def test_a_timer_a_loop_dropped_runs_in_the_timer_thread_after_the_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock_module, "_HANDOVER_GRACE", 0.05)
    fired = threading.Event()
    loop = _DroppingLoop()
    timer = clock_module._Timer(fired.set, loop)  # type: ignore[arg-type]
    clock_module._timer_thread().schedule(time.monotonic() + 0.01, timer)
    assert fired.wait(WAIT)
    assert loop.handed == 1


def test_cancelled_timers_do_not_pile_up() -> None:
    # A flapping breaker cancels its open timer on every change: the thread drops them.
    clock = MonotonicClock()
    timers = clock_module._timer_thread()
    before = len(timers._heap)
    for _ in range(1000):
        clock.call_later(3600, lambda: None).cancel()
    assert len(timers._heap) - before <= 200


def test_automatic_half_open_comes_after_the_loop_that_opened_the_breaker_closed() -> None:
    # The breaker opens inside one job's loop; nobody calls it again; its timer still moves it.
    b = CircuitBreaker("dep", BreakerConfig(minimum_calls=1, wait_in_open=0.1, automatic_transition_to_half_open=True))
    changed = threading.Event()

    class HalfOpen(Recorder):
        def state_changed(self, event: StateChanged) -> None:
            super().state_changed(event)
            if event.state is State.HALF_OPEN:
                changed.set()

    b.add_listener(HalfOpen())

    async def job() -> None:
        with pytest.raises(ZeroDivisionError):
            b.call(lambda: 1 / 0)

    asyncio.run(job())
    assert b.state is State.OPEN
    assert changed.wait(WAIT)  # before: never (the timer died with the job's loop)
    assert b.state is State.HALF_OPEN
