"""The ``/chaos`` HTTP API: what the load generator and the CLI see and send."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from demo.upstreams import Chaos, Latency, Outage, Upstream


@pytest.fixture
async def http(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=url) as client:
        yield client


HEALTHY = {"fault": None, "expires_in_s": None, "requests": 0, "failed": 0, "in_flight": 0}


async def test_get_shows_every_upstream(http: httpx.AsyncClient) -> None:
    response = await http.get("/chaos")

    assert response.status_code == 200
    assert response.json() == {"openai": HEALTHY, "anthropic": HEALTHY, "qdrant": HEALTHY}
    assert (await http.get("/chaos/qdrant")).json() == HEALTHY


async def test_put_sets_a_fault_with_its_defaults(http: httpx.AsyncClient, chaos: Chaos) -> None:
    response = await http.put("/chaos/openai", json={"fault": "error_rate", "rate": 0.5, "for_s": 60})

    assert response.status_code == 200
    state = response.json()
    assert state["fault"] == {"fault": "error_rate", "rate": 0.5, "status": None, "for_s": 60.0}
    assert 59 < state["expires_in_s"] <= 60
    assert (await http.get("/chaos")).json()["openai"]["fault"]["fault"] == "error_rate"
    assert chaos.state(Upstream.OPENAI).fault is not None


@pytest.mark.parametrize(
    ("body", "fault"),
    [
        ({"fault": "latency", "seconds": 2}, {"fault": "latency", "seconds": 2.0, "rate": 1.0, "for_s": None}),
        ({"fault": "outage"}, {"fault": "outage", "mode": "error", "for_s": None}),
        ({"fault": "outage", "mode": "reset"}, {"fault": "outage", "mode": "reset", "for_s": None}),
        ({"fault": "rate_limit"}, {"fault": "rate_limit", "retry_after_s": 1.0, "for_s": None}),
        ({"fault": "slow_stream", "chunk_delay_s": 0.5}, {"fault": "slow_stream", "chunk_delay_s": 0.5, "for_s": None}),
        (
            {"fault": "stall_stream"},
            {"fault": "stall_stream", "after_chunks": 1, "stall_s": None, "for_s": None},
        ),
    ],
)
async def test_every_fault_can_be_set(http: httpx.AsyncClient, body: dict[str, Any], fault: dict[str, Any]) -> None:
    response = await http.put("/chaos/anthropic", json=body)

    assert response.status_code == 200
    assert response.json()["fault"] == fault


async def test_a_new_fault_replaces_the_old_one(http: httpx.AsyncClient) -> None:
    await http.put("/chaos/qdrant", json={"fault": "outage"})
    await http.put("/chaos/qdrant", json={"fault": "latency", "seconds": 1})

    assert (await http.get("/chaos/qdrant")).json()["fault"]["fault"] == "latency"


async def test_delete_clears_one_upstream_and_keeps_its_counters(http: httpx.AsyncClient, chaos: Chaos) -> None:
    chaos.set(Upstream.OPENAI, Outage())
    chaos.set(Upstream.QDRANT, Latency(seconds=0.01))
    await http.get("/collections")

    response = await http.delete("/chaos/qdrant")

    assert response.status_code == 200
    assert response.json() == {**HEALTHY, "requests": 1}
    assert chaos.state(Upstream.OPENAI).fault == Outage()


async def test_delete_all_clears_every_fault_and_zeroes_the_counters(http: httpx.AsyncClient, chaos: Chaos) -> None:
    chaos.set(Upstream.OPENAI, Outage())
    chaos.set(Upstream.ANTHROPIC, Outage())
    await http.get("/v1/models")

    response = await http.delete("/chaos")

    assert response.status_code == 200
    assert response.json() == {"openai": HEALTHY, "anthropic": HEALTHY, "qdrant": HEALTHY}


async def test_chaos_routes_are_not_counted_or_faulted(http: httpx.AsyncClient, chaos: Chaos) -> None:
    for upstream in Upstream:
        chaos.set(upstream, Outage())

    assert (await http.get("/chaos")).status_code == 200
    assert all(state.requests == 0 for state in chaos.states().values())


def _single_error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert isinstance(error, dict)
    return error


@pytest.mark.parametrize(
    ("body", "loc", "reason"),
    [
        ({"fault": "error_rate", "rate": 1.5}, ["body", "error_rate", "rate"], "less than or equal to 1"),
        ({"fault": "error_rate"}, ["body", "error_rate", "rate"], "Field required"),
        ({"fault": "error_rate", "rate": 0.1, "status": 404}, ["body", "error_rate", "status"], "500"),
        ({"fault": "latency", "seconds": -1}, ["body", "latency", "seconds"], "greater than 0"),
        ({"fault": "outage", "mode": "explode"}, ["body", "outage", "mode"], "'error' or 'reset'"),
        ({"fault": "outage", "for_s": 0}, ["body", "outage", "for_s"], "greater than 0"),
        ({"fault": "stall_stream", "after_chunks": -1}, ["body", "stall_stream", "after_chunks"], "greater than"),
        ({"fault": "latency", "seconds": 1, "sconds": 2}, ["body", "latency", "sconds"], "Extra inputs"),
        ({"fault": "meteor"}, ["body"], "error_rate"),
        ({"rate": 0.5}, ["body"], "fault"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(
    http: httpx.AsyncClient, body: dict[str, Any], loc: list[str], reason: str
) -> None:
    error = _single_error(await http.put("/chaos/openai", json=body))

    assert error["loc"] == loc
    assert reason in error["msg"]


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
async def test_nan_and_infinity_are_a_422_naming_the_field(http: httpx.AsyncClient, value: float) -> None:
    # json.dumps writes NaN / Infinity; FastAPI's own 422 could not echo them and answered 500.
    body = json.dumps({"fault": "error_rate", "rate": value})
    response = await http.put("/chaos/openai", content=body, headers={"Content-Type": "application/json"})
    error = _single_error(response)

    assert error["loc"] == ["body", "error_rate", "rate"]
    assert error["input"] == str(value)


async def test_an_unknown_upstream_is_a_422(http: httpx.AsyncClient) -> None:
    error = _single_error(await http.put("/chaos/pinecone", json={"fault": "outage"}))

    assert error["loc"] == ["path", "upstream"]


async def test_stream_faults_are_refused_for_qdrant(http: httpx.AsyncClient, chaos: Chaos) -> None:
    error = _single_error(await http.put("/chaos/qdrant", json={"fault": "slow_stream", "chunk_delay_s": 1}))

    assert error["loc"] == ["body", "fault"]
    assert "no streaming endpoints" in error["msg"]
    assert chaos.state(Upstream.QDRANT).fault is None
