"""Active health probes: ask an open breaker's dependency whether it is back, instead of waiting.

A :class:`ProbeRunner` watches one breaker (a listener of state changes only, so calls cost the
same). While the breaker is open it runs the probe, an async callable, after a jittered delay
that grows with each failure (``interval * multiplier ** n``, at most ``max_interval``, minus up
to ``jitter`` of it at random so replicas do not probe together):

- the probe succeeds: the breaker goes half-open at once (reason ``probe_succeeded``) and its
  usual half-open probes (real calls) decide whether it closes. So do its *dependents* that are
  open: by default a service's endpoints; built from a configuration, also the features that
  need the service or one of its endpoints. They tripped on the same outage and would otherwise
  keep the recovered dependency out until their own waits end, however soon the probe found it
  back. Dependents opened by a rate limit, forced open or disabled are left as they are;
- the probe fails (raises, returns ``False`` or overruns ``timeout``): the open wait is extended
  to the next probe, but never beyond ``max_extension`` seconds past the breaker's own wait, so a
  broken probe cannot keep a recovered dependency out forever.

A breaker opened by a rate limit (429 with Retry-After) is not probed: the server said when.

Ready-made probes: :func:`http_probe` (GET a health URL with httpx), :func:`redis_probe`
(``PING``), :func:`asyncpg_probe` and :func:`sqlalchemy_probe` (``SELECT 1``); any cheap provider
call works as is (``lambda: client.models.list()``).

The runner sleeps on the breaker's clock, so with a :class:`~breakerpanel.ManualClock` tests move time
by hand; the probe itself runs on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import random
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any

from ._clock import Clock
from ._events import BreakerControl, BreakerListener, StateChanged
from ._exceptions import BreakerConfigError
from ._state import State, TransitionReason

__all__ = [
    "Probe",
    "ProbeRunner",
    "asyncpg_probe",
    "http_probe",
    "probe_runner",
    "redis_probe",
    "running_probes",
    "sqlalchemy_probe",
]

logger = logging.getLogger("breakerpanel")

#: A health check: passes unless it raises or returns ``False``.
Probe = Callable[[], Awaitable[object]]

_RUNNERS: weakref.WeakKeyDictionary[BreakerControl, ProbeRunner] = weakref.WeakKeyDictionary()


def probe_runner(breaker: BreakerControl) -> ProbeRunner | None:
    """The probe runner attached to ``breaker``, if any."""
    return _RUNNERS.get(breaker)


async def clock_sleep(clock: Clock, delay: float) -> None:
    """Sleep ``delay`` seconds of ``clock`` (a manual clock's timers fire when it is advanced)."""
    loop = asyncio.get_running_loop()
    woken = loop.create_future()

    def wake() -> None:
        def resolve() -> None:
            if not woken.done():
                woken.set_result(None)

        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(resolve)

    handle = clock.call_later(delay, wake)
    try:
        await woken
    finally:
        handle.cancel()


class ProbeRunner(BreakerListener):
    """Probes ``breaker``'s dependency while the breaker is open. Start it inside the event loop
    (``start()``, or ``async with runner:``); one runner per breaker.

    ``results`` counts the probes by outcome (``success``, ``failure``), for the exporter.
    """

    def __init__(
        self,
        breaker: BreakerControl,
        probe: Probe,
        *,
        interval: float = 1.0,
        multiplier: float = 2.0,
        max_interval: float = 30.0,
        jitter: float = 0.2,
        timeout: float = 5.0,
        max_extension: float = 300.0,
        rng: Callable[[], float] = random.random,
        dependents: Callable[[], Iterable[BreakerControl]] | None = None,
    ) -> None:
        if not callable(probe):
            raise BreakerConfigError("probe", f"expected an async callable (got {type(probe).__name__})")
        for key, value, low in (
            ("probe.interval", interval, 0.0),
            ("probe.max_interval", max_interval, 0.0),
            ("probe.timeout", timeout, 0.0),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or not low < value < math.inf:
                raise BreakerConfigError(key, f"must be a positive number of seconds (got {value!r})")
        if not max_interval >= interval:
            raise BreakerConfigError(
                "probe.max_interval", f"must be at least interval ({interval}) (got {max_interval})"
            )
        if not 1 <= multiplier < math.inf:
            raise BreakerConfigError("probe.multiplier", f"must be at least 1 (got {multiplier!r})")
        if not 0 <= jitter <= 1:
            raise BreakerConfigError("probe.jitter", f"must be within [0, 1] (got {jitter!r})")
        if not 0 <= max_extension < math.inf:
            raise BreakerConfigError("probe.max_extension", f"must be a number of seconds >= 0 (got {max_extension!r})")
        if breaker in _RUNNERS:
            raise BreakerConfigError("probe", f"breaker {breaker.name!r} already has a probe")
        # Held weakly: _RUNNERS keeps runners by breaker, and a runner that held its breaker would
        # keep it (and its task) alive for good. A breaker that is dropped stops its runner.
        self._breaker = weakref.ref(breaker, self._breaker_dropped)
        self._name = breaker.name
        self.probe = probe
        self.interval = float(interval)
        self.multiplier = float(multiplier)
        self.max_interval = float(max_interval)
        self.jitter = float(jitter)
        self.timeout = float(timeout)
        self.max_extension = float(max_extension)
        self._rng = rng
        # Asked when a probe passes (features are built after their services' probes).
        self._dependents = dependents if dependents is not None else (lambda: self.breaker.children)
        self.results: dict[str, int] = {"success": 0, "failure": 0}
        #: The last probe's error, as text (``None`` after a success).
        self.last_error: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        _RUNNERS[breaker] = self
        breaker.add_listener(self)

    @property
    def breaker(self) -> BreakerControl:
        breaker = self._breaker()
        if breaker is None:
            raise ReferenceError(f"the breaker {self._name!r} of this probe runner was dropped")
        return breaker

    def _breaker_dropped(self, _: object) -> None:
        task, loop = self._task, self._loop
        if task is not None and loop is not None and not task.done():
            with contextlib.suppress(RuntimeError):  # a closed loop: the task is gone with it
                loop.call_soon_threadsafe(task.cancel)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> asyncio.Task[None]:
        """Start probing (from inside the running event loop); probes at once if already open."""
        if self._task is not None and not self._task.done():
            return self._task
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if self.breaker.state is State.OPEN:  # _probe_outage leaves one a rate limit opened
            self._wake.set()
        self._task = self._loop.create_task(self._run(), name=f"breaker-probe:{self.breaker.name}")
        return self._task

    async def aclose(self) -> None:
        """Stop probing (the breaker keeps its state)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> ProbeRunner:
        self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def state_changed(self, event: StateChanged) -> None:
        if event.state is not State.OPEN or event.reason is TransitionReason.RATE_LIMITED:
            return
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or self._task is None:
            return
        with contextlib.suppress(RuntimeError):  # a closed loop
            loop.call_soon_threadsafe(wake.set)

    # ------------------------------------------------------------------ probing

    def delay(self, attempt: int) -> float:
        """Seconds before probe number ``attempt`` (from 0) of one outage, without jitter."""
        try:
            return min(self.max_interval, self.interval * self.multiplier**attempt)
        except OverflowError:
            return self.max_interval

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._probe_outage()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("circuit breaker %r: probe runner failed", self.breaker.name)

    async def _probe_outage(self) -> None:
        breaker, clock = self.breaker, self.breaker.clock
        snap = breaker.snapshot()
        if snap.state is not State.OPEN or snap.state_reason is TransitionReason.RATE_LIMITED:
            return  # a rate limit's opening: the server said when (whenever the runner started)
        generation = snap.generation
        # The wait never grows beyond the breaker's own wait plus max_extension.
        limit = clock.now() + (snap.open_remaining or 0.0) + self.max_extension
        attempt = 0
        while True:
            await clock_sleep(clock, self.delay(attempt) * (1 - self.jitter * self._rng()))
            snap = breaker.snapshot()
            if snap.generation != generation or snap.state is not State.OPEN:
                return  # closed by hand, half-open by its wait, or reopened (which wakes us again)
            passed = await self._attempt()
            if passed is None:
                return  # no answer (a probe that is not async): the breaker's own wait decides
            if passed:
                breaker.half_open_after_probe(generation)
                self._half_open_dependents()
                return
            attempt += 1
            breaker.hold_open_until(generation, min(limit, clock.now() + self.delay(attempt)))

    def _half_open_dependents(self) -> None:
        for dependent in self._dependents():
            if dependent is self.breaker:
                continue
            snap = dependent.snapshot()
            # Not forced open, not disabled (set by hand), not opened by a rate limit (its server
            # said when).
            if snap.state is State.OPEN and snap.state_reason is not TransitionReason.RATE_LIMITED:
                dependent.half_open_after_probe(snap.generation)

    async def _attempt(self) -> bool | None:
        """Run the probe: whether it passed, or ``None`` when it gave no answer to await."""
        deadline = asyncio.timeout(self.timeout)
        try:
            async with deadline:
                pending: object = self.probe()  # typed async, but a sync function fits the type too
                if not inspect.isawaitable(pending):
                    # A sync function: counting it a failure (it cannot be awaited) held a
                    # recovered dependency out for max_extension. Said loudly, then left to the
                    # breaker's own wait.
                    self.last_error = f"the probe returned {type(pending).__name__}, not an awaitable: it must be async"
                    logger.error("circuit breaker %r: %s", self.breaker.name, self.last_error)
                    return None
                passed = (await pending) is not False
            error = None if passed else "probe returned False"
        except asyncio.CancelledError:
            raise
        except TimeoutError as exc:
            passed = False
            # The runner's timeout, or the probe's own (a socket's): then its own words.
            error = f"timed out after {self.timeout:g}s" if deadline.expired() else f"{type(exc).__name__}: {exc}"
        except Exception as exc:
            passed, error = False, f"{type(exc).__name__}: {exc}"
        self.results["success" if passed else "failure"] += 1
        self.last_error = error
        if error is not None:
            logger.debug("circuit breaker %r: probe failed: %s", self.breaker.name, error)
        return passed

    def __repr__(self) -> str:
        return f"ProbeRunner({self._name!r}, results={self.results})"


@contextlib.asynccontextmanager
async def running_probes(breakers: Iterable[BreakerControl]) -> AsyncIterator[list[ProbeRunner]]:
    """Start every probe runner attached to the given breakers (a registry's, typically) and stop
    them on exit: ``async with running_probes(registry): ...`` in an app's lifespan."""
    runners = [r for r in (probe_runner(b) for b in breakers) if r is not None]
    for runner in runners:
        runner.start()
    try:
        yield runners
    finally:
        for runner in runners:
            await runner.aclose()


# ---------------------------------------------------------------------- ready-made probes


def http_probe(url: str, *, client: Any = None, ok: Callable[[int], bool] = lambda status: status < 400) -> Probe:
    """GET ``url`` with httpx (``client``, an ``httpx.AsyncClient``, or a fresh one each time);
    passes on a status ``ok`` accepts (below 400)."""

    async def probe() -> bool:
        import httpx

        if client is not None:
            response = await client.get(url)
        else:
            async with httpx.AsyncClient() as own:
                response = await own.get(url)
        return bool(ok(response.status_code))

    probe.__qualname__ = f"http_probe({url!r})"
    return probe


def redis_probe(client: Any) -> Probe:
    """``PING`` through a ``redis.asyncio`` client (or anything with an async ``ping()``); a URL
    string makes a client from it."""
    if isinstance(client, str):
        import redis.asyncio

        client = redis.asyncio.from_url(client)

    async def probe() -> object:
        return await client.ping()

    return probe


def asyncpg_probe(target: Any) -> Probe:
    """``SELECT 1`` on an asyncpg pool or connection, or on a new connection to a DSN string."""

    async def probe() -> bool:
        if isinstance(target, str):
            import asyncpg

            connection = await asyncpg.connect(target)
            try:
                return bool(await connection.fetchval("SELECT 1") == 1)
            finally:
                await connection.close()
        return bool(await target.fetchval("SELECT 1") == 1)

    return probe


def sqlalchemy_probe(engine: Any) -> Probe:
    """``SELECT 1`` through an SQLAlchemy ``AsyncEngine``."""

    async def probe() -> bool:
        from sqlalchemy import text

        async with engine.connect() as connection:
            return bool((await connection.execute(text("SELECT 1"))).scalar() == 1)

    return probe
