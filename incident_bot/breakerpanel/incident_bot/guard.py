"""The intake's gate, as ASGI middleware in front of FastAPI: the bearer token (401, compared in
constant time), the lockout of clients that keep presenting bad tokens (429), the per-client rate
limit (503 with ``Retry-After`` and ``RateLimit`` fields), the body size limit (413) and the
nesting limit of a JSON body (400), all before the body is parsed; load shedding (503)
sits in front of it. The nesting limit is the bot's own, not the JSON parser's: Python 3.11 refuses
about 1,000 levels, 3.13 parses far deeper, and an Alertmanager webhook needs 4. The rate limit,
lockout and shedding are the breaker library's (:mod:`breakerpanel.integrations.guards`); the Slack
route reports its bad signatures to the same :class:`~breakerpanel.guards.LockoutGuard`.

The lockout is per source address and only ever refuses bad credentials: a request with the valid
token is never refused by it. Alertmanager shares its address with whatever else runs there, and
locking that address out would let anyone who can reach the bot silence it. And what the intake
refuses to a client holding the token (the rate limit, shedding) is a 503, never a 429:
Alertmanager 0.25 drops a notification answered 429, and retries one answered 5xx.

A webhook holding a character no database can store (a lone UTF-16 surrogate, which JSON sends as
the escape ``"\\ud800"`` and Python parses, or NUL) gets it replaced with U+FFFD here, before it is
validated and stored, and its answer names the fields repaired. Stored as sent, it would fail when
processed, after its 200, and every alert in it would be lost, the valid ones too (and the model
already refuses a surrogate in ``fingerprint`` or ``groupKey``). Refusing it (422) would lose them
as well: Alertmanager never retries a 4xx, and the engineer on call would not be paged for the
alerts that were fine. Replaced, every alert pages, with a visible "�" where the bad character was.
Only a body holding such an escape is parsed here.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import re
from dataclasses import dataclass
from itertools import accumulate

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from breakerpanel.guards import LockoutGuard, LockoutPolicy, LockoutStatus, RateLimiter, constant_time_equals
from breakerpanel.integrations.guards import client_address

from .alertmanager import without_unstorable_characters
from .metrics import BotMetrics
from .settings import ENV_PREFIX, Settings

logger = logging.getLogger("breakerpanel.incident_bot.guard")

__all__ = [
    "IntakeGuard",
    "ReadAccess",
    "bad_credential",
    "intake_lockout",
    "is_loopback",
    "json_nesting_depth",
    "repair_unstorable",
]

# A string, or an unterminated one up to the end: every quote starts a match that succeeds, so a
# hostile body (many escaped quotes, no closing one) is scanned once, not once per quote.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\[\s\S]?)*+(?:"|\Z)')
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
#: The JSON escape of a surrogate (lone, or half of a pair) or of NUL: where a character no database
#: can store may hide (raw, neither can be in a body that parses: UTF-8 has no surrogates, and JSON
#: strings hold no raw control characters).
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:[dD][89a-fA-F][0-9a-fA-F]{2}|0000)")
_OPENERS = frozenset(b"[{")


def json_nesting_depth(body: bytes) -> int:
    """How deeply arrays and objects nest in a JSON document, without parsing it (no recursion:
    linear in the body's size). Brackets inside strings do not count; a malformed document gets
    a number too, and the parser refuses it later."""
    skeleton = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    openers = len(skeleton) - skeleton.count(b"]") - skeleton.count(b"}")
    if openers <= 1:
        return openers
    return max(accumulate(1 if byte in _OPENERS else -1 for byte in skeleton))


def intake_lockout(failures_allowed: int, window: float, lockout: float) -> LockoutGuard:
    """The bot's lockout: ``failures_allowed`` bad credentials from one address within ``window``
    seconds lock it out for ``lockout`` seconds, doubling on each repeat (up to 16 times)."""
    policy = LockoutPolicy(
        max_failures=failures_allowed,
        window=window,
        base_lockout=lockout,
        multiplier=2,
        max_lockout=lockout * 16,
        forget_after=max(86_400.0, lockout * 32),  # strikes outlive the longest lockout
    )
    return LockoutGuard("incident_bot.auth", policy, address_policy=policy)


class IntakeGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        paths: tuple[str, ...],
        token: str,
        max_body_bytes: int,
        max_json_depth: int,
        json_paths: tuple[str, ...] = (),
        lockout: LockoutGuard,
        rate_limiter: RateLimiter | None = None,
        bearer_paths: tuple[str, ...] | None = None,
        metrics: BotMetrics,
    ) -> None:
        self.app = app
        self.paths = paths
        #: The paths that need the bearer token (the others authenticate in the route: Slack's
        #: signature, whose failures the route reports to ``lockout``).
        self.bearer_paths = paths if bearer_paths is None else bearer_paths
        self._expected = f"Bearer {token}".encode()
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        #: The paths whose bodies are JSON (the others, Slack's, are form-encoded).
        self.json_paths = json_paths
        self.lockout = lockout
        self.rate_limiter = rate_limiter
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        client = client_address(scope)
        headers = dict(scope["headers"])
        needs_token = scope["path"] in self.bearer_paths
        if needs_token and not constant_time_equals(headers.get(b"authorization", b""), self._expected):
            await _refuse_bad_token(send, self.lockout, client, self.metrics)
            return
        if self.rate_limiter is not None:
            decision = await self.rate_limiter.acquire(client)
            if not decision.allowed:
                self.metrics.rejected.labels("rate_limited").inc()
                # Past the token, this is Alertmanager: a 503 makes it retry, a 429 would lose the
                # notification. Slack's route keeps the 429 that says what happened.
                await _answer(
                    send,
                    503 if needs_token else 429,
                    "too many requests from this client: retry later",
                    extra=decision.headers(),
                )
                return
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            self.metrics.rejected.labels("too_large").inc()
            await _answer(send, 413, f"the body is over {self.max_body_bytes} bytes")
            return
        content = await self._body(receive, send)
        if content is None:
            return
        if scope["path"] in self.json_paths:
            if json_nesting_depth(content) > self.max_json_depth:
                self.metrics.rejected.labels("too_deep").inc()
                await _answer(send, 400, f"the JSON body nests deeper than {self.max_json_depth} levels")
                return
            constant = non_finite_number(content)
            if constant is not None:
                self.metrics.rejected.labels("not_json").inc()
                await _answer(send, 400, f"the body is not JSON: {constant} is not a JSON number")
                return
            content, repaired = repair_unstorable(content)
            if repaired:  # the route reports them (request.state.repaired)
                scope.setdefault("state", {})["repaired"] = repaired
                scope["headers"] = [
                    (name, str(len(content)).encode() if name == b"content-length" else value)
                    for name, value in scope["headers"]
                ]
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": content, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _body(self, receive: Receive, send: Send) -> bytes | None:
        """The whole body, read here (bounded), so a chunked one cannot slip past the limit; None
        when the client left or the body is too large (answered 413)."""
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                self.metrics.rejected.labels("too_large").inc()
                await _answer(send, 413, f"the body is over {self.max_body_bytes} bytes")
                return None
            if not message.get("more_body", False):
                return bytes(body)


def non_finite_number(body: bytes) -> str | None:
    """The first ``NaN``, ``Infinity`` or ``-Infinity`` that ``body`` holds as a number, else None.
    Python's parser takes them, JSON does not: PostgreSQL's json type refuses to store them (the
    write would fail, and Alertmanager retry a 503 without end), and neither is a webhook's."""
    if b"NaN" not in body and b"Infinity" not in body:  # the common case: no parse
        return None
    found: list[str] = []

    def constant(name: str) -> float:
        found.append(name)
        return 0.0

    try:
        json.loads(body, parse_constant=constant)
    except ValueError:
        return None  # not JSON at all: the route's parser says why
    return found[0] if found else None


def repair_unstorable(body: bytes) -> tuple[bytes, list[str]]:
    """``body`` (JSON) with every character no database can store replaced by U+FFFD, and the
    fields that had one; the body itself, untouched, when it has none or does not parse (the
    parser says why later)."""
    if not _SUSPECT_ESCAPE.search(body):
        return body, []
    try:
        document = json.loads(body)
    except ValueError:
        return body, []
    cleaned, repaired = without_unstorable_characters(document)
    if not repaired:
        return body, []  # surrogate pairs: characters like any other
    return json.dumps(cleaned).encode(), repaired


def is_loopback(host: str | None) -> bool:
    """Whether a server bound to ``host`` is reachable from this machine only (None: unknown, no)."""
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


@dataclass(frozen=True)
class ReadAccess:
    """Who may read the incidents, the pages and /metrics: anyone when the bot listens on loopback
    only (whoever reaches it is on this machine); else a bearer ``token`` (compared in constant
    time), or a request from a trusted proxy (``proxy_networks``) that names the person in
    ``proxy_header``. With neither configured, nobody: the bot does not publish its incidents to
    whoever can reach its port."""

    open_to_all: bool
    token: str | None = None
    proxy_header: str | None = None
    proxy_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings, listen_host: str | None) -> ReadAccess:
        return cls(
            open_to_all=is_loopback(listen_host),
            token=settings.read_token.get_secret_value() if settings.read_token else None,
            proxy_header=settings.read_proxy_header,
            proxy_networks=tuple(ipaddress.ip_network(a, strict=False) for a in settings.read_proxy_addresses),
        )

    @property
    def configured(self) -> bool:
        """Whether any credential can pass (besides listening on loopback)."""
        return self.token is not None or self.proxy_header is not None

    def allows(self, scope: Scope) -> bool:
        if self.open_to_all:
            return True
        headers = dict(scope["headers"])
        if self.token is not None and constant_time_equals(
            headers.get(b"authorization", b""), f"Bearer {self.token}".encode()
        ):
            return True
        if self.proxy_header is not None and headers.get(self.proxy_header.lower().encode("latin-1")):
            return self._from_trusted_proxy(client_address(scope))
        return False

    def _from_trusted_proxy(self, client: str) -> bool:
        try:
            address = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(address in network for network in self.proxy_networks)

    def refusal(self) -> str:
        """Why a read was refused, for the one refused."""
        if self.token is not None:
            return "reading needs a credential: Authorization: Bearer <read token>"
        if self.proxy_header is not None:
            return "reading needs a credential: come through the authenticating proxy"
        return (
            f"reading is off: the bot listens beyond loopback and has no read credential "
            f"(set {ENV_PREFIX}READ_TOKEN or {ENV_PREFIX}READ_TOKEN_FILE, or listen on 127.0.0.1)"
        )

    def log_policy(self) -> None:
        """Say at start who may read (never the token)."""
        if self.open_to_all:
            logger.info("reads are open: listening on loopback only")
        elif self.configured:
            ways = [w for w, on in (("the read token", self.token), ("the proxy header", self.proxy_header)) if on]
            logger.info("reads need %s", " or ".join(ways))
        else:
            logger.warning("%s", self.refusal().replace("reading is off", "reads are refused"))


