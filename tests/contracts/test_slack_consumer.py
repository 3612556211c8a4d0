"""Consumer side of ``incident-bot`` -> ``slack-web-api``: the Web API calls the bot makes, as it makes them.

The bot's own pipeline (:mod:`tests.contracts.bot`: engine, outbox worker, the real :class:`SlackSender` and
``slack_sdk``'s ``AsyncWebClient``) calls Pact's mock server: an incident's card (``chat.postMessage`` with
blocks), its update in place (``chat.update``) and a reply in its thread when it is acknowledged, and a plain
line in a channel when a breaker is put in a manual state.

What the contract pins down (and the fake Slack is verified against in ``test_slack_provider.py``): the methods,
the bearer token's shape, JSON arguments with every field the bot sends (requests may not carry fields the contract
does not list), the card's blocks, and from the answers what the bot relies on: ``ok`` (``slack_sdk`` raises on
``ok: false``), the card's ``channel`` and ``ts`` (kept to update it and reply in its thread) and a reply's ``ts``.

``chat.update`` and thread replies name a message the provider must already have: provider state
``a card is posted in #incidents`` posts one and returns its ``channel`` and ``ts``, which the verifier puts in the
request (``generate.provider_state``). Here the mock server answers the card with the examples, so the bot sends
them back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from pact import generate, match

from breakerpanel.incident_bot.routing import RoutingFile
from breakerpanel.incident_bot.slack import SlackSender
from breakerpanel.incident_bot.vocabulary import Target
from tests.incident_bot.support import AlertSpec, breaker_labels, webhook

from .bot import PUBLIC_URL, running_bot
from .pactfiles import CommittedPact

CARD: Final = "a new incident's card posted in a channel"
CARD_UPDATE: Final = "an incident's card updated in place when it is acknowledged"
THREAD_REPLY: Final = "a reply in an incident card's thread"
CHANNEL_LINE: Final = "a plain line in a channel about a breaker put in a manual state"
PACT_FILE: Final = CommittedPact("incident-bot", "slack-web-api", (CARD, CARD_UPDATE, THREAD_REPLY, CHANNEL_LINE))

#: Provider state (see test_slack_provider.py): a card is in the channel; values ``channel`` (ID) and ``ts``.
CARD_POSTED: Final = "a card is posted in #incidents"

TOKEN: Final = "xoxb-contract-test"
INCIDENTS: Final = "#incidents"
BREAKERS: Final = "#breakers"
#: The card as the mock server answers it here (and as the provider state returns it to the verifier).
CARD_CHANNEL_ID: Final = "C0INCIDENTS"
CARD_TS: Final = "1800000000.000100"
ROUTING: Final = RoutingFile.model_validate(
    {
        "routes": [{"name": "critical", "match": {"severity": "critical"}, "slack": {"channels": [INCIDENTS]}}],
        "default": {"slack": {"channels": [BREAKERS]}},
    }
)
INSTANCE: Final = "rag-1:8000"
BREAKER_OPEN: Final = AlertSpec(
    breaker_labels("openai") | {"gen_ai_provider_name": "openai", "instance": INSTANCE}, fingerprint="0f1e2d3c4b5a6978"
)
MANUAL_STATE: Final = AlertSpec(
    breaker_labels("qdrant", alertname="CircuitBreakerManualState", severity="info")
    | {"circuit_breaker_state": "forced_open", "instance": INSTANCE},
    fingerprint="8796a5b4c3d2e1f0",
)

AUTHORIZATION: Final = match.regex(f"Bearer {TOKEN}", regex=r"^Bearer xox[abpe]-\S+$")
CHANNEL_ID: Final = match.regex(CARD_CHANNEL_ID, regex=r"^[CGD][A-Z0-9]+$")
TS_PATTERN: Final = r"^\d+\.\d+$"
DEDUP_KEY: Final = "breakerpanel/breaker:rag:service:openai/5ebb5f966063"
SINCE: Final = "*Since*\n<!date^1800000000^{date_short_pretty} {time}|2027-01-15 08:00 UTC>"
FIRING: Final = "• *CircuitBreakerOpen* (critical): Circuit breaker has been open for more than 5m."


def _ts(example: str) -> Any:
    return match.regex(example, regex=TS_PATTERN)


def _posted_card(name: str) -> Any:
    """A field that names the posted card (``channel`` or ``ts``): the provider state's value at verification."""
    example = {"channel": CARD_CHANNEL_ID, "ts": CARD_TS}[name]
    return match.like(example, generator=generate.provider_state(f"${{{name}}}"))


def _button(text: str, action_id: str, **fields: str) -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": text}, **fields}


