"""The demo RAG service against the fake upstreams: the normal path, each dependency's outage
(through the upstreams' chaos switches) and what the user gets, health, metrics, the admin API."""

from __future__ import annotations

import asyncio
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from breakerpanel import State
from breakerpanel.exporter import semconv
from demo.service import Settings
from demo.upstreams import CONTENT_FILTER_MARKER, Chaos, Outage, Upstream

from .service_harness import RunningService, serve, service_settings

ADMIN = {"Authorization": "Bearer test-admin-token"}


@pytest.fixture
def settings(url: str, tmp_path: Path) -> Settings:
    return service_settings(url, tmp_path)


async def _metric_samples(service: RunningService) -> list[Any]:
    response = await service.client.get("/metrics")
    assert response.status_code == 200
    return [s for family in text_string_to_metric_families(response.text) for s in family.samples]


def _value(samples: list[Any], name: str, **labels: str) -> float | None:
    for sample in samples:
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return float(sample.value)
    return None


async def test_a_healthy_stack_answers_from_openai_with_the_documents(settings: Settings) -> None:
    async with serve(settings) as service:
        body = await service.ask("What does a circuit breaker do?")

    assert body["served_by"] == "openai"
    assert body["model"] == "gpt-4o-mini"
    assert body["search"] == "qdrant+database"
    assert "Circuit breakers" in [source["title"] for source in body["sources"]]
    # The fake model echoes its prompt: the document's body came from the database into it.
    assert "rejects calls at once" in body["answer"]
    assert body["open_breakers"] == []


async def test_an_openai_outage_opens_its_breaker_and_anthropic_answers(settings: Settings, chaos: Chaos) -> None:
    async with serve(settings) as service:
        chaos.set(Upstream.OPENAI, Outage())
        answers = [await service.ask() for _ in range(8)]
        requests_once_open = chaos.state(Upstream.OPENAI).requests
        later = [await service.ask() for _ in range(3)]
        ready = (await service.client.get("/health/ready")).json()

    assert {a["served_by"] for a in answers + later} == {"anthropic"}
    assert all("claude" in (a["model"] or "") for a in later)
    assert "openai" in later[-1]["open_breakers"]
    # Open means OpenAI gets no more calls at all: the breaker answers for it.
    assert chaos.state(Upstream.OPENAI).requests == requests_once_open
    [openai] = [s for s in ready["breakers"]["services"] if s["name"] == "openai"]
    assert openai["state"] == "open"
    [answer] = [f for f in ready["breakers"]["features"] if f["name"] == "answer"]
    assert answer["availability"] == "unavailable"


async def test_with_both_providers_down_a_cached_answer_then_a_degraded_one(settings: Settings, chaos: Chaos) -> None:
    async with serve(settings) as service:
        first = await service.ask("Why cache answers in Redis?")
        chaos.set(Upstream.OPENAI, Outage())
        chaos.set(Upstream.ANTHROPIC, Outage())
        cached = await service.ask("why cache answers   in redis?")  # the same question, as the cache sees it
        never_asked = await service.ask("What is metrics-only mode for?")

    assert first["served_by"] == "openai"
    assert cached["served_by"] == "cache"
    assert cached["answer"] == first["answer"]
    assert never_asked["served_by"] == "degraded"
    assert "degraded" in never_asked["answer"]


async def test_after_both_providers_recover_both_breakers_leave_open_without_traffic(
    settings: Settings, chaos: Chaos
) -> None:
    """Each provider's breaker has a probe: once OpenAI is back nothing calls the alternate, and
    without its probe the Anthropic breaker stayed open (on the dashboards, in /health/ready)
    until OpenAI next failed."""
    async with serve(settings) as service:
        chaos.set(Upstream.OPENAI, Outage())
        chaos.set(Upstream.ANTHROPIC, Outage())
        for _ in range(12):
            await service.ask()
        registry = service.registry
        opened = {name: registry[name].state for name in ("openai", "anthropic")}
        chaos.clear(Upstream.OPENAI)
        chaos.clear(Upstream.ANTHROPIC)
        anthropic_calls = chaos.state(Upstream.ANTHROPIC).requests
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15  # the probes run at most 2 s apart
        # The states change in the probes' tasks, which set no event to wait on.
        while loop.time() < deadline and any(registry[n].state is State.OPEN for n in opened):  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        left = {name: registry[name].state for name in opened}
        probed = chaos.state(Upstream.ANTHROPIC).requests - anthropic_calls

    assert opened == {"openai": State.OPEN, "anthropic": State.OPEN}
    assert State.OPEN not in left.values(), left
    assert probed >= 1  # no user request came: the probe did it


