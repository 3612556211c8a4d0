"""Finite capacity of the fake upstreams: off by default; beyond the slots and the queue, refused."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from demo.upstreams import Capacity, Latency, Upstream, UpstreamServer, create_app
from demo.upstreams.__main__ import parse_capacity

AUTH = {"Authorization": "Bearer demo-key", "x-api-key": "demo-key"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def test_capacity_is_off_by_default() -> None:
    app = create_app()
    assert app.state.capacity == {}
    assert all(getattr(route, "path", "") != "/capacity" for route in app.routes)


def test_parse_capacity() -> None:
    assert parse_capacity("openai=6:200:0.1") == (
        Upstream.OPENAI,
        Capacity(concurrency=6, queue=200, service_time_s=0.1),
    )
    assert parse_capacity("qdrant=2") == (Upstream.QDRANT, Capacity(concurrency=2))


async def test_load_beyond_slots_and_queue_is_refused() -> None:
    app = create_app(capacity={Upstream.OPENAI: Capacity(concurrency=1, queue=1)})
    app.state.chaos.set(Upstream.OPENAI, Latency(seconds=0.3))
    async with UpstreamServer(app) as server, httpx.AsyncClient(base_url=server.url, timeout=5, headers=AUTH) as client:
        responses = await asyncio.gather(*(client.post("/v1/chat/completions", json=CHAT) for _ in range(3)))
        statuses = sorted(r.status_code for r in responses)
        counters = (await client.get("/capacity")).json()["openai"]
        # Anthropic has no limit: answered at once.
        assert (await client.post("/v1/messages", json={"model": "m", "max_tokens": 5, "messages": []})).status_code
    assert statuses == [200, 200, 500]  # fake OpenAI's usual server error
    assert (counters["served"], counters["rejected"], counters["peak_queued"]) == (2, 1, 1)
    assert (counters["in_service"], counters["queued"]) == (0, 0)


@pytest.mark.parametrize("bad", ["openai", "openai=0", "nope=1", "openai=1:2:3:4"])
def test_parse_capacity_rejects(bad: str) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        parse_capacity(bad)
