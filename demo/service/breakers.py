"""The breakers of ``breakers.yaml``: services and endpoints as the library builds them, the
features with their fallback chains, and one HTTP router per upstream service.

The library's ``cache`` fallback step keeps answers in process memory. This service caches them
in Redis when it has one (so every replica can serve them), so the features are registered here,
from the file's own settings, with the cache step backed by the service's cache and the
``semantic_cache`` step on the service's Redis (demo/service/semantic.py); everything else (the
breakers, their inheritance, the routes) is the library's ``BreakersFile.build``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from breakerpanel import Alternate, BreakerRegistry, CachedResponse, FallbackStep, Simplified, State, Static
from breakerpanel.config import (
    AlternateStep,
    CacheStep,
    FeatureSettings,
    SemanticCacheStep,
    SimplifiedStep,
    StaticStep,
    import_object,
    load_config,
)
from breakerpanel.integrations import Router

from .cache import AnswerCache
from .semantic import semantic_step
from .settings import BreakerMode

__all__ = ["Breakers", "open_breakers"]


class Breakers:
    """The registry built from a ``breakers.yaml`` and a router per service.

    ``mode`` (``on`` by default) is for comparisons: ``no_fallbacks`` registers the features
    without their fallback steps; ``off`` disables every breaker (they let every call through and
    record nothing), so a feature runs its primary path and falls back only once it has failed."""

    def __init__(self, path: Path, mode: BreakerMode = "on", *, resolve: Callable[[str], Any] | None = None) -> None:
        self.file = load_config(path)
        self.mode = mode
        # ``resolve`` turns the file's `module:attribute` references into objects (the probes,
        # bound to the service's settings: demo/service/probes.py).
        built = self.file.model_copy(update={"features": {}}).build(resolve=resolve)
        self.registry: BreakerRegistry = built.registry
        self._router = built.router
        if mode == "off":
            for breaker in self.registry:
                breaker.disable()

    def add_features(self, cache: AnswerCache, redis_url: str = "") -> None:
        """Register the file's features, their cache steps backed by ``cache`` (which needs the
        ``redis`` breakers, hence a second step) and their semantic-cache steps on ``redis_url``
        (left out without one)."""
        for name, feature in self.file.features.items():
            self._register_feature(name, feature, cache, redis_url)

    def router_for(self, service: str) -> Router:
        """The routes of ``service``'s endpoints; other requests to it count for the service."""
        routes = [r for r in self._router.routes if r.breaker.name.partition(".")[0] == service]
        return Router(routes, default=self.registry[service])

    def _register_feature(self, name: str, feature: FeatureSettings, cache: AnswerCache, redis_url: str) -> None:
        registered = self.registry.feature(
            name,
            required=feature.required,
            optional=feature.optional,
            fallback=[] if self.mode == "no_fallbacks" else self._steps(feature.fallback, cache, redis_url),
            config=self.file.options_for(name).to_config(),
            attributes=feature.attributes,
        )
        if self.mode == "off":
            registered.breaker.disable()

    def _steps(self, settings: Sequence[Any], cache: AnswerCache, redis_url: str) -> list[FallbackStep]:
        steps: list[FallbackStep] = []
        for step in settings:
            if isinstance(step, SemanticCacheStep):
                if (semantic := semantic_step(step, self.registry, redis_url)) is not None:
                    steps.append(semantic)
            elif isinstance(step, StaticStep):
                steps.append(Static(step.value, name=step.name))
            elif isinstance(step, CacheStep):
                key = import_object(step.key) if step.key else None
                steps.append(
                    CachedResponse(cache, ttl=step.ttl, name=step.name)
                    if key is None
                    else CachedResponse(cache, key=key, ttl=step.ttl, name=step.name)
                )
            elif isinstance(step, SimplifiedStep):
                steps.append(Simplified(import_object(step.function), name=step.name))
            else:
                assert isinstance(step, AlternateStep)
                breaker = self.registry[step.endpoint] if step.endpoint else None
                steps.append(Alternate(import_object(step.function), breaker=breaker, name=step.name))
        return steps


_OPEN_STATES = frozenset({State.OPEN, State.FORCED_OPEN})


def open_breakers(registry: BreakerRegistry) -> list[str]:
    """Breakers that are open or forced open, and still rejecting, by name."""
    return sorted(b.name for b in registry if b.state in _OPEN_STATES and b.is_rejecting())
