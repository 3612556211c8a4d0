"""Trip forecast: a rising failure rate warns before the trip; a flat one does not."""

from __future__ import annotations

import pytest

from breakerpanel import (
    BreakerConfig,
    BreakerConfigError,
    BreakerListener,
    CircuitBreaker,
    ManualClock,
    State,
    StateChanged,
    TripForecast,
    TripPredicted,
    trip_forecaster,
)
from breakerpanel._forecast import linear_fit, predict_linear

from .support import Boom


class Recorder(BreakerListener):
    def __init__(self) -> None:
        self.forecasts: list[TripPredicted] = []
        self.opened_at: float | None = None

    def trip_predicted(self, event: TripPredicted) -> None:
        self.forecasts.append(event)

    def state_changed(self, event: StateChanged) -> None:
        if event.state is State.OPEN and self.opened_at is None:
            self.opened_at = event.at


def test_predict_linear_is_promqls() -> None:
    # predict_linear(v[range], t): the least-squares line through the samples, evaluated t after now.
    samples = [(0.0, 0.1), (15.0, 0.1), (30.0, 0.4), (45.0, 0.4)]
    intercept, slope = linear_fit(samples, now=45.0)
    assert slope == pytest.approx(0.008)  # sum((x-mx)(y-my)) / sum((x-mx)^2) = 9 / 1125, per second
    assert intercept == pytest.approx(0.25 + slope * 22.5)
    assert predict_linear(samples, now=45.0, horizon=600.0) == pytest.approx(intercept + slope * 600)
    assert linear_fit([(5.0, 0.2), (5.0, 0.4)], now=5.0) == (pytest.approx(0.3), 0.0)


def drive(breaker: CircuitBreaker, clock: ManualClock, rate_at: list[float], calls_per_second: int = 20) -> None:
    """One second per entry of ``rate_at``: calls failing at that rate, spread evenly."""

    def ok() -> None:
        return None

    def boom() -> None:
        raise Boom

    n = 0
    for rate in rate_at:
        for _ in range(calls_per_second):
            n += 1
            fails = int(n * rate) > int((n - 1) * rate)
            try:
                breaker.call(boom if fails else ok)
            except Boom:
                pass
            except Exception:
                pass  # rejected once open
        clock.advance(1.0)


def forecasting(
    clock: ManualClock, recorder: Recorder, *, wait_in_open: float = 600, **forecast: float
) -> CircuitBreaker:
    return CircuitBreaker(
        "dep",
        BreakerConfig(
            failure_rate_threshold=0.5,
            sliding_window_type="time_based",
            sliding_window_size=10,
            minimum_calls=20,
            wait_in_open=wait_in_open,
            permitted_calls_in_half_open=1,
            forecast=TripForecast(**forecast),  # type: ignore[arg-type]
        ),
        clock=clock,
        listeners=[recorder],
    )


def test_a_rising_trend_warns_before_the_trip() -> None:
    clock, recorder = ManualClock(), Recorder()
    breaker = forecasting(clock, recorder, lookback=60, horizon=60, interval=5)
    # 5% for a minute, then +0.5 points a second: reaches 50% after 90 s.
    drive(breaker, clock, [0.05] * 60 + [0.05 + 0.005 * i for i in range(150)])
    assert recorder.opened_at is not None
    assert len(recorder.forecasts) == 1  # once per rise
    forecast = recorder.forecasts[0]
    assert forecast.breaker is breaker
    assert forecast.at < recorder.opened_at
    assert forecast.failure_rate < forecast.threshold <= forecast.predicted
    assert forecast.threshold == 0.5
    assert forecast.horizon == 60
    assert forecast.seconds_to_trip is not None
    assert forecast.seconds_to_trip <= 60
    forecaster = trip_forecaster(breaker)
    assert forecaster is not None
    assert forecaster.forecasts == 1


def test_a_flat_trend_does_not_warn() -> None:
    clock, recorder = ManualClock(), Recorder()
    breaker = forecasting(clock, recorder, lookback=60, horizon=60, interval=5)
    drive(breaker, clock, [0.3] * 300)
    assert breaker.state is State.CLOSED
    assert recorder.forecasts == []
    forecaster = trip_forecaster(breaker)
    assert forecaster is not None
    assert forecaster.predicted == pytest.approx(0.3, abs=0.05)


def test_a_slow_rise_beyond_the_horizon_does_not_warn() -> None:
    clock, recorder = ManualClock(), Recorder()
    breaker = forecasting(clock, recorder, lookback=60, horizon=30, interval=5)
    # +0.05 points a second from 10%: 40 points to go take 800 s, far beyond the 30 s horizon.
    drive(breaker, clock, [0.1 + 0.0005 * i for i in range(200)])
    assert recorder.forecasts == []


def test_the_forecast_warns_again_after_the_rate_falls_back() -> None:
    clock, recorder = ManualClock(), Recorder()
    breaker = forecasting(clock, recorder, lookback=30, horizon=60, interval=5)
    rise = [0.05 + 0.004 * i for i in range(60)]  # up to ~29%: warns, does not trip
    drive(breaker, clock, [0.05] * 30 + rise + [0.05] * 60 + rise)
    assert breaker.state is State.CLOSED
    assert len(recorder.forecasts) == 2


def test_no_samples_are_kept_across_an_opening() -> None:
    clock, recorder = ManualClock(), Recorder()
    breaker = forecasting(clock, recorder, lookback=60, horizon=60, interval=5)
    drive(breaker, clock, [0.2] * 30)
    breaker.force_open()
    clock.advance(30)
    forecaster = trip_forecaster(breaker)
    assert forecaster is not None
    assert forecaster.predicted is None


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"lookback": 0}, "forecast.lookback"),
        ({"horizon": -1}, "forecast.horizon"),
        ({"min_samples": 1}, "forecast.min_samples"),
        ({"lookback": 10, "interval": 30}, "forecast.interval"),
        ({"lookback": 30, "interval": 15}, "forecast.min_samples"),  # 2 samples held: never a prediction
        ({"lookback": 45, "interval": 15, "min_samples": 4}, "forecast.min_samples"),
    ],
)
def test_bad_settings_name_the_key(options: dict[str, float], key: str) -> None:
    with pytest.raises(BreakerConfigError) as caught:
        TripForecast(**options)  # type: ignore[arg-type]
    assert caught.value.field == key


def test_no_samples_are_kept_across_an_opening_between_two_samples() -> None:
    # Tripped and closed again within one interval (a short wait, a probe), the breaker was never
    # seen open: the old window's ten samples stayed in the fit with the new window's first one,
    # and predicted a trip at once.
    clock, recorder = ManualClock(), Recorder()
    breaker = forecasting(clock, recorder, wait_in_open=2, lookback=600, horizon=600, interval=15, min_samples=3)
    drive(breaker, clock, [0.1] * 150 + [1.0] * 3 + [0.3] * 12)
    assert recorder.opened_at is not None
    assert breaker.state is State.CLOSED
    forecaster = trip_forecaster(breaker)
    assert forecaster is not None
    assert (forecaster.predicted, recorder.forecasts) == (None, [])
