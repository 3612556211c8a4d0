"""What every generator command does with its files: write those that changed, or with ``--check``
only name them; and defaults that exist only in a checkout of the repository.

The rule, Alertmanager, dashboard, mesh and semantic-convention generators all go through here, so
they agree on what "stale" means, what they print and how they exit (0: up to date or written;
1: ``--check`` found stale files).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["checkout_default", "require_options", "write_or_check"]


def write_or_check(
    files: Mapping[Path, str],
    *,
    check: bool,
    remake: str,
    obsolete: Iterable[Path] = (),
    shown_from: Path | None = None,
) -> int:
    """Bring ``files`` (path: content) up to date, removing the ``obsolete`` paths that exist; with
    ``check``, change nothing and name each stale one on stderr with ``remake``, the command that
    brings it up to date. Paths are shown relative to ``shown_from`` when given."""

    def shown(path: Path) -> Path:
        return path.relative_to(shown_from) if shown_from is not None and path.is_relative_to(shown_from) else path

    changed = [path for path, text in files.items() if not path.is_file() or path.read_text() != text]
    removed = [path for path in obsolete if path.exists() and path not in files]
    if check:
        for path in [*changed, *removed]:
            print(f"{shown(path)} is stale: run `{remake}`", file=sys.stderr)
        return 1 if changed or removed else 0
    for path in changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path])
        print(f"wrote {shown(path)}")
    for path in removed:
        path.unlink()
        print(f"removed {shown(path)} (no source makes it)")
    return 0


def checkout_default(path: Path, *, marker: Path | None = None) -> Path | None:
    """``path`` as an option's default in a checkout of the repository, where it exists (or, for a
    file that is written, where ``marker``, a file only a checkout has, exists); ``None`` in an
    installed package, where the option must be given (:func:`require_options`)."""
    return path if (marker or path).exists() else None


def require_options(parser: argparse.ArgumentParser, args: argparse.Namespace, *names: str) -> None:
    """Exit with a usage error naming each option left ``None`` (its default is a checkout's file)."""
    missing = [f"--{name.replace('_', '-')}" for name in names if getattr(args, name) is None]
    if missing:
        parser.error(f"{', '.join(missing)} required (the default is a checkout's file)")
