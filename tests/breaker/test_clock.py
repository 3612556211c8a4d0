"""The real clock's timers: one thread waits for them all, and a timer set inside an event loop
fires in that loop while it runs, and in another thread of ours once that loop has stopped or closed.

Opt-in timers (automatic transition to half-open, adaptive thresholds, the trip forecast) were
event-loop timers when a loop ran: an app that runs each job in its own ``asyncio.run`` (Celery,
``async_to_sync``) lost them when that job's loop closed.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import os
import subprocess
import sys
import threading
import time
import weakref
from typing import Any

import pytest

from breakerpanel import BreakerConfig, CircuitBreaker, MonotonicClock, State, StateChanged
from breakerpanel import _clock as clock_module
from breakerpanel._monitor import Periodic

from .support import Recorder

WAIT = 10.0  # seconds a test waits for a timer at most (they are due within 0.2 s)


def test_a_timer_set_outside_a_loop_fires_in_another_thread() -> None:
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

    def call_soon_threadsafe(self, callback: Any, **kwargs: Any) -> None:
        self.handed += 1


def test_a_timer_a_loop_dropped_runs_in_a_thread_after_the_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock_module, "_HANDOVER_GRACE", 0.05)
    fired = threading.Event()
    loop = _DroppingLoop()
    timer = clock_module._Timer(fired.set, loop)  # type: ignore[arg-type]
    clock_module._timer_thread().schedule(time.monotonic() + 0.01, timer)
    assert fired.wait(WAIT)
    assert loop.handed == 1


def test_cancelled_timers_do_not_pile_up(monkeypatch: pytest.MonkeyPatch) -> None:
    # A flapping breaker cancels its open timer on every change: the thread drops them. (Its own
    # timer thread: the process's holds whatever other tests left waiting.)
    timers = clock_module._TimerThread()
    monkeypatch.setattr(clock_module, "_TIMERS", timers)
    clock = MonotonicClock()
    live = [clock.call_later(3600, lambda: None) for _ in range(10)]
    for _ in range(1000):
        clock.call_later(3600, lambda: None).cancel()
    assert len(timers._heap) <= 10 + 65
    for timer in live:
        timer.cancel()


def test_a_callback_that_blocks_delays_no_other_timer() -> None:
    clock = MonotonicClock()
    release, fired = threading.Event(), threading.Event()
    clock.call_later(0.01, lambda: release.wait(WAIT))  # blocks until the second has fired
    clock.call_later(0.05, fired.set)
    assert fired.wait(WAIT)
    release.set()


def test_a_callback_that_exits_stops_no_timer(caplog: pytest.LogCaptureFixture) -> None:
    clock = MonotonicClock()

    def exits() -> None:
        raise SystemExit(3)

    clock.call_later(0.01, exits)
    deadline = time.monotonic() + WAIT
    while not any("raised" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert any("raised" in r.getMessage() for r in caplog.records)  # logged, in its own thread
    fired = threading.Event()
    clock.call_later(0.01, fired.set)
    assert fired.wait(WAIT)


_REQUEST: contextvars.ContextVar[str | None] = contextvars.ContextVar("request", default=None)


def test_a_timer_runs_in_the_context_it_was_set_in() -> None:
    # As loop.call_later runs its callback: in a copy of the context of the call that set it.
    seen: list[str | None] = []
    fired = threading.Event()

    def callback() -> None:
        seen.append(_REQUEST.get())
        fired.set()

    async def in_loop() -> None:
        _REQUEST.set("in a loop")
        MonotonicClock().call_later(0.01, callback)
        await asyncio.sleep(0.1)

    asyncio.run(in_loop())
    assert fired.wait(WAIT)
    fired.clear()
    token = _REQUEST.set("outside")
    MonotonicClock().call_later(0.01, callback)
    _REQUEST.reset(token)
    assert fired.wait(WAIT)
    assert seen == ["in a loop", "outside"]


def test_a_timer_cancelled_while_it_is_due_runs_at_most_once_and_never_after() -> None:
    # cancel() and the firing claim the timer alike: whichever comes first wins, once.
    for _ in range(200):
        ran: list[int] = []
        timer = clock_module._Timer(lambda ran=ran: ran.append(1), None)  # type: ignore[misc]
        racer = threading.Thread(target=timer.run)
        racer.start()
        timer.cancel()
        racer.join()
        after = len(ran)
        timer.run()
        assert len(ran) == after <= 1


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


def test_a_cancelled_timer_keeps_nothing_alive() -> None:
    # The heap keeps a cancelled entry until its due time: it held its callback, and so its
    # breaker, for as long (an hour here).
    b = CircuitBreaker("dep", BreakerConfig(automatic_transition_to_half_open=True))
    b.force_open(3600)
    b.reset()  # cancels the hour's timer
    alive = weakref.ref(b)
    del b
    gc.collect()
    assert alive() is None


def test_a_loop_that_raises_ends_no_other_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    timers = clock_module._TimerThread()
    monkeypatch.setattr(clock_module, "_TIMERS", timers)

    class Broken:
        def is_running(self) -> bool:
            raise SystemExit

    fired, its_own = threading.Event(), threading.Event()
    timers.schedule(time.monotonic() + 0.01, clock_module._Timer(its_own.set, Broken()))  # type: ignore[arg-type]
    timers.schedule(time.monotonic() + 0.2, clock_module._Timer(fired.set, None))
    assert fired.wait(WAIT)
    assert its_own.wait(WAIT)  # run by the timer thread itself rather than dropped


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_timers_waiting_when_the_timer_thread_ends_get_another(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever ends the thread (here its own log raising), the timers waiting behind it must not
    # wait for some later schedule to start a new one.
    timers = clock_module._TimerThread()
    monkeypatch.setattr(clock_module, "_TIMERS", timers)

    class RaisingLog:
        def exception(self, *args: object) -> None:
            raise SystemExit

    class Broken:
        def is_running(self) -> bool:
            raise RuntimeError("a loop that fails")

    monkeypatch.setattr(clock_module, "logger", RaisingLog())
    fired = threading.Event()
    # Due in 0.5 s: the thread that fires it is surely the one read just after.
    timers.schedule(time.monotonic() + 0.5, clock_module._Timer(lambda: None, Broken()))  # type: ignore[arg-type]
    first = timers._thread
    timers.schedule(time.monotonic() + 0.7, clock_module._Timer(fired.set, None))
    assert fired.wait(WAIT)
    assert timers._thread is not first  # the first one ended, another fired the timer


def test_a_timer_set_when_no_thread_can_start_fires_once_one_can(monkeypatch: pytest.MonkeyPatch) -> None:
    # A breaker sets its timers in the middle of a state change: call_later must not raise there
    # (the change was left half done), and the timer must neither be lost nor unstoppable.
    timers = clock_module._TimerThread()
    monkeypatch.setattr(clock_module, "_TIMERS", timers)
    fired, cancelled = threading.Event(), threading.Event()

    def no_thread(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    with monkeypatch.context() as patched:
        patched.setattr(threading.Thread, "start", no_thread)
        MonotonicClock().call_later(0.01, fired.set)
        MonotonicClock().call_later(0.01, cancelled.set).cancel()
    assert timers._thread is None
    MonotonicClock().call_later(3600, lambda: None).cancel()  # the next schedule starts the thread
    assert fired.wait(WAIT)
    assert not cancelled.is_set()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork: POSIX only")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: a fork of a process with threads
def test_timers_waiting_at_a_fork_fire_in_the_child_too() -> None:
    # A pre-forking server (gunicorn --preload, Celery prefork) makes its breakers, and so their
    # monitors' timers, before it forks: the child's copies lost them (the child has no thread).
    ticks: list[float] = []
    monitor = Periodic(MonotonicClock(), 0.05, lambda now: not ticks.append(now))
    fired = threading.Event()
    MonotonicClock().call_later(0.2, fired.set)
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if both kept going
        try:
            ok = fired.wait(WAIT)
            started = len(ticks)
            time.sleep(1.0)  # 20 ticks due: one is enough, whatever the load
            ok = ok and len(ticks) > started
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    monitor.stop()
    assert os.waitstatus_to_exitcode(status) == 0
    assert fired.wait(WAIT)  # in the parent as well


def test_timers_due_at_once_outside_a_loop_share_a_bounded_number_of_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A burst (a thousand breakers opened together, their listeners slow) started a thread per
    # timer: a thousand threads alive at once.
    monkeypatch.setattr(clock_module, "_MAX_RUNNERS", 4)
    timers = clock_module._TimerThread()
    monkeypatch.setattr(clock_module, "_TIMERS", timers)
    lock = threading.Lock()
    running, most, threads = 0, 0, set()
    done = threading.Semaphore(0)

    def slow() -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            threads.add(threading.get_ident())
        time.sleep(0.01)
        with lock:
            running -= 1
        done.release()

    for _ in range(100):
        MonotonicClock().call_later(0, slow)
    for _ in range(100):
        assert done.acquire(timeout=WAIT)  # every one ran
    assert most <= 4
    assert len(threads) <= 4


def test_a_blocked_runner_holds_up_no_timer_while_another_can_start(monkeypatch: pytest.MonkeyPatch) -> None:
    timers = clock_module._TimerThread()
    monkeypatch.setattr(clock_module, "_TIMERS", timers)
    release, fired = threading.Event(), threading.Event()
    MonotonicClock().call_later(0, lambda: release.wait(WAIT))
    MonotonicClock().call_later(0.05, fired.set)
    try:
        assert fired.wait(WAIT)
    finally:
        release.set()


def test_runner_threads_end_when_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock_module, "_IDLE_EXIT", 0.05)
    timers = clock_module._TimerThread()
    monkeypatch.setattr(clock_module, "_TIMERS", timers)
    fired = threading.Event()
    MonotonicClock().call_later(0, fired.set)
    assert fired.wait(WAIT)
    deadline = time.monotonic() + WAIT
    while timers._runners._threads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert timers._runners._threads == 0


def test_a_runner_whose_timer_log_raises_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    # A runner that died with its timer would never be counted out: after _MAX_RUNNERS such
    # deaths no timer outside a loop would ever run again.
    monkeypatch.setattr(clock_module, "_MAX_RUNNERS", 1)
    timers = clock_module._TimerThread()
    monkeypatch.setattr(clock_module, "_TIMERS", timers)

    class RaisingLog:
        def exception(self, *args: object) -> None:
            raise SystemExit

    def fails() -> None:
        raise RuntimeError("a callback that fails")

    monkeypatch.setattr(clock_module, "logger", RaisingLog())
    fired = threading.Event()
    MonotonicClock().call_later(0, fails)
    MonotonicClock().call_later(0.05, fired.set)
    assert fired.wait(WAIT)


def test_timers_waiting_for_a_runner_at_a_fork_are_due_at_once_in_the_child(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # _timers_after_fork, run here as the child runs it: a timer the parent's timer thread had
    # passed to its runners, not yet run, is the child's to run.
    parent = clock_module._TimerThread()
    monkeypatch.setattr(clock_module, "_TIMERS", parent)
    monkeypatch.setattr(clock_module, "_TIMERS_LOCK", clock_module._TIMERS_LOCK)
    fired = threading.Event()
    parent._runners.ready.append(clock_module._Timer(fired.set, None))  # as at a fork: no runner yet
    clock_module._timers_after_fork()
    assert clock_module._TIMERS is not parent
    assert fired.wait(WAIT)


def test_a_timer_set_while_the_interpreter_shuts_down_still_fires() -> None:
    # From Python 3.12 no thread starts once the interpreter shuts down (it joins the non-daemon
    # threads after the main thread returns): the timer thread must be there already, and a
    # runner that cannot start leaves the timer to the timer thread.
    script = """
import threading, time
from breakerpanel import MonotonicClock, _clock
_clock._IDLE_EXIT = 0.05
first = threading.Event()
MonotonicClock().call_later(0, first.set)
assert first.wait(10)

def worker():
    time.sleep(0.5)  # the main thread has returned, and the runner has ended
    fired = threading.Event()
    MonotonicClock().call_later(0.05, fired.set)
    print("fired" if fired.wait(10) else "lost", flush=True)

threading.Thread(target=worker).start()
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "fired"), done.stderr
