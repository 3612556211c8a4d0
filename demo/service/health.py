"""Liveness, and readiness with the breaker tree: what ``breakerpanel status`` and a load
balancer read. The service is ready as soon as it runs: with dependencies down it still answers,
degraded, and the tree says which are down."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from .assistant import Assistant

__all__ = ["health_router"]


def health_router(assistant: Assistant, *, database: str, cache: str) -> APIRouter:
    router = APIRouter(prefix="/health", tags=["health"])

    @router.get("/live")
    async def live() -> dict[str, str]:
        return {"status": "live"}

    @router.get("/ready")
    async def ready() -> dict[str, Any]:
        seeder = assistant.seeder
        return {
            "status": "ready",
            "seeded": {"database": seeder.database_seeded, "vectors": seeder.vectors_seeded},
            "database": database,
            "cache": cache,
            "breakers": assistant.registry.tree(),
        }

    return router
