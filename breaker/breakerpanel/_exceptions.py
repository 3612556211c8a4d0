"""Exceptions raised by breakers.

The tree::

    BreakerError
    ├── CircuitOpenError       a call was rejected (open, half-open full, forced open, parent open)
    ├── DependencyError        a protected client's call failed (raised by the integrations, from the
    │                          dependency's own error, so callers catch one family of errors)
    ├── CallTimeoutError       the breaker's own call timeout expired (also a TimeoutError)
    └── BreakerConfigError     a configuration value is invalid (also a ValueError)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ._state import RejectionReason, State

__all__ = [
    "BreakerConfigError",
    "BreakerError",
    "CallTimeoutError",
    "CircuitOpenError",
    "DependencyError",
    "rejection_in",
]


class BreakerError(Exception):
    """Base class of every error raised by this package."""


class CircuitOpenError(BreakerError):
    """A call was rejected without being attempted.

    A new instance is raised for every rejection (never a shared one), so tracebacks and
    ``__context__`` chains of concurrent callers stay apart.

    Attributes:
        breaker_name: the breaker that rejected the call.
        state: the breaker's state when it rejected the call.
        reason: why it rejected the call.
        remaining: seconds until the breaker lets a probe through, or ``None`` when it does not
            know (half-open and full, forced open without expiry).
    """

    # Built on the rejection path, which the benchmarks time: the fields live in ``args``
    # (BaseException's C constructor stores them; no Python __init__ runs) and the message is
    # formatted only when someone reads it. Pickling works through ``args`` as well.
    args: tuple[Any, ...]

    if TYPE_CHECKING:  # the constructor's signature, for type checkers and readers

        def __init__(
            self,
            breaker_name: str,
            state: State,
            reason: RejectionReason,
            remaining: float | None,
            origin: str | None = None,
        ) -> None: ...

    # The fields are typed through annotated locals, not typing.cast: cast is a function call at
    # run time, on paths (a rejection by a parent) that read them.

    @property
    def breaker_name(self) -> str:
        name: str = self.args[0]
        return name

    @property
    def state(self) -> State:
        state: State = self.args[1]
        return state

    @property
    def reason(self) -> RejectionReason:
        reason: RejectionReason = self.args[2]
        return reason

    @property
    def remaining(self) -> float | None:
        remaining: float | None = self.args[3]
        return remaining

    @property
    def origin(self) -> str:
        """The breaker that is open: ``breaker_name`` itself, or its parent for ``parent_open``."""
        args = self.args
        origin: str = args[4] if len(args) > 4 and args[4] is not None else args[0]
        return origin

    @property
    def retry_after(self) -> float | None:
        """Alias of :attr:`remaining`, in the vocabulary of HTTP's ``Retry-After``."""
        return self.remaining

    def __str__(self) -> str:
        name, _, reason, remaining = self.args[:4]
        text = f"circuit breaker {name!r} rejected the call ({reason.value})"
        if self.origin != name:
            text += f": {self.origin!r} is open"
        if remaining is not None and remaining < math.inf:  # an open breaker's wait is finite
            text += f"; retry in {remaining:.3f}s"
        return text

    def __repr__(self) -> str:
        name, state, reason, remaining = self.args[:4]
        return (
            f"CircuitOpenError(breaker_name={name!r}, state={state.value!r}, "
            f"reason={reason.value!r}, remaining={remaining!r}, origin={self.origin!r})"
        )


class DependencyError(BreakerError):
    """A call through a protected client failed in a way that counts against the dependency
    (a connection refused, a timeout, a 5xx). Raised by the integrations ``from`` the original
    error, so that callers of a protected client handle one family of errors
    (``except BreakerError``) and never see a raw driver exception.
    """

    def __init__(self, breaker_name: str, error_type: str, message: str) -> None:
        super().__init__(f"{breaker_name}: {message} ({error_type})")
        self.breaker_name = breaker_name
        self.error_type = error_type


def rejection_in(exc: BaseException | None) -> CircuitOpenError | None:
    """The :class:`CircuitOpenError` behind ``exc``, if any.

    SDKs wrap what their transport raises (openai raises ``APIConnectionError`` *from* it), so a
    rejection can sit a few links down the ``__cause__``/``__context__`` chain.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, CircuitOpenError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


class CallTimeoutError(BreakerError, TimeoutError):
    """The breaker's ``call_timeout`` expired before the call finished.

    Counted as a failure with error type ``timeout``.
    """

    def __init__(self, breaker_name: str, timeout: float) -> None:
        super().__init__(f"circuit breaker {breaker_name!r}: call exceeded its {timeout}s timeout")
        self.breaker_name = breaker_name
        self.timeout = timeout


class BreakerConfigError(BreakerError, ValueError):
    """A configuration value is invalid. The message names the field and the reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
