"""Readiness probes: when a started local service counts as up."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import httpx

from .rewrite import LOOPBACK

__all__ = ["HttpProbe", "Probe", "RedisProbe", "RunningProbe"]


@dataclass(frozen=True)
class HttpProbe:
    """Up when ``GET path`` answers 200."""

    path: str

    def ready(self, port: int | None, alive_for: float) -> bool:
        if port is None:
            return False
        try:
            # trust_env=False: a proxy from the environment would capture loopback calls.
            response = httpx.get(f"http://{LOOPBACK}:{port}{self.path}", timeout=1.0, trust_env=False)
        except httpx.HTTPError:
            return False
        return response.status_code == 200


@dataclass(frozen=True)
class RedisProbe:
    """Up when Redis answers PING (a raw socket: no client library needed)."""

    def ready(self, port: int | None, alive_for: float) -> bool:
        if port is None:
            return False
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1.0) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith(b"+PONG")
        except OSError:
            return False


@dataclass(frozen=True)
class RunningProbe:
    """For a client with no port (the load generator): up once it has kept running for a while,
    which is long enough for a bad argument or a missing module to have stopped it."""

    seconds: float = 2.0

    def ready(self, port: int | None, alive_for: float) -> bool:
        return alive_for >= self.seconds


Probe = HttpProbe | RedisProbe | RunningProbe
