"""What watches a breaker from outside its call path: adaptive thresholds and the trip forecast.

Both sample the breaker every few seconds on the breaker's clock (a :class:`ManualClock` in
tests, the event loop or a daemon timer otherwise) and read only its snapshot and duration
histogram, so a call through the breaker costs the same with them as without them. A breaker
configured with neither has no monitor at all.

The monitors hold their breaker weakly: a breaker that is dropped stops being sampled.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._clock import Clock, TimerHandle

if TYPE_CHECKING:
    from ._adaptive import AdaptiveController
    from ._breaker import CircuitBreaker
    from ._forecast import TripForecaster

__all__ = ["Periodic", "adaptive_controller", "start_monitors", "trip_forecaster"]

logger = logging.getLogger("breakerpanel")

_ADAPTIVE: weakref.WeakKeyDictionary[CircuitBreaker, AdaptiveController] = weakref.WeakKeyDictionary()
_FORECAST: weakref.WeakKeyDictionary[CircuitBreaker, TripForecaster] = weakref.WeakKeyDictionary()


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


def start_monitors(breaker: CircuitBreaker) -> None:
    """Start what ``breakerpanel.config`` asks for (the breaker calls this when it is created)."""
    config = breaker.config
    if config.adaptive is not None:
        from ._adaptive import AdaptiveController

        _ADAPTIVE[breaker] = AdaptiveController(breaker, config.adaptive)
    if config.forecast is not None:
        from ._forecast import TripForecaster

        _FORECAST[breaker] = TripForecaster(breaker, config.forecast)


def adaptive_controller(breaker: CircuitBreaker) -> AdaptiveController | None:
    """The adaptive thresholds of ``breaker``, if configured."""
    return _ADAPTIVE.get(breaker)


def trip_forecaster(breaker: CircuitBreaker) -> TripForecaster | None:
    """The trip forecast of ``breaker``, if configured."""
    return _FORECAST.get(breaker)
