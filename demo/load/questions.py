"""The questions the load generator asks: a fixed list, so that answers repeat and the answer
cache has something to serve when both language models are down."""

from __future__ import annotations

__all__ = ["QUESTIONS"]

QUESTIONS: tuple[str, ...] = (
    "What does a circuit breaker do?",
    "When does a breaker open?",
    "What should the assistant serve when OpenAI is down?",
    "How should a service handle a 429 with Retry-After?",
    "Why does every call need a timeout?",
    "How does retrieval find the documents for a question?",
    "Why cache answers in Redis?",
    "Should alerting page on single errors?",
    "How do I force a breaker open during a known outage?",
    "What is metrics-only mode for?",
    "Can the assistant answer without vector search?",
    "What happens after the breaker's wait in open ends?",
)
