"""Per-call overhead of circuit breakers, ours and the Python peers, measured in one process.

Every documented way to use one of our breakers, sync and async, each also with the exporter
attached (``breakerpanel+exporter``: ``breakerpanel.exporter.BreakerTelemetry`` reading the breakers, which
counts call durations into histograms and listens for rejections), and the peers (pybreaker,
aiobreaker, purgatory, circuitbreaker) in the usage their README shows first and in their fastest
one. ``path`` names the outcome and the usage:

- ``closed/call``: ``breaker.call(fn)``, ``await breaker.acall(fn)`` (aiobreaker's ``call_async``);
- ``closed/decorator``: a decorated function;
- ``closed/with``, ``closed/async-with``: ``with breaker: fn()``, ``async with breaker: await fn()``
  (purgatory's README first fetches the breaker from its factory on every call:
  ``closed/factory-with``, ``closed/factory-async-with``);
- ``closed/endpoint``: ``endpoint.call(fn)`` through a service > endpoint pair of breakers;
- ``closed/hierarchy``: ``feature.call(endpoint.call, fn)``: a feature (with a fallback) that
  requires the endpoint of a service, the three levels of ``docs/integrations.md``;
- ``closed/transport``: ``client.post(url).read()`` with httpx, through ``BreakerTransport`` or
  bare, to an upstream in this process (a transport that streams a JSON body back: no sockets);
  the same with httpx2 (library ``breakerpanel+httpx2``: the transport under the OpenAI and
  Anthropic SDKs) against bare httpx2;
  ``closed/transport/local-server``: the same to a server in another process (its figures carry
  the server's and the kernel's noise, about 15 us between batches);
  ``closed/transport/second-client``: a second bare client against the first, the transport
  figures' precision;
- ``rejected/open``, ``rejected/forced-open``, ``rejected/half-open-full``,
  ``rejected/parent-open``: a call rejected (and the error caught) through ``call``/``acall``, by
  an open breaker, one forced open, a half-open one whose permitted probes are all in flight, and
  an endpoint whose service is open; ``rejected/open/<usage>``: the open rejection through the
  decorator or a ``with`` block;
- ``floor/<usage>`` (library ``python``): the language's own cost of a usage, with nothing counted
  or recorded: a frame with ``call``'s signature reading the clock before and after the call
  (``floor/call``; two levels: ``floor/nested-call``), a timing wrapper (``floor/decorator``), a
  timing context manager (``floor/with``, ``floor/async-with``), a frame or an enter raising a new
  four-field exception (``floor/rejected``, ``floor/rejected/with``, ``floor/rejected/async-with``).
  Each target's verdict shows the floor of its path: a limit below it is out of reach of any
  pure-Python implementation.

``median_ns`` is the median over the repeats of the mean cost of one call; ``overhead_ns`` is
``median_ns`` minus the same figure for a bare call of the function (sync or async), so it is what
the breaker adds (for the transport rows: the client's CPU time it adds, see ``run_http``). Repeats
run round-robin over the cases, in a new order each time, so a noisy
moment of the machine hits every library alike: compare figures only within one run, as ratios.

Usage: ``python bench/overhead.py [--quick] [--check] [--cpu N] [--output PATH]``. Progress (what
ran, what remains) goes to stderr. ``--check`` exits with status 1 when one of the targets does not
hold. ``--cpu N`` pins the measuring process to CPU ``N`` and the local server to the others: the
scheduler then never moves the measured thread between CPUs in the middle of a batch (on a 2-core
machine, two unpinned runs of the same code differed by 8 to 10% per verdict ratio, median, and
two pinned runs by 2 to 5%). With ``--cpu``, the CPU is written in every row (``cpu``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "overhead.json"
OURS = "breakerpanel"
OURS_HTTPX = "breakerpanel+httpx"
OURS_HTTPX2 = "breakerpanel+httpx2"
# Each HTTP library, bare, and through our transport for it.
HTTP_LIBRARIES = {"httpx": OURS_HTTPX, "httpx2": OURS_HTTPX2}
OURS_EXPORTER = "breakerpanel+exporter"
PEERS = ("pybreaker", "aiobreaker", "purgatory", "circuitbreaker")
# Targets (issue 18), each within one run:
# every path of ours at most this share of the fastest peer's fastest closed path (rejections:
# of the fastest peer's fastest rejection), per mode;
TARGET_RATIO = 0.5
# the decorator and the context managers at most this many times call/acall;
USAGE_TARGET_RATIO = 1.2
# each path with the exporter attached at most this many times the same path without;
EXPORTER_TARGET_RATIO = 1.2
# the three-level hierarchy at most this many times a single breaker's call;
HIERARCHY_TARGET_RATIO = 1.5
# and the httpx transport at most this many nanoseconds per request over bare httpx.
TRANSPORT_TARGET_NS = 3_000
# The transport's paths: to an upstream in this process (the target's), and to a local server.
HTTP_PATHS = ("closed/transport", "closed/transport/local-server")
# A second bare client to the in-process upstream, paired with the first as ours is: its
# "overhead" is what two identical clients differ by in this harness (its noise floor).
HTTP_CONTROL = "closed/transport/second-client"
_keep_alive: list[object] = []  # telemetry objects and held permits live as long as their cases
# Run after each measurement of the breaker cases (untimed): a peer's state that grows with
# every call, dropped.
_after_measuring: list[Callable[[], None]] = []
NEVER = 10**6  # seconds: an open breaker that stays open for the whole run
# As timeit does: a collection would land on whichever case happens to run then.
DISABLE_GC = True


class Injected(Exception):
    """The failure used to trip the breakers."""


def work() -> int:
    return 1


async def awork() -> int:
    return 1


def broken() -> int:
    raise Injected


async def abroken() -> int:
    raise Injected


# A case is a loop: it makes ``n`` calls and returns nothing. Loops are written out per library
# and usage so that each one is exactly what a user of that library would write.
SyncLoop = Callable[[int], None]
AsyncLoop = Callable[[int], Awaitable[None]]


@dataclass
class Case:
    library: str
    version: str
    mode: str  # "sync" | "async"
    path: str  # "closed/<usage>" | "rejected/<reason>[/<usage>]" | "bare"
    loop: SyncLoop | AsyncLoop
    note: str = ""  # the code measured
    readme: bool = False  # a peer's usage that its README shows first


@dataclass
class Row:
    library: str
    version: str
    mode: str
    path: str
    median_ns: float
    overhead_ns: float
    repeats: int
    note: str = ""
    readme: bool = False
    # The transport rows only: the client's CPU time per request (median_ns is wall time), and
    # the median paired difference in wall time (overhead_ns is the one in CPU time).
    cpu_ns: float | None = None
    wall_overhead_ns: float | None = None
    # The CPU the run was pinned to (--cpu), on every row of that run.
    cpu: int | None = None


def _purgatory_traceback_dropper(breaker: Any) -> Callable[[], None]:
    """Something that drops the traceback an open purgatory breaker's rejection has gathered.

    purgatory raises one exception object (its open state) for every rejection, so each raise
    chains its frames onto the same ``__traceback__``: about 1 KB a rejection, never freed (7 GB
    over a full run). Raising it costs the same whatever the chain's length (the new frames go in
    front); the heap it leaves made every later case slower (httpx 1.7x) and the process took
    minutes to exit. The decorator and the factory's breaker of the same name share the state."""

    def drop() -> None:
        breaker.context._state.__traceback__ = None

    return drop