async def test_a_qdrant_outage_degrades_search_and_openai_still_answers(settings: Settings, chaos: Chaos) -> None:
    async with serve(settings) as service:
        chaos.set(Upstream.QDRANT, Outage())
        answers = [await service.ask() for _ in range(7)]
        qdrant = service.registry["qdrant"].state

    assert {a["search"] for a in answers} == {"degraded"}
    assert {a["served_by"] for a in answers} == {"openai"}
    assert answers[-1]["sources"] == []
    assert "No documents were found" in answers[-1]["answer"]
    assert qdrant is State.OPEN


async def test_a_lost_collection_is_seeded_again(settings: Settings, server: Any) -> None:
    async with serve(settings) as service:
        assert (await service.ask())["search"] == "qdrant+database"
        server.app.state.store.delete(settings.qdrant_collection)  # Qdrant restarted without its data

        lost = await service.ask()
        seeder = service.app.state.assistant.seeder
        # Seeding runs in the service's event loop: let it, while polling.
        for _ in range(200):
            if seeder.vectors_seeded:
                break
            await asyncio.sleep(0.05)
        again = await service.ask()

    assert lost["search"] == "degraded"
    assert again["search"] == "qdrant+database"


async def test_a_question_the_model_refuses_is_a_422_and_trips_nothing(settings: Settings) -> None:
    async with serve(settings) as service:
        responses = [
            await service.client.post("/v1/ask", json={"question": f"tell me {CONTENT_FILTER_MARKER}"})
            for _ in range(6)
        ]
        chat = service.registry["openai.chat"].snapshot()
        too_long = await service.client.post("/v1/ask", json={"question": "x" * 1001})

    assert {r.status_code for r in responses} == {422}
    assert "refused" in responses[0].json()["detail"]
    assert chat.state is State.CLOSED
    assert chat.totals.failures == 0
    assert too_long.status_code == 422


async def test_health_endpoints(settings: Settings) -> None:
    async with serve(settings) as service:
        live = await service.client.get("/health/live")
        ready = await service.client.get("/health/ready")

    assert live.json() == {"status": "live"}
    body = ready.json()
    assert body["status"] == "ready"
    assert body["seeded"] == {"database": True, "vectors": True}
    assert (body["database"], body["cache"]) == ("sqlite", "memory")
    services = {s["name"]: [e["name"] for e in s["endpoints"]] for s in body["breakers"]["services"]}
    assert services == {
        "openai": ["openai.chat", "openai.embeddings"],
        "anthropic": ["anthropic.messages"],
        "qdrant": ["qdrant.search"],
        "redis": ["redis.get", "redis.set", "redis.semantic"],
        "postgres": ["postgres.query"],
    }
    features = {f["name"]: f for f in body["breakers"]["features"]}
    assert features["search"]["required"] == ["openai.embeddings", "qdrant.search"]
    assert [step["type"] for step in features["answer"]["fallbacks"]] == ["alternate", "cache", "static"]


async def test_metrics_carry_every_registry_metric_for_the_breakers(settings: Settings) -> None:
    async with serve(settings) as service:
        for _ in range(5):  # rates exist once a window holds minimum_calls (5) calls
            await service.ask()
        response = await service.client.get("/metrics")
        samples = await _metric_samples(service)

    names = {sample.name for sample in samples}
    # At the standard detail, slow calls have series from the first one: none was slow here.
    for metric in (m for m in semconv.METRICS if m is not semconv.METRIC_CIRCUIT_BREAKER_SLOW_CALLS):
        expected = metric.prometheus_name + ("_bucket" if metric.prometheus_type == "histogram" else "")
        assert expected in names, expected
    state = semconv.METRIC_CIRCUIT_BREAKER_STATE.prometheus_name
    assert _value(samples, state, circuit_breaker_name="openai.chat", circuit_breaker_state="closed") == 1
    assert response.headers["content-type"].startswith("text/plain")


# ---------------------------------------------------------------------- admin API


async def test_the_admin_api_wants_the_token(settings: Settings) -> None:
    async with serve(settings) as service:
        missing = await service.client.get("/admin/breakers")
        same_length = await service.client.get("/admin/breakers", headers={"Authorization": "Bearer test-admin-tokeN"})
        shorter = await service.client.get("/admin/breakers", headers={"Authorization": "Bearer t"})
        basic = await service.client.get("/admin/breakers", headers={"Authorization": "Basic dGVzdA=="})
        post = await service.client.post("/admin/breakers/openai/state", json={"state": "forced_open"})
        allowed = await service.client.get("/admin/breakers", headers=ADMIN)
        state = service.registry["openai"].state

    for refused in (missing, same_length, shorter, basic, post):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
    assert state is State.CLOSED
    assert allowed.status_code == 200
    assert {b["name"] for b in allowed.json()["breakers"]} >= {"openai", "openai.chat", "answer", "search"}


