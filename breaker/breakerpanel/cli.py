"""``breakerpanel``: the command line.

What the installed package does by itself::

    breakerpanel rules --config FILE --output FILE --alertmanager FILE   Prometheus rules (and promtool tests
                                                                         of them) from an SLO config
    breakerpanel alertmanager --config FILE --output FILE                the route to the bot, inhibit rules
    breakerpanel dashboards --output DIR                                 Grafana dashboards' JSON
    breakerpanel mesh istio|linkerd --config FILE [--out DIR]            mesh policies from breakers.yaml
    breakerpanel bot [--host H] [--port P]                               the incident bot (Alertmanager in)

What a checkout of the repository adds (the demo stack; ``docker compose up`` runs the same)::

    breakerpanel up | down | status | load | chaos

Each command hands its arguments to the module that owns it; a command whose extra is not
installed says which one to ``pip install``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["COMMANDS", "Command", "main"]


@dataclass(frozen=True)
class Command:
    """One ``breakerpanel`` command: the module whose ``main(argv)`` runs it."""

    summary: str
    module: str
    #: The extra whose dependencies the command imports ("" for none); named when one is missing.
    extra: str = ""
    #: Passed before the user's arguments (the demo's CLI takes the command name itself).
    prefix: tuple[str, ...] = ()
    #: Only in a checkout of the repository (the demo is not part of the wheel).
    checkout_only: bool = False
    #: The module's function that takes the arguments.
    function: str = "main"


def _demo(name: str, summary: str) -> Command:
    return Command(summary, "demo.cli", extra="demo", prefix=(name,), checkout_only=True)


COMMANDS: dict[str, Command] = {
    "rules": Command(
        "write Prometheus recording and alert rules from an SLO config", "breakerpanel.alert_rules.__main__", "config"
    ),
    "dashboards": Command("write the Grafana dashboards' JSON", "breakerpanel.dashboards.__main__", "dashboards"),
    "alertmanager": Command(
        "write an Alertmanager configuration: the route to the bot, inhibit rules",
        "breakerpanel.alert_rules.__main__",
        "config",
        function="alertmanager_main",
    ),
    "mesh": Command("write Istio or Linkerd policies that agree with a breakers.yaml", "breakerpanel.mesh", "config"),
    "bot": Command(
        "run the incident bot (Alertmanager webhooks in, PagerDuty and Slack out)",
        "breakerpanel.incident_bot.__main__",
        "incident-bot",
    ),
    "up": _demo("up", "start the demo stack as local processes (checkout)"),
    "down": _demo("down", "stop what `up` started (checkout)"),
    "status": _demo("status", "the demo stack's services, URLs, breaker states (checkout)"),
    "load": _demo("load", "steady traffic to the demo (checkout)"),
    "chaos": _demo("chaos", "break or heal one of the demo's upstreams (checkout)"),
}

#: Third-party modules are named by the extra that installs them; our own missing modules are bugs.
_OWN = ("breakerpanel", "demo")


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: breakerpanel COMMAND [ARGS...]   (breakerpanel COMMAND --help for one)", "", "commands:"]
    lines += [f"  {name:<{width}}  {command.summary}" for name, command in COMMANDS.items()]
    return "\n".join(lines)


def _entry(name: str, command: Command) -> Callable[[list[str]], int] | str:
    """The command's ``main``, or the one line that says why it cannot run here."""
    try:
        module = importlib.import_module(command.module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if command.checkout_only and missing.split(".")[0] == "demo":
            return (
                f"breakerpanel {name}: runs the demo stack from a checkout of the repository "
                "(it is not part of the installed package): run it from the checkout's venv"
            )
        if missing.split(".")[0] in _OWN:
            raise
        if str(exc).startswith("breakerpanel"):  # breakerpanel._extras.require: names its extra
            return f"breakerpanel {name}: {exc}"
        hint = f"pip install 'breakerpanel[{command.extra}]'"
        return f"breakerpanel {name}: needs {missing!r}, which is not installed: {hint}"
    entry: Callable[[list[str]], int] = getattr(module, command.function)
    return entry


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    command = COMMANDS.get(name)
    if command is None:
        print(f"breakerpanel: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    entry = _entry(name, command)
    if isinstance(entry, str):
        print(entry, file=sys.stderr)
        return 1
    return entry([*command.prefix, *rest])


if __name__ == "__main__":
    sys.exit(main())
