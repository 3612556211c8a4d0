"""breakers.yaml: loading, inheritance, environment overrides, building, and errors that point at
the file, the line, the key path and the reason."""

from __future__ import annotations

import dataclasses
import math
import textwrap
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from breakerpanel import (
    AdaptiveThresholds,
    Availability,
    BreakerConfig,
    BreakerConfigError,
    CachedResponse,
    ExponentialBackoff,
    FixedWait,
    Level,
    ManualClock,
    Simplified,
    Static,
    TripForecast,
    WindowType,
    _adaptive,
    _config,
    _forecast,
    _wait,
)
from breakerpanel._config_models import FILE_ONLY_SETTINGS, options_of
from breakerpanel.config import (
    AdaptiveOptions,
    BreakerOptions,
    ConfigFileError,
    ExponentialWait,
    ForecastOptions,
    load_config,
    parse_duration,
)
from breakerpanel.durations import SECONDS


def simplified_answer(question: str) -> str:
    """Referenced from the YAML below as tests.breaker.test_config_file:simplified_answer."""
    return f"(simplified) {question}"


GOOD = """\
defaults:
  sliding_window_type: time_based
  sliding_window_size: 60
  minimum_calls: 20
  wait_in_open: {exponential: {initial: 1s, maximum: 2m, jitter: 0}}
services:
  openai:
    attributes: {gen_ai.provider.name: openai, server.address: api.openai.com}
    hosts: [api.openai.com]
    breaker: {failure_rate_threshold: 0.4, classifier: llm_http}
    endpoints:
      chat:
        breaker: {slow_call_duration: 20s, call_timeout: 1m}
        attributes: {gen_ai.operation.name: chat}
        routes: [{host: api.openai.com, path: /v1/chat/completions, methods: [post]}]
      embeddings:
        attributes: {gen_ai.operation.name: embeddings}
        routes: [{host: api.openai.com, path_regex: "/v1/embeddings/?"}]
  anthropic:
    attributes: {gen_ai.provider.name: anthropic}
    endpoints:
      messages: {}
  qdrant:
    attributes: {db.system.name: qdrant}
    endpoints:
      search: {}
features:
  answer:
    required: [openai.embeddings, qdrant.search]
    optional: [openai.chat]
    breaker: {minimum_calls: 5}
    fallback:
      - {type: cache, ttl: 10m, max_entries: 100}
      - {type: simplified, function: "tests.breaker.test_config_file:simplified_answer"}
      - {type: static, value: "The assistant is degraded right now."}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "breakers.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_inheritance_attributes_routes_and_features(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    built = config.build(clock=ManualClock())
    registry = built.registry
    chat = registry["openai.chat"].config
    assert chat.sliding_window_type is WindowType.TIME_BASED  # from defaults
    assert chat.failure_rate_threshold == 0.4  # from the service
    assert (chat.slow_call_duration, chat.call_timeout) == (20.0, 60.0)  # its own
    assert chat.wait_in_open == ExponentialBackoff(initial=1.0, multiplier=2.0, maximum=120.0, jitter=0.0)
    assert chat.classifier is not None
    assert registry["anthropic.messages"].config.failure_rate_threshold == 0.5  # library default
    assert registry["openai.chat"].level is Level.ENDPOINT
    assert dict(registry["openai.chat"].attributes) == {
        "gen_ai.provider.name": "openai",
        "server.address": "api.openai.com",
        "gen_ai.operation.name": "chat",
    }
    router = built.router
    assert router.route("POST", "api.openai.com", "/v1/chat/completions").name == "openai.chat"
    assert router.route("GET", "api.openai.com", "/v1/chat/completions").name == "openai"  # method mismatch
    assert router.route("POST", "api.openai.com", "/v1/embeddings").name == "openai.embeddings"
    assert router.route("POST", "api.openai.com", "/v1/models").name == "openai"
    assert router.route("POST", "example.com", "/v1/chat/completions") is None
    answer = registry.get_feature("answer")
    assert answer.breaker.config.minimum_calls == 5
    assert [type(s) for s in answer.chain.steps] == [CachedResponse, Simplified, Static]
    assert answer.availability() is Availability.AVAILABLE
    registry["qdrant"].force_open()
    assert answer.call(lambda q: "never", "why") == "(simplified) why"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, GOOD),
        environ={
            "BREAKERPANEL_SERVICES__OPENAI__BREAKER__FAILURE_RATE_THRESHOLD": "0.25",
            "BREAKERPANEL_DEFAULTS__WAIT_IN_OPEN": "45s",
            "UNRELATED": "x",
        },
    )
    assert config.options_for("openai.chat").failure_rate_threshold == 0.25
    assert config.options_for("openai.chat").slow_call_duration == 20.0  # the rest of the file stays
    assert config.build().registry["qdrant"].config.wait_in_open == FixedWait(45.0)


def test_every_problem_is_reported_with_file_line_key_and_reason(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        defaults:
          failure_rate_threshold: 1.5
        services:
          openai:
            breaker:
              slow_call_duration: soon
              minimum_call: 3
            endpoints:
              chat:
                attributes: {Provider: openai}
        features:
          answer:
            required: [openai.chat]
            fallback:
              - {type: teleport}
        """,
    )
    with pytest.raises(ConfigFileError) as info:
        load_config(path)
    problems = {key: (line, reason) for line, key, reason in info.value.problems}
    assert problems["defaults.failure_rate_threshold"][0] == 2
    assert problems["defaults.failure_rate_threshold"][1] == "must be a fraction within (0, 1] (got 1.5)"
    assert problems["services.openai.breaker.slow_call_duration"][0] == 6
    assert "250ms, 30s" in problems["services.openai.breaker.slow_call_duration"][1]
    assert problems["services.openai.breaker.minimum_call"] == (7, "Extra inputs are not permitted")
    assert "dotted lowercase" in problems["services.openai.endpoints.chat.attributes"][1]
    assert problems["features.answer.fallback.0"][0] == 15
    message = str(info.value)
    assert message.startswith(f"{path}:2: defaults.failure_rate_threshold: ")
    assert isinstance(info.value, BreakerConfigError)


