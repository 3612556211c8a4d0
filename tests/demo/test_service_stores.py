"""The demo service with the real Redis and PostgreSQL servers: the shared answer cache, the
documents table, and what users get when either goes down (it is killed, like a crash)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from breakerpanel import FallbackType, Outcome, State
from demo.upstreams import Chaos, Outage, Upstream
from tests.servers import PostgresServer, RedisServer

from .service_harness import RunningService, serve, service_settings


async def _until(service: RunningService, check: str, timeout_s: float = 20.0) -> None:
    """Let the service's background seeding run until ``check`` holds (a bounded wait, not a timing assert)."""
    seeder = service.app.state.assistant.seeder
    for _ in range(int(timeout_s / 0.05)):
        if getattr(seeder, check):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"seeder.{check} still false after {timeout_s}s")


async def test_answers_are_cached_in_redis_for_every_replica(
    url: str, tmp_path: Path, chaos: Chaos, redis_server: RedisServer
) -> None:
    first = service_settings(url, tmp_path, redis_url=redis_server.url)
    second = service_settings(url, tmp_path, redis_url=redis_server.url, qdrant_collection=first.qdrant_collection)
    async with serve(first) as replica:
        answered = await replica.ask("Why does every call need a timeout?")
        ready = (await replica.client.get("/health/ready")).json()
    client = aioredis.from_url(redis_server.url)
    try:
        keys = await client.keys("breakerpanel-demo:answer:*")
    finally:
        await client.aclose()

    chaos.set(Upstream.OPENAI, Outage())
    chaos.set(Upstream.ANTHROPIC, Outage())
    async with serve(second) as other_replica:
        cached = await other_replica.ask("Why does every call need a timeout?")
        gets = other_replica.registry["redis.get"].snapshot().totals

    assert answered["served_by"] == "openai"
    assert ready["cache"] == "redis"
    assert len(keys) == 1
    assert cached["served_by"] == "cache"
    assert cached["answer"] == answered["answer"]
    assert gets.successes == 1


async def test_with_redis_down_answers_still_come_and_its_breaker_opens(
    url: str, tmp_path: Path, chaos: Chaos, redis_server: RedisServer
) -> None:
    async with serve(service_settings(url, tmp_path, redis_url=redis_server.url)) as service:
        redis_server.kill()
        answers = [await service.ask(f"question {i}") for i in range(6)]
        redis = service.registry["redis"].snapshot()
        chaos.set(Upstream.OPENAI, Outage())
        chaos.set(Upstream.ANTHROPIC, Outage())
        without_models = [await service.ask("question 0") for _ in range(6)]

    # Storing an answer failed each time; the answers themselves were fine.
    assert {a["served_by"] for a in answers} == {"openai"}
    assert redis.state is State.OPEN
    # Opened on its own failed calls (the answer cache's and the semantic cache's writes): at
    # least half of breakers.yaml's minimum_calls (5) failed.
    assert redis.totals.failures >= 3
    assert redis.totals.failures_by_type == {"connection_error": redis.totals.failures}
    assert {a["served_by"] for a in without_models} == {"degraded"}
    assert "redis" in without_models[-1]["open_breakers"]


async def test_documents_are_read_from_postgres(url: str, tmp_path: Path, postgres_server: PostgresServer) -> None:
    async with serve(service_settings(url, tmp_path, database_url=postgres_server.dsn)) as service:
        body = await service.ask("Should alerting page on single errors?")
        ready = (await service.client.get("/health/ready")).json()
        queries = service.registry["postgres.query"].snapshot().totals

    assert body["search"] == "qdrant+database"
    assert "Alerting on breakers" in [s["title"] for s in body["sources"]]
    assert "not on single errors" in body["answer"]  # the body, from PostgreSQL
    assert ready["database"] == "postgres"
    assert postgres_server.execute("SELECT count(*) FROM demo_documents").strip() == "8"
    assert queries.successes >= 1


async def test_seeding_twice_is_harmless(url: str, tmp_path: Path, postgres_server: PostgresServer) -> None:
    settings = service_settings(url, tmp_path, database_url=postgres_server.dsn)
    for _ in range(2):  # a restart, or a second replica: the same table, the same collection
        async with serve(settings) as service:
            body = await service.ask()
            seeded = service.app.state.assistant.seeder.done

        assert seeded
        assert body["search"] == "qdrant+database"
    assert postgres_server.execute("SELECT count(*) FROM demo_documents").strip() == "8"


