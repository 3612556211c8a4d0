"""Reading Prometheus's HTTP API: instant queries for a card's live figures (:mod:`.enrich`),
range queries for an incident's chart (:mod:`.chart_data`). One client, one connection pool.

A failure raises :class:`PrometheusError` with a reason a person can act on (unreachable, an HTTP
status, Prometheus's own error), which the chart's timeline entry quotes.
"""

from __future__ import annotations

from typing import Any

import httpx

from breakerpanel._redact import redacted

__all__ = ["PrometheusError", "PrometheusReader", "Sample"]

#: One point of a range query's series: Unix seconds and the value.
Sample = tuple[float, float]


class PrometheusError(Exception):
    """Prometheus did not answer a query: the message says why."""


class PrometheusReader:
    """Queries ``url`` (Prometheus's root URL; ``https://user:password@host`` logs in with basic
    auth). ``timeout`` bounds each request."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"Prometheus URL must start with http:// or https:// (got {redacted(url)!r})")
        #: The URL as errors quote it (in logs and in the incident's timeline): without its password.
        self.url = redacted(url.rstrip("/"))
        base = httpx.URL(url.rstrip("/"))
        # The user information goes as basic auth, not in the base URL: httpx logs every request's
        # URL whole (INFO), password included.
        auth = httpx.BasicAuth(base.username, base.password) if base.username or base.password else None
        self.client = httpx.AsyncClient(base_url=base.copy_with(userinfo=b""), auth=auth, timeout=timeout)

    async def close(self) -> None:
        await self.client.aclose()

    async def query(self, expr: str, *, request_timeout: float | None = None) -> list[dict[str, Any]]:
        """An instant query's result (``data.result``: a vector)."""
        return await self._get("/api/v1/query", {"query": expr}, request_timeout)

    async def query_range(
        self, expr: str, *, start: float, end: float, step: float, request_timeout: float | None = None
    ) -> dict[tuple[tuple[str, str], ...], list[Sample]]:
        """A range query's series, each keyed by its labels (sorted name/value pairs), its points
        as ``(time, value)`` in time order."""
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        series: dict[tuple[tuple[str, str], ...], list[Sample]] = {}
        for found in await self._get("/api/v1/query_range", params, request_timeout):
            try:
                labels = tuple(sorted((str(k), str(v)) for k, v in found["metric"].items()))
                series[labels] = [(float(at), float(value)) for at, value in found["values"]]
            except (KeyError, TypeError, ValueError) as exc:
                raise PrometheusError(f"Prometheus answered a series that is not a matrix: {exc!r}") from None
        return series

    async def _get(self, path: str, params: dict[str, str], request_timeout: float | None) -> list[dict[str, Any]]:
        try:
            response = await self.client.get(
                path,
                params=params,
                timeout=request_timeout if request_timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException:
            raise PrometheusError(f"Prometheus at {self.url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise PrometheusError(f"Prometheus at {self.url} is unreachable ({type(exc).__name__})") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise PrometheusError(f"Prometheus at {self.url} answered HTTP {response.status_code}, not JSON")
        if body.get("status") != "success":
            error = str(body.get("error", ""))[:300]
            raise PrometheusError(f"Prometheus at {self.url} answered HTTP {response.status_code}: {error}")
        data = body.get("data")
        result = data.get("result") if isinstance(data, dict) else None
        if not isinstance(result, list):
            raise PrometheusError(f"Prometheus at {self.url} answered without a result")
        return result
