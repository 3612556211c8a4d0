"""Incidents: from alerts to one incident per root cause, and from incident changes to notifications.

The rules, in order of what they prevent:

- **Duplicates change nothing.** An alert is one firing episode of one fingerprint; seeing it
  firing again, or resolved again, is a no-op, whatever ``startsAt`` each copy carries (two
  Prometheus replicas give two, and Alertmanager merges them to the earlier: a resolve may carry
  another ``startsAt`` than the firing stored). A firing that starts no later than an episode that
  already ended (a late retry, another Alertmanager) is stale, and so is a resolve that ended
  before the episode stored began; a resolve seen first is stored, so its late firing is stale.
- **One incident per root cause.** Every alert about a breaker joins the breaker's live incident;
  PagerDuty hears of it through one ``dedup_key`` (:attr:`Identity.dedup_key`). An endpoint's
  alerts belong under its service's incident, a feature's under the incident of a service it
  requires (:meth:`Breaker.root_services`): they are *attached* to it, whatever the order they
  arrive in. A child that arrived first (and may have paged) is adopted by its service's incident
  when that opens: the root takes over its page and its Slack card, and nobody is paged twice. A
  child more urgent than its root raises the root (a feature degraded for users pages through the
  incident of the provider that caused it).
- **Flaps fold.** When the last alert of an incident resolves, the incident goes quiet; it resolves
  only after :attr:`EngineConfig.resolve_after` of quiet. An alert firing within that time is a
  flap of the same incident (counted), not a new page.
- **Few messages.** Slack gets a card when an incident opens, that card edited when it becomes
  more urgent or resolves (or a person acts on it), and nothing per alert: alerts joining, flaps
  and children live in the incident's timeline and on its page, and show on the card's next edit.
  If the parent resolves while a child still fires, the child becomes an incident of its own.

Every change and the notifications it causes are written in one transaction: the outbox
(:mod:`breakerpanel.incident_bot.outbox`) delivers them, even after a crash. A large webhook is processed in
chunks of :data:`CHUNK` alerts, one transaction each (processing is idempotent, so a crash between
chunks only repeats work), so that intake and reads never wait long for the database.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, delete, func, insert, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from .alertmanager import Alert, Webhook
from .charts import RESOLVED
from .db import Database, alerts, enqueue, events, incidents, now, outbox, queue_card_refresh, slack_cards, webhooks
from .delivery import dashboard_link
from .identity import Identity, bounded, breaker_of, identity_of
from .routing import RoutingFile, incident_labels
from .rows import (
    AlertRow,
    IncidentReceivers,
    IncidentRow,
    Json,
    JsonObject,
    fetch_alert,
    fetch_alerts,
    fetch_incident,
    fetch_incidents,
    fetch_slack_cards,
)
from .vocabulary import LIVE_STATUSES, Action, AlertStatus, DeliveryStatus, EventKind, IncidentStatus, Target

__all__ = ["SEVERITIES", "Engine", "EngineConfig"]

logger = logging.getLogger("breakerpanel.incident_bot.incidents")

#: Severities, least to most urgent (PagerDuty's vocabulary; ``severity`` labels map onto it).
SEVERITIES = ("info", "warning", "error", "critical")

#: Alerts processed per transaction (see the module's docstring).
CHUNK = 50
#: Alerts that report a change someone made, not a problem: sent as PagerDuty change events (which
#: never notify) and a Slack line, never an incident.
CHANGE_ALERTS = frozenset({"CircuitBreakerManualState"})


def severity_of(labels: Mapping[str, str]) -> str:
    value = labels.get("severity", "").lower()
    return value if value in SEVERITIES else ("critical" if value == "page" else "error" if value else "warning")


def _utc(moment: datetime) -> datetime:
    """``moment`` comparable with any other: Alertmanager's times carry a zone; a sender's that
    do not are read as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class _ManualState:
    """Where a manual state holds: a breaker (its identity's key) on an instance."""

    breaker: str
    instance: str


def _manual_state(labels: Mapping[str, str]) -> _ManualState:
    return _ManualState(identity_of(labels).key, labels.get("instance", ""))


def _manual_states(notified: list[Alert]) -> frozenset[_ManualState]:
    """Where the manual-state alerts of a notification that fire hold."""
    return frozenset(
        _manual_state(a.labels)
        for a in notified
        if a.status == AlertStatus.FIRING and a.labels.get("alertname") in CHANGE_ALERTS
    )


