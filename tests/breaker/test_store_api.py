"""A state store written outside the package, with its public names only: a listener hears a
breaker's own changes, ``apply_shared_state`` moves it with another replica's. The store below
shares breakers between "replicas" through one in-process backend (what Redis is to RedisStore)."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

import pytest

from breakerpanel import (
    BreakerConfig,
    BreakerControl,
    BreakerListener,
    CircuitBreaker,
    State,
    StateChanged,
    StateStore,
    StoreStatus,
    TransitionReason,
)

from .support import private_names

Follower = Callable[[str, State, TransitionReason, "float | None", int], None]


class Backend:
    """The shared place: the latest state of each breaker name, and the replicas to tell."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: dict[str, tuple[State, TransitionReason, float | None, int]] = {}
        self.replicas: dict[int, Follower] = {}
        self.ids = itertools.count(1)


class BackendStore(StateStore):
    """One replica's store."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.breakers: dict[str, BreakerControl] = {}
        self.listeners: dict[str, BreakerListener] = {}
        self.applying = threading.local()
        with backend.lock:
            self.replica = next(backend.ids)
            backend.replicas[self.replica] = self.follow

    def attach(self, breaker: BreakerControl) -> None:
        store = self

        class Publish(BreakerListener):
            def state_changed(self, event: StateChanged) -> None:
                if not getattr(store.applying, "active", False):  # not a change this store applied
                    store.publish(breaker.name, event)

        self.breakers[breaker.name] = breaker
        self.listeners[breaker.name] = listener = Publish()
        breaker.add_listener(listener)
        with self.backend.lock:
            record = self.backend.records.get(breaker.name)
        if record is not None:  # the state in force when this replica starts
            self.follow(breaker.name, *record[:3], 0)

    def publish(self, name: str, event: StateChanged) -> None:
        with self.backend.lock:
            self.backend.records[name] = (event.state, event.reason, event.open_for, self.replica)
            others = [f for replica, f in self.backend.replicas.items() if replica != self.replica]
        for follow in others:
            follow(name, event.state, event.reason, event.open_for, self.replica)

    def follow(self, name: str, state: State, reason: TransitionReason, open_for: float | None, origin: int) -> None:
        breaker = self.breakers.get(name)
        if breaker is None or state is State.HALF_OPEN:  # half-open is each replica's own
            return
        self.applying.active = True
        try:
            breaker.apply_shared_state(state, reason, open_for)
        finally:
            self.applying.active = False

    def detach(self, breaker: BreakerControl) -> None:
        self.breakers.pop(breaker.name, None)
        listener = self.listeners.pop(breaker.name, None)
        if listener is not None:
            breaker.remove_listener(listener)

    def status(self) -> StoreStatus:
        return StoreStatus("backend", True, 0, len(self.breakers), str(self.replica))

    def close(self) -> None:
        for breaker in list(self.breakers.values()):
            self.detach(breaker)
        with self.backend.lock:
            self.backend.replicas.pop(self.replica, None)


def test_the_store_uses_public_names_only() -> None:
    for cls in (Backend, BackendStore):
        private = private_names(cls)
        assert private == [], f"{cls.__name__} reaches into private names: {private}"


def test_two_replicas_share_manual_and_automatic_changes() -> None:
    backend = Backend()
    config = BreakerConfig(minimum_calls=2, sliding_window_size=2, wait_in_open=30)
    a, b = CircuitBreaker("llm", config), CircuitBreaker("llm", config)
    with BackendStore(backend) as store_a, BackendStore(backend) as store_b:
        store_a.attach(a)
        store_b.attach(b)

        a.force_open()
        assert b.state is State.FORCED_OPEN
        b.reset()
        assert a.state is State.CLOSED

        for _ in range(2):
            with pytest.raises(ConnectionError):
                a.call(_fail)
        assert a.state is State.OPEN
        assert b.state is State.OPEN
        remaining = b.snapshot().open_remaining
        assert remaining is not None
        assert 0 < remaining <= 30

        late = CircuitBreaker("llm", config)  # a replica that starts now starts open
        with BackendStore(backend) as store_c:
            store_c.attach(late)
            assert late.state is State.OPEN
        assert store_a.status().breakers == 1

        store_b.detach(b)
        a.force_close()
        assert b.state is State.OPEN  # no longer shared


def _fail() -> None:
    raise ConnectionError("down")
