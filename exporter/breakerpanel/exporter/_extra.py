"""Imported first by the package: without the `exporter` extra, one line naming it, not a bare
``ModuleNotFoundError`` from a module deep inside."""

from breakerpanel._extras import require

require("breakerpanel.exporter", "exporter", "opentelemetry.sdk", "prometheus_client", "yaml", "pydantic")
