"""One replica for the shared-state tests: a breaker attached to a RedisStore, driven over stdin.

Usage: ``python tests/breaker/store_driver.py URL [--cluster] [--quorum K] [--prefix P] [--mode sync|async]``.
Prints one JSON object per line: ``{"ready": true, "state": ...}`` once attached, then one reply per
command:

- ``fail N`` / ``ok N``: N calls through the breaker that fail (ConnectionError) or succeed; the reply
  counts them and lists ``errors``: anything a caller saw other than the injected failure and
  CircuitOpenError (there must be none, whatever Redis does);
- ``state``; ``status`` (the store's); ``wait STATE SECONDS`` (polls the state, reports ``reached``);
- ``reset``, ``force_open``, ``quit``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from breakerpanel import BreakerConfig, CircuitBreaker, CircuitOpenError, RedisStore

CONFIG = BreakerConfig(minimum_calls=5, sliding_window_size=10, failure_rate_threshold=0.5, wait_in_open=120.0)


class Injected(ConnectionError):
    pass


def ok() -> str:
    return "ok"


def broken() -> str:
    raise Injected("down")


async def aok() -> str:
    return "ok"


async def abroken() -> str:
    raise Injected("down")


def run_calls(breaker: CircuitBreaker, mode: str, failing: bool, n: int) -> dict[str, Any]:
    counts = {"ok": 0, "failed": 0, "rejected": 0}
    errors: list[str] = []

    def outcome(exc: BaseException | None) -> None:
        if exc is None:
            counts["ok"] += 1
        elif isinstance(exc, Injected):
            counts["failed"] += 1
        elif isinstance(exc, CircuitOpenError):
            counts["rejected"] += 1
        else:
            errors.append(f"{type(exc).__name__}: {exc}")

    if mode == "sync":
        for _ in range(n):
            try:
                breaker.call(broken if failing else ok)
            except BaseException as exc:
                outcome(exc)
            else:
                outcome(None)
    else:

        async def many() -> None:
            for _ in range(n):
                try:
                    await breaker.acall(abroken if failing else aok)
                except BaseException as exc:
                    outcome(exc)
                else:
                    outcome(None)

        asyncio.run(many())
    return {**counts, "errors": errors, "state": breaker.state.value}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--cluster", action="store_true")
    parser.add_argument("--quorum", type=int, default=1)
    parser.add_argument("--prefix", default="breakerpanel-test")
    parser.add_argument("--mode", choices=("sync", "async"), default="sync")
    parser.add_argument("--name", default="llm")
    parser.add_argument("--sync-interval", type=float, default=0.1)
    args = parser.parse_args()

    store = RedisStore(
        args.url, cluster=args.cluster, quorum=args.quorum, prefix=args.prefix, sync_interval=args.sync_interval,
        startup_timeout=5.0,
    )  # fmt: skip
    breaker = CircuitBreaker(args.name, CONFIG)
    store.attach(breaker)

    def reply(data: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(data) + "\n")
        sys.stdout.flush()

    reply({"ready": True, "state": breaker.state.value, "replica": store.replica_id})
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        command = words[0]
        if command in ("fail", "ok"):
            reply(run_calls(breaker, args.mode, command == "fail", int(words[1])))
        elif command == "state":
            reply({"state": breaker.state.value})
        elif command == "status":
            status = store.status()
            reply({"available": status.available, "errors": status.errors, "state": breaker.state.value})
        elif command == "wait":
            target, deadline = words[1], time.monotonic() + float(words[2])
            while breaker.state.value != target and time.monotonic() < deadline:
                time.sleep(0.005)
            reply({"state": breaker.state.value, "reached": breaker.state.value == target})
        elif command == "reset":
            breaker.reset()
            reply({"state": breaker.state.value})
        elif command == "force_open":
            breaker.force_open()
            reply({"state": breaker.state.value})
        elif command == "quit":
            break
        else:
            reply({"error": f"unknown command {command!r}"})
    store.close()
    reply({"closed": True})


if __name__ == "__main__":
    main()