def _changed_at(alert: Alert, started: bool, at: float) -> datetime:
    """When a manual state began (the alert's ``startsAt``) or ended (its ``endsAt``): the change
    happened then, not when the bot heard of it (after ``group_wait``, a restart, a backlog)."""
    moment = alert.startsAt if started else alert.endsAt
    return _utc(moment) if moment is not None else datetime.fromtimestamp(at, UTC)


def _more_urgent(a: str, b: str) -> str:
    return a if SEVERITIES.index(a) >= SEVERITIES.index(b) else b


class _Busy(Exception):
    """Another replica holds the processing lock (PostgreSQL)."""


def _database_away(exc: Exception) -> bool:
    """Whether ``exc`` says the database could not be reached or answer in time (a dropped
    connection, a lock or pool timeout, SQLite busy), not that this webhook cannot be processed:
    then it stays unprocessed, and the next pass processes it again from its first alert (which
    a crash between two chunks needs as well, so processing an alert twice changes nothing).
    SQLite reports a query's own faults (no such table or column) as an OperationalError too:
    only its lock and busy errors count, or a bug would hold up every later webhook."""
    if isinstance(exc, sa_exc.OperationalError) and isinstance(exc.orig, sqlite3.Error):
        return any(word in str(exc.orig).lower() for word in ("locked", "busy"))
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError | OSError):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated


