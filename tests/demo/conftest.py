"""One fake-upstreams server for the session, healthy again at the start of every test.

Starting uvicorn costs little, but one shared server keeps the suite fast; tests that need other
settings (a required API key, a small context window) start their own. The SDK clients validate
every response strictly against their own models, so a field the fakes get wrong fails the test
instead of being passed through.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import openai
import pytest
from qdrant_client import AsyncQdrantClient

from demo.upstreams import Chaos, UpstreamServer


@pytest.fixture(scope="session")
def chaos(upstream_chaos: Chaos) -> Chaos:
    return upstream_chaos


@pytest.fixture(scope="session")
def server(upstream_server: UpstreamServer) -> UpstreamServer:
    return upstream_server


@pytest.fixture
def url(server: UpstreamServer, chaos: Chaos) -> str:
    """The shared server's URL, with no fault active and zeroed counters."""
    chaos.reset()
    return server.url


@pytest.fixture
async def openai_client(url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=f"{url}/v1", api_key="test", max_retries=0, _strict_response_validation=True
    ) as client:
        yield client


@pytest.fixture
async def anthropic_client(url: str) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=url, api_key="test", max_retries=0, _strict_response_validation=True
    ) as client:
        yield client


@pytest.fixture
async def qdrant(url: str) -> AsyncIterator[AsyncQdrantClient]:
    client = AsyncQdrantClient(url=url, check_compatibility=False)
    yield client
    await client.close()
