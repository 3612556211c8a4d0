"""The hashing embedder: what it keeps alike, what it tells apart, and that it is the same everywhere."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from breakerpanel import BreakerConfigError, Embedder, HashingEmbedder

QUESTION = "How do I rotate the production API keys?"


@pytest.fixture(scope="module")
def embedder() -> HashingEmbedder:
    return HashingEmbedder()


def test_vectors_have_the_dimensions_and_unit_length(embedder: HashingEmbedder) -> None:
    vector = embedder.embed(QUESTION)
    assert len(vector) == embedder.dimensions == 512
    assert math.isclose(math.fsum(x * x for x in vector), 1.0)
    assert isinstance(embedder, Embedder)


def test_text_without_words_has_nothing_to_compare(embedder: HashingEmbedder) -> None:
    # All zeros, which the semantic cache neither stores nor serves: any one vector shared by
    # every question without words would make them match each other exactly.
    assert embedder.embed("?!  ...") == [0.0] * embedder.dimensions
    assert embedder.similarity("?!", QUESTION) == 0.0
    assert embedder.similarity("🔥🔥🔥", "👍") == 0.0


@pytest.mark.parametrize(
    "same",
    [
        "how do i rotate the production api keys",
        "HOW DO I ROTATE THE PRODUCTION API KEYS??",
        "How, do I rotate the production API-keys.",
    ],
)
def test_casing_and_punctuation_do_not_matter(embedder: HashingEmbedder, same: str) -> None:
    assert embedder.embed(same) == embedder.embed(QUESTION)


@pytest.mark.parametrize(
    "reworded",
    [
        "Hi, could you tell me how do I rotate the production API keys? Thanks!",  # filler
        "How do I rotate the prodcution API keys?",  # a typo
        "The production API keys: how do I rotate?",  # word order
    ],
)
def test_rewordings_stay_close(embedder: HashingEmbedder, reworded: str) -> None:
    similarity = embedder.similarity(QUESTION, reworded)
    assert 0.85 < similarity < 1.0


def test_other_questions_are_far(embedder: HashingEmbedder) -> None:
    assert embedder.similarity(QUESTION, "What is a good recipe for pumpkin soup?") < 0.2
    # One content word out of four differs: close, but below a rewording.
    sibling = embedder.similarity(QUESTION, "How do I rotate the staging API keys?")
    assert 0.5 < sibling < embedder.similarity(QUESTION, "How do I rotate the prodcution API keys?")


def test_word_pairs_make_order_count_a_little(embedder: HashingEmbedder) -> None:
    assert embedder.similarity("dog bites man", "man bites dog") < 1.0
    without_pairs = HashingEmbedder(pair_weight=0)
    assert math.isclose(without_pairs.similarity("dog bites man", "man bites dog"), 1.0)


def test_stop_words_weigh_little(embedder: HashingEmbedder) -> None:
    # Only filler differs: still nearly the same question.
    assert embedder.similarity("reset password", "please could you tell me, reset the password") > 0.9
    assert (
        HashingEmbedder(stop_words=()).similarity("reset password", "please could you tell me, reset the password")
        < 0.8
    )


def test_the_same_text_gets_the_same_vector_in_every_process() -> None:
    """CRC-32, not Python's salted hash(): replicas must put a question at the same place."""
    code = "import json, breakerpanel as b; print(json.dumps(b.HashingEmbedder().embed('rotate API keys')))"
    vectors = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", code],
                env={**os.environ, "PYTHONHASHSEED": seed},
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for seed in ("1", "2")
    ]
    assert vectors[0] == vectors[1] == pytest.approx(HashingEmbedder().embed("rotate API keys"))


def test_word_features_are_cached_and_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    embedder = HashingEmbedder()
    monkeypatch.setattr(HashingEmbedder, "CACHED_WORDS", 3)
    first = embedder.embed("alpha beta gamma delta epsilon")
    assert len(embedder._features) <= 3
    assert embedder.embed("alpha beta gamma delta epsilon") == first


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"dimensions": 1}, "dimensions"),
        ({"dimensions": True}, "dimensions"),
        ({"char_ngrams": ()}, "char_ngrams"),
        ({"char_ngrams": (0, 3)}, "char_ngrams"),
        ({"word_weight": -1}, "word_weight"),
        ({"pair_weight": "0.3"}, "pair_weight"),
    ],
)
def test_bad_settings_are_refused(options: dict[str, object], field: str) -> None:
    with pytest.raises(BreakerConfigError, match=field):
        HashingEmbedder(**options)  # type: ignore[arg-type]
