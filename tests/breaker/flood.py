"""A bounded flood, run as its own process: ``python -m tests.breaker.flood URL [URL...] --count N --duration S``.

Sends ``count`` requests at evenly spaced instants over ``duration`` seconds (open loop: a slow
answer does not slow the flood), round-robin over the URLs, and prints one JSON line: the
statuses by URL and the instants of the first and last answers (``time.monotonic`` of this process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter

import httpx


async def flood(urls: list[str], count: int, duration: float, headers: dict[str, str]) -> dict[str, object]:
    statuses: dict[str, Counter[int]] = {url: Counter() for url in urls}
    answered: list[float] = []
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
        start = time.monotonic()

        async def one(i: int) -> None:
            await asyncio.sleep(max(0.0, start + i * duration / count - time.monotonic()))
            url = urls[i % len(urls)]
            response = await client.get(url, headers=headers)
            statuses[url][response.status_code] += 1
            answered.append(time.monotonic())

        await asyncio.gather(*(one(i) for i in range(count)))
    return {
        "statuses": {url: dict(counter) for url, counter in statuses.items()},
        "first": min(answered) - start,
        "last": max(answered) - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--header", action="append", default=[], help="name:value")
    args = parser.parse_args()
    headers = dict(item.split(":", 1) for item in args.header)
    print(json.dumps(asyncio.run(flood(args.urls, args.count, args.duration, headers))))


if __name__ == "__main__":
    main()
