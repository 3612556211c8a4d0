"""``breakers.yaml``: the breakers of an application, as configuration.

::

    defaults:                      # every breaker starts from these
      sliding_window_type: time_based
      sliding_window_size: 60
      minimum_calls: 20
    services:
      openai:
        attributes: {gen_ai.provider.name: openai, server.address: api.openai.com}
        breaker: {failure_rate_threshold: 0.5, classifier: llm_http}
        endpoints:
          chat:                    # the endpoint openai.chat: inherits the service's settings
            breaker: {slow_call_duration: 20s}
            attributes: {gen_ai.operation.name: chat}
            routes: [{host: api.openai.com, path: /v1/chat/completions}]
    features:
      answer:
        required: [openai.chat]
        fallback:
          - {type: static, value: "The assistant is degraded; try again soon."}

Loaded into pydantic models (:class:`BreakersFile`) and built into a
:class:`~breakerpanel.BreakerRegistry` and a :class:`~breakerpanel.integrations.Router`
(:meth:`BreakersFile.build`). A level's ``breaker:`` settings are the fields of
:class:`~breakerpanel.BreakerConfig`, in a model made from them (``_config_models``).
Environment variables override the file, with the prefix ``BREAKERPANEL_`` and ``__`` between
levels: ``BREAKERPANEL_SERVICES__OPENAI__BREAKER__FAILURE_RATE_THRESHOLD=0.3``.

A bad file gives a :class:`ConfigFileError` that names the file, the line, the key path and the
reason, for every problem at once.
"""

from __future__ import annotations

from ._extras import require

# Before the imports that need them (E402 is off for this file): one line naming the extra.
require("breakerpanel.config", "config", "yaml", "pydantic", "pydantic_settings")

import functools
import importlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)
from pydantic_settings.sources.utils import parse_env_vars

from ._breaker import CircuitBreaker
from ._cache import MemoryCache
from ._clock import Clock
from ._config_models import (
    AdaptiveOptions,
    BreakerOptions,
    Duration,
    ExponentialWait,
    ForecastOptions,
    Seconds,
    StrictModel,
    parse_duration,
)
from ._events import BreakerListener
from ._exceptions import BreakerConfigError
from ._fallback import Alternate, CachedResponse, FallbackStep, Simplified, Static
from ._probe import Probe, ProbeRunner, asyncpg_probe, http_probe, redis_probe
from ._redact import redacted
from ._registry import BreakerRegistry
from ._semantic import DEFAULT_MIN_SIMILARITY, SemanticCache
from ._stores import DEFAULT_SYNC_INTERVAL, MemoryStore, RedisStore, StateStore
from .integrations._http import Route, Router

__all__ = [
    "ENV_PREFIX",
    "AdaptiveOptions",
    "BreakerOptions",
    "BreakersFile",
    "Built",
    "ConfigFileError",
    "EndpointSettings",
    "ExponentialWait",
    "FeatureSettings",
    "ForecastOptions",
    "ProbeSettings",
    "ServiceSettings",
    "StoreSettings",
    "load_config",
    "load_yaml_model",
    "parse_duration",
]

ENV_PREFIX = "BREAKERPANEL_"

_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
_ATTRIBUTE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


def _check_attributes(value: dict[str, str]) -> dict[str, str]:
    for key in value:
        if not _ATTRIBUTE.match(key):
            raise ValueError(f"attribute {key!r} is not a dotted lowercase name such as gen_ai.provider.name")
    return value


Attributes = Annotated[
    dict[str, str], BeforeValidator(lambda v: v if v is not None else {}), AfterValidator(_check_attributes)
]


