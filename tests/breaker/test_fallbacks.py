"""Fallback chains, caches, features and the registry."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import pytest

from breakerpanel import (
    MISSING,
    Alternate,
    Availability,
    BreakerConfig,
    BreakerConfigError,
    BreakerRegistry,
    CachedResponse,
    CacheMiss,
    CircuitBreaker,
    CircuitOpenError,
    FallbackChain,
    FallbackType,
    Feature,
    ManualClock,
    MemoryCache,
    Outcome,
    RejectionReason,
    Simplified,
    State,
    Static,
    default_cache_key,
    ignore_exceptions,
)

from .support import Boom, fail


async def down(prompt: str) -> str:
    raise ConnectionError(f"refused: {prompt}")


async def up(prompt: str) -> str:
    return f"primary: {prompt}"


def counts(breaker: CircuitBreaker) -> dict[tuple[FallbackType, Outcome], int]:
    return breaker.snapshot().totals.fallbacks


class TestChain:
    async def test_alternate_behind_its_own_breaker(self, clock: ManualClock) -> None:
        openai = CircuitBreaker("openai.chat", clock=clock)
        anthropic = CircuitBreaker("anthropic.messages", clock=clock)

        async def ask_anthropic(prompt: str) -> str:
            return f"anthropic: {prompt}"

        chain = FallbackChain(openai, Alternate(ask_anthropic, breaker=anthropic))
        assert await chain.acall(down, "hi") == "anthropic: hi"
        assert counts(openai) == {(FallbackType.ALTERNATE, Outcome.SUCCESS): 1}
        assert anthropic.snapshot().totals.successes == 1  # the alternate's own breaker saw it

    async def test_steps_are_tried_in_order_until_one_works(self, clock: ManualClock) -> None:
        b = CircuitBreaker("primary", clock=clock)
        chain = FallbackChain(
            b,
            Alternate(down, name="secondary"),
            CachedResponse(MemoryCache(clock=clock)),
            Simplified(lambda prompt: f"template for {prompt}"),
            Static("never reached"),
        )
        assert await chain.acall(down, "q") == "template for q"
        assert counts(b) == {
            (FallbackType.ALTERNATE, Outcome.FAILURE): 1,
            (FallbackType.CACHE, Outcome.FAILURE): 1,
            (FallbackType.SIMPLIFIED, Outcome.SUCCESS): 1,
        }

    async def test_cache_serves_the_last_success_for_the_same_call(self, clock: ManualClock) -> None:
        b = CircuitBreaker("primary", clock=clock)
        cache = MemoryCache(ttl=60, clock=clock)
        chain = FallbackChain(b, CachedResponse(cache))
        assert await chain.acall(up, "what is up") == "primary: what is up"
        assert await chain.acall(down, "what is up") == "primary: what is up"  # from the cache
        with pytest.raises(ConnectionError):
            await chain.acall(down, "something else")  # nothing cached for these arguments
        clock.advance(61)
        with pytest.raises(ConnectionError):
            await chain.acall(down, "what is up")  # expired

    async def test_when_every_step_fails_the_original_error_is_raised(self, clock: ManualClock) -> None:
        b = CircuitBreaker("primary", clock=clock)

        def broken(prompt: str) -> str:
            raise Boom("simplified mode broke too")

        chain = FallbackChain(b, Alternate(down, name="secondary"), Simplified(broken))
        with pytest.raises(ConnectionError, match="refused: q") as info:
            await chain.acall(down, "q")
        group = info.value.__cause__
        assert isinstance(group, ExceptionGroup)
        assert [type(e) for e in group.exceptions] == [ConnectionError, Boom]
        assert "secondary (ConnectionError" in "".join(info.value.__notes__)

    async def test_rejections_go_to_the_fallback(self, clock: ManualClock) -> None:
        b = CircuitBreaker("primary", clock=clock)
        b.force_open()
        chain = FallbackChain(b, Static("canned"))
        assert await chain.acall(up, "q") == "canned"
        assert b.snapshot().totals.rejected[RejectionReason.FORCED_OPEN] == 1

    async def test_ignored_errors_and_cancellation_do_not(self, clock: ManualClock) -> None:
        b = CircuitBreaker("primary", BreakerConfig(classifier=ignore_exceptions(ValueError)), clock=clock)
        chain = FallbackChain(b, Static("canned"))

        async def bad_request(prompt: str) -> str:
            raise ValueError("prompt too long")

        with pytest.raises(ValueError, match="too long"):
            await chain.acall(bad_request, "q")
        task = asyncio.create_task(chain.acall(asyncio.sleep, 60))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert counts(b) == {}

    def test_sync_calls(self, clock: ManualClock) -> None:
        b = CircuitBreaker("primary", clock=clock)
        chain = FallbackChain(b, CachedResponse(MemoryCache(clock=clock)), Static("canned"))

        @chain
        def lookup(key: str, *, flaky: bool = False) -> str:
            if flaky:
                raise ConnectionError
            return key.upper()

        assert lookup("a") == "A"
        assert lookup("a", flaky=True) == "canned"  # kwargs are part of the cache key
        assert chain.call(lambda key: (_ for _ in ()).throw(ConnectionError()), "a") == "A"

    def test_bad_construction_is_explained(self, clock: ManualClock) -> None:
        with pytest.raises(BreakerConfigError, match="breaker"):
            FallbackChain("primary", Static(1))  # type: ignore[arg-type]
        with pytest.raises(BreakerConfigError, match="steps"):
            FallbackChain(CircuitBreaker("x"), "static")  # type: ignore[arg-type]
        with pytest.raises(BreakerConfigError, match="cache"):
            CachedResponse({})  # type: ignore[arg-type]


class TestMemoryCache:
    def test_ttl_and_lru(self, clock: ManualClock) -> None:
        cache = MemoryCache(max_entries=2, ttl=10, clock=clock)
        cache.set("a", 1)
        cache.set("b", None)  # None is a value, not a miss
        assert cache.get("b") is None
        assert cache.get("a") == 1
        cache.set("c", 3)
        assert cache.get("b") is MISSING
        clock.advance(10)
        assert cache.get("a") is MISSING
        cache.set("d", 4, ttl=100)
        clock.advance(50)
        assert cache.get("d") == 4

    def test_rejects_bad_settings(self) -> None:
        with pytest.raises(BreakerConfigError, match="max_entries"):
            MemoryCache(max_entries=0)
        for ttl in (-1, 0, float("nan"), True):  # one rule for every cache (checked_ttl)
            with pytest.raises(BreakerConfigError, match="ttl"):
                MemoryCache(ttl=ttl)

    def test_default_key_is_stable_and_argument_sensitive(self) -> None:
        assert default_cache_key("q", model="m") == default_cache_key("q", model="m")
        assert default_cache_key("q", model="m") != default_cache_key("q", model="n")
        assert default_cache_key({"b": 1, "a": 2}) == default_cache_key({"a": 2, "b": 1})

    def test_default_key_and_copies_bear_a_value_holding_a_handle(self, clock: ManualClock) -> None:
        @dataclasses.dataclass
        class Result:
            text: str
            lock: Any = dataclasses.field(default_factory=threading.Lock)

        result = Result("answer")
        assert default_cache_key(result) == default_cache_key(result)  # asdict() raised on the lock
        cache = MemoryCache(clock=clock)
        cache.set("k", result)  # cannot be deep-copied: kept as it is, not dropped
        assert cache.get("k") is result

    def test_a_caller_changing_its_answer_changes_nothing_stored(self, clock: ManualClock) -> None:
        cache = MemoryCache(clock=clock)
        answer = {"user": 7, "roles": ["viewer"]}
        cache.set("k", answer)
        answer["roles"].append("admin")  # the caller goes on using what the primary returned
        served = cache.get("k")
        assert served == {"user": 7, "roles": ["viewer"]}
        served["roles"].append("scratch")
        assert cache.get("k") == {"user": 7, "roles": ["viewer"]}
        shared = MemoryCache(clock=clock, copy=False)  # for values nobody changes
        shared.set("k", answer)
        assert shared.get("k") is answer

    @pytest.mark.parametrize("ttl", [float("nan"), 0, -5, True, "60"])
    def test_cached_response_refuses_a_ttl_that_is_not_positive(self, ttl: object) -> None:
        # NaN kept an answer for ever; 0 or less stored it already expired: never served.
        with pytest.raises(BreakerConfigError, match="ttl"):
            CachedResponse(MemoryCache(), ttl=ttl)  # type: ignore[arg-type]
        assert CachedResponse(MemoryCache(), ttl=None).ttl is None

    async def test_miss_is_an_error_for_the_chain(self, clock: ManualClock) -> None:
        with pytest.raises(CacheMiss):
            await CachedResponse(MemoryCache(clock=clock)).aserve(("q",), {})


def rejected(breaker: CircuitBreaker) -> dict[RejectionReason, int]:
    """The breaker's rejections by reason, the reasons it never gave left out."""
    return {reason: n for reason, n in breaker.snapshot().totals.rejected.items() if n}


