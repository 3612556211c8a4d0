"""Compose's ``.env`` files and ``${VAR:-default}`` interpolation, as far as docker-compose.yml uses them.

The local stack must read docker-compose.yml the way Compose does, or the two topologies drift:
variables come from the shell first, then from ``.env`` next to the compose file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

__all__ = ["InterpolationError", "interpolate", "read_dotenv"]

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_REFERENCE = re.compile(r"\$\$|\$\{(" + _NAME + r")(?:(:?-)([^}]*))?\}|\$(" + _NAME + ")")


class InterpolationError(ValueError):
    """A ``${...}`` form Compose would accept but this reader does not (``:?``, ``:+``, nesting)."""


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of ``path`` (none if it does not exist); ``#`` comments, optional ``export``
    and one level of matching quotes around the value, like Compose."""
    if not path.is_file():
        return {}
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(_NAME, key):
            raise ValueError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Replace ``$$``, ``$VAR``, ``${VAR}``, ``${VAR-default}`` and ``${VAR:-default}`` in ``text``.

    An unset variable without a default becomes empty, as in Compose (which warns).
    """

    def substitute(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, default = match.group(2), match.group(3)
        value = variables.get(name)
        if operator == ":-" and not value:
            return default
        if operator == "-" and value is None:
            return default
        return value or ""

    if "${" in _REFERENCE.sub("", text):
        raise InterpolationError(f"unsupported interpolation in {text!r}")
    return _REFERENCE.sub(substitute, text)
