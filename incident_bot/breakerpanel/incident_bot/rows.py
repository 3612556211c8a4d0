"""The tables' rows as typed objects, read at the database boundary.

The engine and the outbox never handle SQLAlchemy rows: they read through the ``fetch_*``
functions here, which build these dataclasses, statuses and actions as their enums
(:mod:`.vocabulary`), JSON columns as what they hold. Writes stay SQLAlchemy Core statements, whose
values the enums already are (a StrEnum member is its string).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias, cast

from sqlalchemy import ColumnElement, RowMapping, select
from sqlalchemy.ext.asyncio import AsyncConnection

from .db import alerts, chart_uploads, charts, incidents, slack_cards
from .vocabulary import Action, AlertStatus, IncidentStatus, Target

__all__ = [
    "AlertRow",
    "ChartRow",
    "IncidentReceivers",
    "IncidentRow",
    "Item",
    "Json",
    "JsonObject",
    "Labels",
    "SlackCard",
    "fetch_alert",
    "fetch_alerts",
    "fetch_chart",
    "fetch_charts",
    "fetch_incident",
    "fetch_incidents",
    "fetch_slack_cards",
]

#: A JSON value, as the JSON columns (payloads, timeline details) hold them.
Json: TypeAlias = "str | int | float | bool | list[Json] | dict[str, Json] | None"
JsonObject: TypeAlias = "dict[str, Json]"
#: An alert's labels or annotations: names to text (Alertmanager's model guarantees both).
Labels: TypeAlias = dict[str, str]
#: A condition of a query's WHERE clause.
Where: TypeAlias = ColumnElement[bool]


@dataclass(frozen=True, slots=True)
class IncidentReceivers:
    """Where an incident's notifications go (``incidents.receivers``): the routes that matched,
    PagerDuty routing-key references (``env:NAME``, ``file:PATH``: never a secret) and Slack
    channels, each in the order they were added."""

    routes: tuple[str, ...] = ()
    pagerduty: tuple[str, ...] = ()
    slack: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, value: object) -> IncidentReceivers:
        """The stored JSON (``{"routes": [...], "pagerduty": [...], "slack": [...]}``); a missing
        list is empty."""
        stored = value if isinstance(value, Mapping) else {}
        return cls(*(_texts(stored.get(name)) for name in ("routes", "pagerduty", "slack")))

    def to_json(self) -> JsonObject:
        return {"routes": list(self.routes), "pagerduty": list(self.pagerduty), "slack": list(self.slack)}

    def including(self, other: IncidentReceivers) -> IncidentReceivers:
        """These receivers, then those of ``other`` that are not among them yet."""
        return IncidentReceivers(
            routes=_union(self.routes, other.routes),
            pagerduty=_union(self.pagerduty, other.pagerduty),
            slack=_union(self.slack, other.slack),
        )


@dataclass(frozen=True, slots=True)
class IncidentRow:
    """A row of ``incidents``."""

    id: int
    identity: str
    title: str
    dedup_key: str
    status: IncidentStatus
    severity: str
    labels: Labels
    annotations: Labels
    receivers: IncidentReceivers
    parent_id: int | None
    opened_at: float
    updated_at: float
    #: When its last firing alert resolved; it resolves after ``resolve_after`` more of quiet.
    quiet_since: float | None
    resolved_at: float | None
    flaps: int
    acknowledged_by: str | None
    resolved_by: str | None

    @classmethod
    def from_mapping(cls, row: RowMapping) -> IncidentRow:
        return cls(
            id=int(row["id"]),
            identity=str(row["identity"]),
            title=str(row["title"]),
            dedup_key=str(row["dedup_key"]),
            status=IncidentStatus(row["status"]),
            severity=str(row["severity"]),
            labels=_labels(row["labels"]),
            annotations=_labels(row["annotations"]),
            receivers=IncidentReceivers.from_json(row["receivers"]),
            parent_id=_int_or_none(row["parent_id"]),
            opened_at=float(row["opened_at"]),
            updated_at=float(row["updated_at"]),
            quiet_since=_float_or_none(row["quiet_since"]),
            resolved_at=_float_or_none(row["resolved_at"]),
            flaps=int(row["flaps"]),
            acknowledged_by=_str_or_none(row["acknowledged_by"]),
            resolved_by=_str_or_none(row["resolved_by"]),
        )


@dataclass(frozen=True, slots=True)
class AlertRow:
    """A row of ``alerts``: one firing episode of one alert (its fingerprint and ``startsAt``)."""

    key: str
    #: None for a change (a manual breaker state): recorded, never an incident.
    incident_id: int | None
    alertname: str
    status: AlertStatus
    severity: str
    labels: Labels
    annotations: Labels
    #: ``startsAt`` as ISO 8601 text (it orders episodes).
    starts_at: str
    generator_url: str
    first_seen: float
    last_seen: float
    resolved_at: float | None

    @classmethod
    def from_mapping(cls, row: RowMapping) -> AlertRow:
        return cls(
            key=str(row["key"]),
            incident_id=_int_or_none(row["incident_id"]),
            alertname=str(row["alertname"]),
            status=AlertStatus(row["status"]),
            severity=str(row["severity"]),
            labels=_labels(row["labels"]),
            annotations=_labels(row["annotations"]),
            starts_at=str(row["starts_at"]),
            generator_url=str(row["generator_url"] or ""),
            first_seen=float(row["first_seen"]),
            last_seen=float(row["last_seen"]),
            resolved_at=_float_or_none(row["resolved_at"]),
        )


@dataclass(frozen=True, slots=True)
class SlackCard:
    """Where an incident's card was posted in one channel (``slack_cards``): the channel id Slack
    answered with, and the card's ``ts`` (the parent of its thread)."""

    channel_id: str
    ts: str