def _card_blocks(status: str, *, acknowledged_by: str | None = None) -> list[dict[str, Any]]:
    """The card's Block Kit blocks, as the bot builds them (incident_bot.slack.card_blocks): literal here, so a
    change to the card is a reviewed change to the contract, and the fake checks they are valid Block Kit."""
    fields = [f"*Status*\n{status}", "*Severity*\ncritical", SINCE, "*Flaps*\n0"]
    if acknowledged_by:
        fields.append(f"*Acknowledged by*\n{acknowledged_by}")
    buttons = [_button("Resolve", "incident_resolve", value="1", style="danger")]
    if acknowledged_by is None:
        buttons.insert(0, _button("Acknowledge", "incident_acknowledge", value="1", style="primary"))
    buttons += [
        _button("Dashboard", "link_dashboard_url", url="http://grafana.example/d/breakerpanel-detail/detail"),
        _button("Runbook", "link_runbook_url", url="https://runbooks.example/circuit-breaker-open.md"),
        _button("Timeline", "link_timeline", url=f"{PUBLIC_URL}/incidents/1"),
    ]
    return [
        {"type": "header", "text": {"type": "plain_text", "text": "#1 openai (service, rag)"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": text} for text in fields]},
        {"type": "section", "text": {"type": "mrkdwn", "text": FIRING}},
        {"type": "actions", "block_id": "incident-1", "elements": buttons},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"PagerDuty dedup key `{DEDUP_KEY}`"}]},
    ]


def _web_api_call(pact: Any, description: str, method: str, arguments: dict[str, Any], answer: dict[str, Any]) -> Any:
    """One Web API method call: JSON arguments with the bot token; Slack answers 200 and ``ok`` (also on errors,
    which is why ``ok`` is part of every answer)."""
    return (
        pact.upon_receiving(description)
        .with_request("POST", f"/api/{method}")
        .with_header("Authorization", AUTHORIZATION)
        .with_body(arguments, content_type="application/json")
        .will_respond_with(200)
        .with_body({"ok": True, **answer}, content_type="application/json")
    )


async def test_an_incident_card_posted_updated_and_replied_to(tmp_path: Path) -> None:
    pact = PACT_FILE.new_pact()
    _web_api_call(
        pact,
        CARD,
        "chat.postMessage",
        {
            "channel": match.like(INCIDENTS),
            "text": match.like("Open: openai (service, rag) (critical)"),
            "blocks": match.like(_card_blocks(":red_circle: Open")),
        },
        {"channel": CHANNEL_ID, "ts": _ts(CARD_TS)},
    )
    _web_api_call(
        pact,
        CARD_UPDATE,
        "chat.update",
        {
            "channel": _posted_card("channel"),
            "ts": _posted_card("ts"),
            "text": match.like("Acknowledged: openai (service, rag) (critical)"),
            "blocks": match.like(_card_blocks(":large_orange_circle: Acknowledged", acknowledged_by="U0ONCALL")),
        },
        {},
    ).given(CARD_POSTED)
    _web_api_call(
        pact,
        THREAD_REPLY,
        "chat.postMessage",
        {
            "channel": _posted_card("channel"),
            "thread_ts": _posted_card("ts"),
            "text": match.like("Acknowledged by U0ONCALL."),
        },
        {"ts": _ts("1800000000.000200")},
    ).given(CARD_POSTED)

    with pact.serve() as server:
        sender = SlackSender(TOKEN, base_url=f"{server.url}/api/")
        async with running_bot(tmp_path, ROUTING, {Target.SLACK: sender}) as bot:
            await bot.receive(webhook((BREAKER_OPEN, "firing")))
            await bot.deliver()
            await bot.engine.acknowledge(1, "U0ONCALL")
            await bot.deliver()

    PACT_FILE.check(pact, tmp_path / "written")


async def test_a_manual_state_is_a_line_in_the_channel(tmp_path: Path) -> None:
    pact = PACT_FILE.new_pact()
    _web_api_call(
        pact,
        CHANNEL_LINE,
        "chat.postMessage",
        {
            "channel": match.like(BREAKERS),
            "text": match.like(":wrench: qdrant (service, rag) put in forced_open by hand on rag-1:8000."),
        },
        {"ts": _ts("1800000000.000300")},
    )

    with pact.serve() as server:
        sender = SlackSender(TOKEN, base_url=f"{server.url}/api/")
        async with running_bot(tmp_path, ROUTING, {Target.SLACK: sender}) as bot:
            await bot.receive(webhook((MANUAL_STATE, "firing")))
            await bot.deliver()

    PACT_FILE.check(pact, tmp_path / "written")


def test_the_committed_pact_holds_every_interaction() -> None:
    PACT_FILE.check_complete()
