"""Running ``breakerpanel`` as a user does, for the tests that start a real stack: the CLI in a child
process with a private state folder, free ports, and the checks that ``down`` left nothing behind.

Prometheus, Alertmanager and Redis are the Debian binaries: missing, the tests skip locally and fail
under CI (:func:`tests.servers.require_binary`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from demo.stack.paths import REPO_ROOT
from tests.servers import find_free_port, require_binary

__all__ = [
    "REQUIRED_BINARIES",
    "cli",
    "cli_environment",
    "free_service_ports",
    "live_processes_of",
    "port_args",
    "port_free",
    "require_binaries",
]

REQUIRED_BINARIES = ("prometheus", "prometheus-alertmanager", "redis-server")


def require_binaries() -> None:
    for binary in REQUIRED_BINARIES:
        require_binary(binary)


def cli_environment(state_dir: Path) -> dict[str, str]:
    """The test's environment without proxies (they would capture loopback calls), pointed at ``state_dir``."""
    dropped = {"http_proxy", "https_proxy", "all_proxy"}
    env = {k: v for k, v in os.environ.items() if k.lower() not in dropped}
    env["BREAKERPANEL_STACK_DIR"] = str(state_dir)
    return env


def cli(state_dir: Path, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """``breakerpanel ARGS``, through the console script's entry point (``breakerpanel.cli``, which
    hands the stack's commands to ``demo.cli``), as ``make up`` runs it."""
    return subprocess.run(
        [sys.executable, "-m", "breakerpanel.cli", *args],
        cwd=REPO_ROOT,
        env=cli_environment(state_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_service_ports(names: Iterable[str]) -> dict[str, int]:
    """A distinct free loopback port for each service, so that a test stack never meets a real one."""
    ports: dict[str, int] = {}
    for name in names:
        port = find_free_port()
        while port in ports.values():
            port = find_free_port()
        ports[name] = port
    return ports


def port_args(ports: dict[str, int]) -> list[str]:
    return [arg for name, port in ports.items() for arg in ("--port", f"{name}={port}")]


def live_processes_of(state_dir: Path) -> list[str]:
    """Live processes running in, or started with, the state folder: what `up` started there."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if state != "Z" and (cwd.startswith(str(state_dir)) or str(state_dir) in cmdline):
            found.append(f"{entry.name}: {cmdline.strip()}")
    return found


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