def _trip_sync(call: Callable[[], Any]) -> None:
    for _ in range(5):
        try:
            call()
        except Exception:
            pass


async def _trip_async(call: Callable[[], Awaitable[Any]]) -> None:
    for _ in range(5):
        try:
            await call()
        except Exception:
            pass


# The loops call ``call(*args)`` written out for 0, 1 or 2 arguments, as a user writes it: a
# lambda around the call would add a frame to every call (and one more for each rejection to
# unwind), and ``*args`` a slower call; either would favour the usages with fewer arguments.


def _sync_calls(call: Callable[..., Any], *args: Any) -> SyncLoop:
    if not args:

        def loop0(n: int) -> None:
            for _ in range(n):
                call()

        return loop0
    if len(args) == 1:
        (a,) = args

        def loop1(n: int) -> None:
            for _ in range(n):
                call(a)

        return loop1
    a, b = args

    def loop2(n: int) -> None:
        for _ in range(n):
            call(a, b)

    return loop2


def _sync_rejections(call: Callable[..., Any], *args: Any) -> SyncLoop:
    if not args:

        def loop0(n: int) -> None:
            for _ in range(n):
                try:
                    call()
                except Exception:
                    pass

        return loop0
    (a,) = args

    def loop1(n: int) -> None:
        for _ in range(n):
            try:
                call(a)
            except Exception:
                pass

    return loop1


def _async_calls(call: Callable[..., Awaitable[Any]], *args: Any) -> AsyncLoop:
    if not args:

        async def loop0(n: int) -> None:
            for _ in range(n):
                await call()

        return loop0
    if len(args) == 1:
        (a,) = args

        async def loop1(n: int) -> None:
            for _ in range(n):
                await call(a)

        return loop1
    a, b = args

    async def loop2(n: int) -> None:
        for _ in range(n):
            await call(a, b)

    return loop2


def _async_rejections(call: Callable[..., Awaitable[Any]], *args: Any) -> AsyncLoop:
    if not args:

        async def loop0(n: int) -> None:
            for _ in range(n):
                try:
                    await call()
                except Exception:
                    pass

        return loop0
    (a,) = args

    async def loop1(n: int) -> None:
        for _ in range(n):
            try:
                await call(a)
            except Exception:
                pass

    return loop1


# ---------------------------------------------------------------------- ours


def _bench_config() -> Any:
    from breakerpanel import BreakerConfig

    # A time-based window with slow-call tracking on (the configuration the targets name).
    return BreakerConfig(
        sliding_window_type="time_based",
        sliding_window_size=60,
        minimum_calls=1,
        slow_call_duration=5.0,
        slow_call_rate_threshold=0.5,
        wait_in_open=NEVER,
    )


async def _ours(library: str, prefix: str) -> tuple[list[Case], list[Any]]:
    """Our cases under ``library``; also returns what the exporter should read (breakers, the
    registry)."""
    from breakerpanel import BreakerRegistry, CircuitBreaker, Static

    config = _bench_config()
    v = version(OURS)
    cases: list[Case] = []
    sources: list[Any] = []

    def breaker(name: str, **changes: Any) -> CircuitBreaker:
        b = CircuitBreaker(f"{prefix}{name}", config.replace(**changes) if changes else config)
        sources.append(b)
        return b

    def add(mode: str, path: str, loop: Any, note: str) -> None:
        cases.append(Case(library, v, mode, path, loop, note))

    # --- closed: call, decorator, with
    b = breaker("sync")
    add("sync", "closed/call", _sync_calls(b.call, work), "breaker.call(fn)")
    decorated = b(work)
    add("sync", "closed/decorator", _sync_calls(decorated), "@breaker def fn(); fn()")

    def sync_with(n: int) -> None:
        for _ in range(n):
            with b:
                work()

    add("sync", "closed/with", sync_with, "with breaker: fn()")

    ab = breaker("async")
    add("async", "closed/call", _async_calls(ab.acall, awork), "await breaker.acall(fn)")
    adecorated = ab(awork)
    add("async", "closed/decorator", _async_calls(adecorated), "@breaker async def fn(); await fn()")

    async def async_with(n: int) -> None:
        for _ in range(n):
            async with ab:
                await awork()

    add("async", "closed/async-with", async_with, "async with breaker: await fn()")

    # --- the hierarchy: service > endpoint, and a feature that requires the endpoint
    registry = BreakerRegistry()
    sources.append(registry)
    registry.service(f"{prefix}svc", config)
    endpoint = registry.endpoint(f"{prefix}svc.op", config)
    feature = registry.feature(f"{prefix}feature", required=[f"{prefix}svc.op"], fallback=[Static(0)], config=config)
    ecall, eacall, fcall, facall = endpoint.call, endpoint.acall, feature.call, feature.acall
    add("sync", "closed/endpoint", _sync_calls(ecall, work), "endpoint.call(fn) (service > endpoint)")
    add(
        "sync",
        "closed/hierarchy",
        _sync_calls(fcall, ecall, work),
        "feature.call(endpoint.call, fn) (service > endpoint > feature)",
    )

    add("async", "closed/endpoint", _async_calls(eacall, awork), "await endpoint.acall(fn) (service > endpoint)")
    add(
        "async",
        "closed/hierarchy",
        _async_calls(facall, eacall, awork),
        "await feature.acall(endpoint.acall, fn) (service > endpoint > feature)",
    )

    # --- rejections: open (call, decorator, with), forced open, half-open full, parent open
    for mode in ("sync", "async"):
        opened = breaker(f"{mode}-open")
        if mode == "sync":
            _trip_sync(lambda b=opened: b.call(broken))
            add(mode, "rejected/open", _sync_rejections(opened.call, work), "breaker.call(fn), open")
            add(mode, "rejected/open/decorator", _sync_rejections(opened(work)), "@breaker def fn(); fn(), open")

            def open_with(n: int, b: CircuitBreaker = opened) -> None:
                for _ in range(n):
                    try:
                        with b:
                            work()
                    except Exception:
                        pass

            add(mode, "rejected/open/with", open_with, "with breaker: fn(), open")
        else:
            await _trip_async(lambda b=opened: b.acall(abroken))
            add(mode, "rejected/open", _async_rejections(opened.acall, awork), "await breaker.acall(fn), open")
            add(
                mode,
                "rejected/open/decorator",
                _async_rejections(opened(awork)),
                "@breaker async def fn(); await fn(), open",
            )

            async def open_async_with(n: int, b: CircuitBreaker = opened) -> None:
                for _ in range(n):
                    try:
                        async with b:
                            await awork()
                    except Exception:
                        pass

            add(mode, "rejected/open/async-with", open_async_with, "async with breaker: await fn(), open")
        assert opened.state.value == "open"

        forced = breaker(f"{mode}-forced")
        forced.force_open()
        # Half-open with its one permitted probe in flight (a permit never recorded), for ever.
        full = breaker(
            f"{mode}-half-open-full", wait_in_open=0.001, permitted_calls_in_half_open=1, max_wait_in_half_open=None
        )
        _trip_sync(lambda b=full: b.call(broken))
        await asyncio.sleep(0.01)  # past its open wait: the next admission makes it half-open
        _keep_alive.append(full.acquire())
        assert full.state.value == "half_open"
        parents = BreakerRegistry()
        sources.append(parents)
        service = parents.service(f"{prefix}{mode}-parent", config)
        child = parents.endpoint(f"{prefix}{mode}-parent.op", config)
        _trip_sync(lambda s=service: s.call(broken))
        assert service.state.value == "open"
        for path, target in (
            ("rejected/forced-open", forced),
            ("rejected/half-open-full", full),
            ("rejected/parent-open", child),
        ):
            if mode == "sync":
                add(mode, path, _sync_rejections(target.call, work), f"breaker.call(fn), {path[9:]}")
            else:
                add(mode, path, _async_rejections(target.acall, awork), f"await breaker.acall(fn), {path[9:]}")
    return cases, sources


