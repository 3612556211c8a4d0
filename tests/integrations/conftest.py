"""The session's fake upstreams, healthy and with zeroed counters at each test's start."""

from __future__ import annotations

import pytest

from demo.upstreams import Chaos, UpstreamServer


@pytest.fixture
def chaos(upstream_chaos: Chaos) -> Chaos:
    upstream_chaos.reset()
    return upstream_chaos


@pytest.fixture
def upstreams(upstream_server: UpstreamServer, chaos: Chaos) -> UpstreamServer:
    return upstream_server
