"""Installing the Debian packages the local stack needs, the way `make system-deps` does."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable

from .paths import REPO_ROOT
from .topology import PROGRAMS, Which

__all__ = ["install_missing_packages", "missing_packages"]

SYSTEM_DEPS = REPO_ROOT / "deploy" / "system-deps.sh"


def missing_packages(*, which: Which = shutil.which, skip: frozenset[str] = frozenset()) -> list[str]:
    """Debian packages of required programs that are not on PATH."""
    missing = []
    for name, program in PROGRAMS.items():
        if not program.required or not program.executables or name in skip or program.package is None:
            continue
        if not any(which(executable) for executable in program.executables) and program.package not in missing:
            missing.append(program.package)
    return missing


def install_missing_packages(
    *,
    which: Which = shutil.which,
    skip: frozenset[str] = frozenset(),
    say: Callable[[str], None] = print,
) -> None:
    """As root, install what is missing with deploy/system-deps.sh (apt, retrying on the dpkg lock).

    Not as root this does nothing: planning the stack then fails with the package to install.
    """
    packages = missing_packages(which=which, skip=skip)
    if not packages or os.geteuid() != 0:
        return
    say(f"installing {' '.join(packages)} (deploy/system-deps.sh)...")
    subprocess.run(["bash", str(SYSTEM_DEPS), *packages], check=True)
