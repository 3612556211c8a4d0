"""Trip forecast: warn before a rising failure rate trips the breaker.

Every ``interval`` seconds (15 s, a usual scrape interval) the breaker's window failure rate is
sampled, as Prometheus samples the ``circuit_breaker.failure_rate`` gauge: only while closed and
only once the window holds the minimum number of calls (the gauge is absent otherwise). Over the
samples of the last ``lookback`` seconds a least-squares line is fitted, and extrapolated
``horizon`` seconds ahead: PromQL's ``predict_linear(rate[lookback], horizon)``, capped at 1.

The breaker publishes :class:`~breakerpanel.TripPredicted` when the prediction reaches the failure-rate
threshold in force (the adapted one, if adaptive) while the current rate is still under it and
the breaker is closed; once per rise (again only after the condition has cleared). The exporter
counts the events, and the ``CircuitBreakerTripPredicted`` alert rule
(``breakerpanel.alert_rules.alerts``)
fires on that count while the breaker is still closed.

>>> round(predict_linear([(0.0, 0.1), (10.0, 0.2), (20.0, 0.3)], now=20.0, horizon=10.0), 6)
0.4
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ._exceptions import BreakerConfigError
from .durations import Seconds

__all__ = ["TripForecast", "linear_fit", "predict_linear"]


@dataclass(frozen=True, kw_only=True, slots=True)
class TripForecast:
    """Opt-in trip forecast for one breaker (``BreakerConfig(forecast=...)``): the failure rate of
    the last ``lookback`` seconds, extrapolated ``horizon`` seconds ahead.

    >>> TripForecast(lookback=600, horizon=300).interval
    15.0
    """

    #: Seconds of failure-rate history the trend is fitted over.
    lookback: Seconds = 600.0
    #: Seconds ahead the trend is extrapolated.
    horizon: Seconds = 600.0
    #: Seconds between two samples.
    interval: Seconds = 15.0
    #: Samples in the lookback needed for a prediction (PromQL needs 2).
    min_samples: int = 3

    def __post_init__(self) -> None:
        for key in ("lookback", "horizon", "interval"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
                raise BreakerConfigError(f"forecast.{key}", f"must be a positive number of seconds (got {value!r})")
            object.__setattr__(self, key, float(value))
        if isinstance(self.min_samples, bool) or not isinstance(self.min_samples, int) or self.min_samples < 2:
            raise BreakerConfigError(
                "forecast.min_samples", f"must be a whole number of at least 2 (got {self.min_samples!r})"
            )
        if self.interval > self.lookback:
            raise BreakerConfigError(
                "forecast.interval", f"must be at most lookback ({self.lookback:g}) (got {self.interval:g})"
            )
        if self.lookback / self.interval < self.min_samples:
            # The lookback holds lookback / interval samples at most: fewer than min_samples never
            # make a prediction.
            raise BreakerConfigError(
                "forecast.min_samples",
                f"the lookback ({self.lookback:g} s) holds {self.lookback / self.interval:g} samples "
                f"{self.interval:g} s apart, fewer than min_samples ({self.min_samples})",
            )


def linear_fit(samples: Sequence[tuple[float, float]], now: float) -> tuple[float, float]:
    """``(value at now, slope per second)`` of the least-squares line through ``(time, value)``
    samples (at least two, not all at one time), as PromQL's ``predict_linear`` and ``deriv``."""
    n = len(samples)
    mean_x = sum(t - now for t, _ in samples) / n
    mean_y = sum(v for _, v in samples) / n
    sxx = sum((t - now - mean_x) ** 2 for t, _ in samples)
    if sxx == 0:
        return mean_y, 0.0
    sxy = sum((t - now - mean_x) * (v - mean_y) for t, v in samples)
    slope = sxy / sxx
    return mean_y - slope * mean_x, slope


def predict_linear(samples: Sequence[tuple[float, float]], *, now: float, horizon: float) -> float:
    """The fitted value ``horizon`` seconds after ``now``."""
    intercept, slope = linear_fit(samples, now)
    return intercept + slope * horizon
