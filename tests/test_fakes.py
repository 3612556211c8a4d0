"""The PagerDuty and Slack fakes behave like the real services, as seen through the real client SDKs.

Every test drives ``pagerduty.EventsApiV2Client`` or ``slack_sdk``'s ``WebClient``/``AsyncWebClient`` against the
fakes (raw HTTP only where the SDK cannot send the malformed request). The retry tests also pin down what the SDKs
do on 429 and 5xx, which the incident bot has to live with.

What pagerduty 7.2.0's client does (``pagerduty/api_client.py`` ``ApiClient.request``, ``events_api_v2_client.py``):

* 202: returns; ``trigger``/``acknowledge``/``resolve`` return the ``dedup_key`` of the body (missing key:
  ``ServerHttpError``). ``send_change_event`` returns None.
* 400 (any 4xx but 401 and 429): no retry, ``pagerduty.HttpError`` with ``.response`` (status, JSON errors).
* 429: ``retry`` has no entry for 429, so it retries **without limit**, sleeping ``sleep_timer`` (1.5 s) times
  ``sleep_timer_base`` (2) to the power of the attempt: 3 s, 6 s, 12 s, ... with blocking ``time.sleep``.
  ``max_http_attempts`` (10) does *not* bound it. Bound it with ``client.retry[429] = n`` (n retries, then
  ``HttpError`` with status 429); ``max_http_attempts`` then caps the retries of all statuses together, and it
  is checked before counting, so at most ``max_http_attempts + 2`` requests go out; ``max_http_attempts = -1``
  with ``retry[429] = 1`` sends one request and never retries a 429 or a 5xx. ``retry[429] = 0`` is *not* "no
  retry" but the default (unlimited); ``-1`` is unlimited too. ``sleep_timer = 0`` makes retries immediate (tests).
* The per-request timeout is ``client.timeout`` (60 s), which overrides an httpx2 ``timeout=`` constructor kwarg.
* 5xx: ``EventsApiV2Client`` sets ``retry = {500: 2, 502: 4, 503: 6, 504: 6}`` (retries, so 3/5/7/7 requests with
  the same growing sleeps: 3+6+12+24+48+96 = 189 s for a 503 before giving up), then ``ServerHttpError``.
* network errors (refused, TLS): ``max_network_attempts`` (3) retries, then ``pagerduty.Error`` with no response.
* 401: ``HttpError`` at once. 3xx: ``ServerHttpError``.

What slack_sdk 3.48 does: the default ``retry_handlers`` hold only ``ConnectionErrorRetryHandler`` (one retry of
a connection error after about 0.5-1.5 s). A 429 is not retried: ``SlackApiError`` whose ``response.status_code``
is 429, ``response["error"]`` is ``"ratelimited"`` and ``response.headers["Retry-After"]`` the seconds to wait.
``RateLimitErrorRetryHandler(max_retry_count=n)`` (async: ``AsyncRateLimitErrorRetryHandler``) sleeps
``int(Retry-After)`` plus up to 1 s of jitter, then retries; without the header it sleeps 1-2 s.
"""

from __future__ import annotations

import json
import ssl
import threading
import urllib.error
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import httpx2
import pagerduty
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import RateLimitErrorRetryHandler, builtin_async_handlers, builtin_handlers
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes import (
    FakePagerDuty,
    FakeSlack,
    block_actions_payload,
    decode_interaction_payload,
    sign_slack_request,
)

# The fakes' fixtures, for this module (the root conftest does not register them: they need the bot's
# dependencies, and the core's tests run without those).
pytest_plugins = ["tests.fakes.plugin"]

ROUTING_KEY = "0123456789abcdef0123456789abcdef"
OTHER_ROUTING_KEY = "fedcba9876543210fedcba9876543210"
TOKEN = "xoxb-1111-2222-fake"


