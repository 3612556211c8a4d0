"""The service's settings, from ``DEMO_*`` environment variables (demo/README.md lists them all)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from breakerpanel._secrets import secret_from_file

__all__ = ["DEFAULT_BREAKERS_FILE", "BreakerMode", "Settings"]

BreakerMode = Literal["on", "no_fallbacks", "off"]
"""``on``: breakers and fallbacks; ``no_fallbacks``: breakers that fail fast, no fallback chain;
``off``: every breaker disabled, the fallbacks tried only once a call has failed, SDK retries on
(what a service without breakers does). bench/chaos.py compares the three."""

DEFAULT_BREAKERS_FILE = Path(__file__).resolve().parent.parent / "breakers.yaml"


class Settings(BaseSettings):
    """Where the dependencies are and how to talk to them. Every field reads ``DEMO_<NAME>``,
    except the two API keys, which read the variables the SDKs themselves use."""

    model_config = SettingsConfigDict(env_prefix="DEMO_", extra="forbid", frozen=True)

    openai_base_url: str = "http://127.0.0.1:8600/v1"
    anthropic_base_url: str = "http://127.0.0.1:8600"
    qdrant_url: str = "http://127.0.0.1:8600"
    qdrant_api_key: SecretStr | None = None
    qdrant_collection: str = "breakerpanel-docs"
    # Empty: a SQLite file (sqlite_path) stands in for PostgreSQL.
    database_url: str = ""
    sqlite_path: Path = Path(tempfile.gettempdir()) / "breakerpanel-demo.sqlite3"
    # Empty: answers are cached in process memory.
    redis_url: str = ""
    admin_token: SecretStr | None = None
    admin_token_file: Path | None = None
    breakers_file: Path = DEFAULT_BREAKERS_FILE
    openai_api_key: SecretStr = Field(default=SecretStr("demo-key"), validation_alias="OPENAI_API_KEY")
    anthropic_api_key: SecretStr = Field(default=SecretStr("demo-key"), validation_alias="ANTHROPIC_API_KEY")
    chat_model: str = "gpt-4o-mini"
    embedding_model: str = "text-embedding-3-small"
    # Requested from the embeddings API, so the Qdrant collection's size is known before any call.
    embedding_dim: int = Field(64, ge=8, le=3072)
    anthropic_model: str = "claude-haiku-4-5"
    search_limit: int = Field(3, ge=1, le=20)
    # /v1/ask per client (X-API-Key, else the address): sustained requests per second, and burst.
    ask_rate_limit: int = Field(20, ge=1)
    ask_rate_burst: int = Field(40, ge=1)
    # Ceiling of /v1/ask's adaptive concurrency limit; requests over the limit get 503 at once.
    ask_max_concurrency: int = Field(64, ge=1)
    # Per request to OpenAI, Anthropic and Qdrant; Redis and the database get shorter ones.
    upstream_timeout_s: float = Field(10.0, gt=0)
    # For comparisons (bench/chaos.py): see BreakerMode. Anything but "on" is not for production.
    breaker_mode: BreakerMode = "on"
    # Retries of each OpenAI and Anthropic request by the SDKs (their backoff, honouring Retry-After);
    # None: none while breakers are on, the SDKs' default of 2 with breaker_mode "off".
    sdk_max_retries: int | None = Field(None, ge=0, le=10)
    # How often to retry seeding the documents while a dependency is down.
    seed_retry_s: float = Field(5.0, gt=0)
    service_name: str = "breakerpanel-demo"
    environment: str = "demo"
    log_level: str = "info"

    # The admin token read from admin_token_file, once, at start (checked there).
    _admin_token_from_file: str | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _admin_token_file_readable(self) -> Settings:
        # At start, with the variable named: an unreadable file used to surface as a traceback from
        # create_app, and an empty one quietly turned the admin API off.
        if self.admin_token_file is None:
            return self
        if self.admin_token is not None and self.admin_token.get_secret_value():
            raise ValueError("set DEMO_ADMIN_TOKEN or DEMO_ADMIN_TOKEN_FILE, not both")
        self._admin_token_from_file = secret_from_file(self.admin_token_file, "DEMO_ADMIN_TOKEN_FILE")
        return self

    def sdk_retries(self) -> int:
        """The SDKs' ``max_retries``: ``sdk_max_retries``, or the default for ``breaker_mode``."""
        if self.sdk_max_retries is not None:
            return self.sdk_max_retries
        return 2 if self.breaker_mode == "off" else 0

    def admin_secret(self) -> bytes | None:
        """The admin API's bearer token, from ``admin_token`` or ``admin_token_file`` (read at
        start; never both); ``None`` turns the admin API off."""
        if self.admin_token is not None and self.admin_token.get_secret_value():
            return self.admin_token.get_secret_value().encode()
        if self._admin_token_from_file is not None:
            return self._admin_token_from_file.encode()
        return None