async def test_with_postgres_down_answers_use_qdrant_payloads(
    url: str, tmp_path: Path, postgres_server: PostgresServer
) -> None:
    async with serve(service_settings(url, tmp_path, database_url=postgres_server.dsn)) as service:
        postgres_server.kill()
        answers = [await service.ask() for _ in range(7)]
        postgres = service.registry["postgres"].state

    assert {a["search"] for a in answers} == {"qdrant"}
    assert {a["served_by"] for a in answers} == {"openai"}
    assert "Circuit breakers: (text unavailable)" in answers[-1]["answer"]
    assert postgres is State.OPEN


async def test_a_service_started_while_postgres_is_down_seeds_it_when_it_is_back(
    url: str, tmp_path: Path, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seeding retries every 0.2 s and opens the breaker; a short open wait lets it probe again soon.
    monkeypatch.setenv("BREAKERPANEL_DEFAULTS__WAIT_IN_OPEN", "0.5s")
    postgres_server.stop()
    async with serve(service_settings(url, tmp_path, database_url=postgres_server.dsn)) as service:
        down = await service.ask()
        seeded_while_down = service.app.state.assistant.seeder.database_seeded
        await asyncio.to_thread(postgres_server.start)
        await _until(service, "database_seeded")
        up = await service.ask()
        # The outage's failures and the first success after it can trip the breaker as PostgreSQL
        # comes back: it recovers by itself (its wait, then probes the questions make).
        for _ in range(200):
            if up["search"] == "qdrant+database":
                break
            await asyncio.sleep(0.1)
            up = await service.ask()

    assert not seeded_while_down
    assert down["search"] == "qdrant"
    assert up["search"] == "qdrant+database"


async def test_a_reworded_question_gets_the_semantic_cache_answer_on_redis_8(
    url: str, tmp_path: Path, chaos: Chaos, redis8_server: RedisServer
) -> None:
    async with serve(service_settings(url, tmp_path, redis_url=redis8_server.url)) as service:
        answered = await service.ask("How should a service handle a 429 with Retry-After?")
        chaos.set(Upstream.OPENAI, Outage())
        chaos.set(Upstream.ANTHROPIC, Outage())
        reworded = await service.ask("hi, how should a service handle a 429 with retry after? thanks")
        unrelated = await service.ask("What is a good recipe for pumpkin soup?")
        fallbacks = service.registry.get_feature("answer").breaker.snapshot().totals.fallbacks

    assert answered["served_by"] == "openai"
    assert reworded["served_by"] == "semantic_cache"
    assert reworded["answer"] == answered["answer"]
    assert unrelated["served_by"] == "degraded"
    assert fallbacks[(FallbackType.SEMANTIC_CACHE, Outcome.SUCCESS)] == 1
    assert fallbacks[(FallbackType.SEMANTIC_CACHE, Outcome.FAILURE)] == 1


async def test_on_redis_7_the_semantic_step_is_taken_out_at_startup(
    url: str, tmp_path: Path, chaos: Chaos, redis7_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve(service_settings(url, tmp_path, redis_url=redis7_server.url)) as service:
        steps = [step.name for step in service.registry.get_feature("answer").chain.steps]
        await service.ask("How should a service handle a 429 with Retry-After?")
        chaos.set(Upstream.OPENAI, Outage())
        chaos.set(Upstream.ANTHROPIC, Outage())
        reworded = await service.ask("hi, how should a service handle a 429 with retry after? thanks")

    assert steps == ["anthropic", "cache", "static"]
    assert "semantic_cache taken out" in caplog.text
    assert "Redis 8" in caplog.text
    assert reworded["served_by"] == "degraded"


def test_the_semantic_step_takes_every_setting_of_the_file() -> None:
    # The demo builds its semantic-cache step itself (its client, its answers' form): a setting
    # the file's step gained (max_question_chars) never reached it.
    from breakerpanel import BreakerRegistry
    from breakerpanel.config import SemanticCacheStep
    from demo.service.semantic import semantic_step

    registry = BreakerRegistry()
    registry.service("redis")
    registry.endpoint("redis.semantic")
    step = SemanticCacheStep(
        type="semantic_cache",
        endpoint="redis.semantic",
        min_similarity=0.9,
        ttl=60,
        max_entries=7,
        max_question_chars=50,
    )
    built = semantic_step(step, registry, "redis://127.0.0.1:1")
    assert built is not None
    assert (built.min_similarity, built.ttl, built.max_entries, built.max_question_chars) == (0.9, 60, 7, 50)
