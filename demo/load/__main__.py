"""``python -m demo.load --url URL --rps N [--duration D]``: load with a progress line.

The progress line is rewritten in place on a terminal and printed once per interval otherwise
(a log file); the final report goes to stdout, as JSON with ``--json``. Ctrl-C (or SIGTERM) stops
sending and waits for the answers still due before reporting.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from typing import TextIO

from breakerpanel.config import parse_duration

from .report import LoadReport
from .runner import positive_number, run_load, stop_on_signals


def _duration(text: str) -> float:
    try:
        seconds = float(parse_duration(text))
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"must not be negative (got {text!r})")
    return seconds


class _Progress:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()

    def show(self, report: LoadReport) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + report.line())
        else:
            self.stream.write(report.line() + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")


async def _main(args: argparse.Namespace) -> LoadReport:
    stop = stop_on_signals()
    progress = _Progress(sys.stderr)
    try:
        return await run_load(
            args.url,
            args.rps,
            args.duration or None,
            on_progress=progress.show,
            max_in_flight=args.max_in_flight,
            timeout_s=args.timeout,
            stop=stop,
        )
    finally:
        progress.finish()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m demo.load", description="Steady traffic for the demo service.")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the service (default: %(default)s)")
    parser.add_argument("--rps", type=positive_number, default=5.0, help="requests per second (default: %(default)s)")
    parser.add_argument(
        "--duration", type=_duration, default=0.0, help="seconds, or 30s, 5m...; 0 (default): until interrupted"
    )
    parser.add_argument("--max-in-flight", type=int, default=64, help="requests waiting at most (default: 64)")
    parser.add_argument("--timeout", type=positive_number, default=30.0, help="seconds per request (default: 30)")
    parser.add_argument("--json", action="store_true", help="print the final report as JSON")
    args = parser.parse_args(argv)
    report = asyncio.run(_main(args))
    if args.json:
        print(json.dumps({**dataclasses.asdict(report), "server_errors": report.server_errors}))
    else:
        print(report.line())


if __name__ == "__main__":
    main()
