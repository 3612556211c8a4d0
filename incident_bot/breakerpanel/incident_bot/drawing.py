"""Where charts are drawn: a process of their own, one chart at a time.

Drawing is CPU work in Python (matplotlib builds the figure, then writes a PNG and an SVG: most of
a second). In a thread of the bot it would hold the bot's GIL in turns with the event loop and with
the threads that send pages, and a page going out meanwhile would wait for its turns (measured in
the e2e stack: a tenth of a second more from the outbox to PagerDuty). In a process of its own it
shares nothing with the bot but the CPU. The process is started (``spawn``: nothing of the bot's
state is copied) and matplotlib imported in it when the bot starts (:meth:`DrawingProcess.warm_up`),
so the first chart pays neither; if it dies, the chart in hand is lost and the next one starts a
new process.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from .chart_data import ChartData, ChartUnavailable
from .chart_render import RenderedChart, render_chart, warm_up

__all__ = ["DrawingProcess"]

logger = logging.getLogger("breakerpanel.incident_bot.drawing")


class DrawingProcess:
    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def warm_up(self) -> None:
        """Start the process and import matplotlib in it, in the background."""

        def imported(future: Future[None]) -> None:
            if not future.cancelled() and future.exception() is not None:
                logger.error("charts cannot be drawn: %s", future.exception())

        self._executor().submit(warm_up).add_done_callback(imported)

    async def draw(self, data: ChartData, *, title: str, marks: Sequence[tuple[float, str]]) -> RenderedChart:
        """:func:`~.chart_render.render_chart` in the drawing process. Raises
        :class:`~.chart_data.ChartUnavailable` if the process died meanwhile."""
        draw = functools.partial(render_chart, data, title=title, marks=list(marks))
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor(), draw)
        except BrokenProcessPool:
            self._pool = None  # the next chart starts a new one
            raise ChartUnavailable("the drawing process died (the next chart starts a new one)") from None

    async def close(self) -> None:
        """Stop the process, once the chart it draws (if any) is done."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