class TestFeature:
    def build(self, clock: ManualClock, **feature: object) -> tuple[BreakerRegistry, Feature]:
        registry = BreakerRegistry(clock=clock)
        registry.service("openai")
        registry.endpoint("openai.embeddings")
        registry.service("qdrant")
        registry.endpoint("qdrant.search")
        registry.service("postgres")
        registry.endpoint("postgres.query")
        answer = registry.feature(
            "answer",
            required=["openai.embeddings", "qdrant.search"],
            optional=["postgres.query"],
            **feature,  # type: ignore[arg-type]
        )
        return registry, answer

    async def test_available_feature_runs_the_primary(self, clock: ManualClock) -> None:
        _, answer = self.build(clock, fallback=[Static("degraded answer")])
        assert answer.availability() is Availability.AVAILABLE
        assert await answer.acall(up, "q") == "primary: q"
        assert answer.breaker.snapshot().totals.successes == 1

    async def test_an_open_required_dependency_makes_it_unavailable(self, clock: ManualClock) -> None:
        registry, answer = self.build(clock, fallback=[Static("degraded answer")])
        registry["qdrant"].force_open(30)  # the service: its endpoint is open through it
        status = answer.status()
        assert status.availability is Availability.UNAVAILABLE
        assert status.open_required == ("qdrant.search",)
        calls = 0

        async def primary(prompt: str) -> str:
            nonlocal calls
            calls += 1
            return "primary"

        assert await answer.acall(primary, "q") == "degraded answer"
        assert calls == 0  # not tried: the feature knew it could not work
        totals = answer.breaker.snapshot().totals
        assert totals.rejected[RejectionReason.PARENT_OPEN] == 1
        assert totals.fallbacks == {(FallbackType.STATIC, Outcome.SUCCESS): 1}

    async def test_the_open_dependency_counts_the_call_it_turned_away(self, clock: ManualClock) -> None:
        """A feature that does not call its open dependency still shows the dependency the demand
        it fails: the endpoint counts a parent_open rejection, the open service an open one (the
        same as a call through them), so their error budgets see the outage's real cost."""
        registry, answer = self.build(clock, fallback=[Static("degraded answer")])
        while registry["qdrant"].state is not State.OPEN:  # the service trips on its own failures
            fail(registry["qdrant"], clock)
        for _ in range(3):
            assert await answer.acall(up, "q") == "degraded answer"
        assert rejected(registry["qdrant"]) == {RejectionReason.OPEN: 3}
        assert rejected(registry["qdrant.search"]) == {RejectionReason.PARENT_OPEN: 3}
        assert rejected(registry["openai.embeddings"]) == {}  # it was never asked
        assert rejected(answer.breaker) == {RejectionReason.PARENT_OPEN: 3}
        registry["qdrant"].force_open()
        await answer.acall(up, "q")
        assert registry["qdrant"].snapshot().totals.rejected[RejectionReason.FORCED_OPEN] == 1

    def test_a_closed_breaker_turns_nothing_away_on_anyones_behalf(self, clock: ManualClock) -> None:
        registry, _ = self.build(clock)
        assert registry["qdrant.search"].reject_on_behalf() is None
        assert rejected(registry["qdrant.search"]) == rejected(registry["qdrant"]) == {}

    async def test_without_fallback_an_unavailable_feature_rejects(self, clock: ManualClock) -> None:
        registry, answer = self.build(clock)
        registry["openai.embeddings"].force_open(12)
        with pytest.raises(CircuitOpenError) as info:
            await answer.acall(up, "q")
        assert info.value.reason is RejectionReason.PARENT_OPEN
        assert info.value.origin == "openai.embeddings"
        assert info.value.remaining == pytest.approx(12)

    async def test_an_open_optional_dependency_degrades(self, clock: ManualClock) -> None:
        registry, answer = self.build(clock, fallback=[Simplified(lambda prompt: f"simplified: {prompt}")])
        registry["postgres.query"].force_open()
        assert answer.availability() is Availability.DEGRADED
        assert await answer.acall(up, "q") == "simplified: q"
        registry["postgres.query"].force_close()
        assert await answer.acall(up, "q") == "primary: q"

    async def test_degraded_without_fallback_runs_the_primary(self, clock: ManualClock) -> None:
        registry, answer = self.build(clock)
        registry["postgres"].force_open()
        assert answer.availability() is Availability.DEGRADED
        assert await answer.acall(up, "q") == "primary: q"

    async def test_a_failing_feature_trips_its_own_breaker(self, clock: ManualClock) -> None:
        _, answer = self.build(
            clock, config=BreakerConfig(minimum_calls=2, sliding_window_size=2), fallback=[Static("canned")]
        )
        for _ in range(2):
            assert await answer.acall(down, "q") == "canned"
        assert answer.breaker.state is State.OPEN
        assert answer.status().own_breaker_open
        assert answer.availability() is Availability.UNAVAILABLE
        # Rejected by its own breaker: counted as `open` (no dependency is open), and served.
        assert await answer.acall(up, "q") == "canned"
        rejected = answer.breaker.snapshot().totals.rejected
        assert (rejected[RejectionReason.OPEN], rejected[RejectionReason.PARENT_OPEN]) == (1, 0)

    async def test_a_dependencys_rejection_inside_the_primary_does_not_trip_the_feature(
        self, clock: ManualClock
    ) -> None:
        """A required endpoint half-open with its probes taken rejects (half_open_full) from
        inside the primary path, which availability cannot foresee. That is the endpoint's to
        count: the feature's breaker ignores it, serves the fallback, and stays closed, as it does
        when the endpoint is open. (Before, it counted each as a failure and opened: unavailable
        after the dependency had recovered.)"""
        registry, answer = self.build(
            clock, config=BreakerConfig(minimum_calls=2, sliding_window_size=2), fallback=[Static("canned")]
        )
        search = registry["qdrant.search"]
        search.force_open(1.0)
        clock.advance(1.0)
        # the probes, in flight: every other call is half_open_full
        probes = [search.acquire() for _ in range(search.config.permitted_calls_in_half_open)]

        async def primary(prompt: str) -> str:
            return await search.acall(up, prompt)

        for _ in range(4):
            assert await answer.acall(primary, "q") == "canned"
        snapshot = answer.breaker.snapshot()
        assert (snapshot.state, snapshot.totals.failures, snapshot.totals.ignored) == (State.CLOSED, 0, 4)
        assert rejected(search) == {RejectionReason.HALF_OPEN_FULL: 4}
        for probe in probes:
            probe.success()
        assert await answer.acall(primary, "q") == "primary: q"

    async def test_a_forced_open_feature_rejects_as_forced_open(self, clock: ManualClock) -> None:
        _, answer = self.build(clock)
        answer.breaker.force_open(30)
        with pytest.raises(CircuitOpenError) as info:
            await answer.acall(up, "q")
        assert info.value.reason is RejectionReason.FORCED_OPEN
        rejected = answer.breaker.snapshot().totals.rejected
        assert (rejected[RejectionReason.FORCED_OPEN], rejected[RejectionReason.PARENT_OPEN]) == (1, 0)

    def test_decorated_sync_feature(self, clock: ManualClock) -> None:
        registry, answer = self.build(clock, fallback=[Static("canned")])

        @answer
        def search(query: str) -> str:
            return f"results for {query}"

        assert search("x") == "results for x"
        registry["qdrant.search"].force_open()
        assert search("x") == "canned"


