"""The bot's moving parts, wired from its settings, started and stopped together.

::

    intake (HTTP) --group commit--> webhooks --processor--> incidents, events, outbox --worker--> PagerDuty, Slack
                                                                                     --chart worker--> charts
                                    pruner: what finished longer than the retention ago, deleted

The processor runs on every replica but processes on one at a time (a database lock); the worker
runs on every replica and shares the outbox through claims; the pruner runs on every replica and
prunes under the same lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from breakerpanel.config import ConfigFileError
from breakerpanel.guards import RateLimiter, RateLimitPolicy

from .chart_links import ChartLinks
from .charts import ChartSender
from .db import Database, Retention
from .delivery import Sender
from .dryrun import DryRunSender
from .enrich import Figures
from .incidents import Engine, EngineConfig, Outcome
from .intake import IntakeWriter
from .metrics import BotMetrics
from .outbox import OutboxWorker, WorkerConfig
from .pagerduty import PagerDutySender
from .prometheus import PrometheusReader
from .routing import RoutingFile, RoutingKeys, load_routing
from .settings import Settings
from .slack import SlackSender
from .tasks import cancel_when_idle
from .vocabulary import Action, Target

__all__ = ["Bot", "StartupError"]

logger = logging.getLogger("breakerpanel.incident_bot")

#: How often quiet incidents are checked for resolution, at the least.
TICK_SECONDS = 1.0
#: How often the pruner looks for what the retention lets go, at the most (a short retention is
#: checked more often: a quarter of it).
PRUNE_EVERY_SECONDS = 300.0
#: How many notifications one destination may get at once before its pace applies: PagerDuty's
#: events per routing key, Slack's messages per channel.
PAGERDUTY_BURST = 10
SLACK_BURST = 3
#: The routes a dry run without a routes file shows: the example's, so that a new installation
#: sees every notification a typical setup would send (docs/incident-bot.md, "Routes").
EXAMPLE_ROUTES = Path(__file__).with_name("routes.example.yaml")


#: What the chart worker delivers: drawing a chart, and posting it.
CHART_ACTIONS = frozenset({Action.RENDER, Action.CHART})


class StartupError(Exception):
    """The configuration cannot work: the message names each problem and where it is."""


@dataclass(frozen=True)
class Mode:
    dry_run: bool
    reason: str


class Bot:
    def __init__(
        self,
        settings: Settings,
        *,
        senders: Mapping[Target, Sender] | None = None,
        metrics: BotMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or BotMetrics()
        try:
            self.routing = load_routing(settings.routing_file)
        except ConfigFileError as exc:
            raise StartupError(str(exc)) from None
        keys = RoutingKeys.resolve(self.routing)
        self.mode = self._mode(keys)
        if self.mode.dry_run and settings.routing_file is None:
            # With no routes every incident goes nowhere, and a dry run would record nothing.
            self.routing = _example_routing()
        if keys.problems and not self.mode.dry_run:
            lines = [f"{settings.routing_file}: {where}: {why}" for where, why in keys.problems]
            raise StartupError("PagerDuty routing keys:\n  " + "\n  ".join(lines))
        self.db = Database(settings.database_url, pool_size=settings.database_pool_size)
        self.prometheus = PrometheusReader(settings.prometheus_url) if settings.prometheus_url else None
        charts = self.prometheus is not None
        self.engine = Engine(
            self.db,
            EngineConfig(
                resolve_after=settings.resolve_after,
                routing=self.routing,
                charts=charts,
                grafana_url=settings.grafana_url,
            ),
        )
        self.written = asyncio.Event()
        self.writer = IntakeWriter(self.db, on_written=self.written)
        self.figures = Figures(self.prometheus) if self.prometheus is not None else None
        self.retention = Retention(self.db, settings.retention)
        self.chart_links = ChartLinks(
            settings.chart_key(), settings.chart_url_base or settings.public_url, settings.chart_url_ttl
        )
        chosen = dict(senders if senders is not None else self._senders(keys))
        config = WorkerConfig(
            replica_id=settings.replica_id,
            claim_timeout=settings.claim_timeout,
            quick_attempts=settings.delivery_attempts_before_backoff,
            max_backoff=settings.max_backoff,
            poll_interval=settings.poll_interval,
            public_url=settings.public_url,
            chart_links=self.chart_links,
        )
        pacers = _pacers(settings)
        #: The charts' own worker (with Prometheus): it draws them and posts them (with the same
        #: senders and pace as the pages), so that charts never hold up the claim of a page.
        #: Without it, the outbox worker dead-letters a chart job left from a configuration with
        #: Prometheus (no sender for it), rather than keep it pending forever.
        self.chart_worker: OutboxWorker | None = None
        self.chart_sender: ChartSender | None = None
        if self.prometheus is not None:
            # A send is bounded by a third of the claim (OutboxWorker._keep_claim): the queries get a sixth.
            self.chart_sender = ChartSender(
                self.db,
                self.prometheus,
                span=settings.chart_span,
                metrics=self.metrics,
                request_timeout=min(5.0, settings.claim_timeout / 6),
            )
            self.chart_worker = OutboxWorker(
                self.db,
                {**chosen, Target.CHART: self.chart_sender},
                config,
                pacers=pacers,
                metrics=self.metrics,
                only=CHART_ACTIONS,
                name="chart-worker",
            )
        self.worker = OutboxWorker(
            self.db,
            chosen,
            config,
            pacers=pacers,
            metrics=self.metrics,
            figures=self.figures,
            skip=CHART_ACTIONS if self.chart_worker is not None else frozenset(),
        )
        self._processor: asyncio.Task[None] | None = None
        self._processing = asyncio.Lock()
        self._pruner: asyncio.Task[None] | None = None
        self._pruning = asyncio.Lock()
        self.started = False

    def _mode(self, keys: RoutingKeys) -> Mode:
        s = self.settings
        if s.dry_run is True:
            return Mode(True, f"{s.model_config.get('env_prefix')}DRY_RUN is set")
        if s.dry_run is False:
            return Mode(False, "dry run disabled")
        if not keys.keys and s.slack_bot_token is None:
            return Mode(True, "no PagerDuty routing key and no Slack token is configured")
        return Mode(False, "credentials configured")

    def _senders(self, keys: RoutingKeys) -> dict[Target, Sender]:
        s = self.settings
        grafana = s.grafana_url
        if self.mode.dry_run:
            return {target: DryRunSender(target, grafana_url=grafana) for target in (Target.PAGERDUTY, Target.SLACK)}
        # A send must end well within the claim on its outbox item (see OutboxWorker._keep_claim).
        timeout = min(10.0, s.claim_timeout / 3)
        senders: dict[Target, Sender] = {
            Target.PAGERDUTY: PagerDutySender(
                keys.keys,
                base_url=s.pagerduty_base_url,
                ca_file=str(s.pagerduty_ca_file) if s.pagerduty_ca_file else None,
                timeout=timeout,
                grafana_url=grafana,
            )
        }
        if s.slack_bot_token is not None:
            senders[Target.SLACK] = SlackSender(
                s.slack_bot_token.get_secret_value(),
                base_url=s.slack_base_url,
                timeout=max(1, int(timeout)),
                grafana_url=grafana,
            )
        else:
            senders[Target.SLACK] = DryRunSender(Target.SLACK, grafana_url=grafana)
        return senders

    async def start(self) -> None:
        await self.db.create()
        self.writer.start()
        self.worker.start()
        if self.chart_worker is not None and self.chart_sender is not None:
            self.chart_worker.start()
            self.chart_sender.warm_up()
        self._processor = asyncio.create_task(self._process_forever(), name="processor")
        self._pruner = asyncio.create_task(self._prune_forever(), name="pruner")
        self.started = True
        if self.mode.dry_run:
            logger.warning("DRY RUN: %s. Notifications are recorded and shown, none is sent.", self.mode.reason)
        logger.info(
            "incident bot %s up: database %s, %d route(s)",
            self.settings.replica_id,
            self.db.url.render_as_string(hide_password=True),
            len(self.routing.routes),
        )

    async def stop(self) -> None:
        self.started = False
        if self._processor is not None:
            await cancel_when_idle(self._processor, self._processing, grace=10)
        if self._pruner is not None:
            await cancel_when_idle(self._pruner, self._pruning, grace=10)
        await self.writer.stop()
        if self.chart_worker is not None:  # first: it shares the senders the outbox worker closes
            await self.chart_worker.stop()
        await self.worker.stop()
        if self.prometheus is not None:
            await self.prometheus.close()
        await self.db.dispose()

    def wake_workers(self) -> None:
        """New outbox work: the workers look now rather than at their next poll."""
        self.worker.wake.set()
        if self.chart_worker is not None:
            self.chart_worker.wake.set()

    async def _process_forever(self) -> None:
        while True:
            try:
                async with self._processing:
                    outcome = await self.engine.process_pending()
                    ticked = await self.engine.tick()
                self._count(outcome, ticked)
                # A new alert too: joining a live incident, it may raise it and page (the workers
                # would otherwise find that page at their next poll).
                changed = outcome.opened or outcome.attached or outcome.flaps or outcome.alerts_new
                if changed or outcome.alerts_resolved or ticked.resolved:
                    self.wake_workers()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("processing failed; retrying")
                await asyncio.sleep(1.0)
                continue
            self.written.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.written.wait(), TICK_SECONDS)

    async def _prune_forever(self) -> None:
        every = min(PRUNE_EVERY_SECONDS, self.settings.retention / 4)
        while True:
            pruned = None
            try:
                async with self._pruning:
                    pruned = await self.retention.prune()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database is away: the next round prunes what this one left
                logger.exception("pruning failed; trying again later")
            else:
                deleted = {table: count for table, count in pruned.counts().items() if count}
                for table, count in deleted.items():
                    self.metrics.pruned.labels(table).inc(count)
                if deleted:
                    logger.info("pruned past the retention: %s", deleted)
            # Cut short by another replica's lock: try again soon, not in a full round.
            await asyncio.sleep(every if pruned is None or pruned.done else min(every, 5.0))

    def _count(self, outcome: Outcome, ticked: Outcome) -> None:
        m = self.metrics
        for effect in ("alerts_new", "alerts_resolved", "duplicates", "stale"):
            if value := getattr(outcome, effect):
                m.alerts.labels(effect).inc(value)
        for event in ("opened", "attached", "flaps"):
            if value := getattr(outcome, event):
                m.incidents.labels(event).inc(value)
        if ticked.resolved:
            m.incidents.labels("resolved").inc(ticked.resolved)


def _pacers(settings: Settings) -> dict[Target, RateLimiter]:
    """Each target's pace per destination, in this process: PagerDuty's events per routing key,
    Slack's messages per channel (each replica keeps its own: the far side's limit, shared by
    several replicas, answers 429 with a ``Retry-After`` the outbox honours)."""
    pagerduty = RateLimitPolicy(limit=settings.pagerduty_events_per_minute, period=60.0, burst=PAGERDUTY_BURST)
    # One message every 1/rate seconds: a rate below one a second is a period above one.
    slack = RateLimitPolicy(limit=1, period=1 / settings.slack_messages_per_second, burst=SLACK_BURST)
    return {
        Target.PAGERDUTY: RateLimiter("incident_bot.pagerduty", pagerduty),
        Target.SLACK: RateLimiter("incident_bot.slack", slack),
    }


def _example_routing() -> RoutingFile:
    try:
        return load_routing(EXAMPLE_ROUTES)
    except ConfigFileError as exc:  # shipped with the bot: a broken one is our bug
        raise StartupError(f"the example routes for dry run: {exc}") from None
