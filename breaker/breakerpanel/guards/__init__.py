"""Guards: protect a service from its callers, with the breakers' clocks, Redis sharing and telemetry.

- :class:`RateLimiter`: a rate per key (GCRA), in memory or shared through Redis;
- :class:`LockoutGuard`: authentication-failure lockout per subject and per address, with
  :func:`constant_time_equals` for the secrets it guards;
- :class:`ConcurrencyLimiter`: load shedding under an adaptive concurrency limit
  (:class:`AIMDLimit`, :class:`GradientLimit`).

``breakerpanel.integrations.guards`` puts them in front of a FastAPI app (docs/guards.md).
"""

from __future__ import annotations

from ._lockout import (
    ConstantTime,
    LockedOutError,
    LockoutAttempt,
    LockoutGuard,
    LockoutPolicy,
    LockoutStatistics,
    LockoutStatus,
    LockoutStore,
    MemoryLockoutStore,
    RedisLockoutStore,
    SubjectKind,
    constant_time_equals,
)
from ._ratelimit import (
    GuardListener,
    MemoryRateLimitStore,
    RateDecision,
    RateLimitedError,
    RateLimiter,
    RateLimiterStatistics,
    RateLimitPolicy,
    RateLimitStore,
    RedisRateLimitStore,
)
from ._shedding import (
    AIMDLimit,
    ConcurrencyLimiter,
    ConcurrencyStatistics,
    GradientLimit,
    LimitAlgorithm,
    OverloadedError,
    Priority,
    Ticket,
)

__all__ = [
    "AIMDLimit",
    "ConcurrencyLimiter",
    "ConcurrencyStatistics",
    "ConstantTime",
    "GradientLimit",
    "GuardListener",
    "LimitAlgorithm",
    "LockedOutError",
    "LockoutAttempt",
    "LockoutGuard",
    "LockoutPolicy",
    "LockoutStatistics",
    "LockoutStatus",
    "LockoutStore",
    "MemoryLockoutStore",
    "MemoryRateLimitStore",
    "OverloadedError",
    "Priority",
    "RateDecision",
    "RateLimitPolicy",
    "RateLimitStore",
    "RateLimitedError",
    "RateLimiter",
    "RateLimiterStatistics",
    "RedisLockoutStore",
    "RedisRateLimitStore",
    "SubjectKind",
    "Ticket",
    "constant_time_equals",
]

# Tracebacks and reprs show the public path (breakerpanel.guards.RateLimiter), not the private module.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) and _obj.__module__.startswith(__name__ + "._"):
        _obj.__module__ = __name__
del _name, _obj
