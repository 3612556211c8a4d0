"""deploy/Dockerfile read as its stages and their instructions: no Docker engine here, so the tests
check what the file says an image holds and runs."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

from demo.stack.paths import REPO_ROOT

__all__ = ["DOCKERFILE", "Copy", "Instruction", "Stage", "read_stages"]

DOCKERFILE = REPO_ROOT / "deploy" / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    #: The rest of the instruction, continuation lines joined.
    arguments: str

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form CMD or ENTRYPOINT (after any ``--option``: HEALTHCHECK's CMD)."""
        start = self.arguments.index("[")
        value = json.loads(self.arguments[start:])
        assert isinstance(value, list), self
        return [str(part) for part in value]


@dataclass(frozen=True)
class Copy:
    """A COPY: ``sources`` from the build context, or from the stage ``from_stage``."""

    sources: tuple[str, ...]
    destination: str
    from_stage: str | None


@dataclass(frozen=True)
class Stage:
    name: str
    #: The image or the earlier stage it starts from.
    base: str
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"stage {self.name} has no {keyword}"
        return found[-1]

    def copies(self) -> list[Copy]:
        copies = []
        for instruction in self.all("COPY"):
            words = instruction.arguments.split()
            options = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            from_stage = next((o.split("=", 1)[1] for o in options if o.startswith("--from=")), None)
            copies.append(Copy(tuple(paths[:-1]), paths[-1], from_stage))
        return copies

    def commands(self, program: str) -> list[list[str]]:
        """The words of every command of the RUN instructions that starts with ``program``
        (``uv sync``: ``["uv", "sync", ...]``); commands chained with ``&&`` are apart."""
        found = []
        for run in self.all("RUN"):
            for command in run.arguments.split("&&"):
                words = shlex.split(command)
                if words[: len(program.split())] == program.split():
                    found.append(words)
        return found


def read_stages(path: Path = DOCKERFILE) -> dict[str, Stage]:
    """The file's stages by name, in order (an unnamed stage is named by its index)."""
    stages: dict[str, Stage] = {}
    name, base = "", ""
    instructions: list[Instruction] = []
    for keyword, arguments in _instructions(path.read_text()):
        if keyword == "FROM":
            if name:
                stages[name] = Stage(name, base, tuple(instructions))
            words = arguments.split()
            base = words[0]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            instructions = []
        else:
            instructions.append(Instruction(keyword, arguments))
    if name:
        stages[name] = Stage(name, base, tuple(instructions))
    return stages


def _instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) of each instruction: comment lines dropped (inside a continuation too,
    as Docker does), lines ending with a backslash joined to the next."""
    found: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        found.append((keyword.upper(), " ".join(arguments.split())))
        pending = ""
    return found
