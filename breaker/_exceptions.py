"""Exceptions raised by breakers.

The tree::

    BreakerError
    ├── CircuitOpenError       a call was rejected (open, half-open full, forced open, parent open)
    ├── CallTimeoutError       the breaker's own call timeout expired (also a TimeoutError)
    └── BreakerConfigError     a configuration value is invalid (also a ValueError)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._state import RejectionReason, State

__all__ = ["BreakerConfigError", "BreakerError", "CallTimeoutError", "CircuitOpenError"]


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

    # Built on the rejection path, which the benchmarks time: the four fields live in ``args``
    # (BaseException's C constructor stores them; no Python __init__ runs) and the message is
    # formatted only when someone reads it. Pickling works through ``args`` as well.
    args: tuple[str, State, RejectionReason, float | None]

    if TYPE_CHECKING:  # the constructor's signature, for type checkers and readers

        def __init__(
            self,
            breaker_name: str,
            state: State,
            reason: RejectionReason,
            remaining: float | None,
        ) -> None: ...

    @property
    def breaker_name(self) -> str:
        return self.args[0]

    @property
    def state(self) -> State:
        return self.args[1]

    @property
    def reason(self) -> RejectionReason:
        return self.args[2]

    @property
    def remaining(self) -> float | None:
        return self.args[3]

    @property
    def retry_after(self) -> float | None:
        """Alias of :attr:`remaining`, in the vocabulary of HTTP's ``Retry-After``."""
        return self.args[3]

    def __str__(self) -> str:
        name, _, reason, remaining = self.args
        text = f"circuit breaker {name!r} rejected the call ({reason.value})"
        if remaining is not None:
            text += f"; retry in {remaining:.3f}s"
        return text

    def __repr__(self) -> str:
        name, state, reason, remaining = self.args
        return (
            f"CircuitOpenError(breaker_name={name!r}, state={state.value!r}, "
            f"reason={reason.value!r}, remaining={remaining!r})"
        )


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
