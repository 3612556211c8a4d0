"""What watches a breaker from outside its call path: adaptive thresholds and the trip forecast.

Both sample the breaker every few seconds on the breaker's clock (a :class:`ManualClock` in
tests, otherwise the real clock's timers: in the event loop that set them while it runs, else in
a thread of their own) and read only its snapshot and duration
histogram, so a call through the breaker costs the same with them as without them. A breaker
configured with neither has no monitor at all.

The monitors hold their breaker weakly: a breaker that is dropped stops being sampled.
"""

from __future__ import annotations

import logging
import weakref
from collections import deque
from collections.abc import Callable

from ._adaptive import AdaptiveModel, AdaptiveThresholds, histogram_quantile
from ._clock import Clock, TimerHandle
from ._events import BreakerControl
from ._forecast import TripForecast, linear_fit
from ._state import Outcome, RejectionReason, State

__all__ = [
    "AdaptiveController",
    "Periodic",
    "TripForecaster",
    "adaptive_controller",
    "start_monitors",
    "trip_forecaster",
]

logger = logging.getLogger("breakerpanel")

_ADAPTIVE: weakref.WeakKeyDictionary[BreakerControl, AdaptiveController] = weakref.WeakKeyDictionary()
_FORECAST: weakref.WeakKeyDictionary[BreakerControl, TripForecaster] = weakref.WeakKeyDictionary()


class Periodic:
    """Calls ``tick(now)`` every ``interval`` seconds of ``clock`` until ``tick`` returns False or
    :meth:`stop` is called. A tick that raises is logged; the next one still runs."""

    __slots__ = ("_clock", "_handle", "_interval", "_stopped", "_tick")

    def __init__(self, clock: Clock, interval: float, tick: Callable[[float], bool]) -> None:
        self._clock = clock
        self._interval = interval
        self._tick = tick
        self._stopped = False
        self._handle: TimerHandle | None = None
        self._schedule()

    def _schedule(self) -> None:
        if not self._stopped:
            self._handle = self._clock.call_later(self._interval, self._fire)

    def _fire(self) -> None:
        if self._stopped:
            return
        try:
            keep = self._tick(self._clock.now())
        except Exception:
            logger.exception("breaker monitor %r raised; it keeps running", self._tick)
            keep = True
        if keep:
            self._schedule()
        else:
            self._stopped = True

    def stop(self) -> None:
        self._stopped = True
        if self._handle is not None:
            self._handle.cancel()


def start_monitors(breaker: BreakerControl) -> None:
    """Start what the breaker's configuration asks for (the breaker calls this when it is created)."""
    config = breaker.config
    if config.adaptive is not None:
        _ADAPTIVE[breaker] = AdaptiveController(breaker, config.adaptive)
    if config.forecast is not None:
        _FORECAST[breaker] = TripForecaster(breaker, config.forecast)


def adaptive_controller(breaker: BreakerControl) -> AdaptiveController | None:
    """The adaptive thresholds of ``breaker``, if configured."""
    return _ADAPTIVE.get(breaker)


def trip_forecaster(breaker: BreakerControl) -> TripForecaster | None:
    """The trip forecast of ``breaker``, if configured."""
    return _FORECAST.get(breaker)


