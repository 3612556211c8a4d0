"""Parent and child breakers (service > endpoint), two-step permits, fallback accounting."""

from __future__ import annotations

import asyncio

import pytest

from breakerpanel import (
    BreakerConfig,
    BreakerConfigError,
    BreakerListener,
    BreakerRegistry,
    CircuitBreaker,
    CircuitOpenError,
    FallbackType,
    FallbackUsed,
    Level,
    ManualClock,
    Outcome,
    RejectionReason,
    State,
    StateChanged,
    ignore_exceptions,
)

from .support import Boom, fail, succeed


def tree(clock: ManualClock, **service_options: object) -> tuple[CircuitBreaker, CircuitBreaker, CircuitBreaker]:
    options = {"minimum_calls": 4, "sliding_window_size": 4, "wait_in_open": 10.0, **service_options}
    service = CircuitBreaker("openai", BreakerConfig(**options), clock=clock)  # type: ignore[arg-type]
    endpoint_options = {"minimum_calls": 100, "permitted_calls_in_half_open": 1, "wait_in_open": 10.0}
    chat = CircuitBreaker("openai.chat", BreakerConfig(**endpoint_options), parent=service)  # type: ignore[arg-type]
    embeddings = CircuitBreaker("openai.embeddings", BreakerConfig(**endpoint_options), parent=service)  # type: ignore[arg-type]
    return service, chat, embeddings


def test_levels_parents_and_children(clock: ManualClock) -> None:
    service, chat, embeddings = tree(clock)
    assert (service.level, chat.level) == (Level.SERVICE, Level.ENDPOINT)
    assert chat.parent is service
    assert service.children == (chat, embeddings)
    snap = chat.snapshot()
    assert (snap.level, snap.parent) == (Level.ENDPOINT, "openai")
    with pytest.raises(BreakerConfigError, match="at most two levels"):
        CircuitBreaker("openai.chat.stream", parent=chat)
    with pytest.raises(BreakerConfigError, match="level"):
        CircuitBreaker("x", level="planet")


def test_endpoint_outcomes_count_in_both_windows(clock: ManualClock) -> None:
    service, chat, embeddings = tree(clock)
    succeed(chat, clock)
    fail(chat, clock)
    succeed(embeddings, clock)
    assert (chat.snapshot().calls, chat.snapshot().failures) == (2, 1)
    assert (embeddings.snapshot().calls, embeddings.snapshot().failures) == (1, 0)
    assert (service.snapshot().calls, service.snapshot().failures) == (3, 1)


def test_service_trips_on_the_rate_across_its_endpoints(clock: ManualClock) -> None:
    service, chat, embeddings = tree(clock, failure_rate_threshold=0.5)
    fail(chat, clock)
    succeed(chat, clock)
    fail(embeddings, clock)
    assert service.state is State.CLOSED
    succeed(embeddings, clock)  # 2 of 4 across endpoints; each endpoint alone is at 1 of 2
    assert service.state is State.OPEN
    assert (chat.state, embeddings.state) == (State.CLOSED, State.CLOSED)


def test_open_service_rejects_every_endpoint_without_touching_their_windows(clock: ManualClock) -> None:
    service, chat, embeddings = tree(clock)
    service.force_open(30)
    for endpoint in (chat, embeddings):
        with pytest.raises(CircuitOpenError) as info:
            endpoint.call(lambda: "never")
        error = info.value
        assert error.reason is RejectionReason.PARENT_OPEN
        assert error.breaker_name == endpoint.name
        assert error.origin == "openai"
        assert error.remaining == pytest.approx(30)
        assert "'openai' is open" in str(error)
        snap = endpoint.snapshot()
        assert (snap.state, snap.calls) == (State.CLOSED, 0)
        assert snap.totals.rejected[RejectionReason.PARENT_OPEN] == 1
    assert service.snapshot().totals.rejected[RejectionReason.FORCED_OPEN] == 2
    assert chat.is_rejecting()
    service.force_close()
    assert not chat.is_rejecting()
    assert chat.call(lambda: "ok") == "ok"


