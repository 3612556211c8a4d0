"""End to end: the `make up` stack through an OpenAI outage and its recovery, to PagerDuty and Slack.

``breakerpanel up --fast`` (1 s scrape and evaluation, Alertmanager group_wait 0s) starts the whole
stack on free ports with a private state folder, as a user would, with two changes passed through the
CLI's own options: ``--rule-file`` loads the rules rendered by :mod:`breakerpanel.alert_rules` from the committed
configuration with a short ``for:`` on CircuitBreakerOpen (5m in production), and ``--env`` points the
incident bot at the test's fake PagerDuty and Slack (not dry run) with a short resolve delay.

With steady load on the demo, ``breakerpanel chaos openai outage`` breaks OpenAI. Users keep getting
answers (fallbacks, never a 5xx); the ``openai`` breaker opens; CircuitBreakerOpen fires in Prometheus;
Alertmanager delivers it to the bot; PagerDuty gets a trigger with the bot's dedup key and Slack a card;
every dashboard query returns data. ``chaos clear`` heals: the breaker closes, the alert resolves,
PagerDuty gets the resolve for the same key and the card is updated. ``down`` leaves nothing behind.

The page carries its context: once the trigger is out, the bot draws the breaker's chart from
Prometheus and PagerDuty gets an event of the same alert with the chart as its image (by the bot's
signed URL), Slack the chart in the card's thread and on the card.

Time-to-page (the fault in place -> PagerDuty received the trigger), time-to-chart (the fault in place
-> PagerDuty received the chart's image) and time-to-resolve (the fault cleared -> PagerDuty received
the resolve) are written to ``bench/results/e2e.json`` with what each stage took; they are measured,
not asserted: every wait below only has a generous timeout.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

from breakerpanel.alert_rules import DEFAULT_CONFIG, load_rules_config, render
from breakerpanel.exporter.loop_names import Var
from demo.cli import FAST
from demo.load import BackgroundLoad, LoadReport
from demo.stack.paths import REPO_ROOT
from demo.stack.procs import group_members
from demo.stack.status import breaker_nodes
from tests.dashboards.support import query_every_dashboard
from tests.fakes import FakePagerDuty, FakeSlack
from tests.incident_bot.processes import (
    INCIDENTS_CHANNEL,
    ROUTING_KEY,
    SIGNING_SECRET,
    SLACK_TOKEN,
    card_incident_id,
    cards_by_incident,
)
from tests.servers import PrometheusClient, wait_until

from .stackcli import cli, free_service_ports, live_processes_of, port_args, port_free, require_binaries

_T = TypeVar("_T")

RESULTS = REPO_ROOT / "bench" / "results" / "e2e.json"
#: Each stage may take this long on a busy 2-core machine; it ends as soon as its condition holds.
STAGE_TIMEOUT = 60.0
#: The shortest `for:` the rules' configuration accepts: pending at one evaluation, firing at the next.
OPEN_ALERT_FOR = "1s"
#: The bot resolves an incident once its alerts have been over for this long (5m by default).
RESOLVE_AFTER_S = 2
#: On top of the stack's own load generator (2/s): enough calls per breaker window to judge it fast.
LOAD_RPS = 4.0
BREAKER = "openai"
#: Where the bot tells PagerDuty to fetch its charts from.
CHART_URL_BASE = "https://incident-bot.e2e.invalid"
FALLBACKS = ("anthropic", "cache", "semantic_cache", "degraded")
#: Dashboard variables: the demo's job, and the breaker that opens (the alert links to its detail).
DASHBOARD_VARIABLES: dict[str, str] = {
    Var.JOB: "demo",
    Var.SERVICE: BREAKER,
    Var.BREAKER: BREAKER,
    Var.SLO: "llm-providers",
}
#: (dashboard uid, where) -> why the query may return nothing while OpenAI is down.
NO_DATA_EXPECTED: dict[tuple[str, str], str] = {
    ("breakerpanel-detail", "panel 'Fallbacks by type and outcome' target A"): (
        "the openai service breaker has no fallback of its own: the answer feature's chain serves "
        "(the AI providers dashboard's alternate-provider panel must show it)"
    ),
    ("breakerpanel-detail", "panel 'Median recovery (range)' target A"): (
        "OpenAI is still down: no recovery in the range yet, which the stat shows as 'no recovery' "
        "(tests/dashboards/test_live.py checks its value after one)"
    ),
}


# ---------------------------------------------------------------------- the stack's parts


def short_rules(directory: Path) -> Path:
    """The committed rules' configuration, rendered by alert_rules itself (every name and expression is
    the generated one), with two changes through its own keys: CircuitBreakerOpen's ``for:`` and
    ``keep_firing_for`` shortened (the paging variant fires a second after the warning; the alert ends a
    second after the breaker closes), and no error-budget burn alerts. Their shortest window is 5m:
    after the recovery they would keep the breaker's incident open for minutes (the bot resolves it
    once all its alerts are over), and in a stack this young they would fire before the breaker's own
    alert, which is the path measured here.
    The SLOs and their recording rules stay: the SLO dashboard reads them."""
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["alerts"]["open"]["for"] = OPEN_ALERT_FOR
    config["alerts"]["open"]["keep_firing_for"] = OPEN_ALERT_FOR
    config["alerts"]["error_budget_burn"] |= {"page": [], "ticket": []}
    config_path = directory / "rules-config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    rules = directory / "e2e.rules.yaml"
    rules.write_text(render(load_rules_config(config_path)))
    return rules


def bot_environment(pagerduty: FakePagerDuty, slack: FakeSlack) -> dict[str, str]:
    """The bot's settings for the fakes; routes stay the stack's own (deploy/incident-bot/routes.yaml),
    whose critical route pages the key in PAGERDUTY_ROUTING_KEY and posts to #incidents."""
    return {
        "INCIDENT_BOT_DRY_RUN": "false",
        "INCIDENT_BOT_PAGERDUTY_BASE_URL": pagerduty.base_url,
        "INCIDENT_BOT_PAGERDUTY_CA_FILE": str(pagerduty.ca_file),
        "PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
        "INCIDENT_BOT_SLACK_BASE_URL": slack.api_url,
        "INCIDENT_BOT_SLACK_BOT_TOKEN": SLACK_TOKEN,
        "INCIDENT_BOT_SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "INCIDENT_BOT_RESOLVE_AFTER": str(RESOLVE_AFTER_S),
        # PagerDuty shows images from https:// URLs only (the fake checks it too); nothing fetches it here.
        "INCIDENT_BOT_CHART_URL_BASE": CHART_URL_BASE,
    }


