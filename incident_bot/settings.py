"""The bot's settings: environment variables prefixed ``INCIDENT_BOT_``, secrets from the
environment or from files (``..._FILE``), never from the routing file and never logged.

A bad value stops the bot at start with the variable's name and the reason.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ENV_PREFIX", "Settings", "read_secret"]

ENV_PREFIX = "INCIDENT_BOT_"

Seconds = Annotated[float, Field(gt=0)]


def read_secret(value: SecretStr | None, file: Path | None, name: str) -> SecretStr | None:
    """A secret given inline (environment) or in a file (Docker/Kubernetes secrets), not both."""
    if value is not None and file is not None:
        raise ValueError(f"{name}: set {ENV_PREFIX}{name.upper()} or {ENV_PREFIX}{name.upper()}_FILE, not both")
    if file is None:
        return value
    try:
        text = file.read_text().strip()
    except OSError as exc:
        raise ValueError(f"{name}_file: cannot read {file}: {exc.strerror or exc}") from None
    if not text:
        raise ValueError(f"{name}_file: {file} is empty")
    return SecretStr(text)


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
    auth_failures_allowed: int = Field(10, ge=1, description="Bad tokens from one client before it is throttled.")
    auth_failure_window: Seconds = Field(60.0, description="The window the bad tokens are counted in.")
    auth_lockout: Seconds = Field(
        60.0, description="How long a throttled client gets 429 the first time (doubling on repeats, up to 16 times)."
    )
    # Alertmanager is one client sending everything: the limit stops a runaway or hostile client,
    # well above what a cluster's Alertmanagers send (bench/bot_intake.py: 500/s all accepted).
    intake_rate_limit: int = Field(
        1000, ge=1, description="Requests per second one client may send to the webhook and Slack routes, sustained."
    )
    intake_rate_burst: int = Field(2000, ge=1, description="Requests one client may send at once (then 429).")
    intake_max_concurrency: int = Field(
        512,
        ge=1,
        description="Ceiling (and start) of the adaptive concurrency limit of those routes (over the limit: 503).",
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
    slack_allowed_users: list[str] = Field(
        default_factory=list, description="Slack user ids allowed to press Acknowledge and Resolve (empty: nobody)."
    )
    slack_messages_per_second: float = Field(1.0, gt=0, description="Pacing per channel (Slack's limit).")
    # -- links and enrichment
    grafana_url: str | None = Field(None, description="Grafana's root URL, for links when an alert has none.")
    prometheus_url: str | None = Field(None, description="Prometheus to read live figures from (optional).")
    public_url: str = Field("http://localhost:8080", description="Where the bot's own pages are reachable.")
    # -- delivery
    delivery_attempts_before_backoff: int = Field(3, ge=1, description="Quick retries before the outbox backs off.")
    max_backoff: Seconds = Field(300.0, description="The longest wait between delivery attempts.")
    claim_timeout: Seconds = Field(30.0, description="A replica's claim on outbox work expires after this.")
    poll_interval: Seconds = Field(0.2, description="How often idle workers look for work.")
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

    @field_validator("slack_base_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @model_validator(mode="after")
    def _secrets_from_files(self) -> Settings:
        for name in ("webhook_token", "slack_bot_token", "slack_signing_secret"):
            value = read_secret(getattr(self, name), getattr(self, f"{name}_file"), name)
            object.__setattr__(self, name, value)
        if self.webhook_token is None:
            raise ValueError(
                f"webhook_token: set {ENV_PREFIX}WEBHOOK_TOKEN or {ENV_PREFIX}WEBHOOK_TOKEN_FILE "
                "(Alertmanager sends it as a bearer token)"
            )
        if self.slack_bot_token is not None and self.slack_signing_secret is None:
            raise ValueError("slack_signing_secret: required with a Slack token (button presses are signed)")
        return self

    @property
    def uses_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")
