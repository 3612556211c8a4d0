"""The outbox worker: delivers notifications, once, in order, whatever fails meanwhile.

- **Claims.** A replica claims due items with row locks (``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL) and a lease (:attr:`Settings.claim_timeout`): another replica takes over the work of
  one that died. Completion checks the claim, so an expired claim cannot be completed twice.
- **Order.** Per incident and destination, an item waits for the earlier ones: a card is posted
  before its thread gets replies, a trigger goes out before its resolve.
- **Retries.** A retryable failure (429, 5xx, network) is tried again at once a few times
  (tenacity, with jitter, honouring ``Retry-After``), then rescheduled in the outbox with
  exponential backoff; a permanent one (400, unknown channel) goes to the dead letters, with the
  reason in the incident's timeline.
- **Pages first.** Charts (the job that draws one, target ``chart``, and its posts, action
  ``chart``) have a worker of their own (``only``), the others leave them alone (``skip``): a batch
  of pages is never held up by a chart being drawn or uploaded. A chart job waits until its
  incident's earlier pages and cards have been tried once (for :data:`CHART_YIELDS_FOR` at most):
  drawing never competes with a page (:mod:`.charts`).
- **Isolation.** Each target has its own circuit breaker (this project's), so while PagerDuty is
  down its items wait and Slack's still flow, and its own pacing (PagerDuty's 120 events a minute
  per routing key, Slack's one message a second per channel): a rate limiter of this project's
  guards, keyed by destination, whose refusal leaves the item for a later claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import tenacity
from sqlalchemy import RowMapping, and_, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from breakerpanel import (
    IGNORED,
    BreakerConfig,
    CircuitBreaker,
    CircuitOpenError,
    ExponentialBackoff,
    WindowType,
    rate_limited,
    when_exception,
)
from breakerpanel.guards import RateLimiter

from .chart_links import ChartFormat, ChartLinks
from .db import (
    Database,
    alerts,
    chart_uploads,
    charts,
    events,
    incidents,
    now,
    outbox,
    queue_card_refresh,
    slack_cards,
)
from .delivery import (
    AttachedIncident,
    BreakerFigures,
    ChartUpload,
    ChartView,
    Delivered,
    DeliveryError,
    FiringAlert,
    IncidentView,
    Sender,
)
from .enrich import Figures
from .incidents import SEVERITIES
from .metrics import BotMetrics
from .rows import (
    ChartRow,
    Item,
    fetch_alerts,
    fetch_chart,
    fetch_charts,
    fetch_incident,
    fetch_incidents,
    fetch_slack_cards,
)
from .tasks import cancel_when_idle
from .vocabulary import Action, AlertStatus, DeliveryStatus, EventKind, Target

__all__ = ["RESCHEDULE_BACKOFF", "OutboxWorker", "WorkerConfig", "reschedule_wait"]

logger = logging.getLogger("breakerpanel.incident_bot.outbox")

#: Waits longer than this are not spent holding a claim: the item goes back to the outbox.
QUICK_RETRY_MAX_WAIT = 5.0
#: The wait before an item's next attempt once the quick retries failed, by how many attempts
#: failed: exponential from 1 s, capped at an hour, and wholly random below that (jitter 1), so
#: that items which failed together (an outage) do not all come back at once.
RESCHEDULE_BACKOFF = ExponentialBackoff(initial=1.0, multiplier=2.0, maximum=3600.0, jitter=1.0)
#: A reschedule sooner than this would only cost a claim for nothing.
MIN_RESCHEDULE_WAIT = 0.5
#: How long a chart job waits for its incident's pages and cards to be tried first: no longer, so
#: that a target that cannot be tried (its breaker open) does not hold every chart back.
CHART_YIELDS_FOR = 30.0


def _breaker_for(target: Target) -> CircuitBreaker:
    def is_rate_limit(exc: BaseException) -> bool:
        return isinstance(exc, DeliveryError) and exc.status == 429

    def is_permanent(exc: BaseException) -> bool:
        return isinstance(exc, DeliveryError) and not exc.retryable

    classifier = when_exception(
        is_rate_limit, lambda exc: rate_limited(exc.retry_after if isinstance(exc, DeliveryError) else None)
    ) | when_exception(is_permanent, IGNORED)  # our bad request says nothing of their health
    config = BreakerConfig(
        sliding_window_type=WindowType.COUNT_BASED,
        sliding_window_size=10,
        minimum_calls=4,
        failure_rate_threshold=0.5,
        wait_in_open=ExponentialBackoff(initial=2.0, maximum=60.0),
        permitted_calls_in_half_open=1,
        classifier=classifier,
    )
    return CircuitBreaker(f"incident_bot.{target}", config)


@dataclass(frozen=True)
class WorkerConfig:
    replica_id: str
    claim_timeout: float
    quick_attempts: int
    max_backoff: float
    poll_interval: float
    public_url: str
    #: Signs the chart URLs PagerDuty events carry (None: charts go without a URL).
    chart_links: ChartLinks | None = None


class OutboxWorker:
    """Delivers the outbox. ``pacers`` hold each target's pace: a rate limiter whose keys are the
    target's destinations (a routing-key reference, a Slack channel); a target without one is not
    paced. ``only`` restricts the worker to items of those actions, ``skip`` leaves items of those
    actions to another worker: charts (drawing them, posting them) have one of their own, so that
    they never hold up the claim of the next page (a batch is claimed once the previous one is done)."""

    def __init__(
        self,
        db: Database,
        senders: Mapping[Target, Sender],
        config: WorkerConfig,
        *,
        pacers: Mapping[Target, RateLimiter],
        metrics: BotMetrics,
        figures: Figures | None = None,
        clock: Callable[[], float] = now,
        only: frozenset[Action] | None = None,
        skip: frozenset[Action] = frozenset(),
        name: str = "outbox-worker",
    ) -> None:
        self.db = db
        self.only = only
        self.skip = skip
        self.name = name
        self.senders = dict(senders)
        self.config = config
        self.pacers = dict(pacers)
        self.metrics = metrics
        self.figures = figures
        self.clock = clock
        self.breakers = {target: _breaker_for(target) for target in self.senders}
        self.wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._busy = asyncio.Lock()

    # ------------------------------------------------------------------ running

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            # Deliveries in flight finish first (a send is bounded by a third of the claim).
            await cancel_when_idle(self._task, self._busy, grace=self.config.claim_timeout)
            self._task = None
        await self.close()

    async def close(self) -> None:
        for sender in self.senders.values():
            await sender.close()

    async def run(self) -> None:
        last_gauges = 0.0
        while True:
            try:
                async with self._busy:
                    delivered = await self.drain_once()
                    if time.monotonic() - last_gauges > 5:
                        await self.update_gauges()
                        last_gauges = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away: keep trying, never die
                logger.exception("outbox worker pass failed")
                delivered = 0
                await asyncio.sleep(1.0)
            if not delivered:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.config.poll_interval)

    async def drain_once(self, limit: int = 32) -> int:
        """Claim and deliver one batch; returns how many items were attempted."""
        items = await self._claim(limit)
        if items:
            await asyncio.gather(*(self._deliver(item) for item in items))
        return len(items)

    async def update_gauges(self) -> None:
        async with self.db.transaction() as conn:
            rows = await conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status))
            counts: dict[str, int] = {str(status): int(count) for status, count in rows.all()}
        self.metrics.pending.set(counts.get(DeliveryStatus.PENDING, 0))
        self.metrics.dead.set(counts.get(DeliveryStatus.DEAD, 0))

    # ------------------------------------------------------------------ claiming

    async def _claim(self, limit: int) -> list[Item]:
        at = self.clock()
        open_targets = [t for t, b in self.breakers.items() if b.is_rejecting()]
        earlier = aliased(outbox)
        blocked_by_earlier = exists().where(
            and_(
                earlier.c.incident_id == outbox.c.incident_id,
                earlier.c.target == outbox.c.target,
                earlier.c.destination == outbox.c.destination,
                earlier.c.status == DeliveryStatus.PENDING,
                earlier.c.id < outbox.c.id,
            )
        )
        # Every incident of one breaker pages under the same dedup_key (one PagerDuty alert per
        # subject): an incident's late resolve (retried after a 503, or sent alongside in one
        # batch) would close the page of the breaker's next incident. PagerDuty's items of one
        # dedup_key and routing key go out in the order they were queued, whatever the incident.
        earlier_page, earlier_incident, this_incident = aliased(outbox), aliased(incidents), aliased(incidents)
        blocked_by_earlier_page = exists().where(
            and_(
                outbox.c.target == Target.PAGERDUTY,
                earlier_page.c.target == Target.PAGERDUTY,
                earlier_page.c.destination == outbox.c.destination,
                earlier_page.c.status == DeliveryStatus.PENDING,
                earlier_page.c.id < outbox.c.id,
                earlier_page.c.incident_id != outbox.c.incident_id,  # those: blocked_by_earlier
                earlier_incident.c.id == earlier_page.c.incident_id,
                this_incident.c.id == outbox.c.incident_id,
                earlier_incident.c.dedup_key == this_incident.c.dedup_key,
            )
        )
        untried = aliased(outbox)
        page_untried = exists().where(
            and_(
                untried.c.incident_id == outbox.c.incident_id,
                untried.c.target != Target.CHART,
                untried.c.status == DeliveryStatus.PENDING,
                untried.c.attempts == 0,
                untried.c.id < outbox.c.id,
                untried.c.created_at > at - CHART_YIELDS_FOR,
            )
        )
        query = (
            select(outbox)
            .where(
                outbox.c.status == DeliveryStatus.PENDING,
                outbox.c.next_attempt_at <= at,
                (outbox.c.claimed_until.is_(None)) | (outbox.c.claimed_until < at),
                ~blocked_by_earlier,
                ~blocked_by_earlier_page,
                # A chart waits for the page and cards queued before it to have been tried once.
                (outbox.c.target != Target.CHART) | ~page_untried,
            )
            .order_by(outbox.c.id)
            .limit(limit * 4)
        )
        if open_targets:
            query = query.where(outbox.c.target.not_in(open_targets))
        if self.skip:
            query = query.where(outbox.c.action.not_in(self.skip))
        if self.only is not None:
            query = query.where(outbox.c.action.in_(self.only))
        if self.db.is_postgres:
            query = query.with_for_update(skip_locked=True, of=outbox)
        claimed: list[Item] = []
        async with self.db.transaction() as conn:
            rows = (await conn.execute(query)).mappings().all()
            for row in rows:
                if len(claimed) >= limit:
                    break
                try:
                    item = Item.from_mapping(row, claimed_until=at + self.config.claim_timeout)
                except ValueError as exc:  # a target or action this version does not know (a newer one's)
                    await self._bury_unreadable(conn, row, exc)
                    continue
                pacer = self.pacers.get(item.target)
                if pacer is not None and not (await pacer.acquire(item.destination)).allowed:
                    continue  # this destination's pace is spent (nothing taken): a later claim
                claimed.append(item)
            if claimed:
                await conn.execute(
                    update(outbox)
                    .where(outbox.c.id.in_([i.id for i in claimed]))
                    .values(claimed_by=self.config.replica_id, claimed_until=at + self.config.claim_timeout)
                )
        return claimed

    async def _bury_unreadable(self, conn: AsyncConnection, row: RowMapping, exc: ValueError) -> None:
        """Dead-letter a row no sender here can take: claimed again and again, it would only fail again."""
        logger.error("outbox item %s cannot be delivered by this version: %s", row["id"], exc)
        await conn.execute(
            update(outbox)
            .where(outbox.c.id == row["id"])
            .values(status=DeliveryStatus.DEAD, last_error=f"not deliverable by this version: {exc}")
        )
        self.metrics.failed.labels(str(row["target"]), "dead").inc()

    # ------------------------------------------------------------------ delivering

    async def _deliver(self, item: Item) -> None:
        sender = self.senders.get(item.target)
        if sender is None:
            await self._finish(item, error=f"no sender for {item.target}", dead=True)
            return
        view = await self._view(item) if item.incident_id is not None else None
        if view is None and item.incident_id is not None:
            await self._finish(item, error=f"incident {item.incident_id} is gone", dead=True)
            return
        if item.action == Action.CARD and view is not None and view.card is not None and await self._superseded(item):
            # A later card refresh is queued: it will show the latest state; skip this one.
            await self._finish(item, delivered=Delivered("superseded by a later refresh"))
            return
        if item.action == Action.CHART and (view is None or view.chart is None):
            await self._finish(item, delivered=Delivered("not posted: its chart is gone"))
            return
        if item.action == Action.CHART and view is not None and view.chart is not None:
            newer = await self._newer_chart(view.id, view.chart.id)
            if newer is not None:
                # A later chart of the incident is drawn: its own post shows more; skip this one.
                await self._finish(item, delivered=Delivered(f"superseded by chart v{newer}"))
                return
        breaker = self.breakers[item.target]
        # A quick retry must fit in a claim: a longer Retry-After sends the item back to the outbox.
        longest_quick_wait = min(QUICK_RETRY_MAX_WAIT, self.config.claim_timeout / 3)
        # A send takes at most a third of the claim (the senders' timeout), and so does a wait:
        # renewed before each attempt, the claim outlasts the wait and the attempt after it.
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.config.quick_attempts),
            wait=lambda state: min(_wait_quick(state), self.config.claim_timeout / 3),
            retry=tenacity.retry_if_exception(
                lambda exc: (
                    isinstance(exc, DeliveryError)
                    and exc.retryable
                    and (exc.retry_after is None or exc.retry_after <= longest_quick_wait)
                )
            ),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    if not await self._keep_claim(item):
                        # Our lease ran out (a stall, a long retry): another replica may own the item
                        # now. Sending anyway could send it twice; leave it to the owner.
                        logger.warning("lost the claim on outbox item %s; leaving it to its new owner", item.id)
                        return
                    delivered = await breaker.acall(sender.send, item, view)
        except CircuitOpenError as exc:
            await self._finish(item, error=f"{item.target} breaker open", retry_after=exc.remaining or 5.0)
            return
        except DeliveryError as exc:
            if exc.retryable:
                await self._finish(item, error=str(exc), retry_after=exc.retry_after)
            else:
                await self._finish(item, error=str(exc), dead=True)
            return
        except Exception as exc:  # a bug in rendering: dead-letter it with the reason, never loop on it
            logger.exception("delivering outbox item %s failed", item.id)
            await self._finish(item, error=f"{type(exc).__name__}: {exc}", dead=True)
            return
        await self._finish(item, delivered=delivered)

    async def _keep_claim(self, item: Item) -> bool:
        """Make sure the claim outlasts one more attempt (a send is bounded by a third of the claim
        timeout): renew it when less than two thirds remain. False if the claim is no longer ours."""
        at = self.clock()
        if item.claimed_until - at > self.config.claim_timeout * 2 / 3:
            return True
        until = at + self.config.claim_timeout
        async with self.db.transaction() as conn:
            result = await conn.execute(
                update(outbox)
                .where(
                    outbox.c.id == item.id,
                    outbox.c.claimed_by == self.config.replica_id,
                    outbox.c.status == DeliveryStatus.PENDING,
                )
                .values(claimed_until=until)
            )
        if not result.rowcount:
            return False
        item.claimed_until = until
        return True

    async def _superseded(self, item: Item) -> bool:
        async with self.db.transaction() as conn:
            later = await conn.execute(
                select(outbox.c.id)
                .where(
                    outbox.c.incident_id == item.incident_id,
                    outbox.c.target == item.target,
                    outbox.c.destination == item.destination,
                    outbox.c.action == Action.CARD,
                    outbox.c.status == DeliveryStatus.PENDING,
                    outbox.c.id > item.id,
                )
                .limit(1)
            )
            return later.first() is not None

    async def _newer_chart(self, incident_id: int, chart_id: int) -> int | None:
        """The version of a chart of the incident drawn after ``chart_id``, if any."""
        async with self.db.transaction() as conn:
            newer = await conn.execute(
                select(func.max(charts.c.version)).where(charts.c.incident_id == incident_id, charts.c.id > chart_id)
            )
            version = newer.scalar()
        return None if version is None else int(version)

    async def _chart_view(self, conn: AsyncConnection, item: Item, incident_id: int) -> ChartView | None:
        """The chart a CHART item posts (with its PNG for an upload); for a Slack card, the latest
        chart uploaded to its channel (the card shows it)."""
        chart: ChartRow | None = None
        if item.action == Action.CHART:
            chart_id = item.payload.get("chart")
            if isinstance(chart_id, int):
                chart = await fetch_chart(conn, chart_id, png=item.target == Target.SLACK)
                if chart is not None and chart.incident_id != incident_id:
                    chart = None
            if chart is not None:  # where it is uploaded already (a retry after the upload)
                uploaded = await fetch_charts(conn, charts.c.id == chart.id)
                chart = replace(chart, uploads=uploaded[0].uploads) if uploaded else chart
        elif item.action == Action.CARD and item.target == Target.SLACK:
            uploaded = [
                c for c in await fetch_charts(conn, charts.c.incident_id == incident_id) if c.file_in(item.destination)
            ]
            chart = uploaded[-1] if uploaded else None
        if chart is None:
            return None
        links = self.config.chart_links
        return ChartView(
            id=chart.id,
            version=chart.version,
            reason=chart.reason,
            image_url=links.url(chart.id, ChartFormat.PNG, now=self.clock()) if links is not None else "",
            png=chart.png,
            slack_file_id=chart.file_in(item.destination),
            minutes=chart.minutes,
        )

    async def _view(self, item: Item) -> IncidentView | None:
        async with self.db.transaction() as conn:
            incident = await fetch_incident(conn, incidents.c.id == item.incident_id)
            if incident is None:
                return None
            firing = await _firing(conn, incident.id)
            children = []
            for child in await fetch_incidents(conn, incidents.c.parent_id == incident.id):
                child_firing = await _firing(conn, child.id)
                alerting = sorted({a.alertname for a in child_firing})
                children.append(AttachedIncident(child.id, child.title, child.status, alerting, child_firing))
            card = None
            if item.target == Target.SLACK:
                cards = await fetch_slack_cards(
                    conn, slack_cards.c.incident_id == incident.id, slack_cards.c.channel == item.destination
                )
                card = cards.get(item.destination)
            chart = await self._chart_view(conn, item, incident.id)
            started_at = await _first_start(conn, incident.id)
        figures: BreakerFigures = {}
        if self.figures is not None and item.action in (Action.TRIGGER, Action.CARD):
            figures = await self.figures.for_breaker(incident.labels)
        return IncidentView(
            id=incident.id,
            title=incident.title,
            dedup_key=incident.dedup_key,
            status=incident.status,
            severity=incident.severity,
            labels=dict(incident.labels),
            annotations=dict(incident.annotations),
            opened_at=incident.opened_at,
            quiet_since=incident.quiet_since,
            resolved_at=incident.resolved_at,
            flaps=incident.flaps,
            acknowledged_by=incident.acknowledged_by,
            resolved_by=incident.resolved_by,
            firing=firing,
            card=card,
            figures=figures,
            children=children,
            parent_id=incident.parent_id,
            url=f"{self.config.public_url.rstrip('/')}/incidents/{incident.id}",
            chart=chart,
            started_at=started_at,
        )

    async def _uploaded(
        self, conn: AsyncConnection, item: Item, incident_id: int, upload: ChartUpload, at: float
    ) -> None:
        """A chart is in Slack: remember the file, and refresh the channel's card to show it."""
        await conn.execute(
            self.db.insert(chart_uploads)
            .values(
                chart_id=upload.chart_id,
                channel=item.destination,
                incident_id=incident_id,
                file_id=upload.file_id,
                uploaded_at=at,
            )
            .on_conflict_do_nothing()
        )
        await queue_card_refresh(conn, incident_id, item.destination, at)

    async def _finish(
        self,
        item: Item,
        *,
        delivered: Delivered | None = None,
        error: str | None = None,
        retry_after: float | None = None,
        dead: bool = False,
    ) -> None:
        at = self.clock()
        mine = and_(
            outbox.c.id == item.id,
            outbox.c.claimed_by == self.config.replica_id,
            outbox.c.status == DeliveryStatus.PENDING,
        )
        async with self.db.transaction() as conn:
            if delivered is not None:
                result = await conn.execute(
                    update(outbox)
                    .where(mine)
                    .values(
                        status=DeliveryStatus.SENT,
                        sent_at=at,
                        sent_by=self.config.replica_id,
                        attempts=item.attempts + 1,
                        claimed_until=None,
                        last_error=None,
                        dry_run=self.senders[item.target].dry_run,
                        payload={**item.payload, "delivered": delivered.detail[:4000]},
                    )
                )
                if result.rowcount and delivered.card is not None and item.incident_id is not None:
                    await conn.execute(
                        self.db.insert(slack_cards)
                        .values(
                            incident_id=item.incident_id,
                            channel=item.destination,
                            channel_id=delivered.card.channel_id,
                            ts=delivered.card.ts,
                        )
                        .on_conflict_do_nothing()
                    )
                if result.rowcount and delivered.upload is not None and item.incident_id is not None:
                    await self._uploaded(conn, item, item.incident_id, delivered.upload, at)
                if result.rowcount:
                    self.metrics.delivered.labels(item.target, item.action).inc()
                    self.metrics.latency.labels(item.target).observe(max(0.0, at - item.created_at))
                return
            attempts = item.attempts + 1
            if dead:
                values: dict[str, DeliveryStatus | float | int | str | None] = {
                    "status": DeliveryStatus.DEAD,
                    "claimed_until": None,
                    "attempts": attempts,
                    "last_error": error,
                }
                self.metrics.failed.labels(item.target, "dead").inc()
                logger.error("%s %s to %s will not be delivered: %s", item.target, item.action, item.destination, error)
                if item.incident_id is not None:
                    await conn.execute(
                        events.insert().values(
                            incident_id=item.incident_id,
                            at=at,
                            kind=EventKind.DELIVERY_FAILED,
                            text=f"{item.target} {item.action} to {item.destination} not delivered: {error}",
                            detail={"outbox": item.id},
                        )
                    )
            else:
                delay = retry_after if retry_after is not None else reschedule_wait(attempts, self.config.max_backoff)
                values = {
                    "claimed_until": None,
                    "attempts": attempts,
                    "last_error": error,
                    "next_attempt_at": at + min(delay, self.config.max_backoff),
                }
                self.metrics.failed.labels(item.target, "retry").inc()
                logger.warning(
                    "%s %s for incident %s failed (attempt %d), next in %.1fs: %s",
                    item.target,
                    item.action,
                    item.incident_id,
                    attempts,
                    min(delay, self.config.max_backoff),
                    error,
                )
            await conn.execute(update(outbox).where(mine).values(**values))


