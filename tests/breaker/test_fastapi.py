"""FastAPI: dependencies that refuse early, and rejections mapped to responses.

No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations at run time,
and the dependency aliases are local to ``build()``.
"""

from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI

from breakerpanel import (
    BreakerConfig,
    BreakerRegistry,
    CircuitBreaker,
    DependencyError,
    Feature,
    ManualClock,
    RejectionReason,
    Static,
)
from breakerpanel.integrations.fastapi import (
    DEGRADED_HEADER,
    degraded,
    install_error_handlers,
    require,
    require_feature,
)


def build(clock: ManualClock) -> tuple[FastAPI, BreakerRegistry]:
    registry = BreakerRegistry(clock=clock)
    registry.service("openai")
    chat = registry.endpoint("openai.chat", BreakerConfig(minimum_calls=1))
    registry.service("qdrant")
    registry.endpoint("qdrant.search")
    search = registry.feature("search", required=["qdrant.search"])
    answer = registry.feature("answer", required=["openai.chat"], fallback=[Static("degraded answer")])

    app = FastAPI()
    install_error_handlers(app)
    Chat = Annotated[CircuitBreaker, Depends(require(chat))]
    ChatOrDegraded = Annotated[
        CircuitBreaker, Depends(require(chat, on_rejection=degraded(lambda e: {"answer": None, "degraded": True})))
    ]
    Search = Annotated[Feature, Depends(require_feature(search))]
    Answer = Annotated[Feature, Depends(require_feature(answer))]

    async def complete(prompt: str) -> str:
        return f"answer to {prompt}"

    @app.get("/chat")
    async def chat_route(q: str, breaker: Chat) -> dict[str, str]:
        return {"answer": await breaker.acall(complete, q)}

    @app.get("/chat-soft")
    async def chat_soft(q: str, breaker: ChatOrDegraded) -> dict[str, str]:
        return {"answer": await breaker.acall(complete, q)}

    @app.get("/search")
    async def search_route(q: str, feature: Search) -> dict[str, str]:
        return {"results": await feature.acall(complete, q)}

    @app.get("/answer")
    async def answer_route(q: str, feature: Answer) -> dict[str, str]:
        return {"answer": await feature.acall(complete, q)}

    @app.get("/mid-flight")
    async def mid_flight(breaker: Chat) -> dict[str, str]:
        registry["openai"].force_open(42)  # the dependency opens while the route works
        return {"answer": await breaker.acall(complete, "late")}

    @app.get("/failed")
    async def failed() -> dict[str, str]:
        raise DependencyError("redis", "connection_error", "refused")

    return app, registry


@pytest.fixture
async def client_and_registry(clock: ManualClock) -> AsyncIterator[tuple[httpx.AsyncClient, BreakerRegistry]]:
    app, registry = build(clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
        yield client, registry


async def test_closed_breakers_let_requests_through(
    client_and_registry: tuple[httpx.AsyncClient, BreakerRegistry],
) -> None:
    client, _ = client_and_registry
    response = await client.get("/chat", params={"q": "hi"})
    assert response.status_code == 200
    assert response.json() == {"answer": "answer to hi"}
    assert DEGRADED_HEADER not in response.headers


async def test_an_open_breaker_refuses_before_the_route_runs(
    client_and_registry: tuple[httpx.AsyncClient, BreakerRegistry],
) -> None:
    client, registry = client_and_registry
    registry["openai.chat"].force_open(29.2)
    response = await client.get("/chat", params={"q": "hi"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert response.headers["X-Breakerpanel-Breaker"] == "openai.chat"
    assert response.json() == {
        "error": "dependency unavailable",
        "breaker": "openai.chat",
        "reason": "forced_open",
        "retry_after": pytest.approx(29.2),
    }
    assert registry["openai.chat"].snapshot().totals.rejected[RejectionReason.FORCED_OPEN] == 1


async def test_a_parent_open_names_the_parent(client_and_registry: tuple[httpx.AsyncClient, BreakerRegistry]) -> None:
    client, registry = client_and_registry
    registry["openai"].force_open(5)
    response = await client.get("/chat", params={"q": "hi"})
    assert response.status_code == 503
    assert response.json()["breaker"] == "openai"
    assert response.json()["reason"] == "parent_open"


async def test_degraded_payload_instead_of_503(client_and_registry: tuple[httpx.AsyncClient, BreakerRegistry]) -> None:
    client, registry = client_and_registry
    registry["openai.chat"].force_open()
    response = await client.get("/chat-soft", params={"q": "hi"})
    assert response.status_code == 200
    assert response.json() == {"answer": None, "degraded": True}
    assert response.headers[DEGRADED_HEADER] == "openai.chat"


async def test_features_degrade_or_refuse(client_and_registry: tuple[httpx.AsyncClient, BreakerRegistry]) -> None:
    client, registry = client_and_registry
    registry["qdrant.search"].force_open(10)
    registry["openai.chat"].force_open(10)
    search = await client.get("/search", params={"q": "x"})  # no fallback: refused
    assert search.status_code == 503
    assert search.json()["breaker"] == "qdrant.search"
    answer = await client.get("/answer", params={"q": "x"})  # fallback: served, and said so
    assert answer.status_code == 200
    assert answer.json() == {"answer": "degraded answer"}
    assert answer.headers[DEGRADED_HEADER] == "openai.chat"


async def test_rejections_during_the_work_are_mapped(
    client_and_registry: tuple[httpx.AsyncClient, BreakerRegistry],
) -> None:
    client, _ = client_and_registry
    response = await client.get("/mid-flight")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "42"
    assert response.json()["reason"] == "parent_open"
    failed = await client.get("/failed")
    assert failed.status_code == 503
    assert failed.json() == {
        "error": "dependency unavailable",
        "breaker": "redis",
        "reason": "failed",
        "error_type": "connection_error",
    }


async def test_a_feature_refused_early_counts_as_its_call_would(
    client_and_registry: tuple[httpx.AsyncClient, BreakerRegistry],
) -> None:
    # The refusal was not counted on the open dependency (Feature.acall's is), and with only the
    # feature's own breaker open it counted parent_open naming the feature itself.
    client, registry = client_and_registry
    registry["qdrant.search"].force_open(10)
    response = await client.get("/search", params={"q": "x"})
    assert response.status_code == 503
    assert registry["qdrant.search"].snapshot().totals.rejected[RejectionReason.FORCED_OPEN] == 1
    assert registry["search"].snapshot().totals.rejected[RejectionReason.PARENT_OPEN] == 1
    registry["qdrant.search"].force_close()
    registry["search"].force_open(10)
    response = await client.get("/search", params={"q": "x"})
    assert (response.status_code, response.json()["reason"]) == (503, "forced_open")
    rejected = registry["search"].snapshot().totals.rejected
    assert (rejected[RejectionReason.FORCED_OPEN], rejected[RejectionReason.PARENT_OPEN]) == (1, 1)