def test_a_key_named_like_a_fallback_type_stays_in_the_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        services:
          cache:
            breaker: {minimum_calls: nope}
        features:
          answer:
            required: [cache]
            fallback:
              - {type: static, value: 1, bogus: 2}
              - {value: 3}
        """,
    )
    with pytest.raises(ConfigFileError) as info:
        load_config(path)
    problems = {key: (line, reason) for line, key, reason in info.value.problems}
    assert problems["services.cache.breaker.minimum_calls"][0] == 3
    assert problems["features.answer.fallback.0.bogus"] == (8, "Extra inputs are not permitted")
    assert problems["features.answer.fallback.1"] == (
        9,
        "expected a step with type: alternate, cache, semantic_cache, simplified or static",
    )


def test_references_are_checked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        services:
          qdrant: {endpoints: {search: {}}}
        features:
          answer:
            required: [qdrant.search, openai.chat]
            fallback: [{type: alternate, function: "x:y", endpoint: anthropic.messages}]
        """,
    )
    with pytest.raises(ConfigFileError, match=r"'openai.chat' is not a service or endpoint") as info:
        load_config(path)
    assert "'anthropic.messages' is not defined" in str(info.value)


def test_syntax_errors_point_at_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "services:\n  openai: {breaker: [unclosed\n")
    with pytest.raises(ConfigFileError) as info:
        load_config(path)
    ((line, key, _),) = info.value.problems
    assert (line, key) == (3, "(syntax)")


def test_missing_file_and_wrong_shape(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigFileError, match="expected a mapping"):
        load_config(write(tmp_path, "- a list\n"))
    assert load_config(write(tmp_path, "")).services == {}


