"""Dashboard links that lead somewhere: the alert's own, moved onto the Grafana URL when it has the
rules generator's default base, else the breaker's detail dashboard."""

from __future__ import annotations

from breakerpanel.dashboards import links
from breakerpanel.incident_bot.delivery import DETAIL_DASHBOARD_PATH, OVERVIEW_DASHBOARD_PATH, dashboard_link

from .support import breaker_labels


def test_the_bot_links_the_dashboards_the_generator_makes() -> None:
    """The bot does not import breakerpanel.dashboards (its extra has no grafanalib): the same paths and variables."""
    assert links.DETAIL.path() == DETAIL_DASHBOARD_PATH
    assert links.OVERVIEW.path() == OVERVIEW_DASHBOARD_PATH
    url = dashboard_link({}, breaker_labels("openai.chat", level="endpoint", parent="openai"), "https://g.example")
    assert url == links.url(
        links.DETAIL,
        "https://g.example",
        **{
            links.Var.JOB: "rag",
            links.Var.LEVEL: "endpoint",
            links.Var.SERVICE: "openai",
            links.Var.BREAKER: "openai.chat",
        },
    )


def test_dashboard_links() -> None:
    generated = "http://localhost:3000/d/breakerpanel-detail/detail?var-breaker=a"
    assert dashboard_link({"dashboard_url": generated}, {}, None) == generated  # no Grafana URL: as given
    assert (
        dashboard_link({"dashboard_url": generated}, {}, "https://g/")
        == "https://g/d/breakerpanel-detail/detail?var-breaker=a"
    )
    elsewhere = "https://grafana.corp/d/x"
    assert dashboard_link({"dashboard_url": elsewhere}, {}, "https://g") == elsewhere  # someone chose it
    assert (
        dashboard_link({}, {"alertname": "BreakerMetricsAbsent"}, "https://g") == "https://g" + OVERVIEW_DASHBOARD_PATH
    )
    assert dashboard_link({}, breaker_labels("a"), None) is None
    assert dashboard_link({"dashboard_url": "javascript:alert(1)"}, {}, None) is None
