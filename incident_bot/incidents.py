"""Incidents: from alerts to one incident per breaker, and from incident changes to notifications.

The rules, in order of what they prevent:

- **Duplicates change nothing.** An alert is one firing episode (fingerprint and ``startsAt``);
  seeing it firing again, or resolved again, is a no-op, and a firing that arrives after its
  resolution (a late retry, another Alertmanager) is stale.
- **One incident per breaker.** Every alert about a breaker joins the breaker's live incident;
  PagerDuty hears of it through one ``dedup_key`` (:attr:`Identity.dedup_key`).
- **Flaps fold.** When the last alert of an incident resolves, the incident goes quiet; it resolves
  only after :attr:`EngineConfig.resolve_after` of quiet. An alert firing within that time is a
  flap of the same incident (counted), not a new page.
- **Children attach.** An endpoint alert whose service breaker has a live incident, or a feature
  alert while a service breaker of its job has one, is attached to that incident: a line in its
  timeline and its Slack thread, no page. If the parent resolves while the child still fires, the
  child becomes an incident of its own, and pages.

Every change and the notifications it causes are written in one transaction: the outbox
(:mod:`incident_bot.outbox`) delivers them, even after a crash.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from .alertmanager import Alert, Webhook
from .db import Database, alerts, events, incidents, now, outbox, webhooks
from .identity import SERVICE_LEVEL, Identity, identity_of
from .routing import RoutingFile, incident_labels

__all__ = ["SEVERITIES", "Engine", "EngineConfig"]

logger = logging.getLogger("incident_bot.incidents")

#: Severities, least to most urgent (PagerDuty's vocabulary; ``severity`` labels map onto it).
SEVERITIES = ("info", "warning", "error", "critical")
_LIVE = ("open", "acknowledged")

FEATURE_LEVEL = "feature"
#: Alerts that report a change someone made, not a problem: sent as PagerDuty change events (which
#: never notify) and a Slack line, never an incident.
CHANGE_ALERTS = frozenset({"CircuitBreakerManualState"})


def severity_of(labels: Mapping[str, str]) -> str:
    value = labels.get("severity", "").lower()
    return value if value in SEVERITIES else ("critical" if value == "page" else "error" if value else "warning")


def _more_urgent(a: str, b: str) -> str:
    return a if SEVERITIES.index(a) >= SEVERITIES.index(b) else b


@dataclass(frozen=True)
class EngineConfig:
    resolve_after: float
    routing: RoutingFile


@dataclass
class Outcome:
    """What processing changed, for metrics and tests."""

    alerts_new: int = 0
    alerts_resolved: int = 0
    duplicates: int = 0
    stale: int = 0
    opened: int = 0
    attached: int = 0
    flaps: int = 0
    resolved: int = 0


class Engine:
    def __init__(self, db: Database, config: EngineConfig, *, clock: Callable[[], float] = now) -> None:
        self.db = db
        self.config = config
        self.clock = clock

    # ------------------------------------------------------------------ webhooks

    async def process_pending(self, limit: int = 100) -> Outcome:
        """Process stored webhooks in order, each in its own transaction (a bad one is marked and
        skipped, never blocks the queue). Returns what changed."""
        total = Outcome()
        for _ in range(limit):
            async with self.db.transaction() as conn:
                if not await self.db.lock_processing(conn):
                    break  # another replica is processing
                row = (
                    await conn.execute(
                        select(webhooks.c.id, webhooks.c.payload)
                        .where(webhooks.c.processed_at.is_(None))
                        .order_by(webhooks.c.id)
                        .limit(1)
                    )
                ).first()
                if row is None:
                    break
                at = self.clock()
                error = None
                try:
                    async with conn.begin_nested():
                        webhook = Webhook.model_validate(row.payload)
                        await self._process(conn, webhook, at, total)
                except Exception as exc:  # a bug must not stall intake: record, log, move on
                    logger.exception("webhook %s could not be processed", row.id)
                    error = f"{type(exc).__name__}: {exc}"
                await conn.execute(update(webhooks).where(webhooks.c.id == row.id).values(processed_at=at, error=error))
        return total

    async def _process(self, conn: AsyncConnection, webhook: Webhook, at: float, out: Outcome) -> None:
        touched: set[int] = set()
        for alert in webhook.alerts:
            incident_id = await (self._firing if alert.status == "firing" else self._resolved)(conn, alert, at, out)
            if incident_id is not None:
                touched.add(incident_id)
        if webhook.truncatedAlerts:
            for incident_id in touched:
                await self._event(
                    conn,
                    incident_id,
                    at,
                    "truncated",
                    f"Alertmanager left {webhook.truncatedAlerts} alert(s) of group {webhook.groupKey} out of "
                    "this notification (max_alerts): they arrive with a later one.",
                )

    async def _firing(self, conn: AsyncConnection, alert: Alert, at: float, out: Outcome) -> int | None:
        known = (await conn.execute(select(alerts).where(alerts.c.key == alert.key))).first()
        if known is not None:
            if known.status == "resolved":
                out.stale += 1  # a late firing of an episode that already ended
                return None
            out.duplicates += 1
            await conn.execute(
                update(alerts).where(alerts.c.key == alert.key).values(last_seen=at, annotations=alert.annotations)
            )
            return None
        out.alerts_new += 1
        identity = identity_of(alert.labels)
        severity = severity_of(alert.labels)
        alertname = alert.labels.get("alertname", "alert")
        if alertname in CHANGE_ALERTS:
            await self._add_alert(conn, None, alert, severity, at)
            await self._change(conn, alert, identity, at, started=True)
            return None
        live = await self._live_incident(conn, identity.key)
        if live is not None:
            await self._add_alert(conn, live.id, alert, severity, at)
            await self._join(conn, live, alert, alertname, severity, at, out)
            return int(live.id)
        parent = await self._parent_incident(conn, identity)
        if parent is not None:
            incident_id = await self._create(
                conn, identity, alert, severity, at, status="attached", parent_id=parent.id
            )
            await self._add_alert(conn, incident_id, alert, severity, at)
            text = f"{identity.title}: {alertname} fired; attached here, its service breaker's incident is open."
            await self._event(conn, parent.id, at, "child_attached", text, {"child": incident_id})
            await self._event(conn, incident_id, at, "attached", f"Attached to incident #{parent.id}: no page.")
            await self._reply(conn, parent, at, text)
            out.attached += 1
            return incident_id
        incident_id = await self._create(conn, identity, alert, severity, at, status="open", parent_id=None)
        await self._add_alert(conn, incident_id, alert, severity, at)
        await self._event(conn, incident_id, at, "opened", f"{alertname} fired: incident opened ({severity}).")
        await self._notify_open(conn, incident_id, at)
        out.opened += 1
        return incident_id

    async def _join(
        self, conn: AsyncConnection, live: Any, alert: Alert, alertname: str, severity: str, at: float, out: Outcome
    ) -> None:
        changes: dict[str, Any] = {"updated_at": at}
        text = f"{alertname} fired."
        if live.quiet_since is not None:
            changes["quiet_since"] = None
            changes["flaps"] = live.flaps + 1
            text = f"{alertname} fired again {at - live.quiet_since:.0f}s after going quiet: flap {live.flaps + 1}."
            out.flaps += 1
        raised = _more_urgent(severity, live.severity) != live.severity
        receivers = live.receivers
        added: dict[str, list[str]] = {"pagerduty": [], "slack": []}
        if raised:
            changes["severity"] = severity
            if live.status != "attached":
                # More urgent now: the routes of the new alert apply too (a warning that turns
                # critical pages), added to the receivers it already has.
                wanted = self._receivers(incident_labels(alert.labels))
                for target in ("pagerduty", "slack"):
                    added[target] = [r for r in wanted[target] if r not in receivers.get(target, [])]
                receivers = {
                    "routes": receivers.get("routes", [])
                    + [r for r in wanted["routes"] if r not in receivers.get("routes", [])],
                    "pagerduty": receivers.get("pagerduty", []) + added["pagerduty"],
                    "slack": receivers.get("slack", []) + added["slack"],
                }
                changes["receivers"] = receivers
        await conn.execute(update(incidents).where(incidents.c.id == live.id).values(**changes))
        await self._event(conn, live.id, at, "flap" if "flaps" in changes else "alert_firing", text)
        if live.status == "attached":
            return
        if raised:  # a trigger with the same dedup_key updates PagerDuty's alert (or opens it)
            for ref in receivers.get("pagerduty", []):
                await self._enqueue(conn, live.id, "pagerduty", "trigger", ref, at)
            if added["pagerduty"] or added["slack"]:
                routes = ", ".join(receivers["routes"])
                await self._event(conn, live.id, at, "routed", f"Raised to {severity}: routes {routes}.", receivers)
        for channel in receivers.get("slack", []):
            await self._enqueue(conn, live.id, "slack", "card", channel, at)
        for channel in receivers.get("slack", []):
            await self._enqueue(conn, live.id, "slack", "reply", channel, at, {"text": text})

    async def _resolved(self, conn: AsyncConnection, alert: Alert, at: float, out: Outcome) -> int | None:
        known = (await conn.execute(select(alerts).where(alerts.c.key == alert.key))).first()
        if known is None:
            # Resolved before we saw it fire (the bot started later): nothing of ours to close.
            out.stale += 1
            return None
        if known.status == "resolved":
            out.duplicates += 1
            return None
        out.alerts_resolved += 1
        await conn.execute(update(alerts).where(alerts.c.key == alert.key).values(status="resolved", resolved_at=at))
        if known.incident_id is None:  # a change that ended
            await self._change(conn, alert, identity_of(alert.labels), at, started=False)
            return None
        incident = (await conn.execute(select(incidents).where(incidents.c.id == known.incident_id))).one()
        if incident.status == "resolved":
            return None
        firing = await self._firing_count(conn, incident.id)
        name = known.alertname
        if firing:
            text = f"{name} resolved; {firing} alert(s) still firing."
            await self._event(conn, incident.id, at, "alert_resolved", text)
            if incident.status != "attached":
                await self._reply(conn, incident, at, text)
            return int(incident.id)
        if incident.status == "attached":
            await self._close(conn, incident, at, f"{name} resolved: the attached alerts are over.")
            parent = (await conn.execute(select(incidents).where(incidents.c.id == incident.parent_id))).one()
            if parent.status != "resolved":
                await self._event(conn, parent.id, at, "child_resolved", f"{incident.title}: {name} resolved.")
            return int(incident.id)
        quiet = self.config.resolve_after
        text = f"{name} resolved: every alert is over. Resolving after {quiet:.0f}s without a new one."
        await conn.execute(update(incidents).where(incidents.c.id == incident.id).values(quiet_since=at, updated_at=at))
        await self._event(conn, incident.id, at, "quiet", text)
        await self._cards(conn, incident, at)
        await self._reply(conn, incident, at, text)
        return int(incident.id)

    async def _change(
        self, conn: AsyncConnection, alert: Alert, identity: Identity, at: float, *, started: bool
    ) -> None:
        """A manual state began or ended: a change event for each PagerDuty receiver of its routes,
        a line in each Slack channel, and one in the breaker's incident if it has one."""
        labels = alert.labels
        state = labels.get("circuit_breaker_state", "a manual state")
        where = labels.get("instance", "")
        text = (
            f"{identity.title} put in {state} by hand{f' on {where}' if where else ''}."
            if started
            else f"{identity.title} back to automatic (was {state}){f' on {where}' if where else ''}."
        )
        receivers = self._receivers(incident_labels(labels))
        event = {
            "payload": {
                "summary": text[:1024],
                "source": labels.get("instance") or labels.get("job") or "breakerpanel",
                "timestamp": datetime.fromtimestamp(at, UTC).isoformat(),
                "custom_details": {k: v for k, v in labels.items() if k != "severity"},
            },
            "links": [
                {"href": alert.annotations[k], "text": t}
                for k, t in (("dashboard_url", "Grafana dashboard"), ("runbook_url", "Runbook"))
                if str(alert.annotations.get(k, "")).startswith(("http://", "https://"))
            ],
        }
        for ref in receivers["pagerduty"]:
            await self._enqueue(conn, None, "pagerduty", "change", ref, at, event)
        for channel in receivers["slack"]:
            await self._enqueue(conn, None, "slack", "message", channel, at, {"text": f":wrench: {text}"})
        live = await self._live_incident(conn, identity.key)
        if live is not None:
            await self._event(conn, live.id, at, "change", text)

    # ------------------------------------------------------------------ time and people

    async def tick(self) -> Outcome:
        """Resolve the incidents that stayed quiet for ``resolve_after``."""
        out = Outcome()
        async with self.db.transaction() as conn:
            if not await self.db.lock_processing(conn):
                return out
            at = self.clock()
            due = (
                await conn.execute(
                    select(incidents).where(
                        incidents.c.status.in_(_LIVE),
                        incidents.c.quiet_since.is_not(None),
                        incidents.c.quiet_since <= at - self.config.resolve_after,
                    )
                )
            ).all()
            for incident in due:
                minutes = (at - incident.opened_at) / 60
                flaps = f", {incident.flaps} flap(s)" if incident.flaps else ""
                await self._resolve(
                    conn,
                    incident,
                    at,
                    f"Resolved: quiet for {self.config.resolve_after:.0f}s (open {minutes:.1f} min{flaps}).",
                    by=None,
                )
                out.resolved += 1
        return out

    async def acknowledge(self, incident_id: int, by: str) -> str:
        """Acknowledge from a person (a Slack button). Returns what happened, for the person."""
        async with self.db.transaction() as conn:
            incident = await self._locked(conn, incident_id)
            if incident is None:
                return f"Incident #{incident_id} does not exist."
            if incident.status != "open":
                return f"Incident #{incident_id} is {incident.status}: nothing to acknowledge."
            at = self.clock()
            await conn.execute(
                update(incidents)
                .where(incidents.c.id == incident_id)
                .values(status="acknowledged", acknowledged_by=by, updated_at=at)
            )
            for ref in incident.receivers.get("pagerduty", []):
                await self._enqueue(conn, incident_id, "pagerduty", "acknowledge", ref, at)
            text = f"Acknowledged by {by}."
            await self._event(conn, incident_id, at, "acknowledged", text, {"by": by})
            await self._cards(conn, incident, at)
            await self._reply(conn, incident, at, text)
            return f"Incident #{incident_id} acknowledged."

    async def resolve(self, incident_id: int, by: str) -> str:
        """Resolve from a person: the incident ends now, whatever its alerts say."""
        async with self.db.transaction() as conn:
            incident = await self._locked(conn, incident_id)
            if incident is None:
                return f"Incident #{incident_id} does not exist."
            if incident.status not in _LIVE:
                return f"Incident #{incident_id} is {incident.status}: it cannot be resolved from here."
            await self._resolve(conn, incident, self.clock(), f"Resolved by {by}.", by=by)
            return f"Incident #{incident_id} resolved."

    # ------------------------------------------------------------------ the pieces

    async def _locked(self, conn: AsyncConnection, incident_id: int) -> Any:
        query = select(incidents).where(incidents.c.id == incident_id)
        if self.db.is_postgres:
            query = query.with_for_update()
        return (await conn.execute(query)).first()

    async def _resolve(self, conn: AsyncConnection, incident: Any, at: float, text: str, *, by: str | None) -> None:
        await conn.execute(
            update(incidents)
            .where(incidents.c.id == incident.id)
            .values(status="resolved", resolved_at=at, resolved_by=by, updated_at=at, quiet_since=None)
        )
        for ref in incident.receivers.get("pagerduty", []):
            await self._enqueue(conn, incident.id, "pagerduty", "resolve", ref, at)
        await self._event(conn, incident.id, at, "resolved", text, {"by": by} if by else {})
        await self._cards(conn, incident, at)
        await self._reply(conn, incident, at, text)
        children = (
            await conn.execute(
                select(incidents).where(incidents.c.parent_id == incident.id, incidents.c.status == "attached")
            )
        ).all()
        for child in children:
            if await self._firing_count(conn, child.id):
                # Still firing without its parent: it is an incident of its own now, and pages.
                labels = incident_labels(child.labels)
                receivers = self._receivers(labels)
                await conn.execute(
                    update(incidents)
                    .where(incidents.c.id == child.id)
                    .values(status="open", parent_id=None, receivers=receivers, updated_at=at)
                )
                await self._event(
                    conn, child.id, at, "promoted", f"Its parent incident #{incident.id} resolved while it fires."
                )
                await self._notify_open(conn, child.id, at)
            else:
                await self._close(conn, child, at, f"Parent incident #{incident.id} resolved.")

    async def _close(self, conn: AsyncConnection, incident: Any, at: float, text: str) -> None:
        """Resolve an attached incident: nothing was paged, nothing to tell PagerDuty."""
        await conn.execute(
            update(incidents)
            .where(incidents.c.id == incident.id)
            .values(status="resolved", resolved_at=at, updated_at=at)
        )
        await self._event(conn, incident.id, at, "resolved", text)

    async def _live_incident(self, conn: AsyncConnection, identity_key: str) -> Any:
        query = select(incidents).where(incidents.c.identity == identity_key, incidents.c.status != "resolved")
        return (await conn.execute(query)).first()

    async def _parent_incident(self, conn: AsyncConnection, identity: Identity) -> Any:
        parent_key = identity.parent_key()
        if parent_key is not None:
            parent = await self._live_incident(conn, parent_key)
            return parent if parent is not None and parent.status in _LIVE else None
        breaker = identity.breaker
        if breaker is not None and breaker.level == FEATURE_LEVEL:
            # A feature has no parent label: its dependencies are services of the same job.
            prefix = f"breaker:{breaker.job}:{SERVICE_LEVEL}:"
            query = (
                select(incidents)
                .where(incidents.c.identity.startswith(prefix, autoescape=True), incidents.c.status.in_(_LIVE))
                .order_by(incidents.c.opened_at)
                .limit(1)
            )
            return (await conn.execute(query)).first()
        return None

    def _receivers(self, labels: Mapping[str, str]) -> dict[str, list[str]]:
        routes, pagerduty, slack = self.config.routing.receivers_for(labels)
        return {"routes": routes, "pagerduty": [r.ref for r in pagerduty], "slack": slack}

    async def _create(
        self,
        conn: AsyncConnection,
        identity: Identity,
        alert: Alert,
        severity: str,
        at: float,
        *,
        status: str,
        parent_id: int | None,
    ) -> int:
        labels = incident_labels(alert.labels)
        receivers = self._receivers(labels) if status == "open" else {"routes": [], "pagerduty": [], "slack": []}
        result = await conn.execute(
            insert(incidents)
            .values(
                identity=identity.key,
                title=identity.title,
                dedup_key=identity.dedup_key,
                status=status,
                severity=severity,
                labels=dict(alert.labels),
                annotations=dict(alert.annotations),
                receivers=receivers,
                parent_id=parent_id,
                opened_at=at,
                updated_at=at,
                flaps=0,
            )
            .returning(incidents.c.id)
        )
        return int(result.scalar_one())

    async def _add_alert(
        self, conn: AsyncConnection, incident_id: int | None, alert: Alert, severity: str, at: float
    ) -> None:
        await conn.execute(
            insert(alerts).values(
                key=alert.key,
                incident_id=incident_id,
                alertname=alert.labels.get("alertname", "alert"),
                status="firing",
                severity=severity,
                labels=dict(alert.labels),
                annotations=dict(alert.annotations),
                starts_at=alert.startsAt.isoformat(),
                generator_url=alert.generatorURL,
                first_seen=at,
                last_seen=at,
            )
        )

    async def _firing_count(self, conn: AsyncConnection, incident_id: int) -> int:
        query = select(func.count()).where(alerts.c.incident_id == incident_id, alerts.c.status == "firing")
        return int((await conn.execute(query)).scalar_one())

    async def _notify_open(self, conn: AsyncConnection, incident_id: int, at: float) -> None:
        incident = (await conn.execute(select(incidents).where(incidents.c.id == incident_id))).one()
        for ref in incident.receivers.get("pagerduty", []):
            await self._enqueue(conn, incident_id, "pagerduty", "trigger", ref, at)
        await self._cards(conn, incident, at)
        routes = ", ".join(incident.receivers.get("routes", []))
        await self._event(conn, incident_id, at, "routed", f"Routes: {routes or 'none'}.", incident.receivers)

    async def _cards(self, conn: AsyncConnection, incident: Any, at: float) -> None:
        """Post or refresh the incident's Slack card in each of its channels."""
        for channel in incident.receivers.get("slack", []):
            await self._enqueue(conn, incident.id, "slack", "card", channel, at)

    async def _reply(self, conn: AsyncConnection, incident: Any, at: float, text: str) -> None:
        for channel in incident.receivers.get("slack", []):
            await self._enqueue(conn, incident.id, "slack", "reply", channel, at, {"text": text})

    async def _enqueue(
        self,
        conn: AsyncConnection,
        incident_id: int | None,
        target: str,
        action: str,
        destination: str,
        at: float,
        payload: Mapping[str, Any] | None = None,
    ) -> None:
        await conn.execute(
            insert(outbox).values(
                incident_id=incident_id,
                target=target,
                action=action,
                destination=destination,
                payload=dict(payload or {}),
                status="pending",
                attempts=0,
                created_at=at,
                next_attempt_at=at,
                dry_run=False,
            )
        )

    async def _event(
        self,
        conn: AsyncConnection,
        incident_id: int,
        at: float,
        kind: str,
        text: str,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        await conn.execute(
            insert(events).values(incident_id=incident_id, at=at, kind=kind, text=text, detail=dict(detail or {}))
        )
