"""The local stack planned from docker-compose.yml: which services run here, how, on which ports.

Every service ``docker compose up`` starts is either run locally (:data:`PROGRAMS` says with which
program and how to tell it is up) or is Docker-only (:data:`DOCKER_ONLY` says why, and what its
clients fall back to). Services behind a compose profile (the real Qdrant, ``--profile
real-qdrant``) are opt-in and not part of that topology: the local stack never runs them. Commands,
environments, ports and files all come from the compose service, rewritten for 127.0.0.1
(:mod:`.rewrite`), so every reference goes to the same peer as in compose; only what a container
image supplies implicitly (the binary, Grafana's paths, Redis's listener) is added here.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from .compose import ComposeFile, ComposeService
from .dotenv import read_dotenv
from .paths import REPO_ROOT
from .probes import HttpProbe, Probe, RedisProbe, RunningProbe
from .rewrite import LOOPBACK, Endpoint, Rewriter

__all__ = [
    "DOCKER_ONLY",
    "PROGRAMS",
    "LocalService",
    "Plan",
    "PlanError",
    "Program",
    "StackOptions",
    "Which",
    "plan_stack",
]

#: Compose services with no local process, and what their clients do instead: references to them
#: are dropped (the variable unset), so that the programs fall back to their defaults.
DOCKER_ONLY: Final[Mapping[str, str]] = {
    "postgres": "no PostgreSQL here: the demo and the incident bot keep their data in SQLite files",
}

#: Directory of the files compose mounts that mention other services or container paths: they are
#: rendered for the local stack; anything mounted from elsewhere (rules, dashboards) is used as is.
RENDERED_SOURCES: Final = REPO_ROOT / "deploy"
SECRETS_DIR: Final = RENDERED_SOURCES / "secrets"


@dataclass(frozen=True)
class Program:
    """How a compose service runs as a local process.

    ``executables`` are looked up on PATH in order (empty: this Python). ``package`` is the Debian
    package providing them. Without the program a ``required`` service stops ``up``; an optional
    one is left out, and services depending on it run without it. ``entrypoint`` is what the
    service's image runs before compose's ``command`` (its ENTRYPOINT), as the executable's first
    arguments here.
    """

    probe: Probe
    executables: tuple[str, ...] = ()
    package: str | None = None
    required: bool = True
    url_path: str = "/"
    scheme: str = "http"
    entrypoint: tuple[str, ...] = ()

    def url(self, port: int) -> str:
        return f"{self.scheme}://{LOOPBACK}:{port}{self.url_path}"


PROGRAMS: Final[Mapping[str, Program]] = {
    "prometheus": Program(HttpProbe("/-/ready"), ("prometheus",), "prometheus"),
    "alertmanager": Program(HttpProbe("/-/ready"), ("prometheus-alertmanager",), "prometheus-alertmanager"),
    "grafana": Program(HttpProbe("/api/health"), ("grafana-server", "grafana"), required=False),
    "redis": Program(RedisProbe(), ("redis-server",), "redis-server", required=False, url_path="", scheme="redis"),
    "upstreams": Program(HttpProbe("/chaos"), url_path="/docs"),
    "demo": Program(HttpProbe("/health/live"), url_path="/health/ready"),
    # Its image's entrypoint is the console script `breakerpanel bot` (deploy/Dockerfile): its module here.
    "incident-bot": Program(HttpProbe("/readyz"), entrypoint=("-m", "breakerpanel.cli", "bot")),
    "load": Program(RunningProbe()),
}

_GRAFANA_HOMES: Final = (Path("/usr/share/grafana"), Path("/usr/local/share/grafana"))


class PlanError(RuntimeError):
    """The local stack cannot be planned: a required program is missing, a name is unknown."""


@dataclass(frozen=True)
class StackOptions:
    """What a run may change: ports, left-out services, and short intervals for tests."""

    state_dir: Path
    ports: Mapping[str, int] = field(default_factory=dict)
    skip: frozenset[str] = frozenset()
    scrape_interval: str | None = None
    evaluation_interval: str | None = None
    group_wait: str | None = None
    group_interval: str | None = None
    #: Replace the rule files Prometheus loads (e.g. rules rendered with short ``for:`` durations).
    rule_files: tuple[Path, ...] = ()
    #: Service -> variables set in its environment on top of compose's (env files, ``environment:``)
    #: and of what ``up`` adds: e.g. the incident bot pointed at a test's PagerDuty and Slack.
    env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def data_dir(self, service: str) -> Path:
        return self.state_dir / "data" / service

    @property
    def config_dir(self) -> Path:
        """Rendered copies of deploy/ files, at the same relative paths."""
        return self.state_dir / "config"


@dataclass(frozen=True)
class LocalService:
    name: str
    argv: tuple[str, ...]
    #: Set on top of the environment ``up`` runs in; None values are removed from it.
    env: Mapping[str, str | None]
    port: int | None
    probe: Probe
    workdir: Path
    depends_on: tuple[str, ...]
    #: Container path -> local path of every mount, rendered ones pointing at their rendered copy.
    paths: Mapping[str, Path]
    #: Mount sources to render (compose source -> rendered copy), with the rewriter to apply.
    renders: Mapping[Path, Path]
    rewriter: Rewriter

    @property
    def url(self) -> str | None:
        return None if self.port is None else PROGRAMS[self.name].url(self.port)


@dataclass(frozen=True)
class Plan:
    services: tuple[LocalService, ...]
    #: Compose services left out, with the reason.
    skipped: Mapping[str, str]
    options: StackOptions

    def service(self, name: str) -> LocalService:
        return next(s for s in self.services if s.name == name)


Which = Callable[[str], str | None]


def plan_stack(compose: ComposeFile, options: StackOptions, *, which: Which = shutil.which) -> Plan:
    """The local services in start order (dependencies first), or PlanError naming what is missing."""
    unknown = (set(options.skip) | set(options.ports) | set(options.env)) - set(PROGRAMS)
    if unknown:
        raise PlanError(f"unknown service(s) {sorted(unknown)}: choose from {sorted(PROGRAMS)}")
    undecided = set(compose.services) - set(PROGRAMS) - set(DOCKER_ONLY)
    if undecided:
        raise PlanError(
            f"docker-compose.yml services {sorted(undecided)} have no local program and are not Docker-only"
        )

    skipped: dict[str, str] = {name: why for name, why in DOCKER_ONLY.items() if name in compose.services}
    # Services with no local counterpart: references to them are dropped, not rewritten.
    absent = set(skipped)
    executables: dict[str, str] = {}
    missing: list[str] = []
    for name in compose.services:
        program = PROGRAMS.get(name)
        if program is None or name in skipped:
            continue
        if name in options.skip:
            skipped[name] = "left out (--skip)"
            continue
        found = _find(program, which)
        if found is not None:
            executables[name] = found
        elif program.required:
            missing.append(_missing(name, program))
        else:
            skipped[name] = _absent(name, program)
            absent.add(name)
    if missing:
        raise PlanError("\n".join(missing))
    _skip_dependents(compose, skipped)
    # Opt-in services compose itself leaves out unless asked: listed, never run (nothing that runs
    # by default depends on them, compose.load_compose checks).
    for name, service in compose.inactive.items():
        skipped[name] = f"opt-in, docker compose only (--profile {' or '.join(service.profiles)})"

    ports = {name: options.ports.get(name, service.port) for name, service in compose.services.items()}
    endpoints = _endpoints(compose, ports, absent)
    order = _start_order(compose, [name for name in compose.services if name not in skipped])
    services = tuple(
        _local(compose.services[name], executables[name], options, endpoints, ports[name], compose) for name in order
    )
    return Plan(services=services, skipped=skipped, options=options)


def _find(program: Program, which: Which) -> str | None:
    if not program.executables:
        return sys.executable
    return next((found for name in program.executables if (found := which(name))), None)


def _missing(name: str, program: Program) -> str:
    names = " or ".join(program.executables)
    return (
        f"{name}: {names} not found on PATH; install the Debian package {program.package!r} "
        f"(apt-get install -y --no-install-recommends {program.package}, or `make system-deps`)"
    )


def _absent(name: str, program: Program) -> str:
    names = " or ".join(program.executables)
    how = f" (Debian package {program.package!r})" if program.package else ""
    return f"no {names} on PATH{how}"


def _skip_dependents(compose: ComposeFile, skipped: dict[str, str]) -> None:
    """Leave out what depends on a left-out service, unless the dependency is one it can run without
    (an optional program, or a Docker-only service its clients have a fallback for)."""
    soft = {name for name, program in PROGRAMS.items() if not program.required} | set(DOCKER_ONLY)
    changed = True
    while changed:
        changed = False
        for name, service in compose.services.items():
            if name in skipped:
                continue
            hard = [dep for dep in service.depends_on if dep in skipped and dep not in soft]
            if hard:
                skipped[name] = f"needs {', '.join(hard)}, which is left out"
                changed = True


def _endpoints(
    compose: ComposeFile, ports: Mapping[str, int | None], absent: set[str]
) -> dict[tuple[str, int], Endpoint]:
    """``service:target`` and ``localhost:published`` of every compose service -> its local endpoint.

    A service left out on request keeps its port: something else may serve it there.
    """
    endpoints: dict[tuple[str, int], Endpoint] = {}
    for name, service in compose.services.items():
        endpoint = Endpoint(name, None if name in absent else ports[name])
        for mapping in service.ports:
            endpoints[(name, mapping.target)] = endpoint
            endpoints[("localhost", mapping.published)] = endpoint
    return endpoints


def _start_order(compose: ComposeFile, names: list[str]) -> list[str]:
    """Dependencies first (compose's depends_on), otherwise in file order."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order or name not in names:
            return
        if name in visiting:
            raise PlanError(f"depends_on cycle through {name}")
        visiting.add(name)
        for dep in compose.services[name].depends_on:
            visit(dep)
        visiting.discard(name)
        order.append(name)

    for name in names:
        visit(name)
    return order


def _local(
    service: ComposeService,
    executable: str,
    options: StackOptions,
    endpoints: Mapping[tuple[str, int], Endpoint],
    port: int | None,
    compose: ComposeFile,
) -> LocalService:
    name = service.name
    own = dict(endpoints)
    for mapping in service.ports:  # its own listen address
        own[("0.0.0.0", mapping.target)] = Endpoint(name, port)
    paths: dict[str, Path] = {}
    renders: dict[Path, Path] = {}
    for mount in service.mounts:
        if mount.source is None:
            paths[mount.target] = options.data_dir(name) / (mount.volume or "data")
        elif mount.source.is_relative_to(RENDERED_SOURCES) and not mount.source.is_relative_to(SECRETS_DIR):
            rendered = options.config_dir / mount.source.relative_to(RENDERED_SOURCES)
            renders[mount.source] = rendered
            paths[mount.target] = rendered
        else:
            paths[mount.target] = mount.source
    rewriter = Rewriter(own, paths)
    target = service.ports[0].target if service.ports else None
    argv = _argv(service, executable, rewriter, target, port, options)
    env = _environment(service, rewriter, endpoints)
    env.update(_implicit_environment(name, port, options, rewriter))
    # Last, so that what the person running `up` says wins over every file.
    env.update(options.env.get(name, {}))
    return LocalService(
        name=name,
        argv=tuple(argv),
        env=env,
        port=port,
        probe=PROGRAMS[name].probe,
        workdir=options.state_dir / "run" / name,
        depends_on=service.depends_on,
        paths=paths,
        renders=renders,
        rewriter=rewriter,
    )


def _argv(
    service: ComposeService,
    executable: str,
    rewriter: Rewriter,
    target: int | None,
    port: int | None,
    options: StackOptions,
) -> list[str]:
    command = list(service.command)
    program = PROGRAMS[service.name]
    # A compose command either starts with the program (python, redis-server) or is the arguments
    # of the image's entrypoint (prometheus, alertmanager).
    if command and (command[0] == "python" or command[0] in program.executables):
        command = command[1:]
    args: list[str] = []
    for index, arg in enumerate(command):
        if arg == "0.0.0.0":
            args.append(LOOPBACK)
        elif index > 0 and command[index - 1] == "--port" and target is not None and arg == str(target):
            args.append(str(port))
        else:
            args.append(rewriter.argument(arg))
    return [executable, *program.entrypoint, *args, *_implicit_arguments(service.name, executable, port, options)]


def _implicit_arguments(name: str, executable: str, port: int | None, options: StackOptions) -> list[str]:
    """What the container image's defaults provide and a local process must be told."""
    if name == "redis":
        data = options.data_dir(name)
        return ["--port", str(port), "--bind", LOOPBACK, "--daemonize", "no", "--dir", str(data)]
    if name == "grafana":
        home = _grafana_home(Path(executable))
        subcommand = ["server"] if Path(executable).name == "grafana" else []
        return [*subcommand, "--homepath", str(home)]
    return []


def _grafana_home(executable: Path) -> Path:
    """Grafana's installation folder (the one holding conf/defaults.ini), which it needs to start."""
    candidates = (
        *_GRAFANA_HOMES,
        executable.resolve().parent.parent,
        executable.resolve().parent.parent / "share/grafana",
    )
    return next((home for home in candidates if (home / "conf/defaults.ini").is_file()), _GRAFANA_HOMES[0])


def _implicit_environment(name: str, port: int | None, options: StackOptions, rewriter: Rewriter) -> dict[str, str]:
    env = {
        # demo/ is imported from the checkout (it is not in the wheel), whatever the working folder.
        "PYTHONPATH": str(REPO_ROOT),
        # Loopback calls must never go through a proxy configured for the outside world.
        "NO_PROXY": f"{LOOPBACK},localhost",
        "no_proxy": f"{LOOPBACK},localhost",
    }
    if name == "demo":
        # Without PostgreSQL the demo keeps its documents in SQLite; the stack's own file, not the
        # shared default in /tmp, so that two stacks (or a test's) never share one.
        env["DEMO_SQLITE_PATH"] = str(options.data_dir(name) / "demo.sqlite3")
    if name == "grafana":
        data = options.data_dir(name)
        env |= {
            "GF_PATHS_PROVISIONING": rewriter.path("/etc/grafana/provisioning"),
            "GF_PATHS_DATA": str(data),
            "GF_PATHS_LOGS": str(data / "log"),
            "GF_PATHS_PLUGINS": str(data / "plugins"),
            "GF_SERVER_HTTP_ADDR": LOOPBACK,
            "GF_SERVER_HTTP_PORT": str(port),
        }
    return env


def _environment(
    service: ComposeService, rewriter: Rewriter, endpoints: Mapping[tuple[str, int], Endpoint]
) -> dict[str, str | None]:
    """The service's env files and environment (the latter wins, as in compose), rewritten.

    A variable that points at a service with no local counterpart (PostgreSQL, a Redis that is not
    installed) is unset instead, so that the program falls back to its default (SQLite, memory).
    """
    env: dict[str, str | None] = {}
    for env_file in service.env_files:
        if env_file.path.is_file():
            env.update(read_dotenv(env_file.path))
        elif env_file.required:
            raise PlanError(f"{service.name}: env_file {env_file.path} does not exist")
    absent = {endpoint.service for endpoint in endpoints.values() if endpoint.port is None}
    for key, value in service.environment.items():
        text, referred = rewriter.text(value)
        env[key] = None if referred & absent else text
    return env
