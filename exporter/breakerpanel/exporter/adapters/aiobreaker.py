"""aiobreaker breakers, exported with our conventions.

::

    from datetime import timedelta

    import aiobreaker
    from breakerpanel.exporter import BreakerTelemetry
    from breakerpanel.exporter.adapters import AioBreakerSource

    qdrant = aiobreaker.CircuitBreaker(fail_max=5, timeout_duration=timedelta(seconds=30), name="qdrant")
    source = AioBreakerSource(qdrant, attributes={"db.system.name": "qdrant"})
    telemetry = BreakerTelemetry(source, service_name="rag")

    hits = await source.call_async(client.search, query)  # or qdrant.call_async(...): see below

:class:`AioBreakerSource` adds a listener to the breaker (``breaker.add_listener``, its public
API; nothing of aiobreaker is patched) and keeps our counters from its hooks. aiobreaker is a
port of pybreaker to asyncio with the same hooks, so it shows and hides the same things
(aiobreaker 1.2):

- **state**: read from ``breaker.current_state`` (a ``CircuitBreakerState`` member) at every
  scrape, so it is right before any event; ``HALF_OPEN`` is ``half_open``.
- **successes** and **failures** by ``error.type`` (the exception's fully-qualified class name),
  from the ``success`` and ``failure`` hooks, for ``call`` and ``call_async`` alike.
- **ignored**: a call that raised one of the breaker's ``exclude`` exceptions is reported through
  the ``success`` hook, from aiobreaker's ``except`` block; the adapter tells it apart by the
  exception being handled and counts it as ``ignored``.
- **transitions**, from ``state_change``; **recovery durations** are timed between them.
- **rejections: invisible to listeners.** An open aiobreaker raises ``CircuitBreakerError`` before
  calling any listener, not even ``before_call``. Calls through :meth:`AioBreakerSource.call` and
  :meth:`AioBreakerSource.call_async` are counted: a ``CircuitBreakerError`` raised before the
  call reached ``before_call`` is a rejection (reason ``open``: the half-open state lets every
  call through); one raised after its ``failure`` hook is the failure that tripped the breaker.
  The bookkeeping is a context variable, so concurrent tasks are told apart. Calls made with
  ``breaker.call()``, ``breaker.call_async()`` or ``@breaker`` are counted in everything but
  rejections and durations.
- **call durations**: only for calls through the source's wrappers. The hooks carry no call
  identity, aiobreaker runs concurrent calls without a lock, and a cancelled call
  (``CancelledError`` is not an ``Exception``) reaches ``before_call`` and no other hook, so
  starts and ends cannot be paired from the hooks alone. A cancelled call is counted in no
  outcome at all: aiobreaker does not report it.
- **slow calls, failure rate, thresholds**: aiobreaker counts consecutive failures against
  ``fail_max``: those series are absent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ParamSpec, TypeVar

import aiobreaker  # type: ignore[import-untyped]  # aiobreaker ships no type information

from breakerpanel import error_type_of
from breakerpanel.exporter import semconv as sc

from ._common import AdapterSource, attempt_of, excluded_exception, state_value

__all__ = ["AioBreakerSource"]

P = ParamSpec("P")
T = TypeVar("T")

_SUCCESS = sc.CircuitBreakerOutcomeValues.SUCCESS.value
_FAILURE = sc.CircuitBreakerOutcomeValues.FAILURE.value
_IGNORED = sc.CircuitBreakerOutcomeValues.IGNORED.value


def _state_name(state: Any) -> str:
    """Our name for an aiobreaker state: a ``CircuitBreakerState`` member (or, from a custom
    storage, its name as a string)."""
    return state_value(str(getattr(state, "name", state)))


class AioBreakerSource(AdapterSource):
    """Exports one ``aiobreaker.CircuitBreaker``, counting from the listener it registers on it.

    ``name`` defaults to the breaker's own name (one of the two is required).
    """

    def __init__(
        self,
        breaker: Any,
        *,
        name: str | None = None,
        level: str = "service",
        parent: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(breaker, aiobreaker.CircuitBreaker):
            raise TypeError(f"expected an aiobreaker.CircuitBreaker, got {type(breaker).__name__}")
        name = name or breaker.name
        if not name or not isinstance(name, str):
            raise ValueError("the aiobreaker breaker has no name: pass name=")
        super().__init__(name, level=level, parent=parent, attributes=attributes)
        self.breaker = breaker
        self.listener = _Listener(self)
        breaker.add_listener(self.listener)

    def current_state(self) -> str:
        return _state_name(self.breaker.current_state)

    def call(self, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``breaker.call(func, *args, **kwargs)``, also counting a rejection and timing the call."""

        def invoke() -> T:
            result: T = self.breaker.call(func, *args, **kwargs)
            return result

        return self._attempt(self.breaker, aiobreaker.CircuitBreakerError, invoke)

    async def call_async(self, func: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``await breaker.call_async(func, *args, **kwargs)``, also counting a rejection and timing
        the call."""

        async def invoke() -> T:
            result: T = await self.breaker.call_async(func, *args, **kwargs)
            return result

        return await self._attempt_async(self.breaker, aiobreaker.CircuitBreakerError, invoke)

    def close(self) -> None:
        """Stop counting: remove the listener from the breaker."""
        if self.listener in self.breaker.listeners:
            self.breaker.remove_listener(self.listener)


class _Listener:
    """The hooks of ``aiobreaker.CircuitBreakerListener`` (called by name: aiobreaker does not
    require the base class), run synchronously in the calling thread or task."""

    def __init__(self, source: AioBreakerSource) -> None:
        self.source = source

    def before_call(self, breaker: Any, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        attempt = attempt_of(breaker)
        if attempt is not None:
            attempt.admitted = True

    def success(self, breaker: Any) -> None:
        if excluded_exception(breaker.is_system_error, "aiobreaker") is not None:
            self.source._record_ignored()
            outcome = _IGNORED
        else:
            self.source._record_success()
            outcome = _SUCCESS
        attempt = attempt_of(breaker)
        if attempt is not None:
            attempt.outcome = outcome

    def failure(self, breaker: Any, exception: BaseException) -> None:
        self.source._record_failure(error_type_of(exception))
        attempt = attempt_of(breaker)
        if attempt is not None:
            attempt.outcome = _FAILURE

    def state_change(self, breaker: Any, old: Any, new: Any) -> None:
        if old is not None:
            self.source._record_transition(_state_name(old.state), _state_name(new.state))
