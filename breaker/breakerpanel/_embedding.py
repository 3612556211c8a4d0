"""Text embedders for the semantic cache: a question becomes a vector that Redis can compare.

The semantic cache must compute a question's vector while the language models are down, so the
built-in :class:`HashingEmbedder` needs no network and no downloaded model: it hashes the
question's words and the character n-grams of each word into a fixed number of dimensions
(feature hashing). That catches rewordings that keep the words: other casing and punctuation,
another word order, filler words, typos. It cannot catch paraphrases that share no words ("How do
I reset my password?" and "I forgot my login credentials"): plug in an :class:`Embedder` of your
own (a small local sentence-embedding model) for those.
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
import zlib
from collections.abc import Collection, Sequence
from typing import Protocol, runtime_checkable

from ._exceptions import BreakerConfigError

__all__ = ["DEFAULT_STOP_WORDS", "Embedder", "HashingEmbedder"]


@runtime_checkable
class Embedder(Protocol):
    """Turns text into a vector of ``dimensions`` floats. Vectors are compared by cosine
    similarity, so their length does not matter; all zeros means the text has nothing to compare
    (the semantic cache neither stores nor serves it). Called on the fallback path, while
    providers may be down: it must not depend on them."""

    @property
    def dimensions(self) -> int:
        """The length of every vector :meth:`embed` returns."""

    def embed(self, text: str) -> Sequence[float]:
        """The vector of ``text``."""


#: Words that say little about what a question asks: function words and the filler people add
#: ("hi", "please", "could you tell me"). They still count, at ``stop_word_weight``, so that two
#: questions made only of them are not all alike.
DEFAULT_STOP_WORDS: frozenset[str] = frozenset(
    {
        "a", "about", "actually", "all", "also", "am", "an", "and", "any", "anyone", "are", "as", "at",
        "basically", "be", "been", "being", "but", "by", "can", "could", "did", "do", "does", "doing", "for",
        "from", "get", "got", "had", "has", "have", "having", "hello", "help", "hey", "hi", "i", "if", "im",
        "in", "into", "is", "it", "its", "just", "kind", "kindly", "know", "let", "like", "me", "mind", "my",
        "need", "of", "ok", "okay", "on", "or", "our", "please", "pls", "quick", "question", "really", "right",
        "s", "should", "so", "some", "somebody", "someone", "sorry", "t", "tell", "thank", "thanks", "that",
        "the", "their", "them", "then", "there", "these", "they", "this", "those", "to", "um", "uh", "us",
        "very", "want", "wanted", "was", "we", "were", "what", "whats", "when", "where", "which", "who", "whom",
        "why", "will", "with", "wondering", "would", "you", "your",
    }
)  # fmt: skip

_WORD = re.compile(r"[^\W_]+")


class HashingEmbedder:
    """Feature hashing of a text's words, word pairs and character n-grams into ``dimensions``.

    Each feature adds its weight, with a sign taken from its hash (collisions then cancel out on
    average instead of piling up), to the dimension its hash picks:

    - every word, at ``word_weight`` (``stop_word_weight`` for :data:`DEFAULT_STOP_WORDS` or
      the ``stop_words`` given);
    - the character n-grams (``char_ngrams`` sizes) of each word other than a stop word, padded
      as ``<word>``, together weighing ``char_weight`` (as a vector's length) per word whatever
      its length: a typo changes a few of them and leaves the rest, so a mistyped word keeps
      about half its weight in common with the right one. They outweigh the word itself for
      that reason;
    - each pair of neighbouring words other than stop words, at ``pair_weight``: word order
      matters a little ("dog bites man"), and a rewording that moves a clause loses one pair only.

    The defaults were tuned with bench/semantic_cache.py. Text is compared case-insensitively
    (Unicode case folding, NFKC), without punctuation. The hash is CRC-32 of the feature, stable
    across processes and machines: every replica puts a question at the same place.

    >>> embedder = HashingEmbedder()
    >>> same = embedder.similarity("How do I rotate my API keys?", "how do i ROTATE my api keys")
    >>> round(same, 6)
    1.0
    >>> embedder.similarity("How do I rotate my API keys?", "Hi! how do I rotate my API keys please") > 0.85
    True
    >>> # A typo in a short question's key word is too far for the default minimum similarity (0.85):
    >>> round(embedder.similarity("How do I rotate my API keys?", "how do I rotate my API kyes"), 2)
    0.76
    >>> embedder.similarity("How do I rotate my API keys?", "Where is the nearest train station?") < 0.2
    True
    """

    #: Words whose features are remembered (a question's words come from a small vocabulary).
    CACHED_WORDS = 50_000

    def __init__(
        self,
        dimensions: int = 512,
        *,
        char_ngrams: Collection[int] = (3,),
        word_weight: float = 0.3,
        char_weight: float = 1.0,
        pair_weight: float = 0.3,
        stop_word_weight: float = 0.1,
        stop_words: Collection[str] = DEFAULT_STOP_WORDS,
    ) -> None:
        if isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 2:
            raise BreakerConfigError("dimensions", f"must be a whole number >= 2 (got {dimensions!r})")
        sizes = tuple(sorted(set(char_ngrams)))
        if not sizes or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes):
            raise BreakerConfigError("char_ngrams", f"must be whole numbers >= 1 (got {char_ngrams!r})")
        weights = {
            "word_weight": word_weight,
            "char_weight": char_weight,
            "pair_weight": pair_weight,
            "stop_word_weight": stop_word_weight,
        }
        for name, value in weights.items():
            if not (isinstance(value, int | float) and not isinstance(value, bool) and value >= 0):
                raise BreakerConfigError(name, f"must be a number >= 0 (got {value!r})")
        self._dimensions = dimensions
        self.char_ngrams = sizes
        self.word_weight = float(word_weight)
        self.char_weight = float(char_weight)
        self.pair_weight = float(pair_weight)
        self.stop_word_weight = float(stop_word_weight)
        self.stop_words = frozenset(word.casefold() for word in stop_words)
        self._features: dict[str, tuple[tuple[int, float], ...]] = {}

    @property
    def dimensions(self) -> int:
        return self._dimensions

    def words(self, text: str) -> list[str]:
        """The words of ``text`` as compared: case-folded, without punctuation."""
        return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())

    def embed(self, text: str) -> list[float]:
        # Summed sparsely: a question touches a few dozen of the dimensions.
        sums: dict[int, float] = {}
        words = self.words(text)
        for word in words:
            for index, value in self._word_features(word):
                sums[index] = sums.get(index, 0.0) + value
        if self.pair_weight:
            content = [word for word in words if word not in self.stop_words]
            for first, second in itertools.pairwise(content):
                index, value = self._feature(f"p:{first} {second}", self.pair_weight)
                sums[index] = sums.get(index, 0.0) + value
        vector = [0.0] * self._dimensions
        norm = math.sqrt(math.fsum(x * x for x in sums.values()))
        if norm == 0.0:  # no words at all: nothing to compare (all zeros)
            return vector
        for index, value in sums.items():
            vector[index] = value / norm
        return vector

    def similarity(self, first: str, second: str) -> float:
        """The cosine similarity of two texts' vectors (1 for texts with the same words)."""
        a, b = self.embed(first), self.embed(second)
        return math.fsum(x * y for x, y in zip(a, b, strict=True))

    def _word_features(self, word: str) -> tuple[tuple[int, float], ...]:
        """A word's own feature and its character n-grams', as (dimension, signed weight)."""
        cached = self._features.get(word)
        if cached is not None:
            return cached
        if word in self.stop_words:
            features = [self._feature(f"w:{word}", self.stop_word_weight)]
        else:
            features = [self._feature(f"w:{word}", self.word_weight)]
            padded = f"<{word}>"
            grams = [padded[i : i + n] for n in self.char_ngrams for i in range(len(padded) - n + 1)]
            if grams:
                weight = self.char_weight / math.sqrt(len(grams))
                features += [self._feature(f"c:{gram}", weight) for gram in grams]
        found = tuple(features)
        if len(self._features) >= self.CACHED_WORDS:
            self._features.clear()  # rare, and cheaper than keeping recency
        self._features[word] = found
        return found

    def _feature(self, feature: str, weight: float) -> tuple[int, float]:
        digest = zlib.crc32(feature.encode())
        return (digest >> 1) % self._dimensions, weight if digest & 1 else -weight

    def __repr__(self) -> str:
        return f"HashingEmbedder(dimensions={self._dimensions}, char_ngrams={self.char_ngrams})"
