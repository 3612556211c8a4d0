"""docker-compose.yml read into typed records: the part of the Compose spec the local stack follows.

Only the forms our compose file uses are understood (short port and volume syntax, list commands,
mapping environments, short secrets, ``env_file`` entries, ``profiles`` lists); anything else raises
:class:`ComposeError` naming the service and key, so a change to docker-compose.yml that the local
stack cannot follow fails loudly instead of drifting (tests/stack checks the file parses).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .dotenv import interpolate, read_dotenv

__all__ = ["ComposeError", "ComposeFile", "ComposeService", "EnvFile", "Mount", "PortMapping", "load_compose"]

_SECRETS_DIR = "/run/secrets"
_Fail = Callable[[str, str], "ComposeError"]


class ComposeError(ValueError):
    """docker-compose.yml uses a form the local stack does not follow."""


@dataclass(frozen=True)
class PortMapping:
    host_ip: str
    published: int
    target: int


@dataclass(frozen=True)
class Mount:
    """A bind mount (``source`` is a host path) or a named volume (``volume`` names it)."""

    target: str
    source: Path | None = None
    volume: str | None = None
    read_only: bool = False


@dataclass(frozen=True)
class EnvFile:
    path: Path
    required: bool


@dataclass(frozen=True)
class ComposeService:
    name: str
    image: str | None
    built: bool
    command: tuple[str, ...]
    environment: Mapping[str, str]
    env_files: tuple[EnvFile, ...]
    ports: tuple[PortMapping, ...]
    mounts: tuple[Mount, ...]
    depends_on: tuple[str, ...]
    has_healthcheck: bool
    #: Compose starts the service only when one of these is active (``--profile``); empty: always.
    profiles: tuple[str, ...] = ()

    @property
    def port(self) -> int | None:
        """The service's one published port (the stack publishes at most one per service)."""
        return self.ports[0].published if self.ports else None


@dataclass(frozen=True)
class ComposeFile:
    path: Path
    #: The services Compose runs with the profiles asked for (by default, those without profiles).
    services: Mapping[str, ComposeService]
    secrets: Mapping[str, Path] = field(default_factory=dict)
    volumes: tuple[str, ...] = ()
    #: Services left out because none of their profiles is active: opt-in, e.g. ``real-qdrant``.
    inactive: Mapping[str, ComposeService] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        return self.path.parent


def load_compose(path: Path, environ: Mapping[str, str] | None = None, profiles: Collection[str] = ()) -> ComposeFile:
    """Read ``path``; ``${...}`` is resolved from ``environ`` (default: ours) and then ``.env``, like Compose.

    ``profiles`` are those active, as with ``docker compose --profile``: a service with profiles is in
    :attr:`ComposeFile.services` only when one of them is (otherwise in ``inactive``). A service that
    depends on an inactive one is refused, as Compose refuses it.
    """
    raw = yaml.safe_load(path.read_text())
    if not isinstance(raw, dict) or not isinstance(raw.get("services"), dict):
        raise ComposeError(f"{path}: no services mapping")
    variables = {**read_dotenv(path.parent / ".env"), **(os.environ if environ is None else environ)}
    tree = _interpolated(raw, variables)
    base = path.parent.resolve()
    secrets = {name: _host_path(base, spec["file"]) for name, spec in (tree.get("secrets") or {}).items()}
    every = {name: _service(name, spec, base, secrets) for name, spec in tree["services"].items()}
    active = set(profiles)
    services = {name: s for name, s in every.items() if not s.profiles or active & set(s.profiles)}
    inactive = {name: s for name, s in every.items() if name not in services}
    for name, service in services.items():
        disabled = [dep for dep in service.depends_on if dep in inactive]
        if disabled:
            raise ComposeError(
                f"services.{name}.depends_on: {disabled} run only with profiles "
                f"{sorted({p for dep in disabled for p in inactive[dep].profiles})}, which are not active"
            )
    return ComposeFile(
        path=path.resolve(),
        services=services,
        secrets=secrets,
        volumes=tuple(tree.get("volumes") or ()),
        inactive=inactive,
    )


def _interpolated(node: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [_interpolated(item, variables) for item in node]
    if isinstance(node, dict):
        return {key: _interpolated(value, variables) for key, value in node.items()}
    return node


def _host_path(base: Path, text: str) -> Path:
    return (base / os.path.expanduser(text)).resolve()


def _service(name: str, spec: Mapping[str, Any], base: Path, secrets: Mapping[str, Path]) -> ComposeService:
    def fail(key: str, why: str) -> ComposeError:
        return ComposeError(f"services.{name}.{key}: {why}")

    command = spec.get("command") or []
    if not isinstance(command, list):
        raise fail("command", "use the list form, so that arguments need no shell quoting")
    environment = spec.get("environment") or {}
    if not isinstance(environment, dict):
        raise fail("environment", "use the mapping form")
    depends_on = spec.get("depends_on") or {}
    profiles = spec.get("profiles") or []
    if not isinstance(profiles, list) or not all(isinstance(profile, str) for profile in profiles):
        raise fail("profiles", "use a list of names")
    return ComposeService(
        name=name,
        image=spec.get("image"),
        built="build" in spec,
        command=tuple(str(arg) for arg in command),
        environment={str(k): "" if v is None else str(v) for k, v in environment.items()},
        env_files=tuple(_env_file(entry, base, fail) for entry in _as_list(spec.get("env_file"))),
        ports=tuple(_port(entry, fail) for entry in spec.get("ports") or []),
        mounts=(
            *(_volume(entry, base, fail) for entry in spec.get("volumes") or []),
            *(_secret(entry, secrets, fail) for entry in spec.get("secrets") or []),
        ),
        depends_on=tuple(depends_on),
        has_healthcheck="healthcheck" in spec,
        profiles=tuple(profiles),
    )


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _env_file(entry: Any, base: Path, fail: _Fail) -> EnvFile:
    if isinstance(entry, str):
        return EnvFile(_host_path(base, entry), required=True)
    if isinstance(entry, dict) and "path" in entry:
        return EnvFile(_host_path(base, entry["path"]), required=bool(entry.get("required", True)))
    raise fail("env_file", f"unsupported entry {entry!r}")


def _port(entry: Any, fail: _Fail) -> PortMapping:
    parts = str(entry).split(":")
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        raise fail("ports", f"{entry!r}: use HOST_IP:PUBLISHED:TARGET, published on one address only")
    return PortMapping(host_ip=parts[0], published=int(parts[1]), target=int(parts[2]))


def _volume(entry: Any, base: Path, fail: _Fail) -> Mount:
    if not isinstance(entry, str):
        raise fail("volumes", f"{entry!r}: use the short SOURCE:TARGET[:ro] form")
    source, _, rest = entry.partition(":")
    target, _, mode = rest.partition(":")
    if not target.startswith("/") or mode not in ("", "ro", "rw"):
        raise fail("volumes", f"{entry!r}: expected SOURCE:/absolute/target[:ro|rw]")
    read_only = mode == "ro"
    if source.startswith((".", "/", "~")):
        return Mount(target=target, source=_host_path(base, source), read_only=read_only)
    return Mount(target=target, volume=source, read_only=read_only)


def _secret(entry: Any, secrets: Mapping[str, Path], fail: _Fail) -> Mount:
    """A secret is a read-only bind mount of its file at /run/secrets/<name>."""
    if not isinstance(entry, str) or entry not in secrets:
        raise fail("secrets", f"{entry!r}: use the short form, naming a top-level secret with a file")
    return Mount(target=f"{_SECRETS_DIR}/{entry}", source=secrets[entry], read_only=True)
