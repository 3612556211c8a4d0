"""``python -m alert_rules [--check] [--config FILE] [--output FILE]``: write (or check) the rule file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from breaker.config import ConfigFileError

from . import DEFAULT_CONFIG, RULES_FILE, load_rules_config, render


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alert_rules", description=__doc__)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the rules' configuration (YAML)")
    parser.add_argument("--output", type=Path, default=RULES_FILE, help="the rule file to write")
    parser.add_argument("--check", action="store_true", help="fail if the rule file is not what would be written")
    args = parser.parse_args(argv)
    try:
        text = render(load_rules_config(args.config))
    except ConfigFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    current = args.output.read_text() if args.output.exists() else None
    if args.check:
        if current != text:
            print(f"{args.output} is stale: run `make rules`", file=sys.stderr)
            return 1
        return 0
    if current != text:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
