"""Storage: SQLite (WAL) for one replica, PostgreSQL for several; SQLAlchemy Core over both.

Tables:

- ``webhooks``: every accepted webhook, raw, stored (and committed) before Alertmanager gets its
  2xx; unique on the notification's dedupe key, so a duplicate is recognised and changes nothing.
  The processor turns them into incident changes, in order, and marks them processed.
- ``alerts``: one row per firing episode of an alert (fingerprint and start), pointing at the
  incident it belongs to; once resolved it stays resolved, whatever arrives late.
- ``incidents``: one per breaker trouble, with its lifecycle; ``events``: its timeline.
- ``outbox``: notifications to deliver (PagerDuty events, Slack cards and replies), written in the
  same transaction as the incident change that causes them, claimed by one replica at a time.
- ``slack_cards``: where each incident's card was posted, to update it and reply in its thread.
- ``charts``: each chart drawn of an incident (PNG and SVG), so that its signed URLs keep working
  across restarts and replicas; ``chart_uploads``: where Slack holds each (the file its card shows).

Nothing finished is kept forever: :class:`Retention` deletes, past ``INCIDENT_BOT_RETENTION``,
processed webhooks, resolved incidents with their alerts, timeline, cards, charts and deliveries, and sent
or dead deliveries, in small batches. A live incident, a pending delivery, an unprocessed webhook
or an alert still firing is never deleted, however old.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Select,
    String,
    Table,
    Text,
    delete,
    event,
    exists,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from .vocabulary import Action, AlertStatus, DeliveryStatus, IncidentStatus, Target

__all__ = [
    "Database",
    "Pruned",
    "Retention",
    "alerts",
    "chart_uploads",
    "charts",
    "enqueue",
    "events",
    "incidents",
    "metadata",
    "outbox",
    "slack_cards",
    "webhooks",
]

metadata = MetaData()

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dedupe_key", String(64), nullable=False, unique=True),
    Column("received_at", Float, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("processed_at", Float, nullable=True),
    Column("error", Text, nullable=True),
)
Index(
    "ix_webhooks_unprocessed",
    webhooks.c.id,
    sqlite_where=webhooks.c.processed_at.is_(None),
    postgresql_where=webhooks.c.processed_at.is_(None),
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("identity", String(400), nullable=False),
    Column("title", String(400), nullable=False),
    Column("dedup_key", String(255), nullable=False),
    #: IncidentStatus: open | acknowledged | resolved | attached (folded under a parent's incident, no page)
    Column("status", String(16), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    #: {"routes": [...], "pagerduty": ["env:NAME", ...], "slack": ["#channel", ...]}
    Column("receivers", JSON, nullable=False),
    Column("parent_id", Integer, ForeignKey("incidents.id"), nullable=True),
    Column("opened_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    #: When its last firing alert resolved; it resolves after `resolve_after` more of quiet.
    Column("quiet_since", Float, nullable=True),
    Column("resolved_at", Float, nullable=True),
    Column("flaps", Integer, nullable=False, default=0),
    Column("acknowledged_by", String(200), nullable=True),
    Column("resolved_by", String(200), nullable=True),
)
Index("ix_incidents_parent", incidents.c.parent_id)
# One live incident per subject: a second webhook for it joins the first.
Index(
    "uq_incidents_live_identity",
    incidents.c.identity,
    unique=True,
    sqlite_where=incidents.c.status != IncidentStatus.RESOLVED.value,
    postgresql_where=incidents.c.status != IncidentStatus.RESOLVED.value,
)

alerts = Table(
    "alerts",
    metadata,
    Column("key", String(120), primary_key=True),
    #: None for a change (a manual breaker state): recorded, never an incident.
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=True, index=True),
    Column("alertname", String(200), nullable=False),
    #: AlertStatus: firing | resolved
    Column("status", String(16), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("starts_at", String(40), nullable=False),
    Column("generator_url", Text, nullable=False, default=""),
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("resolved_at", Float, nullable=True),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=False, index=True),
    Column("at", Float, nullable=False),
    Column("kind", String(40), nullable=False),
    Column("text", Text, nullable=False),
    Column("detail", JSON, nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    #: None for a change notification, which belongs to no incident
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=True),
    #: Target: pagerduty | slack
    Column("target", String(16), nullable=False),
    #: Action: for pagerduty trigger | acknowledge | resolve | change; for slack card | reply | message
    Column("action", String(16), nullable=False),
    #: a routing-key reference (env:NAME, file:PATH) or a Slack channel: never a secret
    Column("destination", String(300), nullable=False),
    Column("payload", JSON, nullable=False),
    #: DeliveryStatus: pending | sent | dead
    Column("status", String(8), nullable=False, default=DeliveryStatus.PENDING.value),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("claimed_by", String(200), nullable=True),
    Column("claimed_until", Float, nullable=True),
    Column("sent_at", Float, nullable=True),
    Column("sent_by", String(200), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("dry_run", Boolean, nullable=False, default=False),
)
Index(
    "ix_outbox_pending",
    outbox.c.next_attempt_at,
    sqlite_where=outbox.c.status == DeliveryStatus.PENDING.value,
    postgresql_where=outbox.c.status == DeliveryStatus.PENDING.value,
)
Index("ix_outbox_incident_target", outbox.c.incident_id, outbox.c.target, outbox.c.destination, outbox.c.id)

slack_cards = Table(
    "slack_cards",
    metadata,
    Column("incident_id", Integer, ForeignKey("incidents.id"), primary_key=True),
    Column("channel", String(100), primary_key=True),
    #: the channel id Slack answered with, and the card's ts (the thread's parent)
    Column("channel_id", String(100), nullable=False),
    Column("ts", String(40), nullable=False),
)

charts = Table(
    "charts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=False, index=True),
    #: The outbox item that drew it: drawn again (a claim lost mid-way), it is stored once.
    Column("outbox_id", Integer, nullable=False, unique=True),
    #: 1, 2, ... per incident, in the order drawn.
    Column("version", Integer, nullable=False),
    #: Why it was drawn: opened | raised | resolved
    Column("reason", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    #: The range it covers (Unix seconds).
    Column("range_start", Float, nullable=False),
    Column("range_end", Float, nullable=False),
    Column("png", LargeBinary, nullable=False),
    Column("svg", Text, nullable=False),
    Column("render_seconds", Float, nullable=False),
)

chart_uploads = Table(
    "chart_uploads",
    metadata,
    Column("chart_id", Integer, ForeignKey("charts.id"), primary_key=True),
    #: the channel as routed (#incidents), as in slack_cards
    Column("channel", String(100), primary_key=True),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=False, index=True),
    #: Slack's file id: the card's image block shows it
    Column("file_id", String(40), nullable=False),
    Column("uploaded_at", Float, nullable=False),
)


class Database:
    """The engine, created tables, and what differs between SQLite and PostgreSQL."""

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self.url = make_url(url)
        self.is_postgres = self.url.get_backend_name() == "postgresql"
        if self.is_postgres:
            # Each replica holds up to twice ``pool_size`` connections: size it against the
            # server's max_connections divided by the replicas.
            self.engine: AsyncEngine = create_async_engine(
                url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )
        else:
            # One connection for the process: SQLite has one writer anyway, and a second connection
            # could not upgrade a read to a write while the first commits (SQLITE_BUSY). Transactions
            # are short and none is held across a network call, so sharing it costs little. Several
            # replicas need PostgreSQL.
            self.engine = create_async_engine(
                url, pool_size=1, max_overflow=0, pool_timeout=60, connect_args={"timeout": 30}
            )
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)

    def insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        """An INSERT in this database's dialect: both have ``on_conflict_do_nothing``."""
        return postgresql.insert(table) if self.is_postgres else sqlite.insert(table)

    async def create(self) -> None:
        """Create missing tables (several replicas may race here: creation is idempotent)."""
        async with self.engine.begin() as conn:
            if self.is_postgres:
                # Serialise concurrent starts: CREATE TABLE IF NOT EXISTS races on the catalog.
                await conn.execute(text("SELECT pg_advisory_xact_lock(7462001)"))
            await conn.run_sync(metadata.create_all, checkfirst=True)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    async def lock_processing(self, conn: AsyncConnection) -> bool:
        """Take the processing lock for this transaction: one replica turns webhooks into incident
        changes at a time, in order. False when another replica holds it (PostgreSQL)."""
        if not self.is_postgres:
            return True  # one process, one connection: already serialised
        result = await conn.execute(text("SELECT pg_try_advisory_xact_lock(7462002)"))
        return bool(result.scalar())

    async def dispose(self) -> None:
        await self.engine.dispose()


