from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from breakerpanel.incident_bot.db import Database
from breakerpanel.incident_bot.incidents import Engine, EngineConfig
from breakerpanel.incident_bot.routing import RoutingFile

# The PagerDuty and Slack fakes' fixtures: registered here, where they are used, not in the root
# conftest (they need the incident bot's dependencies; the core's tests run without them).
from tests.fakes.plugin import fake_pagerduty, fake_pagerduty_server, fake_slack, fake_slack_server  # noqa: F401

from .support import ROUTING, ManualClock

MakeEngine = Callable[..., Awaitable[tuple[Engine, Database, ManualClock]]]


@pytest.fixture
async def make_engine(tmp_path: Path) -> AsyncIterator[MakeEngine]:
    """``await make_engine(resolve_after=..., routing=...)``: an engine over a fresh SQLite file,
    disposed of after the test."""
    made: list[Database] = []

    async def make(
        *, resolve_after: float = 300.0, routing: RoutingFile = ROUTING, real_time: bool = False
    ) -> tuple[Engine, Database, ManualClock]:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / f'bot{len(made)}.db'}")
        made.append(db)
        await db.create()
        clock = ManualClock(follow_real_time=real_time)
        return Engine(db, EngineConfig(resolve_after=resolve_after, routing=routing), clock=clock), db, clock

    yield make
    for db in made:
        await db.dispose()
