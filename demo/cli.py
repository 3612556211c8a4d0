"""``breakerpanel``: run the demo stack locally and play with it.

::

    breakerpanel up [--fast] [--port NAME=PORT] [--skip NAME]   start the stack as local processes
                    [--env NAME:VAR=VALUE] [--rule-file FILE]
    breakerpanel status                                          services, URLs, breakers, faults
    breakerpanel load --rps 5 --duration 2m                      steady traffic to the demo
    breakerpanel chaos openai outage --for 60s                   break an upstream (chaos clear heals)
    breakerpanel down                                            stop what `up` started

With Docker, ``docker compose up`` runs the same stack in containers; ``up`` is for machines
without it, and derives everything from docker-compose.yml. ``breakerpanel`` (breakerpanel.cli)
hands these commands to this module in a checkout; its own commands (rules, alertmanager,
dashboards, mesh, bot) work from an installed package too.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from breakerpanel.durations import parse_duration
from breakerpanel.mesh import port_assignment
from demo.load import positive_number
from demo.stack import binaries, load_runner, status, supervisor
from demo.stack.chaos_client import FAULTS, UPSTREAMS, ChaosClient, ChaosError, describe, fault_body
from demo.stack.compose import ComposeError, load_compose
from demo.stack.paths import COMPOSE_FILE, default_state_dir
from demo.stack.state import StackState, StateFileError, load_state
from demo.stack.topology import LocalService, Plan, PlanError, StackOptions, plan_stack

__all__ = ["main"]

#: The intervals ``--fast`` sets: what tests use to see an alert reach the bot within seconds.
FAST = {"scrape_interval": "1s", "evaluation_interval": "1s", "group_wait": "0s", "group_interval": "1s"}
DEFAULT_DEMO_URL = "http://127.0.0.1:8000"
DEFAULT_UPSTREAMS_URL = "http://127.0.0.1:8600"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except (supervisor.StackError, PlanError, ComposeError, ChaosError, StateFileError) as exc:
        print(f"breakerpanel {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


# -- up / down / status


def _up(args: argparse.Namespace) -> int:
    options = _options(args)
    try:
        supervisor.refuse_if_running(options.state_dir)
        compose = load_compose(COMPOSE_FILE)
        binaries.install_missing_packages(skip=options.skip)
        plan = plan_stack(compose, options, which=binaries.preferred_which)
        for name, why in plan.skipped.items():
            print(f"  {name:<12}  not started: {why}")
        print(f"starting {len(plan.services)} services (logs in {options.state_dir / 'logs'})", flush=True)
        # up() checks again, under its lock: another `up` may have started meanwhile.
        state = supervisor.up(plan, report=_report_ready, timeout=args.timeout)
    except supervisor.AlreadyRunningError as running:
        print(f"already running (started by an earlier `breakerpanel up`): {running.state.state_dir}")
        _print_urls(running.state)
        return 0
    _print_next_steps(plan, state)
    return 0


def _report_ready(service: LocalService, seconds: float) -> None:
    where = service.url or "running"
    print(f"  {service.name:<12}  ready in {seconds:4.1f}s  {where}", flush=True)


def _print_urls(state: StackState) -> None:
    for record in state.processes:
        print(f"  {record.name:<12}  {record.url or 'running'}")


def _print_next_steps(plan: Plan, state: StackState) -> None:
    if "grafana" in plan.skipped:
        prometheus = state.url("prometheus") or "http://127.0.0.1:9090"
        print(
            "dashboards: no Grafana binary here. Install Grafana (grafana-server or grafana on PATH) and run\n"
            "  `breakerpanel up` again to have it provisioned from deploy/grafana; or import\n"
            "  dashboards/generated/*.json into any Grafana with a Prometheus datasource of uid\n"
            f"  breakerpanel-prometheus at {prometheus}. Meanwhile {prometheus}/alerts shows the\n"
            "  rules and alerts, and `breakerpanel status` the breakers."
        )
    print("next: `breakerpanel chaos openai outage --for 60s`, `breakerpanel status`, `breakerpanel down`")


def _down(args: argparse.Namespace) -> int:
    stopped = supervisor.down(args.state_dir)
    if not stopped:
        print(f"nothing to stop: no stack recorded in {args.state_dir}")
    for entry in stopped:
        print(f"  {entry.name:<12}  {entry.outcome} (process group {entry.pid})")
    return 0


def _status(args: argparse.Namespace) -> int:
    compose = load_compose(COMPOSE_FILE)
    state, statuses = status.collect(args.state_dir, compose)
    running = {s.name for s in statuses if s.health == "up"}
    demo_url = _service_url(state, "demo", DEFAULT_DEMO_URL) if "demo" in running else None
    upstreams_url = _service_url(state, "upstreams", DEFAULT_UPSTREAMS_URL) if "upstreams" in running else None
    status.render(state, statuses, demo_url=demo_url, upstreams_url=upstreams_url)
    return 0


def _service_url(state: StackState | None, name: str, default: str) -> str:
    url = state.url(name) if state is not None else None
    return url or default


# -- load / chaos


def _load(args: argparse.Namespace) -> int:
    url = args.url or _service_url(load_state(args.state_dir), "demo", DEFAULT_DEMO_URL)
    print(f"load: {args.rps:g} requests/s to {url} for {args.duration:g}s (Ctrl-C stops)")
    report = load_runner.run(url, args.rps, args.duration)
    print(f"done: {report.line()}")
    # Users must never get a 5xx because a dependency is down: say so when they did.
    if report.server_errors:
        print(f"{report.server_errors} answers were server errors (5xx)", file=sys.stderr)
        return 1
    return 0


def _chaos(args: argparse.Namespace) -> int:
    url = args.url or _service_url(load_state(args.state_dir), "upstreams", DEFAULT_UPSTREAMS_URL)
    client = ChaosClient(url)
    upstream = None if args.upstream in (None, "all") else args.upstream
    if args.fault is None:
        states = client.show(upstream)
    elif args.fault == "clear":
        states = client.clear(upstream)
    else:
        if upstream is None:
            raise ChaosError("name one upstream to break: " + ", ".join(UPSTREAMS))
        body = fault_body(
            args.fault,
            for_s=args.for_s,
            rate=args.rate,
            status=args.status,
            seconds=args.seconds,
            mode=args.mode,
            retry_after_s=args.retry_after,
            chunk_delay_s=args.chunk_delay,
            after_chunks=args.after_chunks,
            stall_s=args.stall,
        )
        states = {upstream: client.set(upstream, body)}
    for name, state in states.items():
        print(describe(name, state))
    return 0


def _options(args: argparse.Namespace) -> StackOptions:
    fast = FAST if args.fast else {}
    return StackOptions(
        state_dir=args.state_dir,
        ports=dict(args.port),
        skip=frozenset(args.skip),
        scrape_interval=args.scrape_interval or fast.get("scrape_interval"),
        evaluation_interval=args.evaluation_interval or fast.get("evaluation_interval"),
        group_wait=args.group_wait or fast.get("group_wait"),
        group_interval=args.group_interval or fast.get("group_interval"),
        rule_files=tuple(args.rule_file),
        env=_service_env(args.env),
    )


def _service_env(pairs: Sequence[tuple[str, str, str]]) -> dict[str, dict[str, str]]:
    env: dict[str, dict[str, str]] = {}
    for service, name, value in pairs:
        env.setdefault(service, {})[name] = value
    return env


def _env(text: str) -> tuple[str, str, str]:
    service, sep, assignment = text.partition(":")
    name, equals, value = assignment.partition("=")
    if not sep or not service or not equals or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected SERVICE:NAME=VALUE, got {text!r}")
    return service, name, value


def _duration(text: str) -> float:
    """A positive duration on the command line: ``60s``, ``5m``, ``1h30m``, ``1.5s`` or seconds."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{exc} (try 60s, 5m, 1h30m or a number of seconds)") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"a duration must be positive, got {text!r}")
    return seconds


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="breakerpanel", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    state = argparse.ArgumentParser(add_help=False)
    state.add_argument(
        "--state-dir",
        type=Path,
        default=default_state_dir(),
        help="the running stack's folder: logs, configs, data, state (default: %(default)s; "
        "env BREAKERPANEL_STACK_DIR)",
    )

    up = commands.add_parser("up", parents=[state], help="start the stack as local processes")
    up.add_argument(
        "--port", type=port_assignment, action="append", default=[], metavar="NAME=PORT", help="move a service"
    )
    up.add_argument("--skip", action="append", default=[], metavar="NAME", help="leave a service out")
    up.add_argument(
        "--env",
        type=_env,
        action="append",
        default=[],
        metavar="SERVICE:NAME=VALUE",
        help="set a variable in a service's environment, over compose's and .env's (repeatable)",
    )
    up.add_argument("--fast", action="store_true", help="1s scrape and evaluation, group_wait 0s (for tests)")
    up.add_argument("--scrape-interval", help="Prometheus scrape_interval (e.g. 1s)")
    up.add_argument("--evaluation-interval", help="Prometheus evaluation_interval")
    up.add_argument("--group-wait", help="Alertmanager group_wait (0s allowed)")
    up.add_argument("--group-interval", help="Alertmanager group_interval (more than 0s)")
    up.add_argument(
        "--rule-file", type=Path, action="append", default=[], help="load these rule files instead of compose's"
    )
    up.add_argument("--timeout", type=_duration, default=60.0, help="per-service start timeout (default: 60s)")
    up.set_defaults(handler=_up)

    down = commands.add_parser("down", parents=[state], help="stop what `up` started")
    down.set_defaults(handler=_down)
    show = commands.add_parser("status", parents=[state], help="services, URLs, breaker states, faults")
    show.set_defaults(handler=_status)

    load = commands.add_parser("load", parents=[state], help="steady traffic to the demo's /v1/ask")
    load.add_argument("--url", help="the demo service (default: the running stack's)")
    load.add_argument("--rps", type=positive_number, default=5.0, help="requests per second (default: %(default)s)")
    load.add_argument("--duration", type=_duration, default=60.0, help="how long: 60s, 5m... (default: 60s)")
    load.set_defaults(handler=_load)

    chaos = commands.add_parser(
        "chaos",
        parents=[state],
        help="break or heal an upstream",
        description="`chaos` shows every fault, `chaos UPSTREAM FAULT [options]` sets one, "
        "`chaos UPSTREAM clear` (or `chaos all clear`) heals.",
    )
    chaos.add_argument("upstream", nargs="?", choices=[*UPSTREAMS, "all"])
    chaos.add_argument("fault", nargs="?", type=lambda s: s.replace("-", "_"), choices=[*FAULTS, "clear"])
    chaos.add_argument("--for", dest="for_s", type=_duration, help="clear the fault after this long")
    chaos.add_argument("--rate", type=float, help="error_rate: share of requests that fail, 0 to 1")
    chaos.add_argument("--status", type=int, help="error_rate: HTTP status of the failures")
    chaos.add_argument("--seconds", type=_duration, help="latency: delay added to every request")
    chaos.add_argument("--mode", choices=["error", "reset"], help="outage: answer 503 or drop the connection")
    chaos.add_argument("--retry-after", type=_duration, help="rate_limit: Retry-After announced")
    chaos.add_argument("--chunk-delay", type=_duration, help="slow_stream: pause between chunks")
    chaos.add_argument("--after-chunks", type=int, help="stall_stream: chunks sent before stalling")
    chaos.add_argument("--stall", type=_duration, help="stall_stream: how long the stall lasts")
    chaos.add_argument("--url", help="the fake upstreams (default: the running stack's)")
    chaos.set_defaults(handler=_chaos)

    return parser


if __name__ == "__main__":
    sys.exit(main())
