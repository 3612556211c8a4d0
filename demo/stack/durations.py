"""Durations on the command line: ``60s``, ``5m``, ``1h30m``, ``1.5s``, or plain seconds (``90``)."""

from __future__ import annotations

import re

__all__ = ["parse_duration"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in ``text``; ValueError (argparse shows it) for anything else or a non-positive value."""
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        if not value or _PART.sub("", value):
            raise ValueError(f"not a duration: {text!r} (try 60s, 5m, 1h30m or a number of seconds)") from None
        seconds = sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(value))
    if not seconds > 0:
        raise ValueError(f"a duration must be positive, got {text!r}")
    return seconds
