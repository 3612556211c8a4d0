"""Writing the local copies of the configuration files compose mounts from deploy/.

Each file is the compose one with references rewritten for 127.0.0.1 (:class:`~.rewrite.Rewriter`)
and, when asked for, shorter intervals: what tests need to see an alert within seconds.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .topology import LocalService, StackOptions

__all__ = ["render_service"]

_YAML_SUFFIXES = (".yml", ".yaml")
_HEADER = "# Rendered by `breakerpanel up` from {source}: edit that file, not this one.\n"

Override = Callable[[Path, Any, StackOptions], None]


def render_service(service: LocalService, options: StackOptions) -> list[Path]:
    """Write every rendered file of ``service``; return their paths."""
    written: list[Path] = []
    for source, destination in service.renders.items():
        if source.is_dir():
            for path in sorted(p for p in source.rglob("*") if p.is_file()):
                written.append(_render_file(service, path, destination / path.relative_to(source), options))
        else:
            written.append(_render_file(service, source, destination, options))
    return written


def _render_file(service: LocalService, source: Path, destination: Path, options: StackOptions) -> Path:
    destination.parent.mkdir(parents=True, exist_ok=True)
    if source.suffix not in _YAML_SUFFIXES:
        shutil.copyfile(source, destination)
        return destination
    tree = service.rewriter.tree(yaml.safe_load(source.read_text()))
    override = _OVERRIDES.get(service.name)
    if override is not None:
        override(source, tree, options)
    destination.write_text(_HEADER.format(source=source) + yaml.safe_dump(tree, sort_keys=False))
    return destination


def _prometheus(source: Path, tree: Any, options: StackOptions) -> None:
    if source.name != "prometheus.yml":
        return
    settings = tree.setdefault("global", {})
    _set(settings, "scrape_interval", options.scrape_interval)
    _set(settings, "evaluation_interval", options.evaluation_interval)
    if options.rule_files:
        tree["rule_files"] = [str(path.absolute()) for path in options.rule_files]


def _alertmanager(source: Path, tree: Any, options: StackOptions) -> None:
    if source.name != "alertmanager.yml":
        return
    route = tree.setdefault("route", {})
    _set(route, "group_wait", options.group_wait)
    _set(route, "group_interval", options.group_interval)


def _grafana(source: Path, tree: Any, options: StackOptions) -> None:
    # The datasource's minimum interval follows the scrape interval, as in the compose file.
    for datasource in tree.get("datasources") or []:
        if datasource.get("type") == "prometheus" and options.scrape_interval:
            datasource.setdefault("jsonData", {})["timeInterval"] = options.scrape_interval


def _set(mapping: dict[str, Any], key: str, value: str | None) -> None:
    if value is not None:
        mapping[key] = value


_OVERRIDES: Mapping[str, Override] = {"prometheus": _prometheus, "alertmanager": _alertmanager, "grafana": _grafana}
