"""What the service's API takes and returns, and the answer the fallback chain passes around."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Answer", "AskRequest", "AskResponse", "SearchPath", "ServedBy", "Source"]

#: Who wrote the answer: a provider, the cache of earlier OpenAI answers (to the same question, or
#: to the most similar earlier one: ``semantic_cache``), or the canned reply.
ServedBy = Literal["openai", "anthropic", "cache", "semantic_cache", "degraded"]
#: Where the documents came from: Qdrant then the database, Qdrant's payloads alone (the database
#: failed), or nowhere (search was unavailable).
SearchPath = Literal["qdrant+database", "qdrant", "degraded"]


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Bounded so that a question with its documents fits any model's context window: a prompt
    # that is too long is the caller's mistake, and no breaker should count it.
    question: str = Field(min_length=1, max_length=1000)


class Answer(BaseModel):
    """An answer as the ``answer`` feature returns it, cached as JSON."""

    model_config = ConfigDict(frozen=True)

    text: str
    served_by: ServedBy
    model: str | None = None


class Source(BaseModel):
    id: int
    title: str


class AskResponse(BaseModel):
    answer: str
    served_by: ServedBy
    model: str | None
    search: SearchPath
    sources: list[Source]
    #: Breakers open (or forced open) when the answer was sent.
    open_breakers: list[str]
