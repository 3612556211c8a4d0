"""The chaos benchmark runs one tiny scenario in all three modes and writes the report's shape
(no timing or target is asserted here)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.servers import redis8_binary, require_binary

from .support import load_bench

FIGURES = {
    "availability",
    "degraded_share",
    "calls_to_failed_dependency",
    "p50_ms",
    "p99_ms",
    "peak_concurrency",
    "recovery_s",
}


def test_one_scenario_in_three_modes_writes_the_report(tmp_path: Path) -> None:
    require_binary("redis-server")  # skips locally, fails under CI=true: never a silent skip
    bench = load_bench("chaos")
    out = tmp_path / "chaos.json"
    argv = ["--quick", "--scenario", "full_outage", "--baseline", "1.5", "--fault", "2", "--after", "1.5"]
    assert bench.main([*argv, "--rps", "5", "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    modes = report["scenarios"]["full_outage"]
    assert set(modes) == {"no_breakers", "breakers", "breakers_fallbacks"}
    for figures in modes.values():
        assert set(figures) >= FIGURES
        assert 0 <= figures["availability"] <= 1
        assert 0 <= figures["degraded_share"] <= 1
        assert figures["calls_to_failed_dependency"] >= 0
        assert figures["peak_concurrency"] >= 1
        assert figures["recovery_s"] >= 0
    assert [row["target"] for row in report["targets"]]  # checked row by row
    markdown = out.with_suffix(".md").read_text()
    assert "## full_outage" in markdown
    for row in report["targets"]:  # a target that does not hold says why
        assert ("why" in row) is not row["holds"]
        if not row["holds"]:
            assert f"**{row['target']}** does not hold: {row['why']}" in markdown
    assert (tmp_path / "chaos" / "full_outage.png").stat().st_size > 0
    out.with_suffix(".md").unlink()
    assert bench.main(["--report-only", "--output", str(out)]) == 0  # from the JSON alone
    assert out.with_suffix(".md").read_text() == markdown


def test_both_providers_down_with_and_without_the_semantic_cache(tmp_path: Path) -> None:
    """Users reword the baseline's questions while OpenAI and Anthropic are down: with the semantic
    step some get an earlier answer, without it none do (the canned answer instead)."""
    require_binary("redis-server")
    redis8_binary()  # the scenario's Redis 8 (the semantic cache needs Vector Sets)
    bench = load_bench("chaos")
    out = tmp_path / "both.json"
    argv = ["--quick", "--scenario", "both_providers_down", "--baseline", "2", "--fault", "2", "--after", "1"]
    assert bench.main([*argv, "--rps", "6", "--no-plots", "--output", str(out)]) == 0
    modes = json.loads(out.read_text())["scenarios"]["both_providers_down"]
    assert set(modes) == {"breakers_fallbacks", "without_semantic_cache"}
    with_step, without = modes["breakers_fallbacks"], modes["without_semantic_cache"]
    assert with_step["semantic_share"] > 0
    assert without["semantic_share"] == 0
    assert without["static_share"] > with_step["static_share"]
    assert with_step["calls_to_failed_dependency"] > 0  # both providers were asked, and failed
    assert "the semantic cache's earlier answer" in out.with_suffix(".md").read_text()
