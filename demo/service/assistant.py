"""The RAG assistant: search, read the documents, answer, and say how each step was served.

Each step degrades on its own: no search means an answer from the question alone; a database
that fails means the documents' titles from Qdrant's payloads instead of their bodies; no
language model means a cached or canned answer. What the user gets is always an answer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from breakerpanel import BreakerError, BreakerRegistry, Feature

from .answering import AnswerRequest, ask_openai, served_answer
from .breakers import open_breakers
from .corpus import Document
from .llm import Providers
from .models import AskResponse, SearchPath, Source
from .searching import Found, SearchQuery, find_sources
from .seeding import Seeder
from .store import DocumentStore
from .vectors import VectorIndex

__all__ = ["Assistant"]

logger = logging.getLogger(__name__)


class Assistant:
    def __init__(
        self,
        registry: BreakerRegistry,
        providers: Providers,
        index: VectorIndex,
        store: DocumentStore,
        seeder: Seeder,
        *,
        search_limit: int,
    ) -> None:
        self.registry = registry
        self.search: Feature = registry.get_feature("search")
        self.answer: Feature = registry.get_feature("answer")
        self.providers = providers
        self.index = index
        self.store = store
        self.seeder = seeder
        self.search_limit = search_limit

    async def ask(self, question: str) -> AskResponse:
        sources, documents, path = await self._documents(question)
        request = AnswerRequest(question=question, documents=tuple(documents), providers=self.providers)
        answer = served_answer(await self.answer.acall(ask_openai, request))
        return AskResponse(
            answer=answer.text,
            served_by=answer.served_by,
            model=answer.model,
            search=path,
            sources=sources,
            open_breakers=open_breakers(self.registry),
        )

    async def _documents(self, question: str) -> tuple[list[Source], list[Document], SearchPath]:
        query = SearchQuery(
            question=question,
            limit=self.search_limit,
            providers=self.providers,
            index=self.index,
            on_missing=self.seeder.invalidate_vectors,
        )
        found = await self.search.acall(find_sources, query)
        if not isinstance(found, Found):
            return [], [], "degraded"
        sources = list(found.sources)
        try:
            bodies = await self.store.fetch([s.id for s in sources])
        except BreakerError as exc:
            # The bodies are a nicety: the titles from Qdrant still tell the model what was found.
            logger.debug("documents from Qdrant's payloads only: %s", exc)
            return sources, _titles_only(sources), "qdrant"
        documents = [bodies.get(s.id) or _titles_only([s])[0] for s in sources]
        return sources, documents, "qdrant+database"


def _titles_only(sources: Sequence[Source]) -> list[Document]:
    return [Document(id=s.id, title=s.title, body="(text unavailable)") for s in sources]
