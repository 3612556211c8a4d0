"""The semantic-cache fallback step against a real Redis 8 (Vector Sets), and its clear refusal of Debian's 7.0."""

from __future__ import annotations

import asyncio
import struct
import textwrap
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from breakerpanel import (
    BreakerConfig,
    BreakerConfigError,
    CacheMiss,
    CircuitBreaker,
    CircuitOpenError,
    DependencyError,
    FallbackChain,
    FallbackType,
    HashingEmbedder,
    Outcome,
    RejectionReason,
    SemanticCache,
    SemanticCacheMiss,
    SemanticHit,
    State,
    Static,
    VectorSetsUnsupportedError,
    first_text_argument,
    sole_text_argument,
)
from breakerpanel.config import ConfigFileError, load_config
from breakerpanel.integrations.redis import ProtectedRedis
from tests.servers import RedisServer

WINDOW = BreakerConfig(minimum_calls=3, sliding_window_size=3, wait_in_open=60)
QUESTION = "How do I rotate the production API keys?"


@pytest.fixture
async def client(redis8_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    connection = aioredis.Redis.from_url(redis8_server.url, socket_timeout=0.5, socket_connect_timeout=0.5)
    yield connection
    await connection.aclose()


def semantic(client: Any, **options: Any) -> SemanticCache:
    options.setdefault("breaker", CircuitBreaker("redis.semantic", WINDOW))
    return SemanticCache(client, **options)


async def primary_down(question: str) -> str:
    raise ConnectionError("every provider is down")


async def test_a_reworded_question_gets_the_stored_answer(client: aioredis.Redis) -> None:
    cache = semantic(client)
    await cache.acheck()
    await cache.astore(QUESTION, {"text": "Settings, then Keys, then Rotate."})
    hit = await cache.alookup("hi! how do I rotate the prodcution API keys, please")
    assert hit.answer == {"text": "Settings, then Keys, then Rotate."}
    assert hit.question == QUESTION
    assert 0.85 <= hit.similarity < 1.0


async def test_the_nearest_question_wins(client: aioredis.Redis) -> None:
    cache = semantic(client)
    for qualifier in ("production", "staging", "sandbox"):
        await cache.astore(f"How do I rotate the {qualifier} API keys?", qualifier)
    assert (await cache.alookup("how do I rotate the STAGING api keys")).answer == "staging"
    assert (await cache.alookup("The sandbox API keys - how do I rotate?")).answer == "sandbox"


async def test_below_the_minimum_similarity_is_a_miss(client: aioredis.Redis) -> None:
    cache = semantic(client)
    with pytest.raises(SemanticCacheMiss, match="empty") as empty:
        await cache.alookup(QUESTION)
    assert empty.value.similarity is None
    await cache.astore(QUESTION, "rotate them")
    with pytest.raises(SemanticCacheMiss, match="similar enough") as far:
        await cache.alookup("What is a good recipe for pumpkin soup?")
    assert far.value.similarity is not None
    assert far.value.similarity < 0.85
    assert isinstance(far.value, CacheMiss)  # handlers of the exact-key cache's miss catch it too
    strict = semantic(client, min_similarity=1.0)
    with pytest.raises(SemanticCacheMiss):
        await strict.alookup("How do I rotate the prodcution API keys?")


async def test_storing_a_question_again_replaces_its_answer(client: aioredis.Redis) -> None:
    cache = semantic(client)
    await cache.astore(QUESTION, "old")
    await cache.astore("how do I  rotate the production api keys?", "new")  # the same question
    assert (await cache.alookup(QUESTION)).answer == "new"
    assert await client.execute_command("VCARD", cache.keys[0]) == 1


async def test_the_chain_stores_successes_and_serves_them_marked_while_down(client: aioredis.Redis) -> None:
    cache = semantic(client, present=lambda hit: f"[from an earlier answer, {hit.similarity:.2f}] {hit.answer}")
    chain = FallbackChain(CircuitBreaker("llm"), cache, Static("degraded"))

    async def answer(question: str) -> str:
        return f"answer to {question}"

    assert await chain.acall(answer, QUESTION) == f"answer to {QUESTION}"
    served = await chain.acall(primary_down, "how do i rotate the prodcution API keys")
    assert served.startswith("[from an earlier answer, 0.")
    assert served.endswith(f"answer to {QUESTION}")
    assert await chain.acall(primary_down, "Where is the nearest train station?") == "degraded"
    assert chain.breaker.snapshot().totals.fallbacks == {
        (FallbackType.SEMANTIC_CACHE, Outcome.SUCCESS): 1,
        (FallbackType.SEMANTIC_CACHE, Outcome.FAILURE): 1,
        (FallbackType.STATIC, Outcome.SUCCESS): 1,
    }
    assert FallbackType.SEMANTIC_CACHE in chain.breaker.fallback_types  # declared: exported at 0 before any use


async def test_answers_expire_after_the_ttl(client: aioredis.Redis) -> None:
    short, longer = semantic(client, ttl=0.2), semantic(client, ttl=60)
    await short.astore(QUESTION, "short-lived")
    await longer.astore("Why is the staging deployment slow?", "another")  # the keys now live 60 s
    assert (await short.alookup(QUESTION)).answer == "short-lived"
    await asyncio.sleep(0.35)
    with pytest.raises(SemanticCacheMiss, match="answers of the similar questions expired"):
        await short.alookup(QUESTION)
    # The next store drops the expired question from the vector set too.
    await longer.astore("What is a good recipe for pumpkin soup?", "soup")
    assert await client.execute_command("VCARD", short.keys[0]) == 2
    assert await client.zcard(short.keys[2]) == 2


async def test_a_cache_nobody_stores_into_disappears_after_the_ttl(client: aioredis.Redis) -> None:
    cache = semantic(client, ttl=0.2)
    await cache.astore(QUESTION, "short-lived")
    await asyncio.sleep(0.35)
    with pytest.raises(SemanticCacheMiss, match="empty"):
        await cache.alookup(QUESTION)
    assert await client.exists(*cache.keys) == 0


async def test_the_oldest_questions_go_over_max_entries(client: aioredis.Redis) -> None:
    cache = semantic(client, max_entries=3)
    topics = ["salmon recipes", "train tickets to Lisbon", "marathon training", "chess openings", "knitting scarves"]
    for topic in topics:
        await cache.astore(f"Tell me about {topic}", topic)
        await asyncio.sleep(0.002)  # distinct expiry times: the order of eviction is defined
    assert await client.execute_command("VCARD", cache.keys[0]) == 3
    assert await client.hlen(cache.keys[1]) == 3
    for topic in topics[:2]:
        with pytest.raises(SemanticCacheMiss):
            await cache.alookup(f"Tell me about {topic}")
    for topic in topics[2:]:
        assert (await cache.alookup(f"Tell me about {topic}")).answer == topic


async def test_names_keep_caches_apart(client: aioredis.Redis) -> None:
    answers, summaries = semantic(client, name="answers"), semantic(client, name="summaries")
    await answers.astore(QUESTION, "an answer")
    with pytest.raises(SemanticCacheMiss, match="empty"):
        await summaries.alookup(QUESTION)


async def test_redis_down_fails_the_step_fast_and_the_chain_moves_on(
    redis8_server: RedisServer, client: aioredis.Redis
) -> None:
    cache = semantic(client)
    await cache.astore(QUESTION, "stored")
    chain = FallbackChain(CircuitBreaker("llm"), cache, Static("degraded"))
    redis8_server.kill()
    seen: list[type[BaseException]] = []
    for _ in range(3):
        with pytest.raises((DependencyError, CircuitOpenError)) as failed:
            await cache.alookup(QUESTION)
        seen.append(type(failed.value))
    assert seen[0] is DependencyError  # redis-py's connection error, counted and translated
    assert cache.breaker.state is State.OPEN
    rejected = cache.breaker.snapshot().totals.rejected[RejectionReason.OPEN]
    with pytest.raises(CircuitOpenError):
        await cache.alookup(QUESTION)
    # Rejected by the open breaker, without touching the network (no timing: a busy machine
    # can stall anything for 50 ms).
    assert cache.breaker.snapshot().totals.rejected[RejectionReason.OPEN] == rejected + 1
    assert await chain.acall(primary_down, QUESTION) == "degraded"

    async def answer(question: str) -> str:
        return "fresh"

    assert await chain.acall(answer, QUESTION) == "fresh"  # storing failed, the call did not


async def test_a_protected_client_brings_its_own_breaker(redis8_server: RedisServer) -> None:
    breaker = CircuitBreaker("redis", WINDOW)
    protected = ProtectedRedis.from_url(redis8_server.url, breaker=breaker)
    try:
        cache = SemanticCache(protected)
        assert cache.breaker is breaker
        await cache.acheck()
        await cache.astore(QUESTION, "through the client's breaker")
        assert (await cache.alookup(QUESTION)).answer == "through the client's breaker"
        before = breaker.snapshot().totals.successes
        await cache.alookup(QUESTION)
        assert breaker.snapshot().totals.successes == before + 1  # counted once, not twice
    finally:
        await protected.aclose()


def test_a_plain_client_needs_a_breaker() -> None:
    with pytest.raises(BreakerConfigError, match="need a breaker"):
        SemanticCache(aioredis.Redis())


async def test_a_redis_7_server_is_refused_at_the_check(redis7_server: RedisServer) -> None:
    """Debian's redis-server 7.0 has no Vector Sets: the check says so, before any outage."""
    connection = aioredis.Redis.from_url(redis7_server.url)
    try:
        cache = semantic(connection)
        with pytest.raises(VectorSetsUnsupportedError, match=r"version 7\.\d+\.\d+.*Redis 8"):
            await cache.acheck()
        assert cache.breaker.snapshot().totals.failures == 0  # the server answered: not an outage
    finally:
        await connection.aclose()


async def test_the_check_refuses_vectors_of_other_dimensions(client: aioredis.Redis) -> None:
    await semantic(client).astore(QUESTION, "512 dimensions")
    await semantic(client).acheck()
    with pytest.raises(BreakerConfigError, match="512-dimension vectors but the embedder makes 256"):
        await semantic(client, embedder=HashingEmbedder(dimensions=256)).acheck()


class Synonyms:
    """An embedder of one's own: here, one that knows two phrasings of one need."""

    dimensions = 4
    _meanings: Sequence[tuple[str, ...]] = (("password", "credentials"), ("invoice", "bill"))

    def embed(self, text: str) -> list[float]:
        lowered = text.lower()
        vector = [1.0 if any(word in lowered for word in words) else 0.0 for words in self._meanings]
        return [*vector, 0.0, 0.01]


async def test_a_better_embedder_plugs_in(client: aioredis.Redis) -> None:
    paraphrase = "I forgot my login credentials"
    hashing = semantic(client, name="hashing")
    await hashing.astore("How do I reset my password?", "Use the reset link.")
    with pytest.raises(SemanticCacheMiss):  # no words in common: beyond a hashing embedder
        await hashing.alookup(paraphrase)
    own = semantic(client, name="own", embedder=Synonyms(), quantization="noquant")
    await own.astore("How do I reset my password?", "Use the reset link.")
    assert (await own.alookup(paraphrase)).answer == "Use the reset link."


async def test_an_embedder_of_the_wrong_length_is_a_config_error(client: aioredis.Redis) -> None:
    class Short(Synonyms):
        dimensions = 8

    with pytest.raises(BreakerConfigError, match="returned 4 values, not its 8"):
        await semantic(client, embedder=Short()).astore(QUESTION, "x")


def test_a_sync_client_serves_sync_calls(redis8_server: RedisServer) -> None:
    connection = redis.Redis.from_url(redis8_server.url)
    try:
        cache = semantic(connection)
        cache.check()
        chain = FallbackChain(CircuitBreaker("llm"), cache, Static("degraded"))
        assert chain.call(lambda question: f"answer to {question}", QUESTION) == f"answer to {QUESTION}"

        def down(question: str) -> str:
            raise ConnectionError("down")

        assert chain.call(down, "how do I rotate the production API keys") == f"answer to {QUESTION}"
        assert isinstance(cache.lookup(QUESTION), SemanticHit)
        with pytest.raises(BreakerConfigError, match="sync Redis client"):
            asyncio.run(cache.alookup(QUESTION))
    finally:
        connection.close()


async def test_an_async_client_refuses_sync_calls(client: aioredis.Redis) -> None:
    with pytest.raises(BreakerConfigError, match="asyncio Redis client"):
        semantic(client).lookup(QUESTION)


async def test_the_question_comes_from_the_call(client: aioredis.Redis) -> None:
    cache = semantic(client, question=lambda request: request["question"])
    chain = FallbackChain(CircuitBreaker("llm"), cache)

    async def answer(request: dict[str, str]) -> str:
        return "forty-two"

    assert await chain.acall(answer, {"question": QUESTION}) == "forty-two"

    async def down(request: dict[str, str]) -> str:
        raise ConnectionError("down")

    assert await chain.acall(down, {"question": QUESTION.upper()}) == "forty-two"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"min_similarity": 1.5}, "min_similarity"),
        ({"ttl": 0}, "ttl"),
        ({"ttl": float("inf")}, "ttl"),
        ({"ttl": float("nan")}, "ttl"),
        ({"max_entries": 0}, "max_entries"),
        ({"candidates": True}, "candidates"),
        ({"quantization": "fp16"}, "quantization"),
        ({"embedder": object()}, "embedder"),
        ({"breaker": "redis"}, "breaker"),
    ],
)
def test_bad_settings_are_refused(options: dict[str, Any], field: str) -> None:
    options.setdefault("breaker", CircuitBreaker("redis.semantic"))
    with pytest.raises(BreakerConfigError, match=field):
        SemanticCache(aioredis.Redis(), **options)