# ---------------------------------------------------------------------- peers


async def _peers() -> list[Case]:
    cases: list[Case] = []

    def add(library: str, mode: str, path: str, loop: Any, note: str, readme: bool = False) -> None:
        cases.append(Case(library, version(library), mode, path, loop, note, readme))

    # --- pybreaker: sync only (no asyncio support: an async def wrapped by it is not awaited
    # inside the breaker, so every failure counts as a success). README: the decorator first,
    # then call(), then `with breaker.calling():`.
    import pybreaker

    pb, pb_open = pybreaker.CircuitBreaker(fail_max=5), pybreaker.CircuitBreaker(fail_max=1, reset_timeout=NEVER)
    _trip_sync(lambda: pb_open.call(broken))
    add("pybreaker", "sync", "closed/decorator", _sync_calls(pb(work)), "@breaker def fn(); fn()", readme=True)
    add("pybreaker", "sync", "rejected/open/decorator", _sync_rejections(pb_open(work)), "@breaker, open", True)
    pcall, pcall_open = pb.call, pb_open.call
    add("pybreaker", "sync", "closed/call", _sync_calls(pcall, work), "breaker.call(fn)")
    add("pybreaker", "sync", "rejected/open", _sync_rejections(pcall_open, work), "breaker.call(fn), open")

    def pb_with(n: int) -> None:
        for _ in range(n):
            with pb.calling():
                work()

    def pb_with_open(n: int) -> None:
        for _ in range(n):
            try:
                with pb_open.calling():
                    work()
            except Exception:
                pass

    add("pybreaker", "sync", "closed/with", pb_with, "with breaker.calling(): fn()")
    add("pybreaker", "sync", "rejected/open/with", pb_with_open, "with breaker.calling(): fn(), open")

    # --- aiobreaker: README: the decorator of an async def; call()/call_async() otherwise
    import aiobreaker

    def aiob(open_: bool) -> Any:
        if not open_:
            return aiobreaker.CircuitBreaker(fail_max=5)
        return aiobreaker.CircuitBreaker(fail_max=1, timeout_duration=timedelta(seconds=NEVER))

    ab, ab_open = aiob(False), aiob(True)
    _trip_sync(lambda: ab_open.call(broken))
    acall_, acall_open = ab.call, ab_open.call
    add("aiobreaker", "sync", "closed/call", _sync_calls(acall_, work), "breaker.call(fn)")
    add("aiobreaker", "sync", "rejected/open", _sync_rejections(acall_open, work), "breaker.call(fn), open")
    add("aiobreaker", "sync", "closed/decorator", _sync_calls(ab(work)), "@breaker def fn(); fn()")
    add("aiobreaker", "sync", "rejected/open/decorator", _sync_rejections(ab_open(work)), "@breaker, open")
    aab, aab_open = aiob(False), aiob(True)
    await _trip_async(lambda: aab_open.call_async(abroken))
    ca, ca_open = aab.call_async, aab_open.call_async
    add("aiobreaker", "async", "closed/call", _async_calls(ca, awork), "await breaker.call_async(fn)")
    add(
        "aiobreaker",
        "async",
        "rejected/open",
        _async_rejections(ca_open, awork),
        "await breaker.call_async(fn), open",
    )
    add(
        "aiobreaker",
        "async",
        "closed/decorator",
        _async_calls(aab(awork)),
        "@breaker async def fn(); await fn()",
        readme=True,
    )
    add("aiobreaker", "async", "rejected/open/decorator", _async_rejections(aab_open(awork)), "@breaker, open", True)

    # --- purgatory: README: `with factory.get_breaker(name):` (the breaker fetched on every call),
    # then the factory's decorator; fastest: the breaker object fetched once
    from purgatory import AsyncCircuitBreakerFactory, SyncCircuitBreakerFactory

    sfactory = SyncCircuitBreakerFactory(default_threshold=5, default_ttl=NEVER)
    pg, pg_open = sfactory.get_breaker("bench"), sfactory.get_breaker("bench-open", threshold=1)

    def pg_call_open() -> int:
        with pg_open:
            return broken()

    _trip_sync(pg_call_open)

    def pg_with(n: int) -> None:
        for _ in range(n):
            with pg:
                work()

    def pg_with_open(n: int) -> None:
        for _ in range(n):
            try:
                with pg_open:
                    work()
            except Exception:
                pass

    def pg_factory_with(n: int) -> None:
        get = sfactory.get_breaker
        for _ in range(n):
            with get("bench"):
                work()

    def pg_factory_with_open(n: int) -> None:
        get = sfactory.get_breaker
        for _ in range(n):
            try:
                with get("bench-open"):
                    work()
            except Exception:
                pass

    add("purgatory", "sync", "closed/with", pg_with, "with breaker: fn() (fetched once)")
    add("purgatory", "sync", "rejected/open/with", pg_with_open, "with breaker: fn(), open")
    add("purgatory", "sync", "closed/factory-with", pg_factory_with, "with factory.get_breaker(name): fn()", True)
    add("purgatory", "sync", "rejected/open/factory-with", pg_factory_with_open, "factory.get_breaker, open", True)
    add("purgatory", "sync", "closed/decorator", _sync_calls(sfactory("bench")(work)), "@factory(name) def fn()")
    add("purgatory", "sync", "rejected/open/decorator", _sync_rejections(sfactory("bench-open")(work)), "open")
    _after_measuring.append(_purgatory_traceback_dropper(pg_open))

    afactory = AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=NEVER)
    apg, apg_open = await afactory.get_breaker("bench"), await afactory.get_breaker("bench-open", threshold=1)

    async def apg_call_open() -> int:
        async with apg_open:
            return await abroken()

    await _trip_async(apg_call_open)

    async def apg_with(n: int) -> None:
        for _ in range(n):
            async with apg:
                await awork()

    async def apg_with_open(n: int) -> None:
        for _ in range(n):
            try:
                async with apg_open:
                    await awork()
            except Exception:
                pass

    async def apg_factory_with(n: int) -> None:
        get = afactory.get_breaker
        for _ in range(n):
            async with await get("bench"):
                await awork()

    async def apg_factory_with_open(n: int) -> None:
        get = afactory.get_breaker
        for _ in range(n):
            try:
                async with await get("bench-open"):
                    await awork()
            except Exception:
                pass

    add("purgatory", "async", "closed/async-with", apg_with, "async with breaker: await fn() (fetched once)")
    add("purgatory", "async", "rejected/open/async-with", apg_with_open, "async with breaker: await fn(), open")
    add(
        "purgatory",
        "async",
        "closed/factory-async-with",
        apg_factory_with,
        "async with await factory.get_breaker(name): await fn()",
        True,
    )
    add("purgatory", "async", "rejected/open/factory-async-with", apg_factory_with_open, "get_breaker, open", True)
    add("purgatory", "async", "closed/decorator", _async_calls(afactory("bench")(awork)), "@factory(name) async def")
    add("purgatory", "async", "rejected/open/decorator", _async_rejections(afactory("bench-open")(awork)), "open")
    _after_measuring.append(_purgatory_traceback_dropper(apg_open))

    # --- circuitbreaker: the decorator is its documented (and only rejecting) API
    from circuitbreaker import circuit

    cb_closed_fn = circuit(failure_threshold=5, recovery_timeout=NEVER)(work)
    cb_open_fn = circuit(failure_threshold=1, recovery_timeout=NEVER)(broken)
    _trip_sync(cb_open_fn)
    add("circuitbreaker", "sync", "closed/decorator", _sync_calls(cb_closed_fn), "@circuit def fn(); fn()", True)
    add("circuitbreaker", "sync", "rejected/open/decorator", _sync_rejections(cb_open_fn), "@circuit, open", True)
    acb_closed_fn = circuit(failure_threshold=5, recovery_timeout=NEVER)(awork)
    acb_open_fn = circuit(failure_threshold=1, recovery_timeout=NEVER)(abroken)
    await _trip_async(acb_open_fn)
    add("circuitbreaker", "async", "closed/decorator", _async_calls(acb_closed_fn), "@circuit async def fn()", True)
    add("circuitbreaker", "async", "rejected/open/decorator", _async_rejections(acb_open_fn), "@circuit, open", True)
    return cases


