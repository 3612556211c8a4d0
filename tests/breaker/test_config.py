"""Configuration errors name the field and the reason."""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

import pytest

from breakerpanel import (
    BreakerConfig,
    BreakerConfigError,
    CircuitBreaker,
    CircuitOpenError,
    ExponentialBackoff,
    FixedWait,
    ManualClock,
    MonotonicClock,
    RejectionReason,
    State,
    WindowType,
)

from .support import fail


@pytest.mark.parametrize(
    ("options", "field", "reason"),
    [
        ({"failure_rate_threshold": 0}, "failure_rate_threshold", "within (0, 1]"),
        ({"failure_rate_threshold": 1.5}, "failure_rate_threshold", "within (0, 1]"),
        ({"slow_call_rate_threshold": "high"}, "slow_call_rate_threshold", "expected a number"),
        ({"slow_call_duration": -1}, "slow_call_duration", "positive"),
        ({"slow_call_duration": float("nan")}, "slow_call_duration", "NaN"),
        ({"sliding_window_type": "sliding"}, "sliding_window_type", "count_based, time_based"),
        ({"sliding_window_size": 0}, "sliding_window_size", "at least 1"),
        ({"sliding_window_size": 2.5}, "sliding_window_size", "whole number"),
        ({"minimum_calls": True}, "minimum_calls", "whole number"),
        ({"consecutive_failures_threshold": 0}, "consecutive_failures_threshold", "at least 1"),
        ({"wait_in_open": -5}, "wait_in_open", "positive, finite"),
        ({"wait_in_open": 0}, "wait_in_open", "positive, finite"),
        ({"wait_in_open": float("nan")}, "wait_in_open", "positive, finite"),
        ({"wait_in_open": float("inf")}, "wait_in_open", "use force_open()"),
        ({"wait_in_open": "60s"}, "wait_in_open", "seconds or a wait strategy"),
        ({"permitted_calls_in_half_open": 0}, "permitted_calls_in_half_open", "at least 1"),
        ({"max_wait_in_half_open": 0}, "max_wait_in_half_open", "positive"),
        ({"call_timeout": float("inf")}, "call_timeout", "positive"),
        ({"classifier": "default"}, "classifier", "callable"),
        ({"rate_limit_max_wait": 0}, "rate_limit_max_wait", "positive"),
    ],
)
def test_invalid_values_are_explained(options: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(BreakerConfigError) as info:
        BreakerConfig(**options)
    assert info.value.field == field
    assert reason in str(info.value)
    assert str(info.value).startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"initial": 0}, "wait_in_open.initial"),
        ({"initial": math.inf, "maximum": math.inf}, "wait_in_open.initial"),
        ({"maximum": math.inf}, "wait_in_open.maximum"),
        ({"multiplier": 0.5}, "wait_in_open.multiplier"),
        ({"initial": 10, "maximum": 5}, "wait_in_open.maximum"),
        ({"jitter": 2}, "wait_in_open.jitter"),
    ],
)
def test_invalid_backoff_is_explained(options: dict[str, Any], field: str) -> None:
    with pytest.raises(BreakerConfigError) as info:
        ExponentialBackoff(**options)
    assert info.value.field == field


def test_normalises_and_replaces() -> None:
    config = BreakerConfig(sliding_window_type="time_based", wait_in_open=30, minimum_calls=500)  # type: ignore[arg-type]
    assert config.sliding_window_type is WindowType.TIME_BASED
    assert config.wait_in_open == FixedWait(30.0)
    assert config.effective_minimum_calls == 500  # not capped for time windows
    count = config.replace(sliding_window_type=WindowType.COUNT_BASED, sliding_window_size=50)
    assert count.effective_minimum_calls == 50
    assert config == BreakerConfig(sliding_window_type=WindowType.TIME_BASED, wait_in_open=30.0, minimum_calls=500)
    with pytest.raises(BreakerConfigError, match="no such option"):
        config.replace(failure_threshold=3)


def test_exponential_backoff_survives_very_long_outages() -> None:
    assert ExponentialBackoff(initial=1, multiplier=10, maximum=60, jitter=0)(10_000) == 60.0


# ---------------------------------------------------------------------- issue 18: waits are finite


def test_an_infinite_wait_is_refused_with_the_way_to_get_one() -> None:
    for build in (
        lambda: BreakerConfig(wait_in_open=math.inf),
        lambda: FixedWait(math.inf),
        lambda: ExponentialBackoff(maximum=math.inf),
    ):
        with pytest.raises(BreakerConfigError, match=r"must be finite \(got inf\).*use force_open\(\)"):
            build()


@pytest.mark.parametrize("bad", [math.inf, math.nan, 0.0, -1.0, "soon"])
def test_a_custom_wait_that_is_not_finite_positive_gets_the_default(
    bad: object, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    config = BreakerConfig(
        minimum_calls=1, sliding_window_size=1, automatic_transition_to_half_open=True, wait_in_open=lambda attempt: bad
    )
    b = CircuitBreaker("dep", config, clock=clock)
    with caplog.at_level(logging.ERROR, logger="breakerpanel"):
        fail(b, clock)
    snap = b.snapshot()
    assert (snap.state, snap.open_remaining) == (State.OPEN, 60.0)
    assert "use force_open()" in caplog.text
    with pytest.raises(CircuitOpenError) as info:
        b.call(lambda: None)
    assert str(info.value).endswith("retry in 60.000s")
    clock.advance(60)
    assert b.state is State.HALF_OPEN  # by the timer


def test_a_rejection_never_says_retry_in_infinity() -> None:
    error = CircuitOpenError("dep", State.OPEN, RejectionReason.OPEN, math.inf)
    assert "inf" not in str(error)


def test_no_timer_waits_forever_or_breaks_the_timer_thread() -> None:
    # threading.Timer's thread died of OverflowError on an infinite (or too long) wait; the one
    # timer thread must go on firing the timers due before such a one.
    clock = MonotonicClock()
    clock.call_later(math.inf, lambda: None).cancel()
    far = clock.call_later(1e300, lambda: None)
    fired = threading.Event()
    clock.call_later(0.01, fired.set)
    assert fired.wait(10)
    far.cancel()
    with pytest.raises(ValueError, match="nan"):
        clock.call_later(math.nan, lambda: None)