def semantic_question(request: dict[str, str]) -> str:
    return request["question"]


def marked(hit: SemanticHit) -> str:
    return f"(earlier answer) {hit.answer}"


async def test_breakers_yaml_builds_the_step(tmp_path: Path, redis8_server: RedisServer) -> None:
    path = tmp_path / "breakers.yaml"
    path.write_text(
        textwrap.dedent(f"""
        services:
          redis: {{endpoints: {{semantic: {{}}}}}}
          openai: {{}}
        features:
          answer:
            required: [openai]
            fallback:
              - type: semantic_cache
                endpoint: redis.semantic
                url: {redis8_server.url}
                min_similarity: 0.9
                ttl: 10m
                max_entries: 100
                question: "tests.breaker.test_semantic_cache:semantic_question"
                present: "tests.breaker.test_semantic_cache:marked"
                name: answers
              - {{type: static, value: degraded}}
        """)
    )
    registry = load_config(path).build().registry
    answer = registry.get_feature("answer")
    step = answer.chain.steps[0]
    assert isinstance(step, SemanticCache)
    assert (step.breaker, step.min_similarity, step.ttl, step.max_entries) == (
        registry["redis.semantic"],
        0.9,
        600,
        100,
    )
    assert step.keys[0] == "breakerpanel:semantic:{answers}:vectors"
    try:
        await step.acheck()

        async def ok(request: dict[str, str]) -> str:
            return "forty-two"

        assert await answer.chain.acall(ok, {"question": QUESTION}) == "forty-two"
        assert await answer.chain.acall(primary_down, {"question": QUESTION.lower()}) == "(earlier answer) forty-two"
    finally:
        await step.client.aclose()


