"""The documents the assistant answers from: a handful of notes about running AI services.

The same list seeds the database (bodies) and Qdrant (one vector per document, with its id and
title as payload), so both can be rebuilt from here at any startup.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["DOCUMENTS", "Document"]


class Document(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: int
    title: str
    body: str


DOCUMENTS: tuple[Document, ...] = (
    Document(
        id=1,
        title="Circuit breakers",
        body="A circuit breaker stops calling a failing dependency: once the failure rate in its window "
        "reaches the threshold it opens, rejects calls at once, and lets a few probes through after a wait.",
    ),
    Document(
        id=2,
        title="Fallbacks",
        body="When the primary provider is down, serve another provider, then a cached answer, then a "
        "degraded answer that says so. Users should never see an error because a dependency is down.",
    ),
    Document(
        id=3,
        title="Rate limits",
        body="A 429 with Retry-After means the provider asks for a pause: a breaker opens for that long "
        "instead of counting failures, and retries before then only waste quota.",
    ),
    Document(
        id=4,
        title="Timeouts",
        body="Every call to a dependency needs a timeout shorter than the caller's patience. A slow "
        "dependency that never fails still exhausts workers; slow calls count against it too.",
    ),
    Document(
        id=5,
        title="Vector search",
        body="Retrieval embeds the question and asks the vector database for the nearest documents. "
        "Without search the assistant can still answer, from the question alone.",
    ),
    Document(
        id=6,
        title="Caching answers",
        body="Answers are cached by question in Redis so that every replica can serve a recent answer "
        "while the language models are unavailable.",
    ),
    Document(
        id=7,
        title="Alerting on breakers",
        body="Page on a breaker that stays open, not on single errors: the breaker already aggregates "
        "failures over its window, and its state changes are exported as metrics.",
    ),
    Document(
        id=8,
        title="Manual breaker control",
        body="Operators can force a breaker open during a known outage, disable it, or run it in "
        "metrics-only mode to try new thresholds; returning it to closed resumes automatic control.",
    ),
)