@dataclass
class Pruned:
    """Rows deleted, by table; ``done`` is False when pruning stopped before the end (another
    replica held the processing lock): the rest is due soon."""

    webhooks: int = 0
    outbox: int = 0
    alerts: int = 0
    incidents: int = 0
    events: int = 0
    slack_cards: int = 0
    chart_uploads: int = 0
    charts: int = 0
    done: bool = True

    def __iadd__(self, other: Pruned) -> Pruned:
        for table in self.counts():
            setattr(self, table, getattr(self, table) + getattr(other, table))
        self.done = self.done and other.done
        return self

    def counts(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "done"}


class Retention:
    """Deletes what is finished and older than ``keep`` seconds.

    Each step deletes at most ``batch`` rows of one kind in one short transaction, taken under the
    processing lock (so it never races the engine, and on PostgreSQL only one replica prunes at a
    time), and :meth:`prune` yields between steps: intake's commits and reads slip in between, and
    the database is never held for long, however much is due.

    Finished, older than ``keep``: a processed webhook (by when it was processed); a sent or dead
    delivery (by when it was sent, or made); an alert resolved, about no incident (a manual state
    that ended); a resolved incident (by when it resolved) whose alerts all resolved and whose
    deliveries are all done, with its alerts, timeline, cards, charts and deliveries. A live incident, a
    pending delivery, an unprocessed webhook and an alert still firing are kept whatever their age.
    """

    def __init__(
        self, db: Database, keep: float, *, batch: int = 500, clock: Callable[[], float] | None = None
    ) -> None:
        self.db = db
        self.keep = keep
        self.batch = batch
        self.clock = clock or now

    async def prune(self) -> Pruned:
        """Delete everything due, batch by batch; returns what was deleted."""
        total = Pruned()
        cutoff = self.clock() - self.keep
        for step in (self._webhooks, self._deliveries, self._ended_changes, self._incidents):
            while True:
                async with self.db.transaction() as conn:
                    if not await self.db.lock_processing(conn):
                        total.done = False  # another replica is at work: the rest next time
                        return total
                    pruned, full = await step(conn, cutoff)
                total += pruned
                await asyncio.sleep(0)  # let the intake's commits in between two batches
                if not full:
                    break
        return total

    async def _webhooks(self, conn: AsyncConnection, cutoff: float) -> tuple[Pruned, bool]:
        # Webhooks are processed in the order they came (by id): the oldest are first, and the
        # first one not due ends the search (no scan of the whole table for nothing).
        oldest = select(webhooks.c.id, webhooks.c.processed_at).order_by(webhooks.c.id).limit(self.batch)
        due: list[int] = []
        for row in await conn.execute(oldest):
            if row.processed_at is None or row.processed_at >= cutoff:
                break
            due.append(row.id)
        if due:
            await conn.execute(delete(webhooks).where(webhooks.c.id.in_(due)))
        return Pruned(webhooks=len(due)), len(due) == self.batch

    async def _deliveries(self, conn: AsyncConnection, cutoff: float) -> tuple[Pruned, bool]:
        done_before = func.coalesce(outbox.c.sent_at, outbox.c.created_at) < cutoff
        due = (
            select(outbox.c.id)
            .where(outbox.c.status != DeliveryStatus.PENDING, done_before)
            .order_by(outbox.c.id)
            .limit(self.batch)
        )
        count = await self._delete_ids(conn, outbox.c.id, due)
        return Pruned(outbox=count), count == self.batch

    async def _ended_changes(self, conn: AsyncConnection, cutoff: float) -> tuple[Pruned, bool]:
        due = (
            select(alerts.c.key)
            .where(
                alerts.c.incident_id.is_(None), alerts.c.status == AlertStatus.RESOLVED, alerts.c.resolved_at < cutoff
            )
            .limit(self.batch)
        )
        count = await self._delete_ids(conn, alerts.c.key, due)
        return Pruned(alerts=count), count == self.batch

    async def _incidents(self, conn: AsyncConnection, cutoff: float) -> tuple[Pruned, bool]:
        child = incidents.alias("child")
        due = (
            select(incidents.c.id)
            .where(
                incidents.c.status == IncidentStatus.RESOLVED,
                incidents.c.resolved_at < cutoff,
                ~exists().where(alerts.c.incident_id == incidents.c.id, alerts.c.status != AlertStatus.RESOLVED),
                ~exists().where(outbox.c.incident_id == incidents.c.id, outbox.c.status == DeliveryStatus.PENDING),
                ~exists().where(child.c.parent_id == incidents.c.id, child.c.status != IncidentStatus.RESOLVED),
            )
            .order_by(incidents.c.id)
            .limit(self.batch)
        )
        ids = list((await conn.execute(due)).scalars())
        if not ids:
            return Pruned(), False
        # Resolved children outlive a parent pruned first (they resolved later): they lose the link.
        await conn.execute(update(incidents).where(incidents.c.parent_id.in_(ids)).values(parent_id=None))
        pruned = Pruned(incidents=len(ids))
        owned = (
            (events, "events"),
            (slack_cards, "slack_cards"),
            (outbox, "outbox"),
            (alerts, "alerts"),
            (chart_uploads, "chart_uploads"),  # before the charts they refer to
            (charts, "charts"),
        )
        for table, name in owned:
            result = await conn.execute(delete(table).where(table.c.incident_id.in_(ids)))
            setattr(pruned, name, result.rowcount)
        await conn.execute(delete(incidents).where(incidents.c.id.in_(ids)))
        return pruned, len(ids) == self.batch

    @staticmethod
    async def _delete_ids(conn: AsyncConnection, key: Column[int] | Column[str], due: Select[int] | Select[str]) -> int:
        """Delete the rows whose ``key`` (a column of their table) ``due`` selects."""
        ids = list((await conn.execute(due)).scalars())
        if ids:
            await conn.execute(delete(key.table).where(key.in_(ids)))
        return len(ids)