def test_a_file_step_without_a_url_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "breakers.yaml"
    path.write_text(
        "services: {redis: {}, openai: {}}\n"
        "features: {answer: {required: [openai], fallback: [{type: semantic_cache, endpoint: redis}]}}\n"
    )
    with pytest.raises(BreakerConfigError, match=r"answer\.fallback\.0\.url: .*Redis 8"):
        load_config(path).build()
    path.write_text(
        "services: {redis: {}}\n"
        "features: {answer: {fallback: [{type: semantic_cache, endpoint: redis, min_similarity: 2}]}}\n"
    )
    with pytest.raises(ConfigFileError, match="min_similarity"):
        load_config(path)


async def test_a_call_with_several_strings_needs_a_question_function(client: aioredis.Redis) -> None:
    # ask(model, question): taking the first string would store every answer under the model's
    # name and serve the last one to any question.
    cache = semantic(client)
    chain = FallbackChain(CircuitBreaker("llm"), cache, Static("degraded"))

    async def ask(model: str, question: str) -> str:
        return f"answer to {question}"

    async def down(model: str, question: str) -> str:
        raise ConnectionError("down")

    assert await chain.acall(ask, "gpt-4o-mini", QUESTION) == f"answer to {QUESTION}"
    assert await chain.acall(down, "gpt-4o-mini", "What is the capital of France?") == "degraded"
    with pytest.raises(BreakerConfigError, match="2 arguments, not one string"):
        sole_text_argument("gpt-4o-mini", question=QUESTION)
    with pytest.raises(BreakerConfigError, match="not one string"):  # an SDK's create(): one string, the model
        sole_text_argument(model="gpt-4o-mini", messages=[{"role": "user", "content": QUESTION}])
    assert sole_text_argument(question=QUESTION) == sole_text_argument(QUESTION) == QUESTION
    assert first_text_argument("gpt-4o-mini", QUESTION) == "gpt-4o-mini"  # asked for by name only


