"""The chart-render benchmark runs small and writes its keys (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from .support import load_bench


def test_writes_every_key(tmp_path: Path) -> None:
    bench = load_bench("chart_render")
    out = tmp_path / "chart_render.json"
    assert bench.main(["--draws", "2", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["render_s"]["median"] > 0
    assert result["png_bytes"] > 1000
    assert result["svg_bytes"] > 1000
    assert set(result["page_round_trip_ms"]) == {"idle", "drawing_in_a_thread", "drawing_in_its_process"}
    assert all(figures["samples"] > 0 for figures in result["page_round_trip_ms"].values())
