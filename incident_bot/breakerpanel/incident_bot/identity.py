"""Who an incident is about: one breaker (its job, level and name), whatever the alert.

Alertmanager keys notifications on the alert group; we key incidents on the breaker, so that
``CircuitBreakerOpen``, ``CircuitBreakerErrorBudgetBurn`` and ``CircuitBreakerTripPredicted`` for
``openai`` are one incident with one PagerDuty ``dedup_key``, however Alertmanager grouped them.
An alert about no breaker (``BreakerMetricsAbsent``) is about its alert name and instance.

Where a breaker sits says which incident is its root cause: an endpoint belongs to its service
(``circuit_breaker_service``, or ``circuit_breaker_parent`` from exporters before it), a feature to
the services its required dependencies belong to (``circuit_breaker_requires``), a service to
nothing above it. Both labels come from the exporter (exporter/breakerpanel/exporter/semconv).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from breakerpanel.exporter import semconv as sc

__all__ = ["FEATURE_LEVEL", "SERVICE_LEVEL", "Breaker", "Identity", "breaker_of", "identity_of", "service_key"]

_NAME = sc.CIRCUIT_BREAKER_NAME_LABEL
_LEVEL = sc.CIRCUIT_BREAKER_LEVEL_LABEL
_PARENT = sc.CIRCUIT_BREAKER_PARENT_LABEL
_SERVICE = sc.CIRCUIT_BREAKER_SERVICE_LABEL
_REQUIRES = sc.CIRCUIT_BREAKER_REQUIRES_LABEL
SERVICE_LEVEL = sc.CircuitBreakerLevelValues.SERVICE.value
FEATURE_LEVEL = sc.CircuitBreakerLevelValues.FEATURE.value


@dataclass(frozen=True)
class Breaker:
    job: str
    level: str
    name: str
    parent: str
    #: The service it belongs to ("" for a feature).
    service: str = ""
    #: For a feature: the services its required dependencies belong to.
    requires: tuple[str, ...] = ()

    def root_services(self) -> tuple[str, ...]:
        """The services whose incident this breaker's alerts belong under: an endpoint's service,
        a feature's required services; none for a service (it is a root itself)."""
        if self.level == FEATURE_LEVEL:
            return self.requires
        if self.level == SERVICE_LEVEL or self.service in ("", self.name):
            return ()
        return (self.service,)

    def belongs_to(self, service: str) -> bool:
        """Whether a trouble of ``service`` explains this breaker's alerts."""
        return service in self.root_services()

    def explains(self, other: Breaker) -> bool:
        """Whether this breaker's trouble explains ``other``'s alerts (same job): a service
        explains its endpoints and the features that require it; an endpoint, which tripped
        before its service did, explains the features that require its service."""
        if other.job != self.job or other.name == self.name:
            return False
        if self.level == SERVICE_LEVEL:
            return other.belongs_to(self.name)
        if self.level == FEATURE_LEVEL or not self.service:
            return False
        return other.level == FEATURE_LEVEL and self.service in other.requires


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

    def parent_keys(self) -> tuple[str, ...]:
        """The identity keys of the service breakers this one's alerts belong under, in order."""
        b = self.breaker
        if b is None:
            return ()
        return tuple(service_key(b.job, service) for service in b.root_services())


def breaker_of(labels: Mapping[str, str]) -> Breaker | None:
    name = labels.get(_NAME, "")
    if not name:
        return None
    level = labels.get(_LEVEL, "") or SERVICE_LEVEL
    parent = labels.get(_PARENT, "")
    service = "" if level == FEATURE_LEVEL else labels.get(_SERVICE, "") or parent or name
    requires = tuple(sorted({s for s in labels.get(_REQUIRES, "").split(",") if s})) if level == FEATURE_LEVEL else ()
    return Breaker(labels.get("job", ""), level, name, parent, service, requires)


#: Longest identity key and title stored (the columns hold 400; an alert's labels have no bound).
MAX_KEY = 300


def bounded(text: str, limit: int = MAX_KEY) -> str:
    """``text`` if short enough, else a readable prefix and a digest of the whole: distinct texts
    stay distinct, and a breaker with a 100,000-character name still gets its incident."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{text[: limit - 18]}…~{digest}"


def _breaker_key(job: str, level: str, name: str) -> str:
    return bounded(f"breaker:{job}:{level}:{name}")


def service_key(job: str, service: str) -> str:
    """The identity key of the service breaker ``service`` of ``job``."""
    return _breaker_key(job, SERVICE_LEVEL, service)


def identity_of(labels: Mapping[str, str]) -> Identity:
    breaker = breaker_of(labels)
    if breaker is not None:
        where = f", {breaker.job}" if breaker.job else ""
        title = bounded(f"{breaker.name} ({breaker.level}{where})")
        return Identity(_breaker_key(breaker.job, breaker.level, breaker.name), title, breaker)
    alertname = labels.get("alertname", "alert")
    job, instance = labels.get("job", ""), labels.get("instance", "")
    subject = " ".join(p for p in (job, instance) if p)
    title = bounded(f"{alertname} ({subject})" if subject else alertname)
    return Identity(bounded(f"alert:{alertname}:{job}:{instance}"), title, None)