class ManualClock:
    """A monotonic clock the test moves by hand, for the rate limiters."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def pd_response(error: pagerduty.Error) -> httpx2.Response:
    """The HTTP response of a pagerduty error (None only for network errors)."""
    assert error.response is not None
    response: httpx2.Response = error.response
    return response


def events_client(fake: FakePagerDuty, routing_key: str = ROUTING_KEY) -> pagerduty.EventsApiV2Client:
    """The real client pointed at the fake, with immediate retries (``sleep_timer = 0``) so tests stay fast."""
    client = pagerduty.EventsApiV2Client(routing_key, base_url=fake.base_url, verify=fake.ssl_context())
    client.sleep_timer = 0
    return client


@pytest.fixture
def pd(fake_pagerduty: FakePagerDuty) -> Iterator[pagerduty.EventsApiV2Client]:
    with events_client(fake_pagerduty) as client:
        yield client


@pytest.fixture
def slack(fake_slack: FakeSlack) -> WebClient:
    return WebClient(token=TOKEN, base_url=fake_slack.api_url)


def section(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **extra}


def button(action_id: str, text: str = "Acknowledge", **extra: Any) -> dict[str, Any]:
    return {"type": "button", "action_id": action_id, "text": {"type": "plain_text", "text": text}, **extra}


# --------------------------------------------------------------------------------------------------------
# PagerDuty: round trips


def test_trigger_acknowledge_resolve_round_trip(fake_pagerduty: FakePagerDuty, pd: pagerduty.EventsApiV2Client) -> None:
    dedup_key = pd.trigger(
        "CircuitBreakerOpen: openai",
        "rag-api-7f9c",
        dedup_key="breaker/openai",
        severity="error",
        payload={"timestamp": "2026-11-20T10:00:00.000+0000", "component": "openai", "class": "breaker"},
        custom_details={"failure_rate": 0.62},
        links=[{"href": "https://grafana.example/d/breakers", "text": "Dashboard"}],
        images=[{"src": "https://grafana.example/render/breakers.png", "alt": "error rate"}],
    )
    assert dedup_key == "breaker/openai"
    [alert] = fake_pagerduty.open_alerts()
    assert (alert.status, alert.summary, alert.severity, alert.source) == (
        "triggered",
        "CircuitBreakerOpen: openai",
        "error",
        "rag-api-7f9c",
    )
    assert alert.payload["custom_details"] == {"failure_rate": 0.62}

    assert pd.acknowledge(dedup_key) == dedup_key
    assert fake_pagerduty.alert(dedup_key).status == "acknowledged"
    assert pd.resolve(dedup_key) == dedup_key

    alert = fake_pagerduty.alert(dedup_key)
    assert alert.status == "resolved"
    assert alert.resolved_at is not None
    assert [event.event_action for event in alert.events] == ["trigger", "acknowledge", "resolve"]
    assert fake_pagerduty.open_alerts() == []
    # What went over the wire: the client adds routing_key to the JSON body and sends JSON.
    first = fake_pagerduty.requests[0]
    assert first.path == "/v2/enqueue"
    assert first.headers["content-type"] == "application/json"
    assert json.loads(first.body)["routing_key"] == ROUTING_KEY
    assert fake_pagerduty.events[0].body["links"][0]["href"] == "https://grafana.example/d/breakers"


def test_trigger_without_dedup_key_gets_a_generated_one(
    fake_pagerduty: FakePagerDuty, pd: pagerduty.EventsApiV2Client
) -> None:
    first = pd.trigger("a", "host")
    second = pd.trigger("a", "host")
    assert first != second
    assert len(first) == 32
    assert [alert.dedup_key for alert in fake_pagerduty.open_alerts()] == [first, second]


def test_acknowledge_or_resolve_without_an_open_alert_is_dropped(
    fake_pagerduty: FakePagerDuty, pd: pagerduty.EventsApiV2Client
) -> None:
    assert pd.acknowledge("never-triggered") == "never-triggered"  # still 202
    assert pd.resolve("never-triggered") == "never-triggered"
    assert [(event.event_action, event.dropped) for event in fake_pagerduty.dropped] == [
        ("acknowledge", True),
        ("resolve", True),
    ]
    assert fake_pagerduty.alerts() == []


def test_trigger_after_resolve_opens_a_new_alert_and_repeat_triggers_join_the_open_one(
    fake_pagerduty: FakePagerDuty, pd: pagerduty.EventsApiV2Client
) -> None:
    pd.trigger("first", "host", dedup_key="k")
    pd.acknowledge("k")
    pd.trigger("again", "host", dedup_key="k")  # applied to the open alert, which stays acknowledged
    assert fake_pagerduty.alert("k").status == "acknowledged"
    assert fake_pagerduty.alert("k").trigger_count == 2
    pd.resolve("k")
    pd.resolve("k")  # nothing open any more: dropped
    pd.trigger("back", "host", dedup_key="k")
    first, second = fake_pagerduty.alerts(dedup_key="k")
    assert (first.status, second.status, second.summary) == ("resolved", "triggered", "back")
    assert len(fake_pagerduty.dropped) == 1


def test_dedup_keys_are_scoped_to_the_routing_key(
    fake_pagerduty: FakePagerDuty, pd: pagerduty.EventsApiV2Client
) -> None:
    pd.trigger("x", "host", dedup_key="shared")
    with events_client(fake_pagerduty, OTHER_ROUTING_KEY) as other:
        other.resolve("shared")
    assert fake_pagerduty.alert("shared").status == "triggered"
    assert fake_pagerduty.dropped[0].routing_key == OTHER_ROUTING_KEY


def test_change_events_round_trip(fake_pagerduty: FakePagerDuty, pd: pagerduty.EventsApiV2Client) -> None:
    assert pd.send_change_event(payload={"summary": "breaker config v2 rolled out", "source": "deploy"}) is None
    pd.submit(
        "openai breaker threshold 0.5 -> 0.4",
        "config-repo",
        custom_details={"pr": 42},
        links=[{"href": "https://git.example/pr/42"}],
        timestamp="2026-11-20T10:00:00Z",
    )
    summaries = [event.payload["summary"] for event in fake_pagerduty.change_events]
    assert summaries == ["breaker config v2 rolled out", "openai breaker threshold 0.5 -> 0.4"]
    assert fake_pagerduty.alerts() == []
    assert {request.path for request in fake_pagerduty.requests} == {"/v2/change/enqueue"}


def test_submit_without_a_timestamp_fails_in_the_client(
    fake_pagerduty: FakePagerDuty, pd: pagerduty.EventsApiV2Client
) -> None:
    # pagerduty 7.2.0 bug: event_timestamp calls datetime.timezone on the datetime *class*. (Had it worked, it
    # would send "...+00:00Z", which is not ISO 8601.) Pass timestamp= or use send_change_event.
    with pytest.raises(AttributeError, match="timezone"):
        pd.submit("summary", "source")
    assert fake_pagerduty.requests == []


def test_the_certificate_is_checked_and_covers_localhost(fake_pagerduty: FakePagerDuty) -> None:
    with pagerduty.EventsApiV2Client(
        ROUTING_KEY, base_url=f"https://localhost:{fake_pagerduty.port}", verify=fake_pagerduty.ssl_context()
    ) as client:
        client.trigger("via localhost", "host")
    with pagerduty.EventsApiV2Client(ROUTING_KEY, base_url=fake_pagerduty.base_url) as untrusting:
        untrusting.sleep_timer = 0
        untrusting.max_network_attempts = 0
        with pytest.raises(pagerduty.Error) as raised:
            untrusting.trigger("default trust store", "host")
    assert raised.value.response is None
    assert isinstance(raised.value.__cause__, Exception)
    assert "CERTIFICATE_VERIFY_FAILED" in str(raised.value.__cause__)


# --------------------------------------------------------------------------------------------------------
# PagerDuty: validation


def _long(n: int) -> str:
    return "x" * n


INVALID_EVENTS: list[tuple[str, dict[str, Any], str]] = [
    ("severity", {"payload": {"summary": "s", "source": "h", "severity": "fatal"}}, "payload.severity"),
    ("no source", {"payload": {"summary": "s", "source": "", "severity": "info"}}, "payload.source"),
    ("no summary", {"payload": {"source": "h", "severity": "info"}}, "payload.summary"),
    ("summary 1025", {"payload": {"summary": _long(1025), "source": "h", "severity": "info"}}, "payload.summary"),
    ("no payload", {"payload": None}, "payload"),
    ("timestamp", {"payload": {"summary": "s", "source": "h", "severity": "info", "timestamp": "now"}}, "timestamp"),
    (
        "custom_details",
        {"payload": {"summary": "s", "source": "h", "severity": "info", "custom_details": ["a"]}},
        "custom_details",
    ),
    ("component", {"payload": {"summary": "s", "source": "h", "severity": "info", "component": 3}}, "component"),
    ("link href", {"links": [{"text": "no href"}]}, "links[0].href"),
    ("image src", {"images": [{"src": "http://insecure.example/x.png"}]}, "images[0].src"),
    ("dedup 256", {"dedup_key": _long(256)}, "dedup_key"),
]


@pytest.mark.parametrize(
    ("event", "field"), [(e, f) for _, e, f in INVALID_EVENTS], ids=[i for i, _, _ in INVALID_EVENTS]
)
def test_invalid_alert_events_get_a_400_and_no_retry(
    fake_pagerduty: FakePagerDuty, pd: pagerduty.EventsApiV2Client, event: dict[str, Any], field: str
) -> None:
    valid_payload = {"summary": "s", "source": "h", "severity": "info"}
    body = {"payload": valid_payload, **event}
    dedup_key = body.pop("dedup_key", None)
    with pytest.raises(pagerduty.HttpError) as raised:
        pd.send_event("trigger", dedup_key=dedup_key, **body)
    assert not isinstance(raised.value, pagerduty.ServerHttpError)
    response = pd_response(raised.value)
    assert response.status_code == 400
    answer = response.json()
    assert (answer["status"], answer["message"]) == ("invalid event", "Event object is invalid")
    assert any(field in error for error in answer["errors"]), answer["errors"]
    assert len(fake_pagerduty.requests) == 1  # 400 is final: the client does not retry
    [rejection] = fake_pagerduty.rejected
    assert rejection.errors == tuple(answer["errors"])
    assert fake_pagerduty.events == []


def test_acknowledge_without_payload_is_valid_but_needs_a_dedup_key(
    fake_pagerduty: FakePagerDuty, pd: pagerduty.EventsApiV2Client
) -> None:
    with pytest.raises(ValueError, match="dedup_key"):  # the client refuses before sending
        pd.send_event("acknowledge")
    with pytest.raises(pagerduty.HttpError) as raised:
        pd.send_event("acknowledge", dedup_key="")
    assert "'dedup_key' is missing or blank" in pd_response(raised.value).json()["errors"][0]


@pytest.mark.parametrize(
    ("routing_key", "expected"),
    [
        ("short", "Length of 'routing_key' is incorrect (should be 32 characters)"),
        ("0123456789abcdef0123456789abcde!", "'routing_key' cannot contain non-alphanumeric characters."),
    ],
)
def test_routing_keys_must_be_32_alphanumerics(fake_pagerduty: FakePagerDuty, routing_key: str, expected: str) -> None:
    with events_client(fake_pagerduty, routing_key) as client, pytest.raises(pagerduty.HttpError) as raised:
        client.trigger("s", "h")
    assert expected in pd_response(raised.value).json()["errors"]


def test_change_events_are_validated(fake_pagerduty: FakePagerDuty, pd: pagerduty.EventsApiV2Client) -> None:
    with pytest.raises(pagerduty.HttpError) as raised:
        pd.send_change_event(payload={"source": "deploy"}, links=[{"text": "no href"}])
    errors = pd_response(raised.value).json()["errors"]
    assert any("payload.summary" in error for error in errors)
    assert any("links[0].href" in error for error in errors)
    with events_client(fake_pagerduty, "R" + ROUTING_KEY[1:]) as ruleset, pytest.raises(pagerduty.HttpError):
        ruleset.send_change_event(payload={"summary": "to a ruleset key"})


def test_a_body_over_512_kb_is_rejected(fake_pagerduty: FakePagerDuty, pd: pagerduty.EventsApiV2Client) -> None:
    pd.trigger("just under", "h", custom_details={"blob": _long(500 * 1024)})
    with pytest.raises(pagerduty.HttpError) as raised:
        pd.trigger("too big", "h", custom_details={"blob": _long(512 * 1024)})
    assert "too large" in pd_response(raised.value).json()["errors"][0]


@pytest.mark.parametrize(
    ("content", "content_type", "error"),
    [
        (b"{not json", "application/json", "JSON parse error"),
        (b"[1, 2]", "application/json", "Event object is not a JSON object"),
        (b"routing_key=x", "application/x-www-form-urlencoded", "Content-Type must be application/json"),
    ],
)
def test_bodies_that_are_not_json_objects_are_unrecognized(
    fake_pagerduty: FakePagerDuty, content: bytes, content_type: str, error: str
) -> None:
    with httpx.Client(verify=fake_pagerduty.ssl_context()) as raw:
        response = raw.post(
            f"{fake_pagerduty.base_url}/v2/enqueue", content=content, headers={"Content-Type": content_type}
        )
    assert response.status_code == 400
    answer = response.json()
    assert answer["status"] == "Unrecognized object"
    assert answer["errors"][0].startswith(error)


# --------------------------------------------------------------------------------------------------------
# PagerDuty: faults, and what the client does with them


def test_429_is_retried_without_limit_by_default(
    fake_pagerduty: FakePagerDuty, pd: pagerduty.EventsApiV2Client
) -> None:
    assert 429 not in pd.retry  # the default: retry forever (sleeps of 3 s, 6 s, 12 s ... unless sleep_timer = 0)
    fake_pagerduty.fail_next(5, status=429, retry_after=30)
    assert pd.trigger("eventually", "h", dedup_key="k") == "k"
    assert [request.status for request in fake_pagerduty.requests] == [429] * 5 + [202]
    assert [request.outcome for request in fake_pagerduty.requests][-1] == "accepted"


def test_429_retries_bounded_with_the_retry_attribute(
    fake_pagerduty: FakePagerDuty, pd: pagerduty.EventsApiV2Client
) -> None:
    pd.retry[429] = 2  # two retries, then the 429 response is returned and raised as HttpError
    fake_pagerduty.fail_next(10, status=429)
    with pytest.raises(pagerduty.HttpError) as raised:
        pd.trigger("gives up", "h")
    assert pd_response(raised.value).status_code == 429
    assert len(fake_pagerduty.requests) == 3


def test_max_http_attempts_caps_every_status_together(
    fake_pagerduty: FakePagerDuty, pd: pagerduty.EventsApiV2Client
) -> None:
    pd.retry[429] = 100
    pd.max_http_attempts = 2  # checked as "retries so far > max_http_attempts", so max_http_attempts + 2 requests
    fake_pagerduty.fail_next(10, status=429)
    with pytest.raises(pagerduty.HttpError):
        pd.trigger("capped", "h")
    assert len(fake_pagerduty.requests) == 4


def test_no_retry_at_all_needs_max_http_attempts_below_zero(
    fake_pagerduty: FakePagerDuty, pd: pagerduty.EventsApiV2Client
) -> None:
    # retry[429] = 0 means "default behaviour", i.e. unlimited. For a caller that handles 429 itself (a durable
    # queue with its own backoff), one request and no sleep: any positive retry count plus max_http_attempts = -1.
    pd.retry[429] = 1
    pd.max_http_attempts = -1
    fake_pagerduty.fail_next(1, status=429)
    with pytest.raises(pagerduty.HttpError):
        pd.trigger("once", "h")
    assert len(fake_pagerduty.requests) == 1


@pytest.mark.parametrize(("status", "requests"), [(500, 3), (502, 5), (503, 7), (504, 7)])
def test_5xx_are_retried_a_fixed_number_of_times(
    fake_pagerduty: FakePagerDuty, pd: pagerduty.EventsApiV2Client, status: int, requests: int
) -> None:
    fake_pagerduty.fail_next(20, status=status)
    with pytest.raises(pagerduty.ServerHttpError) as raised:
        pd.trigger("server trouble", "h")
    assert pd_response(raised.value).status_code == status
    assert len(fake_pagerduty.requests) == requests
    assert fake_pagerduty.events == []


def test_a_transient_5xx_is_invisible_to_the_caller(
    fake_pagerduty: FakePagerDuty, pd: pagerduty.EventsApiV2Client
) -> None:
    fake_pagerduty.fail_next(1, status=502)
    fake_pagerduty.fail_next(1, status=500)
    assert pd.trigger("after two failures", "h", dedup_key="k") == "k"
    assert [request.status for request in fake_pagerduty.requests] == [502, 500, 202]


def test_rate_limit_per_routing_key_over_a_sliding_window() -> None:
    clock = ManualClock()
    with FakePagerDuty(rate_limit=3, rate_window=60.0, clock=clock) as fake, events_client(fake) as client:
        client.retry[429] = 1
        for n in range(3):
            client.trigger(f"event {n}", "h")
        with pytest.raises(pagerduty.HttpError) as raised:
            client.trigger("one too many", "h")
        assert pd_response(raised.value).status_code == 429
        assert pd_response(raised.value).headers["Retry-After"] == "60"
        assert [request.outcome for request in fake.requests][-2:] == ["rate_limited", "rate_limited"]
        with events_client(fake, OTHER_ROUTING_KEY) as other:
            other.trigger("another key has its own budget", "h")
        clock.advance(60.0)
        client.trigger("the window moved on", "h")
        assert len(fake.events) == 5


def test_refusing_connections(fake_pagerduty: FakePagerDuty, pd: pagerduty.EventsApiV2Client) -> None:
    pd.trigger("before", "h")
    fake_pagerduty.set_down(True)
    pd.max_network_attempts = 1
    with pytest.raises(pagerduty.Error) as raised:
        pd.trigger("while down", "h")
    assert not isinstance(raised.value, pagerduty.HttpError)
    assert raised.value.response is None
    assert "ConnectError" in type(raised.value.__cause__).__name__
    fake_pagerduty.set_down(False)
    pd.trigger("after", "h")  # same base_url: the fake came back on its port
    assert [event.payload["summary"] for event in fake_pagerduty.events] == ["before", "after"]


def test_down_with_503_for_everything(fake_pagerduty: FakePagerDuty, pd: pagerduty.EventsApiV2Client) -> None:
    fake_pagerduty.set_down(True, mode="503")
    with pytest.raises(pagerduty.ServerHttpError):
        pd.trigger("x", "h")
    assert {request.outcome for request in fake_pagerduty.requests} == {"down"}
    assert len(fake_pagerduty.requests) == 7  # retry[503] = 6


def test_concurrent_clients_and_waiting_for_events(fake_pagerduty: FakePagerDuty) -> None:
    def send(worker: int) -> None:
        with events_client(fake_pagerduty) as client:
            for n in range(5):
                client.trigger(f"w{worker} n{n}", "h", dedup_key=f"w{worker}-{n}")

    threads = [threading.Thread(target=send, args=(worker,)) for worker in range(6)]
    for thread in threads:
        thread.start()
    events = fake_pagerduty.wait_for_events(30, timeout=10.0)
    for thread in threads:
        thread.join()
    assert len(events) == 30
    assert len({alert.id for alert in fake_pagerduty.open_alerts()}) == 30


# --------------------------------------------------------------------------------------------------------
# Slack: round trips


def test_auth_test_and_authentication_errors(fake_slack: FakeSlack, slack: WebClient) -> None:
    assert slack.auth_test()["user_id"] == "U0FAKEBOT"
    with pytest.raises(SlackApiError) as raised:
        WebClient(base_url=fake_slack.api_url).auth_test()
    assert (raised.value.response.status_code, raised.value.response["error"]) == (200, "not_authed")
    with pytest.raises(SlackApiError) as raised:
        WebClient(token="not-a-token", base_url=fake_slack.api_url).auth_test()
    assert raised.value.response["error"] == "invalid_auth"
    assert [call.error for call in fake_slack.rejected] == ["not_authed", "invalid_auth"]


def test_only_configured_tokens_are_accepted() -> None:
    with FakeSlack(tokens={TOKEN}) as fake:
        WebClient(token=TOKEN, base_url=fake.api_url).auth_test()
        with pytest.raises(SlackApiError, match="invalid_auth"):
            WebClient(token="xoxb-someone-else", base_url=fake.api_url).auth_test()


def test_post_update_and_thread(fake_slack: FakeSlack, slack: WebClient) -> None:
    card = [
        {"type": "header", "text": {"type": "plain_text", "text": "CircuitBreakerOpen: openai"}},
        section("*Failure rate* 62%", block_id="summary"),
        {
            "type": "actions",
            "block_id": "incident_actions",
            "elements": [button("ack", style="primary", value="inc-1")],
        },
    ]
    posted = slack.chat_postMessage(channel="#incidents", text="Breaker openai is open", blocks=card)
    channel, ts = posted["channel"], posted["ts"]
    assert channel == fake_slack.channel_id("#incidents")
    assert channel.startswith("C")
    assert posted["message"]["blocks"][0]["block_id"]  # Slack fills in missing block_ids

    reply = slack.chat_postMessage(channel=channel, text="Paged the on-call", thread_ts=ts)
    assert reply["message"]["thread_ts"] == ts
    updated = slack.chat_update(channel=channel, ts=ts, text="Breaker openai acknowledged", blocks=card[:2])
    assert updated["ts"] == ts
    assert updated["text"] == "Breaker openai acknowledged"

    [message] = fake_slack.messages("#incidents")
    assert (message.ts, message.text, message.reply_count) == (ts, "Breaker openai acknowledged", 1)
    assert [block["type"] for block in message.blocks] == ["header", "section"]
    assert [version.text for version in message.history] == ["Breaker openai is open"]
    assert [version.blocks[2]["type"] for version in message.history] == ["actions"]
    [threaded] = fake_slack.thread(channel, ts)
    assert (threaded.text, threaded.is_reply) == ("Paged the on-call", True)

    slack.chat_update(channel=channel, ts=ts, text="Resolved")  # text without blocks removes the blocks
    assert fake_slack.message(channel, ts).blocks == ()
    assert fake_slack.message(channel, ts).to_api()["edited"]["user"] == "U0FAKEBOT"


def test_what_slack_sdk_sends(fake_slack: FakeSlack, slack: WebClient) -> None:
    slack.auth_test()
    slack.chat_postMessage(channel="#incidents", text="hello")
    auth, post = fake_slack.calls
    assert auth.content_type == "application/x-www-form-urlencoded"  # params, even when empty
    assert post.content_type.startswith("application/json")
    assert post.args == {"channel": "#incidents", "text": "hello"}
    assert post.token == TOKEN  # from the Authorization: Bearer header


def test_channel_and_message_errors(fake_slack: FakeSlack, slack: WebClient) -> None:
    posted = slack.chat_postMessage(channel="#incidents", text="x")
    errors = []
    calls: list[Callable[[], object]] = [
        lambda: slack.chat_postMessage(channel="incidents", text="no # and not an ID"),
        lambda: slack.chat_update(channel="#incidents", ts=posted["ts"], text="update needs the ID"),
        lambda: slack.chat_update(channel=posted["channel"], ts="1700000000.000001", text="unknown ts"),
        lambda: slack.chat_postMessage(channel=posted["channel"], text="r", thread_ts="1700000000.000001"),
        lambda: slack.chat_postMessage(channel=posted["channel"], text="r", thread_ts="yesterday"),
        lambda: slack.chat_postMessage(channel="#incidents", text=_long(40_001)),
        lambda: slack.api_call("chat.postMessage", json={"channel": "#incidents"}),
        lambda: slack.api_call("chat.postMessage", json={"channel": "#incidents", "text": "t", "blocks": "[oops"}),
    ]
    for call in calls:
        with pytest.raises(SlackApiError) as raised:
            call()
        assert raised.value.response.status_code == 200
        errors.append(raised.value.response["error"])
    assert errors == [
        "channel_not_found",
        "channel_not_found",
        "message_not_found",
        "thread_not_found",
        "invalid_thread_ts",
        "msg_too_long",
        "no_text",
        "invalid_blocks_format",
    ]
    assert [call.error for call in fake_slack.rejected] == errors


def test_replies_must_name_the_thread_parent(fake_slack: FakeSlack, slack: WebClient) -> None:
    parent = slack.chat_postMessage(channel="#incidents", text="parent")
    reply = slack.chat_postMessage(
        channel=parent["channel"], text="reply", thread_ts=parent["ts"], reply_broadcast=True
    )
    with pytest.raises(SlackApiError, match="thread_not_found"):
        slack.chat_postMessage(channel=parent["channel"], text="reply to a reply", thread_ts=reply["ts"])
    # A broadcast reply also shows in the channel.
    assert [message.text for message in fake_slack.messages("#incidents")] == ["parent", "reply"]


def test_known_channels_can_be_configured() -> None:
    with FakeSlack(channels={"#incidents": "C0INCIDENTS"}) as fake:
        client = WebClient(token=TOKEN, base_url=fake.api_url)
        assert client.chat_postMessage(channel="#incidents", text="x")["channel"] == "C0INCIDENTS"
        assert client.chat_postMessage(channel="C0INCIDENTS", text="y")["channel"] == "C0INCIDENTS"
        with pytest.raises(SlackApiError, match="channel_not_found"):
            client.chat_postMessage(channel="#random", text="z")


def test_ephemeral_messages(fake_slack: FakeSlack, slack: WebClient) -> None:
    answer = slack.chat_postEphemeral(channel="#incidents", user="U0ONCALL", text="Only you can see this")
    [message] = fake_slack.ephemeral_messages("#incidents")
    assert (message.ts, message.args["user"]) == (answer["message_ts"], "U0ONCALL")
    assert fake_slack.messages("#incidents") == []


def test_unknown_methods(slack: WebClient) -> None:
    with pytest.raises(SlackApiError) as raised:
        slack.api_call("chat.scheduleMessage", json={"channel": "#incidents", "text": "x", "post_at": 1})
    assert (raised.value.response.status_code, raised.value.response["error"]) == (404, "unknown_method")


# --------------------------------------------------------------------------------------------------------
# Slack: Block Kit validation

LIMIT_CARD: list[dict[str, Any]] = [
    {"type": "header", "text": {"type": "plain_text", "text": _long(150), "emoji": True}},
    section(_long(3000)),
    {"type": "section", "fields": [{"type": "mrkdwn", "text": _long(2000)}] * 10},
    {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 10},
    {
        "type": "actions",
        "elements": [button(f"a{n}", _long(75), value=_long(2000), style="danger") for n in range(24)]
        + [button(_long(255))],
    },
    {"type": "divider"},
] + [{"type": "divider"}] * 44

INVALID_BLOCKS: list[tuple[str, list[dict[str, Any]], str]] = [
    ("51 blocks", [{"type": "divider"}] * 51, "/blocks"),
    ("section 3001", [section(_long(3001))], "/blocks/0/text/text"),
    ("header 151", [{"type": "header", "text": {"type": "plain_text", "text": _long(151)}}], "/blocks/0/text/text"),
    ("header mrkdwn", [{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}], "/blocks/0/text/type"),
    ("text type", [{"type": "section", "text": {"type": "markdown", "text": "x"}}], "/blocks/0/text/type"),
    ("empty text", [section("")], "/blocks/0/text/text"),
    ("11 fields", [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}], "/blocks/0/fields"),
    ("button text 76", [{"type": "actions", "elements": [button("a", _long(76))]}], "/blocks/0/elements/0/text/text"),
    ("action_id 256", [{"type": "actions", "elements": [button(_long(256))]}], "/blocks/0/elements/0/action_id"),
    ("value 2001", [{"type": "actions", "elements": [button("a", value=_long(2001))]}], "/elements/0/value"),
    ("style", [{"type": "actions", "elements": [button("a", style="secondary")]}], "/blocks/0/elements/0/style"),
    ("26 elements", [{"type": "actions", "elements": [button(f"a{n}") for n in range(26)]}], "/blocks/0/elements"),
    ("same action_id", [{"type": "actions", "elements": [button("a"), button("a")]}], "/elements/1/action_id"),
    ("unknown block", [{"type": "rich_text", "elements": []}], "/blocks/0/type"),
    ("extra property", [section("x", colour="red")], "invalid additional property: colour"),
    ("same block_id", [section("x", block_id="b"), section("y", block_id="b")], "/blocks/1/block_id"),
    ("no text or fields", [{"type": "section"}], "must provide text or fields"),
    ("image without alt_text", [{"type": "image", "image_url": "https://x.example/c.png"}], "/blocks/0/alt_text"),
    (
        "image with two sources",
        [{"type": "image", "image_url": "https://x.example/c.png", "slack_file": {"id": "F1"}, "alt_text": "c"}],
        "exactly one of image_url or slack_file",
    ),
    (
        "slack_file with id and url",
        [{"type": "image", "slack_file": {"id": "F1", "url": "https://x.example/c.png"}, "alt_text": "c"}],
        "/blocks/0/slack_file",
    ),
    (
        "image title in mrkdwn",
        [{"type": "image", "image_url": "https://x.example/c.png", "alt_text": "c", "title": section("t")["text"]}],
        "/blocks/0/title/type",
    ),
    ("slack_file never uploaded", [{"type": "image", "slack_file": {"id": "F0NONE"}, "alt_text": "c"}], "slack_file"),
]


def test_blocks_at_the_limits_are_accepted(slack: WebClient) -> None:
    assert len(LIMIT_CARD) == 50
    slack.chat_postMessage(channel="#incidents", text="fallback", blocks=LIMIT_CARD)


@pytest.mark.parametrize(
    ("blocks", "pointer"), [(b, p) for _, b, p in INVALID_BLOCKS], ids=[i for i, _, _ in INVALID_BLOCKS]
)
def test_invalid_blocks_are_rejected(fake_slack: FakeSlack, slack: WebClient, blocks: list[Any], pointer: str) -> None:
    with pytest.raises(SlackApiError) as raised:
        slack.chat_postMessage(channel="#incidents", text="fallback", blocks=blocks)
    response = raised.value.response
    assert response["error"] == "invalid_blocks"
    assert any(pointer in error for error in response["errors"]), response["errors"]
    assert response["response_metadata"]["messages"][0].startswith("[ERROR] ")
    assert fake_slack.messages("#incidents") == []


def test_chat_update_validates_blocks_too(fake_slack: FakeSlack, slack: WebClient) -> None:
    posted = slack.chat_postMessage(channel="#incidents", text="x")
    with pytest.raises(SlackApiError, match="invalid_blocks"):
        slack.chat_update(channel=posted["channel"], ts=posted["ts"], text="y", blocks=[section(_long(3001))])
    assert fake_slack.message(posted["channel"], posted["ts"]).history == ()


# --------------------------------------------------------------------------------------------------------
# Slack: file uploads (files_upload_v2's three steps) and image blocks that show them

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def test_files_upload_v2_into_a_thread_then_an_image_block_of_it(fake_slack: FakeSlack, slack: WebClient) -> None:
    card = slack.chat_postMessage(channel="#incidents", text="card")
    uploaded = slack.files_upload_v2(
        channel=card["channel"],
        thread_ts=card["ts"],
        file=PNG,
        filename="chart.png",
        title="Chart v1",
        alt_txt="the breaker's chart",
        initial_comment="Chart v1 (opened).",
    )
    file_id = uploaded["file"]["id"]
    assert [c.method for c in fake_slack.calls] == [
        "chat.postMessage",
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]
    (file,) = fake_slack.files
    assert (file.id, file.filename, file.title, file.alt_txt, file.content) == (
        file_id,
        "chart.png",
        "Chart v1",
        "the breaker's chart",
        PNG,
    )
    (shared,) = fake_slack.thread("#incidents", card["ts"])
    assert (shared.text, [f["id"] for f in shared.files]) == ("Chart v1 (opened).", [file_id])
    assert file.shares == ((card["channel"], shared.ts),)
    image = {
        "type": "image",
        "slack_file": {"id": file_id},
        "alt_text": "chart",
        "title": section("x")["text"] | {"type": "plain_text"},
    }
    slack.chat_update(channel=card["channel"], ts=card["ts"], text="card", blocks=[section("card"), image])
    assert fake_slack.message("#incidents", card["ts"]).blocks[1]["slack_file"] == {"id": file_id}


async def test_the_async_client_uploads_too(fake_slack: FakeSlack) -> None:
    client = AsyncWebClient(token=TOKEN, base_url=fake_slack.api_url)
    card = await client.chat_postMessage(channel="#incidents", text="card")
    uploaded = await client.files_upload_v2(channel=card["channel"], thread_ts=card["ts"], file=PNG, filename="c.png")
    (file,) = fake_slack.files
    assert (uploaded["file"]["id"], file.content, file.completed) == (file.id, PNG, True)


def test_upload_steps_that_slack_refuses(fake_slack: FakeSlack, slack: WebClient) -> None:
    with pytest.raises(SlackApiError, match="invalid_arguments"):
        slack.files_getUploadURLExternal(filename="c.png", length=0)
    step1 = slack.files_getUploadURLExternal(filename="c.png", length=len(PNG))
    with pytest.raises(SlackApiError, match="file_not_found"):  # the bytes never arrived
        slack.files_completeUploadExternal(files=[{"id": step1["file_id"]}])
    short = httpx.post(step1["upload_url"], content=PNG[:-1])
    assert (short.status_code, short.text) == (400, f"length mismatch: announced {len(PNG)}, received {len(PNG) - 1}")
    sent = httpx.post(step1["upload_url"], content=PNG)
    assert (sent.status_code, sent.text, sent.headers["content-type"]) == (
        200,
        f"OK - {len(PNG)}",
        "text/plain; charset=utf-8",
    )
    with pytest.raises(SlackApiError, match="channel_not_found"):
        slack.files_completeUploadExternal(files=[{"id": step1["file_id"]}], channel_id="#incidents")
    slack.files_completeUploadExternal(files=[{"id": step1["file_id"]}], channel_id=fake_slack.channel_id("#incidents"))
    with pytest.raises(SlackApiError, match="file_not_found"):  # completed already
        slack.files_completeUploadExternal(files=[{"id": step1["file_id"]}])
    assert httpx.post(f"{fake_slack.base_url}/upload/v1/unknown", content=PNG).status_code == 404


# --------------------------------------------------------------------------------------------------------
# Slack: faults, and what slack_sdk does with them


def test_429_surfaces_as_slack_api_error_with_retry_after(fake_slack: FakeSlack, slack: WebClient) -> None:
    fake_slack.fail_next(1, status=429, retry_after=7)
    with pytest.raises(SlackApiError) as raised:
        slack.chat_postMessage(channel="#incidents", text="x")
    response = raised.value.response
    assert (response.status_code, response["error"], response.headers["Retry-After"]) == (429, "ratelimited", "7")
    assert len(fake_slack.calls) == 1  # the default retry handlers do not retry a 429
    slack.chat_postMessage(channel="#incidents", text="x")


def test_rate_limit_retry_handler_sleeps_retry_after(fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(builtin_handlers, "time", SimpleNamespace(sleep=sleeps.append))
    client = WebClient(
        token=TOKEN, base_url=fake_slack.api_url, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)]
    )
    fake_slack.fail_next(2, status=429, retry_after=3, method="chat.postMessage")
    client.chat_postMessage(channel="#incidents", text="third time lucky")
    assert [call.status for call in fake_slack.calls] == [429, 429, 200]
    assert len(sleeps) == 2
    assert all(3 <= slept < 4 for slept in sleeps)  # Retry-After plus up to 1 s of jitter


@pytest.mark.parametrize(("status", "error"), [(500, "internal_error"), (503, "service_unavailable")])
def test_5xx_are_not_retried_by_default(fake_slack: FakeSlack, slack: WebClient, status: int, error: str) -> None:
    fake_slack.fail_next(1, status=status)
    with pytest.raises(SlackApiError) as raised:
        slack.chat_update(channel="C0NONE", ts="1.1", text="x")
    assert (raised.value.response.status_code, raised.value.response["error"]) == (status, error)
    assert len(fake_slack.calls) == 1


def test_fail_next_can_target_one_method(fake_slack: FakeSlack, slack: WebClient) -> None:
    fake_slack.fail_next(1, status=200, error="fatal_error", method="chat.update")
    posted = slack.chat_postMessage(channel="#incidents", text="x")
    with pytest.raises(SlackApiError, match="fatal_error"):
        slack.chat_update(channel=posted["channel"], ts=posted["ts"], text="y")
    slack.chat_update(channel=posted["channel"], ts=posted["ts"], text="y")


def test_per_channel_post_message_rate_limit() -> None:
    clock = ManualClock()
    with FakeSlack(post_message_rate=1.0, post_message_burst=2, clock=clock) as fake:
        client = WebClient(token=TOKEN, base_url=fake.api_url)
        client.chat_postMessage(channel="#incidents", text="1")
        client.chat_postMessage(channel="#incidents", text="2")
        with pytest.raises(SlackApiError) as raised:
            client.chat_postMessage(channel="#incidents", text="3")
        assert (raised.value.response.status_code, raised.value.response.headers["Retry-After"]) == (429, "1")
        client.chat_postMessage(channel="#other", text="other channels have their own budget")
        clock.advance(1.0)
        client.chat_postMessage(channel="#incidents", text="3 again")
        assert [message.text for message in fake.messages("#incidents")] == ["1", "2", "3 again"]
        assert [call.outcome for call in fake.calls].count("rate_limited") == 1


def test_slack_down(fake_slack: FakeSlack) -> None:
    client = WebClient(token=TOKEN, base_url=fake_slack.api_url, retry_handlers=[])
    fake_slack.set_down(True)
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        client.chat_postMessage(channel="#incidents", text="x")
    fake_slack.set_down(True, mode="503")
    with pytest.raises(SlackApiError) as raised:
        client.chat_postMessage(channel="#incidents", text="x")
    assert raised.value.response.status_code == 503
    fake_slack.set_down(False)
    client.chat_postMessage(channel="#incidents", text="back")


# --------------------------------------------------------------------------------------------------------
# Slack: the async client


async def test_async_client_round_trip_and_429(fake_slack: FakeSlack) -> None:
    client = AsyncWebClient(token=TOKEN, base_url=fake_slack.api_url)
    assert (await client.auth_test())["team_id"] == "T0FAKETEAM"
    posted = await client.chat_postMessage(channel="#incidents", text="async card", blocks=[section("*open*")])
    await client.chat_postMessage(channel=posted["channel"], text="async reply", thread_ts=posted["ts"])
    await client.chat_update(channel=posted["channel"], ts=posted["ts"], text="async card, acked")
    assert fake_slack.message("#incidents", posted["ts"]).text == "async card, acked"
    assert [reply.text for reply in fake_slack.thread("#incidents", posted["ts"])] == ["async reply"]

    fake_slack.fail_next(1, status=429, retry_after=2)
    with pytest.raises(SlackApiError) as raised:
        await client.chat_postMessage(channel="#incidents", text="x")
    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "2"
    assert raised.value.response["error"] == "ratelimited"

    with pytest.raises(SlackApiError) as raised:
        await client.chat_postMessage(channel="#incidents", text="x", blocks=[section(_long(3001))])
    assert raised.value.response["error"] == "invalid_blocks"


async def test_async_rate_limit_retry_handler(fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    monkeypatch.setattr(builtin_async_handlers, "asyncio", SimpleNamespace(sleep=sleep))
    client = AsyncWebClient(
        token=TOKEN,
        base_url=fake_slack.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    fake_slack.fail_next(1, status=429, retry_after=5)
    await client.chat_postMessage(channel="#incidents", text="after one retry")
    assert [call.status for call in fake_slack.calls] == [429, 200]
    assert len(sleeps) == 1
    assert 5 <= sleeps[0] < 6


# --------------------------------------------------------------------------------------------------------
# Slack: inbound requests (signatures, button presses)


def test_signature_helper_matches_slack_sdk() -> None:
    verifier = SignatureVerifier("8f742231b10e8888abcd99yyyzzz85a5")
    body = b"payload=%7B%22type%22%3A%22block_actions%22%7D"
    headers = sign_slack_request("8f742231b10e8888abcd99yyyzzz85a5", body)
    assert verifier.is_valid_request(body, headers)
    assert not verifier.is_valid_request(body + b"x", headers)
    assert not verifier.is_valid_request(body, sign_slack_request("another-secret", body))
    stale = sign_slack_request(
        "8f742231b10e8888abcd99yyyzzz85a5", body, timestamp=int(headers["X-Slack-Request-Timestamp"]) - 301
    )
    assert not verifier.is_valid_request(body, stale)  # outside the 5-minute window


def test_slack_docs_signature_example() -> None:
    # The worked example of https://docs.slack.dev/authentication/verifying-requests-from-slack
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    headers = sign_slack_request("8f742231b10e8888abcd99yyyzzz85a5", body, timestamp=1531420618)
    assert headers["X-Slack-Signature"] == "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def test_block_actions_payload(fake_slack: FakeSlack, slack: WebClient) -> None:
    card = [section("*openai* breaker open"), {"type": "actions", "elements": [button("ack", style="primary")]}]
    posted = slack.chat_postMessage(channel="#incidents", text="card", blocks=card)
    message = fake_slack.message("#incidents", posted["ts"]).to_api()
    body = block_actions_payload("ack", "inc-1", "U0ONCALL", posted["channel"], posted["ts"], message=message)

    assert body.startswith(b"payload=")
    payload = decode_interaction_payload(body)
    assert payload["type"] == "block_actions"
    assert payload["user"]["id"] == "U0ONCALL"
    assert payload["container"] == {
        "type": "message",
        "message_ts": posted["ts"],
        "channel_id": posted["channel"],
        "is_ephemeral": False,
    }
    assert payload["channel"]["id"] == posted["channel"]
    [action] = payload["actions"]
    assert (action["type"], action["action_id"], action["value"], action["style"]) == (
        "button",
        "ack",
        "inc-1",
        "primary",
    )
    assert action["block_id"] == message["blocks"][1]["block_id"]  # taken from the message Slack stored
    assert action["text"] == {"type": "plain_text", "text": "Acknowledge", "emoji": True}
    assert payload["message"]["ts"] == posted["ts"]
    assert payload["response_url"].startswith("https://hooks.slack.com/actions/")
    assert payload["trigger_id"]
    assert SignatureVerifier("secret").is_valid_request(body, sign_slack_request("secret", body))


def test_raw_form_and_query_arguments_are_understood(fake_slack: FakeSlack) -> None:
    # Slack also takes form bodies (and a token argument in them) and query-string arguments (slack_sdk's async
    # client sends ``params`` there).
    blocks = json.dumps([section("*form*")])
    response = httpx.post(
        f"{fake_slack.api_url}chat.postMessage",
        data={"token": TOKEN, "channel": "#incidents", "text": "form", "blocks": blocks},
    )
    assert response.json()["ok"] is True
    assert fake_slack.messages("#incidents")[0].blocks[0]["text"]["text"] == "*form*"
    response = httpx.post(f"{fake_slack.api_url}auth.test?token={TOKEN}")
    assert response.json() == {"ok": False, "error": "not_authed"}  # tokens in the query string are ignored
    response = httpx.post(f"{fake_slack.api_url}auth.test?foo=bar", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.json()["ok"] is True
    assert fake_slack.calls[-1].args == {"foo": "bar"}
    response = httpx.post(
        f"{fake_slack.api_url}chat.postMessage",
        json={"token": TOKEN, "channel": "#incidents", "text": "token in JSON"},
    )
    assert response.json() == {"ok": False, "error": "not_authed"}  # JSON bodies need the Authorization header
    response = httpx.post(
        f"{fake_slack.api_url}auth.test",
        content=b"{",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert response.json()["error"] == "invalid_json"


def test_ssl_context_trusts_only_the_fake(fake_pagerduty: FakePagerDuty) -> None:
    context = fake_pagerduty.ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert fake_pagerduty.ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_reset_brings_a_fake_back_up_with_nothing_recorded(
    fake_slack: FakeSlack, slack: WebClient, fake_pagerduty: FakePagerDuty, pd: pagerduty.EventsApiV2Client
) -> None:
    slack.chat_postMessage(channel="#incidents", text="x")
    pd.trigger("x", "h")
    fake_slack.set_down(True)
    fake_pagerduty.set_down(True)
    fake_slack.fail_next(3)
    fake_pagerduty.set_rate_limit(1)
    fake_slack.reset()
    fake_pagerduty.reset()
    assert (fake_slack.calls, fake_slack.messages("#incidents"), fake_pagerduty.events) == ([], [], [])
    slack.chat_postMessage(channel="#incidents", text="y")
    pd.trigger("y", "h")
    pd.trigger("z", "h")


def test_waiting_for_calls_made_from_another_thread(fake_slack: FakeSlack, slack: WebClient) -> None:
    assert fake_slack.wait_for_calls(0, timeout=0.1) == []
    sender = threading.Timer(0.05, lambda: slack.chat_postMessage(channel="#incidents", text="later"))
    sender.start()
    [call] = fake_slack.wait_for_calls(1, method="chat.postMessage", timeout=5.0)
    sender.join()
    assert call.args["text"] == "later"
    with pytest.raises(TimeoutError):
        fake_slack.wait_for_calls(2, timeout=0.05)
