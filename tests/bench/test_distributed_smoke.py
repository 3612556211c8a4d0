"""The distributed benchmark runs tiny against a real redis-server and writes the issue's keys (no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.servers import require_binary

from .support import load_bench

KEYS = {
    "memory_overhead_ns",
    "redis_overhead_ns",
    "redis_vs_memory_ratio",
    "peer_vs_ours_ratio",
    "propagation_p50_ms",
    "propagation_p99_ms",
}


def test_writes_every_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_binary("redis-server")
    bench = load_bench("distributed")
    real = bench.run
    monkeypatch.setattr(bench, "run", lambda quick: real(quick, calls=200, peer_calls=5, repeats=1, trips=3))
    out = tmp_path / "distributed.json"
    assert bench.main(["--quick", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result) >= KEYS
    assert all(isinstance(result[key], int | float) and result[key] > 0 for key in KEYS)
    assert result["propagation_samples"] == 6  # 3 trips x 2 followers
    assert {"pybreaker-redis-sync", "purgatory-redis-async", "memory-async", "redis-async"} <= set(result["rows"])