class TestRegistry:
    def test_tree_shows_levels_states_and_dependencies(self, clock: ManualClock) -> None:
        registry = BreakerRegistry(clock=clock)
        registry.service("openai", attributes={"gen_ai.provider.name": "openai"})
        chat = registry.endpoint("openai.chat", attributes={"gen_ai.operation.name": "chat"})
        registry.feature("answer", required=["openai.chat"], fallback=[Static("x")])
        assert dict(chat.attributes) == {"gen_ai.provider.name": "openai", "gen_ai.operation.name": "chat"}
        registry["openai"].force_open()
        tree = registry.tree()
        service = tree["services"][0]
        assert (service["name"], service["state"], service["rejecting"]) == ("openai", "forced_open", True)
        endpoint = service["endpoints"][0]
        assert (endpoint["name"], endpoint["state"], endpoint["rejecting"]) == ("openai.chat", "closed", True)
        feature = tree["features"][0]
        assert feature["availability"] == "unavailable"
        assert feature["open_required"] == ["openai.chat"]
        assert feature["fallbacks"] == [{"type": "static", "name": "static"}]
        assert [b.name for b in registry] == ["openai", "openai.chat", "answer"]

    def test_mistakes_are_explained(self, clock: ManualClock) -> None:
        registry = BreakerRegistry(clock=clock)
        with pytest.raises(BreakerConfigError, match="not registered"):
            registry.endpoint("redis.get")
        registry.service("redis")
        with pytest.raises(BreakerConfigError, match="already registered"):
            registry.service("redis")
        with pytest.raises(BreakerConfigError, match="no dots"):
            registry.service("redis.get")
        with pytest.raises(BreakerConfigError, match="not a registered service or endpoint"):
            registry.feature("cache", required=["memcached"])
        with pytest.raises(KeyError, match="registered"):
            registry["memcached"]
        with pytest.raises(BreakerConfigError, match="both required and optional"):
            registry.feature("cache", required=["redis"], optional=["redis"])

    def test_listeners_reach_breakers_registered_later(self, clock: ManualClock) -> None:
        from breakerpanel import BreakerListener, StateChanged

        seen: list[str] = []

        class Recorder(BreakerListener):
            def state_changed(self, event: StateChanged) -> None:
                seen.append(event.breaker.name)

        registry = BreakerRegistry(clock=clock)
        registry.service("a")
        registry.add_listener(Recorder())
        registry.service("b")
        registry["a"].force_open()
        registry["b"].force_open()
        assert seen == ["a", "b"]


