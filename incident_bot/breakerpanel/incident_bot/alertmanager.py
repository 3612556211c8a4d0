"""Alertmanager's webhook payload (version 4), from 0.25 (Debian's) to current releases.

Newer Alertmanagers add fields (``notification_reason`` in 0.32, ``routeLabels`` in 0.34); they
are optional here, and fields this model does not know are kept, so a stored webhook loses nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from .vocabulary import AlertStatus

__all__ = ["Alert", "Webhook", "without_unstorable_characters"]

#: What no database text can hold: a lone UTF-16 surrogate (JSON may escape one, ``"\ud800"``, and
#: Python's parser keeps it; it has no UTF-8 form) and NUL (PostgreSQL's text refuses it).
_UNSTORABLE = re.compile("[\ud800-\udfff\x00]")
REPLACEMENT = "\ufffd"


def without_unstorable_characters(document: Any, path: str = "") -> tuple[Any, list[str]]:
    """``document`` (parsed JSON) with every character no database can store replaced by U+FFFD,
    in keys and values, and the paths of the fields that had one (``alerts.0.labels.team``)."""
    repaired: list[str] = []

    def clean(node: Any, where: str) -> Any:
        if isinstance(node, str):
            fixed = _UNSTORABLE.sub(REPLACEMENT, node)
            if fixed != node:
                repaired.append(where)
            return fixed
        if isinstance(node, list):
            return [clean(item, f"{where}.{index}" if where else str(index)) for index, item in enumerate(node)]
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, value in node.items():
                fixed_key = _UNSTORABLE.sub(REPLACEMENT, key)
                inner = f"{where}.{fixed_key}" if where else fixed_key
                if fixed_key != key:
                    repaired.append(f"{inner} (its name)")
                out[fixed_key] = clean(value, inner)
            return out
        return node

    return clean(document, path), repaired


class Alert(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: AlertStatus
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
    status: AlertStatus
    receiver: str
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[Alert] = Field(min_length=1)
    notification_reason: str | None = None
    routeLabels: dict[str, str] | None = None
    #: Alerts left out because they did not validate, each as ``alerts.<i>.<field>: <reason>``.
    _rejected: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _good_alerts_despite_bad_ones(cls, data: Any, handler: ModelWrapValidatorHandler[Webhook]) -> Webhook:
        """A notification with some alerts that do not validate keeps the others: a 4xx answer
        would lose them all, since Alertmanager does not retry one. Only when every error lies
        inside some alerts and at least one alert is left; else the errors as they are (422).
        Re-reading the stored payload leaves out the same ones."""
        try:
            return handler(data)
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
            if not all(len(e["loc"]) >= 2 and e["loc"][0] == "alerts" and isinstance(e["loc"][1], int) for e in errors):
                raise
            bad = {e["loc"][1] for e in errors}
            alerts = data["alerts"]
            kept = [alert for index, alert in enumerate(alerts) if index not in bad]
            if not kept:
                raise
            webhook = handler({**data, "alerts": kept})
            webhook._rejected = [f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in errors]
            return webhook

    @property
    def rejected(self) -> list[str]:
        """The alerts left out (see ``_good_alerts_despite_bad_ones``): where and why."""
        return self._rejected

    def dedupe_key(self) -> str:
        """Equal for the same notification sent twice: by an Alertmanager retrying, or by both
        members of an HA pair (whose ``externalURL`` differ). A firing alert's ``endsAt`` moves at
        every evaluation, so it is left out; a resolved alert's is part of what happened, and so is
        how many alerts Alertmanager left out (``truncatedAlerts``): the same alerts with another
        count left out is another notification, whose count must reach the incident."""
        alerts = sorted(
            (
                a.fingerprint,
                a.status,
                a.startsAt.isoformat(),
                a.endsAt.isoformat() if a.status == AlertStatus.RESOLVED and a.endsAt else "",
            )
            for a in self.alerts
        )
        identity: list[Any] = [self.groupKey, self.status, alerts]
        if self.truncatedAlerts:  # only then: keys of untruncated notifications stay as they were
            identity.append(self.truncatedAlerts)
        text = json.dumps(identity, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()
