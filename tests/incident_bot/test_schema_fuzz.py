"""Schemathesis against the incident bot's OpenAPI schema: no 5xx for any generated input.

The real bot runs as in production, ``python -m breakerpanel.incident_bot`` in a process of its own (guard
middleware, FastAPI validation, the group-commit writer, the processor, the dry-run outbox worker),
on a free loopback port, over a SQLite file in a temporary directory, with a known webhook token and
a Slack signing secret (dry run: no PagerDuty key, no Slack token). Three incidents are seeded
first, so that generated incident ids also find real ones. The schema is the app's own
(``create_app(...).openapi()``), read in this process without serving it.

Every operation of the schema is fuzzed twice: with the bearer token (generated webhooks get past
the guard, reach validation and are stored; a schema-valid one must be stored) and without it (the
intake must answer 401). Checks: no server error (with the bot's traceback in the failure), status
codes, content types, headers and bodies conform to the schema. Examples are derandomised and
bounded (``FUZZ``) so the module takes well under a minute on two cores, ``CI`` or not. Every
request opens a new connection: after a 500, uvicorn closes the connection it went out on, and a
reused one would blame the next example.

Targeted generators cover what the schema cannot describe: the Slack route's signed form bodies
and its headers (it declares neither), and deeply nested JSON.

Every status the bot answers must be documented in its schema (``status_code_conformance``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis.checks import CheckContext, CheckFunction, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from breakerpanel.incident_bot.app import INTAKE_PATH, create_app
from breakerpanel.incident_bot.guard import json_nesting_depth
from breakerpanel.incident_bot.settings import ENV_PREFIX, Settings
from breakerpanel.incident_bot.slack import ACK_ACTION, RESOLVE_ACTION
from tests.servers import find_free_port

from .support import AlertSpec, breaker_labels, webhook

ROOT = Path(__file__).resolve().parents[2]

TOKEN = "fuzz-webhook-token"
SLACK_SECRET = "fuzz-slack-signing-secret"
SLACK_USER = "U0FUZZ"
SLACK_PATH = "/v1/slack/interactions"

#: Fixed for CI stability: every example is the same on every run (a failure reproduces).
FUZZ = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _environment(database: Path) -> dict[str, str]:
    """The bot's settings, as ``INCIDENT_BOT_*`` variables without the prefix."""
    return {
        "webhook_token": TOKEN,
        "database_url": f"sqlite+aiosqlite:///{database}",
        "slack_signing_secret": SLACK_SECRET,
        "slack_allowed_users": json.dumps([SLACK_USER]),
        # The unauthenticated run sends hundreds of bad tokens from one address: the 401 path is
        # what is fuzzed, not the lockout (429) that would follow after ten.
        "auth_failures_allowed": "1000000",
        "dry_run": "true",
    }


# The schema is the app's own, read without serving it (nothing connects to this database).
_schema_settings = Settings.model_validate(
    {
        name: json.loads(value) if name == "slack_allowed_users" else value
        for name, value in _environment(Path("never-opened.db")).items()
    }
)
schema = schemathesis.openapi.from_dict(create_app(_schema_settings).openapi())


#: The start of a log record: uvicorn's ("ERROR:    ...") or the bot's ("2026-11-27 01:00:00,000 ...").
_LOG_RECORD = re.compile(rb"\n(?:(?:CRITICAL|ERROR|WARNING|INFO|DEBUG):|\d{4}-\d\d-\d\d \d)")


