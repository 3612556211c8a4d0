"""What the packaging tests share: uv (the repository's pinned one), running a command that must
succeed, a user's clean environment, and the lock's versions as requirements."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.servers import require_binary

ROOT = Path(__file__).resolve().parents[2]


def uv() -> str:
    local = ROOT / ".tools" / "bin" / "uv"
    if local.is_file():
        return str(local)
    return require_binary(shutil.which("uv") or "uv")


def run(*command: str | os.PathLike[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    result = subprocess.run(
        [os.fspath(part) for part in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def clean_env(venv: Path) -> dict[str, str]:
    """The user's shell: the venv's bin first, no PYTHONPATH, nothing that points at the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "UV_"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    return env


def export(path: Path, *selection: str) -> Path:
    """The lock's versions (``uv export --frozen``) of what ``selection`` names (``--extra config``,
    ``--all-groups``...; the core's dependencies alone without any), without the project itself,
    which comes from a dist."""
    run(
        uv(), "export", "--frozen", *selection, "--no-emit-project", "--no-hashes",
        "--quiet", "--output-file", path, cwd=ROOT,
    )  # fmt: skip
    return path