class DownCache:
    """A shared cache that is down: every read and write fails."""

    async def aget(self, key: str) -> object:
        raise ConnectionError("cache down")

    async def aset(self, key: str, value: object, ttl: float | None = None) -> None:
        raise ConnectionError("cache down")

    def get(self, key: str) -> object:
        raise ConnectionError("cache down")

    def set(self, key: str, value: object, ttl: float | None = None) -> None:
        raise ConnectionError("cache down")


async def test_a_cache_that_cannot_store_does_not_fail_a_call_that_worked(caplog: pytest.LogCaptureFixture) -> None:
    chain = FallbackChain(CircuitBreaker("p"), CachedResponse(DownCache()))

    async def works(prompt: str) -> str:
        return f"answer to {prompt}"

    assert await chain.acall(works, "q") == "answer to q"
    assert chain.call(lambda prompt: f"sync {prompt}", "q") == "sync q"
    assert chain.breaker.snapshot().totals.successes == 2
    stored = [r for r in caplog.records if r.name == "breakerpanel.fallback"]
    assert len(stored) == 2
    assert "ConnectionError: cache down" in stored[0].getMessage()


class TestFeatureDetails:
    """What a feature passes on: arguments, its own settings, the rejection behind a fallback."""

    def dependency(self, clock: ManualClock) -> CircuitBreaker:
        return CircuitBreaker("store", clock=clock)

    async def test_keyword_arguments_reach_the_primary(self, clock: ManualClock) -> None:
        feature = Feature("search", required=[self.dependency(clock)], clock=clock)

        async def primary(query: str, *, limit: int) -> str:
            return f"{query}:{limit}"

        def sync_primary(query: str, *, limit: int) -> str:
            return f"{query}:{limit}"

        assert await feature.acall(primary, "q", limit=3) == "q:3"
        assert feature.call(sync_primary, "q", limit=4) == "q:4"

    async def test_decorated_coroutine_function_goes_through_the_feature(self, clock: ManualClock) -> None:
        store = self.dependency(clock)
        feature = Feature("search", required=[store], fallback=[Static("canned")], clock=clock)

        @feature
        async def search(query: str) -> str:
            return f"results for {query}"

        assert await search("x") == "results for x"
        store.force_open()
        assert await search("x") == "canned"

    def test_decorating_a_generator_names_the_feature(self, clock: ManualClock) -> None:
        feature = Feature("search", clock=clock)

        def rows() -> object:
            yield 1

        with pytest.raises(TypeError, match=r"^feature 'search': cannot decorate generator"):
            feature(rows)

    @pytest.mark.parametrize("sync", [False, True])
    async def test_when_every_fallback_fails_the_dependency_rejection_is_raised(
        self, clock: ManualClock, sync: bool
    ) -> None:
        store = self.dependency(clock)

        def broken(query: str) -> str:
            raise Boom("no fallback today")

        feature = Feature("search", required=[store], fallback=[Simplified(broken)], clock=clock)
        store.force_open(20)
        if sync:
            with pytest.raises(CircuitOpenError) as info:
                feature.call(lambda q: q, "x")
        else:
            with pytest.raises(CircuitOpenError) as info:
                await feature.acall(up, "x")
        assert info.value.reason is RejectionReason.PARENT_OPEN
        assert info.value.origin == "store"

    async def test_the_feature_breaker_gets_the_features_settings(self, clock: ManualClock) -> None:
        from breakerpanel import BreakerListener, Level, StateChanged

        seen: list[StateChanged] = []

        class Recorder(BreakerListener):
            def state_changed(self, event: StateChanged) -> None:
                seen.append(event)

        feature = Feature(
            "search",
            config=BreakerConfig(minimum_calls=1, sliding_window_size=1, wait_in_open=30),
            clock=clock,
            listeners=[Recorder()],
            attributes={"team": "search"},
        )
        assert feature.breaker.level is Level.FEATURE
        assert feature.breaker.attributes == {"team": "search"}
        assert feature.status().name == "search"
        with pytest.raises(ConnectionError):
            await feature.acall(down, "q")
        assert [e.state for e in seen] == [State.OPEN]
        clock.advance(10)  # the feature's breaker runs on the feature's clock
        assert feature.breaker.snapshot().open_remaining == pytest.approx(20)

    def test_bad_dependencies_are_explained(self, clock: ManualClock) -> None:
        store = self.dependency(clock)
        with pytest.raises(BreakerConfigError) as info:
            Feature("search", required=["store"], clock=clock)  # type: ignore[list-item]
        assert info.value.field == "features.search.dependencies"
        assert "expected breakers (got 'store')" in info.value.reason
        with pytest.raises(BreakerConfigError) as info:
            Feature("search", required=[store], optional=[store], clock=clock)
        assert info.value.field == "features.search"
        assert info.value.reason == "['store'] cannot be both required and optional"