class AdaptiveController:
    """Samples one breaker into an :class:`AdaptiveModel` and puts the thresholds in force."""

    def __init__(self, breaker: BreakerControl, settings: AdaptiveThresholds) -> None:
        config = breaker.config
        self.settings = settings
        self.model = AdaptiveModel(
            settings,
            initial_threshold=config.failure_rate_threshold,
            initial_slow_call_duration=config.slow_call_duration,
            minimum_calls=config.effective_minimum_calls,
        )
        self._breaker = weakref.ref(breaker)
        self._latency_counts: tuple[int, ...] | None = None
        self._counted = -1  # calls the window had counted at the last sample
        if settings.adapts_latency:
            breaker.enable_duration_histograms()
        breaker.set_thresholds(self.model.threshold, self.model.slow_call_duration)
        self._timer = Periodic(breaker.clock, settings.interval, self.tick)

    def tick(self, now: float) -> bool:
        """Take one sample (the timer calls this every ``interval``); False once the breaker is gone."""
        breaker = self._breaker()
        if breaker is None:
            return False
        snap = breaker.snapshot()
        totals = snap.totals
        # As the alert rules count: rejections of a breaker forced open by hand are in neither
        # side (an operator's maintenance is no burn).
        rejected = sum(n for reason, n in totals.rejected.items() if reason is not RejectionReason.FORCED_OPEN)
        latency = self._latency(breaker) if self.settings.adapts_latency else None
        before = (self.model.threshold, self.model.slow_call_duration)
        # Learned only from a window that counted new calls since the last sample, while the
        # breaker and its parent are closed: an endpoint whose service rejects every call keeps
        # the failure rate it had before the outage, which is no new normal.
        counted = totals.successes + totals.failures
        fresh, self._counted = counted != self._counted, counted
        parent = breaker.parent
        self.model.observe(
            now,
            learning=snap.state is State.CLOSED and fresh and (parent is None or parent.state is State.CLOSED),
            failure_rate=snap.failure_rate,
            calls=totals.successes + totals.failures + rejected,
            errors=totals.failures + rejected,
            latency=latency,
        )
        after = (self.model.threshold, self.model.slow_call_duration)
        if after != before:
            breaker.set_thresholds(*after)
        return True

    def _latency(self, breaker: BreakerControl) -> float | None:
        reading = breaker.duration_histograms().get(Outcome.SUCCESS)
        if reading is None:
            return None
        previous, self._latency_counts = self._latency_counts, reading.counts
        counts = reading.counts
        delta = counts if previous is None else tuple(a - b for a, b in zip(counts, previous, strict=True))
        if sum(delta) < self.settings.min_latency_calls:
            return None
        return histogram_quantile(self.settings.latency_quantile, reading.bounds, delta)

    def stop(self) -> None:
        self._timer.stop()


class TripForecaster:
    """Samples one breaker's failure rate and publishes :class:`~breakerpanel.TripPredicted`."""

    def __init__(self, breaker: BreakerControl, settings: TripForecast) -> None:
        self.settings = settings
        self._breaker = weakref.ref(breaker)
        self._samples: deque[tuple[float, float]] = deque()
        self._generation = -1  # the breaker's generation the samples belong to
        self._warned = False
        #: Forecasts published so far (exported as ``circuit_breaker.trip_forecasts``).
        self.forecasts = 0
        #: The last prediction (the rate ``horizon`` ahead), or ``None`` without enough samples.
        self.predicted: float | None = None
        #: Seconds until the fitted line reaches the threshold, when it rises toward it, else ``None``.
        self.seconds_to_trip: float | None = None
        self._timer = Periodic(breaker.clock, settings.interval, self.tick)

    def tick(self, now: float) -> bool:
        """Take one sample (the timer calls this every ``interval``); False once the breaker is gone."""
        breaker = self._breaker()
        if breaker is None:
            return False
        snap = breaker.snapshot()
        samples = self._samples
        if snap.generation != self._generation:
            # A new window starts with each change of state (also between two samples: a short
            # wait, a passing probe, a reset): the last window's history is no trend of this one.
            self._generation = snap.generation
            samples.clear()
            self._warned = False
        if snap.state is not State.CLOSED:
            samples.clear()
            self.predicted = self.seconds_to_trip = None
            return True
        rate = snap.failure_rate
        if rate is not None:
            samples.append((now, rate))
        while samples and samples[0][0] <= now - self.settings.lookback:
            samples.popleft()
        if rate is None or len(samples) < self.settings.min_samples:
            self.predicted = self.seconds_to_trip = None
            self._warned = False
            return True
        threshold = snap.failure_rate_threshold
        intercept, slope = linear_fit(samples, now)
        predicted = min(1.0, intercept + slope * self.settings.horizon)
        self.predicted = predicted
        self.seconds_to_trip = max(0.0, (threshold - intercept) / slope) if slope > 0 else None
        if predicted >= threshold and rate < threshold:
            if not self._warned:
                self._warned = True
                self.forecasts += 1
                breaker.publish_trip_forecast(
                    rate, predicted, threshold, self.settings.horizon, self.seconds_to_trip, now
                )
        else:
            self._warned = False
        return True

    def stop(self) -> None:
        self._timer.stop()
