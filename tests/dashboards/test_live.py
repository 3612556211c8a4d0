"""Every query of every dashboard, run against a real Prometheus.

Prometheus (scrape and rule evaluation every second, with the recording rules and one SLO)
scrapes an instrumented process driven through an OpenAI outage and its recovery: slow calls,
failures of several error types (a 429 among them), an ignored bad request, rejections (open,
parent_open), an Anthropic alternate and a static answer serving the ``answer`` feature, a cache
serving openai.chat's own chain, open -> half_open -> closed, and providers with and without
endpoints, paced over several scrapes as real traffic would be. Then each dashboard's
variables are resolved in order the way Grafana does (label values, query results), and every
panel target and annotation is run with them: none may fail, and each must return data unless it
is in :data:`NO_DATA_EXPECTED`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml

from breakerpanel import (
    Alternate,
    BreakerConfig,
    BreakerRegistry,
    CachedResponse,
    CircuitBreaker,
    CircuitOpenError,
    FallbackChain,
    MemoryCache,
    ProbeRunner,
    State,
    Static,
    TripForecast,
)
from breakerpanel.alert_rules.recording import recording_groups
from breakerpanel.dashboards import common
from breakerpanel.exporter import BreakerTelemetry, promql
from breakerpanel.exporter import semconv as sc
from breakerpanel.exporter.loop_names import SLO_OBJECTIVE, Var, error_ratio
from breakerpanel.guards import (
    AIMDLimit,
    ConcurrencyLimiter,
    LockoutGuard,
    LockoutPolicy,
    Priority,
    RateLimiter,
    RateLimitPolicy,
)
from breakerpanel.presets import llm_http
from tests.promql_names import substitute
from tests.servers import PrometheusServer, ServerPool, find_free_port, wait_until

from .support import TEST_RULES_CONFIG, query_every_dashboard, rendered, resolve_variables

JOB = "assistant"
#: The value a single-value variable takes when its options include it (else the first option).
PREFERRED: dict[str, str] = {Var.JOB: JOB, Var.SERVICE: "openai", Var.BREAKER: "openai.chat", Var.SLO: "llm"}
#: (dashboard uid, where) -> why the query may return nothing after this scenario.
NO_DATA_EXPECTED: dict[tuple[str, str], str] = {
    ("breakerpanel-detail", "panel 'Breakers under it' target A"): (
        "the selected breaker, openai.chat, is an endpoint: no breaker sits under it "
        "(test_the_dashboards_show_what_happened selects the openai service for this panel)"
    ),
}

WAIT_IN_OPEN = 4.0
LLM = BreakerConfig(
    classifier=llm_http(),
    minimum_calls=4,
    sliding_window_size=10,
    wait_in_open=WAIT_IN_OPEN,
    permitted_calls_in_half_open=2,
    slow_call_duration=0.05,
    slow_call_rate_threshold=0.9,
)


class StatusError(Exception):
    """An SDK's HTTP error: the presets classify it by ``status_code``."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


class APITimeoutError(Exception):
    """Named like the OpenAI SDK's timeout: a failure of type ``timeout``."""


@dataclass
class Upstream:
    """A fake provider: answers, or raises what it is told to."""

    name: str
    fault: BaseException | None = None
    delay: float = 0.0

    def __call__(self, question: str) -> str:
        if self.delay:
            time.sleep(self.delay)
        if self.fault is not None:
            raise self.fault
        return f"{self.name}: {question}"


@dataclass
class Guards:
    """The guards in front of the assistant: a rate limiter, a login lockout, a load shedder."""

    rate_limiter: RateLimiter
    lockout: LockoutGuard
    shedder: ConcurrencyLimiter

    def drive(self, batch: int) -> None:
        """One client over its rate, a credential-stuffing burst, and an overload that sheds."""

        async def requests() -> None:
            for _ in range(4):  # a burst of 2: two allowed, two limited
                await self.rate_limiter.acquire(f"client-{batch}")
            await self.rate_limiter.acquire("steady")
            for attempt in range(3):  # 3 failures lock the principal out; the address too, later
                await self.lockout.failed(f"victim-{batch}", "203.0.113.7")
                await self.lockout.check(f"victim-{batch}", f"198.51.100.{attempt}")

        asyncio.run(requests())
        tickets = [self.shedder.acquire() for _ in range(self.shedder.limit)]
        assert self.shedder.try_acquire() is None  # over the limit: shed
        assert self.shedder.try_acquire(Priority.SHEDDABLE) is None
        critical = self.shedder.try_acquire(Priority.CRITICAL)  # never shed
        assert critical is not None
        for ticket in [*tickets, critical]:
            ticket.ignore()


