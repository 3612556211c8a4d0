"""The store interface, its status, and the memory store (the default: nothing shared)."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass

from breakerpanel._events import BreakerControl

__all__ = ["MemoryStore", "StateStore", "StoreStatus"]


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """What a store reports about itself (an exporter turns it into metrics)."""

    #: ``memory`` or ``redis``.
    backend: str
    #: Whether the shared state is reachable. ``False``: breakers decide on local state alone.
    available: bool
    #: Failed operations against the backend since the store started (they never reach callers).
    errors: int
    #: How many breakers the store shares.
    breakers: int
    #: This process's name among the replicas.
    replica_id: str


class StateStore(ABC):
    """Where breakers share their state. Subclasses implement :meth:`attach`, :meth:`detach`,
    :meth:`status` and :meth:`close`.

    A store never touches the call path: it listens to state changes and reads window counts
    in the background, and moves a breaker with decisions made elsewhere.
    """

    @abstractmethod
    def attach(self, breaker: BreakerControl) -> None:
        """Share ``breaker``'s state from now on (a breaker name is its identity across replicas)."""

    @abstractmethod
    def detach(self, breaker: BreakerControl) -> None:
        """Stop sharing ``breaker``'s state."""

    @abstractmethod
    def status(self) -> StoreStatus:
        """The store's health, for logs and metrics."""

    @abstractmethod
    def close(self) -> None:
        """Stop sharing and release connections; breakers keep working on local state."""

    async def aclose(self) -> None:
        """:meth:`close`, from async code (off the event loop)."""
        import asyncio

        await asyncio.to_thread(self.close)

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> StateStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class MemoryStore(StateStore):
    """Nothing shared: every process decides on its own calls. The default.

    >>> from breakerpanel import CircuitBreaker
    >>> store = MemoryStore()
    >>> store.attach(CircuitBreaker("openai"))
    >>> store.status().breakers, store.status().available
    (1, True)
    """

    def __init__(self) -> None:
        self._names: set[str] = set()
        self._lock = threading.Lock()

    def attach(self, breaker: BreakerControl) -> None:
        with self._lock:
            self._names.add(breaker.name)

    def detach(self, breaker: BreakerControl) -> None:
        with self._lock:
            self._names.discard(breaker.name)

    def status(self) -> StoreStatus:
        with self._lock:
            count = len(self._names)
        return StoreStatus(backend="memory", available=True, errors=0, breakers=count, replica_id="local")

    def close(self) -> None:
        with self._lock:
            self._names.clear()

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._names)} breakers)"
