"""The demo service's own upstream clients, pointed at one base URL, for the consumer tests.

:class:`demo.service.llm.Providers` (the real ``openai`` and ``anthropic`` SDKs over the breaker transports, as the
service builds them), :class:`demo.service.vectors.VectorIndex` (Qdrant's REST API over ``httpx``: the service uses
no qdrant-client) and the health probes of :mod:`demo.service.probes`, all from the service's :class:`Settings`.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

from demo.service import probes
from demo.service.breakers import Breakers
from demo.service.llm import Providers
from demo.service.settings import Settings
from demo.service.vectors import VectorIndex

__all__ = [
    "ANTHROPIC_KEY",
    "COLLECTION",
    "EMBEDDING_DIM",
    "OPENAI_KEY",
    "DemoClients",
    "base64_vector_pattern",
    "demo_clients",
    "example_vector",
    "vector_base64",
]

OPENAI_KEY: Final = "sk-contract-test"
ANTHROPIC_KEY: Final = "sk-ant-contract-test"
#: The service's defaults: the collection it seeds and the embedding size it asks for.
COLLECTION: Final = Settings.model_fields["qdrant_collection"].default
EMBEDDING_DIM: Final = Settings.model_fields["embedding_dim"].default


def example_vector(seed: int, dim: int = EMBEDDING_DIM) -> list[float]:
    """A fixed, non-zero vector (exact in float32, so it survives base64 and JSON unchanged)."""
    return [((seed + i) % 8 + 1) / 8 for i in range(dim)]


def vector_base64(vector: list[float]) -> str:
    """An embedding as OpenAI sends it with ``encoding_format: base64``: little-endian float32."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def base64_vector_pattern(dim: int = EMBEDDING_DIM) -> str:
    """A regex for a base64 float32 vector of ``dim`` values: its exact length, padding included."""
    size = dim * 4
    padding = -size % 3
    return rf"^[A-Za-z0-9+/]{{{4 * -(-size // 3) - padding}}}={{{padding}}}$"


@dataclass
class DemoClients:
    settings: Settings
    providers: Providers
    index: VectorIndex

    async def openai_probe(self) -> bool:
        return await probes.openai(self.settings)()

    async def qdrant_probe(self) -> bool:
        return await probes.qdrant(self.settings)()


@asynccontextmanager
async def demo_clients(base_url: str) -> AsyncIterator[DemoClients]:
    """The service's clients with every upstream at ``base_url`` (as the fake upstreams serve them: OpenAI
    under ``/v1``, Anthropic and Qdrant at the root), closed on exit."""
    settings = Settings(
        openai_base_url=f"{base_url}/v1",
        anthropic_base_url=base_url,
        qdrant_url=base_url,
        OPENAI_API_KEY=OPENAI_KEY,
        ANTHROPIC_API_KEY=ANTHROPIC_KEY,
    )
    breakers = Breakers(settings.breakers_file, settings.breaker_mode, resolve=probes.resolver(settings))
    clients = DemoClients(settings, Providers(settings, breakers), VectorIndex(settings, breakers))
    try:
        yield clients
    finally:
        await clients.providers.aclose()
        await clients.index.aclose()
