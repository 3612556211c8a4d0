"""The bot's settings: environment variables prefixed ``INCIDENT_BOT_``, secrets from the
environment or from files (``..._FILE``), never from the routing file and never logged.

A bad value stops the bot at start with the variable's name and the reason.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import re
import socket
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from breakerpanel._redact import redacted
from breakerpanel._secrets import secret_from_file

__all__ = ["ENV_PREFIX", "Settings", "read_secret"]

ENV_PREFIX = "INCIDENT_BOT_"

Seconds = Annotated[float, Field(gt=0)]


def _list_of_names(value: Any) -> Any:
    """A list from the environment as people write it: ``U0123,U0456`` (or a JSON list)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValueError(f"write a JSON list or comma-separated values (the JSON list: {exc})") from None
    return [item.strip() for item in text.split(",") if item.strip()]


#: A list setting: comma-separated values or a JSON list.
Names = Annotated[list[str], NoDecode, BeforeValidator(_list_of_names)]
#: The database drivers the bot runs on (db.Database).
DATABASE_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
#: The shortest chart secret taken (an HMAC-SHA256 key).
MIN_CHART_SECRET = 16

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {None: 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}


def _long_duration(value: Any) -> Any:
    """Seconds from a number or from ``90s``, ``30m``, ``12h``, ``30d``."""
    if isinstance(value, str):
        found = _DURATION.match(value)
        if found is None:
            raise ValueError(f"expected seconds or a duration such as 12h or 30d (got {value!r})")
        return float(found.group(1)) * _UNIT_SECONDS[found.group(2)]
    return value


LongDuration = Annotated[float, BeforeValidator(_long_duration), Field(gt=0, allow_inf_nan=False)]


def read_secret(value: SecretStr | None, file: Path | None, name: str) -> SecretStr | None:
    """A secret given inline (environment) or in a file (Docker/Kubernetes secrets), not both."""
    if value is not None and file is not None:
        raise ValueError(f"{name}: set {ENV_PREFIX}{name.upper()} or {ENV_PREFIX}{name.upper()}_FILE, not both")
    if file is None:
        return value
    return SecretStr(secret_from_file(file, f"{name}_file"))


