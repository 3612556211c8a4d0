"""Consumer side of ``demo-service`` -> ``openai-api``: what the demo's OpenAI calls need.

The demo's own :class:`demo.service.llm.Providers` (the real ``openai`` SDK, as the service configures it) and its
health probe call Pact's mock server: embeddings (seeding and every search), a chat completion (the primary
answer) and ``GET /models`` (the probe while the breaker is open). Verified against the fake upstreams in
``test_upstreams_provider.py``.

What the SDK sends is pinned, field for field (it adds ``encoding_format: base64`` to embeddings on its own). From
the answers, only what the demo and the SDK read: each embedding's ``index`` and its base64 float32 vector of the
requested 64 dimensions (the Qdrant collection is sized before any call), the first choice's message content,
and a 200 for the probe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from pact import match

from demo.service.llm import _SYSTEM as SYSTEM_PROMPT

from .demo_clients import (
    EMBEDDING_DIM,
    OPENAI_KEY,
    base64_vector_pattern,
    demo_clients,
    example_vector,
    vector_base64,
)
from .pactfiles import CommittedPact

EMBEDDINGS: Final = "embeddings of two documents"
CHAT: Final = "a chat completion answering a question"
MODELS: Final = "the model list, as a health probe"
PACT_FILE: Final = CommittedPact("demo-service", "openai-api", (EMBEDDINGS, CHAT, MODELS))

AUTHORIZATION: Final = match.regex(f"Bearer {OPENAI_KEY}", regex=r"^Bearer \S+$")
TEXTS: Final = ("Circuit breakers. A breaker stops calls to a failing service.", "Fallbacks. Serve a cached answer.")
QUESTION: Final = "What does a circuit breaker do?"
#: 64 float32 values are 256 bytes: 344 base64 characters, the last two padding.
EMBEDDING_PATTERN: Final = base64_vector_pattern(EMBEDDING_DIM)


def _embedding(index: int) -> dict[str, Any]:
    vector = vector_base64(example_vector(index))
    return {"index": match.integer(index), "embedding": match.regex(vector, regex=EMBEDDING_PATTERN)}


def _openai_call(pact: Any, description: str, method: str, path: str) -> Any:
    return pact.upon_receiving(description).with_request(method, path).with_header("Authorization", AUTHORIZATION)


async def test_embeddings_for_seeding_and_search(tmp_path: Path) -> None:
    pact = PACT_FILE.new_pact()
    (
        _openai_call(pact, EMBEDDINGS, "POST", "/v1/embeddings")
        .with_body(
            {
                "model": match.like("text-embedding-3-small"),
                "input": match.like(list(TEXTS)),
                "dimensions": match.integer(EMBEDDING_DIM),
                # Asked by the SDK itself, which decodes only a base64 answer.
                "encoding_format": "base64",
            },
            content_type="application/json",
        )
        .will_respond_with(200)
        .with_body({"data": [_embedding(0), _embedding(1)]}, content_type="application/json")
    )

    with pact.serve() as server:
        async with demo_clients(str(server.url)) as clients:
            vectors = await clients.providers.embed(TEXTS)

    assert vectors == [example_vector(0), example_vector(1)]
    PACT_FILE.check(pact, tmp_path / "written")


async def test_a_chat_completion(tmp_path: Path) -> None:
    pact = PACT_FILE.new_pact()
    answer = "It stops calling a failing service for a while and serves a fallback."
    (
        _openai_call(pact, CHAT, "POST", "/v1/chat/completions")
        .with_body(
            {
                "model": match.like("gpt-4o-mini"),
                "messages": [
                    {"role": "system", "content": match.like(SYSTEM_PROMPT)},
                    {"role": "user", "content": match.like(QUESTION)},
                ],
                "max_completion_tokens": match.integer(300),
            },
            content_type="application/json",
        )
        .will_respond_with(200)
        .with_body({"choices": [{"message": {"content": match.like(answer)}}]}, content_type="application/json")
    )

    with pact.serve() as server:
        async with demo_clients(str(server.url)) as clients:
            assert await clients.providers.chat_openai(QUESTION) == answer

    PACT_FILE.check(pact, tmp_path / "written")


async def test_the_health_probe_lists_models(tmp_path: Path) -> None:
    pact = PACT_FILE.new_pact()
    # The probe reads only the status (below 400); a 200 is what OpenAI answers.
    _openai_call(pact, MODELS, "GET", "/v1/models").will_respond_with(200)

    with pact.serve() as server:
        async with demo_clients(str(server.url)) as clients:
            assert await clients.openai_probe()

    PACT_FILE.check(pact, tmp_path / "written")


def test_the_committed_pact_holds_every_interaction() -> None:
    PACT_FILE.check_complete()
