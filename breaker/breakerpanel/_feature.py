"""Features: user-facing capabilities that depend on several breakers.

A feature (``answer``, ``search``) declares the dependencies it needs. It is *unavailable* when a
required dependency is open (or its own breaker is), *degraded* when an optional one is, and
*available* otherwise. A call through a feature that is not fully available goes straight to the
feature's fallback chain (a simplified mode, a cached answer) instead of trying the primary path
and waiting for it to fail; without a fallback, an unavailable feature rejects the call with
``parent_open`` naming the dependency that is open, and a degraded one runs the primary path,
which knows how to do without its optional parts.

Each feature owns a breaker (level ``feature``) over its own calls, so a feature whose calls keep
failing for reasons no single dependency shows also trips, and so its calls, rejections and
fallbacks are exported like every other breaker's. A breaker's rejection raised from inside the
primary path (a half-open dependency whose probes are all taken, which availability does not
show) is that breaker's to count: the feature's breaker ignores it, so one outage neither trips
the feature nor keeps its half-open permit, whatever state the dependency rejected in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ParamSpec, TypeVar, overload

from ._breaker import CircuitBreaker
from ._classify import IGNORED, Classifier, when_exception
from ._clock import Clock
from ._config import DEFAULT_CONFIG, BreakerConfig
from ._events import BreakerListener
from ._exceptions import BreakerConfigError, CircuitOpenError, rejection_in
from ._fallback import FallbackChain, FallbackStep
from ._state import Level
from ._wrap import wrap_calls

__all__ = ["Availability", "Feature", "FeatureStatus"]


P = ParamSpec("P")
T = TypeVar("T")


def _is_rejection(exc: BaseException) -> bool:
    return rejection_in(exc) is not None


# First in every feature breaker's classifier: see the module's docstring.
_DEPENDENCY_REJECTIONS: Classifier = when_exception(_is_rejection, IGNORED)


class Availability(StrEnum):
    AVAILABLE = "available"
    DEGRADED = "degraded"
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class FeatureStatus:
    name: str
    availability: Availability
    #: Required dependencies that are open (they make the feature unavailable).
    open_required: tuple[str, ...]
    #: Optional dependencies that are open (they make it degraded).
    open_optional: tuple[str, ...]
    #: The feature's own breaker is open.
    own_breaker_open: bool


class Feature:
    """A capability with required and optional dependencies and a fallback chain."""

    def __init__(
        self,
        name: str,
        *,
        required: Iterable[CircuitBreaker] = (),
        optional: Iterable[CircuitBreaker] = (),
        fallback: Sequence[FallbackStep] = (),
        config: BreakerConfig | None = None,
        clock: Clock | None = None,
        listeners: Iterable[BreakerListener] = (),
        attributes: Mapping[str, str] | None = None,
    ) -> None:
        self.required = tuple(required)
        self.optional = tuple(optional)
        for dependency in (*self.required, *self.optional):
            if not isinstance(dependency, CircuitBreaker):
                raise BreakerConfigError(f"features.{name}.dependencies", f"expected breakers (got {dependency!r})")
        overlap = {d.name for d in self.required} & {d.name for d in self.optional}
        if overlap:
            raise BreakerConfigError(f"features.{name}", f"{sorted(overlap)} cannot be both required and optional")
        config = config or DEFAULT_CONFIG
        own = config.classifier_object
        config = config.replace(classifier=_DEPENDENCY_REJECTIONS if own is None else _DEPENDENCY_REJECTIONS | own)
        self.breaker = CircuitBreaker(
            name,
            config,
            clock=clock,
            listeners=listeners,
            level=Level.FEATURE,
            attributes=attributes,
            requires=[d.service or d.name for d in self.required],
        )
        self.chain = FallbackChain(self.breaker, *fallback)
        # What the call paths read first: the breakers whose state decides availability (the
        # dependencies, the feature's own). A breaker's _closed_gen is negative unless it is
        # closed, and a dependency's parent too (see CircuitBreaker._sync_closed_gen), so when
        # none is negative the feature is available and _blocked would return None.
        self._gates = (*self.required, *self.optional, self.breaker)

    @property
    def name(self) -> str:
        return self.breaker.name

    @property
    def dependencies(self) -> tuple[CircuitBreaker, ...]:
        return (*self.required, *self.optional)

    def status(self) -> FeatureStatus:
        open_required = tuple(d.name for d in self.required if d.is_rejecting())
        open_optional = tuple(d.name for d in self.optional if d.is_rejecting())
        own_open = self.breaker.is_rejecting()
        if open_required or own_open:
            availability = Availability.UNAVAILABLE
        elif open_optional:
            availability = Availability.DEGRADED
        else:
            availability = Availability.AVAILABLE
        return FeatureStatus(self.name, availability, open_required, open_optional, own_open)

    def availability(self) -> Availability:
        return self.status().availability

    async def acall(self, fn: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` for this feature, or its fallback when the feature is not fully available."""
        chain = self.chain
        for gate in self._gates:
            if gate._closed_gen < 0:
                blocked = self._blocked()
                if blocked is not None:
                    served: T = await chain.aserve(blocked, args, kwargs)
                    return served
                break
        # chain.acall(fn, ...), inlined: each frame that passes *args and **kwargs on costs.
        try:
            result = await self.breaker._acall_args(fn, args, kwargs)
        except Exception as exc:
            if not chain.falls_back(exc):
                raise
            served = await chain.aserve(exc, args, kwargs)
            return served
        if chain.breaker._classify_results or chain._remembering[1] or chain._remembering[0] is not chain.steps:
            settled: T = await chain.asettle(result, args, kwargs)
            return settled
        return result

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        chain = self.chain
        for gate in self._gates:
            if gate._closed_gen < 0:
                blocked = self._blocked()
                if blocked is not None:
                    served: T = chain.serve(blocked, args, kwargs)
                    return served
                break
        try:  # chain.call(fn, ...), inlined
            result = self.breaker._call_args(fn, args, kwargs)
        except Exception as exc:
            if not chain.falls_back(exc):
                raise
            served = chain.serve(exc, args, kwargs)
            return served
        if chain.breaker._classify_results or chain._remembering[1] or chain._remembering[0] is not chain.steps:
            settled: T = chain.settle(result, args, kwargs)
            return settled
        return result

    def _blocked(self) -> CircuitOpenError | None:
        """The rejection for a call that must not run the primary path, or ``None``.

        The call paths first check that no breaker in ``_gates`` has a negative ``_closed_gen``:
        then each is closed, and so is each dependency's parent, none is rejecting, the feature
        is available and this would return ``None``: they need not build ``status()`` (a frozen
        dataclass and three tuples) on every call to find that out."""
        status = self.status()
        if status.availability is Availability.AVAILABLE:
            return None
        if status.availability is Availability.DEGRADED and not self.chain.steps:
            return None  # the primary path knows how to do without its optional parts
        blocking = status.open_required or status.open_optional
        if not blocking:
            # Only the feature's own breaker is open: it rejects the call itself, counted with its
            # own reason (open, forced_open), and the chain serves the fallback.
            return None
        origin = blocking[0]
        dependency = next(d for d in self.dependencies if d.name == origin)
        # The dependency counts the call it turned away, as it would had the call gone through
        # it: its rejections (and error budget) show every caller its outage lets down.
        refused = dependency.reject_on_behalf()
        remaining = refused.remaining if refused is not None else dependency.snapshot().open_remaining
        rejection = self.breaker.reject_for_dependency(origin, remaining)
        if not self.chain.steps:
            raise rejection
        return rejection

    @overload
    def __call__(self, fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]: ...

    @overload
    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate a function: its calls go through the feature."""
        self.chain.check_decorates(fn)
        return wrap_calls(fn, self.acall, self.call, f"feature {self.name!r}")

    def __repr__(self) -> str:
        return f"Feature({self.name!r}, {self.availability().value})"