class TestRegistryDetails:
    """The registry's tree, lookups and errors in full, and what it passes to each breaker it makes."""

    def test_tree_nodes_in_full(self, clock: ManualClock) -> None:
        registry = BreakerRegistry(clock=clock)
        registry.service("openai")
        registry.endpoint("openai.chat")
        registry.service("redis")
        registry.feature("answer", required=["openai.chat"], optional=["redis"])
        registry["redis"].force_open(30)
        tree = registry.tree()
        assert [s["name"] for s in tree["services"]] == ["openai", "redis"]
        assert tree["services"][0]["endpoints"] == [
            {
                "name": "openai.chat",
                "level": "endpoint",
                "parent": "openai",
                "state": "closed",
                "rejecting": False,
                "failure_rate": None,
                "slow_call_rate": None,
                "failure_rate_threshold": 0.5,
                "calls": 0,
                "open_remaining": None,
            }
        ]
        assert tree["services"][1]["open_remaining"] == pytest.approx(30)
        feature = tree["features"][0]
        assert (feature["level"], feature["parent"]) == ("feature", None)
        assert (feature["required"], feature["optional"]) == (["openai.chat"], ["redis"])
        assert (feature["open_required"], feature["open_optional"]) == ([], ["redis"])
        assert feature["availability"] == "degraded"

    def test_breakers_share_the_registry_clock_listeners_and_attributes(self, clock: ManualClock) -> None:
        from breakerpanel import BreakerListener, StateChanged

        seen: list[str] = []

        class Recorder(BreakerListener):
            def state_changed(self, event: StateChanged) -> None:
                seen.append(event.breaker.name)

        registry = BreakerRegistry(clock=clock, listeners=[Recorder()])
        made = [
            registry.service("openai"),
            registry.endpoint("openai.chat"),
            registry.feature("answer", required=["openai.chat"], attributes={"team": "qa"}).breaker,
        ]
        assert made[2].attributes == {"team": "qa"}
        for breaker in made:
            breaker.force_open(30)
        clock.advance(10)
        assert [b.snapshot().open_remaining for b in made] == [pytest.approx(20)] * 3
        assert seen == ["openai", "openai.chat", "answer"]

    def test_endpoint_service_is_the_part_before_the_first_dot(self, clock: ManualClock) -> None:
        registry = BreakerRegistry(clock=clock)
        openai = registry.service("openai")
        assert registry.endpoint("openai.chat.stream").parent is openai

    def test_store_defaults_to_memory_and_can_be_given(self, clock: ManualClock) -> None:
        from breakerpanel import MemoryStore

        assert isinstance(BreakerRegistry(clock=clock).store, MemoryStore)
        store = MemoryStore()
        assert BreakerRegistry(clock=clock, store=store).store is store

    def test_watchers_see_breakers_now_and_later(self, clock: ManualClock) -> None:
        registry = BreakerRegistry(clock=clock)
        registry.service("a")
        seen: list[str] = []
        registry.watch(lambda b: seen.append(b.name))
        registry.service("b")
        assert seen == ["a", "b"]
        assert "a" in registry
        assert "c" not in registry

    def test_errors_name_the_field(self, clock: ManualClock) -> None:
        registry = BreakerRegistry(clock=clock)
        registry.service("redis")
        cases: list[tuple[Callable[[], object], str, str]] = [
            (lambda: registry.service("redis.get"), "services.redis.get", "a service name has no dots"),
            (lambda: registry.endpoint("memcached.get"), "endpoints.memcached.get", "service 'memcached' is not"),
            (lambda: registry.service("redis"), "redis", "a breaker with this name is already registered"),
            (lambda: registry.feature("cache", required=["x"]), "features.cache", "dependency 'x' is not"),
            (lambda: registry.feature("cache", optional=["x"]), "features.cache", "dependency 'x' is not"),
        ]
        for make, field, reason in cases:
            with pytest.raises(BreakerConfigError) as info:
                make()
            assert info.value.field == field
            assert info.value.reason.startswith(reason)

    def test_unknown_feature_lists_the_known_ones(self, clock: ManualClock) -> None:
        registry = BreakerRegistry(clock=clock)
        registry.service("redis")
        registry.feature("cache", required=["redis"])
        with pytest.raises(KeyError, match=r"no feature named 'search'; registered: \['cache'\]"):
            registry.get_feature("search")
        assert registry.get_feature("cache").name == "cache"


