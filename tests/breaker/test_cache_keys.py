"""The default cache key takes every argument whole, the same in every process (numpy and
pydantic arguments: not core tests, which run without either)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading

import numpy
import pydantic

from breakerpanel import default_cache_key


def test_default_key_sees_what_repr_leaves_out() -> None:
    # A numpy array's repr elides all but its ends; a dataclass's skips repr=False fields:
    # two calls differing only there shared one answer.
    first, second = numpy.zeros(1536, dtype=numpy.float32), numpy.zeros(1536, dtype=numpy.float32)
    first[100], second[700] = 1.0, 1.0
    assert repr(first) == repr(second)
    assert default_cache_key(first) != default_cache_key(second)
    assert default_cache_key(first) == default_cache_key(first.copy())

    @dataclasses.dataclass
    class Prompt:
        question: str
        system: str = dataclasses.field(repr=False)

    assert repr(Prompt("q", "be brief")) == repr(Prompt("q", "be verbose"))
    assert default_cache_key(Prompt("q", "be brief")) != default_cache_key(Prompt("q", "be verbose"))
    assert default_cache_key(Prompt("q", "be brief")) == default_cache_key(Prompt("q", "be brief"))
    lock = threading.Lock()  # cannot be pickled: its repr names it
    assert default_cache_key(lock) == default_cache_key(lock)


def test_default_key_is_the_same_in_every_process() -> None:
    # Replicas share a Redis cache: a pydantic model's pickle holds a set of field names,
    # whose order each process seeds anew, so its key differed from process to process.
    script = (
        "import pydantic\n"
        "from breakerpanel import default_cache_key\n"
        "class Ask(pydantic.BaseModel):\n"
        "    question: str\n"
        "    model: str = 'gpt-4o-mini'\n"
        "    tags: set[str] = set()\n"
        "print(default_cache_key(Ask(question='q', model='m', tags={'x', 'y', 'z'}), tags={'a', 'b', 'c', 'd'}))\n"
    )
    keys = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in range(1, 5)
    }
    assert len(keys) == 1


def test_default_key_sees_every_field_of_a_model_and_the_items_of_an_object_array() -> None:
    class Ask(pydantic.BaseModel):
        question: str
        temperature: float = pydantic.Field(0.0, exclude=True)  # left out of model_dump()

    assert default_cache_key(Ask(question="x")) != default_cache_key(Ask(question="x", temperature=1.5))
    assert default_cache_key(Ask(question="x")) == default_cache_key(Ask(question="x"))
    # An object array's bytes are pointers: two arrays of other strings had one key.
    first = numpy.array(["".join(["a", "b"]), "c"], dtype=object)
    second = numpy.array(["".join(["x", "y"]), "z"], dtype=object)
    assert default_cache_key(first) != default_cache_key(second)
    assert default_cache_key(first) == default_cache_key(numpy.array(["ab", "c"], dtype=object))