@dataclass
class RunningBot:
    url: str
    log: Path
    _read: int = 0

    def new_traceback(self, wait: float = 1.0) -> str:
        """The next traceback in the bot's log ('' if none comes within ``wait`` seconds: uvicorn
        logs it just after the 500 went out). A log record is written whole, in one call."""
        deadline = time.monotonic() + wait
        while True:
            with self.log.open("rb") as log:
                log.seek(self._read)
                text = log.read()
            start = text.find(b"Traceback (most recent call last)")
            if start >= 0:
                following = _LOG_RECORD.search(text, start)  # the traceback ends where a record starts
                end = following.start() if following else len(text)
                self._read += end
                return text[start:end].decode(errors="replace")[-4000:]
            if time.monotonic() > deadline:
                return ""
            time.sleep(0.02)


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBot]:
    """``python -m breakerpanel.incident_bot`` on a free loopback port, with three incidents already open.

    A process of its own, as in production: its event loop, recursion limit and warnings filters
    are not the test's (pytest turns warnings into errors; Hypothesis moves the recursion limit).
    """
    directory = tmp_path_factory.mktemp("fuzz")
    env = {name: value for name, value in os.environ.items() if not name.startswith(ENV_PREFIX)}
    env |= {f"{ENV_PREFIX}{name.upper()}": value for name, value in _environment(directory / "bot.db").items()}
    log = directory / "bot.log"
    for attempt in range(3):  # the free port may be taken before the bot binds it: take another
        port = find_free_port()
        with log.open("wb") as output:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "breakerpanel.incident_bot",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
                cwd=ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, process, log)
            break
        except RuntimeError:
            _stop(process)
            if attempt == 2 or "address already in use" not in log.read_text():
                raise
    try:
        _seed(url)
        yield RunningBot(url, log)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the bot exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the bot was not ready within 20 s:\n{log.read_text()[-2000:]}")
        time.sleep(0.05)


def _token() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


def _seed(url: str) -> None:
    with httpx.Client(base_url=url, headers=_token(), timeout=10) as client:
        for name in ("openai", "anthropic", "qdrant"):
            spec = AlertSpec(breaker_labels(name))
            response = client.post(INTAKE_PATH, json=webhook((spec, "firing"), group_key=f"{{}}:{{name={name!r}}}"))
            assert response.status_code == 200, response.text
        deadline = time.monotonic() + 10
        while len(client.get("/v1/incidents").json()) < 3:
            assert time.monotonic() < deadline, "the seeded webhooks were not processed"
            time.sleep(0.05)


# --------------------------------------------------------------------------- checks


def _server_error_check(bot: RunningBot) -> CheckFunction:
    """``not_a_server_error``, with the bot's traceback in the failure: that is the bug."""

    def not_a_server_error_in_the_bot(
        ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case
    ) -> bool | None:
        try:
            return not_a_server_error(ctx, response, case)
        except Exception as exc:
            if traceback := bot.new_traceback():
                exc.add_note(f"The bot logged:\n{traceback}")
            raise

    return not_a_server_error_in_the_bot


def valid_webhooks_are_stored(
    ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """With the token, a webhook that conforms to the schema is stored: 200 and a webhook id."""
    if case.operation.path != INTAKE_PATH or case.meta is None or not case.meta.generation.mode.is_positive:
        return None
    if case.method.upper() != "POST" or (case.media_type or "application/json") != "application/json":
        return None
    assert response.status_code == 200, f"a schema-valid webhook got {response.status_code}: {response.text[:300]}"
    answer = response.json()
    assert answer["status"] == "accepted"
    assert isinstance(answer["webhook_id"], int)
    return None


def intake_wants_the_token(ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case) -> bool | None:
    """Without the token, the intake answers 401 with ``WWW-Authenticate: Bearer``, whatever was sent."""
    if case.operation.path != INTAKE_PATH:
        return None
    assert response.status_code == 401, f"no token, got {response.status_code}: {response.text[:300]}"
    assert response.headers.get("www-authenticate") == ["Bearer"]
    return None


def _checks(bot: RunningBot) -> list[CheckFunction]:
    return [
        _server_error_check(bot),
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]


# --------------------------------------------------------------------------- schema-driven


@schema.parametrize()
@FUZZ
def test_with_the_token(case: schemathesis.Case, bot: RunningBot) -> None:
    case.call_and_validate(
        base_url=bot.url,
        headers=_token(),
        checks=[*_checks(bot), valid_webhooks_are_stored],
    )


@schema.parametrize()
@FUZZ
def test_without_the_token(case: schemathesis.Case, bot: RunningBot) -> None:
    if case.headers:  # no generated header may carry a token either
        case.headers.pop("Authorization", None)
    case.call_and_validate(base_url=bot.url, checks=[*_checks(bot), intake_wants_the_token])


def test_every_operation_is_fuzzed() -> None:
    operations = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    assert operations == {
        ("POST", INTAKE_PATH),
        ("POST", SLACK_PATH),
        ("GET", "/v1/incidents"),
        ("GET", "/v1/incidents/{incident_id}"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/charts/{chart_id}.{fmt}"),
    }


def test_a_number_is_no_date_time(bot: RunningBot) -> None:
    document = webhook((AlertSpec(breaker_labels("numeric")), "firing"), group_key="numeric")
    document["alerts"][0]["endsAt"] = 0
    response = requests.post(bot.url + INTAKE_PATH, json=document, headers=_token(), timeout=10)
    assert response.status_code == 422, response.text


# --------------------------------------------------------------------------- Slack


def _latin1(min_size: int = 0) -> st.SearchStrategy[str]:
    """Header values h11 lets through: visible Latin-1, no surrounding space."""
    return st.text(st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="\x7f"), min_size=min_size)


@given(
    timestamp=st.one_of(st.just("now"), _latin1(1), st.integers().map(str)),
    signature=st.one_of(_latin1(1), st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: f"v0={h}")),
    body=st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)),
)
@example(timestamp="abc", signature="v0=0", body=b"payload=%7B%7D")
@example(timestamp="now", signature="v0=0", body=b"\xff")
@example(timestamp="now", signature="v0=\xe9", body=b"payload=%7B%7D")
@FUZZ
def test_forged_slack_requests_are_refused(bot: RunningBot, timestamp: str, signature: str, body: bytes) -> None:
    stamp = str(int(time.time())) if timestamp == "now" else timestamp
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp.encode("latin-1"),
        "X-Slack-Signature": signature.encode("latin-1"),
    }
    response = requests.post(bot.url + SLACK_PATH, data=body, headers=headers, timeout=10)
    assert response.status_code in (401, 413), (stamp, signature, body, response.status_code, response.text[:200])


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
_action = st.fixed_dictionaries(
    {
        "action_id": st.sampled_from([ACK_ACTION, RESOLVE_ACTION, "open_in_grafana"]) | _json,
        "value": st.integers(min_value=-2, max_value=5).map(str) | st.integers() | _json,
    }
)
_slack_payload = st.one_of(
    _json,
    st.fixed_dictionaries(
        {
            "type": st.just("block_actions"),
            "actions": st.lists(_action, max_size=2) | _json,
            "user": st.fixed_dictionaries({"id": st.sampled_from([SLACK_USER, "U0OTHER"]) | _json}) | _json,
        },
        # Never a URL: the bot would post its answer there.
        optional={"response_url": st.sampled_from(["", "slack://nowhere"]) | _json},
    ),
)


