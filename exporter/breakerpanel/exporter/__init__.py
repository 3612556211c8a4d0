"""exporter: breaker metrics through OpenTelemetry, named by a semantic-conventions registry.

- ``exporter/breakerpanel/exporter/semconv/``: the registry (Weaver format), the single source of truth for every metric
  and label name; :mod:`breakerpanel.exporter.semconv` holds the generated constants.
- :class:`BreakerTelemetry`: a MeterProvider with the Prometheus reader (and OTLP push when the
  ``OTEL_*`` variables ask for it), ``/metrics`` as an ASGI app or a standalone server, span
  events for rejections, fallbacks and state changes.
- ``breakerpanel.exporter.adapters``: the same metrics for pybreaker, aiobreaker and purgatory breakers.
- What the rule generator and the dashboards share, here so that neither imports the other:
  :mod:`breakerpanel.exporter.promql` (queries over the registry's series),
  :mod:`breakerpanel.exporter.loop_names` (the recording rules' names, the dashboards' uids and
  variables) and :mod:`breakerpanel.exporter.rules_config` (the rules' configuration).

The call path pays nothing beyond a bucket count: instruments are observable and read the
breakers' own counters when Prometheus scrapes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._catalog import OTHER, BreakerCatalog
    from ._sources import BreakerReading, BreakerSource, CircuitBreakerSource
    from ._telemetry import SCOPE_NAME, BreakerTelemetry, otlp_configured
    from ._tracing import SpanEvents

__all__ = [
    "OTHER",
    "SCOPE_NAME",
    "BreakerCatalog",
    "BreakerReading",
    "BreakerSource",
    "BreakerTelemetry",
    "CircuitBreakerSource",
    "SpanEvents",
    "otlp_configured",
]

# The names above load on first use (PEP 562): the modules the rule and dashboard generators read
# (semconv, promql, loop_names, rules_config) need no OpenTelemetry, and without the `exporter`
# extra the first use of BreakerTelemetry says which extra to install.
_SOURCES = {
    "OTHER": "._catalog",
    "BreakerCatalog": "._catalog",
    "BreakerReading": "._sources",
    "BreakerSource": "._sources",
    "CircuitBreakerSource": "._sources",
    "SCOPE_NAME": "._telemetry",
    "BreakerTelemetry": "._telemetry",
    "otlp_configured": "._telemetry",
    "SpanEvents": "._tracing",
}


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    importlib.import_module("._extra", __name__)  # a missing extra: one line naming it
    value = getattr(importlib.import_module(source, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