_jitter = tenacity.wait_exponential_jitter(multiplier=0.2, max=2.0, jitter=0.3)


def _wait_quick(state: tenacity.RetryCallState) -> float:
    """Slack's or PagerDuty's ``Retry-After`` when they gave one, else short exponential jitter."""
    exc = state.outcome.exception() if state.outcome is not None else None
    if isinstance(exc, DeliveryError) and exc.retry_after is not None:
        return exc.retry_after
    return float(_jitter(state))


def reschedule_wait(attempts: int, maximum: float) -> float:
    """The outbox's wait before attempt ``attempts + 1`` (:data:`RESCHEDULE_BACKOFF`), within
    ``[MIN_RESCHEDULE_WAIT, maximum]``."""
    return min(maximum, max(MIN_RESCHEDULE_WAIT, RESCHEDULE_BACKOFF(attempts)))


async def _firing(conn: AsyncConnection, incident_id: int) -> list[FiringAlert]:
    """The incident's alerts still firing, most severe first (a severity outside PagerDuty's
    vocabulary last), first seen first among equals."""
    found = await fetch_alerts(conn, alerts.c.incident_id == incident_id, alerts.c.status == AlertStatus.FIRING)
    ordered = sorted(found, key=lambda a: -SEVERITIES.index(a.severity) if a.severity in SEVERITIES else 0)
    return [
        FiringAlert(
            alertname=a.alertname,
            severity=a.severity,
            summary=a.annotations.get("summary", ""),
            labels=a.labels,
            annotations=a.annotations,
            generator_url=a.generator_url,
        )
        for a in ordered
    ]


async def _first_start(conn: AsyncConnection, incident_id: int) -> datetime | None:
    """When the incident's first alert started firing (its ``startsAt``): what the page and the
    card say it started, rather than when the bot heard of it (a restart, a backlog, group_wait)."""
    query = (
        select(alerts.c.starts_at)
        .where(alerts.c.incident_id == incident_id)
        .order_by(alerts.c.first_seen, alerts.c.key)
        .limit(1)
    )
    starts_at = (await conn.execute(query)).scalar()
    try:
        moment = datetime.fromisoformat(starts_at) if starts_at else None
    except ValueError:
        return None
    # A sender's time without a zone is UTC (as the engine reads it), not this host's local time.
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment
