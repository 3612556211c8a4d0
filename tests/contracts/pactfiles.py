"""The committed pact files: written by the consumer tests with ``PACT_WRITE=1``, compared with them otherwise.

Each consumer test builds a small :class:`pact.Pact` of its own (the interactions one scenario needs), drives the
real client code against its mock server, and hands the pact to :meth:`CommittedPact.check`, which writes it into
a temporary directory and compares *its interactions* with the ones of the same description in the committed file.
Comparing interaction by interaction (not whole files) keeps ``pytest -k`` and any test order working, and a
failure names the interaction that moved. :meth:`CommittedPact.check_complete` catches the other drift: an
interaction left in the committed file that no test defines any more, or one missing from it.

Volatile metadata (the versions of pact-python's FFI and its Rust models) is left out of the committed files, so a
pact-python upgrade alone changes nothing here; the specification version stays (the verifier reads it).
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from pact import Pact

__all__ = ["PACTS_DIR", "REGENERATE", "CommittedPact", "writing"]

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
PACTS_DIR: Final = REPO_ROOT / "tests" / "contracts" / "pacts"
#: Set to 1 to (re)write the committed pact files from the consumer tests instead of comparing with them.
WRITE_ENV: Final = "PACT_WRITE"
REGENERATE: Final = f"{WRITE_ENV}=1 pytest tests/contracts"
#: Metadata that says which pact-python build wrote a file, not what the contract is.
_VOLATILE_METADATA: Final = ("pactRust", "pactPython", "pact-python")


def writing() -> bool:
    """Whether this run (re)writes the committed pact files."""
    return os.environ.get(WRITE_ENV, "").strip().lower() in ("1", "true", "yes")


def _dump(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


class CommittedPact:
    """The committed pact file between ``consumer`` and ``provider``, which holds exactly ``descriptions``."""

    def __init__(self, consumer: str, provider: str, descriptions: Sequence[str]) -> None:
        if len(set(descriptions)) != len(descriptions):
            raise ValueError("interaction descriptions must be unique: they identify interactions here")
        self.consumer = consumer
        self.provider = provider
        self.descriptions = tuple(descriptions)
        self.path = PACTS_DIR / f"{consumer}-{provider}.json"

    def new_pact(self) -> Pact:
        """An empty V4 pact between the two, for one consumer test to add its interactions to."""
        return Pact(self.consumer, self.provider).with_specification("V4")

    def check(self, pact: Pact, directory: Path) -> None:
        """Compare the interactions of ``pact`` (after its mock server ran) with the committed ones, or write them
        into the committed file when :func:`writing`. ``directory``: an empty temporary directory."""
        pact.write_file(directory, overwrite=True)
        written = json.loads((directory / self.path.name).read_text())
        interactions = {interaction["description"]: interaction for interaction in written["interactions"]}
        unknown = sorted(set(interactions) - set(self.descriptions))
        assert not unknown, f"add {unknown} to the descriptions of {self.path.name} in its test module"
        if writing():
            self._write(written, interactions)
            return
        committed = self._committed_interactions()
        for description, interaction in interactions.items():
            expected = committed.get(description)
            if expected != interaction:
                diff = "".join(
                    difflib.unified_diff(
                        _dump(expected).splitlines(keepends=True) if expected is not None else [],
                        _dump(interaction).splitlines(keepends=True),
                        fromfile=f"committed {self.path.name}",
                        tofile="what this test defines",
                    )
                )
                raise AssertionError(
                    f"interaction {description!r} differs from the committed {self.path.relative_to(REPO_ROOT)}: "
                    f"if the change is meant, regenerate with `{REGENERATE}` and review the diff.\n{diff}"
                )

    def check_complete(self) -> None:
        """The committed file holds exactly :attr:`descriptions`, in that order (prunes the others when writing)."""
        if writing() and self.path.exists():
            document = json.loads(self.path.read_text())
            document["interactions"] = [i for i in document["interactions"] if i["description"] in self.descriptions]
            self.path.write_text(_dump(document))
        assert self.path.exists(), f"{self.path.name} is missing: generate it with `{REGENERATE}`"
        found = tuple(self._committed_interactions())
        assert found == self.descriptions, (
            f"{self.path.name} holds {list(found)}, the tests define {list(self.descriptions)}: "
            f"regenerate with `{REGENERATE}` (the whole directory, so that every interaction is written)"
        )

    def _committed_interactions(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        document = json.loads(self.path.read_text())
        return {interaction["description"]: interaction for interaction in document["interactions"]}

    def _write(self, written: dict[str, Any], interactions: dict[str, Any]) -> None:
        merged = {**self._committed_interactions(), **interactions}
        metadata = {k: v for k, v in written.get("metadata", {}).items() if k not in _VOLATILE_METADATA}
        document = {
            "consumer": written["consumer"],
            "provider": written["provider"],
            "interactions": [merged[d] for d in self.descriptions if d in merged],
            "metadata": metadata,
        }
        PACTS_DIR.mkdir(exist_ok=True)
        self.path.write_text(_dump(document))
