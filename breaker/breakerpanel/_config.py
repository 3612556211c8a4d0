"""Breaker configuration, in resilience4j's vocabulary.

Durations are in seconds. Rates are fractions in (0, 1].
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ._adaptive import AdaptiveThresholds
from ._classify import Classifier, ClassifierLike, as_classifier
from ._exceptions import BreakerConfigError
from ._forecast import TripForecast
from ._state import WindowType
from ._wait import WaitStrategy, WaitStrategyLike, as_wait_strategy
from .durations import Seconds

__all__ = ["DEFAULT_CONFIG", "BreakerConfig", "describe_options"]


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True, kw_only=True, slots=True)
class BreakerConfig:
    """Everything that tunes one breaker. Immutable; derive variants with :meth:`replace`.

    >>> BreakerConfig(failure_rate_threshold=0.25).replace(minimum_calls=5).minimum_calls
    5
    """

    failure_rate_threshold: float = field(
        default=0.5, metadata=_doc("Open when at least this share of the calls in the window failed (0 to 1].")
    )
    slow_call_rate_threshold: float = field(
        default=1.0,
        metadata=_doc(
            "Open when at least this share of the calls in the window were slow. "
            "1.0 trips only when every call is slow."
        ),
    )
    slow_call_duration: Seconds = field(
        default=60.0, metadata=_doc("A call that takes at least this many seconds is slow, whatever its outcome.")
    )
    sliding_window_type: WindowType = field(
        default=WindowType.COUNT_BASED,
        metadata=_doc(
            "`count_based`: the window holds the last `sliding_window_size` calls. "
            "`time_based`: the calls of the last `sliding_window_size` seconds, in buckets of one second "
            "(of `size / 120` seconds beyond 120 s)."
        ),
    )
    sliding_window_size: int = field(default=100, metadata=_doc("Calls, or seconds, held by the window."))
    minimum_calls: int = field(
        default=10,
        metadata=_doc(
            "No rate is computed, and nothing trips on rates, until the window holds this many calls. "
            "Capped at the window size for count-based windows."
        ),
    )
    consecutive_failures_threshold: int | None = field(
        default=None,
        metadata=_doc(
            "Also open after this many failures in a row, whatever the rates and minimum_calls "
            "(pybreaker's `fail_max`). `None`: off."
        ),
    )
    wait_in_open: WaitStrategyLike = field(
        default=60.0,
        metadata=_doc(
            "How long to stay open before letting probes through: seconds (finite, above 0), or a wait "
            "strategy such as `ExponentialBackoff(initial, multiplier, maximum, jitter)`, which grows with "
            "each opening in a row and resets when the breaker closes. To stay open until told otherwise, "
            "use `force_open()`."
        ),
    )
    automatic_transition_to_half_open: bool = field(
        default=False,
        metadata=_doc(
            "Move from open to half-open by timer when the wait ends (and reopen a half-open breaker by "
            "timer after `max_wait_in_half_open`); otherwise lazily, on the next call."
        ),
    )
    permitted_calls_in_half_open: int = field(
        default=5,
        metadata=_doc(
            "Half-open lets at most this many probes through; other calls are rejected "
            "(`half_open_full`). The probes' failure and slow-call rates decide: close or reopen."
        ),
    )
    max_wait_in_half_open: Seconds | None = field(
        default=120.0,
        metadata=_doc(
            "Reopen a breaker that stays half-open longer than this (probes that never finish). `None`: wait forever."
        ),
    )
    call_timeout: Seconds | None = field(
        default=None,
        metadata=_doc(
            "Calls running longer than this fail with `CallTimeoutError` and count as failures of type "
            "`timeout`. Async calls are cancelled; sync calls cannot be, so they return but still count "
            "as timeouts. Through the httpx transports it bounds the wait for the response's headers "
            "(`stream_limits` bound its body). `None`: no limit."
        ),
    )
    classifier: ClassifierLike | None = field(
        default=None,
        metadata=_doc(
            "What exceptions and results mean: compose `record_exceptions`, `ignore_exceptions`, "
            "`record_results`, `when_exception`, `when_result` with `|` (the first opinion wins), or "
            "`resilience4j_exceptions(record=..., ignore=...)` for resilience4j's rules. `None`: exceptions "
            "fail, results succeed. Cancellation never counts."
        ),
    )
    rate_limit_max_wait: Seconds = field(
        default=300.0,
        metadata=_doc(
            "A rate-limited outcome (429) with a retry-after opens the breaker for that long, "
            "but never longer than this."
        ),
    )
    adaptive: AdaptiveThresholds | None = field(
        default=None,
        metadata=_doc(
            "Adaptive thresholds: the failure-rate threshold from the breaker's baseline plus a margin, "
            "within a floor and a ceiling, tightened as an SLO's error budget burns; the slow-call duration "
            "from its latency baseline. `None`: the configured values stay in force."
        ),
    )
    forecast: TripForecast | None = field(
        default=None,
        metadata=_doc(
            "Trip forecast: publish `TripPredicted` when the failure rate's trend reaches the threshold "
            "within a horizon (the `CircuitBreakerTripPredicted` rule's arithmetic). `None`: off."
        ),
    )

    def __post_init__(self) -> None:
        _rate("failure_rate_threshold", self.failure_rate_threshold)
        _rate("slow_call_rate_threshold", self.slow_call_rate_threshold)
        _positive("slow_call_duration", self.slow_call_duration)
        try:
            object.__setattr__(self, "sliding_window_type", WindowType(self.sliding_window_type))
        except ValueError:
            choices = ", ".join(t.value for t in WindowType)
            raise BreakerConfigError(
                "sliding_window_type", f"expected one of {choices} (got {self.sliding_window_type!r})"
            ) from None
        _count("sliding_window_size", self.sliding_window_size)
        _count("minimum_calls", self.minimum_calls)
        if self.consecutive_failures_threshold is not None:
            _count("consecutive_failures_threshold", self.consecutive_failures_threshold)
        object.__setattr__(self, "wait_in_open", as_wait_strategy(self.wait_in_open))
        _count("permitted_calls_in_half_open", self.permitted_calls_in_half_open)
        if self.max_wait_in_half_open is not None:
            _positive("max_wait_in_half_open", self.max_wait_in_half_open)
        if self.call_timeout is not None:
            _positive("call_timeout", self.call_timeout)
        if self.classifier is not None:
            try:
                object.__setattr__(self, "classifier", as_classifier(self.classifier))
            except TypeError as exc:
                raise BreakerConfigError("classifier", str(exc)) from None
        _positive("rate_limit_max_wait", self.rate_limit_max_wait)
        if self.adaptive is not None and not isinstance(self.adaptive, AdaptiveThresholds):
            raise BreakerConfigError("adaptive", f"expected AdaptiveThresholds (got {type(self.adaptive).__name__})")
        if self.forecast is not None and not isinstance(self.forecast, TripForecast):
            raise BreakerConfigError("forecast", f"expected TripForecast (got {type(self.forecast).__name__})")

    @property
    def effective_minimum_calls(self) -> int:
        """``minimum_calls``, capped at the window size for count-based windows."""
        if self.sliding_window_type is WindowType.COUNT_BASED:
            return min(self.minimum_calls, self.sliding_window_size)
        return self.minimum_calls

    @property
    def wait_strategy(self) -> WaitStrategy:
        wait = self.wait_in_open
        assert not isinstance(wait, int | float)  # normalised in __post_init__
        return wait

    @property
    def classifier_object(self) -> Classifier | None:
        classifier = self.classifier
        assert classifier is None or isinstance(classifier, Classifier)
        return classifier

    def replace(self, **changes: Any) -> BreakerConfig:
        """A copy with some fields changed (validated again)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise BreakerConfigError(sorted(unknown)[0], "no such option")
        return dataclasses.replace(self, **changes)


