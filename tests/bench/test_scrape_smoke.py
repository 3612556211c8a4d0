"""The scrape benchmark runs tiny and writes the issue's keys (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .support import load_bench


def test_writes_every_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench = load_bench("scrape")
    monkeypatch.setattr(bench, "QUICK_SIZES", (20, 40))
    out = tmp_path / "scrape.json"
    assert bench.main(["--quick", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["per_size"]) == {"20", "40"}
    for figures in result["per_size"].values():
        assert set(figures) == {"series", "bytes", "scrape_ms"}
        assert all(value > 0 for value in figures.values())
    rows = {(row["breakers"], row["detail"]): row for row in result["rows"]}
    assert set(rows) == {(20, "standard"), (20, "full"), (40, "standard"), (40, "full")}
    # Every breaker of the fleet went through an outage: an endpoint shows its trip and recovery.
    families = rows[(40, "standard")]["series_by_family_of_an_endpoint"]
    assert families["circuit_breaker_transitions_total"] == 4
    assert families["circuit_breaker_recovery_duration_seconds"] == 5  # 2 bounds, +Inf, count, sum
    assert result["series_per_breaker"] == rows[(40, "standard")]["series_per_breaker"]
    assert rows[(40, "full")]["series"] > 3 * rows[(40, "standard")]["series"]
    assert {target["target"].split(":")[0] for target in result["targets"]} == {"standard"}