@dataclass
class Stack:
    registry: BreakerRegistry
    guards: Guards
    openai: Upstream
    anthropic: Upstream
    #: openai.chat with a cache of its answers: the chain that serves ``summarize`` calls.
    summarize: FallbackChain
    prometheus: PrometheusServer
    #: When Prometheus started, and when the scenario ended: the range the queries cover.
    started: float
    ended: float = 0.0


@pytest.fixture(scope="module")
def stack(module_server_pool: ServerPool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The stack, after the scenario (run once for the module's tests)."""
    registry = BreakerRegistry()
    registry.service(
        "openai",
        LLM,  # counts its endpoint's calls: opens with it
        attributes={
            sc.GEN_AI_PROVIDER_NAME: "openai",
            sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
            sc.GEN_AI_OPERATION_NAME: "chat",
        },
    )
    # A trip forecast and a health probe (never started): their counters are exported from 0.
    chat = registry.endpoint("openai.chat", LLM.replace(forecast=TripForecast(lookback=60, horizon=60)))

    async def healthy() -> bool:
        return True

    ProbeRunner(chat, healthy)
    registry.service(
        "anthropic",
        LLM.replace(minimum_calls=100),
        attributes={sc.GEN_AI_PROVIDER_NAME: "anthropic", sc.GEN_AI_REQUEST_MODEL: "claude-haiku"},
    )
    registry.endpoint("anthropic.messages", LLM.replace(minimum_calls=100))
    registry.service(  # a provider without endpoints: its service counts its calls
        "mistral", attributes={sc.GEN_AI_PROVIDER_NAME: "mistral", sc.GEN_AI_REQUEST_MODEL: "mistral-small"}
    )
    registry.service("qdrant", attributes={sc.DB_SYSTEM_NAME: "qdrant"})
    openai, anthropic = Upstream("openai"), Upstream("anthropic")
    registry.feature(
        "answer",
        required=["openai.chat"],
        fallback=[Alternate(anthropic, breaker=registry["anthropic.messages"]), Static("busy, sorry")],
        config=BreakerConfig(minimum_calls=100),
    )
    telemetry = BreakerTelemetry(registry, service_name=JOB, otlp=False, tracing=False)  # its store too
    guards = Guards(
        RateLimiter("assistant.ask", RateLimitPolicy(limit=1, period=60.0, burst=2)),
        LockoutGuard(
            "assistant.login",
            LockoutPolicy(max_failures=3, window=60.0, base_lockout=60.0),
            address_policy=LockoutPolicy(max_failures=6, window=60.0, base_lockout=60.0),
        ),
        ConcurrencyLimiter("assistant.ask", AIMDLimit(initial=3)),
    )
    telemetry.add_guard(guards.rate_limiter, guards.lockout, guards.shedder)
    port = find_free_port()
    telemetry.start_http_server(port)
    rules = tmp_path_factory.mktemp("rules") / "recording.yml"
    rules.write_text(yaml.safe_dump({"groups": recording_groups(TEST_RULES_CONFIG)}))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
    }
    started = time.time()
    try:
        prometheus = module_server_pool.start(PrometheusServer(config, rules={"recording.yml": rules}))
        prometheus.wait_for_target_up(JOB, timeout=20)
        summarize = FallbackChain(registry["openai.chat"], CachedResponse(MemoryCache()))
        ready = Stack(registry, guards, openai, anthropic, summarize, prometheus, started)
        _drive_an_outage_and_its_recovery(ready)
        ready.ended = time.time()
        yield ready
    finally:
        telemetry.shutdown()


def _ask(stack: Stack, question: str) -> str:
    chat = stack.registry["openai.chat"]
    answer: str = stack.registry.get_feature("answer").call(lambda q: chat.call(stack.openai, q), question)
    return answer


def _seen(prometheus: PrometheusServer, expr: str) -> bool:
    return bool(prometheus.query(expr))


def _state(breaker: CircuitBreaker) -> State:
    """The breaker's state now (a function, so that type checkers do not assume it never changes)."""
    return breaker.state


def _scraped(prometheus: PrometheusServer) -> None:
    """Wait for Prometheus to scrape what happened so far, so that counters grow across scrapes
    (calls made between the same two scrapes look like one step to ``rate()``)."""
    since = time.time()

    def after() -> bool:
        scrapes = prometheus.query(f"timestamp({promql.selector('up', promql.eq(promql.JOB_LABEL, JOB))})")
        return bool(scrapes) and float(scrapes[0]["value"][1]) > since

    wait_until(after, timeout=10, interval=0.1, what="the next scrape")


def _drive_an_outage_and_its_recovery(stack: Stack) -> None:
    registry, openai, anthropic, prometheus = stack.registry, stack.openai, stack.anthropic, stack.prometheus
    chat = registry["openai.chat"]
    summarize = stack.summarize
    for batch in range(2):  # healthy, some calls slow
        for i in range(4):
            openai.delay = 0.06 if i == 0 else 0.0
            assert _ask(stack, f"q{batch}{i}").startswith("openai")
            assert summarize.call(openai, f"doc{i}").startswith("openai")  # the cache keeps the answers
            registry["qdrant"].call(lambda: "hits")
            registry["mistral"].call(lambda: "bonjour")
        stack.guards.drive(batch)
        _scraped(prometheus)
    openai.delay = 0.0
    openai.fault = StatusError(400)  # the caller's mistake: ignored, not a failure
    with pytest.raises(StatusError):
        chat.call(openai, "too long")

    # The outage: five failures of four types (the 429 twice) in a window of ten open openai.chat;
    # the feature's calls go to the Anthropic alternate meanwhile.
    faults = [StatusError(503), StatusError(429)], [StatusError(429), APITimeoutError("read")], [ConnectionError()]
    for failures in faults:
        for fault in failures:
            openai.fault = fault
            assert _ask(stack, "q").startswith("anthropic")
        _scraped(prometheus)
    assert _state(chat) is State.OPEN
    anthropic.fault = StatusError(529)  # the alternate is overloaded once: the static answer serves
    assert _ask(stack, "q") == "busy, sorry"
    anthropic.fault = None
    for _ in range(3):  # callers without a fallback are rejected (at once, well within the open wait)
        with pytest.raises(CircuitOpenError):
            chat.call(openai, "q")
    for _ in range(2):
        for i in range(2):
            assert _ask(stack, "q").startswith("anthropic")
            assert summarize.call(openai, f"doc{i}").startswith("openai")  # from the cache
        _scraped(prometheus)

    # Recovery: once the open wait is over, two successful probes close the breaker.
    openai.fault = None
    wait_until(lambda: not chat.is_rejecting(), timeout=WAIT_IN_OPEN + 5, interval=0.05, what="the open wait")
    chat.call(openai, "probe")
    assert _state(chat) is State.HALF_OPEN
    chat.call(openai, "probe")
    assert _state(chat) is State.CLOSED
    for _ in range(2):
        for i in range(2):
            assert _ask(stack, f"after {i}").startswith("openai")
            registry["mistral"].call(lambda: "bonjour")
        stack.guards.drive(2)
        _scraped(prometheus)

    name = promql.eq(sc.CIRCUIT_BREAKER_NAME_LABEL, "openai.chat")
    recovered = (
        f"{promql.selector(sc.METRIC_CIRCUIT_BREAKER_RECOVERY_DURATION, name, suffix='_count')} == 1"
        f" and on () {promql.selector(error_ratio('5m'), name)} and on () {SLO_OBJECTIVE}"
    )
    wait_until(lambda: _seen(prometheus, recovered), timeout=10, interval=0.2, what="recovery scraped, rules run")
    _scraped(prometheus)


def test_every_dashboard_query_returns_data_after_an_outage(stack: Stack) -> None:
    problems, ran = query_every_dashboard(
        stack.prometheus, stack.started, stack.ended, preferred=PREFERRED, no_data_expected=NO_DATA_EXPECTED
    )
    assert problems == [], "\n\n".join(problems)
    assert ran > 50


def test_the_dashboards_show_what_happened(stack: Stack) -> None:
    """A few queries, checked for their values: the outage, the rate limit, the alternate."""
    prometheus, end = stack.prometheus, stack.ended
    boards = {board["uid"]: board for board in rendered().values()}

    def panel_query(uid: str, title: str, ref: str = "A", **selected: str) -> str:
        board = boards[uid]
        panel = next(p for p in board["panels"] if p["title"] == title and p["type"] != "row")
        expr = next(t["expr"] for t in panel["targets"] if t["refId"] == ref)
        return substitute(expr, resolve_variables(prometheus, board, PREFERRED) | selected)

    def peak(query: str, *labels: str) -> dict[str, float]:
        """The highest value of each series over the test, by the values of ``labels``."""
        result = prometheus.query_range(query, stack.started, end, step=1.0)
        return {
            " ".join(s["metric"].get(label, "") for label in labels): max(float(v) for _, v in s["values"])
            for s in result
        }

    detail, overview, ai = "breakerpanel-detail", "breakerpanel-overview", "breakerpanel-ai-providers"
    name, provider, model = sc.CIRCUIT_BREAKER_NAME_LABEL, sc.GEN_AI_PROVIDER_NAME_LABEL, sc.GEN_AI_REQUEST_MODEL_LABEL
    opened = common.STATE_CODES[sc.CircuitBreakerStateValues.OPEN]
    assert peak(panel_query(overview, "Open")) == {"": 2}  # the endpoint's failures open its service too
    states = peak(panel_query(overview, "State per breaker"), name)
    assert states == {
        "openai": opened,
        "openai.chat": opened,
        "anthropic": 0,
        "anthropic.messages": 0,
        "answer": 0,
        "mistral": 0,
        "qdrant": 0,
    }
    assert peak(panel_query(detail, "State"), name) == {"openai.chat": opened}
    # Under the openai service: its endpoint (which opened) and the feature that requires it.
    under = peak(panel_query(detail, "Breakers under it", **{Var.BREAKER: "openai"}), name)
    assert under == {"openai.chat": opened, "answer": 0}
    error_types = set(peak(panel_query(detail, "Failures by error.type"), sc.ERROR_TYPE_LABEL))
    assert error_types == {"503", common.RATE_LIMITED_ERROR_TYPE, "timeout", "connection_error"}
    rate_limited = peak(panel_query(ai, "Rate-limited share of calls"), provider, model)
    assert rate_limited["openai gpt-4o-mini"] > 0
    assert rate_limited["anthropic claude-haiku"] == 0
    outcome = sc.CIRCUIT_BREAKER_OUTCOME_LABEL
    alternates = peak(panel_query(ai, "Calls served by alternate providers"), name, outcome)
    assert alternates["answer success"] > 0
    # It failed once: the declared fallback's series exists at 0 beforehand, so rate() sees it.
    assert alternates["answer failure"] > 0
    # Each call counts once, at the most specific breaker: openai's at its endpoint only.
    calls = peak(panel_query(ai, "Calls by provider and model"), provider, model)
    assert set(calls) == {"openai gpt-4o-mini", "anthropic claude-haiku", "mistral mistral-small"}
    chat_calls = promql.selector(
        sc.METRIC_CIRCUIT_BREAKER_CALLS,
        promql.eq(name, "openai.chat"),
        promql.one_of(sc.CIRCUIT_BREAKER_OUTCOME_LABEL, common.COUNTED_OUTCOMES),
    )
    assert calls["openai gpt-4o-mini"] == pytest.approx(peak(f"sum(rate({chat_calls}[1m]))")[""])
    availability = peak(panel_query(ai, "Availability"), provider, model)
    assert availability["anthropic claude-haiku"] == 1
    slo = "breakerpanel-slo"
    burn = peak(panel_query(slo, "Fast burn: rate over 1h and 5m (alert at 14.4x)", "B"), name)
    assert burn["openai.chat"] > 14.4  # the outage burns the 99% objective's budget fast enough to page
    assert burn["anthropic.messages"] < 14.4
    budget = prometheus.query(panel_query(slo, "Error budget left (30d)"), time=end)
    left = {r["metric"][name]: float(r["value"][1]) for r in budget}
    assert left["openai.chat"] < 0 < left["anthropic"]
    recoveries = prometheus.query(panel_query(detail, "Recoveries (range)"), time=end)
    assert float(recoveries[0]["value"][1]) == pytest.approx(1, abs=0.5)
    median = prometheus.query(panel_query(detail, "Median recovery (range)"), time=end)
    assert 0 < float(median[0]["value"][1]) < math.inf  # interpolated within the recovery buckets
    # A breaker that never recovered: no value (the stat says "no recovery"), not NaN.
    assert prometheus.query(panel_query(detail, "Median recovery (range)", **{Var.BREAKER: "qdrant"}), time=end) == []
    # The guards: the over-rate clients limited, the stuffing locked out, the overload shed by priority.
    decisions = peak(panel_query(overview, "Rate limiting decisions by outcome"), sc.RATE_LIMIT_OUTCOME_LABEL)
    assert decisions["limited"] > 0
    assert decisions["allowed"] > 0
    limited_keys = peak(panel_query(overview, "Limited keys (last minute)"), sc.RATE_LIMIT_NAME_LABEL)
    assert limited_keys["assistant.ask"] >= 3  # one client per batch (and "steady", at its third request)
    lockout_panel = panel_query(overview, "Authentication failures and lockouts by kind")
    lockouts = peak(lockout_panel, sc.AUTH_LOCKOUT_SUBJECT_LABEL)
    assert lockouts["principal"] > 0
    assert lockouts["address"] > 0
    shed = peak(panel_query(overview, "Shed requests by priority"), sc.CONCURRENCY_LIMIT_PRIORITY_LABEL)
    assert shed["normal"] > 0
    assert shed["sheddable"] > 0
    assert shed["critical"] == 0
    assert peak(panel_query(overview, "Concurrency limit vs in flight")) == {"": 3}
    available = prometheus.query(panel_query(overview, "State store available"), time=end)
    assert [float(r["value"][1]) for r in available] == [1]
