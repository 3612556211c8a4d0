"""Qdrant over its REST API, through an ``httpx`` breaker transport.

Plain HTTP rather than qdrant-client: the service needs four calls, and the same ones work against
the fake upstreams and the real Qdrant server image. Searches go through ``qdrant.search``;
collection management and upserts count for the ``qdrant`` service.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from breakerpanel.integrations.httpx import AsyncBreakerTransport

from .breakers import Breakers
from .models import Source
from .settings import Settings

__all__ = ["CollectionMissing", "VectorIndex"]


class CollectionMissing(Exception):
    """The collection is gone (Qdrant restarted without its data): it must be seeded again."""


class VectorIndex:
    """One cosine collection of document vectors, with ``{"doc_id", "title"}`` payloads."""

    def __init__(self, settings: Settings, breakers: Breakers) -> None:
        headers = {}
        if settings.qdrant_api_key is not None:
            headers["api-key"] = settings.qdrant_api_key.get_secret_value()
        self.collection = settings.qdrant_collection
        self._http = httpx.AsyncClient(
            base_url=settings.qdrant_url.rstrip("/"),
            transport=AsyncBreakerTransport(breakers.router_for("qdrant")),
            timeout=settings.upstream_timeout_s,
            headers=headers,
        )

    async def ensure_collection(self, size: int) -> None:
        """Create the collection unless it exists with vectors of ``size``; recreate it if its
        size differs (the embedding size setting changed)."""
        path = f"/collections/{self.collection}"
        response = await self._http.get(path)
        if response.status_code == 200:
            if _vector_size(response.json()) == size:
                return
            (await self._http.delete(path)).raise_for_status()
        elif response.status_code != 404:
            response.raise_for_status()
        created = await self._http.put(path, json={"vectors": {"size": size, "distance": "Cosine"}})
        if created.status_code != 409:  # created meanwhile by another replica: as good
            created.raise_for_status()

    async def upsert(self, points: Sequence[tuple[int, list[float], dict[str, Any]]]) -> None:
        body = {"points": [{"id": i, "vector": v, "payload": p} for i, v, p in points]}
        response = await self._http.put(f"/collections/{self.collection}/points", params={"wait": "true"}, json=body)
        response.raise_for_status()

    async def nearest(self, vector: list[float], limit: int) -> list[Source]:
        response = await self._http.post(
            f"/collections/{self.collection}/points/query",
            json={"query": vector, "limit": limit, "with_payload": True},
        )
        if response.status_code == 404:
            raise CollectionMissing(f"qdrant collection {self.collection!r} does not exist")
        response.raise_for_status()
        points = response.json()["result"]["points"]
        return [Source(id=int(p["payload"]["doc_id"]), title=str(p["payload"]["title"])) for p in points]

    async def aclose(self) -> None:
        await self._http.aclose()


def _vector_size(info: dict[str, Any]) -> int | None:
    vectors = info.get("result", {}).get("config", {}).get("params", {}).get("vectors", {})
    size = vectors.get("size") if isinstance(vectors, dict) else None
    return size if isinstance(size, int) else None
