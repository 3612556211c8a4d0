"""docs_src/fastapi_app.py, the example shown in docs/integrations.md, run exactly as written
against the fake OpenAI and Anthropic upstreams."""

from __future__ import annotations

import importlib
import sys
from collections.abc import AsyncIterator, Iterator
from types import ModuleType

import httpx
import pytest

from demo.upstreams import Chaos, Outage, Upstream, UpstreamServer, create_app


@pytest.fixture
def chaos() -> Chaos:
    return Chaos(seed=3)


@pytest.fixture
def example(chaos: Chaos, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    with UpstreamServer(create_app(chaos=chaos)) as upstreams:
        monkeypatch.setenv("LLM_BASE_URL", upstreams.url)
        sys.modules.pop("docs_src.fastapi_app", None)
        yield importlib.import_module("docs_src.fastapi_app")
        sys.modules.pop("docs_src.fastapi_app", None)


@pytest.fixture
async def client(example: ModuleType) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=example.app), base_url="http://app") as c:
        yield c
    await example.http.aclose()


async def ask(client: httpx.AsyncClient) -> httpx.Response:
    response = await client.get("/ask", params={"q": "what is a circuit breaker"})
    assert response.status_code == 200, response.text  # never a 5xx for the user
    return response


async def test_the_answer_survives_an_openai_outage(
    client: httpx.AsyncClient, example: ModuleType, chaos: Chaos
) -> None:
    assert (await ask(client)).json()["answer"].startswith("openai/")

    chaos.set(Upstream.OPENAI, Outage())
    answers = [await ask(client) for _ in range(10)]
    assert all(r.json()["answer"].startswith("anthropic/") for r in answers)
    assert example.registry["openai.chat"].state.value == "open"
    # One success and four failures make the five calls the breaker waits for, at 80%: it opens,
    # and from then on OpenAI is left alone.
    assert chaos.state(Upstream.OPENAI).requests == 5
    assert answers[-1].headers["X-Breakerpanel-Degraded"] == "openai.chat"
    # Each Anthropic answer is one call on its breakers, counted once.
    assert example.registry["anthropic.messages"].snapshot().totals.successes == 10
    assert example.registry["anthropic"].snapshot().totals.successes == 10

    chaos.set(Upstream.ANTHROPIC, Outage())
    last = [await ask(client) for _ in range(7)][-1]
    assert last.json() == {"answer": "Busy right now, sorry."}