def test_endpoint_calls_probe_a_half_open_service(clock: ManualClock) -> None:
    service, chat, _ = tree(clock, permitted_calls_in_half_open=2)
    service.force_open(10)
    clock.advance(10)
    with chat, chat:  # two probes in flight, through the endpoint
        with pytest.raises(CircuitOpenError) as info:
            chat.call(lambda: "third")
        assert info.value.reason is RejectionReason.PARENT_OPEN
    assert service.state is State.CLOSED


def test_rejection_by_the_endpoint_gives_the_service_permit_back(clock: ManualClock) -> None:
    service, chat, embeddings = tree(clock, permitted_calls_in_half_open=1)
    chat.force_open()
    service.force_open(10)
    clock.advance(10)
    with pytest.raises(CircuitOpenError) as info:
        chat.call(lambda: "never")  # the service admitted it as a probe; the endpoint said no
    assert info.value.reason is RejectionReason.FORCED_OPEN
    assert service.snapshot().half_open_in_flight == 0
    assert embeddings.call(lambda: "probe") == "probe"  # the permit was there for another call
    assert service.state is State.CLOSED


async def test_async_calls_and_cancellation_through_an_endpoint(clock: ManualClock) -> None:
    service, chat, _ = tree(clock, permitted_calls_in_half_open=1)
    service.force_open(10)
    clock.advance(10)
    task = asyncio.create_task(chat.acall(asyncio.sleep, 60))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert service.snapshot().half_open_in_flight == 0
    assert await chat.acall(asyncio.sleep, 0, "ok") == "ok"
    assert service.state is State.CLOSED


def test_late_results_count_in_neither_window_after_a_parent_change(clock: ManualClock) -> None:
    service, chat, _ = tree(clock)
    permit = chat.acquire()
    service.force_open()
    service.force_close()
    permit.failure("late")
    assert service.snapshot().failures == 0  # the service changed state meanwhile
    assert chat.snapshot().failures == 1  # the endpoint did not
    assert chat.snapshot().totals.failures_by_type == {"late": 1}


class TestPermits:
    def test_first_outcome_wins(self, clock: ManualClock) -> None:
        b = CircuitBreaker("s", BreakerConfig(minimum_calls=1), clock=clock)
        permit = b.acquire()
        clock.advance(2.5)
        permit.success()
        permit.failure()
        permit.cancel()
        snap = b.snapshot()
        assert permit.done
        assert (snap.totals.successes, snap.totals.failures) == (1, 0)

    def test_duration_override_decides_slowness(self, clock: ManualClock) -> None:
        b = CircuitBreaker("s", BreakerConfig(slow_call_duration=1.0), clock=clock)
        permit = b.acquire()
        clock.advance(30)  # a long stream...
        permit.success(duration=0.2)  # ...whose first token came quickly
        assert b.snapshot().slow_calls == 0

    def test_exceptions_and_results_are_classified(self, clock: ManualClock) -> None:
        b = CircuitBreaker("s", BreakerConfig(classifier=ignore_exceptions(KeyError)), clock=clock)
        b.acquire().exception(KeyError("k"))
        b.acquire().exception(Boom())
        b.acquire().exception(asyncio.CancelledError())
        b.acquire().result("fine")
        totals = b.snapshot().totals
        assert (totals.successes, totals.failures, totals.ignored) == (1, 1, 2)

    def test_rejected_acquire_raises(self, clock: ManualClock) -> None:
        b = CircuitBreaker("s", clock=clock)
        b.force_open()
        with pytest.raises(CircuitOpenError):
            b.acquire()

    def test_cancelled_probe_permit_goes_back(self, clock: ManualClock) -> None:
        b = CircuitBreaker("s", BreakerConfig(permitted_calls_in_half_open=1, wait_in_open=1), clock=clock)
        b.force_open(1)
        clock.advance(1)
        permit = b.acquire()
        with pytest.raises(CircuitOpenError):
            b.acquire()
        permit.cancel()
        b.acquire().success()
        assert b.state is State.CLOSED


