"""The load loop: ``POST /v1/ask`` at a fixed rate, open loop, with a bound on requests in flight.

Open loop: request *n* is sent at ``start + n / rps`` whether or not earlier ones have answered,
as real users do, so a slow service shows up as latency (and, past ``max_in_flight``, as dropped
requests) instead of quietly lowering the rate, which a closed loop would do.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import signal
import time
from collections.abc import Callable, Sequence

import httpx

from .questions import QUESTIONS
from .report import LoadReport, Tally

__all__ = ["positive_number", "run_load", "stop_on_signals"]


def positive_number(text: str) -> float:
    """An argparse type: a finite number above 0 (``--rps``: NaN or inf would never send, or
    send everything at once and never yield)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number (got {text!r})")
    return value


def stop_on_signals() -> asyncio.Event:
    """An event that SIGINT (Ctrl-C) or SIGTERM sets, in the running loop: given to
    :func:`run_load` as ``stop``, they end the load as its duration would (the answers due are
    awaited, the report is whole) instead of cancelling the requests in flight."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def run_load(
    url: str,
    rps: float,
    duration: float | None = None,
    on_progress: Callable[[LoadReport], None] | None = None,
    *,
    max_in_flight: int = 64,
    timeout_s: float = 30.0,
    progress_interval_s: float = 1.0,
    questions: Sequence[str] = QUESTIONS,
    seed: int | None = None,
    stop: asyncio.Event | None = None,
) -> LoadReport:
    """Ask ``url``'s ``/v1/ask`` ``rps`` times a second for ``duration`` seconds (None or 0: until
    ``stop`` is set), calling ``on_progress`` every ``progress_interval_s``; return the report
    once the requests in flight have finished."""
    if not (math.isfinite(rps) and rps > 0):  # NaN and inf: no request would ever be due, or all at once
        raise ValueError(f"rps must be a positive number (got {rps})")
    if max_in_flight < 1:
        raise ValueError(f"max_in_flight must be at least 1 (got {max_in_flight})")
    if not questions:
        raise ValueError("questions must not be empty")
    stop = stop if stop is not None else asyncio.Event()
    tally = Tally()
    pick = random.Random(seed).choice
    started = time.monotonic()

    def report() -> LoadReport:
        return tally.report(url, rps, time.monotonic() - started)

    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
    async with httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout_s, limits=limits) as client:
        in_flight: set[asyncio.Task[None]] = set()
        progress = asyncio.create_task(_report_progress(report, on_progress, progress_interval_s))
        try:
            sent = 0
            while not stop.is_set():
                due = started + sent / rps
                if duration and due >= started + duration:
                    break
                delay = due - time.monotonic()
                if delay > 0:
                    # Sleep until the next request is due, or until told to stop.
                    try:
                        await asyncio.wait_for(stop.wait(), delay)
                        break
                    except TimeoutError:
                        pass
                sent += 1
                if len(in_flight) >= max_in_flight:
                    tally.dropped += 1
                    continue
                tally.sent += 1
                task = asyncio.create_task(_ask(client, pick(questions), tally))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            if in_flight:
                await asyncio.gather(*in_flight)
        finally:
            progress.cancel()
            for task in in_flight:
                task.cancel()
    final = report()
    if on_progress is not None:
        on_progress(final)
    return final


async def _ask(client: httpx.AsyncClient, question: str, tally: Tally) -> None:
    began = time.monotonic()
    try:
        response = await client.post("/v1/ask", json={"question": question})
    except httpx.HTTPError as exc:
        tally.failed(type(exc).__name__)
        return
    latency = time.monotonic() - began
    if response.status_code != 200:
        tally.failed(f"http_{response.status_code}", latency)
        return
    try:
        served_by = str(response.json()["served_by"])
    except (ValueError, KeyError, TypeError):
        tally.failed("bad_body", latency)
        return
    tally.answered(served_by, latency)


async def _report_progress(
    report: Callable[[], LoadReport], on_progress: Callable[[LoadReport], None] | None, interval_s: float
) -> None:
    if on_progress is None:
        return
    while True:
        await asyncio.sleep(interval_s)
        on_progress(report())
