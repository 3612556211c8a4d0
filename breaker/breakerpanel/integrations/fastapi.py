"""FastAPI: routes declare the breakers and features they need; rejections become responses.

::

    app = FastAPI()
    install_error_handlers(app)                     # CircuitOpenError -> 503 + Retry-After
    OpenAIChat = Annotated[CircuitBreaker, Depends(require(registry["openai.chat"]))]
    Answer = Annotated[Feature, Depends(require_feature(registry.get_feature("answer")))]

    @app.post("/ask")
    async def ask(question: str, answer: Answer) -> dict[str, str]:
        return {"answer": await answer.acall(rag, question)}

A route whose breaker is open is refused before it does any work; a rejection that happens during
the work (a dependency that opened meanwhile) is mapped by the error handler. Either becomes a 503
with ``Retry-After`` and a small JSON body, or, with :func:`degraded`, a normal response carrying
a degraded payload and the header ``X-Breakerpanel-Degraded`` naming the breaker.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from breakerpanel._extras import require as require_extra

# A missing extra: one line naming it, not a bare ModuleNotFoundError from below.
require_extra("breakerpanel.integrations.fastapi", "fastapi", "fastapi")

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from breakerpanel._breaker import CircuitBreaker
from breakerpanel._exceptions import CircuitOpenError, DependencyError
from breakerpanel._feature import Availability, Feature
from breakerpanel._monitor import adaptive_controller, trip_forecaster
from breakerpanel._probe import probe_runner
from breakerpanel._registry import BreakerRegistry
from breakerpanel._state import State

from .guards import skip_load_sample

__all__ = [
    "DEGRADED_HEADER",
    "OnRejection",
    "degraded",
    "install_error_handlers",
    "readiness",
    "readiness_router",
    "require",
    "require_feature",
    "unavailable",
    "validation_error_handler",
]

DEGRADED_HEADER = "X-Breakerpanel-Degraded"
BREAKER_HEADER = "X-Breakerpanel-Breaker"


@dataclass(frozen=True)
class OnRejection:
    """How a rejected request is answered."""

    status_code: int = 503
    #: ``None``: the standard error body. Otherwise a function of the rejection returning the
    #: payload of a degraded (but successful) answer.
    payload: Callable[[CircuitOpenError | DependencyError], Any] | None = None

    def response(self, error: CircuitOpenError | DependencyError) -> JSONResponse:
        name = error.origin if isinstance(error, CircuitOpenError) else error.breaker_name
        if self.payload is not None:
            return JSONResponse(self.payload(error), status_code=self.status_code, headers={DEGRADED_HEADER: name})
        headers = {BREAKER_HEADER: name}
        retry_after = error.remaining if isinstance(error, CircuitOpenError) else None
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        body: dict[str, Any] = {"error": "dependency unavailable", "breaker": name}
        if isinstance(error, CircuitOpenError):
            body.update(reason=error.reason.value, retry_after=retry_after)
        else:
            body.update(reason="failed", error_type=error.error_type)
        return JSONResponse(body, status_code=self.status_code, headers=headers)


def unavailable(status_code: int = 503) -> OnRejection:
    """Answer rejections with ``status_code`` (503), ``Retry-After`` and a JSON error body."""
    return OnRejection(status_code=status_code)


def degraded(payload: Callable[[CircuitOpenError | DependencyError], Any], status_code: int = 200) -> OnRejection:
    """Answer rejections with ``payload(error)`` and the ``X-Breakerpanel-Degraded`` header."""
    return OnRejection(status_code=status_code, payload=payload)


class _Rejected(Exception):
    """Raised by the dependencies, answered by the handler with the route's own policy."""

    def __init__(self, error: CircuitOpenError, policy: OnRejection) -> None:
        super().__init__(str(error))
        self.error = error
        self.policy = policy


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan", "inf": what the caller sent, which JSON cannot carry back
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 for a request that fails validation (the field and the reason, with the
    input), also for a body holding ``NaN`` or ``Infinity``: Python's JSON parser accepts them, and
    FastAPI's own handler, echoing the input back, fails to encode them and answers 500.

    ``app.add_exception_handler(RequestValidationError, validation_error_handler)``."""
    if not isinstance(exc, RequestValidationError):  # typed as Starlette's handlers are
        raise exc
    return JSONResponse({"detail": _json_safe(jsonable_encoder(exc.errors()))}, status_code=422)


def install_error_handlers(app: FastAPI, on_rejection: OnRejection | None = None) -> None:
    """Map :class:`CircuitOpenError` and :class:`DependencyError` raised by routes to responses."""
    policy = on_rejection or unavailable()

    async def rejected(request: Request, exc: Exception) -> Response:
        if isinstance(exc, _Rejected | CircuitOpenError):
            skip_load_sample(request)  # rejected at once: not a latency sample for a load shedder
        if isinstance(exc, _Rejected):
            return exc.policy.response(exc.error)
        assert isinstance(exc, CircuitOpenError | DependencyError)
        return policy.response(exc)

    app.add_exception_handler(_Rejected, rejected)
    app.add_exception_handler(CircuitOpenError, rejected)
    app.add_exception_handler(DependencyError, rejected)


def require(
    breaker: CircuitBreaker, on_rejection: OnRejection | None = None
) -> Callable[[], Awaitable[CircuitBreaker]]:
    """A dependency that refuses the request at once while ``breaker`` (or its parent) is open,
    and otherwise hands the route the breaker. Needs :func:`install_error_handlers`."""
    policy = on_rejection or unavailable()

    async def dependency() -> CircuitBreaker:
        if breaker.is_rejecting():
            try:
                # Ask as a call would, so that the refusal is counted as the breaker's rejection.
                # If the breaker has just moved on (its wait ended), let the request through.
                breaker.acquire().cancel()
            except CircuitOpenError as exc:
                raise _Rejected(exc, policy) from None
        return breaker

    dependency.__name__ = f"require_{breaker.name.replace('.', '_')}"
    return dependency


def require_feature(
    feature: Feature, on_rejection: OnRejection | None = None
) -> Callable[[Response], Awaitable[Feature]]:
    """A dependency for a route that serves ``feature``. When the feature is not fully available
    the response carries ``X-Breakerpanel-Degraded``; when it is unavailable and has no fallback
    to serve, the request is refused at once."""
    policy = on_rejection or unavailable()

    async def dependency(response: Response) -> Feature:
        status = feature.status()
        if status.availability is Availability.AVAILABLE:
            return feature
        blocking = status.open_required or status.open_optional or (feature.name,)
        response.headers[DEGRADED_HEADER] = ",".join(blocking)
        if status.availability is Availability.UNAVAILABLE and not feature.chain.steps:
            try:
                # Counted as a call would be: on the dependency that is open and on the feature
                # (parent_open), or, when only the feature's own breaker is open, by that breaker.
                if feature._blocked() is None:
                    feature.breaker.acquire().cancel()  # it has just moved on: let the request through
            except CircuitOpenError as exc:
                raise _Rejected(exc, policy) from None
        return feature

    dependency.__name__ = f"require_feature_{feature.name.replace('.', '_')}"
    return dependency


def readiness(registry: BreakerRegistry, required: tuple[str, ...] = ()) -> tuple[int, dict[str, Any]]:
    """``(status code, body)`` of a readiness check: the breaker tree, each breaker's adaptive
    thresholds, forecast and probe, and a status: ``ready`` (every breaker closed), ``degraded``
    (some are not: the app still answers, with fallbacks) or ``unavailable`` (one of ``required``,
    breakers or features, is rejecting calls: answered with 503)."""
    tree = registry.tree()
    blocking = []
    for name in required:
        if name in registry:
            if registry[name].is_rejecting():
                blocking.append(name)
        elif registry.get_feature(name).status().availability is Availability.UNAVAILABLE:
            blocking.append(name)
    not_closed = [b.name for b in registry.breakers() if b.state is not State.CLOSED]
    status = "unavailable" if blocking else "degraded" if not_closed else "ready"
    health: dict[str, Any] = {}
    for breaker in registry.breakers():
        entry: dict[str, Any] = {}
        if (adaptive := adaptive_controller(breaker)) is not None:
            model = adaptive.model
            entry["adaptive"] = {
                "failure_rate_threshold": model.threshold,
                "failure_rate_baseline": model.failure_baseline,
                "slow_call_duration": model.slow_call_duration,
                "latency_baseline": model.latency_baseline,
                "burn_rate": model.burn,
            }
        if (forecaster := trip_forecaster(breaker)) is not None:
            entry["forecast"] = {
                "predicted_failure_rate": forecaster.predicted,
                "seconds_to_trip": forecaster.seconds_to_trip,
                "forecasts": forecaster.forecasts,
            }
        if (runner := probe_runner(breaker)) is not None:
            entry["probe"] = {"results": dict(runner.results), "last_error": runner.last_error}
        if entry:
            health[breaker.name] = entry
    body = {"status": status, "not_closed": not_closed, "unavailable": blocking, "breakers": tree, "health": health}
    return (503 if blocking else 200), body


def readiness_router(
    registry: BreakerRegistry, *, path: str = "/health/ready", required: tuple[str, ...] = ()
) -> APIRouter:
    """A ready-made readiness endpoint reflecting the breaker tree (see :func:`readiness`):
    ``app.include_router(readiness_router(registry, required=("postgres",)))``."""
    unknown = [n for n in required if n not in registry and n not in {f.name for f in registry.features()}]
    if unknown:
        raise ValueError(f"required: {unknown[0]!r} is not a registered breaker or feature")
    router = APIRouter(tags=["health"])

    @router.get(path)
    async def ready() -> JSONResponse:
        status_code, body = readiness(registry, required)
        return JSONResponse(body, status_code=status_code)

    return router
