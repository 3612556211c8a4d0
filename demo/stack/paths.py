"""Where the stack's files are: the repository's (read) and the running stack's (written)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

__all__ = ["COMPOSE_FILE", "DOTENV_FILE", "REPO_ROOT", "STATE_DIR_ENV", "default_state_dir"]

#: demo/ is never installed as a package (pyproject's wheel holds the library only), so this file
#: always sits in a checkout and the repository is two levels up.
REPO_ROOT: Final = Path(__file__).resolve().parents[2]
COMPOSE_FILE: Final = REPO_ROOT / "docker-compose.yml"
DOTENV_FILE: Final = REPO_ROOT / ".env"

#: Overrides the state folder, so that tests (or a second stack) never touch the default one.
STATE_DIR_ENV: Final = "BREAKERPANEL_STACK_DIR"


def default_state_dir() -> Path:
    """The running stack's folder: logs, rendered configs, data, the state file (``.stack/``)."""
    configured = os.environ.get(STATE_DIR_ENV)
    return Path(configured).absolute() if configured else REPO_ROOT / ".stack"