class Settings(BaseSettings):
    """Everything the bot reads from its environment."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    # -- storage
    database_url: str = Field(
        "sqlite+aiosqlite:///./incident_bot.db",
        description="SQLAlchemy URL: sqlite+aiosqlite:///path (one replica) or postgresql+asyncpg://... "
        "(several replicas share incidents and the outbox).",
    )
    database_pool_size: int = Field(
        5, ge=1, le=100, description="PostgreSQL connections per replica (as many more in bursts); SQLite uses one."
    )
    # -- intake
    webhook_token: SecretStr | None = Field(
        None, description="Bearer token Alertmanager sends (http_config.authorization)."
    )
    webhook_token_file: Path | None = Field(None, description="A file holding the webhook token instead.")
    max_body_bytes: int = Field(1 << 20, gt=0, description="Larger webhook bodies get 413.")
    max_json_depth: int = Field(
        32, ge=4, le=200, description="Webhook bodies that nest arrays and objects deeper get 400 (a webhook needs 4)."
    )
    auth_failures_allowed: int = Field(
        10, ge=1, description="Bad tokens (or signatures) from one client before its bad ones are throttled."
    )
    auth_failure_window: Seconds = Field(60.0, description="The window the bad tokens are counted in.")
    auth_lockout: Seconds = Field(
        60.0,
        description="How long a throttled client's bad tokens get 429 the first time (doubling on repeats, up to 16 "
        "times); the valid token is never refused.",
    )
    # Alertmanager is one client sending everything: the limit stops a runaway or hostile client,
    # well above what a cluster's Alertmanagers send (bench/bot_intake.py: 500/s all accepted).
    intake_rate_limit: int = Field(
        1000, ge=1, description="Requests per second one client may send to the webhook and Slack routes, sustained."
    )
    intake_rate_burst: int = Field(
        2000, ge=1, description="Requests one client may send at once (then 503 on the webhook, 429 on Slack's route)."
    )
    intake_max_concurrency: int = Field(
        512,
        ge=1,
        description="Ceiling (and start) of the adaptive concurrency limit of those routes (over the limit: 503).",
    )
    # -- reads: the incident list and pages, /metrics (health checks are always open)
    read_token: SecretStr | None = Field(
        None,
        description="Bearer token for reads (GET /v1/incidents, the pages, /metrics). Not needed when the bot "
        "listens on loopback only (--host 127.0.0.1, the default): then reads are open.",
    )
    read_token_file: Path | None = Field(None, description="A file holding the read token instead.")
    read_proxy_header: str | None = Field(
        None,
        description="A header in which a trusted authenticating proxy names the person (X-Forwarded-User): a "
        "request with it from one of read_proxy_addresses may read.",
    )
    read_proxy_addresses: Names = Field(
        default_factory=list, description="Addresses or networks (CIDR) of the proxies trusted to set that header."
    )
    # -- incidents
    resolve_after: Seconds = Field(
        300.0,
        description="How long a breaker must stay closed (all its alerts resolved) before its incident is "
        "resolved; firing again within it is a flap of the same incident.",
    )
    routing_file: Path | None = Field(None, description="The routes YAML; none: every incident to the default route.")
    # -- PagerDuty
    pagerduty_base_url: str = Field(
        "https://events.pagerduty.com", description="PagerDuty's Events API (https only, as the client demands)."
    )
    pagerduty_ca_file: Path | None = Field(None, description="CA bundle to verify PagerDuty's certificate with.")
    pagerduty_events_per_minute: int = Field(120, gt=0, description="Pacing per routing key (PagerDuty's limit).")
    # -- Slack
    slack_bot_token: SecretStr | None = Field(None, description="The Slack app's bot token (xoxb-...).")
    slack_bot_token_file: Path | None = Field(None, description="A file holding the bot token instead.")
    slack_signing_secret: SecretStr | None = Field(
        None, description="The Slack app's signing secret: verifies button presses. Required with a token."
    )
    slack_signing_secret_file: Path | None = Field(None, description="A file holding the signing secret instead.")
    slack_base_url: str = Field("https://slack.com/api/", description="Slack's Web API.")
    slack_allowed_users: Names = Field(
        default_factory=list, description="Slack user ids allowed to press Acknowledge and Resolve (empty: nobody)."
    )
    slack_messages_per_second: float = Field(1.0, gt=0, description="Pacing per channel (Slack's limit).")
    # -- links and enrichment
    grafana_url: str | None = Field(None, description="Grafana's root URL, for links when an alert has none.")
    prometheus_url: str | None = Field(
        None, description="Prometheus to read live figures and draw charts from (optional: without it, no chart)."
    )
    public_url: str = Field("http://localhost:8080", description="Where the bot's own pages are reachable.")
    # -- charts (with prometheus_url: each incident's breaker drawn on opening, raise and resolve)
    chart_span: LongDuration = Field(
        30 * 60.0, description="How much of the breaker's history a chart shows: seconds, or 30m, 2h."
    )
    chart_url_base: str | None = Field(
        None,
        description="Where PagerDuty and people fetch a chart's signed URL (/charts/...): default public_url. "
        "PagerDuty shows images from https:// URLs only; with another the event carries the link alone.",
    )
    chart_url_ttl: LongDuration = Field(
        7 * 86_400.0, description="How long a chart's signed URL works: seconds, or 12h, 7d."
    )
    chart_secret: SecretStr | None = Field(
        None,
        description="The key that signs chart URLs (HMAC-SHA256). Default: derived from the webhook token, so "
        "every replica signs alike and URLs survive restarts; set it to rotate chart links on their own.",
    )
    chart_secret_file: Path | None = Field(None, description="A file holding the chart secret instead.")
    # -- delivery
    delivery_attempts_before_backoff: int = Field(3, ge=1, description="Quick retries before the outbox backs off.")
    max_backoff: Seconds = Field(300.0, description="The longest wait between delivery attempts.")
    claim_timeout: Seconds = Field(30.0, description="A replica's claim on outbox work expires after this.")
    poll_interval: Seconds = Field(0.2, description="How often idle workers look for work.")
    # -- storage over time
    retention: LongDuration = Field(
        30 * 86_400.0,
        description="How long finished things are kept (processed webhooks, resolved incidents with their "
        "alerts, timeline and sent deliveries): seconds, or 12h, 30d. Live incidents and pending deliveries "
        "are kept whatever their age.",
    )
    # -- identity and mode
    replica_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        description="This replica's name in claims and timelines (default: host name and process id).",
    )
    dry_run: bool | None = Field(
        None,
        description="Record and show every notification, send none. Default: on when no PagerDuty routing "
        "key and no Slack token is configured.",
    )

    @field_validator("pagerduty_base_url")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError(f"must be an https:// URL: the PagerDuty client refuses others (got {value!r})")
        return value.rstrip("/")

    @field_validator("prometheus_url", "chart_url_base")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL (got {redacted(value)!r})")
        return value.rstrip("/") if value is not None else None

    @field_validator("database_url")
    @classmethod
    def _database(cls, value: str) -> str:
        # Checked here, at start, with the variable named, rather than by the engine later, whose
        # errors name neither. The URL is shown without its password.
        try:
            url = make_url(value)
            url.port  # noqa: B018 - a port that is not a number fails on reading it
        except (ArgumentError, ValueError) as exc:
            raise ValueError(f"not a database URL ({exc}): got {redacted(value)!r}") from None
        if url.drivername not in DATABASE_DRIVERS:
            raise ValueError(
                f"the driver must be one of {', '.join(DATABASE_DRIVERS)} (got {url.drivername!r} in "
                f"{url.render_as_string(hide_password=True)!r})"
            )
        return value

    @field_validator("slack_base_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @field_validator("read_proxy_addresses")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for address in value:
            try:
                ipaddress.ip_network(address, strict=False)
            except ValueError:
                raise ValueError(f"{address!r} is neither an IP address nor a network such as 10.0.0.0/8") from None
        return value

    @model_validator(mode="after")
    def _secrets_from_files(self) -> Settings:
        for name in ("webhook_token", "slack_bot_token", "slack_signing_secret", "read_token", "chart_secret"):
            value = read_secret(getattr(self, name), getattr(self, f"{name}_file"), name)
            object.__setattr__(self, name, value)
        if self.webhook_token is None:
            raise ValueError(
                f"webhook_token: set {ENV_PREFIX}WEBHOOK_TOKEN or {ENV_PREFIX}WEBHOOK_TOKEN_FILE "
                "(Alertmanager sends it as a bearer token)"
            )
        if self.chart_secret is not None and len(self.chart_secret.get_secret_value().encode()) < MIN_CHART_SECRET:
            raise ValueError(f"chart_secret: {MIN_CHART_SECRET} bytes at least (it signs chart URLs)")
        if self.slack_bot_token is not None and self.slack_signing_secret is None:
            raise ValueError("slack_signing_secret: required with a Slack token (button presses are signed)")
        if self.read_proxy_header and not self.read_proxy_addresses:
            raise ValueError(
                "read_proxy_addresses: required with read_proxy_header (trusted from anyone, the header would let "
                "anyone read)"
            )
        return self

    @property
    def uses_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    def chart_key(self) -> bytes:
        """The key that signs chart URLs: ``chart_secret``, else one derived from the webhook token
        (HMAC-SHA256 under a fixed label: the token cannot be recovered from it, and every replica
        derives the same)."""
        if self.chart_secret is not None:
            return self.chart_secret.get_secret_value().encode()
        assert self.webhook_token is not None  # the settings refuse to exist without one
        token = self.webhook_token.get_secret_value().encode()
        return hmac.new(token, b"breakerpanel incident bot chart urls", hashlib.sha256).digest()
