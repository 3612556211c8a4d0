"""The bot's own metrics, on its ``/metrics``: what came in, what went out, how late."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["BotMetrics"]

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)


class BotMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "incident_bot_webhooks_received", "Webhooks durably accepted (duplicates included).", registry=r
        )
        self.duplicates = Counter(
            "incident_bot_webhooks_duplicate", "Accepted webhooks that repeated one already stored.", registry=r
        )
        self.rejected = Counter(
            "incident_bot_webhooks_rejected", "Webhooks refused, by reason.", ["reason"], registry=r
        )
        self.repaired = Counter(
            "incident_bot_webhooks_repaired",
            "Accepted webhooks whose characters no database can store were replaced with U+FFFD.",
            registry=r,
        )
        self.pruned = Counter(
            "incident_bot_pruned_rows",
            "Rows deleted past the retention, by table.",
            ["table"],
            registry=r,
        )
        self.alerts = Counter("incident_bot_alerts", "Alerts processed, by what they did.", ["effect"], registry=r)
        self.incidents = Counter("incident_bot_incidents", "Incident lifecycle events.", ["event"], registry=r)
        self.delivered = Counter(
            "incident_bot_notifications_delivered",
            "Notifications delivered, by target and action.",
            ["target", "action"],
            registry=r,
        )
        self.failed = Counter(
            "incident_bot_notifications_failed",
            "Failed delivery attempts, by target and whether another attempt follows (retry) or not (dead).",
            ["target", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "incident_bot_delivery_latency_seconds",
            "From the incident change to its notification's delivery.",
            ["target"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.charts = Counter(
            "incident_bot_charts",
            "Chart jobs, by outcome: drawn, or unavailable (Prometheus unreachable, no series of the breaker).",
            ["outcome"],
            registry=r,
        )
        self.chart_render = Histogram(
            "incident_bot_chart_render_seconds",
            "Drawing one chart (the figure, its PNG and its SVG), in a worker thread.",
            buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0),
            registry=r,
        )
        self.pending = Gauge("incident_bot_outbox_pending", "Notifications waiting for delivery.", registry=r)
        self.dead = Gauge("incident_bot_outbox_dead", "Notifications that will not be delivered.", registry=r)
