"""Alertmanager's webhook payload (version 4), from 0.25 (Debian's) to current releases.

Newer Alertmanagers add fields (``notification_reason`` in 0.32, ``routeLabels`` in 0.34); they
are optional here, and fields this model does not know are kept, so a stored webhook loses nothing.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["Alert", "Webhook"]

Status = Literal["firing", "resolved"]


class Alert(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Status
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = Field(min_length=1, max_length=64)

    @field_validator("startsAt", "endsAt", mode="before")
    @classmethod
    def _rfc3339_text(cls, value: object) -> object:
        # Pydantic's lax mode reads a number as Unix time; Alertmanager always sends RFC 3339 text,
        # so a number means the sender is not Alertmanager and the schema says so too.
        if value is not None and not isinstance(value, str | datetime):
            raise ValueError("must be an RFC 3339 date-time string")
        return value

    @property
    def key(self) -> str:
        """One firing episode of one alert: a new episode starts at a new ``startsAt``."""
        return f"{self.fingerprint}@{self.startsAt.isoformat()}"


class Webhook(BaseModel):
    """What Alertmanager POSTs to a webhook receiver."""

    model_config = ConfigDict(extra="allow")

    version: Literal["4"]
    groupKey: str = Field(min_length=1)
    truncatedAlerts: int = Field(0, ge=0)
    status: Status
    receiver: str
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[Alert] = Field(min_length=1)
    notification_reason: str | None = None
    routeLabels: dict[str, str] | None = None

    def dedupe_key(self) -> str:
        """Equal for the same notification sent twice: by an Alertmanager retrying, or by both
        members of an HA pair (whose ``externalURL`` differ). A firing alert's ``endsAt`` moves at
        every evaluation, so it is left out; a resolved alert's is part of what happened."""
        alerts = sorted(
            (
                a.fingerprint,
                a.status,
                a.startsAt.isoformat(),
                a.endsAt.isoformat() if a.status == "resolved" and a.endsAt else "",
            )
            for a in self.alerts
        )
        text = json.dumps([self.groupKey, self.status, alerts], separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()
