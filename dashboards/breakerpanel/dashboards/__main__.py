"""``python -m breakerpanel.dashboards [--check] [--output DIR] [--config FILE] [--datasource-uid UID]
[--job REGEX]``: write (or check) the dashboards' JSON; in a checkout, by default into
dashboards/generated/ (what the stack's Grafana provisions). ``--config`` is the alert rules'
configuration the SLO dashboard follows."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from breakerpanel import dashboards
from breakerpanel._extras import require
from breakerpanel._outputs import checkout_default, require_options, write_or_check

from . import DATASOURCE_UID, DashboardOptions, generate

# The command builds dashboards, which needs grafanalib: said up front, in one line (the package
# itself imports it only when it builds one).
require("breakerpanel.dashboards", "dashboards", "grafanalib")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m breakerpanel.dashboards", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail, listing them, if generated files are stale")
    parser.add_argument(
        "--output",
        type=Path,
        # Read when called: the tests point GENERATED_DIR elsewhere.
        default=checkout_default(dashboards.GENERATED_DIR),
        help="the directory to write (default: a checkout's dashboards/generated/)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="the alert rules' configuration (default: a checkout's alert_rules/config.yaml, else built-in defaults)",
    )
    parser.add_argument(
        "--datasource-uid", default=DATASOURCE_UID, help="the Prometheus datasource selected first (%(default)s)"
    )
    parser.add_argument("--job", default="", metavar="REGEX", help="list only the jobs that match (default: all)")
    args = parser.parse_args(argv)
    try:
        options = DashboardOptions(datasource_uid=args.datasource_uid, job_regex=args.job)
    except ValueError as exc:
        parser.error(str(exc))
    require_options(parser, args, "output")
    directory: Path = args.output
    rules = None
    if args.config is not None:
        from breakerpanel.config import ConfigFileError
        from breakerpanel.exporter.rules_config import load_rules_config

        try:
            rules = load_rules_config(args.config)
        except ConfigFileError as exc:
            print(exc, file=sys.stderr)
            return 2
    expected = generate(directory, rules, options)
    remake = "make dashboards" if args.output == dashboards.GENERATED_DIR else "breakerpanel dashboards"
    obsolete = directory.glob("*.json") if directory.is_dir() else ()
    return write_or_check(expected, check=args.check, remake=remake, obsolete=obsolete)


if __name__ == "__main__":
    sys.exit(main())
