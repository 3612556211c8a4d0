"""The ``search`` feature's primary call: embed the question, ask Qdrant for the nearest documents.

When the feature is unavailable (``openai.embeddings`` or ``qdrant.search`` open) or this call
fails, the feature serves its static fallback from ``breakers.yaml``, an empty list, and the
answer is written from the question alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .llm import Providers
from .models import Source
from .vectors import CollectionMissing, VectorIndex

__all__ = ["Found", "SearchQuery", "find_sources"]


@dataclass(frozen=True)
class SearchQuery:
    question: str
    limit: int
    providers: Providers = field(repr=False, compare=False)
    index: VectorIndex = field(repr=False, compare=False)
    #: Called when the collection is gone, to have it seeded again.
    on_missing: Callable[[], None] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Found:
    """What the primary path found (the fallback serves a bare list instead)."""

    sources: tuple[Source, ...]


async def find_sources(query: SearchQuery) -> Found | list[Source]:
    [vector] = await query.providers.embed([query.question])
    try:
        sources = await query.index.nearest(vector, query.limit)
    except CollectionMissing:
        query.on_missing()
        raise
    return Found(tuple(sources))
