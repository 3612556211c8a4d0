"""Who an incident is about: one breaker (its job, level and name), whatever the alert.

Alertmanager keys notifications on the alert group; we key incidents on the breaker, so that
``CircuitBreakerOpen``, ``CircuitBreakerErrorBudgetBurn`` and ``CircuitBreakerTripPredicted`` for
``openai`` are one incident with one PagerDuty ``dedup_key``, however Alertmanager grouped them.
An alert about no breaker (``BreakerMetricsAbsent``) is about its alert name and instance.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from exporter import semconv as sc

__all__ = ["Breaker", "Identity", "breaker_of", "identity_of"]

_NAME = sc.CIRCUIT_BREAKER_NAME_LABEL
_LEVEL = sc.CIRCUIT_BREAKER_LEVEL_LABEL
_PARENT = sc.CIRCUIT_BREAKER_PARENT_LABEL
SERVICE_LEVEL = sc.CircuitBreakerLevelValues.SERVICE.value


@dataclass(frozen=True)
class Breaker:
    job: str
    level: str
    name: str
    parent: str

    @property
    def service(self) -> str:
        """The service-level breaker above this one: an endpoint's parent, else itself."""
        return self.parent or self.name


@dataclass(frozen=True)
class Identity:
    """The stable key of an incident's subject."""

    key: str
    #: What people read: ``openai.chat (endpoint, rag)``.
    title: str
    breaker: Breaker | None

    @property
    def dedup_key(self) -> str:
        """PagerDuty's ``dedup_key``: stable per subject (<= 255 characters), readable."""
        digest = hashlib.sha256(self.key.encode()).hexdigest()[:12]
        readable = self.key[:200]
        return f"breakerpanel/{readable}/{digest}"

    def parent_key(self) -> str | None:
        """The identity key of the service breaker an endpoint alert belongs under."""
        b = self.breaker
        if b is None or b.level == SERVICE_LEVEL or not b.parent:
            return None
        return _breaker_key(b.job, SERVICE_LEVEL, b.parent)


def breaker_of(labels: Mapping[str, str]) -> Breaker | None:
    name = labels.get(_NAME, "")
    if not name:
        return None
    return Breaker(labels.get("job", ""), labels.get(_LEVEL, "") or SERVICE_LEVEL, name, labels.get(_PARENT, ""))


def _breaker_key(job: str, level: str, name: str) -> str:
    return f"breaker:{job}:{level}:{name}"


def identity_of(labels: Mapping[str, str]) -> Identity:
    breaker = breaker_of(labels)
    if breaker is not None:
        where = f", {breaker.job}" if breaker.job else ""
        return Identity(
            _breaker_key(breaker.job, breaker.level, breaker.name), f"{breaker.name} ({breaker.level}{where})", breaker
        )
    alertname = labels.get("alertname", "alert")
    job, instance = labels.get("job", ""), labels.get("instance", "")
    subject = " ".join(p for p in (job, instance) if p)
    return Identity(f"alert:{alertname}:{job}:{instance}", f"{alertname} ({subject})" if subject else alertname, None)