async def bad_credential(lockout: LockoutGuard, client: str) -> LockoutStatus:
    """Deal with a wrong or missing credential from ``client``: while its address is locked out,
    the lock (answer 429 with ``Retry-After``: a source that keeps guessing is throttled); else the
    failure is counted towards the lockout and the status is open (answer 401)."""
    status = await lockout.check(None, client)
    if not status.locked:
        await lockout.failed(None, client)
    return status


async def _refuse_bad_token(send: Send, lockout: LockoutGuard, client: str, metrics: BotMetrics) -> None:
    status = await bad_credential(lockout, client)
    if status.locked:
        metrics.rejected.labels("throttled").inc()
        await _answer(send, 429, "too many bad tokens from this client: retry later", retry_after=status.retry_after)
        return
    metrics.rejected.labels("unauthorized").inc()
    await _answer(send, 401, "a valid bearer token is required", www_authenticate=True)


async def _answer(
    send: Send,
    status: int,
    detail: str,
    *,
    retry_after: float | None = None,
    www_authenticate: bool = False,
    extra: dict[str, str] | None = None,
) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, math.ceil(retry_after))).encode()))  # never early
    if www_authenticate:
        headers.append((b"www-authenticate", b"Bearer"))
    for name, value in (extra or {}).items():
        headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
