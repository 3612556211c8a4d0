"""An incident's chart, from a real Prometheus fed by a real exporter.

Prometheus (1 s scrapes) watches a process whose ``openai`` service opens through its endpoint's
failures, rejects, and recovers; the ``answer`` feature requires it. Then:

- the chart's data are what the detail dashboard's queries return for that breaker;
- the chart draws them (PNG and SVG).
"""

from __future__ import annotations

import asyncio
import io
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from dataclasses import dataclass

import matplotlib.image
import pytest

from breakerpanel import BreakerConfig, BreakerRegistry, CircuitOpenError, State, Static
from breakerpanel.exporter import BreakerTelemetry
from breakerpanel.exporter import semconv as sc
from breakerpanel.exporter.breaker_panels import STATE_CODES, BreakerPanels
from breakerpanel.incident_bot.chart_data import RATE_WINDOW, chart_queries, fetch_chart_data, step_for
from breakerpanel.incident_bot.chart_render import WIDTH_INCHES, render_chart
from breakerpanel.incident_bot.enrich import Figures
from breakerpanel.incident_bot.prometheus import PrometheusReader
from tests.dashboards.support import rendered
from tests.promql_names import substitute
from tests.servers import PrometheusServer, ServerPool, find_free_port, wait_until

from .support import breaker_labels

JOB = "charts"
ROUTING_KEY = "C" * 32
TOKEN = "webhook-token-for-charts"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: Where PagerDuty would fetch charts from: https, as it requires (never fetched here).
CHART_URL_BASE = "https://bot.example"
SPAN = 120.0
WAIT_IN_OPEN = 2.0
CONFIG = BreakerConfig(
    minimum_calls=4, sliding_window_size=8, wait_in_open=WAIT_IN_OPEN, permitted_calls_in_half_open=1
)
OPEN = STATE_CODES[sc.CircuitBreakerStateValues.OPEN]
CLOSED = STATE_CODES[sc.CircuitBreakerStateValues.CLOSED]


@dataclass
class Stack:
    prometheus: PrometheusServer
    #: When the outage was over and scraped: the charts end here.
    ended: float


def _refused() -> str:
    raise ConnectionError("refused")


@pytest.fixture(scope="module")
def stack(module_server_pool: ServerPool) -> Iterator[Stack]:
    """openai (a service) and openai.chat (its endpoint) through an outage and its recovery, the
    answer feature requiring them, scraped by Prometheus every second."""
    registry = BreakerRegistry()
    registry.service("openai", CONFIG, attributes={sc.GEN_AI_PROVIDER_NAME: "openai"})
    chat = registry.endpoint("openai.chat", CONFIG)
    registry.feature("answer", required=["openai.chat"], fallback=[Static("busy")], config=BreakerConfig())
    telemetry = BreakerTelemetry(registry, service_name=JOB, otlp=False, tracing=False)
    port = find_free_port()
    telemetry.start_http_server(port)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
    }
    try:
        prometheus = module_server_pool.start(PrometheusServer(config))
        prometheus.wait_for_target_up(JOB, timeout=20)
        for _ in range(8):  # healthy, over a few scrapes
            chat.call(lambda: "ok")
            time.sleep(0.3)
        while registry["openai"].state is not State.OPEN:
            with pytest.raises(ConnectionError):
                chat.call(_refused)
        for _ in range(6):  # rejected while open, over a few scrapes
            with pytest.raises(CircuitOpenError):
                chat.call(lambda: "rejected")
            time.sleep(0.3)
        time.sleep(WAIT_IN_OPEN)
        while registry["openai"].state is not State.CLOSED or chat.state is not State.CLOSED:
            chat.call(lambda: "ok")
            time.sleep(0.2)
        closed = 'circuit_breaker_state{circuit_breaker_name="openai", circuit_breaker_state="closed"} == 1'
        was_open = (
            'max_over_time(circuit_breaker_state{circuit_breaker_name="openai", circuit_breaker_state="open"}[5m]) == 1'
        )
        wait_until(
            lambda: prometheus.query(f"({closed}) and on () ({was_open})") or None, timeout=15, what="recovery scraped"
        )
        time.sleep(1.5)  # one more scrape: the rate windows see the last calls
        yield Stack(prometheus, round(time.time(), 3))
    finally:
        telemetry.shutdown()


LABELS = breaker_labels("openai", job=JOB)


# ---------------------------------------------------------------------- data and drawing


