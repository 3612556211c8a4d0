"""The fake language model: a deterministic echo that names the provider and model answering.

Tests and the demo need answers they can predict and attribute (did the fallback provider
answer?), not prose. Two markers let a caller provoke the provider errors that depend on the
prompt, without sending a prompt longer than the context limit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = [
    "CONTENT_FILTER_MARKER",
    "CONTEXT_OVERFLOW_MARKER",
    "Completion",
    "Overflow",
    "complete",
    "context_overflow",
    "count_tokens",
]

CONTEXT_OVERFLOW_MARKER = "[[context_length_exceeded]]"
"""A prompt containing this is treated as longer than the model's context window."""

CONTENT_FILTER_MARKER = "[[content_filter]]"
"""A prompt containing this trips the provider's content filter."""


def count_tokens(text: str) -> int:
    """Prompt tokens, at roughly four characters a token as OpenAI's rule of thumb has it."""
    return _tokens(len(text))


def _tokens(chars: int) -> int:
    return max(1, math.ceil(chars / 4))


@dataclass(frozen=True)
class Overflow:
    """A prompt too long for the context window, in tokens."""

    tokens: int
    limit: int


def context_overflow(prompt: str, max_prompt_chars: int) -> Overflow | None:
    """How far ``prompt`` overflows a window of ``max_prompt_chars``, or None when it fits."""
    if CONTEXT_OVERFLOW_MARKER not in prompt and len(prompt) <= max_prompt_chars:
        return None
    limit = _tokens(max_prompt_chars)
    return Overflow(tokens=max(count_tokens(prompt), limit + 1), limit=limit)


@dataclass(frozen=True)
class Completion:
    """An answer, cut into the pieces a stream sends (one word each, and one output token each)."""

    pieces: tuple[str, ...]
    truncated: bool
    """True when ``max_tokens`` cut the answer short."""
    prompt_tokens: int

    @property
    def text(self) -> str:
        return "".join(self.pieces)

    @property
    def completion_tokens(self) -> int:
        return len(self.pieces)


def complete(*, provider: str, model: str, question: str, prompt: str, max_tokens: int | None) -> Completion:
    """Answer ``question`` (the last user message) as ``provider``'s ``model``; ``prompt`` is all input text."""
    answer = f"{provider}/{model} echoes: {question.strip()}"
    pieces = tuple(re.findall(r"\S+\s*", answer))
    truncated = max_tokens is not None and len(pieces) > max_tokens
    if max_tokens is not None:
        pieces = pieces[:max_tokens]
    return Completion(pieces=pieces, truncated=truncated, prompt_tokens=count_tokens(prompt))
