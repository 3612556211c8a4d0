"""breakerpanel: async-first circuit breakers for Python services that depend on flaky things.

>>> import asyncio
>>> from breakerpanel import BreakerConfig, CircuitBreaker, CircuitOpenError
>>> b = CircuitBreaker("demo", BreakerConfig(minimum_calls=2, sliding_window_size=2))
>>> async def boom() -> None:
...     raise ConnectionError("down")
>>> for _ in range(2):
...     try:
...         asyncio.run(b.acall(boom))
...     except ConnectionError:
...         pass
>>> b.state.value
'open'
"""

# The namespace spans the repository's folders (breaker/, exporter/, alert_rules/, dashboards/,
# incident_bot/: each holds a breakerpanel/ directory). The wheel merges them into one directory;
# a checkout's editable install puts each folder on sys.path, and this finds the subpackages there.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

from ._adaptive import AdaptiveThresholds
from ._breaker import CircuitBreaker, Permit
from ._cache import MISSING, AsyncResponseCache, MemoryCache, ResponseCache, default_cache_key
from ._classify import (
    IGNORED,
    RATE_LIMITED_ERROR_TYPE,
    SUCCESS,
    Classifier,
    ClassifierFunc,
    ClassifierLike,
    ExceptionMatcher,
    Verdict,
    VerdictKind,
    as_classifier,
    classify_with,
    error_type_of,
    failure,
    ignore_exceptions,
    ignore_results,
    rate_limited,
    record_exceptions,
    record_results,
    resilience4j_exceptions,
    when_exception,
    when_result,
)
from ._clock import Clock, ManualClock, MonotonicClock, TimerHandle
from ._config import DEFAULT_CONFIG, BreakerConfig
from ._embedding import DEFAULT_STOP_WORDS, Embedder, HashingEmbedder
from ._events import (
    BreakerControl,
    BreakerListener,
    CallRecorded,
    CallRejected,
    FallbackUsed,
    StateChanged,
    TripPredicted,
)
from ._exceptions import (
    BreakerConfigError,
    BreakerError,
    CallTimeoutError,
    CircuitOpenError,
    DependencyError,
    rejection_in,
)
from ._fallback import (
    Alternate,
    CachedResponse,
    CacheMiss,
    FallbackChain,
    FallbackStep,
    Simplified,
    Static,
    should_fall_back,
)
from ._feature import Availability, Feature, FeatureStatus
from ._forecast import TripForecast
from ._histogram import DEFAULT_DURATION_BOUNDS, DEFAULT_RECOVERY_BOUNDS, Histogram, HistogramReading
from ._monitor import AdaptiveController, TripForecaster, adaptive_controller, trip_forecaster
from ._probe import (
    Probe,
    ProbeRunner,
    asyncpg_probe,
    http_probe,
    probe_runner,
    redis_probe,
    running_probes,
    sqlalchemy_probe,
)
from ._registry import BreakerRegistry, describe_breaker
from ._semantic import (
    DEFAULT_MIN_SIMILARITY,
    SemanticCache,
    SemanticCacheMiss,
    SemanticHit,
    VectorSetsUnsupportedError,
    first_text_argument,
    sole_text_argument,
)
from ._snapshot import MAX_ERROR_TYPES, OTHER_ERROR_TYPE, BreakerSnapshot, CallTotals
from ._state import FallbackType, Level, Outcome, RejectionReason, State, TransitionReason, WindowType
from ._stores import MemoryStore, RedisStore, StateStore, StoreStatus
from ._wait import ExponentialBackoff, FixedWait, WaitStrategy
from ._window import CountWindow, SlidingWindow, TimeWindow

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_DURATION_BOUNDS",
    "DEFAULT_MIN_SIMILARITY",
    "DEFAULT_RECOVERY_BOUNDS",
    "DEFAULT_STOP_WORDS",
    "IGNORED",
    "MAX_ERROR_TYPES",
    "MISSING",
    "OTHER_ERROR_TYPE",
    "RATE_LIMITED_ERROR_TYPE",
    "SUCCESS",
    "AdaptiveController",
    "AdaptiveThresholds",
    "Alternate",
    "AsyncResponseCache",
    "Availability",
    "BreakerConfig",
    "BreakerConfigError",
    "BreakerControl",
    "BreakerError",
    "BreakerListener",
    "BreakerRegistry",
    "BreakerSnapshot",
    "CacheMiss",
    "CachedResponse",
    "CallRecorded",
    "CallRejected",
    "CallTimeoutError",
    "CallTotals",
    "CircuitBreaker",
    "CircuitOpenError",
    "Classifier",
    "ClassifierFunc",
    "ClassifierLike",
    "Clock",
    "CountWindow",
    "DependencyError",
    "Embedder",
    "ExceptionMatcher",
    "ExponentialBackoff",
    "FallbackChain",
    "FallbackStep",
    "FallbackType",
    "FallbackUsed",
    "Feature",
    "FeatureStatus",
    "FixedWait",
    "HashingEmbedder",
    "Histogram",
    "HistogramReading",
    "Level",
    "ManualClock",
    "MemoryCache",
    "MemoryStore",
    "MonotonicClock",
    "Outcome",
    "Permit",
    "Probe",
    "ProbeRunner",
    "RedisStore",
    "RejectionReason",
    "ResponseCache",
    "SemanticCache",
    "SemanticCacheMiss",
    "SemanticHit",
    "Simplified",
    "SlidingWindow",
    "State",
    "StateChanged",
    "StateStore",
    "Static",
    "StoreStatus",
    "TimeWindow",
    "TimerHandle",
    "TransitionReason",
    "TripForecast",
    "TripForecaster",
    "TripPredicted",
    "VectorSetsUnsupportedError",
    "Verdict",
    "VerdictKind",
    "WaitStrategy",
    "WindowType",
    "adaptive_controller",
    "as_classifier",
    "asyncpg_probe",
    "classify_with",
    "default_cache_key",
    "describe_breaker",
    "error_type_of",
    "failure",
    "first_text_argument",
    "http_probe",
    "ignore_exceptions",
    "ignore_results",
    "probe_runner",
    "rate_limited",
    "record_exceptions",
    "record_results",
    "redis_probe",
    "rejection_in",
    "resilience4j_exceptions",
    "running_probes",
    "should_fall_back",
    "sole_text_argument",
    "sqlalchemy_probe",
    "trip_forecaster",
    "when_exception",
    "when_result",
]

# Tracebacks and reprs show the public path (breakerpanel.CircuitBreaker), not the private module.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith("breakerpanel._"):
        _obj.__module__ = __name__
del _name, _obj
