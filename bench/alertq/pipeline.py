"""The whole alerting pipeline of one scenario, as local processes on loopback, at a compressed time scale.

    load -> demo replicas (breakers) -> fake upstreams (chaos), Redis
                 \\-> /metrics -> Prometheus (the shipped rules) -> Alertmanager (the shipped config)
                                 -> incident bot (the shipped routes) -> fake PagerDuty / fake Slack

What is shipped is used as shipped, with one change: every duration of the alerting side is
multiplied by the time scale (:class:`TimeScale`): Prometheus's scrape and evaluation intervals,
every ``for``, ``keep_firing_for``, range and horizon of the rules (rendered by :mod:`breakerpanel.alert_rules`
with ``time_scale``), Alertmanager's ``group_wait``, ``group_interval`` and ``repeat_interval``, and the
bot's ``resolve_after``. Everything else is left as is, addresses aside (services become
127.0.0.1 ports, the webhook token a file).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from breakerpanel.alert_rules import DEFAULT_CONFIG, load_rules_config, render
from breakerpanel.exporter.rules_config import duration_seconds
from breakerpanel.incident_bot.settings import Settings as BotSettings
from demo.stack.paths import REPO_ROOT
from tests.fakes import FakePagerDuty, FakeSlack
from tests.incident_bot.processes import (
    ROUTING_KEY,
    ROUTING_KEY_ENV,
    SIGNING_SECRET,
    SLACK_TOKEN,
    WEBHOOK_TOKEN,
    BotProcess,
)
from tests.servers import (
    AlertmanagerServer,
    PrometheusServer,
    RedisServer,
    ServerProcess,
)

__all__ = ["ADMIN_TOKEN", "DemoReplica", "Pipeline", "TimeScale", "UpstreamsProcess"]

PROMETHEUS_CONFIG = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = REPO_ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
BOT_ROUTES = REPO_ROOT / "deploy" / "incident-bot" / "routes.yaml"
#: The demo's admin API token (manual breaker states).
ADMIN_TOKEN = "alert-quality-admin-token"
#: The bot's read token (its incidents API), when it asks for one.
READ_TOKEN = "alert-quality-read-token"


@dataclass(frozen=True)
class TimeScale:
    """Wall-clock seconds per scenario second (0.1: ten times faster than production)."""

    factor: float

    def seconds(self, scenario_seconds: float) -> float:
        return scenario_seconds * self.factor

    def duration(self, text: str) -> str:
        """A Prometheus/Alertmanager duration scaled, in milliseconds (both accept ``1500ms``)."""
        return f"{max(1, round(duration_seconds(text) * self.factor * 1000))}ms"


class UpstreamsProcess(ServerProcess):
    """``python -m demo.upstreams``: the fake OpenAI, Anthropic and Qdrant with their chaos API."""

    kind = "upstreams"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "demo.upstreams", "--port", str(self.port), "--log-level", "warning"]

    def _environment(self) -> dict[str, str]:
        return {**super()._environment(), "PYTHONPATH": str(REPO_ROOT)}

    def _is_ready(self) -> bool:
        return _answers(f"{self.url}/chaos")

    def chaos(self, upstream: str, body: Mapping[str, Any]) -> None:
        path = f"/chaos/{upstream}"
        with httpx.Client(base_url=self.url, timeout=10, trust_env=False) as client:
            response = client.delete(path) if body.get("fault") == "clear" else client.put(path, json=dict(body))
        response.raise_for_status()


class DemoReplica(ServerProcess):
    """``python -m demo.service``: one replica of the breaker-protected RAG service."""

    kind = "demo"

    def __init__(self, index: int, upstreams_url: str, redis_url: str, data: Path) -> None:
        self.index = index
        self.upstreams_url = upstreams_url
        self.redis_url = redis_url
        self.data = data
        super().__init__(start_timeout=60.0)

    @property
    def name(self) -> str:
        return f"demo-{self.index}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def instance(self) -> str:
        """Its ``instance`` label in Prometheus."""
        return f"127.0.0.1:{self.port}"

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "demo.service", "--host", "127.0.0.1", "--port", str(self.port)]

    def _environment(self) -> dict[str, str]:
        return {
            **super()._environment(),
            "PYTHONPATH": str(REPO_ROOT),
            "DEMO_OPENAI_BASE_URL": f"{self.upstreams_url}/v1",
            "DEMO_ANTHROPIC_BASE_URL": self.upstreams_url,
            "DEMO_QDRANT_URL": self.upstreams_url,
            "DEMO_REDIS_URL": self.redis_url,
            "DEMO_SQLITE_PATH": str(self.data / f"{self.name}.sqlite3"),
            "DEMO_ADMIN_TOKEN": ADMIN_TOKEN,
            # One load generator plays every user: the per-client limit is not under test.
            "DEMO_ASK_RATE_LIMIT": "100000",
            "DEMO_ASK_RATE_BURST": "100000",
            "DEMO_UPSTREAM_TIMEOUT_S": "2",
            "DEMO_SEED_RETRY_S": "1",
            "DEMO_LOG_LEVEL": "warning",
            "OTEL_SERVICE_INSTANCE_ID": self.name,
        }

    def _is_ready(self) -> bool:
        return _answers(f"{self.url}/health/live")

    def health(self) -> dict[str, Any] | None:
        """``/health/ready``: the breaker tree (None when the replica does not answer)."""
        try:
            response = httpx.get(f"{self.url}/health/ready", timeout=2, trust_env=False)
        except httpx.HTTPError:
            return None
        body: dict[str, Any] = response.json()
        return body

    def set_breaker(self, name: str, state: str) -> None:
        response = httpx.post(
            f"{self.url}/admin/breakers/{name}/state",
            json={"state": state},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
            trust_env=False,
        )
        response.raise_for_status()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.5, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Pipeline:
    """Every process of one run, started by :meth:`start` and stopped by :meth:`close`."""

    scale: TimeScale
    replicas: int
    upstreams_per_replica: bool
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="alert-quality-")))
    pagerduty: FakePagerDuty = field(default_factory=FakePagerDuty)
    slack: FakeSlack = field(default_factory=FakeSlack)
    upstreams: list[UpstreamsProcess] = field(default_factory=list)
    demos: list[DemoReplica] = field(default_factory=list)
    redis: RedisServer | None = None
    bot: BotProcess | None = None
    alertmanager: AlertmanagerServer | None = None
    prometheus: PrometheusServer | None = None
    #: The settings the run used, for the report.
    settings: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Pipeline:
        self.pagerduty.start()
        self.slack.start()
        self.redis = RedisServer().start()
        for _ in range(self.replicas if self.upstreams_per_replica else 1):
            self.upstreams.append(UpstreamsProcess(start_timeout=30).start())
        for index in range(self.replicas):
            upstreams = self.upstreams[index if self.upstreams_per_replica else 0]
            self.demos.append(DemoReplica(index, upstreams.url, self.redis.url, self.work))
        for demo in self.demos:
            demo.start()
        self.bot = BotProcess(self._bot_environment()).start()
        self.alertmanager = AlertmanagerServer(self._alertmanager_config()).start()
        self.prometheus = PrometheusServer(self._prometheus_config(), rules=self._rules()).start()
        return self

    def close(self) -> None:
        servers: list[ServerProcess | None] = [self.prometheus, self.alertmanager, self.bot, *self.demos]
        servers += [*self.upstreams, self.redis]
        for server in servers:
            if server is not None:
                with contextlib.suppress(Exception):
                    server.close()
        for fake in (self.pagerduty, self.slack):
            with contextlib.suppress(Exception):
                fake.close()

    def __enter__(self) -> Pipeline:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the shipped configuration, scaled

    def _rules(self) -> dict[str, str]:
        return {"breakerpanel.rules.yaml": render(load_rules_config(DEFAULT_CONFIG), time_scale=self.scale.factor)}

    def _prometheus_config(self) -> dict[str, Any]:
        shipped = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
        interval = shipped["global"]["scrape_interval"]
        evaluation = shipped["global"]["evaluation_interval"]
        assert self.alertmanager is not None
        assert self.bot is not None
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": self.scale.duration(interval),
                "evaluation_interval": self.scale.duration(evaluation),
            },
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{self.alertmanager.port}"]}]}]},
            "scrape_configs": [
                {"job_name": "demo", "static_configs": [{"targets": [d.instance for d in self.demos]}]},
                {"job_name": "incident-bot", "static_configs": [{"targets": [f"127.0.0.1:{self.bot.port}"]}]},
            ],
        }
        bot_job = next(job for job in shipped["scrape_configs"] if job["job_name"] == "incident-bot")
        if "authorization" in bot_job:  # the bot's /metrics needs its read token
            token = self.work / "read_token"
            token.write_text(READ_TOKEN)
            config["scrape_configs"][1]["authorization"] = {"type": "Bearer", "credentials_file": str(token)}
        self.settings["prometheus"] = config["global"]
        return config

    def _alertmanager_config(self) -> dict[str, Any]:
        config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
        route = config["route"]
        for key in ("group_wait", "group_interval", "repeat_interval"):
            if key in route:
                route[key] = self.scale.duration(route[key])
        assert self.bot is not None
        token = self.work / "webhook_token"
        token.write_text(WEBHOOK_TOKEN)
        for receiver in config["receivers"]:
            for webhook in receiver.get("webhook_configs", []):
                webhook["url"] = self.bot.webhook_url
                webhook["http_config"]["authorization"]["credentials_file"] = str(token)
        self.settings["alertmanager"] = {k: route[k] for k in ("group_wait", "group_interval", "repeat_interval")}
        self.settings["alertmanager"]["group_by"] = route.get("group_by")
        self.settings["alertmanager"]["inhibit_rules"] = len(config.get("inhibit_rules", []))
        return config

    def _bot_environment(self) -> dict[str, str]:
        resolve_after = self.scale.seconds(BotSettings.model_fields["resolve_after"].default)
        self.settings["incident_bot"] = {"resolve_after_s": resolve_after, "routes": str(BOT_ROUTES)}
        return {
            "INCIDENT_BOT_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
            "INCIDENT_BOT_READ_TOKEN": READ_TOKEN,
            "INCIDENT_BOT_ROUTING_FILE": str(BOT_ROUTES),
            "INCIDENT_BOT_PAGERDUTY_BASE_URL": self.pagerduty.base_url,
            "INCIDENT_BOT_PAGERDUTY_CA_FILE": str(self.pagerduty.ca_file),
            "INCIDENT_BOT_SLACK_BOT_TOKEN": SLACK_TOKEN,
            "INCIDENT_BOT_SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "INCIDENT_BOT_SLACK_BASE_URL": self.slack.api_url,
            "INCIDENT_BOT_DRY_RUN": "false",
            "INCIDENT_BOT_RESOLVE_AFTER": f"{resolve_after:g}",
            "INCIDENT_BOT_MAX_BACKOFF": "1",
            "INCIDENT_BOT_POLL_INTERVAL": "0.1",
            ROUTING_KEY_ENV: ROUTING_KEY,
        }

    # ------------------------------------------------------------------ what the harness does to it

    def demo(self, name: str) -> DemoReplica:
        return next(d for d in self.demos if d.name == name)

    def upstreams_for(self, replica: int | None) -> list[UpstreamsProcess]:
        if replica is None:
            return self.upstreams
        return [self.upstreams[replica if self.upstreams_per_replica else 0]]

    def bot_get(self, path: str) -> Any:
        assert self.bot is not None
        response = self.bot.http.get(path, headers={"Authorization": f"Bearer {READ_TOKEN}"})
        response.raise_for_status()
        return response.json()

    def processes(self) -> Iterator[tuple[str, ServerProcess]]:
        yield from ((d.name, d) for d in self.demos)
        if self.redis is not None:
            yield "redis", self.redis
