"""Dashboard links that lead somewhere: the alert's own, moved onto the Grafana URL when it has the
rules generator's default base, else the breaker's detail dashboard."""

from __future__ import annotations

from breakerpanel.exporter import loop_names
from breakerpanel.incident_bot.delivery import dashboard_link

from .support import breaker_labels


def test_the_bot_links_the_dashboards_the_generator_makes() -> None:
    """The bot builds its links itself (urlencode): the same URL as the alert rules' (loop_names.url)."""
    url = dashboard_link({}, breaker_labels("openai.chat", level="endpoint", parent="openai"), "https://g.example")
    assert url == loop_names.url(
        loop_names.DETAIL,
        "https://g.example",
        **{
            loop_names.Var.JOB: "rag",
            loop_names.Var.LEVEL: "endpoint",
            loop_names.Var.SERVICE: "openai",
            loop_names.Var.BREAKER: "openai.chat",
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
        dashboard_link({}, {"alertname": "BreakerMetricsAbsent"}, "https://g")
        == "https://g" + loop_names.OVERVIEW.path()
    )
    assert dashboard_link({}, breaker_labels("a"), None) is None
    assert dashboard_link({"dashboard_url": "javascript:alert(1)"}, {}, None) is None