def test_unimportable_fallback_functions_are_reported_at_build(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        services: {openai: {endpoints: {chat: {}}}}
        features:
          answer:
            required: [openai.chat]
            fallback: [{type: simplified, function: "no.such.module:answer"}]
        """,
    )
    with pytest.raises(BreakerConfigError, match=r"features\.answer\.fallback\.0\.function: cannot import"):
        load_config(path).build()


@pytest.mark.parametrize(("text", "seconds"), [(5, 5), ("250ms", 0.25), ("30s", 30), ("2m", 120), ("1.5h", 5400)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (".inf", "must be finite (got inf): for a breaker open until told otherwise, use force_open()"),
        ("0", "must be a positive, finite number of seconds (got 0.0)"),
        ("0ms", "must be a positive, finite number of seconds (got 0.0)"),
    ],
)
def test_wait_in_open_is_finite_and_positive_with_one_clear_reason(tmp_path: Path, value: str, reason: str) -> None:
    # BreakerConfig's reason, once: not one per member of the union (a number or {exponential: ...}).
    path = write(tmp_path, f"defaults:\n  wait_in_open: {value}\n")
    with pytest.raises(ConfigFileError) as info:
        load_config(path, environ={})
    assert info.value.problems == [(2, "defaults.wait_in_open", reason)]


# ---------------------------------------------------------------------- null inherits, off turns off

OFF_AND_NULL = """
defaults:
  call_timeout: 30s
  max_wait_in_half_open: 60s
  consecutive_failures_threshold: 5
  forecast: {lookback: 60s, horizon: 60s, interval: 5s}
services:
  openai:
    breaker: {call_timeout: off, max_wait_in_half_open: off, consecutive_failures_threshold: off, forecast: off}
    endpoints:
      chat: {}
      embeddings:
        breaker: {call_timeout: 5s, max_wait_in_half_open: null}
  qdrant:
    breaker: {call_timeout: null, forecast: null}
"""


def test_null_inherits_and_off_turns_a_setting_off(tmp_path: Path) -> None:
    registry = load_config(write(tmp_path, OFF_AND_NULL)).build(clock=ManualClock()).registry
    openai, chat, embeddings, qdrant = (
        registry[name].config for name in ("openai", "openai.chat", "openai.embeddings", "qdrant")
    )
    # `off` on the service: no limit, wait for probes forever, no trip on failures in a row, no forecast
    assert (openai.call_timeout, openai.max_wait_in_half_open) == (None, None)
    assert (openai.consecutive_failures_threshold, openai.forecast) == (None, None)
    assert (chat.call_timeout, chat.max_wait_in_half_open, chat.forecast) == (None, None, None)  # inherited off
    assert embeddings.call_timeout == 5.0  # its own again
    assert embeddings.max_wait_in_half_open is None  # null: inherits the service's off
    # null (or absent) inherits the defaults'
    assert (qdrant.call_timeout, qdrant.max_wait_in_half_open, qdrant.consecutive_failures_threshold) == (30, 60, 5)
    assert qdrant.forecast is not None


@pytest.mark.parametrize(
    ("setting", "reason"),
    [
        ("consecutive_failures_threshold: 0", "must be at least 1"),  # 0 is not off
        ("call_timeout: on", "'off'"),
        ("call_timeout: 0s", "must be a positive number of seconds"),
        ("forecast: yes", "'off'"),
    ],
)
def test_off_is_the_only_way_to_say_off(tmp_path: Path, setting: str, reason: str) -> None:
    text = f"services:\n  openai:\n    breaker: {{{setting}}}\n"
    with pytest.raises(ConfigFileError, match=reason):
        load_config(write(tmp_path, text))


# ---------------------------------------------------------------------- one schema: BreakerConfig's fields

BLOCKS = [(AdaptiveOptions, AdaptiveThresholds), (ForecastOptions, TripForecast), (ExponentialWait, ExponentialBackoff)]


def file_value(name: str, value: object) -> object:
    """A BreakerConfig value as breakers.yaml writes it."""
    if value is None:
        return "default" if name == "classifier" else "off"
    return value.value if isinstance(value, WindowType) else value


@pytest.mark.parametrize("field", dataclasses.fields(BreakerConfig), ids=lambda f: f.name)
def test_every_breaker_config_field_is_a_key_of_the_file_with_its_default(
    tmp_path: Path, field: dataclasses.Field[object]
) -> None:
    # The key is read (set on the service's options) and its value makes BreakerConfig's default.
    text = yaml.safe_dump({"services": {"openai": {"breaker": {field.name: file_value(field.name, field.default)}}}})
    config = load_config(write(tmp_path, text), environ={})
    assert config.services["openai"].breaker.model_fields_set == {field.name}
    assert config.build(clock=ManualClock()).registry["openai"].config == BreakerConfig()


def test_the_file_has_no_breaker_setting_that_breaker_config_lacks() -> None:
    assert set(BreakerOptions.model_fields) == {f.name for f in dataclasses.fields(BreakerConfig)} | set(
        FILE_ONLY_SETTINGS
    )
    for block, settings in BLOCKS:
        assert set(block.model_fields) == {f.name for f in dataclasses.fields(settings) if f.name != "rng"}


#: The settings the dataclasses mark as seconds (``Seconds``), which the file also takes as durations.
IN_SECONDS = {
    BreakerConfig: {"slow_call_duration", "max_wait_in_half_open", "call_timeout", "rate_limit_max_wait"},
    AdaptiveThresholds: {
        "half_life",
        "interval",
        "slow_call_duration_floor",
        "slow_call_duration_ceiling",
        "burn_windows",
    },
    TripForecast: {"lookback", "horizon", "interval"},
    ExponentialBackoff: {"initial", "maximum"},
}


DEFINED_IN = {BreakerConfig: _config, AdaptiveThresholds: _adaptive, TripForecast: _forecast, ExponentialBackoff: _wait}


def _in_seconds(hint: object) -> bool:
    """Whether a field's type is, or holds, ``Seconds``."""
    if typing.get_origin(hint) is typing.Annotated:
        return SECONDS in hint.__metadata__  # type: ignore[attr-defined]
    return any(_in_seconds(arg) for arg in typing.get_args(hint))


@pytest.mark.parametrize("settings", list(IN_SECONDS), ids=lambda s: s.__name__)
def test_the_dataclasses_say_which_settings_are_seconds(settings: type) -> None:
    # breakerpanel gives its classes its own __module__: resolve names where the class is defined.
    hints = typing.get_type_hints(settings, localns=vars(DEFINED_IN[settings]), include_extras=True)
    assert {name for name, hint in hints.items() if _in_seconds(hint)} == IN_SECONDS[settings]


def test_a_setting_in_seconds_takes_a_duration_and_the_others_do_not() -> None:
    for name in IN_SECONDS[BreakerConfig] | {"wait_in_open"}:
        assert getattr(BreakerOptions.model_validate({name: "1m30s"}), name) == 90.0
    with pytest.raises(ValidationError):
        BreakerOptions.model_validate({"minimum_calls": "30s"})
    assert AdaptiveOptions.model_validate({"burn_windows": ["2h", "10m"]}).burn_windows == (7200.0, 600.0)
    with pytest.raises(ValidationError):
        AdaptiveOptions.model_validate({"warmup": "1m"})


@pytest.mark.parametrize(("block", "settings"), BLOCKS, ids=lambda b: b.__name__)
def test_every_field_of_a_settings_block_is_a_key_with_its_default(block: type, settings: type) -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(settings) if f.name != "rng"}
    written = yaml.safe_load(yaml.safe_dump({k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items()}))
    assert block.model_validate(written).to_settings() == settings()


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class WithRetryBudget(BreakerConfig):
    """BreakerConfig with one more field, as a contributor would add it."""

    retry_budget: float = dataclasses.field(default=0.1, metadata={"doc": "Share of calls that may be retried."})

    def __post_init__(self) -> None:
        BreakerConfig.__post_init__(self)
        if not 0 <= self.retry_budget <= 1:
            raise BreakerConfigError("retry_budget", f"must be within [0, 1] (got {self.retry_budget!r})")