def _number(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BreakerConfigError(field, f"expected a number (got {value!r})")
    if math.isnan(value):
        raise BreakerConfigError(field, "must be a number (got NaN)")
    return float(value)


def _rate(field: str, value: object) -> None:
    v = _number(field, value)
    if not 0 < v <= 1:
        raise BreakerConfigError(field, f"must be a fraction within (0, 1] (got {value!r})")


def _positive(field: str, value: object) -> None:
    v = _number(field, value)
    if not 0 < v < math.inf:
        raise BreakerConfigError(field, f"must be a positive number of seconds (got {value!r})")


def _count(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BreakerConfigError(field, f"expected a whole number (got {value!r})")
    if value < 1:
        raise BreakerConfigError(field, f"must be at least 1 (got {value!r})")


DEFAULT_CONFIG = BreakerConfig()


def describe_options() -> list[tuple[str, str, str, str]]:
    """``(name, type, default, description)`` for every option, for generated documentation."""
    rows = []
    for f in dataclasses.fields(BreakerConfig):
        default = f.default
        if isinstance(default, WindowType):
            shown = default.value
        elif default is None:
            shown = "None"
        else:
            shown = repr(default)
        # Seconds is a float that breakers.yaml also takes with units (30s): the table says seconds.
        type_name = (
            str(f.type)
            .replace("WaitStrategyLike", "float | WaitStrategy")
            .replace("ClassifierLike", "Classifier")
            .replace("Seconds", "float")
        )
        rows.append((f.name, type_name, shown, f.metadata["doc"]))
    return rows
