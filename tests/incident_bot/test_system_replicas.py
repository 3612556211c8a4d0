"""Two bot replicas on one real PostgreSQL, each behind its own Alertmanager; one is killed (SIGKILL) in
the middle of a burst, and the other delivers everything, each notification once.

The setup: two *independent* Alertmanagers (no gossip), both given the same alerts; Alertmanager 1 sends to
replica A, Alertmanager 2 to replica B. So every alert reaches both replicas, and both store, process and
deliver from the one database; once A is dead, B still has every alert from its own Alertmanager (an HA
pair would do the same through gossip, only later: its second member notifies only after its peer
timeout). Both replicas post to the same fake Slack, with their own bot tokens so that each call says
which replica made it.

Where the kill lands matters. Killed between the fake's answer and its own commit, a replica has delivered
a notification it has not recorded, and whoever takes the item over sends it again: no outbox can close
that window (test_system_crash shows it, and counts the duplicate). Here replica A reaches PagerDuty and
Slack through a :class:`TcpGate`: the gate is cut, A's next requests vanish on the way while it holds their
claims, and A is killed once every answer to its earlier requests is back and committed. The test then
shows what the claims promise: B takes A's claimed items over after ``INCIDENT_BOT_CLAIM_TIMEOUT`` and
nothing is sent twice.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.fakes import FakePagerDuty, FakeSlack
from tests.servers import AlertmanagerServer, PostgresServer, ServerPool, wait_until

from .processes import (
    WEBHOOK_TOKEN,
    BotProcess,
    TcpGate,
    alertmanager_config,
    am_alert,
    cards_by_incident,
    fake_environment,
    pagerduty_triggers,
)
from .support import breaker_labels

BREAKERS = [f"dependency-{i:02d}" for i in range(40)]
TIMEOUT = 40.0
CLAIM_TIMEOUT = 3.0
TOKENS = {"replica-a": "xoxb-replica-a", "replica-b": "xoxb-replica-b"}


def _cards_posted_by(slack: FakeSlack, token: str) -> list[float]:
    """When each card (a top-level postMessage the fake accepted) sent with ``token`` arrived."""
    return [
        c.received_at.timestamp()
        for c in slack.calls_to("chat.postMessage")
        if c.token == token and c.ok and "thread_ts" not in c.args
    ]


def _claims_held(postgres: PostgresServer, database: str, replica: str) -> list[int]:
    """Outbox items ``replica`` has claimed, not finished, and whose claim has not expired yet."""
    rows = postgres.execute(
        f"SELECT id FROM outbox WHERE claimed_by = '{replica}' AND status = 'pending' "
        "AND claimed_until > extract(epoch from now()) ORDER BY id",
        database,
    )
    return [int(line) for line in rows.split()]


def test_one_replica_killed_mid_burst_the_other_delivers_everything_once(
    server_pool: ServerPool, fake_pagerduty: FakePagerDuty, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    # The bot's pool takes up to 20 connections per replica: room for two, and psql.
    postgres = server_pool.start(PostgresServer(max_connections=50))
    database_url = postgres.create_database("bot").replace("postgresql://", "postgresql+asyncpg://")
    token_file = tmp_path / "bot-token"
    token_file.write_text(WEBHOOK_TOKEN)

    with contextlib.ExitStack() as stack:
        slack_gate = stack.enter_context(TcpGate(fake_slack.port))
        pagerduty_gate = stack.enter_context(TcpGate(fake_pagerduty.port))
        common: dict[str, str | float | int] = {
            "database_url": database_url,
            "claim_timeout": CLAIM_TIMEOUT,
            "slack_messages_per_second": 4,  # per replica: 40 cards take about 5 s between the two
            "pagerduty_events_per_minute": 240,
        }
        replica_a = BotProcess(
            fake_environment(
                fake_pagerduty,
                fake_slack,
                tmp_path,
                **common,
                slack_bot_token=TOKENS["replica-a"],
                slack_base_url=f"http://127.0.0.1:{slack_gate.port}/api/",
                pagerduty_base_url=f"https://127.0.0.1:{pagerduty_gate.port}",
            ),
            replica_id="replica-a",
        )
        replica_b = BotProcess(
            fake_environment(fake_pagerduty, fake_slack, tmp_path, **common, slack_bot_token=TOKENS["replica-b"]),
            replica_id="replica-b",
        )
        server_pool.start(replica_a)
        server_pool.start(replica_b)
        alertmanagers = [
            server_pool.start(
                AlertmanagerServer(alertmanager_config(bot.url, token_file, group_by=["circuit_breaker_name"]))
            )
            for bot in (replica_a, replica_b)
        ]

        # The burst: 40 breakers' alerts, the same to both Alertmanagers (one notification per breaker each).
        started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        alerts = [am_alert(breaker_labels(name), starts_at=started) for name in BREAKERS]
        for alertmanager in alertmanagers:
            alertmanager.post_alerts(alerts)

        # Mid-burst: once A has posted a few cards, cut its way out and wait until it holds claims on
        # requests that went nowhere while every earlier answer has been back for half a second (committed:
        # a commit takes milliseconds), well within its claims' CLAIM_TIMEOUT.
        wait_until(
            lambda: len(_cards_posted_by(fake_slack, TOKENS["replica-a"])) >= 4,
            timeout=TIMEOUT,
            what="replica A delivering",
        )
        slack_gate.cut()
        pagerduty_gate.cut()
        wait_until(
            lambda: (
                slack_gate.dropped + pagerduty_gate.dropped > 0
                and slack_gate.awaiting_answers() + pagerduty_gate.awaiting_answers() == 0
                and min(slack_gate.quiet_for(), pagerduty_gate.quiet_for()) > 0.5
            ),
            timeout=TIMEOUT,
            what="replica A stuck on requests that never arrive",
        )
        held = _claims_held(postgres, "bot", "replica-a")
        replica_a.kill()
        killed_at = time.time()
        assert held, "replica A held no claim when killed: nothing for B to take over"
        cards_by_a = _cards_posted_by(fake_slack, TOKENS["replica-a"])
        assert len(cards_by_incident(fake_slack)) < len(BREAKERS), "killed too late: every card was out already"

    def everything_delivered() -> bool:
        return (
            len(fake_pagerduty.open_alerts()) == len(BREAKERS)
            and len(cards_by_incident(fake_slack)) == len(BREAKERS)
            and not replica_b.pending_deliveries()
        )

    wait_until(everything_delivered, timeout=TIMEOUT, what="replica B delivering everything")

    incidents = replica_b.incidents()
    assert sorted(i["labels"]["circuit_breaker_name"] for i in incidents) == BREAKERS  # one per breaker
    keys = {i["dedup_key"] for i in incidents}
    # Each PagerDuty trigger once per dedup key, one alert each; each Slack card once.
    assert pagerduty_triggers(fake_pagerduty) == dict.fromkeys(keys, 1)
    assert {a.dedup_key for a in fake_pagerduty.alerts()} == keys
    assert len(fake_pagerduty.alerts()) == len(BREAKERS)
    assert cards_by_incident(fake_slack) == dict.fromkeys((i["id"] for i in incidents), 1)
    assert len(fake_slack.calls_to("chat.postMessage")) == len(BREAKERS)  # no reply or repost either

    # Both replicas delivered; nothing from A arrived after its death; B took over what A had claimed.
    cards_by_b = _cards_posted_by(fake_slack, TOKENS["replica-b"])
    assert len(cards_by_a) >= 4
    assert cards_by_b
    assert len(cards_by_a) + len(cards_by_b) == len(BREAKERS)
    assert max(cards_by_a) < killed_at
    deliveries = {d["id"]: d for i in incidents for d in replica_b.incident(i["id"])["deliveries"]}
    assert {deliveries[item]["sent_by"] for item in held} == {"replica-b"}
    assert {d["status"] for d in deliveries.values()} == {"sent"}
    assert fake_slack.rejected == []
    assert fake_pagerduty.rejected == []
    # Known bot bug, not worked around (reported): both replicas group-commit the same webhooks in different
    # orders, PostgreSQL aborts one batch with "deadlock detected", and that replica answers 503 to every
    # webhook in it; Alertmanager retries them, which is why everything still arrives. Counted, not asserted.
    deadlocks = postgres.log_tail(lines=100_000).count("deadlock detected")
    print(
        f"A held {len(held)} claim(s) at the kill ({slack_gate.dropped} Slack and {pagerduty_gate.dropped} "
        f"PagerDuty chunk(s) dropped); cards: {len(cards_by_a)} by A, {len(cards_by_b)} by B; "
        f"intake deadlocks: {deadlocks}"
    )
