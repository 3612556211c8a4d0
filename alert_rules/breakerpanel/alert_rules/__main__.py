"""``python -m breakerpanel.alert_rules [--check] [--config FILE] [--output FILE] [--tests FILE]
[--alertmanager FILE]``: write (or check) the rule file, promtool unit tests of it, and the
Alertmanager configuration that goes with it.

``breakerpanel rules`` is this command; ``breakerpanel alertmanager`` writes the Alertmanager
configuration alone (:func:`alertmanager_main`). Without ``--config`` they read the repository's
``alert_rules/config.yaml`` and write where the stack reads (a checkout); a service of its own
passes its configuration and output paths."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from breakerpanel._outputs import checkout_default, require_options, write_or_check
from breakerpanel.config import ConfigFileError

from . import (
    ALERTMANAGER_FILE,
    DEFAULT_CONFIG,
    RULES_FILE,
    TESTS_FILE,
    RulesConfig,
    load_rules_config,
    render,
    render_alertmanager_for,
    render_unit_tests,
)

__all__ = ["alertmanager_main", "main", "unit_tests_for"]


def main(argv: list[str] | None = None) -> int:
    parser = _parser("python -m breakerpanel.alert_rules", __doc__)
    parser.add_argument(
        "--output",
        type=Path,
        default=checkout_default(RULES_FILE, marker=DEFAULT_CONFIG),
        help="the rule file to write",
    )
    parser.add_argument(
        "--tests",
        type=Path,
        default=None,
        help="the promtool unit tests of the rules to write (default: tests/<rules>.test.yaml in the rule file's "
        "folder: a folder of their own, which a rule glob such as rules/*.yaml does not reach)",
    )
    parser.add_argument(
        "--alertmanager",
        type=Path,
        default=checkout_default(ALERTMANAGER_FILE, marker=DEFAULT_CONFIG),
        help="the Alertmanager configuration to write",
    )
    args = parser.parse_args(argv)
    require_options(parser, args, "output", "alertmanager")
    tests = _tests_path(args.tests, args.output)
    # promtool reads rule_files relative to the test file.
    rule_file = Path(os.path.relpath(args.output.resolve(), tests.resolve().parent)).as_posix()
    return _write(
        args,
        lambda config: {
            args.output: render(config),
            tests: render_unit_tests(config, rule_file),
            args.alertmanager: render_alertmanager_for(config),
        },
        "make rules" if args.config is None else "breakerpanel rules",
    )


def _tests_path(tests: Path | None, rules: Path) -> Path:
    if tests is not None:
        return tests
    # The stack's rule folder is a Prometheus rule glob (*.yaml): its tests go with the hand-written ones.
    return TESTS_FILE if rules.resolve() == RULES_FILE else unit_tests_for(rules)


def unit_tests_for(rules: Path) -> Path:
    """The unit tests' default path: ``rules/x.yaml`` -> ``rules/tests/x.test.yaml``.

    Not beside the rules: Prometheus loads its rule files by glob (``rules/*.yaml``), and a test
    file it read as rules would fail its configuration's reload. A glob does not reach into a
    subfolder."""
    return rules.parent / "tests" / f"{rules.stem}.test{rules.suffix or '.yaml'}"


def alertmanager_main(argv: list[str] | None = None) -> int:
    """``breakerpanel alertmanager``: the route to the incident bot and the inhibit rules, alone."""
    parser = _parser(
        "breakerpanel alertmanager",
        "Write (or check) an Alertmanager configuration: the route to the incident bot and one pair of inhibit "
        "rules per service of the configuration's breakers_file.",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=checkout_default(ALERTMANAGER_FILE, marker=DEFAULT_CONFIG),
        help="the configuration to write",
    )
    args = parser.parse_args(argv)
    require_options(parser, args, "output")
    return _write(args, lambda config: {args.output: render_alertmanager_for(config)}, "breakerpanel alertmanager")


def _parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="the rules' configuration (YAML); default: a checkout's alert_rules/config.yaml, else built-in defaults",
    )
    parser.add_argument("--check", action="store_true", help="fail if a file is not what would be written")
    return parser


def _write(args: argparse.Namespace, files_for: Callable[[RulesConfig], Mapping[Path, str]], remake: str) -> int:
    try:
        files = files_for(load_rules_config(args.config))
    except ConfigFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    return write_or_check(files, check=args.check, remake=remake)


if __name__ == "__main__":
    sys.exit(main())
