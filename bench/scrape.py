"""What one Prometheus scrape of the breakers costs: series, bytes and time, at 100, 1,000 and
10,000 breakers, at both levels of detail, measured in one run.

The fleet: a tenth of the breakers are services, each with nine endpoints; every breaker has
been through an outage (successes, failures of one error type, a trip, rejections, a half-open
probe, closed again), so each exports what a breaker in production does after its first incident.
The scrape is a real one: an HTTP GET of the exporter's ``/metrics`` (its own server thread) with
``Accept-Encoding: gzip`` as Prometheus sends it; ``scrape_ms`` is the median time to the last
byte (the exporter's work and the transfer; decompressing is the scraper's), ``bytes`` what
crossed the wire and ``bytes_uncompressed`` the text. ``sdk_scrape_ms`` is
the same body produced through the OpenTelemetry SDK and prometheus_client
(``generate_latest(telemetry.prometheus_registry)``), the way ``/metrics`` was served before.

Usage: ``python bench/scrape.py [--quick] [--check] [--output PATH]``; ``--check`` exits with
status 1 when a target does not hold. Results in ``bench/results/scrape.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import gzip
import json
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import prometheus_client

from breakerpanel import BreakerConfig, BreakerRegistry, CircuitBreaker, ManualClock
from breakerpanel.exporter import BreakerTelemetry

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "scrape.json"
SIZES = (100, 1_000, 10_000)
QUICK_SIZES = (100, 1_000)
DETAILS = ("standard", "full")
ENDPOINTS_PER_SERVICE = 9
#: Targets (detail "standard"): series per breaker, and at 1,000 breakers the scrape's time and bytes.
MAX_SERIES_PER_BREAKER = 30
TARGET_BREAKERS = 1_000
MAX_SCRAPE_MS = 100.0
MAX_BYTES = 1_000_000
#: The SDK path costs seconds per scrape beyond this many series: measured once, not repeated.
SDK_SERIES_REPEATED = 100_000

CONFIG = BreakerConfig(minimum_calls=4, sliding_window_size=20, wait_in_open=30.0)


class Injected(Exception):
    """The failure of the fleet's outage."""


def ok() -> int:
    return 1


def broken() -> int:
    raise Injected


def _attempt(breaker: CircuitBreaker, fn: Callable[[], int]) -> None:
    with contextlib.suppress(Exception):
        breaker.call(fn)


