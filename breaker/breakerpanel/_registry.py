"""The registry: every breaker of an application, as a tree.

Three levels: services (one per dependency: ``openai``, ``qdrant``, ``postgres``), endpoints (one
operation on a service: ``openai.chat``; its calls are admitted by the service first and count in
both windows) and features (``answer``: required and optional dependencies, a fallback chain).
Health endpoints, the exporter and the incident bot walk the tree through :meth:`tree` and
:meth:`breakers`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from ._breaker import CircuitBreaker
from ._clock import Clock, MonotonicClock
from ._config import BreakerConfig
from ._events import BreakerListener
from ._exceptions import BreakerConfigError
from ._fallback import FallbackStep
from ._feature import Feature
from ._state import Level
from ._stores import MemoryStore, StateStore

__all__ = ["BreakerRegistry"]

logger = logging.getLogger("breakerpanel")


class BreakerRegistry:
    """Creates and holds the breakers of one application.

    >>> registry = BreakerRegistry()
    >>> openai = registry.service("openai", attributes={"gen_ai.provider.name": "openai"})
    >>> chat = registry.endpoint("openai.chat")
    >>> chat.parent is openai, dict(chat.attributes)
    (True, {'gen_ai.provider.name': 'openai'})
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        listeners: Iterable[BreakerListener] = (),
        store: StateStore | None = None,
    ) -> None:
        self.clock: Clock = clock or MonotonicClock()
        self._listeners = tuple(listeners)
        self._watchers: list[Callable[[CircuitBreaker], None]] = []
        self._breakers: dict[str, CircuitBreaker] = {}
        self._features: dict[str, Feature] = {}
        self._lock = threading.Lock()
        #: Where the breakers share their state with other replicas (memory: not shared).
        self.store: StateStore = store if store is not None else MemoryStore()

    # ------------------------------------------------------------------ building

    def service(
        self, name: str, config: BreakerConfig | None = None, *, attributes: Mapping[str, str] | None = None
    ) -> CircuitBreaker:
        """Register the breaker of a dependency."""
        if "." in name:
            raise BreakerConfigError(f"services.{name}", "a service name has no dots (endpoints are service.operation)")
        breaker = CircuitBreaker(
            name, config, clock=self.clock, listeners=self._listeners, level=Level.SERVICE, attributes=attributes
        )
        return self._add(breaker)

    def endpoint(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        service: str | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> CircuitBreaker:
        """Register the breaker of one operation on a service (``openai.chat``).

        The service is the part of the name before the first dot unless given, and must be
        registered first. The endpoint inherits the service's attributes (its own win).
        """
        service_name = service or name.partition(".")[0]
        parent = self._breakers.get(service_name)
        if parent is None or parent.level is not Level.SERVICE:
            raise BreakerConfigError(f"endpoints.{name}", f"service {service_name!r} is not registered")
        merged = {**parent.attributes, **(attributes or {})}
        breaker = CircuitBreaker(
            name, config, clock=self.clock, listeners=self._listeners, parent=parent, attributes=merged
        )
        return self._add(breaker)

    def feature(
        self,
        name: str,
        *,
        required: Sequence[str] = (),
        optional: Sequence[str] = (),
        fallback: Sequence[FallbackStep] = (),
        config: BreakerConfig | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> Feature:
        """Register a feature over registered services or endpoints."""
        feature = Feature(
            name,
            required=[self._dependency(name, d) for d in required],
            optional=[self._dependency(name, d) for d in optional],
            fallback=fallback,
            config=config,
            clock=self.clock,
            listeners=self._listeners,
            attributes=attributes,
        )
        self._add(feature.breaker)
        self._features[name] = feature
        return feature

    def _dependency(self, feature: str, name: str) -> CircuitBreaker:
        breaker = self._breakers.get(name)
        if breaker is None or breaker.level is Level.FEATURE:
            raise BreakerConfigError(
                f"features.{feature}", f"dependency {name!r} is not a registered service or endpoint"
            )
        return breaker

    def _add(self, breaker: CircuitBreaker) -> CircuitBreaker:
        with self._lock:
            if breaker.name in self._breakers:
                duplicate = True
            else:
                duplicate = False
                self._breakers[breaker.name] = breaker
                watchers = list(self._watchers)
                # Listeners added while the breaker was being built (it took the tuple in force then).
                missed = [listener for listener in self._listeners if listener not in breaker.listeners]
        if duplicate:
            parent = breaker.parent
            if parent is not None:  # the breaker joined its service's children as it was made
                with parent._lock:
                    parent._children = tuple(c for c in parent._children if c is not breaker)
            raise BreakerConfigError(breaker.name, "a breaker with this name is already registered")
        for listener in missed:
            breaker.add_listener(listener)
        # Attached after the listeners, so they see a state adopted from the other replicas.
        self.store.attach(breaker)
        for watcher in watchers:
            _tell(watcher, breaker)
        return breaker

    def watch(self, callback: Callable[[CircuitBreaker], None]) -> None:
        """Call ``callback`` with every breaker: those registered now, and each one registered
        later (an exporter uses this to set breakers up as they appear). A callback that raises
        is logged; the breaker stays registered and the other callbacks are called."""
        with self._lock:
            self._watchers.append(callback)
            breakers = list(self._breakers.values())
        for breaker in breakers:
            _tell(callback, breaker)

    def add_listener(self, listener: BreakerListener) -> None:
        """Listen to every breaker, those registered later included."""
        with self._lock:
            self._listeners = (*self._listeners, listener)
            breakers = list(self._breakers.values())
        for breaker in breakers:
            breaker.add_listener(listener)

    # ------------------------------------------------------------------ lookup

    def __getitem__(self, name: str) -> CircuitBreaker:
        try:
            return self._breakers[name]
        except KeyError:
            raise KeyError(f"no breaker named {name!r}; registered: {sorted(self._breakers)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._breakers

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter(self.breakers())

    def __len__(self) -> int:
        return len(self._breakers)

    def get_feature(self, name: str) -> Feature:
        try:
            return self._features[name]
        except KeyError:
            raise KeyError(f"no feature named {name!r}; registered: {sorted(self._features)}") from None

    def breakers(self, level: Level | None = None) -> list[CircuitBreaker]:
        with self._lock:
            breakers = list(self._breakers.values())
        return [b for b in breakers if level is None or b.level is level]

    def features(self) -> list[Feature]:
        with self._lock:
            return list(self._features.values())

    # ------------------------------------------------------------------ walking

    def tree(self) -> dict[str, Any]:
        """Services with their endpoints, and features with their dependencies, with states:
        what a readiness endpoint or an incident card shows."""
        services = []
        for service in self.breakers(Level.SERVICE):
            services.append(
                {**describe_breaker(service), "endpoints": [describe_breaker(child) for child in service.children]}
            )
        features = []
        for feature in self.features():
            status = feature.status()
            features.append(
                {
                    **describe_breaker(feature.breaker),
                    "availability": status.availability.value,
                    "required": [d.name for d in feature.required],
                    "optional": [d.name for d in feature.optional],
                    "open_required": list(status.open_required),
                    "open_optional": list(status.open_optional),
                    "fallbacks": [{"type": s.type.value, "name": s.name} for s in feature.chain.steps],
                }
            )
        return {"services": services, "features": features}

    def __repr__(self) -> str:
        return f"BreakerRegistry({len(self._breakers)} breakers, {len(self._features)} features)"


def describe_breaker(breaker: CircuitBreaker) -> dict[str, Any]:
    """One breaker's state and figures as JSON-ready values (a node of :meth:`BreakerRegistry.tree`)."""
    snap = breaker.snapshot()
    return {
        "name": snap.name,
        "level": snap.level.value,
        "parent": snap.parent,
        "state": snap.state.value,
        "rejecting": breaker.is_rejecting(),
        "failure_rate": snap.failure_rate,
        "slow_call_rate": snap.slow_call_rate,
        "failure_rate_threshold": snap.failure_rate_threshold,
        "calls": snap.calls,
        "open_remaining": snap.open_remaining,
    }


def _tell(watcher: Callable[[CircuitBreaker], None], breaker: CircuitBreaker) -> None:
    """Call one watcher: one that raises must not stop the others, nor leave the breaker
    registered but unusable (registering it again would say it exists)."""
    try:
        watcher(breaker)
    except Exception:
        logger.exception("registry watcher %r failed for breaker %r", watcher, breaker.name)
