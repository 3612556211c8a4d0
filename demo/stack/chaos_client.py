"""The client side of the fake upstreams' chaos API (demo/upstreams/chaos_api.py), for the CLI.

The server validates every fault (pydantic); this module only builds the request from the CLI's
options and turns a 422 back into the option names the user typed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

__all__ = ["FAULTS", "UPSTREAMS", "ChaosClient", "ChaosError", "describe", "fault_body"]

UPSTREAMS: Final = ("openai", "anthropic", "qdrant")
FAULTS: Final = ("error_rate", "latency", "outage", "rate_limit", "slow_stream", "stall_stream")

#: Fault fields -> the CLI option that sets them (for error messages).
OPTION_OF_FIELD: Final[Mapping[str, str]] = {
    "for_s": "--for",
    "rate": "--rate",
    "status": "--status",
    "seconds": "--seconds",
    "mode": "--mode",
    "retry_after_s": "--retry-after",
    "chunk_delay_s": "--chunk-delay",
    "after_chunks": "--after-chunks",
    "stall_s": "--stall",
}


class ChaosError(RuntimeError):
    """The upstreams refused a request or could not be reached; the message says why."""


def fault_body(fault: str, **fields: float | int | str | None) -> dict[str, Any]:
    """The PUT body for ``fault``: its name and the fields that were given (None: left out)."""
    name = fault.replace("-", "_")
    if name not in FAULTS:
        raise ChaosError(f"unknown fault {fault!r}: choose from {', '.join(FAULTS)}")
    return {"fault": name, **{key: value for key, value in fields.items() if value is not None}}


@dataclass(frozen=True)
class ChaosClient:
    base_url: str
    timeout: float = 5.0

    def show(self, upstream: str | None = None) -> dict[str, Any]:
        """Every upstream's state, or ``{upstream: state}``."""
        if upstream is None:
            result: dict[str, Any] = self._call("GET", "/chaos")
            return result
        return {upstream: self._call("GET", f"/chaos/{upstream}")}

    def set(self, upstream: str, body: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("PUT", f"/chaos/{upstream}", json=dict(body))
        return result

    def clear(self, upstream: str | None = None) -> dict[str, Any]:
        """Clear one upstream's fault, or all faults (which also zeroes the counters)."""
        if upstream is None:
            result: dict[str, Any] = self._call("DELETE", "/chaos")
            return result
        return {upstream: self._call("DELETE", f"/chaos/{upstream}")}

    def _call(self, method: str, path: str, json: Mapping[str, Any] | None = None) -> Any:
        url = self.base_url.rstrip("/") + path
        try:
            response = httpx.request(method, url, json=json, timeout=self.timeout, trust_env=False)
        except httpx.HTTPError as exc:
            raise ChaosError(f"cannot reach the fake upstreams at {self.base_url}: {exc}") from None
        if response.status_code == 422:
            raise ChaosError(_validation_message(response.json()))
        if response.status_code >= 400:
            raise ChaosError(f"{method} {path}: {response.status_code} {response.text.strip()}")
        return response.json()


def _validation_message(body: Any) -> str:
    details = body.get("detail") if isinstance(body, dict) else None
    if not isinstance(details, list):
        return f"rejected: {body}"
    lines = []
    for detail in details:
        location = [str(part) for part in detail.get("loc", []) if part not in ("body", "fault")]
        # A discriminated union puts the fault's name in the location: keep only the field.
        field = location[-1] if location else ""
        where = OPTION_OF_FIELD.get(field, field)
        lines.append(f"{where}: {detail.get('msg')}" if where else str(detail.get("msg")))
    return "rejected: " + "; ".join(lines)


def describe(upstream: str, state: Mapping[str, Any]) -> str:
    """One line: the upstream, its fault with its settings and expiry, and its counters."""
    fault = state.get("fault")
    counters = f"{state.get('requests', 0)} requests, {state.get('failed', 0)} failed"
    if not fault:
        return f"{upstream}: healthy ({counters})"
    settings = ", ".join(f"{key}={value}" for key, value in fault.items() if key not in ("fault", "for_s"))
    expires = state.get("expires_in_s")
    until = f", clears in {expires:.0f}s" if isinstance(expires, int | float) else ", until cleared"
    return f"{upstream}: {fault['fault']}" + (f" ({settings})" if settings else "") + f"{until} ({counters})"
