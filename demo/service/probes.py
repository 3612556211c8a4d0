"""Health probes of the demo's upstreams, bound to the service's own settings.

``breakers.yaml`` names them (``probe: {type: callable, function: "demo.service.probes:openai"}``);
the service resolves those names with :func:`resolver`, which binds each to the URLs and keys in
its settings, so the same file works against the fakes, the real Qdrant and any port. While a
service's breaker is open its probe runs with backoff: the first success half-opens the breaker at
once, without waiting out ``wait_in_open``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from breakerpanel import Probe
from breakerpanel.config import import_object

from .settings import Settings

__all__ = ["PROBES", "resolver"]


def _get(url: str, headers: dict[str, str], timeout: float) -> Probe:
    async def probe() -> bool:
        # A client per probe: probes run only while a breaker is open, and nothing stays open.
        async with httpx.AsyncClient(headers=headers, timeout=timeout) as client:
            return (await client.get(url)).status_code < 400

    probe.__qualname__ = f"GET {url}"
    return probe


def openai(settings: Settings) -> Probe:
    """``GET /models``: the cheapest authenticated call, it costs no tokens."""
    headers = {"Authorization": f"Bearer {settings.openai_api_key.get_secret_value()}"}
    return _get(f"{settings.openai_base_url.rstrip('/')}/models", headers, settings.upstream_timeout_s)


def anthropic(settings: Settings) -> Probe:
    """``POST /v1/messages`` for one token: Anthropic's commonest fault, overload (529), shows on
    the messages endpoint only, so a listing could pass while answers still fail. A probe runs
    only while the breaker is open, at most every few seconds: a few tokens an outage."""
    url = f"{settings.anthropic_base_url.rstrip('/')}/v1/messages"
    headers = {"x-api-key": settings.anthropic_api_key.get_secret_value(), "anthropic-version": "2023-06-01"}
    body = {"model": settings.anthropic_model, "max_tokens": 1, "messages": [{"role": "user", "content": "ping"}]}

    async def probe() -> bool:
        async with httpx.AsyncClient(headers=headers, timeout=settings.upstream_timeout_s) as client:
            return (await client.post(url, json=body)).status_code < 400

    probe.__qualname__ = f"POST {url}"
    return probe


def qdrant(settings: Settings) -> Probe:
    """``GET /collections``: answered by a Qdrant that can serve searches."""
    headers = {"api-key": settings.qdrant_api_key.get_secret_value()} if settings.qdrant_api_key else {}
    return _get(f"{settings.qdrant_url.rstrip('/')}/collections", headers, settings.upstream_timeout_s)


#: The probes ``breakers.yaml`` may name, as ``demo.service.probes:<name>``.
PROBES: dict[str, Callable[[Settings], Probe]] = {"openai": openai, "anthropic": anthropic, "qdrant": qdrant}


def resolver(settings: Settings) -> Callable[[str], Any]:
    """What ``BreakersFile.build(resolve=...)`` needs: this module's probes bound to ``settings``,
    anything else imported as usual."""

    def resolve(reference: str) -> Any:
        module, _, name = reference.partition(":")
        if module == __name__ and name in PROBES:
            return PROBES[name](settings)
        return import_object(reference)

    return resolve
