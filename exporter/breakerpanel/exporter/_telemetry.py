"""Wiring: a MeterProvider with the Prometheus reader (and OTLP push when configured), the
breaker, guard and state-store instruments, the ``/metrics`` endpoint, and span events."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import prometheus_client
from opentelemetry.sdk.metrics import MeterProvider, ObservableCounter, ObservableGauge
from opentelemetry.sdk.metrics.export import CardinalityLimits
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.semconv.attributes.deployment_attributes import DEPLOYMENT_ENVIRONMENT_NAME
from opentelemetry.semconv.attributes.service_attributes import SERVICE_INSTANCE_ID, SERVICE_NAME
from prometheus_client import CollectorRegistry

from breakerpanel import MAX_ERROR_TYPES, BreakerRegistry, CircuitBreaker, RejectionReason, StateStore

from . import semconv
from ._catalog import BreakerCatalog
from ._exposition import BreakerExposition
from ._guards import Guard, GuardInstruments, StoreInstruments
from ._instruments import BreakerInstruments
from ._readers import BreakerPeriodicReader, BreakerPrometheusReader
from ._series import Detail, SeriesPolicy
from ._serving import MetricsServer, metrics_asgi_app, start_metrics_server
from ._sources import BreakerSource
from ._tracing import SpanEvents

__all__ = ["SCOPE_NAME", "BreakerTelemetry", "otlp_configured"]

SCOPE_NAME = "breakerpanel"
#: Points of one instrument per breaker, at most: the calls counter's, its largest (a success, an
#: ignored call, each error type the breaker keeps and its _OTHER, each rejection reason).
_SERIES_PER_BREAKER_BOUND = 2 + MAX_ERROR_TYPES + 1 + len(RejectionReason)
_OTLP_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")

ASGIApp = Callable[..., Any]


def otlp_configured(environ: os._Environ[str] | dict[str, str] = os.environ) -> bool:
    """Whether the standard OTEL_* variables ask for OTLP metrics."""
    exporters = environ.get("OTEL_METRICS_EXPORTER", "")
    if "none" in exporters.split(","):
        return False
    return "otlp" in exporters.split(",") or any(environ.get(name) for name in _OTLP_VARIABLES)


def _package_version() -> str:
    try:
        return version("breakerpanel")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


class BreakerTelemetry:
    """Exports breakers' metrics (and span events) through the OpenTelemetry SDK.

    >>> from breakerpanel import BreakerRegistry
    >>> registry = BreakerRegistry()
    >>> _ = registry.service("openai", attributes={"gen_ai.provider.name": "openai"})
    >>> telemetry = BreakerTelemetry(registry, service_name="assistant")
    >>> b"circuit_breaker_state{" in prometheus_client.generate_latest(telemetry.prometheus_registry)
    True
    >>> telemetry.shutdown()

    ``prometheus_registry``: the prometheus_client registry the reader registers with; a private
    one by default, so ``/metrics`` shows breakers only (pass ``prometheus_client.REGISTRY`` to
    join an application's existing metrics). OTLP push is added when the standard ``OTEL_*``
    variables configure it (``otlp=None``), or forced on or off.

    ``detail``: ``"standard"`` (about 30 series per breaker: one call-duration histogram per
    breaker on coarse buckets, rare states and counters only once they occur) or ``"full"`` (call
    durations by outcome on the breakers' own buckets, every state and counter from the start);
    see :mod:`breakerpanel.exporter._series`. ``/metrics`` (:meth:`asgi_app`, :meth:`start_http_server`,
    :meth:`exposition`) writes the breakers' series directly (:mod:`breakerpanel.exporter._exposition`);
    ``generate_latest(prometheus_registry)`` gives the same samples through the SDK, more slowly.
    """

    def __init__(
        self,
        *sources: CircuitBreaker | BreakerRegistry | BreakerSource,
        service_name: str,
        environment: str | None = None,
        instance_id: str | None = None,
        prometheus_registry: CollectorRegistry | None = None,
        otlp: bool | None = None,
        tracing: bool = True,
        max_breakers: int = 500,
        max_values_per_attribute: int = 100,
        evict_idle_after: float | None = None,
        detail: Detail = "standard",
    ) -> None:
        policy = SeriesPolicy(detail)
        self.catalog = BreakerCatalog(
            max_breakers=max_breakers,
            max_values_per_attribute=max_values_per_attribute,
            evict_idle_after=evict_idle_after,
        )
        attributes: dict[str, str] = {
            SERVICE_NAME: service_name,
            SERVICE_INSTANCE_ID: instance_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}",
        }
        if environment:
            attributes[DEPLOYMENT_ENVIRONMENT_NAME] = environment
        self.resource = Resource.create(attributes)
        self.prometheus_registry = prometheus_registry if prometheus_registry is not None else CollectorRegistry()
        # The SDK keeps at most 2,000 attribute sets per instrument and folds the rest into one
        # `otel_metric_overflow` point: 334 breakers' six states already exceed it. The catalog
        # bounds the breakers (and a breaker's error types are capped), so the limit follows it.
        limits: CardinalityLimits = dict.fromkeys(
            (ObservableCounter, ObservableGauge), (max_breakers + 1) * _SERIES_PER_BREAKER_BOUND
        )
        prometheus_reader = BreakerPrometheusReader(
            scope_info_enabled=False, registry=self.prometheus_registry, cardinality_limits=limits
        )
        readers: list[BreakerPrometheusReader | BreakerPeriodicReader] = [prometheus_reader]
        if otlp if otlp is not None else otlp_configured():
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            readers.append(BreakerPeriodicReader(OTLPMetricExporter(), cardinality_limits=limits))
        self.meter_provider = MeterProvider(resource=self.resource, metric_readers=readers)
        scope = InstrumentationScope(SCOPE_NAME, _package_version(), semconv.SCHEMA_URL)
        meter = self.meter_provider.get_meter(scope.name, scope.version, scope.schema_url)
        self.instruments = BreakerInstruments(meter, self.catalog, scope, policy)
        self._exposition = BreakerExposition(self.catalog, policy)
        self.guard_instruments = GuardInstruments(meter)
        self.store_instruments = StoreInstruments(meter)
        for reader in readers:
            reader.bind(self.instruments)
        self._span_events = SpanEvents() if tracing else None
        self._servers: list[MetricsServer] = []
        for source in sources:
            self.add(source)

    def add(self, source: CircuitBreaker | BreakerRegistry | BreakerSource) -> None:
        """Export a breaker, every breaker of a registry (later ones too) and its state store, or
        an adapter."""
        self.catalog.add(source)
        if isinstance(source, BreakerRegistry):
            self.store_instruments.add(source.store)
        if self._span_events is not None and isinstance(source, BreakerRegistry | CircuitBreaker):
            source.add_listener(self._span_events)

    def add_guard(self, *guards: Guard) -> None:
        """Export rate limiters, lockout guards and concurrency limiters (their ``statistics()``)."""
        for guard in guards:
            self.guard_instruments.add(guard)

    def add_store(self, store: StateStore) -> None:
        """Export a state store's availability and errors (a registry's store is added with it)."""
        self.store_instruments.add(store)

    def exposition(self) -> bytes:
        """The ``/metrics`` body (Prometheus text format 0.0.4): the breakers' series, written
        directly, then every other metric of ``prometheus_registry`` (guards, state stores,
        ``target_info``, and the application's own when the registry is shared)."""
        breakers = self._exposition.render()
        with self.instruments.silenced():
            rest = prometheus_client.generate_latest(self.prometheus_registry)
        return breakers.encode() + rest

    def asgi_app(self) -> ASGIApp:
        """``/metrics`` as an ASGI app: ``app.mount("/metrics", telemetry.asgi_app())``. The body
        is written in a worker thread (the event loop keeps serving calls) and gzipped when the
        scraper accepts it, as Prometheus does."""
        return metrics_asgi_app(self.exposition)

    def start_http_server(self, port: int, addr: str = "127.0.0.1") -> MetricsServer:
        """Serve ``/metrics`` from a thread of its own (for processes without a web framework)."""
        server = start_metrics_server(self.exposition, port, addr)
        self._servers.append(server)
        return server

    def shutdown(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()
        self.meter_provider.shutdown()