class RouteSettings(StrictModel):
    """Which HTTP requests go through the endpoint: all the given conditions must hold."""

    host: str | None = Field(None, description="Host, exactly (case-insensitive).")
    path: str | None = Field(None, description="Path prefix, such as `/v1/chat/completions`.")
    path_regex: str | None = Field(None, description="A regular expression the whole path must match.")
    methods: list[str] | None = Field(None, description="HTTP methods; any when absent.")

    @field_validator("path_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_path(self) -> RouteSettings:
        if self.path is not None and self.path_regex is not None:
            raise ValueError("give path or path_regex, not both")
        return self


ProbeType = Literal["http", "redis", "postgres", "callable"]


class ProbeSettings(StrictModel):
    """`services.<name>.probe`: an active health check run while the service's breaker is open.
    When it passes, the service goes half-open, and so do its open endpoints and the open
    features that need the service or one of its endpoints (not those opened by a rate limit,
    forced open or disabled)."""

    type: ProbeType = Field(
        description="`http` (GET `url`), `redis` (PING `url`), `postgres` (SELECT 1 on `url`), "
        "`callable` (`function`, an async callable taking no arguments)."
    )
    url: str | None = Field(
        None, repr=False, validate_default=True, description="Health URL, or the Redis or Postgres URL."
    )
    function: str | None = Field(
        None, validate_default=True, description="`module:attribute` of the probe, for type `callable`."
    )
    interval: Duration = Field(1.0, description="Delay before the first probe of an outage.")
    multiplier: float = Field(2.0, ge=1, description="Each further delay is this many times the last.")
    max_interval: Duration = Field(30.0, description="The longest delay between two probes.")
    jitter: float = Field(0.2, ge=0, le=1, description="Share of each delay that may be cut at random.")
    timeout: Duration = Field(5.0, description="A probe taking longer fails.")
    max_extension: Seconds = Field(
        300.0, ge=0, allow_inf_nan=False, description="Failed probes extend the open wait by at most this."
    )

    @field_validator("url")
    @classmethod
    def _url_needed(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("type")
        if value is None and kind in ("http", "redis", "postgres"):
            raise ValueError(f"required for a probe of type {kind}")
        return value

    @field_validator("function")
    @classmethod
    def _function_needed(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("type") == "callable":
            raise ValueError("required for a probe of type callable")
        return value

    @model_validator(mode="after")
    def _intervals(self) -> ProbeSettings:
        if self.max_interval < self.interval:
            raise ValueError(f"max_interval ({self.max_interval:g}) must be at least interval ({self.interval:g})")
        return self

    def runner(
        self,
        breaker: CircuitBreaker,
        resolve: Callable[[str], Any],
        where: str,
        *,
        dependents: Callable[[], Iterable[CircuitBreaker]] | None = None,
    ) -> ProbeRunner:
        """The probe runner for ``breaker`` (not started); ``dependents`` go half-open with it."""
        probe: Probe
        if self.type == "http":
            assert self.url is not None
            probe = http_probe(self.url)
        elif self.type == "redis":
            assert self.url is not None
            probe = redis_probe(self.url)
        elif self.type == "postgres":
            assert self.url is not None
            probe = asyncpg_probe(self.url)
        else:
            assert self.function is not None
            probe = _resolved(resolve, self.function, f"{where}.function")
        return ProbeRunner(
            breaker,
            probe,
            interval=self.interval,
            multiplier=self.multiplier,
            max_interval=self.max_interval,
            jitter=self.jitter,
            timeout=self.timeout,
            max_extension=self.max_extension,
            dependents=dependents,
        )


class EndpointSettings(StrictModel):
    """One operation on a service (its breaker is named ``service.endpoint``)."""

    breaker: BreakerOptions = Field(default_factory=BreakerOptions, description="Overrides of the service's settings.")
    attributes: Attributes = Field(default_factory=dict, description="Telemetry attributes, added to the service's.")
    routes: list[RouteSettings] = Field(default_factory=list, description="HTTP requests routed to this endpoint.")


class ServiceSettings(StrictModel):
    """One dependency (``openai``, ``qdrant``, ``redis``, ``postgres``)."""

    breaker: BreakerOptions = Field(default_factory=BreakerOptions, description="Overrides of the defaults.")
    attributes: Attributes = Field(
        default_factory=dict,
        description="Telemetry attributes: gen_ai.provider.name, server.address, db.system.name...",
    )
    endpoints: dict[str, EndpointSettings] = Field(default_factory=dict, description="Its operations.")
    hosts: list[str] = Field(
        default_factory=list,
        description="HTTP hosts of the service: requests to them that no endpoint route matches count here.",
    )
    probe: ProbeSettings | None = Field(
        None, description="Active health probe while its breaker is open (start with `running_probes`)."
    )

    @field_validator("endpoints")
    @classmethod
    def _endpoint_names(cls, value: dict[str, EndpointSettings]) -> dict[str, EndpointSettings]:
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"endpoint name {name!r} must be lowercase letters, digits, - or _")
        return value


class AlternateStep(StrictModel):
    """Fallback step `alternate`: another target behind its own breaker."""

    type: Literal["alternate"]
    function: str = Field(description="`module:attribute` of a function taking the primary call's arguments.")
    endpoint: str | None = Field(None, description="The breaker it runs behind (such as `anthropic.messages`).")
    name: str | None = Field(None, description="Shown in metrics and logs; the endpoint or function by default.")


class CacheStep(StrictModel):
    """Fallback step `cache`: the last successful answer to the same call (in memory)."""

    type: Literal["cache"]
    ttl: Duration = Field(300.0, description="How long an answer stays servable.")
    max_entries: int = Field(1024, ge=1, description="In-memory cache size.")
    key: str | None = Field(None, description="`module:attribute` of a function making the key from the arguments.")
    name: str = Field("cache", description="Shown in metrics and logs.")


class SemanticCacheStep(StrictModel):
    """Fallback step `semantic_cache`: the stored answer of the most similar earlier question, from a
    Redis 8 Vector Set (`docs/semantic-cache.md`). Call the step's `acheck()` at startup."""

    type: Literal["semantic_cache"]
    endpoint: str = Field(description="The breaker its Redis calls go through (such as `redis.semantic`).")
    url: str | None = Field(
        None, repr=False, description="`redis://host:port/db` of a Redis 8 (or the application gives the client)."
    )
    min_similarity: float = Field(
        DEFAULT_MIN_SIMILARITY, ge=-1, le=1, description="The cosine similarity a stored question needs to be served."
    )
    ttl: Duration = Field(3600.0, description="How long an answer stays servable.")
    max_entries: int = Field(10_000, ge=1, description="The most questions kept (the oldest go first).")
    max_question_chars: int = Field(
        10_000, ge=1, description="Longer questions are neither stored nor served (embedding them would hold the loop)."
    )
    question: str | None = Field(
        None,
        description="`module:attribute` of a function giving the call's question (by default its sole argument).",
    )
    present: str | None = Field(
        None, description="`module:attribute` of a function turning a `SemanticHit` into the value served."
    )
    name: str = Field("semantic_cache", description="Shown in metrics and logs; also names its Redis keys.")


class SimplifiedStep(StrictModel):
    """Fallback step `simplified`: a cheaper function taking the same arguments."""

    type: Literal["simplified"]
    function: str = Field(description="`module:attribute` of the simplified function.")
    name: str | None = Field(None, description="Shown in metrics and logs; the function's name by default.")


class StaticStep(StrictModel):
    """Fallback step `static`: a fixed value."""

    type: Literal["static"]
    value: Any = Field(description="The value served.")
    name: str = Field("static", description="Shown in metrics and logs.")


def _fallback_tag(value: Any) -> str | None:
    """A fallback step's tag: its ``type`` in parentheses, which no key of the file can be, so
    the loader can drop it from the key path of an error (a service may be named ``cache``)."""
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return f"({kind})" if isinstance(kind, str) else None


FallbackStepSettings = Annotated[
    Annotated[AlternateStep, Tag("(alternate)")]
    | Annotated[CacheStep, Tag("(cache)")]
    | Annotated[SemanticCacheStep, Tag("(semantic_cache)")]
    | Annotated[SimplifiedStep, Tag("(simplified)")]
    | Annotated[StaticStep, Tag("(static)")],
    Discriminator(
        _fallback_tag,
        custom_error_type="fallback_type",
        custom_error_message="expected a step with type: alternate, cache, semantic_cache, simplified or static",
    ),
]


class FeatureSettings(StrictModel):
    """A user-facing capability and what it needs."""

    required: list[str] = Field(default_factory=list, description="Services or endpoints it cannot work without.")
    optional: list[str] = Field(default_factory=list, description="Services or endpoints it can do without (degraded).")
    breaker: BreakerOptions = Field(default_factory=BreakerOptions, description="Its own breaker's settings.")
    fallback: list[FallbackStepSettings] = Field(default_factory=list, description="Tried in order when needed.")
    attributes: Attributes = Field(default_factory=dict, description="Telemetry attributes.")


class StoreSettings(StrictModel):
    """Where the breakers share their state with the other replicas (``docs/shared-state.md``)."""

    backend: Literal["memory", "redis"] = Field(
        "memory", description="`memory`: nothing shared (each process decides alone); `redis`: shared through Redis."
    )
    url: str | None = Field(
        None, repr=False, description="`redis://host:port/db` (`rediss://` for TLS); any node of a cluster."
    )
    cluster: bool = Field(False, description="The URL is a node of a Redis Cluster.")
    prefix: str = Field(
        "breakerpanel", min_length=1, description="Key prefix: replicas with one prefix share breakers."
    )
    sync_interval: Duration = Field(DEFAULT_SYNC_INTERVAL, description="How often replicas exchange window counts.")
    quorum: int = Field(1, ge=1, description="Open every replica only when at least this many see failures.")
    timeout: Duration = Field(0.5, description="A Redis operation slower than this counts as failed.")
    startup_timeout: Seconds = Field(
        1.0,
        ge=0,
        allow_inf_nan=False,
        description="How long startup may wait for the state in force (a replica starting in an outage).",
    )

    @field_validator("url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("expected a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("prefix")
    @classmethod
    def _no_braces(cls, value: str) -> str:
        if "{" in value or "}" in value:
            raise ValueError("braces are reserved for the breakers' Redis Cluster hash tags")
        return value

    @model_validator(mode="after")
    def _url_for_redis(self) -> StoreSettings:
        if self.backend == "redis" and self.url is None:
            raise ValueError("backend redis needs a url (such as redis://localhost:6379/0)")
        if self.backend == "memory" and (self.url is not None or self.cluster or self.quorum != 1):
            raise ValueError("url, cluster and quorum apply to backend redis only")
        return self

    def build(self) -> StateStore:
        if self.backend == "memory":
            return MemoryStore()
        assert self.url is not None
        return RedisStore(
            self.url,
            cluster=self.cluster,
            prefix=self.prefix,
            sync_interval=self.sync_interval,
            quorum=self.quorum,
            timeout=self.timeout,
            startup_timeout=self.startup_timeout,
        )


class BreakersFile(BaseSettings):
    """The whole file."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        nested_model_default_partial_update=True,
    )

    defaults: BreakerOptions = Field(default_factory=BreakerOptions, description="Settings every breaker starts from.")
    services: dict[str, ServiceSettings] = Field(default_factory=dict, description="Dependencies, by name.")
    features: dict[str, FeatureSettings] = Field(default_factory=dict, description="Features, by name.")
    store: StoreSettings = Field(default_factory=StoreSettings, description="Shared state across replicas.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file (passed in as init data).
        return _EnvironSource(settings_cls), init_settings

    @field_validator("services", "features")
    @classmethod
    def _names(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # Lowercase, as environment variables name them (a feature "Answer" and the variable
        # BREAKERPANEL_FEATURES__ANSWER__... were two features).
        kind = "service" if info.field_name == "services" else "feature"
        for name in value:
            if not _NAME.match(name):
                raise ValueError(f"{kind} name {name!r} must be lowercase letters, digits, - or _")
        return value

    @model_validator(mode="after")
    def _references(self) -> BreakersFile:
        known = set(self.services) | {f"{s}.{e}" for s, svc in self.services.items() for e in svc.endpoints}
        problems = []
        semantic_keys: dict[tuple[str | None, str], str] = {}  # (Redis URL, name) -> the step using them
        for name, feature in self.features.items():
            if name in known:
                problems.append(f"features.{name}: a feature cannot share its name with a breaker")
            for kind in ("required", "optional"):
                for dependency in getattr(feature, kind):
                    if dependency not in known:
                        problems.append(f"features.{name}.{kind}: {dependency!r} is not a service or endpoint")
            both = sorted(set(feature.required) & set(feature.optional))
            if both:
                problems.append(f"features.{name}.optional: {both} cannot be both required and optional")
            for i, step in enumerate(feature.fallback):
                endpoint = step.endpoint if isinstance(step, AlternateStep | SemanticCacheStep) else None
                if endpoint is not None and endpoint not in known:
                    problems.append(f"features.{name}.fallback.{i}.endpoint: {endpoint!r} is not defined")
                if isinstance(step, SemanticCacheStep):
                    # Its name names its Redis keys: two features sharing them would answer each
                    # other's questions (a summary served for a translation). Without a url, the
                    # application's own Redis: the same for every such step.
                    where = f"features.{name}.fallback.{i}"
                    first = semantic_keys.setdefault((step.url, step.name), where)
                    if first != where:
                        problems.append(
                            f"{where}.name: {step.name!r} already names {first}'s semantic cache on the same "
                            "Redis: give each feature's semantic_cache step its own name"
                        )
        # What only the merged settings tell (auth_failures without llm_http, say): at load, not
        # at build().
        breakers = [
            *((s, f"services.{s}.breaker") for s in self.services),
            *(
                (f"{s}.{e}", f"services.{s}.endpoints.{e}.breaker")
                for s, svc in self.services.items()
                for e in svc.endpoints
            ),
            *((f, f"features.{f}.breaker") for f in self.features),
        ]
        for name, where in breakers:
            try:
                self.options_for(name).to_config()
            except BreakerConfigError as exc:
                problems.append(f"{where}.{exc.field}: {exc.reason}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # ------------------------------------------------------------------ building

    def options_for(self, name: str) -> BreakerOptions:
        """The settings in force for a breaker, after inheritance."""
        service, _, endpoint = name.partition(".")
        if name in self.features:
            return self.defaults.merged(self.features[name].breaker)
        svc = self.services[service]
        return self.defaults.merged(svc.breaker, svc.endpoints[endpoint].breaker if endpoint else None)

    def build(
        self,
        *,
        clock: Clock | None = None,
        listeners: Iterable[BreakerListener] = (),
        resolve: Callable[[str], Any] | None = None,
    ) -> Built:
        """Create the registry (every breaker and feature) and the HTTP router."""
        resolve = resolve or import_object
        registry = BreakerRegistry(clock=clock, listeners=listeners, store=self.store.build())
        routes: list[Route] = []
        for service_name, service in self.services.items():
            service_breaker = registry.service(
                service_name, self.options_for(service_name).to_config(), attributes=service.attributes
            )
            for endpoint_name, endpoint in service.endpoints.items():
                name = f"{service_name}.{endpoint_name}"
                breaker = registry.endpoint(name, self.options_for(name).to_config(), attributes=endpoint.attributes)
                routes.extend(_route(breaker, r) for r in endpoint.routes)
            routes.extend(Route(service_breaker, host=host) for host in service.hosts)
            if service.probe is not None:
                service.probe.runner(
                    service_breaker,
                    resolve,
                    f"services.{service_name}.probe",
                    dependents=functools.partial(_dependents, registry, service_breaker),
                )
        for feature_name, feature in self.features.items():
            steps = [
                _step(step, registry, resolve, f"features.{feature_name}.fallback.{i}")
                for i, step in enumerate(feature.fallback)
            ]
            registry.feature(
                feature_name,
                required=feature.required,
                optional=feature.optional,
                fallback=steps,
                config=self.options_for(feature_name).to_config(),
                attributes=feature.attributes,
            )
        return Built(registry, Router(routes))


def _dependents(registry: BreakerRegistry, service: CircuitBreaker) -> list[CircuitBreaker]:
    """The breakers a passing probe of ``service`` half-opens with it: its endpoints and the
    features that need the service or one of its endpoints."""
    mine = {service, *service.children}
    features = [f.breaker for f in registry.features() if any(d in mine for d in f.dependencies)]
    return [*service.children, *features]


# The environment load_config() reads: os.environ unless a test passes its own.
_environ: ContextVar[Mapping[str, str] | None] = ContextVar("breakerpanel_environ", default=None)


class _EnvironSource(EnvSettingsSource):
    def _load_env_vars(self) -> Mapping[str, str | None]:
        environ = _environ.get()
        if environ is None:
            return super()._load_env_vars()
        return parse_env_vars(environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


@dataclass(frozen=True)
class Built:
    """What a configuration builds."""

    registry: BreakerRegistry
    router: Router


def _route(breaker: CircuitBreaker, route: RouteSettings) -> Route:
    path: str | re.Pattern[str] | None = re.compile(route.path_regex) if route.path_regex else route.path
    methods = frozenset(route.methods) if route.methods else None
    return Route(breaker, host=route.host, path=path, methods=methods)


def _step(step: Any, registry: BreakerRegistry, resolve: Callable[[str], Any], where: str) -> FallbackStep:
    if isinstance(step, StaticStep):
        return Static(step.value, name=step.name)
    if isinstance(step, CacheStep):
        cache = MemoryCache(max_entries=step.max_entries, ttl=step.ttl, clock=registry.clock)
        if step.key is None:
            return CachedResponse(cache, ttl=step.ttl, name=step.name)
        return CachedResponse(cache, key=_resolved(resolve, step.key, f"{where}.key"), ttl=step.ttl, name=step.name)
    if isinstance(step, SemanticCacheStep):
        return _semantic_cache(step, registry, resolve, where)
    if isinstance(step, SimplifiedStep):
        return Simplified(_resolved(resolve, step.function, f"{where}.function"), name=step.name)
    assert isinstance(step, AlternateStep)
    breaker = registry[step.endpoint] if step.endpoint else None
    return Alternate(_resolved(resolve, step.function, f"{where}.function"), breaker=breaker, name=step.name)


def _semantic_cache(
    step: SemanticCacheStep, registry: BreakerRegistry, resolve: Callable[[str], Any], where: str
) -> SemanticCache:
    if step.url is None:
        raise BreakerConfigError(f"{where}.url", "a semantic_cache step built from the file needs the URL of a Redis 8")
    options: dict[str, Any] = {}
    if step.question is not None:
        options["question"] = _resolved(resolve, step.question, f"{where}.question")
    if step.present is not None:
        options["present"] = _resolved(resolve, step.present, f"{where}.present")
    return SemanticCache.from_url(
        step.url,
        breaker=registry[step.endpoint],
        min_similarity=step.min_similarity,
        ttl=step.ttl,
        max_entries=step.max_entries,
        max_question_chars=step.max_question_chars,
        name=step.name,
        **options,
    )


def _resolved(resolve: Callable[[str], Any], reference: str, where: str) -> Any:
    try:
        target = resolve(reference)
    except Exception as exc:
        raise BreakerConfigError(where, f"cannot import {reference!r}: {exc}") from exc
    if not callable(target):
        raise BreakerConfigError(where, f"{reference!r} is not callable")
    return target


def import_object(reference: str) -> Any:
    """``package.module:attribute`` -> the object."""
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError("expected module:attribute")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


# ---------------------------------------------------------------------- loading, with line numbers


class ConfigFileError(BreakerConfigError):
    """A configuration file is invalid. ``problems`` holds ``(line or None, key path, reason)``."""

    def __init__(self, path: str, problems: list[tuple[int | None, str, str]]) -> None:
        self.path = path
        self.problems = problems
        lines = [f"{path}:{line or '?'}: {key}: {reason}" for line, key, reason in problems]
        BreakerConfigError.__init__(self, path, "invalid configuration\n  " + "\n  ".join(lines))
        self.args = ("\n".join(lines),)

    def __str__(self) -> str:
        return "\n".join(f"{self.path}:{line or '?'}: {key}: {reason}" for line, key, reason in self.problems)


def _lines(node: yaml.Node | None, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    """Key path -> 1-based line, for every key and list item in a composed YAML document."""
    found: dict[tuple[str, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = (*prefix, str(key_node.value))
            found[path] = key_node.start_mark.line + 1
            found.update(_lines(value_node, path))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = (*prefix, str(index))
            found[path] = item.start_mark.line + 1
            found.update(_lines(item, path))
    return found


# The parts pydantic adds to an error's location for a validator function (not a key of the file;
# a service may well be named "function-calls").
_VALIDATOR_PART = re.compile(r"^function-(after|before|wrap|plain)\[")


def _problems(
    error: ValidationError, lines: Mapping[tuple[str, ...], int], overrides: Mapping[tuple[str, ...], str]
) -> list[tuple[int | None, str, str]]:
    problems: list[tuple[int | None, str, str]] = []
    for item in error.errors(include_url=False):
        loc = tuple(str(part) for part in item["loc"] if not (isinstance(part, str) and _VALIDATOR_PART.match(part)))
        # Discriminated unions add their tag, "(static)", to the location: keep the file's path.
        loc = tuple(p for p in loc if not (p.startswith("(") and p.endswith(")")))
        if item["type"] == "invalid_setting" and item["ctx"]["key"]:  # a block's dataclass named the field
            loc = (*loc, item["ctx"]["key"])
        line = None
        for depth in range(len(loc), 0, -1):
            line = lines.get(loc[:depth])
            if line is not None:
                break
        reason = item["msg"].removeprefix("Value error, ")
        shown = "input" in item and not isinstance(item["input"], dict | list)
        if item["type"] != "extra_forbidden" and shown and "(got " not in reason:
            reason += f" (got {item['input']!r})"
        variable = _set_by(loc, overrides)
        if variable is not None:  # the environment's value, not the file's: no line of the file
            line = None
            reason += f" (set by {variable})"
        problems.append((line, ".".join(loc) or "(top level)", redacted(reason)))
    return problems


def _set_by(loc: tuple[str, ...], overrides: Mapping[tuple[str, ...], str]) -> str | None:
    """The environment variable that set the value at ``loc`` (or a section holding it)."""
    lowered = tuple(part.lower() for part in loc)
    for depth in range(len(lowered), 0, -1):
        variable = overrides.get(lowered[:depth])
        if variable is not None:
            return variable
    return None


def _env_overrides(environ: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """Key path -> variable, for the ``BREAKERPANEL_<SECTION>__...`` variables (the ``__`` tells
    them from the project's other ``BREAKERPANEL_`` variables)."""
    found: dict[tuple[str, ...], str] = {}
    for variable in environ:
        if variable.upper().startswith(ENV_PREFIX) and "__" in variable:
            found[tuple(variable[len(ENV_PREFIX) :].lower().split("__"))] = variable
    return found


def load_config(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> BreakersFile:
    """Read and validate a ``breakers.yaml``, with environment overrides."""
    overrides = _env_overrides(environ if environ is not None else os.environ)
    sections = set(BreakersFile.model_fields)
    unknown: list[tuple[int | None, str, str]] = [
        (None, ".".join(p), f"{v} names no section ({', '.join(sorted(sections))})")
        for p, v in overrides.items()
        if p[0] not in sections
    ]
    if unknown:  # a typo would otherwise be ignored, and the setting it meant left as it was
        raise ConfigFileError(str(path), unknown)
    token = _environ.set(environ)
    try:
        return load_yaml_model(
            path, BreakersFile, expected="a mapping with defaults, services, features", overrides=overrides
        )
    except SettingsError as exc:
        # A whole section in one variable (BREAKERPANEL_STORE='{...}') that is not JSON: pydantic-
        # settings names neither the variable nor the reason.
        field = re.search(r'field "([^"]+)"', str(exc))
        section = field.group(1) if field else ""
        variable, reason = _not_json(environ if environ is not None else os.environ, section)
        raise ConfigFileError(
            str(path), [(None, section or "(environment)", f"{variable}: not JSON ({reason})")]
        ) from None
    finally:
        _environ.reset(token)


def _not_json(environ: Mapping[str, str], section: str) -> tuple[str, str]:
    """The variable of ``section`` whose value pydantic-settings failed to read as JSON (the
    section's own, ``BREAKERPANEL_STORE``, or a nested one, ``BREAKERPANEL_SERVICES__OPENAI__BREAKER``),
    and why."""
    prefix = f"{ENV_PREFIX}{section}".upper()
    for name in sorted(environ):
        upper = name.upper()
        if upper != prefix and not upper.startswith(f"{prefix}__"):
            continue
        value = environ[name].strip()
        if not value.startswith(("{", "[")):
            continue  # a plain value: read as it is, not as JSON
        try:
            json.loads(value)
        except ValueError as exc:
            return name, redacted(str(exc))
    return f"a {prefix}* variable", "not valid"


ModelT = TypeVar("ModelT", bound=BaseModel)


def load_yaml_model(
    path: str | os.PathLike[str],
    model: type[ModelT],
    *,
    expected: str,
    overrides: Mapping[tuple[str, ...], str] | None = None,
) -> ModelT:
    """Read a YAML file into ``model``; a :class:`ConfigFileError` lists every problem with its
    line and key path (or the environment variable that set it, among ``overrides``). ``expected``
    describes the top level, for a file that is not a mapping. A key given twice in one mapping
    is an error: YAML keeps the last, and the first (a whole service, say) would vanish unsaid."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigFileError(str(path), [(None, "(file)", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text) if node is not None else {}
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else None
        raise ConfigFileError(str(path), [(line, "(syntax)", str(exc.problem or exc))]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigFileError(str(path), [(1, "(top level)", f"expected {expected}")])
    duplicates = _duplicate_keys(node)
    if duplicates:
        raise ConfigFileError(str(path), duplicates)
    try:
        return model(**data)
    except ValidationError as exc:
        raise ConfigFileError(str(path), _problems(exc, _lines(node), overrides or {})) from None


def _duplicate_keys(node: yaml.Node | None, prefix: tuple[str, ...] = ()) -> list[tuple[int | None, str, str]]:
    """Every key given twice in one mapping of a composed YAML document, with its second line."""
    found: list[tuple[int | None, str, str]] = []
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in first:
                found.append((line, ".".join((*prefix, key)), f"given twice (first on line {first[key]})"))
            else:
                first[key] = line
            found.extend(_duplicate_keys(value_node, (*prefix, key)))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found.extend(_duplicate_keys(item, (*prefix, str(index))))
    return found
