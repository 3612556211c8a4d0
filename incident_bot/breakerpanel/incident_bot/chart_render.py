"""An incident's chart, drawn once and written twice: PNG (Slack, PagerDuty) and SVG (the incident page).

From top to bottom: the breaker's state band (closed, half-open, open...), its failure and slow-call
rates against the thresholds in force, its calls and rejections per second, and the state of each
breaker under it. The incident's opening (and resolution) is marked across all of them.

matplotlib with the Agg renderer, without pyplot: the figure is an object of its own and touches no
global figure manager. The bot calls this in a process of its own (:mod:`.drawing`), never on its
event loop nor in its threads; matplotlib is imported there (:func:`warm_up`), never by importing the
bot. A lock serialises renders in a process, because matplotlib's rc settings are process-wide.
"""

from __future__ import annotations

import io
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from breakerpanel.exporter import semconv as sc
from breakerpanel.exporter.breaker_panels import STATE_CODES

from .chart_data import ChartData, Series

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["RenderedChart", "render_chart", "warm_up"]

_STATE = sc.CircuitBreakerStateValues
#: The dashboards' state colors (Grafana's palette), so that the chart reads like the dashboard.
STATE_COLORS = {
    _STATE.CLOSED: "#56a64b",
    _STATE.METRICS_ONLY: "#3274d9",
    _STATE.DISABLED: "#8e8e8e",
    _STATE.HALF_OPEN: "#f2cc0c",
    _STATE.OPEN: "#e02f44",
    _STATE.FORCED_OPEN: "#ad0317",
}
_STATE_BY_CODE = {code: state for state, code in STATE_CODES.items()}
FAILURE_COLOR = "#e02f44"
SLOW_COLOR = "#ff9830"
CALLS_COLOR = "#3274d9"
REJECTION_COLORS = ("#8f3bb8", "#b877d9", "#ca95e5", "#deb6f2")
#: 900 x N pixels at this resolution: readable in a Slack thread and a PagerDuty incident.
WIDTH_INCHES = 9.0
DPI = 100
#: Characters of a breaker name or label value drawn: the chart is no place for a paragraph.
MAX_LABEL = 48
MAX_TITLE = 120
_LOCK = threading.Lock()


@dataclass(frozen=True)
class RenderedChart:
    png: bytes
    svg: str
    #: Wall-clock seconds the render took (figure and both files).
    seconds: float


def warm_up() -> None:
    """Import what drawing needs (blocking: call it where charts are drawn)."""
    with _LOCK:
        import matplotlib.backends.backend_agg
        import matplotlib.backends.backend_svg
        import matplotlib.figure  # noqa: F401


def render_chart(data: ChartData, *, title: str, marks: Sequence[tuple[float, str]] = ()) -> RenderedChart:
    """The chart of ``data`` under ``title``; ``marks`` are ``(time, text)`` vertical lines (the
    incident's opening, its resolution) drawn where they fall inside the chart's range.
    Blocking (CPU-bound): call it off the event loop."""
    started = time.perf_counter()
    with _LOCK:
        import matplotlib

        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "breakerpanel", "font.size": 8}):
            figure = _figure(data, _plain(title, MAX_TITLE), marks)
            png, svg = io.BytesIO(), io.BytesIO()
            figure.savefig(png, format="png", dpi=DPI)
            figure.savefig(svg, format="svg", metadata={"Date": None})
    return RenderedChart(png.getvalue(), svg.getvalue().decode(), time.perf_counter() - started)