def test_fallback_uses_are_counted_and_published(clock: ManualClock) -> None:
    seen: list[FallbackUsed] = []

    class Recorder(BreakerListener):
        def fallback_used(self, event: FallbackUsed) -> None:
            seen.append(event)

    b = CircuitBreaker("answer", clock=clock, listeners=[Recorder()])
    b.record_fallback(FallbackType.ALTERNATE, succeeded=False, step="anthropic", error=Boom())
    b.record_fallback(FallbackType.CACHE, succeeded=True)
    assert b.snapshot().totals.fallbacks == {
        (FallbackType.ALTERNATE, Outcome.FAILURE): 1,
        (FallbackType.CACHE, Outcome.SUCCESS): 1,
    }
    assert [(e.step, e.outcome) for e in seen] == [("anthropic", Outcome.FAILURE), ("cache", Outcome.SUCCESS)]
    assert isinstance(seen[0].error, Boom)


@pytest.mark.parametrize("close", ["reset", "force_close"])
def test_an_endpoint_closed_again_still_asks_its_open_service(clock: ManualClock, close: str) -> None:
    # A closed endpoint may not take the lock-free path of a breaker without a parent: its service
    # must still be asked, or an open service would stop rejecting the endpoint's calls once the
    # endpoint itself had been closed again.
    service, chat, _ = tree(clock)
    chat.force_open()
    getattr(chat, close)()
    assert chat.state is State.CLOSED
    service.force_open()
    with pytest.raises(CircuitOpenError) as caught:
        chat.call(lambda: "answer")
    assert (caught.value.reason, caught.value.origin) == (RejectionReason.PARENT_OPEN, "openai")
    with pytest.raises(CircuitOpenError):
        asyncio.run(chat.acall(asyncio.sleep, 0))
    service.reset()
    assert chat.call(lambda: "answer") == "answer"


def test_a_rejected_registration_leaves_no_child_behind() -> None:
    # The endpoint joined its service's children as it was made, before the duplicate name was
    # refused: tree() and the probe's dependents listed it.
    registry = BreakerRegistry()
    service = registry.service("openai")
    registry.endpoint("openai.chat")
    for name in ("openai.chat", "openai"):
        with pytest.raises(BreakerConfigError):
            registry.endpoint(name, service="openai")
    assert [child.name for child in service.children] == ["openai.chat"]


def test_a_watcher_that_raises_stops_no_other_and_leaves_the_breaker_usable(caplog: pytest.LogCaptureFixture) -> None:
    registry = BreakerRegistry()
    seen: list[str] = []

    def broken(breaker: CircuitBreaker) -> None:
        raise RuntimeError("watcher bug")

    registry.watch(broken)
    registry.watch(lambda breaker: seen.append(breaker.name))
    registry.service("redis")  # raised, and the second watcher never heard of it
    assert seen == ["redis"]
    assert "watcher bug" in caplog.text
    assert registry["redis"].call(lambda: "ok") == "ok"


def test_a_listener_added_while_a_breaker_is_being_registered_reaches_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # The breaker took the listeners in force when it was made; add_listener reached only the
    # breakers registered already: this one got neither.
    registry = BreakerRegistry()
    heard: list[str] = []

    class Heard(BreakerListener):
        def state_changed(self, event: StateChanged) -> None:
            heard.append(event.breaker.name)

    register = registry._add

    def listener_added_meanwhile(breaker: CircuitBreaker) -> CircuitBreaker:
        registry.add_listener(Heard())
        return register(breaker)

    monkeypatch.setattr(registry, "_add", listener_added_meanwhile)
    registry.service("openai").force_open()
    assert heard == ["openai"]
