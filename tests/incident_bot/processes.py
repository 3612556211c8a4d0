"""The incident bot as a real process, and what the system tests around it share.

:class:`BotProcess` runs ``python -m breakerpanel.incident_bot`` in its own process group, on a free loopback port,
with its own environment (``INCIDENT_BOT_*`` from the test only, nothing inherited) and a log file. It is
a :class:`tests.servers.ServerProcess`, so it has the same lifecycle as the real servers there:
``start()`` returns once ``/readyz`` answers 200 *and* the bot's own log says uvicorn listens on our port
(a stranger on the port cannot pass for it), ``kill()`` is SIGKILL (a crash: no shutdown code runs),
``stop()`` is SIGTERM (then SIGKILL after ``stop_timeout``), ``restart()`` comes back on the same port with
the same database. Start it through a pool so that it is killed at the end of the test whatever happens,
and so that a failing test's report ends with the bot's log::

    def test_x(server_pool: ServerPool, fake_pagerduty: FakePagerDuty, fake_slack: FakeSlack, tmp_path: Path):
        bot = server_pool.start(BotProcess(fake_environment(fake_pagerduty, fake_slack, tmp_path)))
        bot.post_webhook(webhook(...))
        wait_until(lambda: bot.incidents(status="open"), timeout=10, what="an incident")

Also here: the routes file and credentials the tests give the bot, Alertmanager configs that send to a
bot with its bearer token, alerts to POST to Alertmanager, and counting what reached the fakes.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes import FakePagerDuty, FakeSlack, SlackMessage
from tests.servers import ServerProcess

__all__ = [
    "INCIDENTS_CHANNEL",
    "ROUTING_KEY",
    "ROUTING_KEY_ENV",
    "SIGNING_SECRET",
    "SLACK_TOKEN",
    "WARNINGS_CHANNEL",
    "WEBHOOK_TOKEN",
    "BotProcess",
    "TcpGate",
    "alertmanager_config",
    "am_alert",
    "card_incident_id",
    "cards_by_incident",
    "fake_environment",
    "iso",
    "pagerduty_triggers",
    "write_routes",
]

REPO_ROOT: Final = Path(__file__).resolve().parents[2]

WEBHOOK_TOKEN: Final = "system-test-webhook-token"
ROUTING_KEY_ENV: Final = "PAGERDUTY_ROUTING_KEY"
#: PagerDuty routing keys are 32 alphanumeric characters (the fake checks, like PagerDuty).
ROUTING_KEY: Final = "SYSTEMTEST0123456789abcdefABCDEF"
SLACK_TOKEN: Final = "xoxb-system-test"
SIGNING_SECRET: Final = "system-test-signing-secret"
INCIDENTS_CHANNEL: Final = "#incidents"
WARNINGS_CHANNEL: Final = "#breakers"

#: Critical alerts page (PagerDuty) and post to #incidents; everything else posts to #breakers.
ROUTES_YAML: Final = f"""\
routes:
  - name: page on critical breakers
    match: {{severity: critical}}
    pagerduty: {{routing_key_env: {ROUTING_KEY_ENV}}}
    slack: {{channels: ["{INCIDENTS_CHANNEL}"]}}
default:
  slack: {{channels: ["{WARNINGS_CHANNEL}"]}}