# ---------------------------------------------------------------------- floors
#
# What each usage costs in CPython before a breaker does anything: the language's own floor.
# A breaker times every call it lets through (durations feed the slow-call rate and the
# histograms), so a closed path's floor is a frame with the usage's signature that reads the
# clock before and after the call; a rejection's is a frame that raises a new exception with
# the four fields a rejection carries. Nothing is counted, looked up or recorded. A target
# whose limit lies below its floor cannot be met by any pure-Python implementation.

FLOOR = "python"


class Rejected(Exception):
    """What the rejection floors raise: a new exception with four fields, as a rejection has."""


def _floor_cases() -> list[Case]:
    now = time.monotonic
    v = platform.python_version()

    def call(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        now()
        result = fn(*args) if args else fn()
        now()
        return result

    async def acall(fn: Callable[..., Awaitable[Any]], /, *args: Any, **kwargs: Any) -> Any:
        now()
        result = await (fn(*args) if args else fn())
        now()
        return result

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            now()
            result = fn(*args, **kwargs)
            now()
            return result

        return wrapper

    def adecorate(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            now()
            result = await fn(*args, **kwargs)
            now()
            return result

        return wrapper

    class Block:
        """A context manager that times its block (the start kept on the object)."""

        start = 0.0

        def __enter__(self) -> Block:
            self.start = now()
            return self

        def __exit__(self, *exc_info: object) -> None:
            now()

        async def __aenter__(self) -> Block:
            self.start = now()
            return self

        async def __aexit__(self, *exc_info: object) -> None:
            now()

    class Rejecting:
        def __enter__(self) -> None:
            raise Rejected("name", "open", "open", 1.0)

        def __exit__(self, *exc_info: object) -> None:
            pass

        async def __aenter__(self) -> None:
            raise Rejected("name", "open", "open", 1.0)

        async def __aexit__(self, *exc_info: object) -> None:
            pass

    def reject(fn: Callable[[], Any], /, *args: Any, **kwargs: Any) -> Any:
        raise Rejected("name", "open", "open", 1.0)

    async def areject(fn: Callable[[], Awaitable[Any]], /, *args: Any, **kwargs: Any) -> Any:
        raise Rejected("name", "open", "open", 1.0)

    block, rejecting = Block(), Rejecting()

    def with_block(n: int) -> None:
        for _ in range(n):
            with block:
                work()

    async def async_with_block(n: int) -> None:
        for _ in range(n):
            async with block:
                await awork()

    def with_rejecting(n: int) -> None:
        for _ in range(n):
            try:
                with rejecting:
                    work()
            except Exception:
                pass

    async def async_with_rejecting(n: int) -> None:
        for _ in range(n):
            try:
                async with rejecting:
                    await awork()
            except Exception:
                pass

    def floor(mode: str, path: str, loop: Any, note: str) -> Case:
        return Case(FLOOR, v, mode, path, loop, note)

    return [
        floor("sync", "floor/call", _sync_calls(call, work), "call(fn): a frame, the clock read twice"),
        floor("sync", "floor/nested-call", _sync_calls(call, call, work), "call(call, fn): two levels"),
        floor("sync", "floor/decorator", _sync_calls(decorate(work)), "a wrapper reading the clock twice"),
        floor("sync", "floor/with", with_block, "with block: fn(), the clock read on enter and exit"),
        floor("sync", "floor/rejected", _sync_rejections(reject, work), "call(fn) raising a new exception"),
        floor("sync", "floor/rejected/with", with_rejecting, "with block: fn(), its enter raising"),
        floor("async", "floor/call", _async_calls(acall, awork), "await acall(fn): a coroutine, the clock twice"),
        floor("async", "floor/nested-call", _async_calls(acall, acall, awork), "await acall(acall, fn)"),
        floor("async", "floor/decorator", _async_calls(adecorate(awork)), "an async wrapper, the clock twice"),
        floor("async", "floor/async-with", async_with_block, "async with block: await fn(), the clock twice"),
        floor("async", "floor/rejected", _async_rejections(areject, awork), "await acall(fn) raising"),
        floor("async", "floor/rejected/async-with", async_with_rejecting, "async with block, its enter raising"),
    ]


async def build_cases() -> list[Case]:
    _after_measuring.clear()  # the hooks of the cases built before, if any
    cases: list[Case] = []

    # --- bare calls: the baseline subtracted from every figure
    def bare_sync(n: int) -> None:
        for _ in range(n):
            work()

    async def bare_async(n: int) -> None:
        for _ in range(n):
            await awork()

    cases.append(Case("bare", platform.python_version(), "sync", "bare", bare_sync))
    cases.append(Case("bare", platform.python_version(), "async", "bare", bare_async))

    ours, _ = await _ours(OURS, "")
    exported, sources = await _ours(OURS_EXPORTER, "exported-")
    from breakerpanel.exporter import BreakerTelemetry

    # The same cases, every breaker read by the exporter (durations counted, span events on).
    _keep_alive.append(BreakerTelemetry(*sources, service_name="bench", otlp=False))
    return cases + _floor_cases() + ours + exported + await _peers()


# ---------------------------------------------------------------------- httpx


@contextlib.contextmanager
def local_http_server(cpus: set[int] | None = None) -> Iterator[str]:
    """bench/_http_server.py in its own process (so it does not share our GIL), on ``cpus`` when
    given (else where the scheduler puts it); its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("_http_server.py")), str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        if cpus:
            os.sched_setaffinity(server.pid, cpus)  # before it serves: the harness's CPU is not its
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)
        if server.stdout is not None:
            server.stdout.close()


UPSTREAM_BODY = b'{"id": "chatcmpl-1", "choices": [{"message": {"content": "ok"}}]}'


def _upstream_transports(httpx: Any) -> tuple[Any, Any]:
    """An upstream inside this process: transports (sync, async) of the module ``httpx`` (httpx
    or httpx2) that answer every request with a 200 and a streamed JSON body, as a network
    transport's response is (a stream read chunk by chunk, then closed), without sockets, kernel
    or a server process in the figures."""

    class Body(httpx.SyncByteStream, httpx.AsyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield UPSTREAM_BODY

        async def __aiter__(self) -> Any:
            yield UPSTREAM_BODY

        def close(self) -> None:
            pass

        async def aclose(self) -> None:
            pass

    headers = {"content-type": "application/json", "content-length": str(len(UPSTREAM_BODY))}

    class Upstream(httpx.BaseTransport):
        def handle_request(self, request: Any) -> Any:
            return httpx.Response(200, headers=headers, stream=Body(), request=request)

    class AsyncUpstream(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: Any) -> Any:
            return httpx.Response(200, headers=headers, stream=Body(), request=request)

    return Upstream(), AsyncUpstream()


def build_http_cases(url: str) -> tuple[list[Case], Callable[[], Awaitable[None]]]:
    """httpx bare and through our transport, sync and async, to an upstream in this process
    (``closed/transport``) and to a local server (``closed/transport/local-server``), and httpx2
    the same way to the upstream in this process. Returns the cases and a coroutine function that
    closes the clients."""
    import httpx
    import httpx2

    from breakerpanel import BreakerConfig, BreakerRegistry
    from breakerpanel.integrations import Route, Router
    from breakerpanel.integrations import httpx2 as ours2
    from breakerpanel.integrations.httpx import AsyncBreakerTransport, BreakerTransport

    registry = BreakerRegistry()
    registry.service("local")
    endpoint = registry.endpoint(
        "local.echo", BreakerConfig(sliding_window_type="time_based", sliding_window_size=60, slow_call_duration=5.0)
    )
    router = Router([Route(endpoint, host="127.0.0.1", path="/echo")])
    upstream, async_upstream = _upstream_transports(httpx)
    upstream2, async_upstream2 = _upstream_transports(httpx2)
    in_process = "http://127.0.0.1:9/echo"  # never dialled: the upstream is the transport
    clients: dict[tuple[str, str, str], Any] = {
        ("httpx", "sync", "closed/transport"): httpx.Client(transport=upstream),
        ("httpx", "sync", HTTP_CONTROL): httpx.Client(transport=upstream),
        (OURS_HTTPX, "sync", "closed/transport"): httpx.Client(transport=BreakerTransport(router, upstream)),
        ("httpx", "async", "closed/transport"): httpx.AsyncClient(transport=async_upstream),
        ("httpx", "async", HTTP_CONTROL): httpx.AsyncClient(transport=async_upstream),
        (OURS_HTTPX, "async", "closed/transport"): httpx.AsyncClient(
            transport=AsyncBreakerTransport(router, async_upstream)
        ),
        ("httpx", "sync", "closed/transport/local-server"): httpx.Client(),
        (OURS_HTTPX, "sync", "closed/transport/local-server"): httpx.Client(transport=BreakerTransport(router)),
        ("httpx", "async", "closed/transport/local-server"): httpx.AsyncClient(),
        (OURS_HTTPX, "async", "closed/transport/local-server"): httpx.AsyncClient(
            transport=AsyncBreakerTransport(router)
        ),
        ("httpx2", "sync", "closed/transport"): httpx2.Client(transport=upstream2),
        ("httpx2", "sync", HTTP_CONTROL): httpx2.Client(transport=upstream2),
        (OURS_HTTPX2, "sync", "closed/transport"): httpx2.Client(transport=ours2.BreakerTransport(router, upstream2)),
        ("httpx2", "async", "closed/transport"): httpx2.AsyncClient(transport=async_upstream2),
        ("httpx2", "async", HTTP_CONTROL): httpx2.AsyncClient(transport=async_upstream2),
        (OURS_HTTPX2, "async", "closed/transport"): httpx2.AsyncClient(
            transport=ours2.AsyncBreakerTransport(router, async_upstream2)
        ),
    }

    def sync_loop(client: Any, target: str) -> SyncLoop:
        def loop(n: int) -> None:
            for _ in range(n):
                client.post(target, content=b"{}").read()

        return loop

    def async_loop(client: Any, target: str) -> AsyncLoop:
        async def loop(n: int) -> None:
            for _ in range(n):
                response = await client.post(target, content=b"{}")
                await response.aread()

        return loop

    cases = []
    for (library, mode, path), client in clients.items():
        local = path.endswith("local-server")
        target = f"{url}/echo" if local else in_process
        note = "client.post(url).read() " + ("to a local server" if local else "to an upstream in this process")
        if path == HTTP_CONTROL:
            note += ", a second client (the harness's noise floor)"
        loop = sync_loop(client, target) if mode == "sync" else async_loop(client, target)
        if library in HTTP_LIBRARIES:
            cases.append(Case(library, version(library), mode, path, loop, note))
        else:
            note += f" through {library.removeprefix(OURS + '+')}'s BreakerTransport"
            cases.append(Case(library, version(OURS), mode, path, loop, note))

    async def close() -> None:
        for client in clients.values():
            if isinstance(client, httpx.AsyncClient | httpx2.AsyncClient):
                await client.aclose()
            else:
                client.close()
        assert endpoint.snapshot().totals.successes > 0  # the requests did go through the breaker

    return cases, close


# ---------------------------------------------------------------------- measuring


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def measure(case: Case, n: int) -> float:
    """Mean nanoseconds per call over ``n`` calls."""
    if DISABLE_GC:
        gc.disable()
    try:
        start = time.perf_counter_ns()
        if case.mode == "async":
            await case.loop(n)  # type: ignore[misc]
        else:
            case.loop(n)
        elapsed = time.perf_counter_ns() - start
    finally:
        gc.enable()
    return elapsed / n


async def measure_with_cpu(case: Case, n: int) -> tuple[float, float]:
    """Mean wall and CPU (this thread's) nanoseconds per call over ``n`` calls."""
    cpu_start = time.thread_time_ns()
    wall = await measure(case, n)
    return wall, (time.thread_time_ns() - cpu_start) / n


def pin(cpu: int) -> set[int]:
    """Pin the calling thread, and so the threads it starts after, to ``cpu`` (``main`` calls it
    before any other thread starts: the whole process); the CPUs left for the local server (the
    others this process may run on, or ``cpu`` itself on a one-CPU machine). A CPU this process
    may not use is a ``ValueError`` naming the ones it may."""
    allowed = os.sched_getaffinity(0)
    if cpu not in allowed:
        raise ValueError(f"--cpu {cpu}: this process may run on CPUs {', '.join(map(str, sorted(allowed)))} only")
    os.sched_setaffinity(0, {cpu})
    return (allowed - {cpu}) or {cpu}


async def run(
    quick: bool,
    calls: int | None = None,
    repeats: int | None = None,
    http_requests: int | None = None,
    server_cpus: set[int] | None = None,
) -> list[Row]:
    # The transport first, in a heap that the breaker cases have not grown (see
    # _purgatory_traceback_dropper).
    with local_http_server(server_cpus) as url:
        rows = await run_http(url, quick, http_requests, repeats)
    return await run_breakers(quick, calls, repeats) + rows


async def run_http(url: str, quick: bool, requests: int | None, repeats: int | None) -> list[Row]:
    """Rows for httpx and httpx2 through our transports against the bare library, to an upstream in
    this process (``closed/transport``: the target's rows) and, for httpx, to a local server:
    ``overhead_ns`` is the CPU time of the client's thread that ours adds per request (the bare
    rows carry 0), ``wall_overhead_ns`` the wall time.

    The transport does no I/O and waits on nothing, so what it adds is work in the client's
    thread. To a local server, a request takes a few hundred microseconds, most of it in the
    server's process and the kernel, and both its wall and its CPU time (socket calls, and when
    they block) vary from batch to batch by more than that work: the in-process upstream leaves
    only httpx and our transport in the figures. Each pair of batches alternates who goes first,
    and each figure is the median of the paired differences (drift cancels within a pair).
    ``closed/transport/second-client`` pairs a second bare client with the first the same way:
    what two identical clients differ by here (their objects sit elsewhere in the heap), the
    precision of the transport's figures."""
    cases, close = build_http_cases(url)
    batch = requests or 100
    pairs = repeats or (25 if quick else 61)
    by_key = {(c.library, c.mode, c.path): c for c in cases}
    rows: list[Row] = []
    started = time.monotonic()
    try:
        for case in cases:
            await measure(case, min(20, batch))  # warm up the connections
        # (the bare library, the one paired with it, mode, path), wherever both were built
        combos = [
            (bare_library, library, mode, path)
            for bare_library, ours_library in HTTP_LIBRARIES.items()
            for path in (*HTTP_PATHS, HTTP_CONTROL)
            for mode in ("sync", "async")
            for library in (bare_library if path == HTTP_CONTROL else ours_library,)
            if (library, mode, path) in by_key
        ]
        paired = {
            key
            for b, o, mode, path in combos
            for key in ((b, mode, "closed/transport" if path == HTTP_CONTROL else path), (o, mode, path))
        }
        assert paired == set(by_key), f"HTTP cases built but not measured: {set(by_key) - paired}"
        for m, (bare_library, library, mode, path) in enumerate(combos):
            base = "closed/transport" if path == HTTP_CONTROL else path
            bare, ours = by_key[(bare_library, mode, base)], by_key[(library, mode, path)]
            walls: dict[str, list[float]] = {"bare": [], "ours": [], "diff": []}
            cpus: dict[str, list[float]] = {"bare": [], "ours": [], "diff": []}
            for i in range(pairs):
                first, second = (bare, ours) if i % 2 == 0 else (ours, bare)  # alternate who goes first
                a = await measure_with_cpu(first, batch)
                b = await measure_with_cpu(second, batch)
                (wall_bare, cpu_bare), (wall_ours, cpu_ours) = (a, b) if first is bare else (b, a)
                for figures, t_bare, t_ours in ((walls, wall_bare, wall_ours), (cpus, cpu_bare, cpu_ours)):
                    figures["bare"].append(t_bare)
                    figures["ours"].append(t_ours)
                    figures["diff"].append(t_ours - t_bare)
                done = m * pairs + i + 1
                if done % 10 == 0 or done == len(combos) * pairs:
                    _eta(
                        "http",
                        done,
                        len(combos) * pairs,
                        started,
                        f"{library} {mode} {path}: pairs of {batch} requests",
                    )
            for case, who in ((bare, "bare"), (ours, "ours")) if path != HTTP_CONTROL else ((ours, "ours"),):
                theirs = who == "bare"
                rows.append(
                    Row(
                        case.library,
                        case.version,
                        mode,
                        case.path,
                        round(statistics.median(walls[who]), 1),
                        0.0 if theirs else round(statistics.median(cpus["diff"]), 1),
                        pairs,
                        case.note,
                        cpu_ns=round(statistics.median(cpus[who]), 1),
                        wall_overhead_ns=0.0 if theirs else round(statistics.median(walls["diff"]), 1),
                    )
                )
    finally:
        await close()
    return rows


def _eta(stage: str, done: int, total: int, started: float, what: str) -> None:
    elapsed = time.monotonic() - started
    left = elapsed / done * (total - done) if done else 0.0
    progress(f"[{stage}] {done}/{total} {what}: {elapsed:.0f}s elapsed, about {left:.0f}s left")


def _drop_grown_state() -> None:
    for drop in _after_measuring:
        drop()


async def _sample(cases: list[Case], calls: int, repeats: int, warmup: int) -> dict[int, float]:
    """Median over ``repeats`` of the mean cost per call, repeats in a new order each time."""
    samples: dict[int, list[float]] = {i: [] for i in range(len(cases))}
    started = time.monotonic()
    for case in cases:  # warm up (and check that every loop runs)
        await measure(case, warmup)
        _drop_grown_state()
    progress(f"[breakers] warmed up {len(cases)} cases in {time.monotonic() - started:.1f}s")
    order = list(range(len(cases)))
    shuffle = random.Random(20261126).shuffle  # seeded: the same order sequence every run
    started = time.monotonic()
    for r in range(repeats):
        # A new order each repeat: what runs just before a case (caches, branch predictors) varies
        # instead of favouring the same library every time.
        shuffle(order)
        gc.collect()  # once per round: a full collection takes longer than many measurements
        for i in order:
            samples[i].append(await measure(cases[i], calls))
            _drop_grown_state()
        _eta("breakers", r + 1, repeats, started, f"rounds of {len(cases)} cases x {calls} calls")
    return {i: statistics.median(s) for i, s in samples.items()}


async def run_breakers(quick: bool, calls: int | None = None, repeats: int | None = None) -> list[Row]:
    progress("[breakers] building the cases")
    cases = await build_cases()
    default_calls, default_repeats = (20_000, 11) if quick else (50_000, 21)
    calls, repeats = calls or default_calls, repeats or default_repeats
    medians = await _sample(cases, calls, repeats, warmup=min(2_000, calls))
    bare = {case.mode: medians[i] for i, case in enumerate(cases) if case.path == "bare"}
    return [
        Row(
            case.library,
            case.version,
            case.mode,
            case.path,
            round(medians[i], 1),
            0.0 if case.path == "bare" else round(medians[i] - bare[case.mode], 1),
            repeats,
            case.note,
            case.readme,
        )
        for i, case in enumerate(cases)
    ]


# ---------------------------------------------------------------------- targets


@dataclass
class Verdict:
    target: str
    mode: str
    path: str
    ours_ns: float
    baseline: str
    baseline_ns: float
    ratio: float
    limit: float
    # The language's own cost of this usage in this run (the floor row it maps to), where one
    # applies: a limit below it is out of reach of any pure-Python implementation.
    floor_ns: float | None = None

    @property
    def holds(self) -> bool:
        return self.ratio <= self.limit

    @property
    def limit_ns(self) -> float:
        return self.limit * self.baseline_ns

    @property
    def below_floor(self) -> bool:
        return self.floor_ns is not None and self.limit_ns < self.floor_ns

    def line(self) -> str:
        floor = "" if self.floor_ns is None else f"; floor {self.floor_ns:.0f} ns"
        if self.below_floor:
            floor += f" > the limit, {self.limit_ns:.0f} ns"
        return (
            f"  {'PASS' if self.holds else 'FAIL'}  {self.ratio:5.2f}x (<= {self.limit:g}x)  {self.mode:<5} "
            f"{self.path:<28} {self.ours_ns:7.0f} ns vs {self.baseline} {self.baseline_ns:.0f} ns{floor}"
        )


def floor_path(path: str) -> str | None:
    """The floor row (``floor/...``) that bounds a path of ours from below, or None."""
    if path.startswith("rejected/"):
        usage = path.removeprefix("rejected/open/") if path.startswith("rejected/open/") else ""
        return f"floor/rejected/{usage}" if usage in ("with", "async-with") else "floor/rejected"
    usage = path.removeprefix("closed/")
    if usage in ("call", "endpoint"):
        return "floor/call"
    if usage == "hierarchy":
        return "floor/nested-call"
    if usage in ("decorator", "with", "async-with"):
        return f"floor/{usage}"
    return None


def _find(rows: list[Row], library: str, mode: str, path: str) -> Row | None:
    return next((r for r in rows if r.library == library and r.mode == mode and r.path == path), None)


def targets(rows: list[Row]) -> list[Verdict]:
    """Every target of issue 18 that this run's rows can answer, one verdict per row of ours."""
    verdicts: list[Verdict] = []
    for mode in ("sync", "async"):
        mine = [r for r in rows if r.library == OURS and r.mode == mode]
        peers = [r for r in rows if r.library in PEERS and r.mode == mode]
        closed_peers = [r for r in peers if r.path.startswith("closed/")]
        rejecting_peers = [r for r in peers if r.path.startswith("rejected/")]
        # Ours against the fastest peer: closed paths against its fastest closed path,
        # rejections against its fastest rejection.
        for row in mine:
            pool = closed_peers if row.path.startswith("closed/") else rejecting_peers
            if not pool:
                continue
            best = min(pool, key=lambda r: r.overhead_ns)
            verdicts.append(
                Verdict(
                    "peers",
                    mode,
                    row.path,
                    row.overhead_ns,
                    f"{best.library} {best.path}",
                    best.overhead_ns,
                    row.overhead_ns / best.overhead_ns,
                    TARGET_RATIO,
                )
            )
        # The other usages against call/acall.
        call = _find(rows, OURS, mode, "closed/call")
        for path in ("closed/decorator", "closed/with", "closed/async-with"):
            row = _find(rows, OURS, mode, path)
            if row is not None and call is not None:
                verdicts.append(
                    Verdict(
                        "usage",
                        mode,
                        path,
                        row.overhead_ns,
                        f"{OURS} closed/call",
                        call.overhead_ns,
                        row.overhead_ns / call.overhead_ns,
                        USAGE_TARGET_RATIO,
                    )
                )
        hierarchy = _find(rows, OURS, mode, "closed/hierarchy")
        if hierarchy is not None and call is not None:
            verdicts.append(
                Verdict(
                    "hierarchy",
                    mode,
                    hierarchy.path,
                    hierarchy.overhead_ns,
                    f"{OURS} closed/call",
                    call.overhead_ns,
                    hierarchy.overhead_ns / call.overhead_ns,
                    HIERARCHY_TARGET_RATIO,
                )
            )
        # Each path with the exporter attached against the same path without.
        for row in (r for r in rows if r.library == OURS_EXPORTER and r.mode == mode):
            plain = _find(rows, OURS, mode, row.path)
            if plain is not None:
                verdicts.append(
                    Verdict(
                        "exporter",
                        mode,
                        row.path,
                        row.overhead_ns,
                        OURS,
                        plain.overhead_ns,
                        row.overhead_ns / plain.overhead_ns,
                        EXPORTER_TARGET_RATIO,
                    )
                )
        for bare_library, ours_library in HTTP_LIBRARIES.items():
            transport = _find(rows, ours_library, mode, "closed/transport")
            control = _find(rows, bare_library, mode, HTTP_CONTROL)
            if transport is None:
                continue
            noise = "" if control is None else f" (a second bare client: {control.overhead_ns:+.0f} ns)"
            verdicts.append(
                Verdict(
                    "transport",
                    mode,
                    transport.path,
                    transport.overhead_ns,
                    f"target over {bare_library}{noise}",
                    TRANSPORT_TARGET_NS,
                    transport.overhead_ns / TRANSPORT_TARGET_NS,
                    1.0,
                )
            )
    floors = {(r.mode, r.path): r.overhead_ns for r in rows if r.library == FLOOR}
    for verdict in verdicts:
        if verdict.target in ("peers", "usage", "hierarchy"):
            floor = floor_path(verdict.path)
            verdict.floor_ns = None if floor is None else floors.get((verdict.mode, floor))
    return verdicts


def print_table(rows: list[Row]) -> None:
    """Rows grouped by mode and path (like with like), each with its ratio to the fastest peer on
    that same path."""
    width = max(len("library"), *(len(r.library) for r in rows)) + 2
    pwidth = max(len("path"), *(len(r.path) for r in rows)) + 2
    header = f"{'mode':<7}{'path':<{pwidth}}{'library':<{width}}{'version':<10}{'median ns':>11}{'overhead ns':>13}"
    print(header + f"{'vs peer':>9}  code")
    for mode in ("sync", "async"):
        for path in sorted({r.path for r in rows if r.mode == mode}):
            group = sorted((r for r in rows if r.mode == mode and r.path == path), key=lambda r: r.overhead_ns)
            peers = [r for r in group if r.library in PEERS]
            best = min((r.overhead_ns for r in peers), default=None)
            for r in group:
                ratio = f"{r.overhead_ns / best:8.2f}x" if best and r.library not in PEERS else " " * 9
                code = r.note + (" [README first]" if r.readme else "")
                print(
                    f"{r.mode:<7}{r.path:<{pwidth}}{r.library:<{width}}{r.version:<10}"
                    f"{r.median_ns:>11.0f}{r.overhead_ns:>13.0f}{ratio}  {code}"
                )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer calls and repeats (about a minute)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target does not hold")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"where to write the JSON (default {RESULTS})")
    parser.add_argument(
        "--cpu",
        type=int,
        metavar="N",
        help="pin the measuring process to CPU N and the local server to the others (repeatable figures)",
    )
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", DeprecationWarning)  # peers' own deprecations are not ours to fix

    server_cpus = None
    if args.cpu is not None:
        try:
            server_cpus = pin(args.cpu)
        except ValueError as exc:
            parser.error(str(exc))
        print(f"measuring on CPU {args.cpu}, the local server on {sorted(server_cpus)}", file=sys.stderr)
    started = time.monotonic()
    rows = asyncio.run(run(args.quick, server_cpus=server_cpus))
    for row in rows:
        row.cpu = args.cpu
    print_table(rows)
    print(
        "\npybreaker has no asyncio support (an async def wrapped by it counts every failure as a success): sync only."
    )
    verdicts = targets(rows)
    titles = {
        "peers": f"Ours at most {TARGET_RATIO}x the fastest peer's fastest closed path (rejections: its fastest "
        "rejection)",
        "usage": f"The decorator and the context managers at most {USAGE_TARGET_RATIO}x call/acall",
        "hierarchy": f"Service > endpoint > feature at most {HIERARCHY_TARGET_RATIO}x a single breaker",
        "exporter": f"With the exporter attached at most {EXPORTER_TARGET_RATIO}x without",
        "transport": f"The httpx and httpx2 transports at most {TRANSPORT_TARGET_NS / 1000:g} us per request over "
        "the bare library",
    }
    for target, title in titles.items():
        print(f"\n{title} (overheads, this run):")
        for verdict in verdicts:
            if verdict.target == target:
                print(verdict.line())
    held = sum(v.holds for v in verdicts)
    unreachable = sum(v.below_floor for v in verdicts if not v.holds)
    print(
        f"\n{held} of {len(verdicts)} targets hold; of the {len(verdicts) - held} others, {unreachable} have a "
        "limit below the language's own floor for that usage (the floor/ rows)"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    written = [{k: v for k, v in asdict(r).items() if v is not None} for r in rows if r.library != "bare"]
    args.output.write_text(json.dumps(written, indent=2) + "\n")
    print(f"\nwrote {args.output} in {time.monotonic() - started:.1f}s (Python {sys.version.split()[0]})")
    return 1 if args.check and held < len(verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
