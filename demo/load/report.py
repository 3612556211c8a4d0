"""What a load run saw: requests sent, answers by the path that served them, errors, latency."""

from __future__ import annotations

import statistics
from collections import Counter, deque
from dataclasses import dataclass, field

__all__ = ["LATENCY_WINDOW", "LoadReport", "Tally"]

#: Percentiles are over the most recent responses, so an unbounded run keeps bounded memory and
#: its progress line shows the latency of now rather than of the whole run.
LATENCY_WINDOW = 10_000


@dataclass(frozen=True)
class LoadReport:
    url: str
    rps: float
    elapsed_s: float
    #: Requests sent.
    sent: int
    #: 200 answers.
    ok: int
    #: Requests with no 200 answer: an HTTP status (``http_503``) or a client error (``ReadTimeout``).
    errors: int
    #: Requests not sent because ``max_in_flight`` were already waiting (the service is too slow
    #: for the rate: an open-loop generator does not slow down to match it).
    dropped: int
    by_served_by: dict[str, int]
    by_error: dict[str, int]
    #: Latency percentiles in milliseconds over the last ``LATENCY_WINDOW`` responses; None before any.
    p50_ms: float | None
    p99_ms: float | None

    @property
    def server_errors(self) -> int:
        """Answers with a 5xx status: what a user must never get because a dependency is down."""
        return sum(n for kind, n in self.by_error.items() if kind.startswith("http_5"))

    def line(self) -> str:
        """The progress line: ``12.0s sent=120 ok=118 [openai=100 anthropic=18] errors=2 ...``."""
        served = " ".join(f"{name}={n}" for name, n in sorted(self.by_served_by.items()))
        errors = f"errors={self.errors}"
        if self.by_error:
            errors += " (" + " ".join(f"{kind}={n}" for kind, n in sorted(self.by_error.items())) + ")"
        latency = "p50=- p99=-" if self.p50_ms is None else f"p50={self.p50_ms:.0f}ms p99={self.p99_ms:.0f}ms"
        return (
            f"{self.elapsed_s:6.1f}s sent={self.sent} ok={self.ok} [{served}] {errors} dropped={self.dropped} {latency}"
        )


@dataclass
class Tally:
    """The running counts behind a :class:`LoadReport` (one event loop: no lock needed)."""

    sent: int = 0
    ok: int = 0
    dropped: int = 0
    by_served_by: Counter[str] = field(default_factory=Counter)
    by_error: Counter[str] = field(default_factory=Counter)
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))

    def answered(self, served_by: str, latency_s: float) -> None:
        self.ok += 1
        self.by_served_by[served_by] += 1
        self.latencies_ms.append(latency_s * 1000)

    def failed(self, kind: str, latency_s: float | None = None) -> None:
        self.by_error[kind] += 1
        if latency_s is not None:
            self.latencies_ms.append(latency_s * 1000)

    def report(self, url: str, rps: float, elapsed_s: float) -> LoadReport:
        p50, p99 = _percentiles(self.latencies_ms)
        return LoadReport(
            url=url,
            rps=rps,
            elapsed_s=elapsed_s,
            sent=self.sent,
            ok=self.ok,
            errors=sum(self.by_error.values()),
            dropped=self.dropped,
            by_served_by=dict(self.by_served_by),
            by_error=dict(self.by_error),
            p50_ms=p50,
            p99_ms=p99,
        )


def _percentiles(latencies: deque[float]) -> tuple[float | None, float | None]:
    if not latencies:
        return None, None
    if len(latencies) == 1:
        return latencies[0], latencies[0]
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return cuts[49], cuts[98]