async def test_questions_without_words_are_neither_stored_nor_served(client: aioredis.Redis) -> None:
    cache = semantic(client)
    await cache.astore("🚀🚀🚀", "launch answer")
    assert await client.exists(cache.keys[0]) == 0
    await cache.astore(QUESTION, "rotate them")
    for wordless in ("😡", "?", ""):
        with pytest.raises(SemanticCacheMiss, match="nothing to compare"):
            await cache.alookup(wordless)


class NotANumber(Synonyms):
    """An embedder whose vectors hold a NaN (a model that failed quietly)."""

    def embed(self, text: str) -> list[float]:
        return [float("nan"), *super().embed(text)[1:]]


async def test_an_embedder_giving_nan_is_refused(client: aioredis.Redis) -> None:
    # A NaN scores NaN against every vector, which `score < minimum` never refused: one such
    # vector stored was served to every later question.
    good = semantic(client, embedder=Synonyms(), quantization="noquant")
    await good.astore("How do I reset my password?", "Use the reset link.")
    bad = semantic(client, embedder=NotANumber(), quantization="noquant")
    with pytest.raises(BreakerConfigError, match="NaN"):
        await bad.alookup("What is the capital of France?")
    with pytest.raises(BreakerConfigError, match="NaN"):
        await bad.astore("What is the capital of France?", "Paris")


