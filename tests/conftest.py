"""Shared test configuration."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    # Imported by the fixtures only: the breaker core's tests run without the demo's dependencies.
    from demo.upstreams import Chaos, UpstreamServer

# Real servers (Redis, PostgreSQL, Prometheus, Alertmanager) for the tests that need them: this
# module needs nothing beyond pytest (the core's tests run with the core's dependencies only,
# tests/packaging/test_core_tests.py). The PagerDuty and Slack fakes need the bot's: the folders
# that use them import their fixtures (tests/fakes/plugin.py).
pytest_plugins = ["tests.servers"]

# CI runs more examples; local runs stay quick. Derandomised in CI so a failure reproduces.
settings.register_profile(
    "ci", max_examples=300, derandomize=True, suppress_health_check=[HealthCheck.too_slow], deadline=None
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(scope="session")
def upstream_chaos() -> Chaos:
    """The fault controls of the session's fake upstreams (seeded: error rates are repeatable)."""
    from demo.upstreams import Chaos

    return Chaos(seed=7)


@pytest.fixture(scope="session")
def upstream_server(upstream_chaos: Chaos) -> Iterator[UpstreamServer]:
    """Fake OpenAI, Anthropic and Qdrant, one server for the session; tests that need other
    settings start their own. Reset ``upstream_chaos`` in a function-scoped fixture."""
    from demo.upstreams import UpstreamServer, create_app

    with UpstreamServer(create_app(chaos=upstream_chaos, max_prompt_chars=2000)) as running:
        yield running
