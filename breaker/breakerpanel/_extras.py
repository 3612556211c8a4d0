"""One line that says which extra to install, instead of a bare ``ModuleNotFoundError`` from
deep inside a subpackage whose optional dependencies are missing."""

from __future__ import annotations

import importlib.util

__all__ = ["require"]


def require(part: str, extra: str, *modules: str) -> None:
    """Raise ``ModuleNotFoundError`` naming ``pip install 'breakerpanel[extra]'`` when one of the
    top-level ``modules`` that ``part`` imports is not installed."""
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # a dotted name whose parent package is missing
            found = False
        if not found:
            error = ModuleNotFoundError(
                f"{part} needs {module!r}, which is not installed: pip install 'breakerpanel[{extra}]'"
            )
            error.name = module
            raise error