@dataclass(frozen=True, slots=True)
class ChartRow:
    """A row of ``charts``; ``png`` and ``svg`` are read only when asked for (they weigh tens of KB)."""

    id: int
    incident_id: int
    version: int
    reason: str
    created_at: float
    range_start: float
    range_end: float
    render_seconds: float
    png: bytes = b""
    svg: str = ""
    #: Slack file ids by channel (as routed), where it was uploaded.
    uploads: tuple[tuple[str, str], ...] = ()

    @property
    def minutes(self) -> int:
        return round((self.range_end - self.range_start) / 60)

    def file_in(self, channel: str) -> str | None:
        return next((file_id for name, file_id in self.uploads if name == channel), None)


@dataclass
class Item:
    """One outbox row, as the worker claimed it."""

    id: int
    #: None for a change notification (a manual breaker state), which belongs to no incident.
    incident_id: int | None
    target: Target
    action: Action
    #: A routing-key reference or a Slack channel.
    destination: str
    payload: JsonObject
    attempts: int
    created_at: float
    #: When this replica's claim on the row runs out, unless renewed (the worker's clock).
    claimed_until: float = 0.0

    @classmethod
    def from_mapping(cls, row: RowMapping, *, claimed_until: float) -> Item:
        return cls(
            id=int(row["id"]),
            incident_id=_int_or_none(row["incident_id"]),
            target=Target(row["target"]),
            action=Action(row["action"]),
            destination=str(row["destination"]),
            payload=_json_object(row["payload"]),
            attempts=int(row["attempts"]),
            created_at=float(row["created_at"]),
            claimed_until=claimed_until,
        )


# ---------------------------------------------------------------------- reading


async def fetch_incident(conn: AsyncConnection, *where: Where, for_update: bool = False) -> IncidentRow | None:
    """The first incident (by id) that matches, locked for the transaction with ``for_update``
    (PostgreSQL; SQLite has one writer anyway and ignores it)."""
    query = select(incidents).where(*where).order_by(incidents.c.id).limit(1)
    if for_update:
        query = query.with_for_update()
    row = (await conn.execute(query)).mappings().first()
    return None if row is None else IncidentRow.from_mapping(row)


async def fetch_incidents(
    conn: AsyncConnection, *where: Where, order_by: ColumnElement[float] | ColumnElement[int] = incidents.c.id
) -> list[IncidentRow]:
    query = select(incidents).where(*where).order_by(order_by)
    return [IncidentRow.from_mapping(row) for row in (await conn.execute(query)).mappings()]


