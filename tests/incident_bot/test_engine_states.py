"""The incident engine as a state machine (Hypothesis): whatever order alerts fire, resolve,
repeat, and people press buttons in, the invariants hold."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import select

from breakerpanel.incident_bot.db import Database, alerts, incidents, outbox
from breakerpanel.incident_bot.incidents import Engine, EngineConfig

from .support import ROUTING, AlertSpec, ManualClock, breaker_labels, webhook

BREAKERS = {
    "openai": {"level": "service"},
    "openai.chat": {"level": "endpoint", "parent": "openai"},
    "qdrant": {"level": "service"},
    "answer": {"level": "feature", "requires": "openai"},
    "search": {"level": "feature", "requires": "openai,qdrant"},
}
ALERTS = [("CircuitBreakerOpen", "critical"), ("CircuitBreakerTripPredicted", "warning")]
RESOLVE_AFTER = 120.0


class EngineMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.dir = tempfile.TemporaryDirectory()
        self.db = Database(f"sqlite+aiosqlite:///{Path(self.dir.name) / 'bot.db'}")
        self.clock = ManualClock()
        self.engine = Engine(self.db, EngineConfig(resolve_after=RESOLVE_AFTER, routing=ROUTING), clock=self.clock)
        self.run(self.db.create())
        self.sent: list[dict[str, Any]] = []
        self.firing: list[AlertSpec] = []
        self.minute = 0

    def teardown(self) -> None:
        if hasattr(self, "loop"):
            self.run(self.db.dispose())
            self.loop.close()
            self.dir.cleanup()

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def deliver(self, payload: dict[str, Any]) -> None:
        from .support import store

        self.sent.append(payload)
        self.run(store(self.db, payload))
        self.run(self.engine.process_pending())

    # ------------------------------------------------------------------ what can happen

    @rule(breaker=st.sampled_from(sorted(BREAKERS)), alert=st.sampled_from(ALERTS))
    def fire(self, breaker: str, alert: tuple[str, str]) -> None:
        alertname, severity = alert
        if any(a.labels["circuit_breaker_name"] == breaker and a.labels["alertname"] == alertname for a in self.firing):
            return  # Prometheus has one episode of an alert at a time
        self.minute += 1
        spec = AlertSpec(
            breaker_labels(breaker, alertname=alertname, severity=severity, **BREAKERS[breaker]), starts=self.minute
        )
        self.firing.append(spec)
        self.deliver(webhook((spec, "firing")))

    @precondition(lambda self: self.firing)
    @rule(data=st.data())
    def resolve(self, data: st.DataObject) -> None:
        spec = data.draw(st.sampled_from(self.firing))
        self.firing.remove(spec)
        self.deliver(webhook((spec, "resolved")))

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def repeat(self, data: st.DataObject) -> None:
        """A retry, the other Alertmanager of an HA pair, or a late copy grouped differently."""
        payload = data.draw(st.sampled_from(self.sent))
        regroup = data.draw(st.booleans())
        before = self.snapshot()
        copy = {**payload, "externalURL": "http://other.example"}
        if regroup:
            copy["groupKey"] = payload["groupKey"] + "-regrouped"
        self.run(self._store_and_process(copy))
        after = self.snapshot()
        # A copy never creates an incident or a notification; a late firing of an ended episode
        # is stale; at most it refreshes what it already said.
        assert after["incidents"] == before["incidents"]
        assert after["outbox"] == before["outbox"]

    async def _store_and_process(self, payload: dict[str, Any]) -> None:
        from .support import store

        await store(self.db, payload)
        await self.engine.process_pending()

    @rule(seconds=st.sampled_from([10.0, 60.0, 119.0, 121.0, 600.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.run(self.engine.tick())

    @rule(incident=st.integers(1, 6), resolve=st.booleans())
    def person(self, incident: int, resolve: bool) -> None:
        action = self.engine.resolve if resolve else self.engine.acknowledge
        self.run(action(incident, "<@U1>"))

    # ------------------------------------------------------------------ what must hold

    def snapshot(self) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            async with self.db.transaction() as conn:
                return {
                    "incidents": [tuple(r) for r in await conn.execute(select(incidents).order_by(incidents.c.id))],
                    "alerts": [tuple(r) for r in await conn.execute(select(alerts).order_by(alerts.c.key))],
                    "outbox": [
                        (r.incident_id, r.target, r.action, r.destination)
                        for r in await conn.execute(select(outbox).order_by(outbox.c.id))
                    ],
                }

        result: dict[str, Any] = self.run(read())
        return result

    @invariant()
    def invariants(self) -> None:
        if not hasattr(self, "db"):
            return
        state = self.snapshot()
        by_id = {r.id: r for r in self.run(self._incident_rows())}
        live = [r for r in by_id.values() if r.status != "resolved"]
        identities = [r.identity for r in live]
        assert len(identities) == len(set(identities)), "one live incident per breaker"
        firing: dict[int, int] = {}
        for a in self.run(self._alert_rows()):
            if a.status == "firing":
                firing[a.incident_id] = firing.get(a.incident_id, 0) + 1
                owner = by_id[a.incident_id]
                # No firing alert is forgotten: its incident is live, or a person resolved it.
                assert owner.status != "resolved" or owner.resolved_by is not None, (a.key, owner)
        for r in live:
            if r.status == "attached":
                parent = by_id[r.parent_id]
                assert parent.status in ("open", "acknowledged"), "an attached incident hangs under a live one"
                assert firing.get(r.id, 0) > 0, "an attached incident with nothing firing is closed"
            else:
                # Live: either something fires, or it is quiet and waiting to resolve.
                assert (firing.get(r.id, 0) > 0) == (r.quiet_since is None), (r, firing.get(r.id))
        pagerduty: dict[int, list[str]] = {}
        for incident_id, target, action, _ in state["outbox"]:
            if target == "pagerduty":
                pagerduty.setdefault(incident_id, []).append(action)
        for incident_id, actions in pagerduty.items():
            assert actions[0] == "trigger", actions
            incident = by_id[incident_id]
            if incident.parent_id is not None:
                # It paged before its root cause's incident opened and adopted it: the root holds its
                # page now (the same dedup_key), or its page was withdrawn (the root holds another).
                root = by_id[incident.parent_id]
                took_over = root.dedup_key == incident.dedup_key and "resolve" not in actions
                withdrawn = actions[-1] == "resolve" and actions.count("resolve") == 1
                assert took_over or withdrawn, ("an adopted child's page is the root's, or withdrawn", actions)
                continue
            if "resolve" in actions:
                assert actions.index("resolve") == len(actions) - 1, f"nothing after a resolve: {actions}"
                assert incident.status == "resolved"
        # A page is never left open: a live dedup_key belongs to a live incident.
        open_pages = {by_id[i].dedup_key for i, actions in pagerduty.items() if actions[-1] != "resolve"}
        held = {r.dedup_key for r in by_id.values() if r.status in ("open", "acknowledged")}
        resolved_by_holder = {by_id[i].dedup_key for i, actions in pagerduty.items() if actions[-1] == "resolve"}
        assert open_pages <= held | resolved_by_holder, (open_pages, held)

    async def _incident_rows(self) -> list[Any]:
        async with self.db.transaction() as conn:
            return list(await conn.execute(select(incidents)))

    async def _alert_rows(self) -> list[Any]:
        async with self.db.transaction() as conn:
            return list(await conn.execute(select(alerts)))


EngineMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
TestEngineStates = EngineMachine.TestCase
