"""The HTTP switchboard of :class:`~demo.upstreams.chaos.Chaos`, for the load generator and the CLI.

``GET /chaos`` shows every upstream's fault and counters, ``PUT /chaos/{upstream}`` sets a fault
(body such as ``{"fault": "error_rate", "rate": 0.5, "for_s": 60}``), ``DELETE /chaos/{upstream}``
clears one and ``DELETE /chaos`` clears all and zeroes the counters. Bodies are validated by
pydantic, so a bad one gets FastAPI's 422 naming the field and the reason.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, HTTPException

from .chaos import STREAM_FAULTS, Chaos, Fault, Upstream, UpstreamState

__all__ = ["chaos_router"]

_STREAMING_UPSTREAMS = frozenset({Upstream.OPENAI, Upstream.ANTHROPIC})


def chaos_router(chaos: Chaos) -> APIRouter:
    """The ``/chaos`` routes, controlling ``chaos``."""
    router = APIRouter(prefix="/chaos", tags=["chaos"])

    @router.get("")
    async def show_all() -> dict[Upstream, UpstreamState]:
        return chaos.states()

    @router.get("/{upstream}")
    async def show(upstream: Upstream) -> UpstreamState:
        return chaos.state(upstream)

    @router.put("/{upstream}")
    async def set_fault(upstream: Upstream, fault: Annotated[Fault, Body()]) -> UpstreamState:
        if isinstance(fault, STREAM_FAULTS) and upstream not in _STREAMING_UPSTREAMS:
            detail = [
                {
                    "type": "value_error",
                    "loc": ["body", "fault"],
                    "msg": f"{upstream.value} has no streaming endpoints, so {fault.fault} cannot apply",
                    "input": fault.fault,
                }
            ]
            raise HTTPException(status_code=422, detail=detail)
        return chaos.set(upstream, fault)

    @router.delete("/{upstream}")
    async def clear(upstream: Upstream) -> UpstreamState:
        return chaos.clear(upstream)

    @router.delete("")
    async def clear_all() -> dict[Upstream, UpstreamState]:
        chaos.reset()
        return chaos.states()

    return router
