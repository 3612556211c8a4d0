"""Shared test configuration."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# Real servers (Redis, PostgreSQL, Prometheus, Alertmanager) for the tests that need them.
pytest_plugins = ["tests.servers"]

# CI runs more examples; local runs stay quick. Derandomised in CI so a failure reproduces.
settings.register_profile(
    "ci", max_examples=300, derandomize=True, suppress_health_check=[HealthCheck.too_slow], deadline=None
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))
