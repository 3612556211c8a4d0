"""An incident's chart, from a real Prometheus fed by a real exporter, to the fakes of Slack and PagerDuty.

Prometheus (1 s scrapes) watches a process whose ``openai`` service opens through its endpoint's
failures, rejects, and recovers; the ``answer`` feature requires it. Then:

- the chart's data are what the detail dashboard's queries return for that breaker;
- the chart draws them (PNG and SVG);
- an incident pages first, then its chart is uploaded into the Slack card's thread and shown on the
  card, and sent to PagerDuty as the image of an event with the same dedup key, by a signed URL the
  bot serves (and refuses tampered or expired); the incident page shows it inline;
- with Prometheus down the incident proceeds without a chart, and the timeline says why;
- a dry run draws the chart and records the posts it would have made.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import re
import signal
import threading
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx
import matplotlib.image
import pytest
from pydantic import SecretStr

from breakerpanel import BreakerConfig, BreakerRegistry, CircuitOpenError, State, Static
from breakerpanel.exporter import BreakerTelemetry
from breakerpanel.exporter import semconv as sc
from breakerpanel.exporter.breaker_panels import STATE_CODES, BreakerPanels
from breakerpanel.guards import RateLimiter, RateLimitPolicy
from breakerpanel.incident_bot.app import create_app
from breakerpanel.incident_bot.chart_data import (
    RATE_WINDOW,
    ChartUnavailable,
    chart_queries,
    fetch_chart_data,
    step_for,
)
from breakerpanel.incident_bot.chart_links import ChartFormat, ChartLinks, Refusal
from breakerpanel.incident_bot.chart_render import WIDTH_INCHES, render_chart
from breakerpanel.incident_bot.db import Database, Retention, charts, events, outbox
from breakerpanel.incident_bot.delivery import Delivered, IncidentView, Item
from breakerpanel.incident_bot.drawing import DrawingProcess
from breakerpanel.incident_bot.enrich import Figures
from breakerpanel.incident_bot.incidents import Engine, EngineConfig
from breakerpanel.incident_bot.metrics import BotMetrics
from breakerpanel.incident_bot.outbox import CHART_YIELDS_FOR, OutboxWorker, WorkerConfig
from breakerpanel.incident_bot.pagerduty import PagerDutySender
from breakerpanel.incident_bot.prometheus import PrometheusReader
from breakerpanel.incident_bot.runtime import Bot
from breakerpanel.incident_bot.settings import Settings
from breakerpanel.incident_bot.slack import SlackSender
from breakerpanel.incident_bot.vocabulary import Target
from tests.dashboards.support import rendered
from tests.fakes import FakePagerDuty, FakeSlack
from tests.promql_names import substitute
from tests.servers import PrometheusServer, ServerPool, find_free_port, wait_until

from .support import ROUTING, AlertSpec, ManualClock, breaker_labels, notifications, rows, store, webhook

JOB = "charts"
ROUTING_KEY = "C" * 32
TOKEN = "webhook-token-for-charts"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: Where PagerDuty would fetch charts from: https, as it requires (never fetched here).
CHART_URL_BASE = "https://bot.example"
#: A Prometheus password, which nothing the bot writes may show.
PASSWORD = "S3cretPassw0rd"
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


def test_a_services_calls_count_its_endpoints_calls_once(stack: Stack) -> None:
    """Every call went through openai.chat, and passed its service's breaker too (the service's
    series count it as well): the service's calls and rejections per second are the endpoint's,
    not twice them. The rejections differ only in reason: ``open`` at the service that turned
    them away, ``parent_open`` at the endpoint."""
    start, end, step = stack.ended - SPAN, stack.ended, step_for(SPAN)

    def points(name: str, query: str) -> list[float]:
        expr = getattr(BreakerPanels(JOB, name, RATE_WINDOW), query)()
        answered = stack.prometheus.query_range(f"sum({expr})", start, end, step=step)
        assert len(answered) == 1, (name, query, answered)
        return [float(v) for _, v in answered[0]["values"]]

    for query in ("calls_per_second", "rejections_per_second"):
        service, endpoint = points("openai", query), points("openai.chat", query)
        assert max(service) > 0, query
        assert service == pytest.approx(endpoint, rel=1e-9), query


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


async def test_a_drawing_process_that_dies_costs_one_chart(stack: Stack) -> None:
    reader = PrometheusReader(stack.prometheus.url)
    drawing = DrawingProcess()
    try:
        data = await fetch_chart_data(reader, LABELS, end=stack.ended, span=SPAN)
        first = await drawing.draw(data, title="before", marks=[])
        assert drawing._pool is not None
        (pid,) = drawing._pool._processes
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(ChartUnavailable, match="the drawing process died"):
            await drawing.draw(data, title="while it dies", marks=[])
        again = await drawing.draw(data, title="before", marks=[])  # a new process
        assert again.png[:8] == first.png[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        await drawing.close()
        await reader.close()


# ---------------------------------------------------------------------- signed URLs


def test_a_signed_url_is_refused_tampered_or_expired() -> None:
    links = ChartLinks(b"k" * 32, CHART_URL_BASE, ttl=600)
    url = urlsplit(links.url(3, ChartFormat.PNG, now=1000.0))
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert (url.scheme, url.netloc, url.path, query["expires"]) == ("https", "bot.example", "/charts/3.png", "1600")
    assert links.check(3, query["expires"], query["signature"], now=1599.0) is None
    assert links.check(3, query["expires"], query["signature"], now=1601.0) is Refusal.EXPIRED
    assert links.check(4, query["expires"], query["signature"], now=1000.0) is Refusal.TAMPERED
    assert links.check(3, "1700", query["signature"], now=1000.0) is Refusal.TAMPERED
    flipped = query["signature"][:-1] + ("0" if query["signature"][-1] != "0" else "1")
    assert links.check(3, query["expires"], flipped, now=1000.0) is Refusal.TAMPERED
    other_key = ChartLinks(b"x" * 32, CHART_URL_BASE, ttl=600)
    assert other_key.check(3, query["expires"], query["signature"], now=1000.0) is Refusal.TAMPERED
    fullwidth_digits = "\uff11\uff16\uff10\uff10"  # int() reads them; a URL's expiry is ASCII
    malformed = ((None, query["signature"]), (query["expires"], None), ("-5", "x"), (fullwidth_digits, "x"))
    for expires, signature in malformed:
        assert links.check(3, expires, signature, now=1000.0) is Refusal.MISSING
    with pytest.raises(ValueError, match="16 bytes"):
        ChartLinks(b"short", CHART_URL_BASE, ttl=600)


def test_the_chart_key_is_the_secret_or_derived_from_the_webhook_token(tmp_path: Path) -> None:
    derived = Settings(webhook_token=SecretStr(TOKEN)).chart_key()
    assert derived == Settings(webhook_token=SecretStr(TOKEN)).chart_key()  # every replica alike
    assert derived != Settings(webhook_token=SecretStr(TOKEN + "x")).chart_key()
    assert TOKEN.encode() not in derived
    secret = tmp_path / "chart-secret"
    secret.write_text("a chart secret of its own\n")
    own = Settings(webhook_token=SecretStr(TOKEN), chart_secret_file=secret).chart_key()
    assert own == b"a chart secret of its own"
    with pytest.raises(ValueError, match="chart_url_base"):
        Settings(webhook_token=SecretStr(TOKEN), chart_url_base="bot.example")
    with pytest.raises(ValueError, match="chart_secret: 16 bytes at least"):
        Settings(webhook_token=SecretStr(TOKEN), chart_secret=SecretStr("short"))


# ---------------------------------------------------------------------- the bot

MakeBot = Callable[..., Awaitable[tuple[httpx.AsyncClient, Bot]]]


@pytest.fixture
async def make_bot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_pagerduty: FakePagerDuty, fake_slack: FakeSlack
) -> AsyncIterator[MakeBot]:
    """``await make_bot(prometheus_url=..., dry_run=...)``: the bot's app in process, delivering to
    the fakes (or recording, in a dry run), and an HTTP client for it."""
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        "routes:\n  - {name: page, match: {severity: critical}, pagerduty: {routing_key_env: PD_KEY},"
        " slack: {channels: ['#incidents']}}\n"
    )
    monkeypatch.setenv("PD_KEY", ROUTING_KEY)
    opened: list[tuple[httpx.AsyncClient, Bot]] = []

    async def make(*, prometheus_url: str, dry_run: bool = False, **overrides: Any) -> tuple[httpx.AsyncClient, Bot]:
        settings = Settings(
            webhook_token=SecretStr(TOKEN),
            database_url=f"sqlite+aiosqlite:///{tmp_path / f'bot{len(opened)}.db'}",
            routing_file=routes,
            dry_run=dry_run,
            slack_signing_secret=SecretStr("signing-secret"),
            prometheus_url=prometheus_url,
            chart_span=SPAN,
            chart_url_base=CHART_URL_BASE,
            public_url="http://bot",
            resolve_after=0.5,
            poll_interval=0.05,
            **overrides,
        )
        senders = None
        if not dry_run:
            senders = {
                Target.PAGERDUTY: PagerDutySender(
                    {"env:PD_KEY": ROUTING_KEY}, base_url=fake_pagerduty.base_url, ca_file=str(fake_pagerduty.ca_file)
                ),
                Target.SLACK: SlackSender("xoxb-charts", base_url=fake_slack.api_url),
            }
        bot = Bot(settings, senders=senders)
        await bot.start()
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(settings, bot=bot, listen_host="127.0.0.1")),
            base_url="http://bot",
        )
        opened.append((http, bot))
        return http, bot

    yield make
    for http, bot in opened:
        await http.aclose()
        await bot.stop()


async def settled(bot: Bot, *, within: float = 60.0, at_least: int = 1) -> list[Any]:
    """Wait until the outbox holds ``at_least`` items and none is pending; return them."""
    deadline = time.monotonic() + within
    while True:
        items = await rows(bot.db, outbox)
        if len(items) >= at_least and all(i.status != "pending" for i in items):
            return items
        assert time.monotonic() < deadline, [(i.target, i.action, i.status, i.last_error) for i in items]
        await asyncio.sleep(0.1)


def fired(status: str = "firing", spec: AlertSpec | None = None) -> tuple[dict[str, Any], AlertSpec]:
    spec = spec or AlertSpec(breaker_labels("openai", job=JOB))
    return webhook((spec, status)), spec


def kinds(items: list[Any]) -> list[tuple[str, str]]:
    return [(i.target, i.action) for i in items]


async def test_the_page_goes_first_then_the_chart_reaches_slack_pagerduty_and_the_page(
    stack: Stack, make_bot: MakeBot, fake_pagerduty: FakePagerDuty, fake_slack: FakeSlack
) -> None:
    http, bot = await make_bot(prometheus_url=stack.prometheus.url)
    payload, spec = fired()
    assert (await http.post("/v1/alertmanager", json=payload, headers=AUTH)).status_code == 200
    items = await settled(bot, at_least=6)
    assert kinds(items) == [
        ("pagerduty", "trigger"),
        ("slack", "card"),
        ("chart", "render"),
        ("slack", "chart"),  # the upload into the card's thread...
        ("pagerduty", "chart"),
        ("slack", "card"),  # ...then the card shows it
    ]
    assert all(i.status == "sent" for i in items), [(i.target, i.action, i.last_error) for i in items]
    (chart,) = await rows(bot.db, charts)
    assert (chart.version, chart.reason) == (1, "opened")
    assert chart.range_end - chart.range_start == SPAN

    # PagerDuty: the page, then an event of the same alert whose image is the chart's signed URL
    # (that the chart job waits for the page: test_the_chart_waits_for_the_page_and_cards_to_be_tried).
    (alert,) = fake_pagerduty.alerts()
    page, with_chart = alert.events
    assert "images" not in page.body
    (image,) = with_chart.body["images"]
    assert with_chart.dedup_key == page.dedup_key
    assert image["src"].startswith(f"{CHART_URL_BASE}/charts/{chart.id}.png?expires=")
    assert {"href": image["src"], "text": "Chart v1 (opened): the last 2 min (PNG)"} in with_chart.body["links"]

    # Slack: the PNG in the card's thread, then the card showing that file.
    (file,) = fake_slack.files
    assert file.content == chart.png
    (card_message,) = fake_slack.messages("#incidents")
    (shared,) = fake_slack.thread("#incidents", card_message.ts)
    assert [f["id"] for f in shared.files] == [file.id]
    assert shared.text == "Chart v1 (opened): the last 2 min."
    block = next(b for b in card_message.blocks if b["type"] == "image")
    assert block["slack_file"] == {"id": file.id}
    assert [c.method for c in fake_slack.calls].count("files.completeUploadExternal") == 1

    # The signed URL, served by the bot: the chart for a good signature, 403 for a tampered or expired one.
    path = image["src"].removeprefix(CHART_URL_BASE)
    served = await http.get(path)
    assert (served.status_code, served.headers["content-type"], served.content) == (200, "image/png", chart.png)
    # Tampered: the signature's first hex digit changed (always to another digit: replacing it with a
    # fixed one left it unchanged for one chart in 16, a flake CI met).
    tampered = re.sub(r"signature=(\w)", lambda m: "signature=" + ("1" if m[1] == "0" else "0"), path)
    assert tampered != path
    assert (await http.get(tampered)).status_code == 403
    assert (await http.get(path.replace(f"/charts/{chart.id}.png", f"/charts/{chart.id + 1}.png"))).status_code == 403
    expired = bot.chart_links.url(chart.id, ChartFormat.PNG, now=time.time() - bot.settings.chart_url_ttl - 5)
    refused = await http.get(expired.removeprefix(CHART_URL_BASE))
    assert (refused.status_code, refused.json()["detail"]) == (403, Refusal.EXPIRED.value)
    assert (await http.get(f"/charts/{chart.id}.png")).status_code == 403
    svg = await http.get(path.replace(".png?", ".svg?"))
    assert (svg.status_code, svg.headers["content-type"]) == (200, "image/svg+xml")

    # The incident page: the chart inline, as SVG.
    page_html = (await http.get("/incidents/1")).text
    inline = re.search(r'<img class="chart" src="data:image/svg\+xml;base64,([^"]+)"', page_html)
    assert inline is not None
    assert base64.b64decode(inline[1]).decode() == chart.svg
    assert [c["version"] for c in (await http.get("/v1/incidents/1")).json()["charts"]] == [1]

    # Resolved: a last chart, to Slack only (a PagerDuty trigger after the resolve would page again).
    await http.post("/v1/alertmanager", json=fired("resolved", spec)[0], headers=AUTH)
    items = await settled(bot, at_least=11)
    assert kinds(items[6:]) == [
        ("pagerduty", "resolve"),
        ("slack", "card"),
        ("chart", "render"),
        ("slack", "chart"),
        ("slack", "card"),
    ], kinds(items)
    assert [c.version for c in await rows(bot.db, charts)] == [1, 2]
    (alert,) = fake_pagerduty.alerts()
    assert [e.event_action for e in alert.events] == ["trigger", "trigger", "resolve"]
    assert len(fake_slack.files) == 2
    timeline = [e.kind for e in await rows(bot.db, events)]
    assert timeline.count("chart") == 2

    # Past the retention, the charts go with their incident, and their URLs lead nowhere.
    await asyncio.sleep(0.01)
    pruned = await Retention(bot.db, keep=0.005).prune()
    assert (pruned.incidents, pruned.charts, pruned.chart_uploads) == (1, 2, 2)
    assert (await http.get(path)).status_code == 404


class Recording:
    """A sender that only records what it was handed, and when."""

    dry_run = False

    def __init__(self, target: Target, delivered: list[str]) -> None:
        self.target = target
        self.delivered = delivered

    def destination_configured(self, destination: str) -> bool:
        return True

    async def close(self) -> None:
        return None

    async def send(self, item: Item, incident: IncidentView | None) -> Delivered:
        self.delivered.append(f"{item.target} {item.action}")
        return Delivered()


async def test_the_chart_waits_for_the_page_and_cards_to_be_tried(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    await db.create()
    clock = ManualClock()
    engine = Engine(db, EngineConfig(resolve_after=60, routing=ROUTING, charts=True), clock=clock)
    delivered: list[str] = []
    # PagerDuty's pace spent: its trigger stays untried in the outbox (as while its breaker is open).
    pagerduty_pace = RateLimiter("pd", RateLimitPolicy(limit=1, period=3600.0, burst=1))
    assert (await pagerduty_pace.acquire("env:PD_KEY")).allowed
    worker = OutboxWorker(
        db,
        {target: Recording(target, delivered) for target in Target},
        WorkerConfig("test", claim_timeout=30, quick_attempts=1, max_backoff=1, poll_interval=0.05, public_url=""),
        pacers={Target.PAGERDUTY: pagerduty_pace},
        metrics=BotMetrics(),
        clock=clock,
    )
    try:
        await store(db, webhook((AlertSpec(breaker_labels("openai", job=JOB)), "firing")))
        await engine.process_pending()
        assert [(t, a) for _, t, a, _ in await notifications(db)] == [
            ("pagerduty", "trigger"),
            ("slack", "card"),
            ("chart", "render"),
        ]
        await worker.drain_once()
        assert delivered == ["slack card"]  # the chart waits for the untried page...
        await worker.drain_once()
        assert delivered == ["slack card"]
        clock.advance(CHART_YIELDS_FOR + 1)  # ... for so long, no longer
        await worker.drain_once()
        assert delivered == ["slack card", "chart render"]
    finally:
        await worker.close()
        await db.dispose()


async def test_with_prometheus_down_the_incident_pages_without_a_chart_and_says_why(
    make_bot: MakeBot, fake_pagerduty: FakePagerDuty, fake_slack: FakeSlack
) -> None:
    nowhere = f"http://127.0.0.1:{find_free_port()}"
    http, bot = await make_bot(prometheus_url=nowhere)
    await http.post("/v1/alertmanager", json=fired()[0], headers=AUTH)
    items = await settled(bot, at_least=3)
    assert kinds(items) == [("pagerduty", "trigger"), ("slack", "card"), ("chart", "render")]
    assert all(i.status == "sent" for i in items)
    assert items[2].payload["delivered"] == f"no chart: Prometheus at {nowhere} is unreachable (ConnectError)"
    assert await rows(bot.db, charts) == []
    (alert,) = fake_pagerduty.alerts()
    assert [e.event_action for e in alert.events] == ["trigger"]
    assert fake_slack.files == []
    (why,) = [e for e in await rows(bot.db, events) if e.kind == "no_chart"]
    assert why.text == f"No chart this time: Prometheus at {nowhere} is unreachable (ConnectError)."
    assert "No chart this time" in (await http.get("/incidents/1")).text


async def test_a_password_in_the_prometheus_url_is_in_no_log_and_no_timeline(
    make_bot: MakeBot, caplog: pytest.LogCaptureFixture
) -> None:
    """Prometheus behind basic auth is configured as ``http://user:password@host``: when it is
    down, the reason quoted in the logs, the timeline and the outbox shows the URL without it."""
    caplog.set_level(logging.DEBUG)
    port = find_free_port()
    http, bot = await make_bot(prometheus_url=f"http://grafana-reader:{PASSWORD}@127.0.0.1:{port}")
    await http.post("/v1/alertmanager", json=fired()[0], headers=AUTH)
    items = await settled(bot, at_least=3)
    (why,) = [e for e in await rows(bot.db, events) if e.kind == "no_chart"]
    assert why.text == f"No chart this time: Prometheus at http://***@127.0.0.1:{port} is unreachable (ConnectError)."
    assert [r.getMessage() for r in caplog.records if PASSWORD in r.getMessage()] == []
    assert [e.text for e in await rows(bot.db, events) if PASSWORD in e.text] == []
    assert [i.payload for i in items if PASSWORD in str(i.payload)] == []
    assert PASSWORD not in (await http.get("/incidents/1")).text


class _BasicAuthPrometheus(BaseHTTPRequestHandler):
    """Prometheus's instant-query API, answering an empty vector; remembers each Authorization header."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": []}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