async def test_a_result_the_breaker_counts_as_a_failure_is_neither_an_answer_nor_remembered() -> None:
    # A classifier that inspects results (record_results, llm_http's 5xx responses): the chain
    # returned the failed result and cached it as the last good answer, served later in an outage.
    from breakerpanel import record_results

    breaker = CircuitBreaker("llm", BreakerConfig(classifier=record_results(lambda r: r == "overloaded")))
    cache = MemoryCache()
    chain = FallbackChain(breaker, CachedResponse(cache), Static("canned"))

    async def answer(question: str) -> str:
        return f"answer to {question}"

    async def overloaded(question: str) -> str:
        return "overloaded"

    assert await chain.acall(answer, "q") == "answer to q"
    assert await chain.acall(overloaded, "q") == "answer to q"  # the cache's, not the failure
    assert await chain.acall(down, "q") == "answer to q"
    assert chain.call(lambda question: "overloaded", "never asked") == "canned"
    totals = breaker.snapshot().totals
    assert totals.failures == 3
    assert totals.fallbacks[(FallbackType.CACHE, Outcome.SUCCESS)] == 2
    bare = FallbackChain(breaker)  # no steps: the caller gets what it returned
    assert await bare.acall(overloaded, "q") == "overloaded"


async def test_an_exhausted_chain_keeps_what_its_error_was_raised_from() -> None:
    # The steps' ExceptionGroup replaced the error's __cause__: an SDK error raised from another
    # breaker's rejection no longer led to it, and a feature counted that rejection as its own failure.
    registry = BreakerRegistry()
    registry.service("qdrant")
    qdrant = registry.endpoint("qdrant.search")
    qdrant.force_open(30)

    class SdkError(Exception):
        pass

    async def search(query: str) -> str:
        try:
            qdrant.acquire()
        except CircuitOpenError as exc:
            raise SdkError("request failed") from exc
        return query

    async def no_cache(query: str) -> str:
        raise CacheMiss("nothing stored")

    feature = registry.feature("search", required=[], fallback=[Simplified(no_cache)])
    for _ in range(3):
        with pytest.raises(SdkError) as caught:
            await feature.acall(search, "q")
    assert isinstance(caught.value.__cause__, ExceptionGroup)
    from breakerpanel import rejection_in

    assert rejection_in(caught.value) is not None
    totals = feature.breaker.snapshot().totals
    assert (totals.failures, totals.ignored) == (0, 3)


