"""Adaptive thresholds: bounded for any history, quiet on a stable baseline, tripping on a step."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from breakerpanel import (
    AdaptiveThresholds,
    BreakerConfig,
    BreakerConfigError,
    CircuitBreaker,
    CircuitOpenError,
    ManualClock,
    State,
    adaptive_controller,
)
from breakerpanel._adaptive import AdaptiveModel, burn_rate, histogram_quantile

from .support import Boom

# ---------------------------------------------------------------------- the model alone

fractions = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@st.composite
def adaptive_settings(draw: st.DrawFn) -> AdaptiveThresholds:
    ceiling = draw(st.floats(min_value=0.05, max_value=1.0))
    floor = draw(st.floats(min_value=0.01, max_value=ceiling))
    lo = draw(st.floats(min_value=0.001, max_value=10.0))
    hi = draw(st.floats(min_value=lo, max_value=100.0))
    return AdaptiveThresholds(
        margin=draw(fractions),
        floor=floor,
        ceiling=ceiling,
        half_life=draw(st.floats(min_value=1.0, max_value=10_000.0)),
        interval=draw(st.floats(min_value=0.5, max_value=60.0)),
        warmup=draw(st.integers(min_value=1, max_value=10)),
        max_step=draw(st.floats(min_value=0.001, max_value=1.0)),
        latency_factor=draw(st.floats(min_value=1.0, max_value=10.0)),
        slow_call_duration_floor=lo,
        slow_call_duration_ceiling=hi,
        slo_target=draw(st.none() | st.floats(min_value=0.5, max_value=0.9999)),
    )


samples = st.lists(
    st.tuples(
        st.booleans(),  # learning (closed)
        st.none() | fractions,  # window failure rate
        st.integers(min_value=0, max_value=1000),  # new calls
        fractions,  # share of them that failed or were rejected
        st.none() | st.floats(min_value=0.0, max_value=1e6, allow_nan=False),  # latency quantile
    ),
    max_size=200,
)


@given(adaptive_settings(), fractions.filter(lambda x: x > 0), samples)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_the_thresholds_in_force_stay_within_bounds_for_any_history(
    s: AdaptiveThresholds, initial: float, history: list[tuple[bool, float | None, int, float, float | None]]
) -> None:
    model = AdaptiveModel(s, initial_threshold=initial, initial_slow_call_duration=1.0, minimum_calls=10)
    assert s.slow_call_duration_floor is not None
    assert s.slow_call_duration_ceiling is not None
    calls = errors = 0
    now = 0.0
    for learning, rate, new_calls, error_share, latency in history:
        now += s.interval
        calls += new_calls
        errors += round(new_calls * error_share)
        before = model.adapted_threshold
        model.observe(now, learning=learning, failure_rate=rate, calls=calls, errors=errors, latency=latency)
        assert s.floor <= model.threshold <= s.ceiling
        assert model.threshold <= model.adapted_threshold
        # It rises slowly (an attacker, or a drift, gains at most max_step per sample)...
        assert model.adapted_threshold <= before + s.max_step + 1e-12
        assert s.slow_call_duration_floor <= model.slow_call_duration <= s.slow_call_duration_ceiling


def test_nothing_is_learned_while_not_learning() -> None:
    model = AdaptiveModel(
        AdaptiveThresholds(warmup=1), initial_threshold=0.5, initial_slow_call_duration=1.0, minimum_calls=10
    )
    for i in range(100):
        model.observe(float(i), learning=False, failure_rate=0.49)
    assert model.failure_baseline is None
    assert model.threshold == 0.5


def test_an_attacker_holding_the_rate_under_the_threshold_gains_slowly_and_stops_at_the_ceiling() -> None:
    s = AdaptiveThresholds(margin=0.1, floor=0.1, ceiling=0.7, half_life=600, interval=10, warmup=1, max_step=0.01)
    model = AdaptiveModel(s, initial_threshold=0.3, initial_slow_call_duration=1.0, minimum_calls=10)
    thresholds = []
    for i in range(2000):
        model.observe(i * 10.0, learning=True, failure_rate=model.threshold - 0.001)
        thresholds.append(model.threshold)
    assert thresholds[5] <= 0.3 + 6 * 0.01 + 1e-9  # at most max_step per sample
    assert max(thresholds) == pytest.approx(0.7)


def test_burn_rate_is_the_alert_rules_arithmetic() -> None:
    # CircuitBreakerErrorBudgetBurn: error_ratio / (1 - target) > factor.
    assert burn_rate(errors=144, calls=1000, slo_target=0.99) == pytest.approx(14.4)
    assert burn_rate(errors=0, calls=0, slo_target=0.99) == 0.0


def test_the_threshold_tightens_as_the_budget_burns() -> None:
    s = AdaptiveThresholds(floor=0.1, ceiling=0.8, slo_target=0.99, burn_windows=(3600, 300), burn_rate_limit=14.4)
    model = AdaptiveModel(s, initial_threshold=0.5, initial_slow_call_duration=1.0, minimum_calls=10)
    model.observe(0.0, learning=True, failure_rate=None, calls=0, errors=0)
    # Within budget (burn 0.5): untouched.
    model.observe(3600.0, learning=True, failure_rate=None, calls=1000, errors=5)
    assert model.burn == pytest.approx(0.5)
    assert model.threshold == 0.5
    # Burning 7.7x over both windows: halfway down to the floor.
    model.observe(7200.0, learning=True, failure_rate=None, calls=2000, errors=5 + 77)
    assert model.burn == pytest.approx(7.7)
    assert model.threshold == pytest.approx(0.5 - 0.4 * (7.7 - 1) / 13.4)
    # 14.4x or more: the floor.
    model.observe(10800.0, learning=True, failure_rate=None, calls=3000, errors=82 + 200)
    assert model.threshold == pytest.approx(0.1)


def test_the_burn_needs_both_windows_and_the_minimum_calls() -> None:
    s = AdaptiveThresholds(slo_target=0.99, burn_windows=(3600, 300))
    model = AdaptiveModel(s, initial_threshold=0.5, initial_slow_call_duration=1.0, minimum_calls=100)
    model.observe(0.0, learning=True, failure_rate=None, calls=0, errors=0)
    model.observe(3300.0, learning=True, failure_rate=None, calls=50, errors=50)  # too few calls
    assert model.burn == 0.0
    model.observe(3600.0, learning=True, failure_rate=None, calls=1050, errors=50)  # short window: no errors
    assert model.burn == 0.0
    assert model.threshold == 0.5


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    bounds = (0.1, 0.2, 0.5)
    assert histogram_quantile(0.5, bounds, (0, 10, 0, 0)) == pytest.approx(0.15)
    assert histogram_quantile(0.99, bounds, (0, 0, 0, 5)) == 0.5  # beyond the last bound
    assert histogram_quantile(0.5, bounds, (0, 0, 0, 0)) is None


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"floor": 0.9, "ceiling": 0.5}, "adaptive.floor"),
        ({"margin": 1.5}, "adaptive.margin"),
        ({"slow_call_duration_floor": 0.1}, "adaptive.slow_call_duration_ceiling"),
        ({"slo_target": 1.0}, "adaptive.slo_target"),
        ({"burn_windows": (300, 3600)}, "adaptive.burn_windows"),
        ({"warmup": 0}, "adaptive.warmup"),
        ({"slo_target": 1 - 1e-13}, "adaptive.slo_target"),  # no budget: every burn divided by 0
        ({"burn_windows": 300}, "adaptive.burn_windows"),  # a bare TypeError before
    ],
)
def test_bad_settings_name_the_key(options: dict[str, object], key: str) -> None:
    with pytest.raises(BreakerConfigError) as caught:
        AdaptiveThresholds(**options)  # type: ignore[arg-type]
    assert caught.value.field == key


# ---------------------------------------------------------------------- through a breaker

SECONDS = 10  # samples per example
CALLS_PER_SECOND = 20


def adaptive_breaker(clock: ManualClock, s: AdaptiveThresholds, threshold: float) -> CircuitBreaker:
    return CircuitBreaker(
        "dep",
        BreakerConfig(
            failure_rate_threshold=threshold, sliding_window_size=100, minimum_calls=20, wait_in_open=1000, adaptive=s
        ),
        clock=clock,
    )


def run(breaker: CircuitBreaker, clock: ManualClock, rate: float, seconds: int, start: int = 0) -> int | None:
    """Calls at ``rate`` failures (spread evenly) for ``seconds``; the call number that found the
    breaker open, if one did."""

    def ok() -> None:
        return None

    def boom() -> None:
        raise Boom

    n = start
    for _ in range(seconds):
        for _ in range(CALLS_PER_SECOND):
            n += 1
            fails = int(n * rate) > int((n - 1) * rate)
            with contextlib.suppress(Boom):
                breaker.call(boom if fails else ok)
            if breaker.state is not State.CLOSED:
                return n
        clock.advance(1.0)
    return None


@st.composite
def baseline_case(draw: st.DrawFn) -> tuple[AdaptiveThresholds, float]:
    rate = draw(st.floats(min_value=0.0, max_value=0.6))
    ceiling = draw(st.floats(min_value=rate + 0.1, max_value=1.0))
    floor = draw(st.floats(min_value=0.05, max_value=ceiling))
    margin = draw(st.floats(min_value=0.05, max_value=0.5))
    s = AdaptiveThresholds(
        margin=margin, floor=floor, ceiling=ceiling, half_life=30, interval=1, warmup=5, max_step=0.05
    )
    return s, rate


@given(baseline_case())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_stable_baseline_does_not_trip(case: tuple[AdaptiveThresholds, float]) -> None:
    s, rate = case
    clock = ManualClock()
    breaker = adaptive_breaker(clock, s, threshold=s.ceiling)
    assert run(breaker, clock, rate, seconds=120) is None
    controller = adaptive_controller(breaker)
    assert controller is not None
    assert controller.model.failure_baseline is not None
    assert controller.model.failure_baseline == pytest.approx(rate, abs=0.02)
    assert breaker.snapshot().failure_rate_threshold >= min(rate + s.margin, s.ceiling) - 0.02


@given(baseline_case(), st.floats(min_value=0.0, max_value=1.0))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_step_change_trips(case: tuple[AdaptiveThresholds, float], where: float) -> None:
    s, rate = case
    step = min(1.0, s.ceiling + 0.05 + where * (1.0 - s.ceiling))
    clock = ManualClock()
    breaker = adaptive_breaker(clock, s, threshold=s.ceiling)
    assert run(breaker, clock, rate, seconds=60) is None
    tripped_at = run(breaker, clock, step, seconds=20, start=60 * CALLS_PER_SECOND)
    assert tripped_at is not None
    assert tripped_at - 60 * CALLS_PER_SECOND <= 100  # within one window
    assert breaker.state is State.OPEN


def test_a_low_baseline_tightens_the_threshold_and_it_is_exported_in_the_snapshot() -> None:
    clock = ManualClock()
    s = AdaptiveThresholds(margin=0.1, floor=0.15, ceiling=0.8, half_life=30, interval=1, warmup=5, max_step=0.05)
    breaker = adaptive_breaker(clock, s, threshold=0.5)
    assert run(breaker, clock, 0.02, seconds=60) is None
    assert breaker.snapshot().failure_rate_threshold == pytest.approx(0.15, abs=0.02)
    # 20% failures: under the static 0.5, over the adapted threshold.
    assert run(breaker, clock, 0.2, seconds=20, start=1200) is not None


def test_the_baseline_does_not_learn_while_open() -> None:
    clock = ManualClock()
    s = AdaptiveThresholds(half_life=30, interval=1, warmup=1)
    breaker = adaptive_breaker(clock, s, threshold=0.5)
    run(breaker, clock, 0.1, seconds=10)
    controller = adaptive_controller(breaker)
    assert controller is not None
    learned = controller.model.failure_samples
    breaker.force_open()
    clock.advance(600)
    assert controller.model.failure_samples == learned


def test_the_slow_call_duration_follows_the_latency_baseline_within_bounds() -> None:
    clock = ManualClock()
    s = AdaptiveThresholds(
        interval=1,
        half_life=10,
        warmup=3,
        latency_factor=3.0,
        slow_call_duration_floor=0.05,
        slow_call_duration_ceiling=2.0,
        min_latency_calls=10,
    )
    breaker = CircuitBreaker("llm", BreakerConfig(slow_call_duration=10.0, adaptive=s), clock=clock)
    assert breaker.snapshot().slow_call_duration == 2.0  # the configured value, clamped

    def took(seconds: float) -> None:
        clock.advance(seconds)

    for _ in range(60):
        for _ in range(20):
            breaker.call(took, 0.08)  # every call takes 80 ms: p99 in the (0.05, 0.1] bucket
        clock.advance(1.0)
    duration = breaker.snapshot().slow_call_duration
    assert 0.05 * 3 < duration <= 0.1 * 3 + 1e-9
    assert breaker.snapshot().totals.slow == 0


def test_a_dropped_breaker_stops_being_sampled() -> None:
    clock = ManualClock()
    breaker = adaptive_breaker(clock, AdaptiveThresholds(interval=1), threshold=0.5)
    assert clock.pending_timers == 1
    del breaker
    clock.advance(2)
    assert clock.pending_timers == 0


def test_a_breaker_forced_open_by_hand_burns_no_budget() -> None:
    # The alert rules leave forced-open rejections out of both sides; the burn counted them as
    # errors: two minutes of maintenance took the threshold to its floor (0.2 -> 0.1).
    clock = ManualClock()
    settings = AdaptiveThresholds(
        floor=0.1, ceiling=0.8, margin=0.2, warmup=1, interval=10, slo_target=0.99, burn_windows=(600.0, 60.0)
    )
    breaker = CircuitBreaker(
        "dep",
        BreakerConfig(failure_rate_threshold=0.5, sliding_window_size=100, minimum_calls=20, adaptive=settings),
        clock=clock,
    )
    for _ in range(120):
        for _ in range(10):
            breaker.call(lambda: None)
        clock.advance(1)
    healthy = breaker.snapshot().failure_rate_threshold
    breaker.force_open()
    for _ in range(120):
        for _ in range(10):
            with contextlib.suppress(CircuitOpenError):
                breaker.call(lambda: None)
        clock.advance(1)
    controller = adaptive_controller(breaker)
    assert controller is not None
    assert controller.model.burn == 0.0
    breaker.force_close()
    assert breaker.snapshot().failure_rate_threshold == healthy


def test_an_endpoint_learns_nothing_while_its_service_rejects_its_calls() -> None:
    # The endpoint stays closed while its service is open, its window frozen at the outage's
    # failure rate, which was learned again every sample: baseline 0.02 -> 0.15 in 10 minutes.
    clock = ManualClock()
    service = CircuitBreaker(
        "svc",
        BreakerConfig(failure_rate_threshold=0.15, sliding_window_size=100, minimum_calls=20, wait_in_open=900),
        clock=clock,
    )
    settings = AdaptiveThresholds(margin=0.2, floor=0.1, ceiling=0.8, warmup=3, half_life=120, interval=10)
    config = BreakerConfig(
        failure_rate_threshold=0.5, sliding_window_size=100, minimum_calls=20, wait_in_open=900, adaptive=settings
    )
    endpoint = CircuitBreaker("svc.chat", config, parent=service, clock=clock)
    controller = adaptive_controller(endpoint)
    assert controller is not None
    calls = 0

    def boom() -> None:
        raise Boom

    def one_second(rate: float) -> None:
        nonlocal calls
        for _ in range(10):
            calls += 1
            fails = int(calls * rate) > int((calls - 1) * rate)
            with contextlib.suppress(Boom, CircuitOpenError):
                endpoint.call(boom if fails else (lambda: None))
        clock.advance(1)

    for _ in range(300):
        one_second(0.02)
    baseline, threshold = controller.model.failure_baseline, endpoint.snapshot().failure_rate_threshold
    while service.state is State.CLOSED:
        one_second(0.6)
    learned = controller.model.failure_samples
    for _ in range(600):
        one_second(0.6)
    assert service.state is State.OPEN
    assert endpoint.state is State.CLOSED
    assert controller.model.failure_samples == learned
    assert controller.model.failure_baseline == pytest.approx(baseline, abs=0.01)
    assert endpoint.snapshot().failure_rate_threshold == pytest.approx(threshold, abs=0.02)