async def test_a_password_in_the_prometheus_url_logs_in_but_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    """With Prometheus up, the password still logs in (basic auth) and is in none of the lines
    httpx logs for each request."""
    caplog.set_level(logging.DEBUG)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BasicAuthPrometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    reader = PrometheusReader(f"http://grafana-reader:{PASSWORD}@127.0.0.1:{server.server_port}")
    try:
        assert await reader.query("up") == []
    finally:
        await reader.close()
        server.shutdown()
        server.server_close()
    expected = "Basic " + base64.b64encode(f"grafana-reader:{PASSWORD}".encode()).decode()
    assert _BasicAuthPrometheus.seen == [expected]
    assert any("HTTP Request: GET" in r.getMessage() for r in caplog.records)  # httpx did log the request
    assert [r.getMessage() for r in caplog.records if PASSWORD in r.getMessage()] == []


async def test_a_dry_run_draws_the_chart_and_records_the_posts_it_would_make(
    stack: Stack, make_bot: MakeBot, fake_pagerduty: FakePagerDuty, fake_slack: FakeSlack
) -> None:
    http, bot = await make_bot(prometheus_url=stack.prometheus.url, dry_run=True)
    await http.post("/v1/alertmanager", json=fired()[0], headers=AUTH)
    items = await settled(bot, at_least=6)
    assert kinds(items) == [
        ("pagerduty", "trigger"),
        ("slack", "card"),
        ("chart", "render"),
        ("slack", "chart"),
        ("pagerduty", "chart"),
        ("slack", "card"),
    ]
    assert [i.dry_run for i in items] == [True, True, False, True, True, True]  # drawing is for real
    (chart,) = await rows(bot.db, charts)
    upload, image_event, card = (i.payload["delivered"] for i in items[3:])
    assert '"method": "files.upload_v2"' in upload
    assert f'"png_bytes": {len(chart.png)}' in upload
    assert f'"src": "{CHART_URL_BASE}/charts/{chart.id}.png?expires=' in image_event
    assert f'"slack_file": {{"id": "dry-run-F{chart.id}"}}' in card
    assert fake_pagerduty.alerts() == []
    assert fake_slack.calls == []
    assert '<img class="chart" src="data:image/svg+xml;base64,' in (await http.get("/incidents/1")).text
