"""Other libraries' breakers, exported with our conventions: same metric and label names, same
state, outcome and rejection-reason values, so their users get our dashboards and alerts.

- :class:`PyBreakerSource`: a ``pybreaker.CircuitBreaker`` (:mod:`breakerpanel.exporter.adapters.pybreaker`);
- :class:`AioBreakerSource`: an ``aiobreaker.CircuitBreaker`` (:mod:`breakerpanel.exporter.adapters.aiobreaker`);
- :class:`PurgatoryListener`: the circuits of purgatory factories, one :class:`PurgatorySource`
  each (:mod:`breakerpanel.exporter.adapters.purgatory`).

Each is a :class:`~breakerpanel.exporter.BreakerSource` (or makes them): pass it to
:class:`~breakerpanel.exporter.BreakerTelemetry`. They count from the libraries' listener hooks only (nothing is
patched), so they count what those hooks show: each module's docstring says exactly what that is,
and which series stay at 0 or absent because the library does not report them (rejections,
notably, reach no pybreaker or aiobreaker listener: their sources' ``call`` wrappers count them).

The libraries are optional: each adapter imports its own only when it is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._common import AdapterSource, state_value

if TYPE_CHECKING:
    from .aiobreaker import AioBreakerSource
    from .purgatory import PurgatoryListener, PurgatorySource
    from .pybreaker import PyBreakerSource

__all__ = [
    "AdapterSource",
    "AioBreakerSource",
    "PurgatoryListener",
    "PurgatorySource",
    "PyBreakerSource",
    "state_value",
]

_LAZY = {
    "AioBreakerSource": "aiobreaker",
    "PurgatoryListener": "purgatory",
    "PurgatorySource": "purgatory",
    "PyBreakerSource": "pybreaker",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
