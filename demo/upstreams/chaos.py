"""Chaos state: which fault each fake upstream is playing, and how many requests reached it.

Modelled on the OpenTelemetry demo's feature flags: one switch per upstream, flipped at run time
(over HTTP by the load generator and the CLI, or directly by tests) while traffic flows. A fault
can clear itself after ``for_s`` seconds, so a demo scenario ("OpenAI is down for two minutes")
needs no second command to end.

The object is shared between the server's event loop thread and whoever controls it (a test in
another thread), so every access goes through one lock.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "STREAM_FAULTS",
    "Chaos",
    "ErrorRate",
    "Fault",
    "Latency",
    "Outage",
    "RateLimit",
    "SlowStream",
    "StallStream",
    "Upstream",
    "UpstreamState",
]


class Upstream(StrEnum):
    """The fake upstreams, each with its own fault switch and counters."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    QDRANT = "qdrant"


class _Fault(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    for_s: float | None = Field(
        default=None, gt=0, description="Seconds until the fault clears itself; null keeps it until cleared."
    )


class ErrorRate(_Fault):
    """A share of requests fail with the upstream's own server error."""

    fault: Literal["error_rate"] = "error_rate"
    rate: float = Field(ge=0, le=1, description="Share of requests that fail, 0 to 1.")
    status: Literal[500, 502, 503, 504, 529] | None = Field(
        default=None,
        description="HTTP status of the failures; null picks the upstream's usual one (529 for Anthropic).",
    )


class Latency(_Fault):
    """Requests wait before they are answered: every one, or a seeded share (a few slow calls)."""

    fault: Literal["latency"] = "latency"
    seconds: float = Field(gt=0, le=600, description="Seconds added before answering.")
    rate: float = Field(default=1.0, ge=0, le=1, description="Share of requests delayed, 0 to 1.")


class Outage(_Fault):
    """Every request fails: a 503 in the upstream's format, or a dropped connection."""

    fault: Literal["outage"] = "outage"
    mode: Literal["error", "reset"] = Field(
        default="error", description="'error' answers 503; 'reset' drops the connection without an answer."
    )


class RateLimit(_Fault):
    """Every request is refused with 429 and a Retry-After header."""

    fault: Literal["rate_limit"] = "rate_limit"
    retry_after_s: float = Field(default=1.0, ge=0, le=3600, description="Seconds announced in Retry-After.")


class SlowStream(_Fault):
    """Server-sent event streams pause between chunks."""

    fault: Literal["slow_stream"] = "slow_stream"
    chunk_delay_s: float = Field(gt=0, le=60, description="Seconds between two chunks of a stream.")


class StallStream(_Fault):
    """Server-sent event streams stop after a few chunks, for a while or for good."""

    fault: Literal["stall_stream"] = "stall_stream"
    after_chunks: int = Field(default=1, ge=0, description="Chunks sent before the stream stalls.")
    stall_s: float | None = Field(
        default=None,
        gt=0,
        description="Seconds the stream stalls before going on; null stalls until the client leaves.",
    )


Fault = Annotated[
    ErrorRate | Latency | Outage | RateLimit | SlowStream | StallStream,
    Field(discriminator="fault"),
]
"""One fault, told apart by its ``fault`` field."""

STREAM_FAULTS = (SlowStream, StallStream)
"""Faults that only shape server-sent event streams."""


class UpstreamState(BaseModel):
    """What ``GET /chaos`` shows for one upstream."""

    fault: Fault | None = Field(description="The active fault, or null.")
    expires_in_s: float | None = Field(description="Seconds until the fault clears itself, or null.")
    requests: int = Field(description="Requests that reached this upstream, faulted or not.")
    failed: int = Field(description="Requests answered with an injected error or a dropped connection.")
    in_flight: int = Field(description="Requests being answered now (a stalled stream stays in flight).")


@dataclass
class _Slot:
    rng: random.Random
    fault: Fault | None = None
    expires_at: float | None = None
    requests: int = 0
    failed: int = 0
    in_flight: int = 0


class Chaos:
    """The fault switches and request counters of all upstreams.

    ``seed`` makes ``error_rate`` deterministic: each time a fault is set, its upstream gets a new
    random generator seeded from ``seed`` and the upstream's name, so the same requests fail on
    every run. ``clock`` is monotonic seconds, for the ``for_s`` expiry.
    """

    def __init__(self, *, seed: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.seed = seed
        self.clock = clock
        self._lock = threading.Lock()
        self._slots = {upstream: _Slot(rng=self._new_rng(upstream)) for upstream in Upstream}

    def set(self, upstream: Upstream, fault: Fault) -> UpstreamState:
        """Make ``upstream`` play ``fault``, replacing the fault it had."""
        with self._lock:
            slot = self._slots[upstream]
            slot.fault = fault
            slot.expires_at = None if fault.for_s is None else self.clock() + fault.for_s
            slot.rng = self._new_rng(upstream)
            return self._state(slot)

    def clear(self, upstream: Upstream) -> UpstreamState:
        """Make ``upstream`` healthy again; its counters stay."""
        with self._lock:
            slot = self._slots[upstream]
            slot.fault = None
            slot.expires_at = None
            return self._state(slot)

    def reset(self) -> None:
        """Clear every fault and zero the request counters (not ``in_flight``: those requests still run)."""
        with self._lock:
            for slot in self._slots.values():
                slot.fault = None
                slot.expires_at = None
                slot.requests = 0
                slot.failed = 0

    def state(self, upstream: Upstream) -> UpstreamState:
        """The fault and counters of one upstream."""
        with self._lock:
            return self._state(self._slots[upstream])

    def states(self) -> dict[Upstream, UpstreamState]:
        """The faults and counters of all upstreams."""
        with self._lock:
            return {upstream: self._state(slot) for upstream, slot in self._slots.items()}

    @contextmanager
    def admit(self, upstream: Upstream) -> Iterator[Fault | None]:
        """Count one request to ``upstream`` while it runs, and say which fault it meets.

        Yields the fault to inject, or None when the request is to be answered normally: an
        ``error_rate`` fault, or a ``latency`` with a ``rate`` under 1, is yielded only for the
        requests its random draw picks.
        """
        with self._lock:
            slot = self._slots[upstream]
            fault = self._active(slot)
            if isinstance(fault, ErrorRate | Latency) and fault.rate < 1 and slot.rng.random() >= fault.rate:
                fault = None
            slot.requests += 1
            if isinstance(fault, ErrorRate | Outage | RateLimit):
                slot.failed += 1
            slot.in_flight += 1
        try:
            yield fault
        finally:
            with self._lock:
                slot.in_flight -= 1

    def _active(self, slot: _Slot) -> Fault | None:
        if slot.expires_at is not None and self.clock() >= slot.expires_at:
            slot.fault = None
            slot.expires_at = None
        return slot.fault

    def _state(self, slot: _Slot) -> UpstreamState:
        fault = self._active(slot)
        remaining = None if slot.expires_at is None else max(0.0, slot.expires_at - self.clock())
        return UpstreamState(
            fault=fault,
            expires_in_s=remaining,
            requests=slot.requests,
            failed=slot.failed,
            in_flight=slot.in_flight,
        )

    def _new_rng(self, upstream: Upstream) -> random.Random:
        return random.Random(f"{self.seed}/{upstream.value}")
