"""The calling styles: decorator, call/acall, context managers; snapshots; listeners."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable

import pytest

import breakerpanel as breaker
from breakerpanel import (
    BreakerListener,
    CallRecorded,
    CallRejected,
    CircuitBreaker,
    CircuitOpenError,
    ManualClock,
    Outcome,
    RejectionReason,
    State,
    StateChanged,
    ignore_exceptions,
)

from .support import Boom, fail, succeed

MakeBreaker = Callable[..., CircuitBreaker]


async def test_decorates_async_functions(make_breaker: MakeBreaker) -> None:
    b = make_breaker()

    @b
    async def answer(question: str, *, polite: bool = False) -> str:
        """Answers."""
        return f"{question}? 42{'!' if polite else ''}"

    assert await answer("life", polite=True) == "life? 42!"
    assert answer.__name__ == "answer"
    assert answer.__doc__ == "Answers."
    assert asyncio.iscoroutinefunction(answer)
    assert b.snapshot().totals.successes == 1


def test_decorates_sync_functions_and_methods(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker(minimum_calls=1)

    class Client:
        def __init__(self) -> None:
            self.calls = 0

        @b
        def fetch(self, key: str) -> str:
            self.calls += 1
            if key == "bad":
                raise Boom
            return key.upper()

    client = Client()
    assert client.fetch("a") == "A"
    with pytest.raises(Boom):
        client.fetch("bad")
    with pytest.raises(CircuitOpenError):
        client.fetch("b")
    assert client.calls == 2


def test_refuses_generator_functions(make_breaker: MakeBreaker) -> None:
    b = make_breaker()

    def gen() -> object:
        yield 1

    async def agen() -> object:
        yield 1

    for fn in (gen, agen):
        with pytest.raises(TypeError, match="generator"):
            b(fn)  # type: ignore[call-overload]


async def test_context_managers_nest_and_stay_per_task(make_breaker: MakeBreaker) -> None:
    b = make_breaker()
    with b, b:
        pass

    async def work(i: int) -> int:
        async with b:
            await asyncio.sleep(0.001 * (i % 3))
            if i % 4 == 0:
                raise Boom
        return i

    results = await asyncio.gather(*(work(i) for i in range(20)), return_exceptions=True)
    totals = b.snapshot().totals
    assert sum(isinstance(r, Boom) for r in results) == 5
    assert (totals.successes, totals.failures) == (2 + 15, 5)


def test_exit_without_enter_is_an_error(make_breaker: MakeBreaker) -> None:
    with pytest.raises(RuntimeError, match="without a matching enter"):
        make_breaker().__exit__(None, None, None)


def test_rejection_in_with_does_not_run_the_body(make_breaker: MakeBreaker) -> None:
    b = make_breaker()
    b.force_open()
    ran = False
    with pytest.raises(CircuitOpenError), b:
        ran = True
    assert not ran


def test_snapshot_reports_rates_and_thresholds(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker(
        "qdrant.search",
        minimum_calls=4,
        failure_rate_threshold=0.6,
        slow_call_rate_threshold=0.8,
        slow_call_duration=0.5,
    )
    succeed(b, clock, duration=0.7)
    succeed(b, clock)
    fail(b, clock)
    snap = b.snapshot()
    assert snap.failure_rate is None
    assert snap.slow_call_rate is None
    succeed(b, clock)
    snap = b.snapshot()
    assert (snap.name, snap.state, snap.calls, snap.failures, snap.slow_calls) == (
        "qdrant.search",
        State.CLOSED,
        4,
        1,
        1,
    )
    assert (snap.failure_rate, snap.slow_call_rate) == (0.25, 0.25)
    assert (snap.failure_rate_threshold, snap.slow_call_rate_threshold, snap.slow_call_duration) == (0.6, 0.8, 0.5)
    assert snap.minimum_calls == 4
    assert snap.open_remaining is None
    assert snap.totals.calls == 4


class Recorder(BreakerListener):
    def __init__(self) -> None:
        self.events: list[object] = []

    def state_changed(self, event: StateChanged) -> None:
        self.events.append(event)

    def call_recorded(self, event: CallRecorded) -> None:
        self.events.append(event)

    def call_rejected(self, event: CallRejected) -> None:
        self.events.append(event)


def test_listeners_see_results_rejections_and_changes(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    b = make_breaker(minimum_calls=2, sliding_window_size=2, classifier=ignore_exceptions(KeyError))
    recorder = Recorder()
    b.add_listener(recorder)
    succeed(b, clock, duration=0.25)
    fail(b, clock, exc=KeyError("k"))
    fail(b, clock)
    with pytest.raises(CircuitOpenError):
        b.call(lambda: None)
    kinds = [(type(e).__name__, getattr(e, "outcome", getattr(e, "state", None))) for e in recorder.events]
    assert kinds == [
        ("CallRecorded", Outcome.SUCCESS),
        ("CallRecorded", Outcome.IGNORED),
        ("StateChanged", State.OPEN),
        ("CallRecorded", Outcome.FAILURE),
        ("CallRejected", State.OPEN),
    ]
    first = recorder.events[0]
    assert isinstance(first, CallRecorded)
    assert first.duration == 0.25
    assert first.breaker is b
    assert first.counted
    rejection = recorder.events[-1]
    assert isinstance(rejection, CallRejected)
    assert rejection.reason is RejectionReason.OPEN
    b.remove_listener(recorder)
    with pytest.raises(ValueError, match="not registered"):
        b.remove_listener(recorder)


def test_a_raising_listener_never_breaks_the_call(
    make_breaker: MakeBreaker, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(BreakerListener):
        def call_recorded(self, event: CallRecorded) -> None:
            raise RuntimeError("listener bug")

        def state_changed(self, event: StateChanged) -> None:
            raise RuntimeError("listener bug")

    recorder = Recorder()
    b = make_breaker(minimum_calls=1)
    b.add_listener(Broken())
    b.add_listener(recorder)
    with caplog.at_level(logging.ERROR, logger="breakerpanel"):
        assert succeed(b, clock) == "ok"
        fail(b, clock)
    assert b.state is State.OPEN
    assert len(recorder.events) == 3  # the broken listener did not stop the next one
    assert len([r for r in caplog.records if "raised in" in r.getMessage()]) == 3


def test_removing_the_last_listener_restores_the_fast_path(make_breaker: MakeBreaker, clock: ManualClock) -> None:
    def fast(breaker: CircuitBreaker) -> bool:
        return breaker._span_start < breaker._span_end

    b = make_breaker()
    assert fast(b)
    recorder = Recorder()
    b.add_listener(recorder)
    assert not fast(b)
    b.remove_listener(recorder)
    assert fast(b)
    succeed(b, clock)
    assert recorder.events == []


def test_public_names_are_exported_from_the_package() -> None:
    # Submodules (presets, integrations) become attributes once imported: they are not names.
    public = sorted(
        name for name in dir(breaker) if not name.startswith("_") and not inspect.ismodule(getattr(breaker, name))
    )
    assert sorted(breaker.__all__) == public
    assert breaker.CircuitBreaker.__module__ == "breakerpanel"
    assert breaker.CircuitOpenError.__module__ == "breakerpanel"
