"""The fake upstreams as one FastAPI app: OpenAI, Anthropic and Qdrant on one host, plus ``/chaos``.

One host keeps the demo stack and the tests to a single server: clients point their base URL at
it (``{url}/v1`` for OpenAI, ``{url}`` for Anthropic and Qdrant) and the path tells the upstreams
apart, for routing and for chaos alike.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from breakerpanel.integrations.fastapi import validation_error_handler

from .anthropic_api import ANTHROPIC_ERRORS, anthropic_router
from .capacity import Capacity, CapacityLimiter, CapacityState
from .chaos import Chaos, Upstream
from .chaos_api import chaos_router
from .errors import UpstreamError, answer_upstream_error
from .injector import ChaosMiddleware
from .openai_api import OPENAI_ERRORS, openai_router
from .qdrant_api import QDRANT_ERRORS, qdrant_router
from .qdrant_store import Store

__all__ = ["create_app", "upstream_for_path"]


def create_app(
    *,
    chaos: Chaos | None = None,
    seed: int = 0,
    embedding_dim: int = 64,
    max_prompt_chars: int = 8000,
    openai_api_key: str | None = None,
    anthropic_api_key: str | None = None,
    capacity: Mapping[Upstream, Capacity] | None = None,
) -> FastAPI:
    """The app, its faults driven by ``chaos`` (a new ``Chaos(seed=seed)`` when None).

    ``embedding_dim`` is the size of embeddings when a request names no ``dimensions``;
    ``max_prompt_chars`` is the context window, beyond which chat requests fail as too long; an API
    key of None accepts any key. ``capacity`` limits the upstreams it names to a concurrency and a
    queue (demo/upstreams/capacity.py; none by default), and adds ``GET /capacity`` with their
    counters. ``app.state.chaos``, ``app.state.store`` (the Qdrant collections) and
    ``app.state.capacity`` (the limiters) are there for in-process callers.
    """
    if embedding_dim < 1 or max_prompt_chars < 1:
        raise ValueError("embedding_dim and max_prompt_chars must be positive")
    chaos = chaos if chaos is not None else Chaos(seed=seed)
    store = Store()
    app = FastAPI(title="breakerpanel fake upstreams", summary="OpenAI, Anthropic and Qdrant with chaos controls")
    app.state.chaos = chaos
    app.state.store = store
    limiters = {upstream: CapacityLimiter(limit) for upstream, limit in (capacity or {}).items()}
    app.state.capacity = limiters
    if limiters:

        @app.get("/capacity", tags=["chaos"])
        async def show_capacity() -> dict[Upstream, CapacityState]:
            return {upstream: limiter.state() for upstream, limiter in limiters.items()}

    app.add_exception_handler(UpstreamError, answer_upstream_error)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.include_router(chaos_router(chaos))
    app.include_router(
        openai_router(api_key=openai_api_key, max_prompt_chars=max_prompt_chars, embedding_dim=embedding_dim)
    )
    app.include_router(anthropic_router(api_key=anthropic_api_key, max_prompt_chars=max_prompt_chars))
    app.include_router(qdrant_router(store))
    app.add_middleware(
        ChaosMiddleware,
        chaos=chaos,
        upstream_for=upstream_for_path,
        formats={
            Upstream.OPENAI: OPENAI_ERRORS,
            Upstream.ANTHROPIC: ANTHROPIC_ERRORS,
            Upstream.QDRANT: QDRANT_ERRORS,
        },
        capacity=limiters,
    )
    return app


def upstream_for_path(path: str) -> Upstream | None:
    """Which upstream a request path belongs to; None for the app's own routes (``/chaos``, docs)."""
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return Upstream.ANTHROPIC
    if path.startswith("/v1/"):
        return Upstream.OPENAI
    if path == "/" or path == "/collections" or path.startswith("/collections/"):
        return Upstream.QDRANT
    return None