def _figure(data: ChartData, title: str, marks: Sequence[tuple[float, str]]) -> Figure:
    from matplotlib import dates, ticker
    from matplotlib.figure import Figure

    rows = len(data.children) + (1 if data.more_children else 0)
    heights = [0.55, 2.0, 1.6] + ([0.3 * rows + 0.35] if rows else [])
    figure = Figure(figsize=(WIDTH_INCHES, sum(heights) + 0.9), layout="constrained")
    axes: list[Axes] = list(figure.subplots(len(heights), 1, sharex=True, height_ratios=heights))
    figure.suptitle(title, fontsize=10, fontweight="bold")
    state, rates, calls = axes[:3]

    _bands(state, [data.state], data.step)
    state.set_yticks([0.5], [_plain(data.breaker)])
    state.set_title("State", loc="left", fontsize=8)
    _state_legend(state)

    for series in data.failure_rate:
        rates.plot(*_xy(series, data.step), color=FAILURE_COLOR, lw=1.4, label=_named("failure rate", series, data))
    for series in data.slow_call_rate:
        rates.plot(*_xy(series, data.step), color=SLOW_COLOR, lw=1.4, label=_named("slow-call rate", series, data))
    if data.failure_rate_threshold is not None:
        x, y = _xy(data.failure_rate_threshold, data.step)
        rates.plot(x, y, color=FAILURE_COLOR, lw=1, ls="--", alpha=0.8, label="failure-rate threshold")
    if data.slow_call_rate_threshold is not None:
        x, y = _xy(data.slow_call_rate_threshold, data.step)
        rates.plot(x, y, color=SLOW_COLOR, lw=1, ls="--", alpha=0.8, label="slow-call threshold")
    rates.set_ylim(0, 1.05)
    rates.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    rates.set_title(
        "Failure and slow-call rates vs thresholds (absent below the minimum calls)", loc="left", fontsize=8
    )
    _legend(rates)

    if data.calls_per_second is not None:
        calls.plot(*_xy(data.calls_per_second, data.step), color=CALLS_COLOR, lw=1.4, label="calls/s")
    for index, series in enumerate(data.rejections_per_second):
        color = REJECTION_COLORS[index % len(REJECTION_COLORS)]
        calls.plot(*_xy(series, data.step), color=color, lw=1.2, label=f"rejected/s: {_plain(series.label)}")
    calls.set_ylim(bottom=0)
    calls.set_title("Calls and rejections per second", loc="left", fontsize=8)
    _legend(calls)

    if rows:
        children = axes[3]
        _bands(children, list(data.children), data.step)
        names = [_plain(series.label) for series in data.children]
        if data.more_children:
            names.append(f"and {data.more_children} more")
        children.set_yticks([index + 0.5 for index in range(len(names))], names)
        children.set_ylim(len(names), 0)
        children.set_title("Breakers under it (endpoints, features that require it)", loc="left", fontsize=8)

    for ax in axes:
        ax.grid(axis="x", color="#dddddd", lw=0.5)
        for at, text in marks:
            if data.start <= at <= data.end:
                ax.axvline(_day(at), color="#1d1d1f", lw=0.8, ls=":")
                if ax is rates:
                    ax.annotate(
                        _plain(text),
                        (_day(at), 1.0),
                        xycoords=("data", "axes fraction"),
                        xytext=(3, -10),
                        textcoords="offset points",
                        fontsize=7,
                    )
    bottom = axes[-1]
    bottom.set_xlim(_day(data.start), _day(data.end))
    bottom.xaxis.set_major_formatter(dates.DateFormatter("%H:%M", tz=UTC))  # type: ignore[no-untyped-call]  # untyped in matplotlib 3.11
    bottom.set_xlabel(f"UTC, {datetime.fromtimestamp(data.end, UTC):%Y-%m-%d} (step {data.step:g}s)")
    return figure


def _bands(ax: Axes, rows: list[Series], step: float) -> None:
    """One horizontal band per series, colored by state, with gaps where there is no data."""
    for row, series in enumerate(rows):
        runs = _runs(series, step)
        ax.broken_barh(
            [(_day(begin), (end - begin) / 86_400) for begin, end, _ in runs],
            (row + 0.1, 0.8),
            facecolors=[_color(code) for _, _, code in runs],
        )
    ax.set_ylim(len(rows), 0)
    ax.tick_params(axis="y", length=0)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)


def _runs(series: Series, step: float) -> list[tuple[float, float, int]]:
    """``(begin, end, code)`` of each stretch of one state: a point holds until the next one, or
    for one step when the next is missing (a gap)."""
    runs: list[tuple[float, float, int]] = []
    for at, value in series.points:
        code = round(value)
        if runs and runs[-1][2] == code and at - runs[-1][1] <= step * 1.5:
            runs[-1] = (runs[-1][0], at + step, code)
        else:
            runs.append((at, at + step, code))
    return runs


def _state_legend(ax: Axes) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=STATE_COLORS[state], label=state.value) for state in STATE_CODES]
    ax.legend(
        handles=handles, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=len(handles), fontsize=7, frameon=False
    )


def _legend(ax: Axes) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=7, ncol=2, frameon=False)
    else:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="#8e8e8e")


def _named(what: str, series: Series, data: ChartData) -> str:
    """A rate's legend entry: with its instance when the breaker has several."""
    several = len(data.failure_rate) > 1 or len(data.slow_call_rate) > 1
    return f"{what} ({_plain(series.label)})" if several and series.label else what


def _xy(series: Series, step: float) -> tuple[list[float], list[float]]:
    """The series as matplotlib dates and values, broken (NaN) where points are missing."""
    x: list[float] = []
    y: list[float] = []
    previous: float | None = None
    for at, value in series.points:
        if previous is not None and at - previous > step * 1.5:
            x.append(_day(previous + step))
            y.append(math.nan)
        x.append(_day(at))
        y.append(value)
        previous = at
    return x, y


def _day(at: float) -> float:
    """Unix seconds as matplotlib's date number (days since 1970-01-01, its default epoch)."""
    return at / 86_400


def _color(code: int) -> str:
    state = _STATE_BY_CODE.get(code)
    return STATE_COLORS[state] if state is not None else "#8e8e8e"


def _plain(text: str, limit: int = MAX_LABEL) -> str:
    """``text`` drawn as it is: cut to ``limit`` characters, ``$`` escaped (matplotlib would read
    what lies between two as a formula, and fail on a bad one)."""
    cut = text if len(text) <= limit else text[: limit - 1] + "…"
    return cut.replace("$", r"\$")
