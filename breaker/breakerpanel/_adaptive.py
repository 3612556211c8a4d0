"""Adaptive thresholds: the failure-rate threshold and the slow-call duration from each breaker's
own recent history, bounded.

Every ``interval`` seconds the breaker is sampled (outside its call path, see ``_monitor.py``):

- **failure-rate baseline**: an EWMA (half-life ``half_life``) of the window's failure rate,
  learned only while the breaker is closed, and only from samples cut at the threshold in force
  (a sample above it belongs to a trip, not to normal). The threshold in force is
  ``baseline + margin``, clamped to ``[floor, ceiling]``, and it rises by at most ``max_step`` per
  sample (it may fall at once). So an attacker, or a slow drift, moves it up slowly, and never
  above ``ceiling``.
- **latency baseline**: per sample, the ``latency_quantile`` of the successful calls since the
  last sample, read from the breaker's duration histogram (buckets interpolated as Prometheus'
  ``histogram_quantile`` does), cut at the slow-call duration in force, smoothed by the same EWMA.
  The slow-call duration is ``baseline * latency_factor``, clamped to
  ``[slow_call_duration_floor, slow_call_duration_ceiling]`` (off when neither is given; one alone is refused).
- **error budget**: with ``slo_target`` set, the burn rate of the alert rules
  (``alert_rules/breakerpanel/alert_rules/alerts.py``): ``error ratio / (1 - slo_target)``, where the error ratio is
  failed plus rejected calls over successful, failed and rejected calls (ignored calls count on
  neither side). As the multiwindow alert does, the burn is the smaller of the long and the short
  window's, and it counts only once the long window holds ``minimum_calls``. A burn of 1 or less
  leaves the threshold alone; from there to ``burn_rate_limit`` (the fast-burn page factor, 14.4)
  it moves linearly down to ``floor``.

Until ``warmup`` samples were learned, the configured ``failure_rate_threshold`` (clamped to the
bounds) and ``slow_call_duration`` stay in force.

>>> model = AdaptiveModel(AdaptiveThresholds(margin=0.1, floor=0.2, ceiling=0.6, warmup=1),
...                       initial_threshold=0.5, initial_slow_call_duration=1.0, minimum_calls=10)
>>> model.observe(10.0, learning=True, failure_rate=0.05, calls=100, errors=5)
>>> round(model.threshold, 2)
0.2
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from ._exceptions import BreakerConfigError
from .durations import Seconds

__all__ = ["AdaptiveModel", "AdaptiveThresholds", "burn_rate", "histogram_quantile"]


@dataclass(frozen=True, kw_only=True, slots=True)
class AdaptiveThresholds:
    """Opt-in adaptive thresholds for one breaker (``BreakerConfig(adaptive=...)``).

    >>> AdaptiveThresholds(floor=0.1, ceiling=0.7).margin
    0.2
    """

    #: The threshold in force is the failure-rate baseline plus this.
    margin: float = 0.2
    #: The threshold in force never goes below this...
    floor: float = 0.1
    #: ... nor above this.
    ceiling: float = 0.8
    #: Seconds after which a sample weighs half as much in the baselines.
    half_life: Seconds = 3600.0
    #: Seconds between two samples.
    interval: Seconds = 10.0
    #: Samples learned before the baselines replace the configured values.
    warmup: int = 30
    #: The threshold in force rises by at most this much per sample.
    max_step: float = 0.01
    #: The latency baseline's quantile (0.99: p99 of the successful calls).
    latency_quantile: float = 0.99
    #: Slow-call duration = latency baseline x this factor.
    latency_factor: float = 3.0
    #: Bounds of the derived slow-call duration, in seconds: both, or neither (latency is then not adapted).
    slow_call_duration_floor: Seconds | None = None
    slow_call_duration_ceiling: Seconds | None = None
    #: Successful calls a sample needs for its latency quantile to count.
    min_latency_calls: int = 20
    #: An availability objective (0.99): the threshold tightens as its error budget burns.
    slo_target: float | None = None
    #: The burn-rate windows, long and short, in seconds (the alert rules' fast-burn page pair).
    burn_windows: tuple[Seconds, Seconds] = (3600.0, 300.0)
    #: Burn rate at which the threshold reaches ``floor``.
    burn_rate_limit: float = 14.4

    def __post_init__(self) -> None:
        _fraction("adaptive.margin", self.margin, zero=True)
        _fraction("adaptive.floor", self.floor)
        _fraction("adaptive.ceiling", self.ceiling)
        if self.floor > self.ceiling:
            raise BreakerConfigError("adaptive.floor", f"must be at most ceiling ({self.ceiling}) (got {self.floor})")
        _seconds("adaptive.half_life", self.half_life)
        _seconds("adaptive.interval", self.interval)
        _whole("adaptive.warmup", self.warmup, minimum=1)
        _fraction("adaptive.max_step", self.max_step)
        if not 0 < _number("adaptive.latency_quantile", self.latency_quantile) < 1:
            raise BreakerConfigError(
                "adaptive.latency_quantile", f"must be within (0, 1) (got {self.latency_quantile!r})"
            )
        if not 1 <= _number("adaptive.latency_factor", self.latency_factor) < math.inf:
            raise BreakerConfigError("adaptive.latency_factor", f"must be at least 1 (got {self.latency_factor!r})")
        lo, hi = self.slow_call_duration_floor, self.slow_call_duration_ceiling
        if (lo is None) != (hi is None):
            missing = "slow_call_duration_ceiling" if hi is None else "slow_call_duration_floor"
            raise BreakerConfigError(f"adaptive.{missing}", "set both bounds of the slow-call duration, or neither")
        if lo is not None and hi is not None:
            _seconds("adaptive.slow_call_duration_floor", lo)
            _seconds("adaptive.slow_call_duration_ceiling", hi)
            if lo > hi:
                raise BreakerConfigError(
                    "adaptive.slow_call_duration_floor", f"must be at most slow_call_duration_ceiling ({hi}) (got {lo})"
                )
        _whole("adaptive.min_latency_calls", self.min_latency_calls, minimum=1)
        if self.slo_target is not None and not 0 < _number("adaptive.slo_target", self.slo_target) <= 1 - 1e-9:
            # An error budget of 1e-9 or less (1 - slo_target) is none at all: every burn divides by ~0.
            raise BreakerConfigError(
                "adaptive.slo_target", f"must be within (0, 1), at most 1 - 1e-9 (got {self.slo_target!r})"
            )
        try:
            windows = tuple(self.burn_windows)
        except TypeError:
            raise BreakerConfigError(
                "adaptive.burn_windows", f"expected (long, short) seconds (got {self.burn_windows!r})"
            ) from None
        if len(windows) != 2:
            raise BreakerConfigError("adaptive.burn_windows", f"expected (long, short) seconds (got {windows!r})")
        for value in windows:
            _seconds("adaptive.burn_windows", value)
        if windows[1] > windows[0]:
            raise BreakerConfigError("adaptive.burn_windows", f"the short window is longer than the long one {windows}")
        object.__setattr__(self, "burn_windows", (float(windows[0]), float(windows[1])))
        if not 1 < _number("adaptive.burn_rate_limit", self.burn_rate_limit) < math.inf:
            raise BreakerConfigError("adaptive.burn_rate_limit", f"must be above 1 (got {self.burn_rate_limit!r})")

    @property
    def adapts_latency(self) -> bool:
        return self.slow_call_duration_floor is not None

    @property
    def weight(self) -> float:
        """The EWMA weight of one sample: ``1 - 2 ** (-interval / half_life)``."""
        return 1.0 - math.pow(2.0, -self.interval / self.half_life)


def _number(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise BreakerConfigError(key, f"expected a number (got {value!r})")
    return float(value)


def _fraction(key: str, value: object, *, zero: bool = False) -> None:
    v = _number(key, value)
    if not (0 <= v <= 1 if zero else 0 < v <= 1):
        raise BreakerConfigError(key, f"must be a fraction within {'[0' if zero else '(0'}, 1] (got {value!r})")


def _seconds(key: str, value: object) -> None:
    if not 0 < _number(key, value) < math.inf:
        raise BreakerConfigError(key, f"must be a positive number of seconds (got {value!r})")


def _whole(key: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BreakerConfigError(key, f"must be a whole number of at least {minimum} (got {value!r})")


def _clamp(value: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, value))


def burn_rate(errors: float, calls: float, slo_target: float) -> float:
    """How many times faster than the objective allows the error budget is spent: the error ratio
    over ``1 - slo_target`` (the ``CircuitBreakerErrorBudgetBurn`` alert's arithmetic).

    >>> burn_rate(errors=3, calls=100, slo_target=0.99)
    3.0
    """
    if calls <= 0:
        return 0.0
    # Rounded: 1 - 0.99 is 0.010000000000000009. slo_target is at most 1 - 1e-9 (validated).
    return float(errors / calls) / round(1.0 - slo_target, 12)


def histogram_quantile(q: float, bounds: Sequence[float], counts: Sequence[int]) -> float | None:
    """The ``q`` quantile of bucketed values, interpolated linearly inside its bucket, as
    Prometheus' ``histogram_quantile`` (the first bucket starts at 0; values beyond the last bound
    read as the last bound). ``None`` without values.

    >>> histogram_quantile(0.5, (1.0, 2.0), (0, 10, 0))
    1.5
    """
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    cumulative = 0
    for i, count in enumerate(counts):
        if cumulative + count >= rank and count > 0:
            if i >= len(bounds):
                return float(bounds[-1])
            lower = bounds[i - 1] if i > 0 else 0.0
            return float(lower + (bounds[i] - lower) * (rank - cumulative) / count)
        cumulative += count
    return float(bounds[-1])


class AdaptiveModel:
    """The arithmetic of adaptive thresholds, without a breaker: feed it samples with
    :meth:`observe`, read :attr:`threshold` and :attr:`slow_call_duration`."""

    def __init__(
        self,
        settings: AdaptiveThresholds,
        *,
        initial_threshold: float,
        initial_slow_call_duration: float,
        minimum_calls: int,
    ) -> None:
        self.settings = settings
        self.minimum_calls = minimum_calls
        self._weight = settings.weight
        #: The failure-rate threshold before the error budget tightens it, and after.
        self.adapted_threshold = _clamp(initial_threshold, settings.floor, settings.ceiling)
        self.threshold = self.adapted_threshold
        self.slow_call_duration = initial_slow_call_duration
        if settings.adapts_latency:
            assert settings.slow_call_duration_floor is not None
            assert settings.slow_call_duration_ceiling is not None
            self.slow_call_duration = _clamp(
                initial_slow_call_duration, settings.slow_call_duration_floor, settings.slow_call_duration_ceiling
            )
        self.failure_baseline: float | None = None
        self.latency_baseline: float | None = None
        self.failure_samples = 0
        self.latency_samples = 0
        #: The error budget's burn rate at the last sample (0 without an SLO).
        self.burn = 0.0
        # (time, counted calls, errors), cumulative, over the long burn window.
        self._totals: deque[tuple[float, int, int]] = deque()

    def observe(
        self,
        now: float,
        *,
        learning: bool,
        failure_rate: float | None,
        calls: int = 0,
        errors: int = 0,
        latency: float | None = None,
    ) -> None:
        """One sample. ``learning``: the breaker is closed (nothing is learned otherwise);
        ``failure_rate``: the window's (``None`` below the minimum calls); ``calls`` and ``errors``:
        cumulative counted calls (success, failure, rejected) and errors (failure, rejected);
        ``latency``: the latency quantile of the calls since the last sample."""
        s = self.settings
        if learning and failure_rate is not None:
            sample = min(max(0.0, failure_rate), self.threshold)
            base = self.failure_baseline
            self.failure_baseline = sample if base is None else base + self._weight * (sample - base)
            self.failure_samples += 1
        if self.failure_samples >= s.warmup and self.failure_baseline is not None:
            target = _clamp(self.failure_baseline + s.margin, s.floor, s.ceiling)
            self.adapted_threshold = min(target, self.adapted_threshold + s.max_step)
        if s.slo_target is not None:
            self.burn = self._burn(now, calls, errors, s.slo_target)
            share = _clamp((self.burn - 1.0) / (s.burn_rate_limit - 1.0), 0.0, 1.0)
            # Clamped again: float rounding must not take it a hair below the floor.
            self.threshold = max(s.floor, self.adapted_threshold - (self.adapted_threshold - s.floor) * share)
        else:
            self.threshold = self.adapted_threshold
        if s.adapts_latency and learning and latency is not None:
            assert s.slow_call_duration_floor is not None
            assert s.slow_call_duration_ceiling is not None
            sample = min(max(0.0, latency), self.slow_call_duration)
            base = self.latency_baseline
            self.latency_baseline = sample if base is None else base + self._weight * (sample - base)
            self.latency_samples += 1
            if self.latency_samples >= s.warmup:
                self.slow_call_duration = _clamp(
                    self.latency_baseline * s.latency_factor, s.slow_call_duration_floor, s.slow_call_duration_ceiling
                )

    def _burn(self, now: float, calls: int, errors: int, target: float) -> float:
        long_window, short_window = self.settings.burn_windows
        totals = self._totals
        totals.append((now, calls, errors))
        # Keep the newest sample at or before the long window's start, and everything after it.
        while len(totals) > 1 and totals[1][0] <= now - long_window:
            totals.popleft()

        def over(window: float) -> tuple[int, float]:
            # From the newest sample at or before the window's start (the oldest one, early on).
            start = now - window
            _, c0, e0 = totals[0]
            for t, c, e in totals:
                if t > start:
                    break
                c0, e0 = c, e
            return calls - c0, burn_rate(errors - e0, calls - c0, target)

        long_calls, long_burn = over(long_window)
        if long_calls < self.minimum_calls:
            return 0.0
        return min(long_burn, over(short_window)[1])
