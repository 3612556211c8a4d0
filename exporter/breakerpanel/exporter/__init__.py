"""exporter: breaker metrics through OpenTelemetry, named by a semantic-conventions registry.

- ``exporter/breakerpanel/exporter/semconv/``: the registry (Weaver format), the single source of truth for every metric
  and label name; :mod:`breakerpanel.exporter.semconv` holds the generated constants.
- :class:`BreakerTelemetry`: a MeterProvider with the Prometheus reader (and OTLP push when the
  ``OTEL_*`` variables ask for it), ``/metrics`` as an ASGI app or a standalone server, span
  events for rejections, fallbacks and state changes.
- ``breakerpanel.exporter.adapters``: the same metrics for pybreaker, aiobreaker and purgatory breakers.

The call path pays nothing beyond a bucket count: instruments are observable and read the
breakers' own counters when Prometheus scrapes.
"""

from . import _extra  # noqa: F401  (first: a missing extra fails here, named)
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