async def fetch_alert(
    conn: AsyncConnection, *where: Where, newest_first: Sequence[ColumnElement[str] | ColumnElement[float]] = ()
) -> AlertRow | None:
    """The first alert that matches, in the order of ``newest_first`` (descending)."""
    query = select(alerts).where(*where).order_by(*(column.desc() for column in newest_first)).limit(1)
    row = (await conn.execute(query)).mappings().first()
    return None if row is None else AlertRow.from_mapping(row)


async def fetch_alerts(conn: AsyncConnection, *where: Where) -> list[AlertRow]:
    """The alerts that match, first seen first."""
    query = select(alerts).where(*where).order_by(alerts.c.first_seen, alerts.c.key)
    return [AlertRow.from_mapping(row) for row in (await conn.execute(query)).mappings()]


async def fetch_slack_cards(conn: AsyncConnection, *where: Where) -> dict[str, SlackCard]:
    """The cards that match, by the channel they were posted to (as routed: ``#incidents``)."""
    query = select(slack_cards).where(*where)
    return {
        str(row["channel"]): SlackCard(channel_id=str(row["channel_id"]), ts=str(row["ts"]))
        for row in (await conn.execute(query)).mappings()
    }


_CHART_META = (
    charts.c.id,
    charts.c.incident_id,
    charts.c.version,
    charts.c.reason,
    charts.c.created_at,
    charts.c.range_start,
    charts.c.range_end,
    charts.c.render_seconds,
)


async def fetch_charts(conn: AsyncConnection, *where: Where) -> list[ChartRow]:
    """The charts that match, oldest first, without their files, with where Slack holds them."""
    rows = (await conn.execute(select(*_CHART_META).where(*where).order_by(charts.c.id))).mappings().all()
    ids = [int(row["id"]) for row in rows]
    uploads: dict[int, list[tuple[str, str]]] = {}
    if ids:
        query = select(chart_uploads).where(chart_uploads.c.chart_id.in_(ids)).order_by(chart_uploads.c.channel)
        for upload in (await conn.execute(query)).mappings():
            uploads.setdefault(int(upload["chart_id"]), []).append((str(upload["channel"]), str(upload["file_id"])))
    return [_chart(row, uploads=tuple(uploads.get(int(row["id"]), ()))) for row in rows]


async def fetch_chart(conn: AsyncConnection, chart_id: int, *, png: bool = False, svg: bool = False) -> ChartRow | None:
    """One chart, with its PNG and SVG when asked for."""
    columns = [*_CHART_META, *([charts.c.png] if png else []), *([charts.c.svg] if svg else [])]
    row = (await conn.execute(select(*columns).where(charts.c.id == chart_id))).mappings().first()
    if row is None:
        return None
    return _chart(row, png=bytes(row["png"]) if png else b"", svg=str(row["svg"]) if svg else "")


def _chart(row: RowMapping, *, png: bytes = b"", svg: str = "", uploads: tuple[tuple[str, str], ...] = ()) -> ChartRow:
    return ChartRow(
        id=int(row["id"]),
        incident_id=int(row["incident_id"]),
        version=int(row["version"]),
        reason=str(row["reason"]),
        created_at=float(row["created_at"]),
        range_start=float(row["range_start"]),
        range_end=float(row["range_end"]),
        render_seconds=float(row["render_seconds"]),
        png=png,
        svg=svg,
        uploads=uploads,
    )


# ---------------------------------------------------------------------- JSON columns and NULLs


def _labels(value: object) -> Labels:
    """Labels as stored: written from Alertmanager's model, text to text; anything else is text too."""
    if not isinstance(value, Mapping):
        return {}
    return {str(name): str(text) for name, text in value.items()}


def _texts(value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        return ()
    return tuple(str(text) for text in value)


def _json_object(value: object) -> JsonObject:
    # The JSON column hands back what json.loads made of what we stored: JSON all the way down.
    return cast(JsonObject, dict(value)) if isinstance(value, Mapping) else {}


def _union(first: Iterable[str], second: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*first, *second]))


def _int_or_none(value: int | None) -> int | None:
    return None if value is None else int(value)


def _float_or_none(value: float | None) -> float | None:
    return None if value is None else float(value)


def _str_or_none(value: str | None) -> str | None:
    return None if value is None else str(value)
