"""purgatory circuits, exported with our conventions.

::

    from purgatory import AsyncCircuitBreakerFactory
    from breakerpanel.exporter import BreakerTelemetry
    from breakerpanel.exporter.adapters import PurgatoryListener

    circuits = AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=30)
    telemetry = BreakerTelemetry(service_name="assistant")
    listener = PurgatoryListener(on_source=telemetry.add).attach(circuits)
    listener.source("openai", attributes={"gen_ai.provider.name": "openai"})  # optional

    async with await circuits.get_breaker("openai"):
        ...

**Why a listener that makes sources.** A purgatory factory is a registry of named circuits,
created on first use (``get_breaker("openai")``, ``@circuits("openai")``) and reported through
one hook per factory, ``hook(circuit_name, event_name, event)``. So :class:`PurgatoryListener` is
that hook: added to a factory with :meth:`~PurgatoryListener.attach` (``factory.add_listener``,
purgatory's public API; nothing is patched), it makes one :class:`PurgatorySource` per circuit
name the first time it sees it (circuits the factory already holds included) and hands each to
``on_source`` (``telemetry.add``), so circuits created later are exported too. Declaring a
circuit with :meth:`~PurgatoryListener.source` gives it a level, parent and dependency
attributes, and exports it before its first use. Circuit names must be unique among the
factories one listener is attached to (they name the series).

What the hook lets it count, and what it does not (purgatory 3.0; sync and async factories alike):

- **state**: for in-memory factories (the default), read from the circuit's ``Context`` at every
  scrape, so it is right before any event; for Redis-backed ones (whose reads are remote and, for
  the async factory, asynchronous), the state the last ``state_changed`` event announced, or
  ``closed``, purgatory's initial state. ``"opened"`` is ``open``, ``"half-opened"`` ``half_open``.
  purgatory leaves an open circuit ``opened`` until a call arrives after its TTL; so does the gauge.
- **transitions**, from ``state_changed``. Its event carries only the new state: the previous one
  is the last state announced, or, when that cannot be it, the only state purgatory's model leaves
  for the new one (``half-opened`` only follows ``opened``, ``closed`` only ``half-opened``).
  Events are dispatched when the call that caused them ends, which is when purgatory itself stores
  them. **Recovery durations** are timed between transitions.
- **failures**: one per ``failed`` event (a failure in the closed state), plus one per
  ``half-opened`` -> ``opened`` transition (purgatory's only cause of it is a failed probe call,
  for which it sends no ``failed`` event). Neither event carries the exception, so ``error.type``
  is ``_OTHER``, OpenTelemetry's value for an error of unknown type.
- **successes and ignored calls: not counted (0).** purgatory has no success hook: ``recovered``
  is sent only for the first success after failures and for a successful probe, and a call that
  raised an excluded exception sends nothing (or ``recovered``), so no number of successes can be
  derived from the events.
- **rejections: invisible to the hook.** An open circuit raises its ``OpenedState`` (an
  exception) from ``__enter__``, before anything is dispatched. Where the application catches it,
  :meth:`PurgatoryListener.record_rejection` counts it (reason ``open``: purgatory's half-opened
  state lets every call through).
- **call durations: none.** The hook has no start event at all.
- **slow calls, failure rate, thresholds**: purgatory counts failures against a count
  (``threshold``), not a rate: those series are absent.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Self

from purgatory import AsyncCircuitBreakerFactory, SyncCircuitBreakerFactory
from purgatory.domain.messages import Event
from purgatory.domain.messages.events import ContextChanged
from purgatory.domain.model import Context, OpenedState

from breakerpanel.exporter import semconv as sc

from ._common import OTHER_ERROR_TYPE, AdapterSource, level_value, state_value

__all__ = ["PurgatoryListener", "PurgatorySource"]

logger = logging.getLogger("breakerpanel.exporter.adapters")

_CLOSED = sc.CircuitBreakerStateValues.CLOSED.value
_OPEN = sc.CircuitBreakerStateValues.OPEN.value
_HALF_OPEN = sc.CircuitBreakerStateValues.HALF_OPEN.value
#: purgatory's model: the only state each of these can be entered from.
_ONLY_FROM = {_HALF_OPEN: _OPEN, _CLOSED: _HALF_OPEN}

Factory = SyncCircuitBreakerFactory | AsyncCircuitBreakerFactory


class PurgatorySource(AdapterSource):
    """One purgatory circuit, counted from the events its :class:`PurgatoryListener` passes on.

    ``read_state`` returns the circuit's state as purgatory names it, or ``None`` when it cannot
    tell (the state announced by the events is used then).
    """

    def __init__(
        self,
        name: str,
        *,
        level: str = "service",
        parent: str | None = None,
        attributes: Mapping[str, str] | None = None,
        state: str = "closed",
        read_state: Callable[[], str | None] | None = None,
    ) -> None:
        super().__init__(name, level=level, parent=parent, attributes=attributes)
        self._announced = state_value(state)
        self._read_state = read_state
        self._events_lock = threading.Lock()

    def current_state(self) -> str:
        if self._read_state is not None:
            raw = self._read_state()
            if raw is not None:
                return state_value(raw)
        with self._events_lock:
            return self._announced

    def _on_state_changed(self, raw: str) -> None:
        state = state_value(raw)
        with self._events_lock:
            previous = self._announced
            if previous == state or _ONLY_FROM.get(state, previous) != previous:
                previous = _ONLY_FROM.get(state, _CLOSED)
            self._announced = state
            self._record_transition(previous, state)
        if previous == _HALF_OPEN and state == _OPEN:
            self._record_failure(OTHER_ERROR_TYPE)  # the probe call failed

    def _on_failed(self) -> None:
        self._record_failure(OTHER_ERROR_TYPE)


class PurgatoryListener:
    """The hook of one or more purgatory factories: one :class:`PurgatorySource` per circuit.

    ``on_source`` is called with each source when it is made (``telemetry.add`` exports it).
    """

    def __init__(self, *, on_source: Callable[[PurgatorySource], None] | None = None) -> None:
        self.on_source = on_source
        self._lock = threading.Lock()
        self._sources: dict[str, PurgatorySource] = {}
        #: The circuits (``Context`` by name) of the in-memory factories attached.
        self._contexts: list[dict[str, Context]] = []

    def attach(self, factory: Factory) -> Self:
        """Listen to ``factory``'s circuits: those it holds already, and those it makes later."""
        factory.add_listener(self)
        contexts = getattr(factory.uow.contexts, "breakers", None)
        if isinstance(contexts, dict):
            with self._lock:
                self._contexts.append(contexts)
            for name, context in list(contexts.items()):
                if isinstance(context, Context):
                    self.source(name, state=context.state)
        return self

    def detach(self, factory: Factory) -> None:
        """Stop listening to ``factory`` (its sources keep their counts)."""
        factory.remove_listener(self)
        contexts = getattr(factory.uow.contexts, "breakers", None)
        with self._lock:
            self._contexts = [c for c in self._contexts if c is not contexts]

    def source(
        self,
        name: str,
        *,
        level: str | None = None,
        parent: str | None = None,
        attributes: Mapping[str, str] | None = None,
        state: str = "closed",
    ) -> PurgatorySource:
        """The source of circuit ``name``, made if needed; ``level``, ``parent`` and ``attributes``,
        when given, replace its own. ``state`` is its state if it is made now and its factory's
        repository cannot tell."""
        created = False
        with self._lock:
            source = self._sources.get(name)
            if source is None:
                source = PurgatorySource(
                    name,
                    level=level or "service",
                    parent=parent,
                    attributes=attributes,
                    state=state,
                    read_state=lambda: self._context_state(name),
                )
                self._sources[name] = source
                created = True
            else:
                if level is not None:
                    source.level = level_value(level)
                if parent is not None:
                    source.parent = parent
                if attributes is not None:
                    source.attributes = dict(attributes)
        if created and self.on_source is not None:
            self.on_source(source)
        return source

    def sources(self) -> list[PurgatorySource]:
        with self._lock:
            return list(self._sources.values())

    def record_rejection(self, exc: BaseException) -> bool:
        """Count a rejection, given the exception purgatory raised for it (an ``OpenedState``: its
        circuit is the one that rejected). Returns whether ``exc`` was one. Count each once."""
        if not isinstance(exc, OpenedState):
            return False
        self.source(exc.circuit_name).record_rejection()
        return True

    def _context_state(self, name: str) -> str | None:
        with self._lock:
            registries = list(self._contexts)
        for contexts in registries:
            context = contexts.get(name)
            if context is not None:
                return context.state
        return None

    # ------------------------------------------------------------------ the hook

    def __call__(self, name: str, event_name: str, event: Event) -> None:
        """purgatory's hook; never raises into the application's call."""
        try:
            self._handle(name, event_name, event)
        except Exception:
            logger.exception("purgatory event %r of circuit %r not counted", event_name, name)

    def _handle(self, name: str, event_name: str, event: Event) -> None:
        source = self.source(name)
        if event_name == "state_changed" and isinstance(event, ContextChanged):
            source._on_state_changed(event.state)
        elif event_name == "failed":
            source._on_failed()
        # "circuit_breaker_created" made the source; "recovered" says nothing countable.