def test_a_field_added_to_breaker_config_is_a_key_of_the_file_with_no_second_declaration() -> None:
    options = options_of(WithRetryBudget)(BreakerOptions)
    assert options.model_fields["retry_budget"].description == "Share of calls that may be retried."
    service = options.model_validate({"retry_budget": 0.25})
    endpoint = options.model_validate({"minimum_calls": 5})
    config = options().merged(service, endpoint).to_config()
    assert isinstance(config, WithRetryBudget)
    assert (config.retry_budget, config.minimum_calls) == (0.25, 5)  # inherited from the service
    assert options().to_config() == WithRetryBudget()
    with pytest.raises(ValidationError, match=r"must be within \[0, 1\] \(got 2.0\)"):
        options.model_validate({"retry_budget": 2})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("failure_rate_threshold", 0.0),
        ("failure_rate_threshold", 1.5),
        ("slow_call_duration", -1.0),
        ("slow_call_duration", math.nan),
        ("sliding_window_size", 0),
        ("consecutive_failures_threshold", 0),
        ("wait_in_open", -5.0),
        ("wait_in_open", math.inf),
        ("permitted_calls_in_half_open", 0),
        ("max_wait_in_half_open", 0.0),
        ("call_timeout", math.inf),
        ("rate_limit_max_wait", 0.0),
    ],
)
def test_a_bad_breaker_setting_gets_the_reason_breaker_config_gives(tmp_path: Path, name: str, value: object) -> None:
    with pytest.raises(BreakerConfigError) as expected:
        BreakerConfig(**{name: value})  # type: ignore[arg-type]
    path = write(tmp_path, yaml.safe_dump({"defaults": {name: value}}))
    with pytest.raises(ConfigFileError) as info:
        load_config(path, environ={})
    assert info.value.problems == [(2, f"defaults.{name}", expected.value.reason)]


