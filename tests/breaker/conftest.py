"""Fixtures for breaker tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from breakerpanel import BreakerConfig, CircuitBreaker, ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start=1000.0)


@pytest.fixture
def make_breaker(clock: ManualClock) -> Callable[..., CircuitBreaker]:
    def make(name: str = "dep", **options: Any) -> CircuitBreaker:
        return CircuitBreaker(name, BreakerConfig(**options), clock=clock)

    return make
