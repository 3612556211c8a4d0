"""pybreaker breakers, exported with our conventions.

::

    import pybreaker
    from breakerpanel.exporter import BreakerTelemetry
    from breakerpanel.exporter.adapters import PyBreakerSource

    openai = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30, name="openai")
    source = PyBreakerSource(openai, attributes={"gen_ai.provider.name": "openai"})
    telemetry = BreakerTelemetry(source, service_name="assistant")

    answer = source.call(client.chat, prompt)  # or openai.call(...): see "rejections" below

:class:`PyBreakerSource` adds a ``pybreaker.CircuitBreakerListener`` to the breaker (its public
listener API; nothing of pybreaker is patched) and keeps our counters from its hooks. What those
hooks let it count, and what they do not (pybreaker 1.4):

- **state**: read from ``breaker.current_state`` at every scrape, so it is right before any
  event and follows a state a shared Redis storage changed; ``"half-open"`` is ``half_open``.
- **successes** and **failures** by ``error.type`` (the exception's fully-qualified class name),
  from the ``success`` and ``failure`` hooks.
- **ignored**: pybreaker reports a call that raised one of the breaker's ``exclude`` exceptions
  through the ``success`` hook. That hook runs inside pybreaker's ``except`` block, so the adapter
  tells the two apart by the exception being handled, and counts it as ``ignored``, as our
  breakers would.
- **transitions**, from ``state_change`` (including changes pybreaker notices in a shared
  storage); pybreaker also notifies "changes" to the same state (``open()`` on an open breaker),
  which are not transitions and are not counted. **Recovery durations** are timed between them.
- **rejections: invisible to listeners.** An open pybreaker raises ``CircuitBreakerError`` from
  its state object before calling any listener, not even ``before_call``. Calls made through
  :meth:`PyBreakerSource.call` are counted: a ``CircuitBreakerError`` raised before the call
  reached ``before_call`` is a rejection, with reason ``open`` (pybreaker's half-open state lets
  every call through, so ``half_open_full`` never happens); one raised after its ``failure`` hook
  is the failure that tripped the breaker (``throw_new_error_on_trip``), already counted as a
  failure. Calls made with ``breaker.call()`` or ``@breaker`` are counted in everything but
  rejections and durations; :meth:`~breakerpanel.exporter.adapters.AdapterSource.record_rejection` counts one
  by hand.
- **call durations**: only for calls through :meth:`PyBreakerSource.call`. The hooks carry no
  call identity (``before_call(cb, func, ...)``, ``success(cb)``), so pairing a start with its
  end would rest on their order, which generator functions (their outcome is reported when the
  generator is exhausted) and tornado coroutines (interleaved on one thread) break.
- **slow calls, failure rate, thresholds**: pybreaker counts consecutive failures against
  ``fail_max``, neither rates nor slow calls: those series are absent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

import pybreaker

from breakerpanel import error_type_of
from breakerpanel.exporter import semconv as sc

from ._common import AdapterSource, attempt_of, excluded_exception, state_value

__all__ = ["PyBreakerSource"]

P = ParamSpec("P")
T = TypeVar("T")

_SUCCESS = sc.CircuitBreakerOutcomeValues.SUCCESS.value
_FAILURE = sc.CircuitBreakerOutcomeValues.FAILURE.value
_IGNORED = sc.CircuitBreakerOutcomeValues.IGNORED.value


class PyBreakerSource(AdapterSource):
    """Exports one ``pybreaker.CircuitBreaker``, counting from the listener it registers on it.

    ``name`` defaults to the breaker's own name (one of the two is required).
    """

    def __init__(
        self,
        breaker: pybreaker.CircuitBreaker,
        *,
        name: str | None = None,
        level: str = "service",
        parent: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> None:
        name = name or breaker.name
        if not name:
            raise ValueError("the pybreaker breaker has no name: pass name=")
        super().__init__(name, level=level, parent=parent, attributes=attributes)
        self.breaker = breaker
        self.listener = _Listener(self)
        breaker.add_listener(self.listener)

    def current_state(self) -> str:
        return state_value(self.breaker.current_state)

    def call(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``breaker.call(func, *args, **kwargs)``, also counting a rejection and timing the call."""
        return self._attempt(
            self.breaker, pybreaker.CircuitBreakerError, lambda: self.breaker.call(func, *args, **kwargs)
        )

    def close(self) -> None:
        """Stop counting: remove the listener from the breaker."""
        if self.listener in self.breaker.listeners:
            self.breaker.remove_listener(self.listener)


class _Listener(pybreaker.CircuitBreakerListener):
    """The hooks: run on the caller's thread, with the breaker's lock held."""

    def __init__(self, source: PyBreakerSource) -> None:
        self.source = source

    def before_call(self, cb: pybreaker.CircuitBreaker, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        attempt = attempt_of(cb)
        if attempt is not None:
            attempt.admitted = True

    def success(self, cb: pybreaker.CircuitBreaker) -> None:
        if excluded_exception(cb.is_system_error, "pybreaker") is not None:
            self.source._record_ignored()
            outcome = _IGNORED
        else:
            self.source._record_success()
            outcome = _SUCCESS
        attempt = attempt_of(cb)
        if attempt is not None:
            attempt.outcome = outcome

    def failure(self, cb: pybreaker.CircuitBreaker, exc: BaseException) -> None:
        self.source._record_failure(error_type_of(exc))
        attempt = attempt_of(cb)
        if attempt is not None:
            attempt.outcome = _FAILURE

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        if old_state is not None:
            self.source._record_transition(state_value(old_state.name), state_value(new_state.name))