@given(payload=_slack_payload)
@example(payload={"type": "block_actions", "actions": [{"action_id": ACK_ACTION, "value": "1"}], "user": "U0FUZZ"})
@FUZZ
def test_signed_slack_payloads_get_no_5xx(bot: RunningBot, payload: Any) -> None:
    body = "payload=" + quote(json.dumps(payload))
    stamp = str(int(time.time()))
    digest = hmac.new(SLACK_SECRET.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
    }
    response = requests.post(bot.url + SLACK_PATH, data=body, headers=headers, timeout=10)
    assert response.status_code in (200, 400), (payload, response.status_code, response.text[:200])


# --------------------------------------------------------------------------- nesting


def _nested_webhook(depth: int) -> bytes:
    spec = AlertSpec(breaker_labels("deep"))
    document = json.dumps(webhook((spec, "firing"), group_key=f"deep-{depth}"))
    """A webhook with ``depth`` arrays nested in a top-level field (so ``depth + 1`` levels)."""
    return (document[:-1] + ', "extra": ' + "[" * depth + "]" * depth + "}").encode()


@pytest.mark.parametrize("depth", [4, 32, 33, 999, 100_000])
def test_the_bot_limits_nesting_itself(bot: RunningBot, depth: int) -> None:
    """Nesting up to the bot's own limit (32 levels; a webhook's labels are at 4) is accepted;
    deeper is refused with 400, whatever the Python version's JSON parser allows. Never 5xx."""
    headers = {**_token(), "Content-Type": "application/json"}
    response = requests.post(bot.url + INTAKE_PATH, data=_nested_webhook(depth - 1), headers=headers, timeout=30)
    if depth <= 32:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 400, response.text
        assert "deeper than 32 levels" in response.json()["detail"]


def test_brackets_inside_strings_are_not_nesting() -> None:
    assert json_nesting_depth(b'{"a": "[[[[{{", "b": [{"c": "\\"]]"}]}') == 3
    assert json_nesting_depth(b'["' + b'\\"[' * 10_000) == 1  # unterminated: one string to the end
    assert json_nesting_depth(b"[" * 10_000) == 10_000
    assert json_nesting_depth(b"7") == 0