def test_a_chain_with_a_semantic_cache_serves_one_decorated_function() -> None:
    cache = semantic(aioredis.Redis())
    chain = FallbackChain(CircuitBreaker("llm"), cache, Static("degraded"))

    async def summarize(text: str) -> str:
        return "summary"

    async def translate(text: str) -> str:
        return "translation"

    chain(summarize)
    with pytest.raises(BreakerConfigError, match="already serves"):
        chain(translate)  # the same text is the same question: it would get the summary
    own = semantic(aioredis.Redis(), question=lambda text: f"translate: {text}")
    chain = FallbackChain(CircuitBreaker("llm2"), own)
    chain(summarize)
    chain(translate)  # a question of its own: the function's answers are told apart by it


def test_two_features_cannot_share_a_semantic_cache(tmp_path: Path) -> None:
    path = tmp_path / "breakers.yaml"
    step = "{type: semantic_cache, endpoint: redis.semantic, url: 'redis://127.0.0.1:1'}"
    path.write_text(
        "services: {redis: {endpoints: {semantic: {}}}, openai: {}}\n"
        f"features: {{summarize: {{required: [openai], fallback: [{step}]}},"
        f" translate: {{required: [openai], fallback: [{step}]}}}}\n"
    )
    with pytest.raises(ConfigFileError, match=r"translate\.fallback\.0\.name: .*summarize"):
        load_config(path)  # at load: the demo builds its steps itself


async def test_a_question_too_long_is_neither_stored_nor_served(client: aioredis.Redis) -> None:
    # Embedding a megabyte held the event loop most of a second, on every success and fallback.
    cache = semantic(client, max_question_chars=100)
    await cache.astore(QUESTION + " " * 100, "rotate them")
    assert await client.exists(cache.keys[0]) == 0
    await cache.astore(QUESTION, "rotate them")
    with pytest.raises(SemanticCacheMiss, match="over 100 characters"):
        await cache.alookup(QUESTION + " please" * 20)
    assert (await cache.alookup(QUESTION)).answer == "rotate them"
    with pytest.raises(BreakerConfigError, match="max_question_chars"):
        semantic(client, max_question_chars=0)


async def test_a_nan_vector_already_stored_is_never_served(client: aioredis.Redis) -> None:
    # One stored before the embedder's vectors were checked (or by another writer): the lookup
    # script refuses its NaN score rather than taking it for a match.
    cache = semantic(client, embedder=Synonyms(), quantization="noquant")
    nan_vector = struct.pack("<4f", float("nan"), 0.0, 0.0, 0.01)
    keys, args = cache._remember_call("poisoned", nan_vector, "answer for nan")
    await cache._acall(cache._remember_script, keys=keys, args=args)
    with pytest.raises(SemanticCacheMiss):
        await cache.alookup("What is the capital of France?")
