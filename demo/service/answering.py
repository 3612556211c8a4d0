"""The ``answer`` feature's calls: OpenAI first, the functions its fallback steps name in
``breakers.yaml`` (Anthropic, the cache key, the semantic cache's question), and what a served
value means.

Every function takes the same :class:`AnswerRequest`, because a fallback step is called with the
primary call's arguments; the request carries the clients so that these can be plain functions
that the YAML file can name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from .corpus import Document
from .llm import Providers
from .models import Answer

__all__ = ["AnswerRequest", "ask_anthropic", "ask_openai", "cache_key", "question_of", "served_answer"]


@dataclass(frozen=True)
class AnswerRequest:
    question: str
    documents: tuple[Document, ...]
    providers: Providers = field(repr=False, compare=False)

    def prompt(self) -> str:
        if not self.documents:
            return f"Question: {self.question}\n\n(No documents were found: answer from general knowledge.)"
        context = "\n".join(f"- {doc.title}: {doc.body}" for doc in self.documents)
        return f"Documents:\n{context}\n\nQuestion: {self.question}"


async def ask_openai(request: AnswerRequest) -> Answer | str:
    """The primary path. (The ``str`` is the fallback chain's static step, which the feature
    returns in place of this function's result.)"""
    text = await request.providers.chat_openai(request.prompt())
    return Answer(text=text, served_by="openai", model=request.providers.settings.chat_model)


async def ask_anthropic(request: AnswerRequest) -> Answer:
    text = await request.providers.chat_anthropic(request.prompt())
    return Answer(text=text, served_by="anthropic", model=request.providers.settings.anthropic_model)


def cache_key(request: AnswerRequest) -> str:
    """Answers are cached by question, whatever documents were found for it: when the language
    models are down, an answer to the same question is what the user wants."""
    normalized = " ".join(request.question.lower().split())
    return hashlib.sha256(normalized.encode()).hexdigest()


def question_of(request: AnswerRequest) -> str:
    """The question the semantic-cache step compares with earlier ones."""
    return request.question


def served_answer(value: Answer | str) -> Answer:
    """The answer as served: the static step's text is the degraded answer."""
    if isinstance(value, Answer):
        return value
    return Answer(text=value, served_by="degraded")