def build_fleet(size: int) -> tuple[BreakerRegistry, list[CircuitBreaker]]:
    """``size`` breakers (services with endpoints), each through an outage and its recovery."""
    clock = ManualClock()
    registry = BreakerRegistry(clock=clock)
    breakers: list[CircuitBreaker] = []
    services = max(1, size // (ENDPOINTS_PER_SERVICE + 1))
    for s in range(services):
        service = registry.service(f"dependency{s}", CONFIG, attributes={"gen_ai.provider.name": "openai"})
        breakers.append(service)
        for e in range(ENDPOINTS_PER_SERVICE):
            if len(breakers) < size:
                breakers.append(registry.endpoint(f"dependency{s}.operation{e}", CONFIG))
    for breaker in breakers:
        for _ in range(8):
            _attempt(breaker, ok)
    for breaker in breakers:  # the outage: each breaker trips on its own failures
        for _ in range(8):
            _attempt(breaker, broken)
    for breaker in breakers:  # turned away while open (an endpoint: its own or its service's)
        for _ in range(3):
            _attempt(breaker, ok)
    clock.advance(31.0)  # the open wait is over: probes close them again
    for _ in range(3):
        for breaker in breakers:
            for _ in range(5):
                _attempt(breaker, ok)
        clock.advance(1.0)
    return registry, breakers


def _count_breaker_series(text: str, name: str) -> Counter[str]:
    """Series of the breaker ``name`` by metric family."""
    needle = f'circuit_breaker_name="{name}"'
    families: Counter[str] = Counter()
    for line in text.splitlines():
        if line.startswith("#") or needle not in line:
            continue
        metric = line.split("{", 1)[0]
        for suffix in ("_bucket", "_count", "_sum"):
            metric = metric.removesuffix(suffix)
        families[metric] += 1
    return families


def _breaker_lines(text: str) -> int:
    return sum(1 for line in text.splitlines() if "circuit_breaker_name=" in line and not line.startswith("#"))


def measure(size: int, detail: str, repeats: int, log: Callable[[str], None]) -> dict[str, Any]:
    registry, breakers = build_fleet(size)
    telemetry = BreakerTelemetry(registry, service_name="bench", detail=detail, max_breakers=size)  # type: ignore[arg-type]
    server = telemetry.start_http_server(0)
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    try:
        with httpx.Client(headers={"Accept-Encoding": "gzip"}, timeout=120) as client:
            times, wire = [], 0
            text = ""
            for _ in range(repeats + 1):  # the first one warms the label caches
                gc.collect()
                start = time.perf_counter()
                with client.stream("GET", url) as response:
                    # To the last byte as sent (gzipped): Prometheus' own decompression is its CPU.
                    body = b"".join(response.iter_raw())
                times.append((time.perf_counter() - start) * 1000)
                assert response.headers.get("content-encoding") == "gzip", response.headers
                wire = len(body)
                text = gzip.decompress(body).decode()
            direct_ms = statistics.median(times[1:])
        series = _breaker_lines(text)
        sdk_repeats = repeats if series * (3 if detail == "full" else 1) <= SDK_SERIES_REPEATED else 1
        sdk_times = []
        for _ in range(sdk_repeats):
            gc.collect()
            start = time.perf_counter()
            prometheus_client.generate_latest(telemetry.prometheus_registry)
            sdk_times.append((time.perf_counter() - start) * 1000)
        service = _count_breaker_series(text, breakers[0].name)
        endpoint = _count_breaker_series(text, breakers[1].name) if size > 1 else Counter()
        row: dict[str, Any] = {
            "breakers": size,
            "detail": detail,
            "series": series,
            "series_per_breaker": round(series / size, 2),
            "series_of_a_service": sum(service.values()),
            "series_of_an_endpoint": sum(endpoint.values()),
            "series_by_family_of_an_endpoint": dict(sorted(endpoint.items())),
            "bytes": wire,
            "bytes_uncompressed": len(text.encode()),
            "scrape_ms": round(direct_ms, 1),
            "sdk_scrape_ms": round(statistics.median(sdk_times), 1),
            "sdk_repeats": sdk_repeats,
            "repeats": repeats,
        }
        row["sdk_vs_direct"] = round(row["sdk_scrape_ms"] / max(row["scrape_ms"], 0.001), 1)
        log(
            f"{size:>6} breakers, {detail:<8}: {series:>7} series ({row['series_per_breaker']}/breaker), "
            f"{wire / 1e6:.2f} MB on the wire ({row['bytes_uncompressed'] / 1e6:.1f} MB of text), "
            f"{row['scrape_ms']} ms per scrape; through the SDK {row['sdk_scrape_ms']} ms"
        )
        return row
    finally:
        server.shutdown()
        server.server_close()
        telemetry.shutdown()


def targets(rows: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    standard = [r for r in rows if r["detail"] == "standard"]
    out = [
        (
            f"standard: {r['series_per_breaker']} series per breaker at {r['breakers']} (at most "
            f"{MAX_SERIES_PER_BREAKER}; an endpoint {r['series_of_an_endpoint']}, "
            f"a service {r['series_of_a_service']})",
            max(r["series_per_breaker"], r["series_of_an_endpoint"], r["series_of_a_service"])
            <= MAX_SERIES_PER_BREAKER,
        )
        for r in standard
    ]
    for r in standard:
        if r["breakers"] == TARGET_BREAKERS:
            out.append(
                (
                    f"standard, 1,000 breakers: {r['scrape_ms']} ms (at most {MAX_SCRAPE_MS:.0f})",
                    r["scrape_ms"] <= MAX_SCRAPE_MS,
                )
            )
            out.append(
                (
                    f"standard, 1,000 breakers: {r['bytes']} bytes on the wire (at most {MAX_BYTES})",
                    r["bytes"] <= MAX_BYTES,
                )
            )
    return out


def run(sizes: tuple[int, ...], repeats: int, log: Callable[[str], None]) -> list[dict[str, Any]]:
    cases = [(size, detail) for size in sizes for detail in DETAILS]
    rows = []
    for i, (size, detail) in enumerate(cases, 1):
        log(f"[{i}/{len(cases)}] {size} breakers, detail {detail} ({len(cases) - i} case(s) after this one)")
        rows.append(measure(size, detail, repeats, log))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}, 3 repeats")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target does not hold")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", flush=True)

    rows = run(QUICK_SIZES if args.quick else SIZES, 3 if args.quick else 7, log)
    checks = targets(rows)
    standard = next(r for r in rows if r["detail"] == "standard" and r["breakers"] == max(r["breakers"] for r in rows))
    result = {
        "python": platform.python_version(),
        "versions": {dist: version(dist) for dist in ("opentelemetry-sdk", "prometheus-client")},
        "series_per_breaker": standard["series_per_breaker"],
        "per_size": {
            str(r["breakers"]): {"series": r["series"], "bytes": r["bytes"], "scrape_ms": r["scrape_ms"]}
            for r in rows
            if r["detail"] == "standard"
        },
        "rows": rows,
        "targets": [{"target": text, "holds": holds} for text, holds in checks],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    for text, holds in checks:
        log(f"{'holds' if holds else 'MISSED'}: {text}")
    log(f"written to {args.output}")
    return 1 if args.check and not all(holds for _, holds in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