def test_a_chain_caching_by_arguments_serves_one_decorated_function() -> None:
    # One chain decorating two functions shared its cache entries: order_total(7) got user 7's name.
    chain = FallbackChain(CircuitBreaker("db"), CachedResponse(MemoryCache()))

    @chain
    def user_name(user_id: int) -> str:
        return f"user-{user_id}"

    assert user_name(7) == "user-7"
    with pytest.raises(BreakerConfigError, match="chain per function"):

        @chain
        def order_total(order_id: int) -> int:
            return order_id

    keyed = FallbackChain(CircuitBreaker("db2"), CachedResponse(MemoryCache(), key=lambda *a: repr(a)))
    keyed(user_name)
    keyed(lambda order_id: order_id)  # a key of one's own: one's own business


async def test_a_failed_result_comes_back_as_it_was_when_no_step_serves() -> None:
    # The first outage, nothing cached yet: the chain raised a DependencyError of its own making
    # and the 503 the caller could have read was lost.
    from breakerpanel import record_results

    breaker = CircuitBreaker("llm", BreakerConfig(classifier=record_results(lambda r: r == "overloaded")))
    chain = FallbackChain(breaker, CachedResponse(MemoryCache()))

    async def overloaded(question: str) -> str:
        return "overloaded"

    assert await chain.acall(overloaded, "q") == "overloaded"
    sync_chain = FallbackChain(breaker, CachedResponse(MemoryCache()))  # a chain per function
    assert sync_chain.call(lambda question: "overloaded", "q") == "overloaded"
    assert breaker.snapshot().totals.fallbacks[(FallbackType.CACHE, Outcome.FAILURE)] == 2


def test_a_password_holding_an_at_sign_is_redacted_whole() -> None:
    # httpx sends user:p@ss for http://user:p@ss@prom:9090: the redaction showed "ss@prom".
    from breakerpanel._redact import redacted

    assert redacted("Prometheus at http://reader:p@ss@prom:9090/api") == "Prometheus at http://***@prom:9090/api"
    assert redacted("redis://default:hunter2@redis:6379/0 for user@example.com") == (
        "redis://***@redis:6379/0 for user@example.com"
    )