def env_args(service: str, env: Mapping[str, str]) -> list[str]:
    return [arg for name, value in env.items() for arg in ("--env", f"{service}:{name}={value}")]


@dataclass
class Timeline:
    """Wall-clock times (``time.time()``) of what the test saw, for bench/results/e2e.json."""

    events: dict[str, float] = field(default_factory=dict)

    def mark(self, name: str, at: float | None = None) -> float:
        self.events[name] = time.time() if at is None else at
        return self.events[name]

    def since(self, start: str, name: str) -> float:
        return round(self.events[name] - self.events[start], 3)


def stage(check: Callable[[], _T | None], what: str, *, interval: float = 0.1) -> _T:
    return wait_until(check, timeout=STAGE_TIMEOUT, interval=interval, what=what)


# ---------------------------------------------------------------------- what the test reads


@dataclass
class Stack:
    state_dir: Path
    ports: dict[str, int]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def get(self, name: str, path: str, **params: str | int) -> Any:
        response = httpx.get(self.url(name) + path, params=params, timeout=10, trust_env=False)
        response.raise_for_status()
        return response.json()

    def breaker(self, name: str) -> dict[str, Any]:
        """The breaker's node in the demo's /health/ready tree."""
        tree = self.get("demo", "/health/ready")["breakers"]
        return next(node for node in breaker_nodes(tree) if node.get("name") == name)

    def alerts(self, prometheus: PrometheusClient, alertname: str, *states: str) -> list[dict[str, Any]]:
        """Prometheus's alerts ``alertname`` about the breaker, in one of ``states`` (pending, firing)."""
        return [
            alert
            for alert in prometheus.alerts()
            if alert["labels"].get("alertname") == alertname
            and alert["labels"].get("circuit_breaker_name") == BREAKER
            and alert["state"] in states
        ]

    def incident(self) -> dict[str, Any] | None:
        """The bot's critical incident about the breaker (the route that pages), with its alerts."""
        for summary in self.get("incident-bot", "/v1/incidents", limit=500):
            if summary["labels"].get("circuit_breaker_name") == BREAKER and summary["severity"] == "critical":
                found: dict[str, Any] = self.get("incident-bot", f"/v1/incidents/{summary['id']}")
                return found
        return None


