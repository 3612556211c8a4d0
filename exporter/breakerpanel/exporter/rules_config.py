"""The rules' configuration (``alert_rules/config.yaml`` in a checkout; a service's own
``rules.yaml``): the thresholds, tiers and SLO targets the alert rules are generated from, and
the burn-rate windows the SLO dashboard draws.

Here, beside the names they share (:mod:`breakerpanel.exporter.loop_names`), because both
generators read it: :mod:`breakerpanel.alert_rules` and :mod:`breakerpanel.dashboards` import
this module, never each other.

Every field has a default; the committed file sets the ones a team usually tunes. A bad file gives
a :class:`~breakerpanel.config.ConfigFileError` naming the line, the key and the reason.
"""

from __future__ import annotations

from breakerpanel._extras import require

# Before the imports that need them (E402 is off for this file): one line naming the extra.
require("breakerpanel.exporter.rules_config", "config", "yaml", "pydantic")

import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from breakerpanel.config import load_yaml_model
from breakerpanel.durations import parse_duration
from breakerpanel.exporter import semconv as sc

__all__ = [
    "DEFAULT_CONFIG",
    "AlertmanagerRoute",
    "AlertsConfig",
    "DegradedAlert",
    "FallbackFailingAlert",
    "RulesConfig",
    "Severity",
    "Slo",
    "duration_seconds",
    "load_rules_config",
    "scaled_duration",
]

#: The stack's configuration in a checkout of the repository (alert_rules/config.yaml; this module is
#: exporter/breakerpanel/exporter/rules_config.py). An installed package has none: without a file,
#: load_rules_config() gives the built-in defaults.
DEFAULT_CONFIG = Path(__file__).resolve().parents[3] / "alert_rules" / "config.yaml"


def duration_seconds(text: str) -> int:
    """Seconds in a Prometheus duration such as ``1h30m`` (days, hours, minutes, seconds; whole
    numbers): the project's one grammar (:mod:`breakerpanel.durations`), as Prometheus reads it."""
    try:
        seconds = parse_duration(text, whole=True, units=("d", "h", "m", "s"))
    except ValueError:
        raise ValueError(f"not a duration like 30s, 5m, 1h30m or 3d (got {text!r})") from None
    return int(seconds)


def scaled_duration(text: str, factor: float) -> str:
    """``text`` multiplied by ``factor``, as a Prometheus duration (milliseconds when scaled): the
    rules rendered for a compressed clock (bench/alert_quality.py). ``factor`` 1 keeps ``text``."""
    if factor == 1:
        return text
    return f"{max(1, round(duration_seconds(text) * factor * 1000))}ms"


def _positive_duration(text: str) -> str:
    if duration_seconds(text) <= 0:
        raise ValueError(f"must be longer than 0s (got {text!r})")
    return text


Duration = Annotated[str, AfterValidator(_positive_duration)]
Ratio = Annotated[float, Field(gt=0, lt=1)]


