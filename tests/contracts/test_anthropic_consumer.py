"""Consumer side of ``demo-service`` -> ``anthropic-api``: what the demo's Anthropic call needs.

The demo's own :class:`demo.service.llm.Providers` (the real ``anthropic`` SDK, as the service configures it)
asks Pact's mock server for a message, the fallback answer when OpenAI's breaker is open. Verified against the
fake upstreams in ``test_upstreams_provider.py``.

Pinned: the request as the SDK sends it (its key as ``Authorization: Bearer``, which 2.x uses instead of
``x-api-key``, and the ``anthropic-version`` header), and from the answer what the demo reads: the content
blocks of type ``text`` and their text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from pact import match

from demo.service.llm import _SYSTEM as SYSTEM_PROMPT

from .demo_clients import ANTHROPIC_KEY, demo_clients
from .pactfiles import CommittedPact

MESSAGE: Final = "a message answering a question"
PACT_FILE: Final = CommittedPact("demo-service", "anthropic-api", (MESSAGE,))

QUESTION: Final = "What does a circuit breaker do?"
ANSWER: Final = "It stops calling a failing service for a while and serves a fallback."


async def test_a_message(tmp_path: Path) -> None:
    pact = PACT_FILE.new_pact()
    (
        pact.upon_receiving(MESSAGE)
        .with_request("POST", "/v1/messages")
        .with_header("Authorization", match.regex(f"Bearer {ANTHROPIC_KEY}", regex=r"^Bearer \S+$"))
        .with_header("anthropic-version", match.regex("2023-06-01", regex=r"^\d{4}-\d{2}-\d{2}$"))
        .with_body(
            {
                "model": match.like("claude-haiku-4-5"),
                "system": match.like(SYSTEM_PROMPT),
                "max_tokens": match.integer(300),
                "messages": [{"role": "user", "content": match.like(QUESTION)}],
            },
            content_type="application/json",
        )
        .will_respond_with(200)
        .with_body({"content": [{"type": "text", "text": match.like(ANSWER)}]}, content_type="application/json")
    )

    with pact.serve() as server:
        async with demo_clients(str(server.url)) as clients:
            assert await clients.providers.chat_anthropic(QUESTION) == ANSWER

    PACT_FILE.check(pact, tmp_path / "written")


def test_the_committed_pact_holds_every_interaction() -> None:
    PACT_FILE.check_complete()
