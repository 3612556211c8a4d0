"""Stopping the bot's background loops without cutting a database transaction in half.

Cancelling a task inside a SQLAlchemy transaction makes SQLAlchemy close its connection in a
shielded task of its own; once the engine is disposed, that close can wait forever for a driver
thread that has already stopped (aiosqlite), and the event loop never shuts down. So each loop
holds a lock while it works, and is cancelled only between two units of work.
"""

from __future__ import annotations

import asyncio

__all__ = ["cancel_when_idle"]


async def cancel_when_idle(task: asyncio.Task[None], busy: asyncio.Lock, *, grace: float) -> None:
    """Cancel ``task`` once it is between two units of work (it holds ``busy`` during one); after
    ``grace`` seconds, cancel it anyway."""
    try:
        await asyncio.wait_for(busy.acquire(), grace)
    except TimeoutError:
        acquired = False
    else:
        acquired = True  # asyncio.Lock is fair: the loop cannot take it back before we do
    try:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        if acquired:
            busy.release()
