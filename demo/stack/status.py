"""``breakerpanel status``: each service with its URL and health, the demo's breakers, the faults."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .chaos_client import UPSTREAMS, ChaosClient, ChaosError, describe
from .compose import ComposeFile
from .probes import Probe
from .state import StackState, load_state
from .topology import PROGRAMS

__all__ = ["ServiceStatus", "breaker_lines", "collect", "render"]


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    url: str | None
    #: "up", "starting or failing" (running, not answering), "exited", "not running", or why left out.
    health: str


def collect(state_dir: Path, compose: ComposeFile) -> tuple[StackState | None, list[ServiceStatus]]:
    """Services of the stack ``up`` recorded in ``state_dir``; without one, the compose ports on
    localhost (a stack started by ``docker compose up`` answers there)."""
    state = load_state(state_dir)
    statuses = []
    if state is None:
        for name, service in compose.services.items():
            port = service.port
            program = PROGRAMS.get(name)
            if port is None or program is None:
                continue
            health = "up" if _ready(program.probe, port) else "not running"
            statuses.append(ServiceStatus(name, program.url(port), health))
        return None, statuses
    for record in state.processes:
        if not record.running():
            health = "exited"
        elif _ready(PROGRAMS[record.name].probe, record.port, started=True):
            health = "up"
        else:
            health = "starting or failing"
        statuses.append(ServiceStatus(record.name, record.url, health))
    statuses += [ServiceStatus(name, None, why) for name, why in state.skipped.items()]
    return state, statuses


def _ready(probe: Probe, port: int | None, *, started: bool = False) -> bool:
    # A port-less client (the load generator) counts as up while its process runs.
    return probe.ready(port, float("inf") if started else 0.0)


def render(
    state: StackState | None,
    statuses: list[ServiceStatus],
    *,
    demo_url: str | None,
    upstreams_url: str | None,
    say: Callable[[str], None] = print,
) -> None:
    if state is None:
        say("no stack started by `breakerpanel up` here; probing the usual ports (docker compose):")
    else:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state.started_at))
        say(f"stack in {state.state_dir}, started {started}:")
    width = max((len(s.name) for s in statuses), default=0)
    for status in statuses:
        say(f"  {status.name:<{width}}  {status.health:<11}  {status.url or ''}".rstrip())
    if demo_url is not None:
        say("breakers (demo /health/ready):")
        for line in _breakers(demo_url):
            say(f"  {line}")
    if upstreams_url is not None:
        say("faults (upstreams /chaos):")
        try:
            states = ChaosClient(upstreams_url, timeout=2.0).show()
        except ChaosError as exc:
            say(f"  {exc}")
        else:
            for upstream in UPSTREAMS:
                if upstream in states:
                    say(f"  {describe(upstream, states[upstream])}")


def _breakers(demo_url: str) -> list[str]:
    try:
        # /health/ready answers 503 with the same body when a breaker is open: read it either way.
        response = httpx.get(demo_url.rstrip("/") + "/health/ready", timeout=2.0, trust_env=False)
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return [f"cannot read the demo's breakers: {exc}"]
    return breaker_lines(body) or [f"(no breakers in the answer: HTTP {response.status_code})"]


def breaker_nodes(tree: Any) -> Iterator[dict[str, Any]]:
    """Every breaker of the demo's ``/health/ready`` answer (an object with ``name`` and ``state``),
    at any depth of its nesting."""
    if isinstance(tree, list):
        for item in tree:
            yield from breaker_nodes(item)
    elif isinstance(tree, dict):
        if "name" in tree and "state" in tree:
            yield tree
        for value in tree.values():
            if isinstance(value, dict | list):
                yield from breaker_nodes(value)


def breaker_lines(node: Any, depth: int = 0) -> list[str]:
    """The breaker tree as indented ``name: state`` lines, from any nesting of the health answer:
    an object with ``name`` and ``state``, or a mapping of names to objects with ``state``."""
    lines: list[str] = []
    if isinstance(node, list):
        for item in node:
            lines += breaker_lines(item, depth)
        return lines
    if not isinstance(node, dict):
        return lines
    if isinstance(node.get("name"), str) and isinstance(node.get("state"), str):
        lines.append("  " * depth + f"{node['name']}: {node['state']}")
        depth += 1
    for key, value in node.items():
        if key in ("name", "state"):
            continue
        if isinstance(value, dict) and isinstance(value.get("state"), str) and "name" not in value:
            lines.append("  " * depth + f"{key}: {value['state']}")
            lines += breaker_lines({k: v for k, v in value.items() if k != "state"}, depth + 1)
        elif isinstance(value, dict | list):
            lines += breaker_lines(value, depth)
    return lines
