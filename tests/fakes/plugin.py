"""pytest fixtures for the PagerDuty and Slack fakes: one server of each per session, reset for every test.

Import them into the conftest of a folder whose tests use them (tests/incident_bot/, tests/contracts/,
tests/stack/), or into the test module: the root conftest does not register them, since the fakes need the
incident bot's dependencies and the breaker core's tests run without those.
A test that needs other settings (a token list, known channels, a rate limit from the start) builds its own:
``with FakeSlack(channels={"#incidents": "C0INCIDENT"}) as slack: ...``.

PYTEST_DONT_REWRITE: no assertions to rewrite, and this lets a module that imported :mod:`tests.fakes` list this
plugin in ``pytest_plugins`` without pytest's "already imported" warning.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .pagerduty import FakePagerDuty
from .slack import FakeSlack

__all__ = ["fake_pagerduty", "fake_pagerduty_server", "fake_slack", "fake_slack_server"]


@pytest.fixture(scope="session")
def fake_pagerduty_server() -> Iterator[FakePagerDuty]:
    """The session's fake PagerDuty (HTTPS, self-signed CA at ``.ca_file``). Prefer ``fake_pagerduty``."""
    with FakePagerDuty() as fake:
        yield fake


@pytest.fixture
def fake_pagerduty(fake_pagerduty_server: FakePagerDuty) -> Iterator[FakePagerDuty]:
    """The fake PagerDuty with no events, alerts, faults or rate limit, and up, for this test."""
    fake_pagerduty_server.reset()
    yield fake_pagerduty_server
    fake_pagerduty_server.reset()


@pytest.fixture(scope="session")
def fake_slack_server() -> Iterator[FakeSlack]:
    """The session's fake Slack. Prefer ``fake_slack``."""
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def fake_slack(fake_slack_server: FakeSlack) -> Iterator[FakeSlack]:
    """The fake Slack with no calls, messages, faults or rate limit, and up, for this test."""
    fake_slack_server.reset()
    yield fake_slack_server
    fake_slack_server.reset()
