"""The chart job: an outbox item (target ``chart``, action ``render``) that draws an incident's chart.

The engine queues it after the page and the cards when an incident opens, becomes more urgent or
resolves; a worker of its own claims it once those have been tried (:meth:`OutboxWorker._claim`),
so drawing never delays a page. This sender reads the breaker's last minutes from Prometheus
(:mod:`.chart_data`), draws them in a process of their own (:mod:`.drawing`), stores the chart
(``charts``: its signed URLs keep working across restarts and replicas) and, in the same
transaction, queues its posts: the upload into each of the incident's Slack channels, and an event
with the chart as its image to each of its PagerDuty routing keys, but not on resolve (a trigger
after the resolve would open a new PagerDuty alert).

Without a chart the incident carries on: when Prometheus is unreachable or has no series of the
breaker, the timeline says so and the job ends there. It is not retried: a chart drawn minutes late
shows no more than the next one will.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from .chart_data import ChartData, ChartUnavailable, fetch_chart_data
from .chart_render import RenderedChart
from .db import Database, charts, enqueue, events, incidents, now
from .delivery import Delivered, DeliveryError, IncidentView, Item
from .drawing import DrawingProcess
from .metrics import BotMetrics
from .prometheus import PrometheusReader
from .rows import fetch_incident
from .vocabulary import Action, EventKind, IncidentStatus, Target

__all__ = ["RESOLVED", "ChartSender"]

logger = logging.getLogger("breakerpanel.incident_bot.charts")

#: The reason a chart job carries when its incident resolved (no PagerDuty image then).
RESOLVED = "resolved"


class ChartSender:
    """Draws and stores the chart of a ``render`` item's incident over the last ``span`` seconds."""

    target = Target.CHART
    #: Drawing sends nothing anywhere: a dry run draws and stores charts as well (its posts are the dry ones).
    dry_run = False

    def __init__(
        self,
        db: Database,
        prometheus: PrometheusReader,
        *,
        span: float,
        metrics: BotMetrics,
        request_timeout: float = 5.0,
        clock: Callable[[], float] = now,
    ) -> None:
        self.db = db
        self.prometheus = prometheus
        self.span = span
        self.metrics = metrics
        self.request_timeout = request_timeout
        self.clock = clock
        self.drawing = DrawingProcess()

    def warm_up(self) -> None:
        """Start the drawing process in the background: the first chart then does not pay for it
        (about two seconds) while an incident is being paged."""
        self.drawing.warm_up()

    def destination_configured(self, destination: str) -> bool:
        return True

    async def close(self) -> None:
        # The Prometheus reader is the bot's: it closes it. A chart being drawn is finished first.
        await self.drawing.close()

    async def send(self, item: Item, incident: IncidentView | None) -> Delivered:
        if incident is None or item.action != Action.RENDER:
            raise DeliveryError(f"a chart {item.action} needs its incident and action render", retryable=False)
        reason = str(item.payload.get("reason") or "changed")
        at = self.clock()
        marks = [(incident.opened_at, f"#{incident.id} opened")]
        if incident.resolved_at is not None:
            marks.append((incident.resolved_at, "resolved"))
        title = f"#{incident.id} {incident.title}: the last {round(self.span / 60)} min"
        try:
            data = await fetch_chart_data(
                self.prometheus, incident.labels, end=at, span=self.span, request_timeout=self.request_timeout
            )
            rendered = await self.drawing.draw(data, title=title, marks=marks)
        except ChartUnavailable as exc:
            self.metrics.charts.labels("unavailable").inc()
            await self._no_chart(item, incident.id, at, str(exc))
            return Delivered(f"no chart: {exc}")
        self.metrics.charts.labels("drawn").inc()
        self.metrics.chart_render.observe(rendered.seconds)
        return await self._store(item, incident.id, reason, at, data, rendered)

    async def _no_chart(self, item: Item, incident_id: int, at: float, why: str) -> None:
        logger.warning("no chart for incident %s: %s", incident_id, why)
        async with self.db.transaction() as conn:
            await conn.execute(
                events.insert().values(
                    incident_id=incident_id,
                    at=at,
                    kind=EventKind.NO_CHART,
                    text=f"No chart this time: {why}.",
                    detail={"outbox": item.id},
                )
            )

    async def _store(
        self, item: Item, incident_id: int, reason: str, at: float, data: ChartData, rendered: RenderedChart
    ) -> Delivered:
        try:
            async with self.db.transaction() as conn:
                stored = await conn.execute(select(charts.c.id).where(charts.c.outbox_id == item.id))
                if (already := stored.scalar()) is not None:
                    return Delivered(f"chart #{already} was stored already")
                latest = await conn.execute(
                    select(func.coalesce(func.max(charts.c.version), 0)).where(charts.c.incident_id == incident_id)
                )
                version = int(latest.scalar_one()) + 1
                inserted = await conn.execute(
                    charts.insert()
                    .values(
                        incident_id=incident_id,
                        outbox_id=item.id,
                        version=version,
                        reason=reason,
                        created_at=at,
                        range_start=data.start,
                        range_end=data.end,
                        png=rendered.png,
                        svg=rendered.svg,
                        render_seconds=rendered.seconds,
                    )
                    .returning(charts.c.id)
                )
                chart_id = int(inserted.scalar_one())
                incident = await fetch_incident(conn, incidents.c.id == incident_id)
                posts = 0
                if incident is not None:
                    for channel in incident.receivers.slack:
                        await enqueue(conn, incident_id, Target.SLACK, Action.CHART, channel, at, {"chart": chart_id})
                        posts += 1
                    if reason != RESOLVED and incident.status != IncidentStatus.RESOLVED:
                        for ref in incident.receivers.pagerduty:
                            payload = {"chart": chart_id}
                            await enqueue(conn, incident_id, Target.PAGERDUTY, Action.CHART, ref, at, payload)
                            posts += 1
                text = (
                    f"Chart v{version} drawn ({reason}): {data.breaker} over the last {round(self.span / 60)} min "
                    f"from Prometheus, in {rendered.seconds:.2f}s; {posts} post(s) queued."
                )
                detail = {"chart": chart_id, "version": version, "render_seconds": round(rendered.seconds, 3)}
                await conn.execute(
                    events.insert().values(
                        incident_id=incident_id, at=at, kind=EventKind.CHART, text=text, detail=detail
                    )
                )
        except IntegrityError:  # another replica stored this item's chart between our check and insert
            return Delivered("chart stored by another replica")
        return Delivered(f"chart #{chart_id} v{version}: {len(rendered.png)} B PNG, {rendered.seconds:.2f}s")
