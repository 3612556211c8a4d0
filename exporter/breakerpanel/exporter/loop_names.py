"""The names the alert rules and the dashboards share, here so that neither imports the other.

- The recording rules' series (:mod:`breakerpanel.alert_rules.recording` writes them; the
  dashboards and the alerts read them): per-breaker call rates and error ratios over
  :data:`WINDOWS`, each SLO's objective, and which outcomes an error ratio counts.
- The dashboards' identities (:mod:`breakerpanel.dashboards` builds them; the alerts'
  ``dashboard_url`` and the incident bot link to them): uids, titles, template variables, URLs.
  Uids are stable: Grafana keys bookmarks, links and provisioned updates on them.

Plain Python over the registry's names (:mod:`breakerpanel.exporter.semconv`): no extra needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from . import promql
from . import semconv as sc

__all__ = [
    "AI_PROVIDERS",
    "ALL",
    "COUNTED_OUTCOMES",
    "DASHBOARDS",
    "DETAIL",
    "ERROR_OUTCOMES",
    "OVERVIEW",
    "SLO",
    "SLO_LABEL",
    "SLO_OBJECTIVE",
    "WINDOWS",
    "DashboardId",
    "Var",
    "calls_rate",
    "error_ratio",
    "url",
]

# ---------------------------------------------------------------------- recording rules

#: The windows of the recording rules: those of the multiwindow burn-rate alerts, which the SLO
#: dashboard draws too.
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")

#: The label the objective series and the burn-rate alerts carry: the SLO's name.
SLO_LABEL = "slo"
#: One series per SLO and breaker it covers, valued at the objective (e.g. 0.99).
SLO_OBJECTIVE = "circuit_breaker:slo_objective:ratio"

_OUTCOME = sc.CircuitBreakerOutcomeValues
#: The calls an error ratio counts (ignored calls, a caller's bad request, count on neither side)...
COUNTED_OUTCOMES = (_OUTCOME.SUCCESS, _OUTCOME.FAILURE, _OUTCOME.REJECTED)
#: ... and the ones that are errors.
ERROR_OUTCOMES = (_OUTCOME.FAILURE, _OUTCOME.REJECTED)


def slo_calls(outcomes: tuple[sc.CircuitBreakerOutcomeValues, ...]) -> tuple[str, str]:
    """The matchers of the calls with ``outcomes`` that an SLO's error ratio counts (the recording
    rules' and the SLO dashboard's period figures alike). A breaker a person holds open rejects on
    purpose: no call reached the dependency, and the dependency failed nobody, so those rejections
    count on neither side."""
    return (
        promql.one_of(sc.CIRCUIT_BREAKER_OUTCOME_LABEL, outcomes),
        promql.ne(sc.CIRCUIT_BREAKER_REJECTION_REASON_LABEL, sc.CircuitBreakerRejectionReasonValues.FORCED_OPEN),
    )


def calls_rate(window: str) -> str:
    """The record name: counted calls (success, failure, rejected) per second over ``window``."""
    return f"circuit_breaker:calls:rate{window}"


def error_ratio(window: str) -> str:
    """The record name: failed and rejected calls over counted calls, over ``window``."""
    return f"circuit_breaker:error_ratio:rate{window}"


# ---------------------------------------------------------------------- dashboards


@dataclass(frozen=True)
class DashboardId:
    uid: str
    title: str

    def path(self) -> str:
        """The dashboard's path under Grafana's root URL."""
        return f"/d/{self.uid}/{self.uid.removeprefix('breakerpanel-')}"


OVERVIEW = DashboardId("breakerpanel-overview", "Circuit breakers overview")
DETAIL = DashboardId("breakerpanel-detail", "Circuit breaker detail")
AI_PROVIDERS = DashboardId("breakerpanel-ai-providers", "AI providers")
SLO = DashboardId("breakerpanel-slo", "SLO and error budget")
DASHBOARDS = (OVERVIEW, DETAIL, AI_PROVIDERS, SLO)


class Var:
    """Template variable names shared by the dashboards (``var-<name>`` in URLs)."""

    DATASOURCE = "datasource"
    JOB = "job"
    LEVEL = "level"
    SERVICE = "service"
    BREAKER = "breaker"
    PROVIDER = "provider"
    MODEL = "model"
    SLO = "slo"


#: Grafana's URL value that selects a variable's "All" option.
ALL = "$__all"


def url(dashboard: DashboardId, base: str, **variables: str) -> str:
    """``base`` + the dashboard's path + ``?var-name=value...``. Values are kept as given (they
    may be alert templates such as ``{{ $labels.job }}``) except for characters a URL cannot hold."""
    query = "&".join(f"var-{name}={quote(value, safe='{}$.: |-_')}" for name, value in variables.items())
    return base.rstrip("/") + dashboard.path() + (f"?{query}" if query else "")
