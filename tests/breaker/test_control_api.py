"""A monitor and a health probe written outside the package, on :class:`BreakerControl` only.

What the package's own adaptive thresholds, trip forecast and active probes do to a breaker goes
through the same public surface, so a team can write its own: here a monitor that tightens the
threshold while a dependency is known to be in maintenance and warns when the rate climbs, and a
probe that reopens or half-opens a breaker by what a health check says.
"""

from __future__ import annotations

import pytest

from breakerpanel import (
    BreakerConfig,
    BreakerConfigError,
    BreakerControl,
    BreakerListener,
    CircuitBreaker,
    ManualClock,
    State,
    TransitionReason,
    TripPredicted,
)

from .support import Recorder, private_names


class MaintenanceMonitor:
    """While ``maintenance`` is on, the breaker trips at half its configured failure rate, and a
    window already past that half is announced as a coming trip."""

    def __init__(self, breaker: BreakerControl) -> None:
        self.breaker = breaker
        self.maintenance = False

    def tick(self) -> None:
        config = self.breaker.config
        factor = 0.5 if self.maintenance else 1.0
        threshold = config.failure_rate_threshold * factor
        self.breaker.set_thresholds(threshold, config.slow_call_duration)
        snap = self.breaker.snapshot()
        if snap.failure_rate is not None and threshold * 0.5 <= snap.failure_rate < threshold:
            at = self.breaker.clock.now()
            self.breaker.publish_trip_forecast(snap.failure_rate, threshold, threshold, 60.0, None, at)


class HealthCheckProbe:
    """Asks a health check about an open breaker: healthy lets trial calls through now, unhealthy
    keeps it open ``backoff`` seconds more. A result for a breaker that moved on changes nothing."""

    def __init__(self, breaker: BreakerControl, backoff: float) -> None:
        self.breaker = breaker
        self.backoff = backoff

    def start(self) -> int | None:
        snap = self.breaker.snapshot()
        return snap.generation if snap.state is State.OPEN else None

    def finish(self, generation: int, healthy: bool) -> bool:
        if healthy:
            return self.breaker.half_open_after_probe(generation)
        return self.breaker.hold_open_until(generation, self.breaker.clock.now() + self.backoff)


def test_they_use_public_names_only() -> None:
    for cls in (MaintenanceMonitor, HealthCheckProbe):
        private = private_names(cls)
        assert private == [], f"{cls.__name__} reaches into private names: {private}"


def _fail() -> None:
    raise ConnectionError("down")


def _ok() -> None:
    return None


class Forecasts(BreakerListener):
    def __init__(self) -> None:
        self.seen: list[TripPredicted] = []

    def trip_predicted(self, event: TripPredicted) -> None:
        self.seen.append(event)


def test_a_monitor_moves_the_threshold_and_announces_a_trip() -> None:
    config = BreakerConfig(minimum_calls=4, sliding_window_size=4, failure_rate_threshold=0.5)
    breaker = CircuitBreaker("vector-db", config, clock=ManualClock())
    forecasts = Forecasts()
    breaker.add_listener(forecasts)
    monitor = MaintenanceMonitor(breaker)
    for _ in range(3):
        breaker.call(_ok)
    with pytest.raises(ConnectionError):
        breaker.call(_fail)

    monitor.tick()  # 1 failure in 4: half-way to 0.5
    assert breaker.snapshot().failure_rate_threshold == 0.5
    assert [(e.breaker, e.failure_rate, e.threshold) for e in forecasts.seen] == [(breaker, 0.25, 0.5)]

    monitor.maintenance = True
    monitor.tick()
    assert breaker.snapshot().failure_rate_threshold == 0.25
    assert len(forecasts.seen) == 1  # at the threshold already: no forecast
    breaker.call(_ok)  # still 1 failure in the last 4: trips at 0.25, would not at 0.5
    assert breaker.state is State.OPEN


def test_thresholds_out_of_range_are_refused_by_field() -> None:
    breaker = CircuitBreaker("llm")
    with pytest.raises(BreakerConfigError) as error:
        breaker.set_thresholds(1.5, 1.0)
    assert error.value.field == "failure_rate_threshold"
    with pytest.raises(BreakerConfigError) as error:
        breaker.set_thresholds(0.5, 0.0)
    assert error.value.field == "slow_call_duration"
    assert breaker.snapshot().failure_rate_threshold == breaker.config.failure_rate_threshold


def test_a_probe_half_opens_or_holds_open_only_the_generation_it_saw() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("llm", BreakerConfig(minimum_calls=2, sliding_window_size=2, wait_in_open=10), clock=clock)
    recorder = Recorder()
    breaker.add_listener(recorder)
    probe = HealthCheckProbe(breaker, backoff=60)
    assert probe.start() is None  # closed: nothing to probe
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(_fail)
    generation = probe.start()
    assert generation is not None

    assert probe.finish(generation, healthy=False)
    assert breaker.snapshot().open_remaining == pytest.approx(60)
    clock.advance(30)
    assert breaker.state is State.OPEN  # the configured 10 s wait was extended

    assert probe.finish(generation, healthy=True)
    assert breaker.state is State.HALF_OPEN
    assert recorder.changes[-1].reason is TransitionReason.PROBE_SUCCEEDED
    assert not probe.finish(generation, healthy=True)  # stale: the breaker moved on
    assert not probe.finish(generation, healthy=False)


def test_a_listener_sees_the_breaker_as_its_control_surface() -> None:
    seen: list[BreakerControl] = []

    class Names(BreakerListener):
        def trip_predicted(self, event: TripPredicted) -> None:
            seen.append(event.breaker)

    breaker = CircuitBreaker("llm")
    breaker.add_listener(Names())
    breaker.publish_trip_forecast(0.2, 0.6, 0.5, 60.0, 30.0, 0.0)
    assert seen == [breaker]
    assert seen[0].name == "llm"
