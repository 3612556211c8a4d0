"""Fake upstreams for the integration tests: one server per session, healthy at each test's start."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from demo.upstreams import Chaos, UpstreamServer, create_app


@pytest.fixture(scope="session")
def _upstreams_chaos() -> Chaos:
    return Chaos(seed=11)


@pytest.fixture(scope="session")
def _upstreams_server(_upstreams_chaos: Chaos) -> Iterator[UpstreamServer]:
    with UpstreamServer(create_app(chaos=_upstreams_chaos, max_prompt_chars=2000)) as running:
        yield running


@pytest.fixture
def chaos(_upstreams_chaos: Chaos) -> Chaos:
    _upstreams_chaos.reset()
    return _upstreams_chaos


@pytest.fixture
def upstreams(_upstreams_server: UpstreamServer, chaos: Chaos) -> UpstreamServer:
    return _upstreams_server
