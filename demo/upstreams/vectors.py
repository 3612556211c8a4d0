"""Deterministic text embeddings and the vector maths the fake Qdrant scores with.

Embeddings hash each word of the text into a few signed dimensions (feature hashing) and
normalise the sum. The same text always gets the same unit vector, and texts that share words
point the same way, so a RAG demo retrieves the document that shares the question's words, with
no model to download.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence

__all__ = ["dot", "embed", "normalize"]

_SLOTS_PER_WORD = 4


def embed(text: str, dim: int) -> list[float]:
    """A unit vector of ``dim`` floats for ``text``."""
    vector = [0.0] * dim
    for word in re.findall(r"\w+", text.lower()) or [text]:
        digest = hashlib.blake2b(word.encode(), digest_size=4 * _SLOTS_PER_WORD).digest()
        for slot in range(_SLOTS_PER_WORD):
            chunk = digest[4 * slot : 4 * slot + 4]
            index = int.from_bytes(chunk[:3], "little") % dim
            vector[index] += 1.0 if chunk[3] & 1 else -1.0
    unit = normalize(vector)
    if not any(unit):  # the words cancelled out: still a unit vector, still deterministic
        unit[0] = 1.0
    return unit


def normalize(vector: Sequence[float]) -> list[float]:
    """``vector`` scaled to length 1 (a zero vector stays zero)."""
    norm = math.sqrt(dot(vector, vector))
    return [x / norm for x in vector] if norm else [0.0] * len(vector)


def dot(a: Sequence[float], b: Sequence[float]) -> float:
    """The dot product of two vectors of the same length."""
    return math.fsum(x * y for x, y in zip(a, b, strict=True))
