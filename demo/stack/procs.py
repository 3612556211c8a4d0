"""Processes by /proc: identity across PID reuse, process-group membership, group signals.

``down`` runs in another process than ``up``, long after it, so a recorded PID alone proves
nothing: the kernel may have given it to a stranger. A process is ours only if its start time
(clock ticks since boot, /proc/<pid>/stat field 22) is the one recorded when we started it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcessInfo", "group_members", "process_info", "signal_group", "wait_group_empty"]

_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    state: str
    pgid: int
    start_ticks: int

    @property
    def zombie(self) -> bool:
        """Exited, waiting for its parent to reap it: it runs no code and holds no port."""
        return self.state in ("Z", "X")


def process_info(pid: int) -> ProcessInfo | None:
    """The process's state, group and start time; None when there is no such process."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces and parentheses: the fields after it follow the
    # last ')'. After it: state(3) ppid(4) pgrp(5) ... starttime(22).
    fields = stat[stat.rindex(")") + 2 :].split()
    return ProcessInfo(pid=pid, state=fields[0], pgid=int(fields[2]), start_ticks=int(fields[19]))


def group_members(pgid: int, *, started_at_or_after: int = 0) -> list[ProcessInfo]:
    """Live (non-zombie) processes in group ``pgid`` that started no earlier than the given tick.

    A group id is its leader's PID, and the kernel does not hand out a PID still used as a group
    id; the start-time floor excludes a stranger's group that reused the id after ours emptied.
    """
    members = []
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        info = process_info(int(entry.name))
        if info is not None and info.pgid == pgid and not info.zombie and info.start_ticks >= started_at_or_after:
            members.append(info)
    return members


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def wait_group_empty(pgid: int, *, started_at_or_after: int, timeout: float) -> bool:
    """Wait until the group has no live member; reap members that are our own children."""
    deadline = time.monotonic() + timeout
    while True:
        _reap_zombies(pgid)
        if not group_members(pgid, started_at_or_after=started_at_or_after):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _reap_zombies(pgid: int) -> None:
    """Collect the group's exited members that are our own children (``up`` and ``down`` in one
    process, as through the Python API); only these PIDs, never another child's exit status."""
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            info = process_info(int(entry.name))
            if info is not None and info.pgid == pgid and info.zombie:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(info.pid, os.WNOHANG)
