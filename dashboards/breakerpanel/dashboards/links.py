"""The dashboards' identities: uids, titles, and the detail dashboard's variables.

Alert rules link to the dashboards (``dashboard_url``) and the dashboards link to each other, so
the uids and variable names live here, once. Uids are stable: Grafana keys bookmarks, links and
provisioned updates on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

__all__ = [
    "AI_PROVIDERS",
    "DASHBOARDS",
    "DATASOURCE_TYPE",
    "DATASOURCE_UID",
    "DETAIL",
    "OVERVIEW",
    "SLO",
    "DashboardId",
    "Var",
]

#: The provisioned Prometheus datasource (deploy/grafana): the datasource variable's default.
DATASOURCE_TYPE = "prometheus"
DATASOURCE_UID = "breakerpanel-prometheus"

#: Every dashboard carries this tag; Grafana's dashboard links list the dashboards by it.
TAG = "breakerpanel"


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