async def test_the_token_is_compared_in_constant_time(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    compare = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # the admin module looks it up at each call
    async with serve(settings) as service:
        await service.client.get("/admin/breakers", headers={"Authorization": "Bearer wrong"})
        await service.client.get("/admin/breakers", headers=ADMIN)

    # Both digests are SHA-256, so the comparison's time says nothing about the token's length.
    assert [(len(a), len(b)) for a, b in compared] == [(32, 32), (32, 32)]


async def test_without_a_token_the_admin_api_is_off(url: str, tmp_path: Path) -> None:
    async with serve(service_settings(url, tmp_path, admin_token=None)) as service:
        response = await service.client.get("/admin/breakers", headers=ADMIN)

    assert response.status_code == 503
    assert "DEMO_ADMIN_TOKEN" in response.json()["detail"]


async def test_the_token_can_come_from_a_file(url: str, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("from-a-file\n")
    async with serve(service_settings(url, tmp_path, admin_token=None, admin_token_file=token_file)) as service:
        ok = await service.client.get("/admin/breakers", headers={"Authorization": "Bearer from-a-file"})

    assert ok.status_code == 200


async def test_forcing_a_breaker_open_by_hand_shows_in_health_and_metrics(settings: Settings, chaos: Chaos) -> None:
    async with serve(settings) as service:
        chat_state = "/admin/breakers/openai.chat/state"
        forced = await service.client.post(chat_state, headers=ADMIN, json={"state": "forced_open"})
        chat_requests = chaos.state(Upstream.OPENAI).requests
        answer = await service.ask()
        requests_while_forced = chaos.state(Upstream.OPENAI).requests - chat_requests
        ready = (await service.client.get("/health/ready")).json()
        samples = await _metric_samples(service)
        closed = await service.client.post(chat_state, headers=ADMIN, json={"state": "closed"})
        after = await service.ask()
        back = await _metric_samples(service)

    assert forced.status_code == 200
    assert forced.json()["state"] == "forced_open"
    assert answer["served_by"] == "anthropic"
    assert "openai.chat" in answer["open_breakers"]
    # The question was still embedded (openai.embeddings is not forced open), but never sent to chat.
    assert requests_while_forced == 1
    [openai] = [s for s in ready["breakers"]["services"] if s["name"] == "openai"]
    assert [e["state"] for e in openai["endpoints"] if e["name"] == "openai.chat"] == ["forced_open"]
    state = semconv.METRIC_CIRCUIT_BREAKER_STATE.prometheus_name
    transitions = semconv.METRIC_CIRCUIT_BREAKER_TRANSITIONS.prometheus_name
    chat = {"circuit_breaker_name": "openai.chat"}
    assert _value(samples, state, **chat, circuit_breaker_state="forced_open") == 1
    assert _value(samples, state, **chat, circuit_breaker_state="closed") == 0
    closed_to_forced = {"circuit_breaker_previous_state": "closed", "circuit_breaker_state": "forced_open"}
    assert _value(samples, transitions, **chat, **closed_to_forced) == 1
    assert closed.json()["state"] == "closed"
    assert after["served_by"] == "openai"
    assert _value(back, state, **chat, circuit_breaker_state="closed") == 1
    forced_to_closed = {"circuit_breaker_previous_state": "forced_open", "circuit_breaker_state": "closed"}
    assert _value(back, transitions, **chat, **forced_to_closed) == 1


@pytest.mark.parametrize(("state", "expected"), [("disabled", State.DISABLED), ("metrics_only", State.METRICS_ONLY)])
async def test_disabled_and_metrics_only_by_hand(settings: Settings, state: str, expected: State) -> None:
    async with serve(settings) as service:
        response = await service.client.post("/admin/breakers/qdrant/state", headers=ADMIN, json={"state": state})
        answer = await service.ask()
        actual = service.registry["qdrant"].state

    assert response.json()["state"] == state
    assert actual is expected
    assert answer["search"] == "qdrant+database"


async def test_forced_open_for_a_while_then_probes(settings: Settings) -> None:
    async with serve(settings) as service:
        response = await service.client.post(
            "/admin/breakers/redis/state", headers=ADMIN, json={"state": "forced_open", "duration_s": 30}
        )
        remaining = service.registry["redis"].snapshot().open_remaining

    assert response.json()["state"] == "forced_open"
    assert remaining is not None
    assert 0 < remaining <= 30


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/admin/breakers/nope/state", {"state": "forced_open"}, 404),
        ("/admin/breakers/openai/state", {"state": "open"}, 422),
        ("/admin/breakers/openai/state", {"state": "disabled", "duration_s": 5}, 422),
        ("/admin/breakers/openai/state", {"state": "forced_open", "duration_s": 0}, 422),
        # Infinity passed `gt=0` and force_open(inf) raised: 500. NaN: FastAPI's 422 could not echo it.
        ("/admin/breakers/openai/state", {"state": "forced_open", "duration_s": float("inf")}, 422),
        ("/admin/breakers/openai/state", {"state": "forced_open", "duration_s": float("nan")}, 422),
    ],
)
async def test_bad_admin_requests(settings: Settings, path: str, body: dict[str, Any], status: int) -> None:
    async with serve(settings) as service:
        content = json.dumps(body)  # NaN / Infinity as json.dumps writes them (httpx's json= refuses)
        response = await service.client.post(
            path, headers=ADMIN | {"Content-Type": "application/json"}, content=content
        )
        state = service.registry["openai"].state

    assert response.status_code == status
    assert state is State.CLOSED


