"""The overhead benchmark runs and writes what the issue specifies (no timing is asserted here)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import ModuleType
from typing import Any

from .support import load_bench


def test_every_library_mode_and_path_is_measured(tmp_path: Path) -> None:
    bench = load_bench("overhead")
    rows = asyncio.run(bench.run(quick=True, calls=200, repeats=1, http_requests=20))
    measured = {(r.library, r.mode, r.path) for r in rows if r.library != "bare"}
    for mode in ("sync", "async"):
        for path in ("closed", "open"):
            for library in ("breakerpanel", "aiobreaker", "purgatory", "circuitbreaker"):
                assert (library, mode, path) in measured
        assert ("httpx", mode, "closed") in measured  # the transport against bare httpx
        assert ("breakerpanel+httpx", mode, "closed") in measured
    assert ("pybreaker", "sync", "closed") in measured  # pybreaker has no asyncio support
    assert all(r.median_ns > 0 for r in rows)
    assert len(bench.targets(rows)) == 4


def test_writes_the_json_rows(tmp_path: Path) -> None:
    bench = load_bench("overhead")
    bench.run = _tiny_run(bench)  # keep the test fast: the CLI path is what is under test
    out = tmp_path / "overhead.json"
    assert bench.main(["--quick", "--output", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert {tuple(sorted(row)) for row in rows} == {
        ("library", "median_ns", "mode", "overhead_ns", "path", "repeats", "version")
    }
    assert {row["mode"] for row in rows} == {"sync", "async"}
    assert {row["path"] for row in rows} == {"closed", "open"}


def _tiny_run(bench: ModuleType) -> Callable[..., Coroutine[Any, Any, Any]]:
    real = bench.run

    async def run(quick: bool, calls: int | None = None, repeats: int | None = None) -> Any:
        return await real(quick, calls=200, repeats=1, http_requests=20)

    return run
