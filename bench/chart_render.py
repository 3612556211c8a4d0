"""What drawing an incident's chart costs the bot, and what it costs a page sent meanwhile.

The chart is the bot's own (``breakerpanel.incident_bot.chart_render``): a breaker's 30 minutes at
a 5-second step (361 points a series: an outage in the state band, rates against thresholds, calls
and rejections, three breakers under it), written as PNG and SVG. Measured:

- ``render_s``: one chart, figure and both files (median and max of ``--draws``);
- ``import_s``: starting the drawing process and importing matplotlib in it (once per bot);
- ``page_round_trip_ms``: while charts are drawn back to back, a page-like task on the event loop
  (``asyncio.to_thread`` of a little Python work, as the PagerDuty client does), median and 99th
  percentile: idle, with drawing in a thread of the same process, and with drawing in its own
  process (:class:`~breakerpanel.incident_bot.drawing.DrawingProcess`, what the bot does).

Usage: ``python bench/chart_render.py [--draws N] [--output PATH]``. Results in
``bench/results/chart_render.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from breakerpanel.incident_bot.chart_data import ChartData, Series
from breakerpanel.incident_bot.chart_render import render_chart, warm_up
from breakerpanel.incident_bot.drawing import DrawingProcess

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "chart_render.json"
SPAN = 1800.0
STEP = 5.0


def outage_chart(end: float) -> ChartData:
    """A breaker's 30 minutes: closed, open for ten minutes, half-open, closed again."""
    times = [end - SPAN + i * STEP for i in range(int(SPAN / STEP) + 1)]

    def series(label: str, value: Callable[[int], float]) -> Series:
        return Series(label, tuple((at, value(i)) for i, at in enumerate(times)))

    def state(i: int) -> float:
        return 0 if i < 200 else 4 if i < 320 else 3 if i < 325 else 0

    return ChartData(
        breaker="openai",
        job="demo",
        start=end - SPAN,
        end=end,
        step=STEP,
        state=series("openai", state),
        failure_rate=(series("10.0.0.7:8000", lambda i: min(1.0, max(0.0, (i - 150) / 60))),),
        failure_rate_threshold=series("threshold", lambda i: 0.5),
        slow_call_rate=(series("10.0.0.7:8000", lambda i: 0.05),),
        slow_call_rate_threshold=series("threshold", lambda i: 0.9),
        calls_per_second=series("calls", lambda i: 4 + math.sin(i / 10)),
        rejections_per_second=(series("open", lambda i: 3.0 if 200 <= i < 320 else 0.0),),
        children=tuple(series(f"openai.endpoint{k}", state) for k in range(3)),
    )


def page_like() -> int:
    """A page's client work in a thread: a little Python (building and parsing JSON, TLS bookkeeping)."""
    total = 0
    for i in range(20_000):
        total += i
    return total


async def page_round_trips(draw: Callable[[], Awaitable[Any]] | None, draws: int) -> dict[str, float]:
    """Page-like round trips (ms) while ``draws`` charts are drawn back to back (none: 2 s idle)."""
    done = asyncio.Event()
    latencies: list[float] = []

    async def probe() -> None:
        while not done.is_set():
            started = time.perf_counter()
            await asyncio.to_thread(page_like)
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.01)

    task = asyncio.create_task(probe())
    if draw is None:
        await asyncio.sleep(2.0)
    else:
        for _ in range(draws):
            await draw()
    done.set()
    await task
    return {
        "median": round(statistics.median(latencies), 2),
        "p99": round(statistics.quantiles(latencies, n=100)[98], 2),
        "max": round(max(latencies), 2),
        "samples": len(latencies),
    }


async def measure(draws: int) -> dict[str, Any]:
    data = outage_chart(time.time())
    loop = asyncio.get_running_loop()
    process = DrawingProcess()
    thread = ThreadPoolExecutor(max_workers=1)
    try:
        started = time.perf_counter()
        await loop.run_in_executor(process._executor(), warm_up)
        import_s = time.perf_counter() - started
        await loop.run_in_executor(thread, warm_up)
        title = "#1 openai (service, demo): the last 30 min"
        renders = [(await process.draw(data, title=title, marks=[])).seconds for _ in range(draws)]
        drawn = await process.draw(data, title=title, marks=[])
        in_thread = functools.partial(render_chart, data, title="x")
        return {
            "render_s": {"median": round(statistics.median(renders), 3), "max": round(max(renders), 3)},
            "import_s": round(import_s, 2),
            "png_bytes": len(drawn.png),
            "svg_bytes": len(drawn.svg.encode()),
            "page_round_trip_ms": {
                "idle": await page_round_trips(None, draws),
                "drawing_in_a_thread": await page_round_trips(lambda: loop.run_in_executor(thread, in_thread), draws),
                "drawing_in_its_process": await page_round_trips(
                    lambda: process.draw(data, title="x", marks=[]), draws
                ),
            },
        }
    finally:
        thread.shutdown()
        await process.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--draws", type=int, default=7, help="charts drawn per measurement (default 7)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.draws < 2:
        parser.error("--draws: 2 at least (a median and a percentile need them)")
    result = {
        "chart": f"{int(SPAN / 60)} min at a {STEP:g} s step, 7 series and 4 bands, PNG (100 dpi) and SVG",
        **asyncio.run(measure(args.draws)),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