async def enqueue(
    conn: AsyncConnection,
    incident_id: int | None,
    target: str,
    action: str,
    destination: str,
    at: float,
    payload: Mapping[str, object] | None = None,
) -> None:
    """Queue one notification in the outbox, due now (in the caller's transaction)."""
    await conn.execute(
        outbox.insert().values(
            incident_id=incident_id,
            target=target,
            action=action,
            destination=destination,
            payload=dict(payload or {}),
            status=DeliveryStatus.PENDING,
            attempts=0,
            created_at=at,
            next_attempt_at=at,
            dry_run=False,
        )
    )


async def queue_card_refresh(conn: AsyncConnection, incident_id: int, channel: str, at: float) -> None:
    """Queue a post or refresh of the incident's Slack card in ``channel``, unless one is waiting
    already: it renders the incident as it is when sent, so one pending refresh says everything (a
    burst of changes costs one message)."""
    waiting = await conn.execute(
        select(outbox.c.id)
        .where(
            outbox.c.incident_id == incident_id,
            outbox.c.target == Target.SLACK,
            outbox.c.destination == channel,
            outbox.c.action == Action.CARD,
            outbox.c.status == DeliveryStatus.PENDING,
            outbox.c.claimed_by.is_(None),
        )
        .limit(1)
    )
    if waiting.first() is None:
        await enqueue(conn, incident_id, Target.SLACK, Action.CARD, channel, at)


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer. FULL: a commit is on disk before the 2xx goes out.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def now() -> float:
    """Wall-clock seconds: stored times must mean the same on every replica."""
    return time.time()
