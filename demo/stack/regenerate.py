"""``breakerpanel dashboards`` and ``rules``: the generators `make dashboards` and `make rules` run."""

from __future__ import annotations

import subprocess
import sys

from .paths import REPO_ROOT

__all__ = ["regenerate"]

GENERATORS = {"dashboards": "dashboards", "rules": "alert_rules"}


def regenerate(what: str, *, check: bool = False) -> int:
    """Run the generator module (in a child process: its imports, grafanalib among them, stay out of
    the CLI) and return its exit code; ``check`` only reports stale files."""
    command = [sys.executable, "-m", GENERATORS[what], *(["--check"] if check else [])]
    return subprocess.run(command, cwd=REPO_ROOT, check=False).returncode
