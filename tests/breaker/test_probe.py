"""Health probes: a recovered dependency closes the breaker sooner than the fixed wait; a failing
probe extends the wait with backoff, within a bound. Time is a ManualClock: no wall-clock asserts."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from breakerpanel import (
    BreakerConfig,
    BreakerConfigError,
    BreakerListener,
    BreakerRegistry,
    CircuitBreaker,
    CircuitOpenError,
    ManualClock,
    ProbeRunner,
    State,
    StateChanged,
    TransitionReason,
    http_probe,
    probe_runner,
    rate_limited,
    running_probes,
)
from breakerpanel.config import load_config
from breakerpanel.integrations.fastapi import readiness_router
from demo.upstreams.app import create_app
from demo.upstreams.chaos import Chaos, Outage, Upstream
from demo.upstreams.server import UpstreamServer

from .support import Boom

WAIT = 60.0
CONFIG = BreakerConfig(minimum_calls=2, sliding_window_size=2, wait_in_open=WAIT, permitted_calls_in_half_open=1)


async def settle() -> None:
    """Let the probe task run what the clock made due (no real time passes)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait (real time, for real I/O) until ``condition`` holds; fails after 10 s."""
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 - the condition changes in the server thread
            await asyncio.sleep(0.005)


def trip(breaker: CircuitBreaker) -> None:
    def boom() -> None:
        raise Boom

    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(boom)
    assert breaker.state is State.OPEN


async def test_a_passing_probe_half_opens_at_once_and_the_next_call_closes() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("dep", CONFIG, clock=clock)
    healthy = False

    async def probe() -> bool:
        return healthy

    async with ProbeRunner(breaker, probe, interval=1, jitter=0) as runner:
        trip(breaker)
        await settle()
        clock.advance(1)
        await settle()
        assert runner.results == {"success": 0, "failure": 1}
        assert breaker.state is State.OPEN
        healthy = True
        clock.advance(2)  # the second probe comes after a backoff of 2 s
        await settle()
        assert runner.results == {"success": 1, "failure": 1}
        assert breaker.state is State.HALF_OPEN
        breaker.call(lambda: "ok")
    assert breaker.state is State.CLOSED
    assert clock.now() == 3.0 < WAIT


async def test_failing_probes_extend_the_wait_with_backoff_within_max_extension() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("dep", CONFIG.replace(wait_in_open=5.0), clock=clock)

    async def down() -> None:
        raise ConnectionError("refused")

    runner = ProbeRunner(breaker, down, interval=1, multiplier=2, max_interval=8, jitter=0, max_extension=10)
    async with runner:
        trip(breaker)
        await settle()
        remaining = []
        for _ in range(20):
            clock.advance(1)
            await settle()
            snap = breaker.snapshot()
            remaining.append(snap.open_remaining)
            if clock.now() >= 15:
                break
    # Probes at 1, 3, 7, 15 (delays 1, 2, 4, 8): each failure keeps it open until the next one.
    assert runner.results["failure"] >= 3
    assert runner.last_error == "ConnectionError: refused"
    assert breaker.snapshot().open_remaining == 0.0  # the bound: 5 s wait + 10 s extension
    assert max(r for r in remaining if r is not None) <= 8.0
    assert breaker.is_rejecting() is False  # at 15 s: the next call is the breaker's own probe


async def test_a_rate_limited_breaker_is_not_probed() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("llm", CONFIG, clock=clock)
    probed = 0

    async def probe() -> bool:
        nonlocal probed
        probed += 1
        return True

    async with ProbeRunner(breaker, probe, interval=1, jitter=0):
        breaker.acquire().record(rate_limited(retry_after=30.0))
        assert breaker.state is State.OPEN
        await settle()
        clock.advance(5)
        await settle()
    assert probed == 0


async def test_a_runner_probes_a_breaker_already_open_when_started() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("dep", CONFIG, clock=clock)
    trip(breaker)

    async def probe() -> bool:
        return True

    async with ProbeRunner(breaker, probe, interval=1, jitter=0):
        await settle()
        clock.advance(1)
        await settle()
    assert breaker.state is State.HALF_OPEN
    transitions = breaker.snapshot().totals.transitions
    assert transitions[(State.OPEN, State.HALF_OPEN)] == 1


def test_one_probe_per_breaker_and_bad_settings_name_the_key() -> None:
    breaker = CircuitBreaker("dep", CONFIG, clock=ManualClock())

    async def probe() -> bool:
        return True

    with pytest.raises(BreakerConfigError) as caught:
        ProbeRunner(breaker, probe, interval=10, max_interval=1)
    assert caught.value.field == "probe.max_interval"
    with pytest.raises(BreakerConfigError) as caught:
        ProbeRunner(breaker, probe, jitter=2)
    assert caught.value.field == "probe.jitter"
    ProbeRunner(breaker, probe)
    with pytest.raises(BreakerConfigError, match="already has a probe"):
        ProbeRunner(breaker, probe)


async def test_probes_close_a_breaker_faster_than_the_fixed_wait_on_a_recovered_upstream() -> None:
    chaos = Chaos()
    chaos.set(Upstream.QDRANT, Outage())
    clock = ManualClock()
    probed = CircuitBreaker("qdrant", CONFIG, clock=clock)
    fixed = CircuitBreaker("qdrant-fixed-wait", CONFIG, clock=clock)
    async with UpstreamServer(create_app(chaos=chaos)) as server, httpx.AsyncClient(base_url=server.url) as client:

        async def collections() -> int:
            response = await client.get("/collections")
            response.raise_for_status()
            return response.status_code

        for breaker in (probed, fixed):
            for _ in range(2):
                with pytest.raises(httpx.HTTPStatusError):
                    await breaker.acall(collections)
            assert breaker.state is State.OPEN

        runner = ProbeRunner(probed, http_probe(f"{server.url}/", client=client), interval=1, jitter=0)
        async with runner:
            await settle()  # the runner waits on the clock now
            clock.advance(1)  # first probe: qdrant is still down
            await eventually(lambda: runner.results["failure"] == 1)
            await settle()  # ... and waits for the next one
            assert probed.state is State.OPEN
            chaos.clear(Upstream.QDRANT)  # it recovers
            clock.advance(2)  # second probe, after the backoff
            await eventually(lambda: probed.state is State.HALF_OPEN)
            assert await probed.acall(collections) == 200
        assert probed.state is State.CLOSED
        # The same outage without a probe: still open, its wait far from over.
        assert fixed.state is State.OPEN
        with pytest.raises(CircuitOpenError):
            await fixed.acall(collections)
        assert clock.now() < WAIT


async def test_yaml_probes_and_the_readiness_endpoint(tmp_path: Path) -> None:
    path = tmp_path / "breakers.yaml"
    path.write_text(
        textwrap.dedent(
            """
            defaults: {minimum_calls: 2, sliding_window_size: 2, wait_in_open: 1m, permitted_calls_in_half_open: 1}
            services:
              qdrant:
                probe: {type: callable, function: "tests.breaker.test_probe:always_healthy", interval: 1s, jitter: 0}
                breaker:
                  adaptive: {floor: 0.2, ceiling: 0.7}
                  forecast: {lookback: 5m, horizon: 5m}
              postgres: {}
            """
        )
    )
    clock = ManualClock()
    registry = load_config(path).build(clock=clock).registry
    runner = probe_runner(registry["qdrant"])
    assert runner is not None
    assert runner.interval == 1.0
    assert probe_runner(registry["postgres"]) is None
    app = FastAPI()
    app.include_router(readiness_router(registry, required=("postgres",)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
        body = (await client.get("/health/ready")).json()
        assert body["status"] == "ready"
        assert [s["name"] for s in body["breakers"]["services"]] == ["qdrant", "postgres"]
        assert body["health"]["qdrant"]["adaptive"]["failure_rate_threshold"] == 0.5
        assert body["health"]["qdrant"]["probe"]["results"] == {"success": 0, "failure": 0}
        async with running_probes(registry) as runners:
            assert runners == [runner]
            trip(registry["qdrant"])
            response = await client.get("/health/ready")
            assert (response.status_code, response.json()["status"]) == (200, "degraded")
            await settle()
            clock.advance(1)
            await settle()
            assert registry["qdrant"].state is State.HALF_OPEN
        trip(registry["postgres"])
        response = await client.get("/health/ready")
        assert response.status_code == 503
        assert response.json()["unavailable"] == ["postgres"]
    assert TransitionReason.PROBE_SUCCEEDED.value == "probe_succeeded"


async def always_healthy() -> bool:
    return True


def test_readiness_rejects_unknown_required_names() -> None:
    with pytest.raises(ValueError, match="nope"):
        readiness_router(BreakerRegistry(), required=("nope",))


@pytest.mark.parametrize(
    ("probe", "key"),
    [
        ("{type: http}", "services.qdrant.probe.url"),
        ("{type: callable}", "services.qdrant.probe.function"),
        ("{type: ping, url: x}", "services.qdrant.probe.type"),
        ("{type: http, url: x, interval: 10s, max_interval: 1s}", "services.qdrant.probe"),
        ("{type: http, url: x, jitter: 3}", "services.qdrant.probe.jitter"),
    ],
)
def test_probe_settings_errors_name_the_key(tmp_path: Path, probe: str, key: str) -> None:
    from breakerpanel.config import ConfigFileError

    path = tmp_path / "breakers.yaml"
    path.write_text(f"services:\n  qdrant:\n    probe: {probe}\n")
    with pytest.raises(ConfigFileError) as caught:
        load_config(path)
    assert [k for _, k, _ in caught.value.problems] == [key]


async def test_a_passing_probe_half_opens_the_endpoints_that_opened_with_their_service() -> None:
    # The endpoint tripped on the same outage: without the cascade it would keep the recovered
    # provider out for the rest of its own wait (60 s here), whatever the probe found.
    clock = ManualClock()
    service = CircuitBreaker("openai", CONFIG, clock=clock)
    chat = CircuitBreaker("openai.chat", CONFIG, parent=service)
    healthy = False

    async def probe() -> bool:
        return healthy

    async with ProbeRunner(service, probe, interval=1, jitter=0):  # dependents: the children
        trip(chat)  # the endpoint's failures count in the service's window too: both open
        assert (service.state, chat.state) == (State.OPEN, State.OPEN)
        await settle()
        clock.advance(1)
        await settle()
        assert (service.state, chat.state) == (State.OPEN, State.OPEN)  # the probe failed
        healthy = True
        clock.advance(2)
        await settle()
        assert (service.state, chat.state) == (State.HALF_OPEN, State.HALF_OPEN)
        assert chat.call(lambda: "ok") == "ok"  # one trial call closes both
        assert (service.state, chat.state) == (State.CLOSED, State.CLOSED)
    assert clock.now() == 3.0 < WAIT


async def test_dependents_opened_by_a_rate_limit_or_by_hand_are_left_as_they_are() -> None:
    clock = ManualClock()
    service = CircuitBreaker("openai", CONFIG, clock=clock)
    tripped, limited, pinned, closed = (CircuitBreaker(n, CONFIG, clock=clock) for n in ("a", "b", "c", "d"))

    async def probe() -> bool:
        return True

    async with ProbeRunner(service, probe, interval=1, jitter=0, dependents=lambda: [tripped, limited, pinned, closed]):
        trip(tripped)
        limited.acquire().record(rate_limited(retry_after=30.0))  # the server said when
        pinned.force_open()
        trip(service)
        await settle()
        clock.advance(1)
        await settle()
        states = [b.state for b in (service, tripped, limited, pinned, closed)]
    assert states == [State.HALF_OPEN, State.HALF_OPEN, State.OPEN, State.FORCED_OPEN, State.CLOSED]


async def test_yaml_probes_half_open_the_features_that_need_the_service(tmp_path: Path) -> None:
    path = tmp_path / "breakers.yaml"
    path.write_text(
        textwrap.dedent(
            """
            defaults: {minimum_calls: 2, sliding_window_size: 2, wait_in_open: 1m, permitted_calls_in_half_open: 1}
            services:
              openai:
                probe: {type: callable, function: "tests.breaker.test_probe:always_healthy", interval: 1s, jitter: 0}
                endpoints: {chat: {}, embeddings: {}}
              qdrant:
                endpoints: {search: {}}
            features:
              answer: {required: [openai.chat]}
              search: {required: [qdrant.search], optional: [openai]}
              lookup: {required: [qdrant]}
            """
        )
    )
    clock = ManualClock()
    registry = load_config(path).build(clock=clock).registry
    async with running_probes(registry):
        for name in ("openai.chat", "answer", "search", "lookup", "qdrant.search"):
            trip(registry[name])
        assert registry["openai"].state is State.OPEN
        await settle()
        clock.advance(1)
        await settle()
        states = {name: registry[name].state for name in ("openai", "openai.chat", "answer", "search", "lookup")}
    assert states == {
        "openai": State.HALF_OPEN,
        "openai.chat": State.HALF_OPEN,
        "answer": State.HALF_OPEN,  # needs openai.chat
        "search": State.HALF_OPEN,  # needs openai (optional)
        "lookup": State.OPEN,  # needs only qdrant: its outage is not over
    }
    assert registry["qdrant.search"].state is State.OPEN


async def test_a_failed_probe_moves_the_open_timer_to_the_next_probe() -> None:
    # With automatic transitions the breaker's own timer would half-open it at 2 s; a failed probe
    # at 1 s keeps it open until the next probe (at 3 s), and the timer follows.
    clock = ManualClock()
    config = CONFIG.replace(wait_in_open=2.0, automatic_transition_to_half_open=True)
    breaker = CircuitBreaker("dep", config, clock=clock)
    changes: list[tuple[State, TransitionReason]] = []

    class Changes(BreakerListener):
        def state_changed(self, event: StateChanged) -> None:
            changes.append((event.state, event.reason))

    async def probe() -> bool:
        return False

    breaker.add_listener(Changes())
    async with ProbeRunner(breaker, probe, interval=1, multiplier=2, max_interval=8, jitter=0) as runner:
        trip(breaker)
        await settle()
        clock.advance(1)  # probe 1 fails: open until 1 + 2 = 3
        await settle()
        assert breaker.snapshot().open_remaining == 2.0
        clock.advance(1.5)  # 2.5 s: past the breaker's own wait, before the next probe
        await settle()
        assert breaker.snapshot().state is State.OPEN
        clock.advance(0.5)  # 3 s: the moved timer (or the probe) ends the wait
        await settle()
        assert breaker.snapshot().state is State.HALF_OPEN
    assert runner.results["failure"] >= 1
    assert changes[0] == (State.OPEN, TransitionReason.FAILURE_RATE)
    assert [state for state, _ in changes] == [State.OPEN, State.HALF_OPEN]


async def test_breakers_a_rate_limit_opened_before_the_runner_started_are_left_alone() -> None:
    # The runner learned why a breaker opened only from events after start(): one a 429 had
    # opened before was probed, and a dependent half-opened. The snapshot now says why.
    clock = ManualClock()
    service = CircuitBreaker("svc", CONFIG, clock=clock)
    limited = CircuitBreaker("feature", CONFIG, clock=clock)
    probed = 0

    async def probe() -> bool:
        nonlocal probed
        probed += 1
        return True

    limited.acquire().record(rate_limited(retry_after=45.0))
    assert limited.snapshot().state_reason is TransitionReason.RATE_LIMITED
    async with ProbeRunner(limited, probe, interval=1, jitter=0):
        await settle()
        clock.advance(2)
        await settle()
    assert (probed, limited.state) == (0, State.OPEN)
    trip(service)
    async with ProbeRunner(service, probe, interval=1, jitter=0, dependents=lambda: [limited]):
        await settle()
        clock.advance(1)
        await settle()
    assert (probed, service.state, limited.state) == (1, State.HALF_OPEN, State.OPEN)


async def test_a_probe_that_is_not_async_is_said_loudly_and_holds_nothing_open(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Awaiting its bool raised TypeError, counted as a failure: each one held the recovered
    # dependency out longer, up to max_extension (300 s), logged at DEBUG only.
    clock = ManualClock()
    breaker = CircuitBreaker("dep", CONFIG.replace(wait_in_open=5.0), clock=clock)
    runner = ProbeRunner(breaker, lambda: True, interval=1, jitter=0)  # type: ignore[arg-type, return-value]
    async with runner:
        trip(breaker)
        for _ in range(6):
            await settle()
            clock.advance(1)
        await settle()
    assert runner.results == {"success": 0, "failure": 0}
    assert runner.last_error is not None
    assert "not an awaitable" in runner.last_error
    assert any(r.levelname == "ERROR" and "must be async" in r.getMessage() for r in caplog.records)
    assert breaker.snapshot().open_remaining == 0.0  # its own 5 s wait, not extended


async def test_a_probes_own_timeout_is_reported_as_its_own() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("dep", CONFIG, clock=clock)

    async def probe() -> bool:
        raise TimeoutError("connect to 10.0.0.7:6333 timed out after 0.2s")

    async with ProbeRunner(breaker, probe, interval=1, jitter=0, timeout=5) as runner:
        trip(breaker)
        await settle()
        clock.advance(1)
        await settle()
    assert runner.last_error == "TimeoutError: connect to 10.0.0.7:6333 timed out after 0.2s"


async def test_a_dropped_breaker_is_collected_and_its_runner_stops() -> None:
    # The runner held its breaker, and _RUNNERS (weak keys) held the runner: the breaker lived
    # for good, its probe task too.
    import gc
    import weakref

    async def probe() -> bool:
        return True

    breaker = CircuitBreaker("dropped", CONFIG, clock=ManualClock())
    task = ProbeRunner(breaker, probe).start()
    ref = weakref.ref(breaker)
    del breaker
    gc.collect()
    await settle()
    assert ref() is None
    assert task.cancelled()