def test_a_settings_block_reports_the_field_its_dataclass_names(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        defaults:
          adaptive:
            floor: 0.9
            ceiling: 0.5
          wait_in_open: {exponential: {multiplier: 0.5}}
          minimum_calls: yes
        """,
    )
    with pytest.raises(ConfigFileError) as info:
        load_config(path, environ={})
    assert sorted(info.value.problems, key=lambda p: p[0] or 0) == [
        (3, "defaults.adaptive.floor", "must be at most ceiling (0.5) (got 0.9)"),
        (5, "defaults.wait_in_open.exponential.multiplier", "must be >= 1 (got 0.5)"),
        (6, "defaults.minimum_calls", "expected a number (got True)"),
    ]


def test_settings_blocks_take_durations_and_environment_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "defaults:\n  adaptive: {half_life: 30m, burn_windows: [2h, 10m], min_latency_calls: 5}\n")
    config = load_config(path, environ={"BREAKERPANEL_DEFAULTS__FORECAST__LOOKBACK": "2m"}).defaults.to_config()
    assert config.adaptive == AdaptiveThresholds(half_life=1800, burn_windows=(7200, 600), min_latency_calls=5)
    assert config.forecast == TripForecast(lookback=120)


def test_credentials_in_urls_stay_out_of_errors_and_reprs(tmp_path: Path) -> None:
    bad = write(tmp_path, "store:\n  backend: redis\n  url: redis//:hunter2-SECRET@redis.internal:6379/0\n")
    with pytest.raises(ConfigFileError) as caught:
        load_config(bad, environ={})
    assert "hunter2" not in str(caught.value)
    assert "redis//:hunter2" not in str(caught.value)
    with pytest.raises(ConfigFileError) as caught:
        load_config(
            write(tmp_path, "{}"), environ={"BREAKERPANEL_STORE__URL": "http://default:hunter2-SECRET@redis:6379"}
        )
    assert "hunter2" not in str(caught.value)
    good = load_config(
        write(tmp_path, "store:\n  backend: redis\n  url: redis://default:hunter2-SECRET@redis:6379/0\n"), environ={}
    )
    assert "hunter2" not in repr(good.store)
    assert "hunter2" not in repr(good.store.build())
    # redis-py takes the password as a query parameter as well.
    for url in ("redis://redis:6379/0?password=hunter2-SECRET", "redis://redis:6379/0?db=0&PASS=hunter2-SECRET"):
        good = load_config(write(tmp_path, f"store:\n  backend: redis\n  url: '{url}'\n"), environ={})
        assert "hunter2" not in repr(good.store.build())
        with pytest.raises(ConfigFileError) as caught:
            load_config(write(tmp_path, "{}"), environ={"BREAKERPANEL_STORE__URL": url.replace("redis:", "http:", 1)})
        assert "hunter2" not in str(caught.value)


def test_a_key_given_twice_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    # YAML keeps the last: the first openai service, with its endpoint and classifier, vanished.
    path = write(
        tmp_path,
        """\
services:
  openai:
    breaker: {classifier: llm_http}
    endpoints:
      chat: {}
  openai:
    breaker: {failure_rate_threshold: 0.9}
""",
    )
    with pytest.raises(ConfigFileError) as caught:
        load_config(path, environ={})
    assert caught.value.problems == [(6, "services.openai", "given twice (first on line 2)")]


def test_environment_values_are_blamed_on_their_variables_and_unknown_sections_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "defaults:\n  failure_rate_threshold: 0.5\n")
    with pytest.raises(ConfigFileError) as caught:
        load_config(path, environ={"BREAKERPANEL_DEFAULTS__FAILURE_RATE_THRESHOLD": "1.5"})
    ((line, key, reason),) = caught.value.problems
    assert (line, key) == (None, "defaults.failure_rate_threshold")  # not line 2: the file says 0.5
    assert reason.endswith("(set by BREAKERPANEL_DEFAULTS__FAILURE_RATE_THRESHOLD)")
    with pytest.raises(ConfigFileError) as caught:  # a typo in the section was ignored, 0.5 kept
        load_config(path, environ={"BREAKERPANEL_DEFAULT__FAILURE_RATE_THRESHOLD": "0.2"})
    assert "BREAKERPANEL_DEFAULT__FAILURE_RATE_THRESHOLD names no section" in str(caught.value)
    assert load_config(path, environ={"BREAKERPANEL_STACK_DIR": "/tmp"}).defaults.failure_rate_threshold == 0.5


def test_names_and_references_are_checked_when_the_file_loads(tmp_path: Path) -> None:
    names = """\
services:
  function-calls:
    breaker: {failure_rate_threshold: 7}
features:
  Answer: {required: [function-calls]}
"""
    with pytest.raises(ConfigFileError) as caught:
        load_config(write(tmp_path, names), environ={})
    # A service named function-... keeps its name in the key path (pydantic's validator parts
    # start so too), and a feature name is checked as a service's is (BREAKERPANEL_FEATURES__
    # ANSWER__... made a second feature, "answer").
    assert caught.value.problems[0][:2] == (3, "services.function-calls.breaker.failure_rate_threshold")
    assert "feature name 'Answer' must be lowercase" in str(caught.value)
    references = """\
services:
  redis:
    endpoints: {semantic: {}}
features:
  search:
    required: [redis]
    optional: [redis]
    fallback:
      - {type: semantic_cache, endpoint: redis.semantc, url: "redis://localhost:6379/0"}
"""
    with pytest.raises(ConfigFileError) as caught:
        load_config(write(tmp_path, references), environ={})
    # Found at load, where build() raised a bare KeyError (the endpoint) or a late error.
    assert "features.search.fallback.0.endpoint: 'redis.semantc' is not defined" in str(caught.value)
    assert "cannot be both required and optional" in str(caught.value)


def test_auth_failures_applies_to_llm_http_only_and_every_duration_reads_the_grammar(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError) as caught:
        load_config(
            write(tmp_path, "services:\n  redis:\n    breaker: {classifier: redis, auth_failures: ignore}\n"),
            environ={},
        )
    assert "applies to classifier llm_http only" in str(caught.value)
    config = load_config(
        write(
            tmp_path,
            """\
services:
  redis:
    probe: {type: redis, url: "redis://localhost:6379/0", max_extension: 5m}
store: {backend: redis, url: "redis://localhost:6379/0", startup_timeout: 2s}
""",
        ),
        environ={},
    )
    assert (config.services["redis"].probe.max_extension, config.store.startup_timeout) == (300.0, 2.0)  # type: ignore[union-attr]
    with pytest.raises(ConfigFileError):
        load_config(write(tmp_path, "store: {startup_timeout: .inf}\n"), environ={})


def test_a_section_in_one_variable_that_is_not_json_is_an_error_naming_it(tmp_path: Path) -> None:
    # pydantic-settings raised its own SettingsError, naming neither the variable nor the reason.
    with pytest.raises(ConfigFileError) as caught:
        load_config(write(tmp_path, "{}"), environ={"BREAKERPANEL_STORE": '{"url": "redis://:hunter2@r"'})
    message = str(caught.value)
    assert "BREAKERPANEL_STORE: not JSON (" in message
    assert "hunter2" not in message
    # A nested variable is named as set, not as its section.
    with pytest.raises(ConfigFileError) as caught:
        load_config(
            write(tmp_path, "services:\n  openai: {}\n"),
            environ={"BREAKERPANEL_SERVICES__OPENAI__BREAKER": "{bad", "BREAKERPANEL_DEFAULTS__WAIT_IN_OPEN": "5s"},
        )
    assert "BREAKERPANEL_SERVICES__OPENAI__BREAKER: not JSON (" in str(caught.value)