def pagerduty_event(pagerduty: FakePagerDuty, dedup_key: str, action: str) -> Any:
    return next((e for e in pagerduty.alert_events if e.dedup_key == dedup_key and e.event_action == action), None)


def pagerduty_chart(pagerduty: FakePagerDuty, dedup_key: str) -> Any:
    """The first event of the page that carries the bot's chart as its image."""
    return next((e for e in pagerduty.alert_events if e.dedup_key == dedup_key and e.body.get("images")), None)


def slack_chart(slack: FakeSlack, card_ts: str) -> Any:
    """The completed upload of a chart into the card's thread."""
    shares = [m for m in slack.thread(INCIDENTS_CHANNEL, card_ts) if m.files]
    if not shares:
        return None
    completed = slack.calls_to("files.completeUploadExternal")
    return next(c for c in completed if c.ok and c.args.get("thread_ts") == card_ts)


def at(moment: datetime) -> float:
    return moment.astimezone(UTC).timestamp()


# ---------------------------------------------------------------------- the test


def test_an_openai_outage_pages_and_heals_end_to_end(
    fake_pagerduty: FakePagerDuty, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    require_binaries()
    ports = free_service_ports(("prometheus", "alertmanager", "grafana", "redis", "upstreams", "demo", "incident-bot"))
    stack = Stack(tmp_path / "stack", ports)
    rules = short_rules(tmp_path)
    up = cli(
        stack.state_dir,
        "up",
        "--fast",
        "--rule-file",
        str(rules),
        *port_args(ports),
        *env_args("incident-bot", bot_environment(fake_pagerduty, fake_slack)),
    )
    assert up.returncode == 0, up.stdout + up.stderr
    state = json.loads((stack.state_dir / "state.json").read_text())
    timeline = Timeline()
    timeline.mark("stack_started", state["started_at"])
    load: BackgroundLoad | None = None
    prometheus = PrometheusClient(stack.url("prometheus"))
    try:
        assert "DRY RUN" not in (stack.state_dir / "logs" / "incident-bot.log").read_text()
        for job in ("demo", "incident-bot", "prometheus"):
            prometheus.wait_for_target_up(job, timeout=STAGE_TIMEOUT)
        load = running = BackgroundLoad(stack.url("demo"), LOAD_RPS).start()
        # A healthy baseline: answers from OpenAI, and nothing firing about the breaker yet.
        stage(lambda: running.latest is not None and _served(running.latest, ("openai",)) >= 10, "healthy answers")
        assert stack.breaker(BREAKER)["state"] == "closed"
        assert stack.alerts(prometheus, "CircuitBreakerOpen", "pending", "firing") == []

        # -- the outage
        timeline.mark("chaos_command")
        chaos = cli(stack.state_dir, "chaos", BREAKER, "outage")
        # The fault is in place once the CLI has the upstreams' answer: time-to-page counts from here
        # (the CLI's own start-up, before the fault existed, is not the stack's to answer for).
        timeline.mark("injected")
        assert chaos.returncode == 0, chaos.stderr
        assert "openai: outage" in chaos.stdout

        stage(lambda: stack.breaker(BREAKER)["state"] == "open", "the openai breaker open (demo /health/ready)")
        timeline.mark("breaker_open")

        def paging() -> list[dict[str, Any]]:
            alerts = stack.alerts(prometheus, "CircuitBreakerOpen", "firing")
            return [a for a in alerts if a["labels"]["severity"] == "critical"]

        firing = stage(paging, "CircuitBreakerOpen firing at critical")
        timeline.mark("open_alert_firing")
        # When the rule first matched (pending): the scrape and evaluation after the breaker opened.
        timeline.mark("open_alert_active", datetime.fromisoformat(firing[0]["activeAt"]).timestamp())
        assert firing[0]["labels"]["severity"] == "critical"

        def delivered() -> dict[str, Any] | None:
            incident = stack.incident()
            alerts = [] if incident is None else [a["alertname"] for a in incident["alerts"]]
            return incident if "CircuitBreakerOpen" in alerts else None

        incident = stage(delivered, "Alertmanager's CircuitBreakerOpen in the bot's incident", interval=0.2)
        timeline.mark("open_alert_at_bot")
        dedup_key = incident["dedup_key"]
        trigger = stage(lambda: pagerduty_event(fake_pagerduty, dedup_key, "trigger"), "the PagerDuty trigger")
        timeline.mark("paged", at(trigger.received_at))
        # When the bot queued it (the critical alert processed): the bot's share of time_to_page_s.
        timeline.mark("page_queued", stage(lambda: _page_queued(stack, incident["id"]), "the page in the outbox"))
        assert trigger.routing_key == ROUTING_KEY
        assert fake_pagerduty.alert(dedup_key).status == "triggered"
        stage(lambda: cards_by_incident(fake_slack)[incident["id"]] == 1, "the Slack card in #incidents")
        card = next(m for m in fake_slack.messages(INCIDENTS_CHANNEL) if card_incident_id(m) == incident["id"])
        posted = next(c for c in fake_slack.calls_to("chat.postMessage") if c.ok and c.response.get("ts") == card.ts)
        timeline.mark("carded", at(posted.received_at))
        # Then the chart: drawn once the page was out, as the image of an event of the same PagerDuty alert...
        charted = stage(lambda: pagerduty_chart(fake_pagerduty, dedup_key), "the chart's image on the page")
        timeline.mark("charted", at(charted.received_at))
        (image,) = charted.body["images"]
        assert image["src"].startswith(f"{CHART_URL_BASE}/charts/")
        assert charted.received_at >= trigger.received_at
        # ... and in the card's thread, then on the card.
        uploaded = stage(lambda: slack_chart(fake_slack, card.ts), "the chart in the Slack card's thread")
        timeline.mark("chart_in_slack", at(uploaded.received_at))

        def card_shows_the_chart() -> bool:
            shown = fake_slack.message(INCIDENTS_CHANNEL, card.ts)
            return any(block["type"] == "image" for block in shown.blocks)

        stage(card_shows_the_chart, "the chart on the Slack card")
        drawn = stack.get("incident-bot", f"/v1/incidents/{incident['id']}")["charts"]
        assert drawn, "the incident lists no chart"

        # Users are served by the fallbacks meanwhile (never by OpenAI: its breaker is open).
        outage_start = running.snapshot()
        stage(lambda: _served(running.snapshot(), FALLBACKS) > _served(outage_start, FALLBACKS), "fallback answers")
        # Every dashboard query, as Grafana would run it, over the run so far.
        problems, ran = query_every_dashboard(
            prometheus,
            timeline.events["stack_started"],
            time.time(),
            preferred=DASHBOARD_VARIABLES,
            no_data_expected=NO_DATA_EXPECTED,
        )
        assert problems == [], "\n\n".join(problems)
        assert ran > 50
        outage_end = running.snapshot()
        assert _served(outage_end, ("openai",)) == _served(outage_start, ("openai",))

        # -- the recovery
        clear = cli(stack.state_dir, "chaos", BREAKER, "clear")
        timeline.mark("cleared")
        assert clear.returncode == 0, clear.stderr
        stage(lambda: stack.breaker(BREAKER)["state"] == "closed", "the openai breaker closed")
        timeline.mark("breaker_closed")
        stage(lambda: not stack.alerts(prometheus, "CircuitBreakerOpen", "pending", "firing"), "the alert resolved")
        timeline.mark("open_alert_resolved")
        resolve = stage(lambda: pagerduty_event(fake_pagerduty, dedup_key, "resolve"), "the PagerDuty resolve")
        timeline.mark("page_resolved", at(resolve.received_at))
        assert fake_pagerduty.alert(dedup_key).status == "resolved"
        # The page, its chart's events (triggers of the same alert), then the resolve: nothing after it.
        actions = [e.event_action for e in fake_pagerduty.alert(dedup_key).events]
        assert actions[0] == "trigger"
        assert actions[-1] == "resolve"
        assert set(actions[1:-1]) == {"trigger"}
        assert all(e.body.get("images") for e in fake_pagerduty.alert(dedup_key).events[1:-1])

        def card_updated() -> bool:
            card = next(m for m in fake_slack.messages(INCIDENTS_CHANNEL) if card_incident_id(m) == incident["id"])
            return card.edited and card.text.startswith("Resolved: ")

        stage(card_updated, "the Slack card updated to Resolved")
        timeline.mark("card_updated")
        assert cards_by_incident(fake_slack)[incident["id"]] == 1  # updated in place, not posted again
        resolved = stack.get("incident-bot", f"/v1/incidents/{incident['id']}")
        assert resolved["status"] == "resolved"
        assert resolved["dedup_key"] == dedup_key

        load = None
        report = running.stop()
        # Never a 5xx (nor any other failure) for a user because a dependency was down.
        assert report.server_errors == 0, report.line()
        assert report.errors == 0, report.line()
        assert report.by_served_by.get("openai", 0) > 0, report.line()
        assert fake_pagerduty.rejected == []
        assert fake_slack.rejected == []
        _write_results(timeline, report, dedup_key, trigger)
    finally:
        if load is not None:
            load.stop()
        prometheus.close()
        _down_leaves_nothing(stack)


def _page_queued(stack: Stack, incident_id: int) -> float | None:
    """When the bot queued the incident's PagerDuty trigger (its outbox item's ``created_at``)."""
    deliveries = stack.get("incident-bot", f"/v1/incidents/{incident_id}")["deliveries"]
    queued = [d["created_at"] for d in deliveries if (d["target"], d["action"]) == ("pagerduty", "trigger")]
    return min(queued, default=None)


def _served(report: LoadReport, paths: tuple[str, ...]) -> int:
    return sum(report.by_served_by.get(path, 0) for path in paths)


def _down_leaves_nothing(stack: Stack) -> None:
    processes = json.loads((stack.state_dir / "state.json").read_text())["processes"]
    down = cli(stack.state_dir, "down")
    assert down.returncode == 0, down.stderr
    assert down.stdout.count(" stopped (process group ") == len(processes), down.stdout
    for process in processes:
        assert group_members(process["pid"], started_at_or_after=process["start_ticks"]) == [], process["name"]
    assert live_processes_of(stack.state_dir) == []
    assert all(port_free(port) for name, port in stack.ports.items() if name != "grafana")
    assert not (stack.state_dir / "state.json").exists()


def _write_results(timeline: Timeline, report: LoadReport, dedup_key: str, trigger: Any) -> None:
    t = timeline
    results = {
        "time_to_page_s": t.since("injected", "paged"),
        "time_to_chart_s": t.since("injected", "charted"),
        "time_to_resolve_s": t.since("cleared", "page_resolved"),
        "bot_queue_to_page_s": t.since("page_queued", "paged"),
        "definition": (
            "time_to_page_s: the fault in place (the chaos CLI got the upstreams' answer) -> the fake PagerDuty "
            "received the trigger for the openai incident; time_to_chart_s: the fault in place -> it received the "
            "event of the same alert carrying the breaker's chart as its image (drawn after the page went out); "
            "time_to_resolve_s: the fault cleared -> it received the resolve for the same dedup_key; "
            "bot_queue_to_page_s: the bot queued the trigger (the critical alert processed) -> the fake PagerDuty "
            "received it"
        ),
        "paged_by": trigger.payload.get("class"),
        "page_summary": trigger.payload.get("summary"),
        "dedup_key": dedup_key,
        "settings": {
            "scrape_interval": FAST["scrape_interval"],
            "evaluation_interval": FAST["evaluation_interval"],
            "group_wait": FAST["group_wait"],
            "group_interval": FAST["group_interval"],
            "circuit_breaker_open_for": OPEN_ALERT_FOR,
            "error_budget_burn_alerts": "left out (5m windows at the shortest)",
            "incident_bot_resolve_after_s": RESOLVE_AFTER_S,
            "load_rps": {"test": LOAD_RPS, "stack_load_service": "as in docker-compose.yml"},
            "breakers": "demo/breakers.yaml",
        },
        "stages_since_injected_s": {
            name: t.since("injected", name)
            for name in ("breaker_open", "open_alert_active", "open_alert_firing", "open_alert_at_bot", "paged")
        }
        | {
            "page_queued": t.since("injected", "page_queued"),
            "slack_card": t.since("injected", "carded"),
            "chart_on_page": t.since("injected", "charted"),
            "chart_in_slack": t.since("injected", "chart_in_slack"),
        },
        "stages_since_cleared_s": {
            name: t.since("cleared", name)
            for name in ("breaker_closed", "open_alert_resolved", "page_resolved", "card_updated")
        },
        "chaos_cli_s": t.since("chaos_command", "injected"),
        "timestamps": {name: datetime.fromtimestamp(value, UTC).isoformat() for name, value in t.events.items()},
        "load": report.line().strip(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


@pytest.fixture(autouse=True)
def _no_stack_left(tmp_path: Path) -> Iterator[None]:
    """A safety net if the test fails before its own `down`: never leave a stack running."""
    yield
    if (tmp_path / "stack" / "state.json").exists():
        cli(tmp_path / "stack", "down")
