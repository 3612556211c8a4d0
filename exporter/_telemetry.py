"""Wiring: a MeterProvider with the Prometheus reader (and OTLP push when configured), the
breaker, guard and state-store instruments, the ``/metrics`` endpoint, and span events."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from wsgiref.simple_server import WSGIServer

import prometheus_client
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.semconv.attributes.deployment_attributes import DEPLOYMENT_ENVIRONMENT_NAME
from opentelemetry.semconv.attributes.service_attributes import SERVICE_INSTANCE_ID, SERVICE_NAME
from prometheus_client import CollectorRegistry

from breaker import BreakerRegistry, CircuitBreaker, StateStore

from . import semconv
from ._catalog import BreakerCatalog
from ._guards import Guard, GuardInstruments, StoreInstruments
from ._instruments import BreakerInstruments
from ._readers import BreakerPeriodicReader, BreakerPrometheusReader
from ._sources import BreakerSource
from ._tracing import SpanEvents

__all__ = ["SCOPE_NAME", "BreakerTelemetry", "otlp_configured"]

SCOPE_NAME = "breakerpanel"
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

    >>> from breaker import BreakerRegistry
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
    ) -> None:
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
        prometheus_reader = BreakerPrometheusReader(scope_info_enabled=False, registry=self.prometheus_registry)
        readers: list[BreakerPrometheusReader | BreakerPeriodicReader] = [prometheus_reader]
        if otlp if otlp is not None else otlp_configured():
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            readers.append(BreakerPeriodicReader(OTLPMetricExporter()))
        self.meter_provider = MeterProvider(resource=self.resource, metric_readers=readers)
        scope = InstrumentationScope(SCOPE_NAME, _package_version(), semconv.SCHEMA_URL)
        meter = self.meter_provider.get_meter(scope.name, scope.version, scope.schema_url)
        self.instruments = BreakerInstruments(meter, self.catalog, scope)
        self.guard_instruments = GuardInstruments(meter)
        self.store_instruments = StoreInstruments(meter)
        for reader in readers:
            reader.bind(self.instruments)
        self._span_events = SpanEvents() if tracing else None
        self._servers: list[WSGIServer] = []
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

    def asgi_app(self) -> ASGIApp:
        """``/metrics`` as an ASGI app: ``app.mount("/metrics", telemetry.asgi_app())``."""
        app: ASGIApp = prometheus_client.make_asgi_app(registry=self.prometheus_registry)
        return app

    def start_http_server(self, port: int, addr: str = "127.0.0.1") -> WSGIServer:
        """Serve ``/metrics`` from a thread of its own (for processes without a web framework)."""
        server, thread = prometheus_client.start_http_server(port, addr, registry=self.prometheus_registry)
        self._servers.append(server)
        assert isinstance(thread, threading.Thread)
        return server

    def shutdown(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()
        self.meter_provider.shutdown()