class Severity(StrEnum):
    """The ``severity`` label, as the monitoring mixins use it: critical pages, warning makes a
    ticket, info is for dashboards and inhibition only."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


Level = sc.CircuitBreakerLevelValues

_ATTRIBUTES = {a: sc.label(a) for a in sc.COMMON_ATTRIBUTES}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Tier(_Model):
    """Breakers named here get this severity when they are open, whatever their level."""

    name: str = Field(description="What the tier is, for people: `tier-1 dependencies`.")
    breakers: list[str] = Field(min_length=1, description="Breaker names (`circuit_breaker.name`).")
    severity: Severity


class OpenAlert(_Model):
    """`CircuitBreakerOpen`, at two urgencies. At once (`notify`), a warning for any breaker seen
    open with calls failing or turned away: the cause, told to Slack. After `for`, the severity of the breaker's tier or
    level for one that has stayed open (a problem that is not healing by itself): critical pages.
    Both keep firing for `keep_firing_for` after the condition goes, so that a restart (the
    breaker starts closed, its series are stale) or a process death (BreakerMetricsAbsent takes
    over) does not resolve them and page again."""

    notify: bool = Field(True, description="Fire the warning as soon as a breaker is seen open.")
    for_: Duration = Field(
        "5m", alias="for", description="How long a breaker stays open before its tier's or level's severity applies."
    )
    keep_firing_for: Duration = Field(
        "2m",
        description="How long both keep firing after the breaker closes or its series vanish; also how long an "
        "open breaker may probe (half-open) without restarting the `for` clock.",
    )
    affected_window: Duration = Field(
        "1m",
        description="A breaker counts as open only while calls failed or were turned away within this window: "
        "one left open with nobody calling it (its dependency may be fine) affects nobody.",
    )
    severity_by_level: dict[Level, Severity] = Field(
        default_factory=lambda: {
            Level.SERVICE: Severity.CRITICAL,
            Level.ENDPOINT: Severity.CRITICAL,
            Level.FEATURE: Severity.WARNING,
        },
        description="The severity of a breaker open for `for`, by its level, for breakers in no tier "
        "(warning: no second rule, the immediate warning says it all).",
    )
    tiers: list[Tier] = Field(default_factory=list, description="Severities for named breakers, first match wins.")

    @model_validator(mode="after")
    def _every_level_and_no_breaker_twice(self) -> OpenAlert:
        missing = [level.value for level in Level if level not in self.severity_by_level]
        if missing:
            raise ValueError(f"severity_by_level needs a severity for {', '.join(missing)}")
        seen: dict[str, str] = {}
        for tier in self.tiers:
            for name in tier.breakers:
                if name in seen:
                    raise ValueError(f"breaker {name!r} is in two tiers: {seen[name]!r} and {tier.name!r}")
                seen[name] = tier.name
        return self


class FlappingAlert(_Model):
    """`CircuitBreakerFlapping`: a breaker trips (closed -> open) `openings` times within `window`."""

    window: Duration = Field("15m", description="The window in which openings are counted.")
    openings: int = Field(4, ge=2, description="Openings within the window at which the alert fires.")
    severity: Severity = Field(Severity.WARNING, description="The alert's `severity` label.")


class HalfOpenStuckAlert(_Model):
    """`CircuitBreakerHalfOpenStuck`: a breaker half-open for longer than `for`."""

    for_: Duration = Field("10m", alias="for", description="How long a breaker stays half-open before the alert fires.")
    severity: Severity = Field(Severity.WARNING, description="The alert's `severity` label.")


class TripPredictedAlert(_Model):
    """`CircuitBreakerTripPredicted`: the breaker's own forecast (`forecast` in breakers.yaml) saw
    its failure rate heading for the threshold in force, and it is still closed: not tripped since
    (within `window`), not rejecting for an open dependency (then the dependency is the news)."""

    window: Duration = Field("10m", description="How long a forecast stands, unless the breaker trips.")
    severity: Severity = Field(Severity.WARNING, description="The alert's `severity` label.")


class BurnRateWindow(_Model):
    """One window pair of a multiwindow burn-rate alert: both windows burn faster than ``factor``."""

    long: Duration = Field(description="The long window: the condition is real.")
    short: Duration = Field(description="The short window: it is still happening (resets the alert fast).")
    factor: float = Field(
        gt=0, description="The burn rate both windows must exceed (1 = spends the budget in one period)."
    )


class Slo(_Model):
    """An availability objective for the breakers it matches: the share of calls that neither
    failed nor were rejected (calls the breaker ignores, such as a caller's bad request, do not count)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", description="The `slo` label of its series and alerts.")
    target: Ratio = Field(description="The objective, e.g. 0.995.")
    match: dict[str, str] = Field(
        min_length=1,
        description="Attribute -> regular expression the breakers must match, e.g. `{circuit_breaker.level: service}`.",
    )
    page: list[BurnRateWindow] | None = Field(
        None,
        description="The fast-burn window pairs for this SLO (default: `error_budget_burn.page`). A dependency "
        "whose outages the breakers report needs only the shortest pair: a longer one holds its incident "
        "open for the length of its short window after the recovery.",
    )
    ticket: bool = Field(
        True,
        description="Also the slow-burn alert (days-long windows). Off for a dependency whose outages the "
        "breakers already report: a slow burn would hold its incident open for the length of its short window.",
    )
    page_severity: Severity | None = Field(
        None,
        description="The fast-burn alert's severity for this SLO (default: `error_budget_burn.page_severity`). "
        "An objective of a dependency whose failures fallbacks absorb is a cause, not user impact: warning.",
    )

    @field_validator("match")
    @classmethod
    def _known_attributes(cls, value: dict[str, str]) -> dict[str, str]:
        for attribute, pattern in value.items():
            if attribute not in _ATTRIBUTES:
                raise ValueError(f"{attribute!r} is not a breaker attribute: use one of {', '.join(_ATTRIBUTES)}")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{attribute}: {pattern!r} is not a regular expression: {exc}") from None
        return value

    def label_matchers(self) -> dict[str, str]:
        """Prometheus label -> regular expression."""
        return {_ATTRIBUTES[a]: p for a, p in self.match.items()}


class ErrorBudgetBurnAlert(_Model):
    """Multiwindow, multi-burn-rate alerts (the Google SRE workbook's recommendation)."""

    period: Duration = Field("30d", description="The SLO period the budget is spent over.")
    page: list[BurnRateWindow] = Field(
        description="Window pairs of the fast-burn alert (either pair fires it).",
        default_factory=lambda: [
            BurnRateWindow(long="1h", short="5m", factor=14.4),
            BurnRateWindow(long="6h", short="30m", factor=6),
        ],
    )
    ticket: list[BurnRateWindow] = Field(
        description="Window pairs of the slow-burn alert.",
        default_factory=lambda: [
            BurnRateWindow(long="1d", short="2h", factor=3),
            BurnRateWindow(long="3d", short="6h", factor=1),
        ],
    )
    page_severity: Severity = Field(Severity.CRITICAL, description="`severity` of the fast-burn alert.")
    ticket_severity: Severity = Field(Severity.WARNING, description="`severity` of the slow-burn alert.")
    min_calls: int = Field(
        20, ge=0, description="Calls a breaker must have made in the long window: a few calls make no ratio."
    )

    def burns(self, slo: Slo) -> list[tuple[str, list[BurnRateWindow], Severity]]:
        """The burn-rate alerts ``slo`` gets, as its ``burn`` label names them: ``fast`` (the
        page pairs, its own or these) and ``slow`` (the ticket pairs, none when it has
        ``ticket: false``), each with its window pairs and severity. The rules, their promtool
        tests and the SLO dashboard all read them here."""
        return [
            ("fast", self.page if slo.page is None else slo.page, slo.page_severity or self.page_severity),
            ("slow", self.ticket if slo.ticket else [], self.ticket_severity),
        ]


class RatioAlert(_Model):
    """An alert on a share of calls over a window, held for a while, ignored below a traffic floor."""

    ratio: Ratio = Field(description="The share over which the alert fires.")
    window: Duration = Field("5m", description="The window the share is computed over.")
    for_: Duration = Field("5m", alias="for", description="How long the share must stay over `ratio`.")
    min_calls: int = Field(10, ge=0, description="Calls in the window below which the ratio is not trusted.")
    severity: Severity = Field(Severity.WARNING, description="The alert's `severity` label.")


class FallbackFailingAlert(RatioAlert):
    """`CircuitBreakerFallbackFailing`: of the calls that failed or were rejected, over `ratio` got
    no answer from any fallback (for breakers whose calls fall back)."""

    ratio: Ratio = Field(0.1, description="The share of unserved calls over which the alert fires.")
    severity: Severity = Field(Severity.CRITICAL, description="The alert's `severity` label.")


class DegradedAlert(RatioAlert):
    """`CircuitBreakerDegraded`: over `ratio` of a feature's calls answered by its last-resort
    fallbacks (`fallback_types`): users get a cached, a similar question's or a canned answer instead of a
    live one."""

    ratio: Ratio = Field(0.5, description="The share of calls so answered over which the alert fires.")
    for_: Duration = Field("2m", alias="for", description="How long the share must stay over `ratio`.")
    fallback_types: list[sc.CircuitBreakerFallbackTypeValues] = Field(
        default_factory=lambda: [
            sc.CircuitBreakerFallbackTypeValues.CACHE,
            sc.CircuitBreakerFallbackTypeValues.SEMANTIC_CACHE,
            sc.CircuitBreakerFallbackTypeValues.STATIC,
        ],
        min_length=1,
        description="The fallback steps that mean a degraded answer.",
    )
    breakers: list[str] = Field(default_factory=list, description="The features watched (empty: every feature).")
    severity: Severity = Field(Severity.CRITICAL, description="The alert's `severity` label.")


class RejectingTrafficAlert(RatioAlert):
    """`CircuitBreakerRejectingTraffic`: over `ratio` of the calls of breakers at `levels` rejected."""

    ratio: Ratio = Field(0.5, description="The share of rejected calls over which the alert fires.")
    levels: list[Level] = Field(
        default_factory=lambda: [Level.FEATURE], min_length=1, description="The breaker levels the alert watches."
    )


class MetricsAbsentAlert(_Model):
    """`BreakerMetricsAbsent`: a target that exported breaker metrics has none, while still a target:
    the process is down (it does not come back by itself) or its exporter broke. Shorter than
    `open.keep_firing_for`, so that an open breaker's alert lasts until this one takes over."""

    for_: Duration = Field("1m", alias="for", description="How long the metrics must be missing.")
    lookback: Duration = Field("1h", description="How long a target's breakers are remembered after they vanish.")
    severity: Severity = Field(Severity.CRITICAL, description="The alert's `severity` label.")


class ManualStateAlert(_Model):
    """`CircuitBreakerManualState`: a breaker forced open, disabled or metrics-only by a person (a
    change to know of, sent to PagerDuty as a change event by the incident bot)."""

    severity: Severity = Field(Severity.INFO, description="The alert's `severity` label.")


class RateLimitSustainedAlert(_Model):
    """`CircuitBreakerRateLimitSustained`: a rate limiter keeps refusing requests, and from a few keys
    only (one abusive client, not an overload spread over many)."""

    window: Duration = Field("5m", description="The window the refusal rate is computed over.")
    for_: Duration = Field("15m", alias="for", description="How long the refusals must go on.")
    min_limited_rate: float = Field(
        1.0, gt=0, description="Refused requests per second (over `window`) above which the alert fires."
    )
    max_keys: int = Field(
        3, ge=1, description="At most this many keys refused in the last minute: more is an overload, not one key."
    )
    severity: Severity = Field(Severity.WARNING, description="The alert's `severity` label.")


class CredentialStuffingAlert(_Model):
    """`CircuitBreakerCredentialStuffing`: a spike of authentication lockouts: of source addresses, or
    of many principals."""

    window: Duration = Field("10m", description="The window lockouts are counted over.")
    address_lockouts: int = Field(3, ge=1, description="Address lockouts in `window` that fire the alert.")
    principal_lockouts: int = Field(10, ge=1, description="Principal lockouts in `window` that fire the alert.")
    severity: Severity = Field(Severity.WARNING, description="The alert's `severity` label.")


class LoadSheddingAlert(RatioAlert):
    """`CircuitBreakerLoadShedding`: a concurrency limiter sheds over `ratio` of its requests (503)."""

    ratio: Ratio = Field(0.05, description="The share of shed requests over which the alert fires.")
    for_: Duration = Field("10m", alias="for", description="How long the share must stay over `ratio`.")
    min_calls: int = Field(20, ge=0, description="Requests in the window below which the ratio is not trusted.")


class StoreUnavailableAlert(_Model):
    """`CircuitBreakerStoreUnavailable`: the store that shares breaker state across replicas (Redis)
    is unreachable; breakers decide on local state alone."""

    for_: Duration = Field("2m", alias="for", description="How long the store must stay unavailable.")
    severity: Severity = Field(Severity.WARNING, description="The alert's `severity` label.")


class AlertsConfig(_Model):
    """The alerts, one key each."""

    open: OpenAlert = OpenAlert()
    flapping: FlappingAlert = FlappingAlert()
    half_open_stuck: HalfOpenStuckAlert = HalfOpenStuckAlert()
    trip_predicted: TripPredictedAlert = TripPredictedAlert()
    error_budget_burn: ErrorBudgetBurnAlert = ErrorBudgetBurnAlert()
    fallback_failing: FallbackFailingAlert = FallbackFailingAlert()
    degraded: DegradedAlert = DegradedAlert()
    rejecting_traffic: RejectingTrafficAlert = RejectingTrafficAlert()
    metrics_absent: MetricsAbsentAlert = MetricsAbsentAlert()
    manual_state: ManualStateAlert = ManualStateAlert()
    rate_limit_sustained: RateLimitSustainedAlert = RateLimitSustainedAlert()
    credential_stuffing: CredentialStuffingAlert = CredentialStuffingAlert()
    load_shedding: LoadSheddingAlert = LoadSheddingAlert()
    store_unavailable: StoreUnavailableAlert = StoreUnavailableAlert()


class AlertmanagerRoute(_Model):
    """Alertmanager's route to the incident bot (deploy/alertmanager/alertmanager.yml is generated)."""

    group_by: list[str] = Field(
        default_factory=lambda: ["job", sc.CIRCUIT_BREAKER_NAME_LABEL],
        description="Labels a notification groups alerts by: one per breaker.",
    )
    group_wait: Duration = Field("10s", description="How long a new group waits for more alerts before it is sent.")
    group_interval: Duration = Field(
        "10s", description="How soon a changed group (a new or resolved alert) is sent again."
    )
    repeat_interval: Duration = Field("4h", description="How often an unchanged group is sent again.")


class RulesConfig(_Model):
    """The top level of `alert_rules/config.yaml`."""

    runbook_url: str = Field(
        "https://github.com/breakerpanel/breakerpanel/blob/main/docs/runbooks",
        description="Where docs/runbooks/ is published; each alert links to <runbook_url>/<alert>.md.",
    )
    grafana_url: str = Field("http://localhost:3000", description="Grafana's root URL, for `dashboard_url`.")
    slos: list[Slo] = Field(
        default_factory=list, description="Availability objectives (error-budget alerts, SLO dashboard)."
    )
    alerts: AlertsConfig = Field(AlertsConfig(), description="The alerts' thresholds.")
    alertmanager: AlertmanagerRoute = Field(AlertmanagerRoute(), description="Alertmanager's route to the bot.")
    breakers_file: Path | None = Field(
        None,
        description="The application's breakers.yaml (relative to this file): its services name the "
        "generated inhibit rules.",
    )

    @field_validator("runbook_url", "grafana_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http:// or https:// URL (got {value!r})")
        return value.rstrip("/")

    @field_validator("slos")
    @classmethod
    def _unique_slo_names(cls, slos: list[Slo]) -> list[Slo]:
        names = [slo.name for slo in slos]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"SLO names must be unique: {', '.join(twice)} used twice")
        return slos


def load_rules_config(path: str | os.PathLike[str] | None = None) -> RulesConfig:
    """Read and validate the rules' configuration file (``breakers_file`` resolved beside it).
    Without a path: the repository's ``alert_rules/config.yaml`` in a checkout, else the built-in
    defaults (every key has one; no SLOs, no breakers file)."""
    if path is None:
        if not DEFAULT_CONFIG.is_file():
            return RulesConfig()
        path = DEFAULT_CONFIG
    config = load_yaml_model(path, RulesConfig, expected="a mapping with runbook_url, grafana_url, slos, alerts")
    if config.breakers_file is not None and not config.breakers_file.is_absolute():
        config = config.model_copy(update={"breakers_file": (Path(path).parent / config.breakers_file).resolve()})
    return config
