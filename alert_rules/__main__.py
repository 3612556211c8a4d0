"""``python -m alert_rules [--check] [--config FILE] [--output FILE] [--alertmanager FILE]``: write (or
check) the rule file and the Alertmanager configuration that goes with it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from breaker.config import ConfigFileError

from . import ALERTMANAGER_FILE, DEFAULT_CONFIG, RULES_FILE, load_rules_config, render, render_alertmanager_for


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alert_rules", description=__doc__)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the rules' configuration (YAML)")
    parser.add_argument("--output", type=Path, default=RULES_FILE, help="the rule file to write")
    parser.add_argument(
        "--alertmanager", type=Path, default=ALERTMANAGER_FILE, help="the Alertmanager configuration to write"
    )
    parser.add_argument("--check", action="store_true", help="fail if a file is not what would be written")
    args = parser.parse_args(argv)
    try:
        config = load_rules_config(args.config)
        files = {args.output: render(config), args.alertmanager: render_alertmanager_for(config)}
    except ConfigFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    stale = 0
    for path, text in files.items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        if args.check:
            print(f"{path} is stale: run `make rules`", file=sys.stderr)
            stale += 1
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