"""

_ENV_PREFIX: Final = "INCIDENT_BOT_"


def write_routes(directory: Path) -> Path:
    """Write :data:`ROUTES_YAML` into ``directory`` and return its path."""
    path = directory / "routes.yaml"
    path.write_text(ROUTES_YAML)
    return path


def fake_environment(
    pagerduty: FakePagerDuty, slack: FakeSlack, directory: Path, **settings: str | float | int
) -> dict[str, str]:
    """The environment of a bot that pages through ``pagerduty`` and posts to ``slack``, with the routes of
    :data:`ROUTES_YAML`. ``settings`` are more ``INCIDENT_BOT_*`` values, by lower-case name without the
    prefix: ``fake_environment(pd, slack, tmp_path, resolve_after=2, claim_timeout=3)``."""
    env = {
        "INCIDENT_BOT_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "INCIDENT_BOT_ROUTING_FILE": str(write_routes(directory)),
        "INCIDENT_BOT_PAGERDUTY_BASE_URL": pagerduty.base_url,
        "INCIDENT_BOT_PAGERDUTY_CA_FILE": str(pagerduty.ca_file),
        "INCIDENT_BOT_SLACK_BOT_TOKEN": SLACK_TOKEN,
        "INCIDENT_BOT_SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "INCIDENT_BOT_SLACK_BASE_URL": slack.api_url,
        "INCIDENT_BOT_DRY_RUN": "false",
        # Quick enough for tests: short waits between delivery attempts, idle workers look often.
        "INCIDENT_BOT_MAX_BACKOFF": "1",
        "INCIDENT_BOT_POLL_INTERVAL": "0.1",
        ROUTING_KEY_ENV: ROUTING_KEY,
    }
    env.update({_ENV_PREFIX + name.upper(): str(value) for name, value in settings.items()})
    return env


class BotProcess(ServerProcess):
    """``python -m breakerpanel.incident_bot --host 127.0.0.1 --port P`` with ``env`` as its only configuration.

    ``env`` holds the ``INCIDENT_BOT_*`` settings (and the variables routes name, such as the routing key);
    every ``INCIDENT_BOT_*`` of the test process itself is left out. Without ``INCIDENT_BOT_DATABASE_URL`` the
    bot gets a SQLite file in its private directory, which survives ``kill()`` and ``restart()``.
    ``replica_id`` sets ``INCIDENT_BOT_REPLICA_ID`` (the outbox records it as ``claimed_by``/``sent_by``).
    """

    kind = "incident-bot"

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        replica_id: str | None = None,
        port: int | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        http_timeout: float = 10.0,
        log_level: str = "info",
    ) -> None:
        self.env = dict(env)
        if replica_id is not None:
            self.env["INCIDENT_BOT_REPLICA_ID"] = replica_id
        self.replica_id = self.env.get("INCIDENT_BOT_REPLICA_ID")
        self.log_level = log_level
        self.http_timeout = http_timeout
        self._client: httpx.Client | None = None
        super().__init__(port=port, start_timeout=start_timeout, stop_timeout=stop_timeout)
        self.env.setdefault("INCIDENT_BOT_DATABASE_URL", f"sqlite+aiosqlite:///{self.directory / 'incident_bot.db'}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def webhook_url(self) -> str:
        """What Alertmanager's ``webhook_configs[].url`` points at."""
        return f"{self.url}/v1/alertmanager"

    @property
    def database_url(self) -> str:
        return self.env["INCIDENT_BOT_DATABASE_URL"]

    @property
    def http(self) -> httpx.Client:
        """A client bound to the bot (proxy variables ignored), closed whenever the process stops."""
        if self._client is None:
            self._client = httpx.Client(base_url=self.url, timeout=self.http_timeout, trust_env=False)
        return self._client

    # The process ------------------------------------------------------------------------------------

    def _command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "breakerpanel.incident_bot",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            self.log_level,
        ]

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in super()._environment().items() if not k.startswith(_ENV_PREFIX)}
        env.update(self.env)
        env["PYTHONPATH"] = str(REPO_ROOT)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _is_ready(self) -> bool:
        try:
            response = self.http.get("/readyz", timeout=0.5)
        except httpx.TransportError:
            return False
        if response.status_code != 200:
            return False
        # /readyz alone could be a stranger's answer: our own log must say that we listen on this port.
        listening = f"Uvicorn running on http://127.0.0.1:{self.port}"
        return listening in self.log_tail(lines=200, since_launch=True)

    def _on_stopped(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # Its HTTP API -----------------------------------------------------------------------------------

    def post_webhook(self, payload: Mapping[str, Any], *, token: str = WEBHOOK_TOKEN) -> httpx.Response:
        """POST an Alertmanager webhook as Alertmanager does (bearer token); the response, unchecked."""
        return self.http.post("/v1/alertmanager", json=dict(payload), headers={"Authorization": f"Bearer {token}"})

    def incidents(self, status: str | None = None, *, limit: int = 500) -> list[dict[str, Any]]:
        """``GET /v1/incidents``, newest first."""
        params: dict[str, str | int] = {"limit": limit}
        if status is not None:
            params["status"] = status
        response = self.http.get("/v1/incidents", params=params)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found

    def incident(self, incident_id: int) -> dict[str, Any]:
        """``GET /v1/incidents/{id}``: the incident with its alerts, timeline and deliveries."""
        response = self.http.get(f"/v1/incidents/{incident_id}")
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    def metrics(self) -> dict[str, float]:
        """``GET /metrics`` as ``{'name{label="v",...}': value}`` (samples only, labels sorted)."""
        response = self.http.get("/metrics")
        response.raise_for_status()
        samples: dict[str, float] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
        return samples

    def metric(self, name: str, **labels: str) -> float:
        """One sample of :meth:`metrics` (0 when absent: counters with labels appear at their first increment)."""
        rendered = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        return self.metrics().get(f"{name}{{{rendered}}}" if rendered else name, 0.0)

    def pending_deliveries(self) -> list[dict[str, Any]]:
        """Outbox items not yet sent (nor dead), over every incident: for failure messages and waits."""
        return [
            {"incident": incident["id"], **delivery}
            for summary in self.incidents()
            for incident in [self.incident(summary["id"])]
            for delivery in incident["deliveries"]
            if delivery["status"] == "pending"
        ]


# --------------------------------------------------------------------------------------------------------
# Alertmanager


def iso(at: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as Alertmanager's API takes it."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def am_alert(
    labels: Mapping[str, str], *, starts_at: datetime, ends_at: datetime | None = None, summary: str = ""
) -> dict[str, Any]:
    """An alert for ``POST /api/v2/alerts``. Give the same ``starts_at`` to every Alertmanager and to the
    resolving POST: the bot keys an alert's episode on its fingerprint and ``startsAt``. An ``ends_at`` in the
    past resolves it."""
    alert: dict[str, Any] = {
        "labels": dict(labels),
        "annotations": {
            "summary": summary or f"{labels.get('circuit_breaker_name', 'breaker')} has been open for 5m.",
            "runbook_url": "https://runbooks.example/circuit-breaker-open.md",
        },
        "startsAt": iso(starts_at),
        "generatorURL": "http://prometheus.example/graph",
    }
    if ends_at is not None:
        alert["endsAt"] = iso(ends_at)
    return alert


def alertmanager_config(
    bot_url: str,
    token_file: Path,
    *,
    group_by: Sequence[str] = ("alertname",),
    group_wait: str = "0s",
    group_interval: str = "1s",
    repeat_interval: str = "1h",
) -> dict[str, Any]:
    """Everything to one webhook receiver: the bot at ``bot_url`` (its ``/v1/alertmanager``), bearer token read
    from ``token_file`` (Alertmanager 0.25 has no ``url_file``, but reads credentials from a file), resolved
    alerts sent too."""
    return {
        "route": {
            "receiver": "incident-bot",
            "group_by": list(group_by),
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [
            {
                "name": "incident-bot",
                "webhook_configs": [
                    {
                        "url": f"{bot_url.rstrip('/')}/v1/alertmanager",
                        "send_resolved": True,
                        "http_config": {"authorization": {"type": "Bearer", "credentials_file": str(token_file)}},
                    }
                ],
            }
        ],
    }


# --------------------------------------------------------------------------------------------------------
# What reached the fakes

_HEADER: Final = re.compile(r"#(\d+) ")


def card_incident_id(message: SlackMessage) -> int | None:
    """The incident a card is about (its header reads ``#<id> <title>``); None for other messages."""
    for block in message.blocks:
        if block.get("type") == "header":
            found = _HEADER.match(str(block.get("text", {}).get("text", "")))
            return int(found.group(1)) if found else None
    return None


def cards_by_incident(slack: FakeSlack, channel: str = INCIDENTS_CHANNEL) -> Counter[int]:
    """How many cards (top-level messages with the bot's card header) each incident got in ``channel``."""
    return Counter(i for m in slack.messages(channel) if (i := card_incident_id(m)) is not None)


def pagerduty_triggers(pagerduty: FakePagerDuty) -> Counter[str]:
    """Accepted trigger events per dedup key (retried requests the fake answered 429/5xx are not events)."""
    return Counter(e.dedup_key for e in pagerduty.alert_events if e.event_action == "trigger" and e.dedup_key)


# --------------------------------------------------------------------------------------------------------
# A cuttable link


class TcpGate:
    """A TCP relay from ``127.0.0.1:port`` to ``127.0.0.1:upstream_port`` that can be cut.

    Put one between a bot and a fake (its base URL pointing at the gate; TLS passes through untouched, the
    fake's certificate names 127.0.0.1 too). After :meth:`cut`, bytes from the bot are dropped instead of
    forwarded: a request it starts from then on never reaches the fake, while answers to requests already
    forwarded still come back. That lets a test kill the bot while it holds outbox claims whose requests
    are provably not delivered, rather than in the instant between the fake's answer and the bot's commit.

    :attr:`dropped` counts the chunks dropped since the cut; :meth:`quiet_for` is the time since bytes last
    went back to the bot, and :meth:`awaiting_answers` the connections whose last forwarded bytes have had
    no answer yet. Thread-safe; serves from its own thread and event loop.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._lock = threading.Lock()
        self._cut = False
        self._dropped = 0
        self._last_answer = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        #: Connections whose latest forwarded bytes have had no answer yet (a request at the upstream).
        self._awaiting: set[int] = set()

    def start(self) -> Self:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                asyncio.run(self._serve(ready))
            except BaseException as exc:  # reported by start()
                failure.append(exc)
                ready.set()

        self._thread = threading.Thread(target=run, name=f"tcp-gate-{self.upstream_port}", daemon=True)
        self._thread.start()
        if not ready.wait(10) or failure:
            raise RuntimeError(f"TCP gate to port {self.upstream_port} did not start: {failure}")
        return self

    def close(self) -> None:
        loop, stopped, thread = self._loop, self._stopped, self._thread
        if loop is not None and stopped is not None:
            with contextlib.suppress(RuntimeError):  # the loop is gone already
                loop.call_soon_threadsafe(stopped.set)
        if thread is not None:
            thread.join(10)
        self._loop = self._thread = self._stopped = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def cut(self) -> None:
        """From now on, drop what clients send (connections stay open; answers still flow back)."""
        with self._lock:
            self._cut = True

    @property
    def dropped(self) -> int:
        with self._lock:
            return self._dropped

    def awaiting_answers(self) -> int:
        """Connections with forwarded bytes that the upstream has not answered yet."""
        with self._lock:
            return len(self._awaiting)

    def quiet_for(self) -> float:
        """Seconds since the upstream last sent bytes back to a client."""
        with self._lock:
            return time.monotonic() - self._last_answer

    async def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        try:
            await self._stopped.wait()
        finally:
            server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            await server.wait_closed()

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self._writers.add(client_writer)
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_writer.transport.abort()
            self._writers.discard(client_writer)
            return
        self._writers.add(upstream_writer)
        connection = id(client_writer)
        try:
            await asyncio.gather(
                self._pump(client_reader, upstream_writer, connection, towards_upstream=True),
                self._pump(upstream_reader, client_writer, connection, towards_upstream=False),
            )
        finally:
            for writer in (client_writer, upstream_writer):
                writer.transport.abort()
                self._writers.discard(writer)
            with self._lock:
                self._awaiting.discard(connection)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: int, *, towards_upstream: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                with self._lock:
                    if towards_upstream and self._cut:
                        self._dropped += 1
                        continue
                    if towards_upstream:
                        self._awaiting.add(connection)
                    else:
                        self._last_answer = time.monotonic()
                        self._awaiting.discard(connection)
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()  # one side is gone: so is the relay
