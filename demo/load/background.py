"""The load generator in a background thread, for harnesses that do other things meanwhile (the
end-to-end test, bench/alert_quality.py)."""

from __future__ import annotations

import asyncio
import threading

from .report import LoadReport
from .runner import run_load

__all__ = ["BackgroundLoad"]


class BackgroundLoad:
    """:func:`demo.load.run_load` in a thread, open loop until :meth:`stop`; :meth:`snapshot` is its
    latest progress report (one a second)."""

    def __init__(self, url: str, rps: float) -> None:
        self.url, self.rps = url, rps
        self._latest: LoadReport | None = None
        self._final: LoadReport | None = None
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._running = threading.Event()
        self._thread = threading.Thread(target=self._run, name="background-load", daemon=True)

    def start(self) -> BackgroundLoad:
        self._thread.start()
        if not self._running.wait(10):
            raise RuntimeError("the load generator did not start")
        return self

    @property
    def latest(self) -> LoadReport | None:
        return self._latest

    def snapshot(self) -> LoadReport:
        report = self._latest
        assert report is not None, "no progress report yet"
        return report

    def stop(self) -> LoadReport:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        if self._failure is not None:
            raise self._failure
        assert self._final is not None, "the load generator did not finish"
        return self._final

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # re-raised by stop(), in the test's thread
            self._failure = exc
            self._running.set()

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._running.set()

        def progress(report: LoadReport) -> None:
            self._latest = report

        self._final = await run_load(self.url, self.rps, None, on_progress=progress, stop=self._stop, seed=7)
