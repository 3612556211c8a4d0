"""The docs: generated blocks are current and every Python example runs."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def test_generated_blocks_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(DOCS / "generate.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"run `python docs/generate.py`:\n{result.stdout}{result.stderr}"


def examples() -> list[tuple[str, int, str]]:
    found = []
    for path in sorted([*DOCS.glob("*.md"), ROOT / "README.md"]):
        for index, match in enumerate(FENCE.finditer(path.read_text())):
            found.append((path.name, index, match.group(1)))
    return found


@pytest.mark.parametrize(("doc", "index", "code"), examples(), ids=[f"{d}#{i}" for d, i, _ in examples()])
def test_python_examples_run(doc: str, index: int, code: str, tmp_path: Path) -> None:
    script = tmp_path / f"example_{index}.py"
    script.write_text(code)
    runpy.run_path(str(script), run_name="__main__")
