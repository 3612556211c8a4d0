"""``breakerpanel load``: steady traffic through :func:`demo.load.run_load`, with a progress line."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TextIO

from demo.load import LoadReport, run_load, stop_on_signals

__all__ = ["ProgressLine", "run"]


class ProgressLine:
    """Rewrites one terminal line with the latest report; on a pipe, prints one every few seconds
    (the runner reports every second, too often for a log)."""

    def __init__(self, stream: TextIO, *, every_s: float = 5.0) -> None:
        self.stream = stream
        self.every_s = every_s
        self._tty = stream.isatty()
        self._last: float | None = None

    def __call__(self, report: LoadReport) -> None:
        if self._tty:
            self.stream.write("\r\x1b[2K" + report.line())
        elif self._last is None or time.monotonic() - self._last >= self.every_s:
            self.stream.write(report.line() + "\n")
            self._last = time.monotonic()
        self.stream.flush()

    def finish(self) -> None:
        if self._tty:
            self.stream.write("\n")
            self.stream.flush()


def run(url: str, rps: float, duration: float, *, stream: TextIO = sys.stdout) -> LoadReport:
    """Run the load for ``duration`` seconds, or until Ctrl-C (or SIGTERM), and return the final
    report: an interrupted run still waits for the answers due and reports them."""
    progress = ProgressLine(stream)

    async def load() -> LoadReport:
        return await run_load(url, rps, duration, on_progress=progress, stop=stop_on_signals())

    try:
        return asyncio.run(load())
    finally:
        progress.finish()
