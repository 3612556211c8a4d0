"""Finite capacity: a concurrency limit and a queue per upstream, off unless configured.

A real provider serves a limited number of requests at once. With a :class:`Capacity`, each
request an upstream answers (normally, or after a ``latency`` fault) holds one of
``concurrency`` slots for ``service_time_s`` plus whatever the fault adds; requests beyond that
wait in a FIFO queue of ``queue`` places, and requests beyond the queue are refused at once with
the upstream's usual server error (529 for Anthropic, 500 for OpenAI). Load beyond
capacity therefore raises latency first and then errors.

A queued request is served even if its client has given up meanwhile, as most servers do: the
slot is spent on an answer nobody reads. That is what turns a retry storm into the metastable
overload of "Metastable Failures in Distributed Systems" (HotOS 2021): the queue stays full of
abandoned requests after the trigger is gone. Injected errors, outages and 429s are answered
without a slot (the provider's front door refuses them).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Capacity", "CapacityLimiter", "CapacityState", "Overloaded"]


class Capacity(BaseModel):
    """How much one upstream can serve."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    concurrency: int = Field(ge=1, description="Requests served at once.")
    queue: int = Field(default=0, ge=0, description="Requests that may wait for a slot; more are refused.")
    service_time_s: float = Field(default=0.0, ge=0, le=60, description="Seconds each answer holds its slot.")


class CapacityState(BaseModel):
    """What ``GET /capacity`` shows for one upstream."""

    capacity: Capacity
    in_service: int = Field(description="Requests holding a slot now.")
    queued: int = Field(description="Requests waiting for a slot now.")
    served: int = Field(description="Requests that got a slot.")
    rejected: int = Field(description="Requests refused because the queue was full.")
    peak_queued: int = Field(description="Most requests that waited at once.")


class Overloaded(Exception):
    """The queue is full: the request is refused."""


@dataclass
class CapacityLimiter:
    """The slots and queue of one upstream. Used from the server's event loop only."""

    capacity: Capacity
    in_service: int = 0
    queued: int = 0
    served: int = 0
    rejected: int = 0
    peak_queued: int = 0

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.capacity.concurrency)

    async def acquire(self) -> None:
        """Take a slot, waiting in the queue if need be; raise :class:`Overloaded` when it is full."""
        if self._slots.locked() or self.queued:
            if self.queued >= self.capacity.queue:
                self.rejected += 1
                raise Overloaded
            self.queued += 1
            self.peak_queued = max(self.peak_queued, self.queued)
            try:
                await self._slots.acquire()
            finally:
                self.queued -= 1
        else:
            await self._slots.acquire()
        self.in_service += 1
        self.served += 1

    async def serve(self) -> None:
        """Spend the service time (in a slot)."""
        if self.capacity.service_time_s > 0:
            await asyncio.sleep(self.capacity.service_time_s)

    def release(self) -> None:
        self.in_service -= 1
        self._slots.release()

    def state(self) -> CapacityState:
        return CapacityState(
            capacity=self.capacity,
            in_service=self.in_service,
            queued=self.queued,
            served=self.served,
            rejected=self.rejected,
            peak_queued=self.peak_queued,
        )
