"""The intake benchmark runs end to end and writes what the issue specifies (no timing is asserted
here: a tiny load, one second per phase)."""

from __future__ import annotations

import json
from pathlib import Path

from .support import load_bench


def test_writes_the_figures(tmp_path: Path) -> None:
    bench = load_bench("bot_intake")
    out = tmp_path / "bot_intake.json"
    argv = ["--quick", "--output", str(out), "--rate", "100", "--duration", "1"]
    assert bench.main([*argv, "--concurrency", "4", "--saturation-duration", "1", "--warmup", "0.2"]) == 0
    result = json.loads(out.read_text())
    assert {"saturation_per_s", "offered_per_s", "accepted_per_s", "p50_ms", "p99_ms", "errors"} <= set(result)
    assert result["offered_per_s"] == 100
    opened = result["open_loop"]
    assert opened["sent"] == 100
    assert opened["accepted"] == 100
    assert result["errors"] == 0
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    assert result["saturation_per_s"] > 0
    assert [phase["concurrency"] for phase in result["closed_loop"]] == [4]
    # Durable intake: every webhook answered 200 is a stored row.
    assert result["all_accepted_stored"]
    assert opened["stored"] == opened["accepted_all"] == 120  # the warm-up's 20 included
    assert result["bot_tracebacks"] == []


def test_webhooks_are_distinct_and_realistic() -> None:
    bench = load_bench("bot_intake")
    bodies = bench.webhooks("t", seed=1)
    documents = [json.loads(next(bodies)) for _ in range(400)]
    assert len({d["groupKey"] for d in documents}) == 400
    fingerprints = [a["fingerprint"] for d in documents for a in d["alerts"]]
    assert len(set(fingerprints)) == len(fingerprints)
    assert {len(d["alerts"]) for d in documents} == {1, 2, 3, 4, 5}
    assert {d["status"] for d in documents} == {"firing", "resolved"}
