"""State stores: the pure exchange logic (Hypothesis), breakers following shared states, the memory
store, RedisStore's validation and optional import, and the Redis store under concurrency (real
redis-server; waits are polls with generous deadlines, no timing asserted)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from breakerpanel import (
    BreakerConfig,
    BreakerConfigError,
    BreakerListener,
    BreakerRegistry,
    CircuitBreaker,
    CircuitOpenError,
    ManualClock,
    MemoryStore,
    RedisStore,
    State,
    StateChanged,
    TransitionReason,
)
from breakerpanel._stores._shared import (
    PeerCounts,
    Record,
    cluster_trip,
    counts_key,
    decode_peer,
    encode_counts,
    state_key,
    votes,
)
from breakerpanel.config import BreakersFile, ConfigFileError, load_config
from tests.servers import RedisServer

DEADLINE = 10.0

counts = st.integers(min_value=0, max_value=10_000)
peers_st = st.lists(
    st.builds(lambda c, f, s, t: PeerCounts(c, min(f, c), min(s, c), t), counts, counts, counts, st.booleans()),
    max_size=6,
)
rates = st.floats(min_value=0.01, max_value=1.0)


# ---------------------------------------------------------------------- the exchange, pure


@given(counts, counts, counts, st.booleans(), st.integers(min_value=0, max_value=2**45))
def test_counts_round_trip_through_the_sync_scripts_format(
    calls: int, failures: int, slow: int, tripped: bool, ts: int
) -> None:
    failures, slow = min(failures, calls), min(slow, calls)
    value = " ".join([*encode_counts(calls, failures, slow, tripped), str(ts)])
    assert decode_peer(value.encode()) == PeerCounts(calls, failures, slow, tripped)


@example("-1")  # a negative generation once came back as one
@given(st.text(max_size=40))
def test_garbage_from_redis_never_raises(text: str) -> None:
    decode_peer(text)
    record = Record.parse(text, text, text, text, text)
    assert record.generation >= 0
    assert record.remaining_ms is None or record.remaining_ms >= 0


@given(peers_st, peers_st, st.integers(min_value=1, max_value=50), rates, rates, st.integers(min_value=1, max_value=5))
def test_cluster_trip_follows_the_summed_windows(
    own_list: list[PeerCounts], peers: list[PeerCounts], minimum: int, threshold: float, slow: float, quorum: int
) -> None:
    own = own_list[0] if own_list else PeerCounts(0, 0, 0, False)
    kwargs = {"minimum_calls": minimum, "failure_rate_threshold": threshold, "slow_call_rate_threshold": slow}
    reason = cluster_trip(own, peers, quorum=quorum, **kwargs)
    calls = own.calls + sum(p.calls for p in peers)
    failures = own.failures + sum(p.failures for p in peers)
    slow_calls = own.slow + sum(p.slow for p in peers)
    if reason is not None:
        assert calls >= minimum
        assert calls > 0
        assert failures / calls >= threshold or slow_calls / calls >= slow
        own_sees = own.sees_failures(threshold, slow)
        assert votes(own_sees, peers, threshold, slow) >= quorum
    # A larger quorum never trips where a smaller one does not.
    if cluster_trip(own, peers, quorum=quorum + 1, **kwargs) is not None:
        assert reason is not None
    # With quorum 1, the summed rates alone decide.
    unquorate = cluster_trip(own, peers, quorum=1, **kwargs)
    at_rate = calls >= minimum and calls > 0 and (failures / calls >= threshold or slow_calls / calls >= slow)
    assert (unquorate is not None) == at_rate


@given(st.text(min_size=1, max_size=30))
def test_a_breakers_keys_share_one_cluster_hash_slot(name: str) -> None:
    state, count = state_key("bp", name), counts_key("bp", name)
    tag = state[state.index("{") : state.index("}") + 1]
    assert count.startswith(f"bp:{tag}:")
    assert tag.count("{") == 1
    assert tag.count("}") == 1


# ---------------------------------------------------------------------- following a shared state


class Recorder(BreakerListener):
    def __init__(self) -> None:
        self.events: list[StateChanged] = []

    def state_changed(self, event: StateChanged) -> None:
        self.events.append(event)


def test_a_followed_open_state_rejects_until_its_deadline_then_probes() -> None:
    clock, recorder = ManualClock(), Recorder()
    breaker = CircuitBreaker("llm", BreakerConfig(wait_in_open=60.0), clock=clock, listeners=[recorder])
    assert breaker.apply_shared_state(State.OPEN, TransitionReason.FAILURE_RATE, 5.0)
    assert breaker.state is State.OPEN
    assert recorder.events[-1].reason is TransitionReason.FAILURE_RATE
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: 1)
    # The same state again moves only the deadline, without an event.
    assert not breaker.apply_shared_state(State.OPEN, TransitionReason.FAILURE_RATE, 10.0)
    assert len(recorder.events) == 1
    clock.advance(9.0)
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: 1)
    clock.advance(1.5)
    assert breaker.call(lambda: 1) == 1  # a probe
    assert breaker.state is State.HALF_OPEN


def test_only_from_guards_a_cluster_wide_trip() -> None:
    breaker = CircuitBreaker("llm", clock=ManualClock())
    breaker.force_open()
    assert not breaker.apply_shared_state(State.OPEN, TransitionReason.FAILURE_RATE, None, only_from=State.CLOSED)
    assert breaker.state is State.FORCED_OPEN
    breaker.reset()
    assert breaker.apply_shared_state(State.OPEN, TransitionReason.FAILURE_RATE, None, only_from=State.CLOSED)
    assert breaker.snapshot().open_remaining == pytest.approx(breaker.config.wait_strategy(1))


@pytest.mark.parametrize("state", [State.FORCED_OPEN, State.DISABLED, State.METRICS_ONLY, State.CLOSED])
def test_manual_states_are_followed(state: State) -> None:
    breaker = CircuitBreaker("llm", clock=ManualClock())
    if state is State.CLOSED:
        breaker.force_open()
    breaker.apply_shared_state(state, TransitionReason.MANUAL, None)
    assert breaker.state is state


def test_a_followed_forced_open_deadline_moves_both_ways() -> None:
    # force_open(d) on a breaker already forced open publishes forced_open -> forced_open with the
    # new deadline (issue 18); the other replicas follow it, "no deadline" included.
    clock = ManualClock()
    breaker = CircuitBreaker("llm", BreakerConfig(automatic_transition_to_half_open=True), clock=clock)
    breaker.force_open(30)
    assert not breaker.apply_shared_state(State.FORCED_OPEN, TransitionReason.MANUAL, None)
    assert breaker.snapshot().open_remaining is None
    assert clock.pending_timers == 0
    assert not breaker.apply_shared_state(State.FORCED_OPEN, TransitionReason.MANUAL, 10.0)
    clock.advance(10)
    assert breaker.state is State.HALF_OPEN


# ---------------------------------------------------------------------- the memory store, validation


def test_a_registry_shares_nothing_by_default() -> None:
    registry = BreakerRegistry()
    assert isinstance(registry.store, MemoryStore)
    registry.service("openai")
    registry.endpoint("openai.chat")
    status = registry.store.status()
    assert (status.backend, status.available, status.breakers) == ("memory", True, 2)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"url": "http://localhost"}, "store.url"),
        ({"quorum": 0}, "store.quorum"),
        ({"quorum": True}, "store.quorum"),
        ({"sync_interval": 0}, "store.sync_interval"),
        ({"timeout": float("inf")}, "store.timeout"),
        ({"prefix": "a{b}"}, "store.prefix"),
        ({"startup_timeout": -1}, "store.startup_timeout"),
    ],
)
def test_redis_store_options_are_validated(kwargs: dict[str, object], field: str) -> None:
    options = {"url": "redis://127.0.0.1:1/0", **kwargs}
    with pytest.raises(BreakerConfigError) as caught:
        RedisStore(**options)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_the_core_imports_without_redis_installed() -> None:
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "import breakerpanel as breaker\n"
        "store = breaker.RedisStore('redis://127.0.0.1:1/0')\n"
        "try:\n"
        "    store.attach(breaker.CircuitBreaker('x'))\n"
        "except breaker.BreakerConfigError as exc:\n"
        "    print('needs redis' if 'pip install' in str(exc) else exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "needs redis"


# ---------------------------------------------------------------------- the Redis store, for real


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {DEADLINE}s"
        time.sleep(0.01)


@pytest.fixture
def stores(redis_server: RedisServer) -> Iterator[Callable[..., RedisStore]]:
    made: list[RedisStore] = []

    def make(**options: object) -> RedisStore:
        store = RedisStore(redis_server.url, prefix="unit", sync_interval=0.05, **options)  # type: ignore[arg-type]
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


class Injected(Exception):
    pass


def _fail() -> None:
    raise Injected


def test_summed_windows_trip_every_replica(stores: Callable[..., RedisStore]) -> None:
    config = BreakerConfig(minimum_calls=10, sliding_window_size=100, failure_rate_threshold=0.5)
    a, b = CircuitBreaker("db", config), CircuitBreaker("db", config)
    stores().attach(a)
    stores().attach(b)
    for breaker in (a, b):  # 6 calls each: below minimum_calls alone, 12 at 50% together
        for _ in range(3):
            breaker.call(lambda: 1)
            with pytest.raises(Injected):
                breaker.call(_fail)
    wait_for(lambda: a.state is State.OPEN and b.state is State.OPEN, "cluster-wide trip")
    assert {a.snapshot().state, b.snapshot().state} == {State.OPEN}


def test_followed_changes_reach_other_listeners(stores: Callable[..., RedisStore]) -> None:
    recorder = Recorder()
    a, b = CircuitBreaker("svc"), CircuitBreaker("svc", listeners=[recorder])
    stores().attach(a)
    stores().attach(b)
    a.force_open(30.0)
    wait_for(lambda: b.state is State.FORCED_OPEN, "forced open followed")
    assert recorder.events[-1].reason is TransitionReason.MANUAL
    assert b.snapshot().open_remaining is not None
    assert 0 < b.snapshot().open_remaining <= 30.0


def test_concurrent_callers_and_state_flips_converge(stores: Callable[..., RedisStore]) -> None:
    config = BreakerConfig(minimum_calls=4, sliding_window_size=8, wait_in_open=0.05)
    a, b = CircuitBreaker("hot", config), CircuitBreaker("hot", config)
    stores().attach(a)
    stores().attach(b)
    unexpected: list[BaseException] = []
    stop = threading.Event()

    def hammer(seed: int) -> None:
        n = seed
        while not stop.is_set():
            n += 1
            try:
                a.call(_fail if n % 3 == 0 else (lambda: 1))
            except (Injected, CircuitOpenError):
                pass
            except BaseException as exc:
                unexpected.append(exc)

    def flipper() -> None:
        while not stop.is_set():
            b.force_open()
            b.reset()

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(6)] + [threading.Thread(target=flipper)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join(30)
    assert unexpected == []
    # Once quiet, the last change made anywhere is the state everywhere.
    b.force_open()
    wait_for(lambda: a.state is State.FORCED_OPEN, "converged on forced open")
    b.reset()
    wait_for(lambda: a.state is State.CLOSED, "converged on closed")


class _Paused:
    """Holds a store's thread (its loop runs nothing) until the block ends: what a busy or slow
    store thread does to the order of its work, made deterministic."""

    def __init__(self, store: RedisStore) -> None:
        self._store, self._held, self._release = store, threading.Event(), threading.Event()

    def __enter__(self) -> None:
        loop = self._store._loop
        assert loop is not None

        def hold() -> None:
            self._held.set()
            self._release.wait(DEADLINE)

        loop.call_soon_threadsafe(hold)
        assert self._held.wait(DEADLINE)

    def __exit__(self, *exc: object) -> None:
        self._release.set()


def _record(store: RedisStore, name: str, **changes: object) -> Record:
    """The record the store knows for ``name``, one generation on, with ``changes``."""
    shared = store._shared[name]
    fields: dict[str, object] = {
        "generation": shared.seen_gen + 1,
        "state": State.CLOSED,
        "reason": "probes_succeeded",
        "remaining_ms": None,
        "origin": "another-replica",
    }
    if hasattr(shared, "seen_epoch"):  # the record's incarnation: the one the store follows
        fields["epoch"] = shared.seen_epoch
    fields.update(changes)
    return Record(**fields)  # type: ignore[arg-type]


def _in_force(server: RedisServer, name: str) -> dict[str, str]:
    import redis

    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        return client.hgetall(state_key("unit", name))  # type: ignore[return-value]
    finally:
        client.close()


def test_a_record_older_than_a_change_made_by_hand_does_not_undo_it_locally(
    stores: Callable[..., RedisStore], redis_server: RedisServer
) -> None:
    # The record of another replica's change arrives after this replica's manual change but before
    # its publication: the breaker kept the older record's state while the cluster took the manual
    # one, and a later reset() here, on a breaker closed already, published nothing.
    config = BreakerConfig(minimum_calls=4, sliding_window_size=8)
    a, b = CircuitBreaker("hand", config), CircuitBreaker("hand", config)
    store_a, store_b = stores(), stores()
    store_a.attach(a)
    store_b.attach(b)
    with _Paused(store_b):
        b.force_open()
        store_b._follow(store_b._shared["hand"], _record(store_b, "hand"))
        assert b.state is State.FORCED_OPEN
    wait_for(lambda: a.state is State.FORCED_OPEN, "the manual change reached the other replica")
    b.reset()
    wait_for(lambda: a.state is State.CLOSED, "and so did the reset")
    assert b.state is State.CLOSED


def test_an_automatic_change_decided_before_a_newer_record_is_not_published(
    stores: Callable[..., RedisStore], redis_server: RedisServer
) -> None:
    # A trip decided here, then another replica's forced open followed before the trip went out:
    # published after it, the trip won the compare-and-set against the generation just followed,
    # and the cluster took "open" while this breaker held "forced open".
    config = BreakerConfig(minimum_calls=2, sliding_window_size=2)
    a, b = CircuitBreaker("auto", config), CircuitBreaker("auto", config)
    store_a, store_b = stores(), stores()
    store_a.attach(a)
    store_b.attach(b)
    with _Paused(store_a):
        for _ in range(2):
            with pytest.raises(Injected):
                a.call(_fail)
        assert a.state is State.OPEN
        b.force_open()
        wait_for(lambda: _in_force(redis_server, "auto").get("state") == "forced_open", "published")
        hashed = _in_force(redis_server, "auto")
        forced = Record.parse(*(hashed.get(key, "") for key in ("gen", "state", "reason", "until", "origin", "epoch")))
        store_a._follow(store_a._shared["auto"], forced)  # its message, handled before the trip's push
        assert a.state is State.FORCED_OPEN
    store_a.sync_now()
    store_b.sync_now()
    assert _in_force(redis_server, "auto")["state"] == "forced_open"
    assert (a.state, b.state) == (State.FORCED_OPEN, State.FORCED_OPEN)


def test_a_sync_reply_overtaken_by_a_message_is_not_a_redis_restart(
    stores: Callable[..., RedisStore], redis_server: RedisServer
) -> None:
    # A reply read before a newer message, handled after it, has a lower generation than the one
    # this replica saw. It used to be taken for Redis restarted empty: the replica republished its
    # state as its own, a forced open another replica had already lifted.
    a, b = CircuitBreaker("late"), CircuitBreaker("late")
    store_a, store_b = stores(), stores()
    store_a.attach(a)
    store_b.attach(b)
    b.force_open()
    wait_for(lambda: a.state is State.FORCED_OPEN, "followed")
    before = _in_force(redis_server, "late")
    shared = store_a._shared["late"]
    shared.seen_gen += 5  # as if messages newer than Redis's reply had been handled already
    store_a.sync_now()
    assert _in_force(redis_server, "late") == before


# ---------------------------------------------------------------------- breakers.yaml


def _load(tmp_path: Path, text: str) -> BreakersFile:
    path = tmp_path / "breakers.yaml"
    path.write_text(text)
    return load_config(path, environ={})


@pytest.mark.parametrize(
    ("store", "reason"),
    [
        ("{backend: redis}", "backend redis needs a url"),
        ("{backend: redis, url: 'http://x'}", "redis://"),
        ("{backend: redis, url: 'redis://x', quorum: 0}", "greater than or equal to 1"),
        ("{backend: redis, url: 'redis://x', prefix: 'a{b}'}", "braces"),
        ("{backend: memory, quorum: 2}", "backend redis only"),
        ("{backend: etcd}", "'memory' or 'redis'"),
        ("{backend: redis, url: 'redis://x', sync_interval: fast}", "duration"),
    ],
)
def test_store_section_errors_name_the_key(tmp_path: Path, store: str, reason: str) -> None:
    with pytest.raises(ConfigFileError) as caught:
        _load(tmp_path, f"services: {{openai: {{}}}}\nstore: {store}\n")
    (line, key, message), *_ = caught.value.problems
    assert line == 2
    assert key.startswith("store")
    assert reason in message


def test_store_section_builds_a_shared_registry(tmp_path: Path, redis_server: RedisServer) -> None:
    config = _load(
        tmp_path,
        "services: {openai: {}}\n"
        f"store: {{backend: redis, url: '{redis_server.url}', sync_interval: 100ms, quorum: 2}}\n",
    )
    registry = config.build().registry
    store = registry.store
    try:
        assert isinstance(store, RedisStore)
        assert (store.sync_interval, store.quorum) == (0.1, 2)
        assert store.status().breakers == 1
        assert store.status().available
    finally:
        store.close()
    assert isinstance(_load(tmp_path, "services: {openai: {}}\n").build().registry.store, MemoryStore)
