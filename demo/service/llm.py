"""The OpenAI and Anthropic clients: the real SDKs over breaker transports.

Each provider gets its own ``httpx2`` client whose transport routes requests to the endpoint
breakers of ``breakers.yaml`` (``openai.chat``, ``openai.embeddings``, ``anthropic.messages``) and
counts anything else for the provider's service breaker. The SDKs' own retries are off: each retry
would count as a call, and retrying a provider that is known to be failing only delays the
fallback. (With ``breaker_mode`` "off", the comparison mode without breakers, they are on.)
"""

from __future__ import annotations

from collections.abc import Sequence

import anthropic
import httpx2
import openai

from breakerpanel.integrations.httpx2 import AsyncBreakerTransport

from .breakers import Breakers
from .settings import Settings

__all__ = ["Providers"]

_SYSTEM = (
    "You are the breakerpanel demo assistant. Answer the question in two or three sentences, "
    "using the documents when they are relevant."
)


class Providers:
    """The language-model clients and the calls the service makes with them."""

    def __init__(self, settings: Settings, breakers: Breakers) -> None:
        self.settings = settings
        timeout = settings.upstream_timeout_s
        self._openai_http = httpx2.AsyncClient(
            transport=AsyncBreakerTransport(breakers.router_for("openai")), timeout=timeout
        )
        self._anthropic_http = httpx2.AsyncClient(
            transport=AsyncBreakerTransport(breakers.router_for("anthropic")), timeout=timeout
        )
        self.openai = openai.AsyncOpenAI(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key.get_secret_value(),
            http_client=self._openai_http,
            max_retries=settings.sdk_retries(),
        )
        self.anthropic = anthropic.AsyncAnthropic(
            base_url=settings.anthropic_base_url,
            api_key=settings.anthropic_api_key.get_secret_value(),
            http_client=self._anthropic_http,
            max_retries=settings.sdk_retries(),
        )

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One embedding per text, of ``settings.embedding_dim`` floats."""
        response = await self.openai.embeddings.create(
            model=self.settings.embedding_model, input=list(texts), dimensions=self.settings.embedding_dim
        )
        return [item.embedding for item in sorted(response.data, key=lambda item: item.index)]

    async def chat_openai(self, prompt: str) -> str:
        completion = await self.openai.chat.completions.create(
            model=self.settings.chat_model,
            messages=[{"role": "system", "content": _SYSTEM}, {"role": "user", "content": prompt}],
            max_completion_tokens=300,
        )
        return completion.choices[0].message.content or ""

    async def chat_anthropic(self, prompt: str) -> str:
        message = await self.anthropic.messages.create(
            model=self.settings.anthropic_model,
            system=_SYSTEM,
            max_tokens=300,
            messages=[{"role": "user", "content": prompt}],
        )
        return "".join(block.text for block in message.content if block.type == "text")

    async def aclose(self) -> None:
        await self.openai.close()
        await self.anthropic.close()
        await self._openai_http.aclose()
        await self._anthropic_http.aclose()