@dataclass(frozen=True)
class EngineConfig:
    resolve_after: float
    routing: RoutingFile
    #: Queue a chart job (:mod:`.charts`) after the page and the cards of each opening, raise and
    #: resolution: on when Prometheus is configured.
    charts: bool = False
    #: Grafana's root URL (``INCIDENT_BOT_GRAFANA_URL``): change events link dashboards on it, as
    #: pages do (:func:`.delivery.dashboard_link`).
    grafana_url: str | None = None


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
        """Process stored webhooks in order, each in transactions of at most :data:`CHUNK` alerts
        (a bad one is marked and skipped, never blocks the queue). Returns what changed."""
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
            webhook_id: int = row.id
            error = None
            try:
                webhook = Webhook.model_validate(row.payload)
                await self._process(webhook, total)
            except _Busy:
                break  # another replica took the lock between two chunks: it carries on
            except Exception as exc:
                if _database_away(exc):  # unmarked: the next pass (a second later) processes it again
                    logger.warning("webhook %s: the database is away (%s); processing it again", webhook_id, exc)
                    break
                # A bug must not stall intake: record, log, move on.
                logger.exception("webhook %s could not be processed", webhook_id)
                error = f"{type(exc).__name__}: {exc}"
            async with self.db.transaction() as conn:
                at = self.clock()
                await conn.execute(
                    update(webhooks).where(webhooks.c.id == webhook_id).values(processed_at=at, error=error)
                )
        return total

    async def _process(self, webhook: Webhook, out: Outcome) -> None:
        touched: set[int] = set()
        # Alertmanager sends a switch between manual states in one notification, in any order:
        # the resolve of the old state must know that the new one fires (see _change_ended).
        manual = _manual_states(webhook.alerts)
        for start in range(0, len(webhook.alerts), CHUNK):
            async with self.db.transaction() as conn:
                if not await self.db.lock_processing(conn):
                    raise _Busy
                at = self.clock()
                for alert in webhook.alerts[start : start + CHUNK]:
                    if alert.status == AlertStatus.FIRING:
                        incident_id = await self._firing(conn, alert, at, out)
                    else:
                        incident_id = await self._resolved(conn, alert, at, out, manual_firing=manual)
                    if incident_id is not None:
                        touched.add(incident_id)
        if webhook.truncatedAlerts and touched:
            async with self.db.transaction() as conn:
                at = self.clock()
                for incident_id in touched:
                    await self._event(
                        conn,
                        incident_id,
                        at,
                        EventKind.TRUNCATED,
                        f"Alertmanager left {webhook.truncatedAlerts} alert(s) of group {webhook.groupKey} out of "
                        "this notification (max_alerts): they arrive with a later one.",
                    )

    async def _episode(self, conn: AsyncConnection, alert: Alert) -> AlertRow | None:
        """The latest episode stored for the alert's fingerprint, or None."""
        return await fetch_alert(
            conn,
            alerts.c.key.startswith(f"{alert.fingerprint}@", autoescape=True),
            newest_first=(alerts.c.starts_at, alerts.c.first_seen),
        )

    async def _firing(self, conn: AsyncConnection, alert: Alert, at: float, out: Outcome) -> int | None:
        known = await self._episode(conn, alert)
        if known is not None:
            if known.status == AlertStatus.FIRING:
                out.duplicates += 1  # the same episode again (an HA copy may carry another startsAt)
                await conn.execute(
                    update(alerts).where(alerts.c.key == known.key).values(last_seen=at, annotations=alert.annotations)
                )
                # Its incident still hears of this notification (a "truncated" note, say).
                return known.incident_id
            if alert.startsAt.isoformat() <= known.starts_at:
                out.stale += 1  # a late firing of an episode that already ended
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
            await self._join(conn, live, alertname, severity, at, out)
            return live.id
        parent = await self._parent_incident(conn, identity)
        if parent is not None:
            incident_id = await self._create(
                conn, identity, alert, severity, at, status=IncidentStatus.ATTACHED, parent_id=parent.id
            )
            await self._add_alert(conn, incident_id, alert, severity, at)
            await self._event(
                conn, incident_id, at, EventKind.ATTACHED, f"{alertname} fired: attached to incident #{parent.id}."
            )
            await self._attached(conn, parent, incident_id, identity.title, alertname, severity, at)
            out.attached += 1
            return incident_id
        incident_id = await self._create(
            conn, identity, alert, severity, at, status=IncidentStatus.OPEN, parent_id=None
        )
        await self._add_alert(conn, incident_id, alert, severity, at)
        await self._event(conn, incident_id, at, EventKind.OPENED, f"{alertname} fired: incident opened ({severity}).")
        adopted = await self._adopt(conn, incident_id, identity, at)
        await self._notify_open(conn, incident_id, at, adopted)
        out.opened += 1
        return incident_id

    async def _join(
        self, conn: AsyncConnection, live: IncidentRow, alertname: str, severity: str, at: float, out: Outcome
    ) -> None:
        """An alert joins its breaker's live incident: a line in the timeline; a notification only
        when it makes the incident more urgent."""
        if live.quiet_since is None:
            await conn.execute(update(incidents).where(incidents.c.id == live.id).values(updated_at=at))
            await self._event(conn, live.id, at, EventKind.ALERT_FIRING, f"{alertname} fired.")
        else:
            flaps = live.flaps + 1
            await conn.execute(
                update(incidents).where(incidents.c.id == live.id).values(updated_at=at, quiet_since=None, flaps=flaps)
            )
            text = f"{alertname} fired again {at - live.quiet_since:.0f}s after going quiet: flap {flaps}."
            await self._event(conn, live.id, at, EventKind.FLAP, text)
            out.flaps += 1
        if live.status == IncidentStatus.ATTACHED:
            parent = await self._incident(conn, live.parent_id)
            await self._raise(conn, parent, severity, at, f"{live.title}: {alertname} ({severity}).")
        else:
            await self._raise(conn, live, severity, at, f"{alertname} ({severity}).")

    async def _attached(
        self,
        conn: AsyncConnection,
        parent: IncidentRow,
        child_id: int,
        title: str,
        alertname: str,
        severity: str,
        at: float,
    ) -> None:
        text = f"{title}: {alertname} fired; attached here."
        await self._event(conn, parent.id, at, EventKind.CHILD_ATTACHED, text, {"child": child_id})
        await self._raise(conn, parent, severity, at, f"{title}: {alertname} ({severity}).")

    async def _raise(self, conn: AsyncConnection, incident: IncidentRow, severity: str, at: float, why: str) -> None:
        """Make a live root incident as urgent as ``severity``: its routes for that severity apply
        too (a warning that turns critical pages), its card is refreshed."""
        if not incident.status.live or _more_urgent(severity, incident.severity) == incident.severity:
            return
        wanted = self._receivers(incident_labels({**incident.labels, "severity": severity}))
        receivers = incident.receivers.including(wanted)
        await conn.execute(
            update(incidents)
            .where(incidents.c.id == incident.id)
            .values(severity=severity, receivers=receivers.to_json(), updated_at=at)
        )
        await self._event(conn, incident.id, at, EventKind.RAISED, f"Raised to {severity}: {why}", receivers.to_json())
        # A trigger with the incident's dedup_key opens PagerDuty's alert, or updates it.
        for ref in receivers.pagerduty:
            await self._enqueue(conn, incident.id, Target.PAGERDUTY, Action.TRIGGER, ref, at)
        for channel in receivers.slack:
            await queue_card_refresh(conn, incident.id, channel, at)
        await self._chart(conn, incident.id, at, "raised")

    async def _adopt(self, conn: AsyncConnection, root_id: int, identity: Identity, at: float) -> list[IncidentRow]:
        """An incident just opened: the live incidents of breakers its breaker explains
        (:meth:`Breaker.explains`: a service's endpoints and the features that require it; an
        endpoint's features), opened first and still firing, become its children, and theirs
        become its too. The root takes over the first paged one's page (its dedup_key) and every
        Slack card they have where the root has none, and the most urgent severity among them.
        Returns the adopted incidents."""
        breaker = identity.breaker
        if breaker is None:
            return []
        adopted = []
        for child in await self._live_roots(conn, breaker.job, exclude=root_id):
            found = breaker_of(child.labels)
            if found is None or not breaker.explains(found):
                continue
            if child.quiet_since is not None:
                continue  # over already: it resolves by itself after its quiet time
            adopted.append(child)
            await conn.execute(
                update(incidents)
                .where(incidents.c.id == child.id)
                .values(status=IncidentStatus.ATTACHED, parent_id=root_id, quiet_since=None, updated_at=at)
            )
            # Its own children are the root's now: the tree stays one level deep.
            await conn.execute(
                update(incidents).where(incidents.c.parent_id == child.id).values(parent_id=root_id, updated_at=at)
            )
            await self._event(
                conn,
                child.id,
                at,
                EventKind.ATTACHED,
                f"Attached to incident #{root_id}, its root cause, which opened later.",
            )
            await self._event(
                conn,
                root_id,
                at,
                EventKind.CHILD_ATTACHED,
                f"{child.title} (opened first) attached here.",
                {"child": child.id},
            )
        return adopted

    async def _live_roots(self, conn: AsyncConnection, job: str, *, exclude: int | None = None) -> list[IncidentRow]:
        """The live root incidents about breakers of ``job``, oldest first."""
        where: list[ColumnElement[bool]] = [
            incidents.c.identity.startswith(f"breaker:{job}:", autoescape=True),
            incidents.c.status.in_(LIVE_STATUSES),
            incidents.c.parent_id.is_(None),
        ]
        if exclude is not None:
            where.append(incidents.c.id != exclude)
        return await fetch_incidents(conn, *where, order_by=incidents.c.opened_at)

    async def _resolved(
        self,
        conn: AsyncConnection,
        alert: Alert,
        at: float,
        out: Outcome,
        *,
        manual_firing: frozenset[_ManualState] = frozenset(),
    ) -> int | None:
        known = await self._episode(conn, alert)
        if known is None:
            # Resolved before we saw it fire: the bot started later, or the firing comes late (a
            # retry, the other Alertmanager). Nothing of ours to close; the episode is remembered
            # as over, so that its late firing is stale instead of a page nothing would resolve.
            out.stale += 1
            # Stored as starting when it ended: a firing that starts no later is stale, whichever
            # startsAt it carries (the other replica's copy may carry a later one than this
            # resolve, which Alertmanager merged to the earlier).
            ended = alert.endsAt if alert.endsAt is not None else alert.startsAt
            await self._add_alert(
                conn, None, alert, severity_of(alert.labels), at, status=AlertStatus.RESOLVED, starts_at=ended
            )
            return None
        if known.status == AlertStatus.RESOLVED:
            out.duplicates += 1
            return None
        if alert.endsAt is not None and _utc(alert.endsAt) < _utc(datetime.fromisoformat(known.starts_at)):
            # The resolve of an earlier episode (a late copy in another notification): the one
            # stored began after it ended, and fires on. (A resolve of the stored episode may
            # carry an earlier startsAt, Alertmanager's merge of two Prometheus replicas' copies,
            # but never an end before the episode's start.)
            out.stale += 1
            return None
        out.alerts_resolved += 1
        await conn.execute(
            update(alerts).where(alerts.c.key == known.key).values(status=AlertStatus.RESOLVED, resolved_at=at)
        )
        if known.incident_id is None:  # a change that ended
            await self._change_ended(conn, alert, at, manual_firing)
            return None
        incident = await self._incident(conn, known.incident_id)
        if incident.status == IncidentStatus.RESOLVED:
            return None
        firing = await self._firing_count(conn, incident.id)
        name = known.alertname
        if firing:
            await self._event(
                conn, incident.id, at, EventKind.ALERT_RESOLVED, f"{name} resolved; {firing} alert(s) still firing."
            )
            return incident.id
        if incident.status == IncidentStatus.ATTACHED:
            await self._close(conn, incident, at, f"{name} resolved: the attached alerts are over.")
            parent = await self._incident(conn, incident.parent_id)
            if parent.status != IncidentStatus.RESOLVED:
                await self._event(conn, parent.id, at, EventKind.CHILD_RESOLVED, f"{incident.title}: {name} resolved.")
            return incident.id
        quiet = self.config.resolve_after
        text = f"{name} resolved: every alert is over. Resolving after {quiet:.0f}s without a new one."
        await conn.execute(update(incidents).where(incidents.c.id == incident.id).values(quiet_since=at, updated_at=at))
        await self._event(conn, incident.id, at, EventKind.QUIET, text)
        return incident.id

    async def _change_ended(
        self, conn: AsyncConnection, alert: Alert, at: float, manual_firing: frozenset[_ManualState]
    ) -> None:
        """A manual state ended: the breaker is back to automatic, unless another manual state of
        the same breaker and instance fires (a person switched, say, from forced_open straight to
        disabled): that state's own change says so, and "back to automatic" would be false."""
        identity = identity_of(alert.labels)
        state = _manual_state(alert.labels)
        if state in manual_firing or await self._manual_state_firing(conn, state):
            logger.debug("%s ended: %s switched to another manual state", alert.key, identity.title)
            return
        await self._change(conn, alert, identity, at, started=False)

    async def _manual_state_firing(self, conn: AsyncConnection, state: _ManualState) -> bool:
        """Whether a stored manual-state alert of that breaker and instance still fires."""
        firing = await fetch_alerts(
            conn,
            alerts.c.incident_id.is_(None),
            alerts.c.status == AlertStatus.FIRING,
            alerts.c.alertname.in_(CHANGE_ALERTS),
        )
        return any(_manual_state(a.labels) == state for a in firing)

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
        # PagerDuty's change event (Events API v2), rendered now: it belongs to no incident.
        event: JsonObject = {
            "payload": {
                "summary": text[:1024],
                "source": labels.get("instance") or labels.get("job") or "breakerpanel",
                "timestamp": _changed_at(alert, started, at).isoformat(),
                "custom_details": {k: v for k, v in labels.items() if k != "severity"},
            },
            "links": self._change_links(alert),
        }
        for ref in receivers.pagerduty:
            await self._enqueue(conn, None, Target.PAGERDUTY, Action.CHANGE, ref, at, event)
        for channel in receivers.slack:
            await self._enqueue(conn, None, Target.SLACK, Action.MESSAGE, channel, at, {"text": f":wrench: {text}"})
        live = await self._live_incident(conn, identity.key)
        if live is not None:
            await self._event(conn, live.id, at, EventKind.CHANGE, text)

    def _change_links(self, alert: Alert) -> list[Json]:
        """A change event's links, as a page's: the dashboard moved onto the configured Grafana
        (or the breaker's, when the alert names none), the runbook."""
        links: list[Json] = []
        dashboard = dashboard_link(alert.annotations, alert.labels, self.config.grafana_url)
        if dashboard is not None:
            links.append({"href": dashboard, "text": "Grafana dashboard"})
        runbook = str(alert.annotations.get("runbook_url", ""))
        if runbook.startswith(("http://", "https://")):
            links.append({"href": runbook, "text": "Runbook"})
        return links

    # ------------------------------------------------------------------ time and people

    async def tick(self) -> Outcome:
        """Resolve the incidents that stayed quiet for ``resolve_after``."""
        out = Outcome()
        async with self.db.transaction() as conn:
            if not await self.db.lock_processing(conn):
                return out
            at = self.clock()
            due = await fetch_incidents(
                conn,
                incidents.c.status.in_(LIVE_STATUSES),
                incidents.c.quiet_since.is_not(None),
                incidents.c.quiet_since <= at - self.config.resolve_after,
            )
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
            if incident.status != IncidentStatus.OPEN:
                return f"Incident #{incident_id} is {incident.status}: nothing to acknowledge."
            at = self.clock()
            await conn.execute(
                update(incidents)
                .where(incidents.c.id == incident_id)
                .values(status=IncidentStatus.ACKNOWLEDGED, acknowledged_by=by, updated_at=at)
            )
            for ref in incident.receivers.pagerduty:
                await self._enqueue(conn, incident_id, Target.PAGERDUTY, Action.ACKNOWLEDGE, ref, at)
            text = f"Acknowledged by {by}."
            await self._event(conn, incident_id, at, EventKind.ACKNOWLEDGED, text, {"by": by})
            await self._cards(conn, incident, at)
            await self._reply(conn, incident, at, text)
            return f"Incident #{incident_id} acknowledged."

    async def resolve(self, incident_id: int, by: str) -> str:
        """Resolve from a person: the incident ends now, whatever its alerts say."""
        async with self.db.transaction() as conn:
            incident = await self._locked(conn, incident_id)
            if incident is None:
                return f"Incident #{incident_id} does not exist."
            if not incident.status.live:
                return f"Incident #{incident_id} is {incident.status}: it cannot be resolved from here."
            await self._resolve(conn, incident, self.clock(), f"Resolved by {by}.", by=by)
            return f"Incident #{incident_id} resolved."

    # ------------------------------------------------------------------ the pieces

    async def _incident(self, conn: AsyncConnection, incident_id: int | None) -> IncidentRow:
        """An incident a row of ours refers to (an alert's, a child's parent): it exists, the
        foreign keys say so."""
        found = await fetch_incident(conn, incidents.c.id == incident_id)
        if found is None:
            raise LookupError(f"incident {incident_id} is referred to but does not exist")
        return found

    async def _locked(self, conn: AsyncConnection, incident_id: int) -> IncidentRow | None:
        return await fetch_incident(conn, incidents.c.id == incident_id, for_update=self.db.is_postgres)

    async def _resolve(
        self, conn: AsyncConnection, incident: IncidentRow, at: float, text: str, *, by: str | None
    ) -> None:
        await conn.execute(
            update(incidents)
            .where(incidents.c.id == incident.id)
            .values(status=IncidentStatus.RESOLVED, resolved_at=at, resolved_by=by, updated_at=at, quiet_since=None)
        )
        children = await fetch_incidents(
            conn, incidents.c.parent_id == incident.id, incidents.c.status == IncidentStatus.ATTACHED
        )
        promoted: dict[int, IncidentReceivers] = {}
        handed_back: set[str] = set()
        for child in children:
            if await self._firing_count(conn, child.id):
                promoted[child.id] = self._receivers(incident_labels({**child.labels, "severity": child.severity}))
                if child.dedup_key == incident.dedup_key:
                    # The page this incident took over from the child goes back to it, open: a
                    # resolve here and the child's trigger of the same dedup_key would belong to
                    # two incidents, whose deliveries are not ordered: the resolve could land last.
                    handed_back.update(promoted[child.id].pagerduty)
        for ref in incident.receivers.pagerduty:
            if ref not in handed_back:
                await self._enqueue(conn, incident.id, Target.PAGERDUTY, Action.RESOLVE, ref, at)
        await self._event(conn, incident.id, at, EventKind.RESOLVED, text, {"by": by} if by else {})
        await self._cards(conn, incident, at)
        if by is not None:  # a person resolved it from Slack: say so in the thread
            await self._reply(conn, incident, at, text)
        await self._chart(conn, incident.id, at, RESOLVED)
        for child in children:
            receivers = promoted.get(child.id)
            if receivers is not None:
                # Still firing without its parent: it is an incident of its own now, and pages.
                await conn.execute(
                    update(incidents)
                    .where(incidents.c.id == child.id)
                    .values(status=IncidentStatus.OPEN, parent_id=None, receivers=receivers.to_json(), updated_at=at)
                )
                await self._event(
                    conn,
                    child.id,
                    at,
                    EventKind.PROMOTED,
                    f"Its parent incident #{incident.id} resolved while it fires"
                    + (
                        "; the page it had comes back to it, still open."
                        if child.dedup_key == incident.dedup_key
                        else "."
                    ),
                )
                await self._notify_open(conn, child.id, at, [])
            else:
                await self._close(conn, child, at, f"Parent incident #{incident.id} resolved.")

    async def _close(self, conn: AsyncConnection, incident: IncidentRow, at: float, text: str) -> None:
        """Resolve an attached incident: nothing was paged, nothing to tell PagerDuty."""
        await conn.execute(
            update(incidents)
            .where(incidents.c.id == incident.id)
            .values(status=IncidentStatus.RESOLVED, resolved_at=at, updated_at=at)
        )
        await self._event(conn, incident.id, at, EventKind.RESOLVED, text)

    async def _live_incident(self, conn: AsyncConnection, identity_key: str) -> IncidentRow | None:
        return await fetch_incident(
            conn, incidents.c.identity == identity_key, incidents.c.status != IncidentStatus.RESOLVED
        )

    async def _parent_incident(self, conn: AsyncConnection, identity: Identity) -> IncidentRow | None:
        """The live incident of a breaker that explains this one (:meth:`Breaker.explains`): its
        service's, else, for a feature, that of an endpoint of a service it requires which
        tripped before the service did; the first opened when several are. None for a root."""
        breaker = identity.breaker
        if breaker is None or not breaker.root_services():
            return None
        for key in identity.parent_keys():
            parent = await self._live_incident(conn, key)
            if parent is not None and parent.status.live:
                return parent
        for candidate in await self._live_roots(conn, breaker.job):
            found = breaker_of(candidate.labels)
            if found is not None and found.explains(breaker):
                return candidate
        return None

    def _receivers(self, labels: Mapping[str, str]) -> IncidentReceivers:
        routes, pagerduty, slack = self.config.routing.receivers_for(labels)
        return IncidentReceivers(tuple(routes), tuple(r.ref for r in pagerduty), tuple(slack))

    async def _create(
        self,
        conn: AsyncConnection,
        identity: Identity,
        alert: Alert,
        severity: str,
        at: float,
        *,
        status: IncidentStatus,
        parent_id: int | None,
    ) -> int:
        labels = incident_labels(alert.labels)
        # An attached incident pages nobody: its root's receivers do.
        receivers = self._receivers(labels) if status == IncidentStatus.OPEN else IncidentReceivers()
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
                receivers=receivers.to_json(),
                parent_id=parent_id,
                opened_at=at,
                updated_at=at,
                flaps=0,
            )
            .returning(incidents.c.id)
        )
        return int(result.scalar_one())

    async def _add_alert(
        self,
        conn: AsyncConnection,
        incident_id: int | None,
        alert: Alert,
        severity: str,
        at: float,
        *,
        status: AlertStatus = AlertStatus.FIRING,
        starts_at: datetime | None = None,
    ) -> None:
        await conn.execute(
            insert(alerts).values(
                key=alert.key,
                incident_id=incident_id,
                alertname=bounded(alert.labels.get("alertname", "alert"), 200),
                status=status,
                resolved_at=at if status == AlertStatus.RESOLVED else None,
                severity=severity,
                labels=dict(alert.labels),
                annotations=dict(alert.annotations),
                starts_at=(starts_at or alert.startsAt).isoformat(),
                generator_url=alert.generatorURL,
                first_seen=at,
                last_seen=at,
            )
        )

    async def _firing_count(self, conn: AsyncConnection, incident_id: int) -> int:
        query = select(func.count()).where(alerts.c.incident_id == incident_id, alerts.c.status == AlertStatus.FIRING)
        return int((await conn.execute(query)).scalar_one())

    async def _notify_open(
        self, conn: AsyncConnection, incident_id: int, at: float, adopted: list[IncidentRow]
    ) -> None:
        """Page and post the card of a new root incident. With ``adopted`` children (opened before
        it), their most urgent severity is its own, it takes over the first paged child's
        ``dedup_key`` (PagerDuty sees an update of the page already out, not a new page) and the
        children's cards in channels where it has none (edited into its own card)."""
        incident = await self._incident(conn, incident_id)
        severity = incident.severity
        for child in adopted:
            severity = _more_urgent(child.severity, severity)
        receivers = self._receivers(incident_labels({**incident.labels, "severity": severity}))
        paged = [c for c in adopted if await self._paged(conn, c.id)]
        dedup_key = incident.dedup_key
        if paged:
            dedup_key = paged[0].dedup_key
            receivers = receivers.including(IncidentReceivers(pagerduty=paged[0].receivers.pagerduty))
            await self._event(conn, incident_id, at, EventKind.PAGE_ADOPTED, f"Took over the page of #{paged[0].id}.")
        await conn.execute(
            update(incidents)
            .where(incidents.c.id == incident_id)
            .values(severity=severity, receivers=receivers.to_json(), dedup_key=dedup_key)
        )
        for child in adopted:
            # What the child has not sent yet, it never will: its root says it now (a card not yet
            # posted, a page not yet out: the root's own page replaces it).
            await conn.execute(
                delete(outbox).where(
                    outbox.c.incident_id == child.id,
                    outbox.c.status == DeliveryStatus.PENDING,
                    outbox.c.claimed_by.is_(None),
                )
            )
            for channel in await fetch_slack_cards(conn, slack_cards.c.incident_id == child.id):
                if channel in receivers.slack and not await self._has_card(conn, incident_id, channel):
                    await conn.execute(
                        update(slack_cards)
                        .where(slack_cards.c.incident_id == child.id, slack_cards.c.channel == channel)
                        .values(incident_id=incident_id)
                    )
                else:  # the child's own card says where it went
                    await queue_card_refresh(conn, child.id, channel, at)
        for duplicate in paged[1:]:
            # One page per root cause: a second child's page is withdrawn, the root's stays. Queued
            # after the children's unsent items are dropped above: its page is out (or on its way).
            for ref in duplicate.receivers.pagerduty:
                await self._enqueue(conn, duplicate.id, Target.PAGERDUTY, Action.RESOLVE, ref, at)
            await self._event(
                conn,
                duplicate.id,
                at,
                EventKind.PAGE_WITHDRAWN,
                f"Its page is withdrawn: incident #{incident_id} holds one.",
            )
        for ref in receivers.pagerduty:
            await self._enqueue(conn, incident_id, Target.PAGERDUTY, Action.TRIGGER, ref, at)
        for channel in receivers.slack:
            await queue_card_refresh(conn, incident_id, channel, at)
        routes = ", ".join(receivers.routes)
        await self._event(conn, incident_id, at, EventKind.ROUTED, f"Routes: {routes or 'none'}.", receivers.to_json())
        await self._chart(conn, incident_id, at, "opened")

    async def _paged(self, conn: AsyncConnection, incident_id: int) -> bool:
        """Whether a PagerDuty trigger of the incident is out, or on its way (claimed)."""
        query = select(outbox.c.id).where(
            outbox.c.incident_id == incident_id,
            outbox.c.target == Target.PAGERDUTY,
            outbox.c.action == Action.TRIGGER,
            (outbox.c.status == DeliveryStatus.SENT)
            | ((outbox.c.status == DeliveryStatus.PENDING) & outbox.c.claimed_by.is_not(None)),
        )
        return (await conn.execute(query.limit(1))).first() is not None

    async def _has_card(self, conn: AsyncConnection, incident_id: int, channel: str) -> bool:
        query = select(slack_cards.c.ts).where(
            slack_cards.c.incident_id == incident_id, slack_cards.c.channel == channel
        )
        return (await conn.execute(query)).first() is not None

    async def _cards(self, conn: AsyncConnection, incident: IncidentRow, at: float) -> None:
        """Post or refresh the incident's Slack card in each of its channels."""
        for channel in incident.receivers.slack:
            await queue_card_refresh(conn, incident.id, channel, at)

    async def _chart(self, conn: AsyncConnection, incident_id: int, at: float, reason: str) -> None:
        """Queue the incident's chart, after its page and cards (queued first: the outbox delivers
        them before it draws, :mod:`.charts`)."""
        if self.config.charts:
            await self._enqueue(conn, incident_id, Target.CHART, Action.RENDER, "prometheus", at, {"reason": reason})

    async def _reply(self, conn: AsyncConnection, incident: IncidentRow, at: float, text: str) -> None:
        for channel in incident.receivers.slack:
            await self._enqueue(conn, incident.id, Target.SLACK, Action.REPLY, channel, at, {"text": text})

    async def _enqueue(
        self,
        conn: AsyncConnection,
        incident_id: int | None,
        target: Target,
        action: Action,
        destination: str,
        at: float,
        payload: JsonObject | None = None,
    ) -> None:
        await enqueue(conn, incident_id, target, action, destination, at, payload)

    async def _event(
        self,
        conn: AsyncConnection,
        incident_id: int,
        at: float,
        kind: EventKind,
        text: str,
        detail: JsonObject | None = None,
    ) -> None:
        await conn.execute(
            insert(events).values(incident_id=incident_id, at=at, kind=kind, text=text, detail=dict(detail or {}))
        )
