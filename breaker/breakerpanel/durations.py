"""One grammar for durations, wherever the project reads one: ``breakers.yaml``
(:func:`breakerpanel.config.parse_duration`), the alert rules' configuration (Prometheus
durations) and the demo's command line.

A duration is a number of seconds (``90``, ``1.5``) or parts with units, largest first, each unit
once: ``250ms``, ``30s``, ``5m``, ``1h30m``, ``2d``, ``1.5h``. Prometheus takes only the second form
with whole numbers (``whole=True``), which is what the alert rules write into their files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Final, TypeAlias

__all__ = ["SECONDS", "UNITS", "Seconds", "parse_duration"]


@dataclass(frozen=True)
class Unit:
    """What a number in a settings dataclass measures, read from its type (``Annotated``)."""

    name: str


#: The mark of a setting in seconds: breakers.yaml takes it as a duration with units too.
SECONDS: Final = Unit("seconds")
#: A setting in seconds, as the settings dataclasses declare it (``slow_call_duration: Seconds``).
Seconds: TypeAlias = Annotated[float, SECONDS]

#: Seconds per unit, largest first: the order parts must come in.
UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_ORDER = list(UNITS)
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def parse_duration(text: str, *, whole: bool = False, units: tuple[str, ...] = tuple(UNITS)) -> float:
    """Seconds in ``text``; ``ValueError`` saying why for anything else.

    ``whole``: parts are whole numbers and a bare number is refused (Prometheus's grammar).
    ``units``: the units allowed.
    """
    value = text.strip()
    if not value:
        raise ValueError("not a duration: empty")
    if _NUMBER.fullmatch(value):
        if whole:
            raise ValueError(f"not a duration: {text!r} has no unit")
        return float(value)
    parts = _PART.findall(value)
    if "".join(number + unit for number, unit in parts) != value:
        raise ValueError(f"not a duration: {text!r}")
    positions = [_ORDER.index(unit) for _, unit in parts]
    if positions != sorted(set(positions)):
        raise ValueError(f"not a duration: {text!r} (units largest first, each once)")
    for number, unit in parts:
        if unit not in units:
            raise ValueError(f"not a duration: {text!r} ({unit!r} is not one of {', '.join(units)})")
        if whole and "." in number:
            raise ValueError(f"not a duration: {text!r} (whole numbers only)")
    return sum(float(number) * UNITS[unit] for number, unit in parts)
