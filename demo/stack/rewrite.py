"""Turning references inside the compose network into references on this machine.

In docker-compose.yml a service reaches another as ``<service>:<container port>`` and a user as
``localhost:<published port>``; files are at container paths. Locally every service listens on
127.0.0.1 at its own port, and files are where compose mounts them from. :class:`Rewriter` maps
one to the other, in plain strings, command-line arguments and whole YAML trees, and tells which
services a string referred to (so an environment variable pointing at a service that has no local
counterpart can be dropped rather than left dangling).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LOOPBACK", "Endpoint", "Rewriter"]

LOOPBACK = "127.0.0.1"

# host:port where the host is a name or an IPv4 address, not part of a longer word.
_HOST_PORT = re.compile(r"(?<![\w.-])([A-Za-z0-9][\w.-]*):(\d+)(?!\d)")


@dataclass(frozen=True)
class Endpoint:
    """Where a reference goes locally: ``service`` (its local counterpart) on ``port``, or nowhere."""

    service: str
    port: int | None


@dataclass(frozen=True)
class Rewriter:
    """Rewrites references for one service's configuration.

    ``endpoints`` maps ``(host, port)`` as written in compose to the local endpoint; a None port
    marks a service with no local counterpart. ``paths`` maps container paths (mount targets) to
    local paths; the longest matching prefix wins.
    """

    endpoints: Mapping[tuple[str, int], Endpoint]
    paths: Mapping[str, Path] = field(default_factory=dict)

    def text(self, value: str) -> tuple[str, frozenset[str]]:
        """``value`` with every known ``host:port`` made local, and the services it referred to."""
        referred: set[str] = set()

        def local(match: re.Match[str]) -> str:
            endpoint = self.endpoints.get((match.group(1), int(match.group(2))))
            if endpoint is None:
                return match.group(0)
            referred.add(endpoint.service)
            return match.group(0) if endpoint.port is None else f"{LOOPBACK}:{endpoint.port}"

        return _HOST_PORT.sub(local, self.path(value)), frozenset(referred)

    def path(self, value: str) -> str:
        """``value`` with a leading container path replaced by its local path (unchanged otherwise)."""
        for target in sorted(self.paths, key=len, reverse=True):
            if value == target or value.startswith(target.rstrip("/") + "/"):
                return str(self.paths[target]) + value[len(target.rstrip("/")) :]
        return value

    def argument(self, arg: str) -> str:
        """A command-line argument: ``--flag=VALUE`` has its value rewritten, a bare value as a whole."""
        if arg.startswith("--") and "=" in arg:
            flag, _, value = arg.partition("=")
            return f"{flag}={self.argument(value)}"
        return self.text(arg)[0]

    def tree(self, node: Any) -> Any:
        """A YAML tree with every string rewritten (keys stay)."""
        if isinstance(node, str):
            return self.text(node)[0]
        if isinstance(node, list):
            return [self.tree(item) for item in node]
        if isinstance(node, dict):
            return {key: self.tree(value) for key, value in node.items()}
        return node
