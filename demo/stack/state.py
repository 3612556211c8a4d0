"""The state file of a running local stack: what ``up`` started, for ``status`` and ``down``.

Written after every start (not only at the end), so that an ``up`` that fails or is interrupted
half-way still leaves ``down`` the record of what it has to stop.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .procs import process_info

__all__ = ["ProcessRecord", "StackState", "StateFileError", "load_state", "save_state"]


class StateFileError(Exception):
    """The stack's state file exists but cannot be read: the message names it, says why and what to do."""


STATE_FILE = "state.json"


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    pid: int
    start_ticks: int
    port: int | None
    url: str | None
    log: str
    argv: list[str]

    def running(self) -> bool:
        """Whether the process we started is still alive (not a stranger that reuses its PID)."""
        info = process_info(self.pid)
        return info is not None and not info.zombie and info.start_ticks == self.start_ticks


@dataclass
class StackState:
    state_dir: str
    started_at: float
    processes: list[ProcessRecord] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def record(self, name: str) -> ProcessRecord | None:
        return next((p for p in self.processes if p.name == name), None)

    def url(self, name: str) -> str | None:
        record = self.record(name)
        return None if record is None or record.port is None else f"http://127.0.0.1:{record.port}"


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def save_state(state: StackState) -> None:
    """Write atomically: a reader (``status`` while ``up`` runs) never sees half a file."""
    path = state_path(Path(state.state_dir))
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(state), indent=2) + "\n")
    os.replace(temporary, path)


def load_state(state_dir: Path) -> StackState | None:
    path = state_path(state_dir)
    try:
        raw = json.loads(path.read_text())
        processes = [ProcessRecord(**entry) for entry in raw.pop("processes")]
        return StackState(processes=processes, **raw)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        # Hand-edited, truncated by a full disk, or a directory: say which file, and the way out.
        reason = f"no {exc}" if isinstance(exc, KeyError) else str(exc) or type(exc).__name__
        raise StateFileError(
            f"{path}: cannot read the stack's state ({reason}); if no stack runs, remove it "
            "(processes it lists may still run: check `ps`)"
        ) from None


def remove_state(state_dir: Path) -> None:
    state_path(state_dir).unlink(missing_ok=True)