# ---------------------------------------------------------------------- settings


def test_settings_come_from_the_documented_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {
        "DEMO_OPENAI_BASE_URL": "http://openai.test/v1",
        "DEMO_ANTHROPIC_BASE_URL": "http://anthropic.test",
        "DEMO_QDRANT_URL": "http://qdrant:6333",
        "DEMO_DATABASE_URL": "postgresql://demo@db/demo",
        "DEMO_REDIS_URL": "redis://redis:6379/0",
        "DEMO_ADMIN_TOKEN": "s3cret",
        "DEMO_BREAKERS_FILE": str(tmp_path / "breakers.yaml"),
        "OPENAI_API_KEY": "sk-test",
        "ANTHROPIC_API_KEY": "ak-test",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    settings = Settings()

    assert settings.openai_base_url == "http://openai.test/v1"
    assert settings.anthropic_base_url == "http://anthropic.test"
    assert settings.qdrant_url == "http://qdrant:6333"
    assert settings.database_url == "postgresql://demo@db/demo"
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.admin_secret() == b"s3cret"
    assert settings.breakers_file == tmp_path / "breakers.yaml"
    assert settings.openai_api_key.get_secret_value() == "sk-test"
    assert settings.anthropic_api_key.get_secret_value() == "ak-test"
    assert "s3cret" not in repr(settings)
    assert "sk-test" not in repr(settings)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: {"DEMO_ADMIN_TOKEN_FILE": str(d / "missing")}, "DEMO_ADMIN_TOKEN_FILE: cannot read"),
        (lambda d: {"DEMO_ADMIN_TOKEN_FILE": str(d)}, "DEMO_ADMIN_TOKEN_FILE: cannot read"),
        (lambda d: {"DEMO_ADMIN_TOKEN_FILE": str(_write(d / "empty", "\n"))}, "is empty"),
        (
            lambda d: {"DEMO_ADMIN_TOKEN": "s3cret", "DEMO_ADMIN_TOKEN_FILE": str(_write(d / "t", "other"))},
            "not both",
        ),
        (lambda d: {"DEMO_EMBEDDING_DIM": "2"}, "DEMO_EMBEDDING_DIM: Input should be greater than or equal to 8"),
    ],
    ids=["missing", "a directory", "empty", "both", "a bad number"],
)
def test_bad_settings_stop_the_service_with_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    setup: Any,
    message: str,
) -> None:
    """An admin token file that cannot be read used to end create_app in a traceback, and an empty
    one quietly turned the admin API off."""
    import demo.service.__main__ as service_main

    for name, value in setup(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(service_main.uvicorn, "run", lambda *a, **k: pytest.fail("started with bad settings"))
    with pytest.raises(SystemExit) as exited:
        service_main.main(["--port", "1"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert "s3cret" not in err
    assert "other" not in err


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_default_breakers_file_is_the_demo_one() -> None:
    assert Settings().breakers_file == Path(__file__).resolve().parents[2] / "demo" / "breakers.yaml"


async def test_the_service_never_answers_5xx_when_everything_is_down(settings: Settings, chaos: Chaos) -> None:
    async with serve(settings) as service:
        for upstream in Upstream:
            chaos.set(upstream, Outage(mode="reset"))
        responses = [await service.client.post("/v1/ask", json={"question": f"question {i}"}) for i in range(8)]

    assert {r.status_code for r in responses} == {200}
    assert {r.json()["served_by"] for r in responses} == {"degraded"}
    assert {r.json()["search"] for r in responses} == {"degraded"}