async def test_the_chart_shows_what_the_dashboards_queries_return(stack: Stack) -> None:
    reader = PrometheusReader(stack.prometheus.url)
    try:
        data = await fetch_chart_data(reader, LABELS, end=stack.ended, span=SPAN)
    finally:
        await reader.close()
    step = step_for(SPAN)
    assert (data.start, data.end, data.step) == (stack.ended - SPAN, stack.ended, step)
    # Each of the chart's series is what Prometheus answers to the chart's query (the dashboard's:
    # test_the_chart_asks_what_the_detail_dashboard_asks).
    queries = chart_queries(BreakerPanels(JOB, "openai", RATE_WINDOW))
    drawn = {
        "state": [data.state],
        "failure_rate": list(data.failure_rate),
        "failure_rate_threshold": [data.failure_rate_threshold],
        "slow_call_rate": list(data.slow_call_rate),
        "slow_call_rate_threshold": [data.slow_call_rate_threshold],
        "calls_per_second": [data.calls_per_second],
        "rejections_per_second": list(data.rejections_per_second),
        "children": list(data.children),
    }
    for key, expr in queries.items():
        answered = stack.prometheus.query_range(expr, data.start, data.end, step=step)
        expected = sorted(tuple((float(t), float(v)) for t, v in series["values"]) for series in answered)
        got = sorted(s.points for s in drawn[key] if s is not None)
        assert [[t for t, _ in points] for points in got] == [[t for t, _ in points] for points in expected], key
        # Values to the last bits: a sum over series may add them in another order from one query to the next.
        assert [[v for _, v in points] for points in got] == [
            pytest.approx([v for _, v in points], rel=1e-9) for points in expected
        ], key
    # And they tell the story: open, then closed again; the thresholds in force; why calls were rejected.
    codes = [value for _, value in data.state.points]
    assert OPEN in codes
    assert codes[-1] == CLOSED
    assert codes.index(OPEN) < len(codes) - 1 - codes[::-1].index(OPEN)  # open for more than one point
    assert data.failure_rate_threshold is not None
    assert {value for _, value in data.failure_rate_threshold.points} == {CONFIG.failure_rate_threshold}
    assert {s.label for s in data.rejections_per_second} >= {"open"}
    assert max(v for s in data.rejections_per_second for _, v in s.points) > 0
    assert data.calls_per_second is not None
    assert max(v for _, v in data.calls_per_second.points) > 0
    assert [s.label for s in data.children] == ["answer", "openai.chat"]
    assert OPEN in {value for _, value in data.children[1].points}


async def test_the_drawing_is_one_figure_as_png_and_svg(stack: Stack) -> None:
    reader = PrometheusReader(stack.prometheus.url)
    try:
        data = await fetch_chart_data(reader, LABELS, end=stack.ended, span=SPAN)
    finally:
        await reader.close()
    chart = await asyncio.to_thread(
        render_chart, data, title="#7 openai ($5 of <b>)", marks=[(stack.ended - 30, "#7 opened")]
    )
    image = matplotlib.image.imread(io.BytesIO(chart.png), format="png")
    assert image.shape[1] == round(WIDTH_INCHES * 100)
    svg = ElementTree.fromstring(chart.svg)
    texts = {"".join(t.itertext()) for t in svg.iter("{http://www.w3.org/2000/svg}text")}
    assert {"openai", "openai.chat", "answer", "#7 openai ($5 of <b>)", "#7 opened"} <= texts
    assert 0 < chart.seconds < 30


async def test_a_breaker_prometheus_never_saw_has_no_chart(stack: Stack) -> None:
    reader = PrometheusReader(stack.prometheus.url)
    try:
        with pytest.raises(Exception, match="no state series of breaker mistral"):
            await fetch_chart_data(reader, breaker_labels("mistral", job=JOB), end=stack.ended, span=SPAN)
    finally:
        await reader.close()


def test_the_chart_asks_what_the_detail_dashboard_asks() -> None:
    """One source: with its variables set to the incident's breaker (and Grafana's rate window to
    the bot's), each of the detail dashboard's panels the chart draws runs the chart's query."""
    detail = rendered()["detail.dashboard.py"]
    panels = {p["title"]: p for p in detail["panels"] if p["type"] != "row"}

    def panel(title: str, ref: str = "A") -> str:
        expr = next(t["expr"] for t in panels[title]["targets"] if t["refId"] == ref)
        return substitute(expr, {"job": JOB, "breaker": "openai", "__rate_interval": RATE_WINDOW})

    assert chart_queries(BreakerPanels(JOB, "openai", RATE_WINDOW)) == {
        "state": panel("State"),
        "failure_rate": panel("Failure rate vs threshold"),
        "failure_rate_threshold": panel("Failure rate vs threshold", "B"),
        "slow_call_rate": panel("Slow-call rate vs threshold"),
        "slow_call_rate_threshold": panel("Slow-call rate vs threshold", "B"),
        "calls_per_second": panel("Calls/s"),
        "rejections_per_second": panel("Rejections by reason"),
        "children": panel("Breakers under it"),
    }


async def test_the_cards_live_figures_come_through_the_same_reader(stack: Stack) -> None:
    reader = PrometheusReader(stack.prometheus.url)
    nowhere = PrometheusReader(f"http://127.0.0.1:{find_free_port()}")
    try:
        figures = await Figures(reader).for_breaker(LABELS)
        assert figures["state"] == "closed"
        assert figures["failure_rate_threshold"] == CONFIG.failure_rate_threshold
        assert figures["transitions_1h"] > 0
        assert await Figures(nowhere).for_breaker(LABELS) == {}  # best effort: nothing, never an error
    finally:
        await reader.close()
        await nowhere.close()
