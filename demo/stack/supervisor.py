"""Starting the planned services as detached process groups, and stopping exactly those.

Every service runs in its own session (so its process group id is its PID), with its output in
``<state dir>/logs/<service>.log``. ``up`` starts services one by one in dependency order and
waits until each answers before the next; if one fails, it stops what it started and reports the
failing service's log. ``down`` signals only the process groups recorded in the state file whose
leader is still the process ``up`` started.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from .procs import group_members, process_info, signal_group, wait_group_empty
from .render import render_service
from .rewrite import LOOPBACK
from .state import ProcessRecord, StackState, load_state, remove_state, save_state
from .topology import LocalService, Plan

__all__ = ["AlreadyRunningError", "StackError", "Stopped", "down", "refuse_if_running", "up"]

_LOG_TAIL_LINES = 30
_POLL_S = 0.1


class StackError(RuntimeError):
    """The stack could not start (the message names the service and ends with its log tail)."""


class AlreadyRunningError(StackError):
    """Every process of a previous ``up`` is still running: nothing to do."""

    def __init__(self, state: StackState) -> None:
        super().__init__(f"the stack in {state.state_dir} is already running")
        self.state = state


@dataclass(frozen=True)
class Stopped:
    name: str
    pid: int
    #: "stopped" (SIGTERM sufficed), "killed" (SIGKILL was needed) or "not running".
    outcome: str


Report = Callable[[LocalService, float], None]


def up(
    plan: Plan,
    *,
    report: Report | None = None,
    environ: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> StackState:
    """Start ``plan``'s services; return the state once all are ready. ``report`` hears each one."""
    state_dir = plan.options.state_dir
    with _locked(state_dir):
        refuse_if_running(state_dir)
        _check_ports_free(plan)
        state = StackState(state_dir=str(state_dir), started_at=time.time(), skipped=dict(plan.skipped))
        save_state(state)
        try:
            for service in plan.services:
                started = time.monotonic()
                process, record = _start(service, plan, dict(os.environ if environ is None else environ))
                state.processes.append(record)
                save_state(state)
                _wait_ready(service, process, record, timeout)
                if report is not None:
                    report(service, time.monotonic() - started)
        except BaseException:
            _stop_all(state)
            remove_state(state_dir)
            raise
        return state


def down(state_dir: Path, *, timeout: float = 10.0) -> list[Stopped]:
    """Stop what the ``up`` recorded in ``state_dir`` started, newest first; [] if nothing is recorded."""
    with _locked(state_dir):
        state = load_state(state_dir)
        if state is None:
            return []
        stopped = _stop_all(state, timeout=timeout)
        remove_state(state_dir)
        return stopped


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """One ``up`` or ``down`` at a time per state folder."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / "lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StackError(f"another `breakerpanel up` or `down` is working on {state_dir}") from None
        yield


def refuse_if_running(state_dir: Path) -> None:
    """Raise AlreadyRunningError if the recorded stack runs, StackError if part of it does; forget a
    record whose processes have all exited."""
    previous = load_state(state_dir)
    if previous is None:
        return
    running = [record for record in previous.processes if record.running()]
    if running and len(running) == len(previous.processes):
        raise AlreadyRunningError(previous)
    if running:
        names = ", ".join(record.name for record in running)
        raise StackError(
            f"a previous stack in {state_dir} is partly running ({names} still up, others exited): "
            "run `breakerpanel down` first"
        )
    remove_state(state_dir)  # everything it started has exited: a stale record


def _check_ports_free(plan: Plan) -> None:
    taken = [service for service in plan.services if service.port is not None and not _port_free(service.port)]
    if taken:
        lines = [f"port {s.port} ({s.name}) is in use by another process" for s in taken]
        hint = " ".join(f"--port {s.name}=N" for s in taken)
        raise StackError("\n".join(lines) + f"\nstop what holds it, or choose other ports: {hint}")


def _port_free(port: int) -> bool:
    # SO_REUSEADDR like the servers themselves: a port in TIME_WAIT is free for them too.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _start(service: LocalService, plan: Plan, environ: dict[str, str]) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    render_service(service, plan.options)
    service.workdir.mkdir(parents=True, exist_ok=True)
    plan.options.data_dir(service.name).mkdir(parents=True, exist_ok=True)
    for path in service.paths.values():
        if path.is_relative_to(plan.options.state_dir / "data"):  # named volumes
            path.mkdir(parents=True, exist_ok=True)
    for key, value in service.env.items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    log_path = plan.options.state_dir / "logs" / f"{service.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"--- breakerpanel up {time.strftime('%Y-%m-%dT%H:%M:%S')}: {shlex.join(service.argv)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            service.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=service.workdir,
            env=environ,
            # Its own session: the group id is its PID, `down` signals the whole group (workers,
            # children) and a Ctrl-C in the terminal that ran `up` does not reach it.
            start_new_session=True,
        )
    info = process_info(process.pid)
    record = ProcessRecord(
        name=service.name,
        pid=process.pid,
        start_ticks=info.start_ticks if info is not None else 0,
        port=service.port,
        url=service.url,
        log=str(log_path),
        argv=list(service.argv),
    )
    return process, record


def _wait_ready(service: LocalService, process: subprocess.Popen[bytes], record: ProcessRecord, timeout: float) -> None:
    started = time.monotonic()
    while True:
        code = process.poll()
        if code is not None:
            raise StackError(f"{service.name} exited with code {code} while starting; {_tail(record.log)}")
        if service.probe.ready(service.port, time.monotonic() - started):
            return
        if time.monotonic() - started >= timeout:
            raise StackError(f"{service.name} did not answer within {timeout:g}s; {_tail(record.log)}")
        time.sleep(_POLL_S)


def _tail(log: str) -> str:
    lines = Path(log).read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
    return f"log {log}:\n" + "\n".join("  " + line for line in lines)


def _stop_all(state: StackState, *, timeout: float = 10.0) -> list[Stopped]:
    return [_stop(record, timeout) for record in reversed(state.processes)]


def _stop(record: ProcessRecord, timeout: float) -> Stopped:
    """SIGTERM the group, SIGKILL it after ``timeout``; never signal a group that is not ours."""
    leader = process_info(record.pid)
    leader_ours = leader is not None and leader.start_ticks == record.start_ticks
    if leader is not None and not leader_ours:
        # The PID (and so the group id) now belongs to a stranger: our group is long gone.
        return Stopped(record.name, record.pid, "not running")
    if not group_members(record.pid, started_at_or_after=record.start_ticks):
        return Stopped(record.name, record.pid, "not running")
    signal_group(record.pid, signal.SIGTERM)
    if wait_group_empty(record.pid, started_at_or_after=record.start_ticks, timeout=timeout):
        return Stopped(record.name, record.pid, "stopped")
    signal_group(record.pid, signal.SIGKILL)
    wait_group_empty(record.pid, started_at_or_after=record.start_ticks, timeout=5.0)
    return Stopped(record.name, record.pid, "killed")
