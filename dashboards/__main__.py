"""``python -m dashboards [--check]``: write (or check) dashboards/generated/ from the sources."""

from __future__ import annotations

import argparse
import sys

from . import GENERATED_DIR, generate, stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail, listing them, if generated files are stale")
    args = parser.parse_args(argv)
    expected = generate()
    outdated = stale(expected)
    if args.check:
        for path in outdated:
            print(f"{path} is stale: run `make dashboards`", file=sys.stderr)
        return 1 if outdated else 0
    GENERATED_DIR.mkdir(parents=True, exist_ok=True)
    for path in outdated:
        if path in expected:
            path.write_text(expected[path])
            print(f"wrote {path}")
        else:
            path.unlink()
            print(f"removed {path} (no source makes it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
