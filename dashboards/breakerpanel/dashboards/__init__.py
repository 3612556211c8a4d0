"""Grafana dashboards for circuit breakers, as code.

Each ``dashboards/<name>.dashboard.py`` builds one grafanalib ``Dashboard`` in a module-level
variable ``dashboard`` (the layout grafanalib's ``generate-dashboard`` expects);
:mod:`breakerpanel.dashboards.common` holds what they share; their uids and variables are
:mod:`breakerpanel.exporter.loop_names`' (the alert rules link to them), and the SLO dashboard
follows the rules' configuration (:mod:`breakerpanel.exporter.rules_config`): this package
imports neither :mod:`breakerpanel.alert_rules` nor is imported by it.
``python -m breakerpanel.dashboards`` (``make dashboards``) writes the JSON Grafana provisions to
``dashboards/generated/<uid without the breakerpanel- prefix>.json``; ``--check`` lists the
files that are stale.

grafanalib is imported only when a dashboard is built: ``breakerpanel dashboards`` says which
extra to install before it needs it.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from grafanalib.core import Dashboard  # type: ignore[import-untyped]

    from breakerpanel.exporter.rules_config import RulesConfig

__all__ = [
    "DATASOURCE_TYPE",
    "DATASOURCE_UID",
    "GENERATED_DIR",
    "SOURCE_DIR",
    "TAG",
    "DashboardOptions",
    "dump",
    "expressions",
    "generate",
    "load",
    "options",
    "output_path",
    "render",
    "rules_config",
    "sources",
    "stale",
]

#: The provisioned Prometheus datasource (deploy/grafana): the datasource variable's default.
DATASOURCE_TYPE = "prometheus"
DATASOURCE_UID = "breakerpanel-prometheus"

#: Every dashboard carries this tag; Grafana's dashboard links list the dashboards by it.
TAG = "breakerpanel"

SOURCE_DIR = Path(__file__).resolve().parent
#: The repository's dashboards/generated/ (this package is dashboards/breakerpanel/dashboards/).
GENERATED_DIR = SOURCE_DIR.parents[1] / "generated"
_SUFFIX = ".dashboard.py"
_RULES_CONFIG: ContextVar[RulesConfig | None] = ContextVar("breakerpanel.dashboards.rules_config", default=None)


@dataclass(frozen=True)
class DashboardOptions:
    """What a service of its own changes in the generated dashboards."""

    #: The Prometheus datasource the dashboards select first (any Prometheus one can be picked).
    datasource_uid: str = DATASOURCE_UID
    #: A regular expression the ``job`` variable's values must match in full ("" lists every job
    #: that exports breaker metrics).
    job_regex: str = ""

    def __post_init__(self) -> None:
        import re

        if not self.datasource_uid or len(self.datasource_uid) > 40:
            raise ValueError(f"datasource_uid: Grafana uids have 1 to 40 characters (got {self.datasource_uid!r})")
        try:
            re.compile(self.job_regex)
        except re.error as exc:
            raise ValueError(f"job_regex: not a regular expression ({exc}): {self.job_regex!r}") from None


_OPTIONS: ContextVar[DashboardOptions | None] = ContextVar("breakerpanel.dashboards.options", default=None)
_DEFAULT_OPTIONS = DashboardOptions()


def options() -> DashboardOptions:
    """The options of the dashboards being generated (:func:`generate`'s), else the defaults."""
    return _OPTIONS.get() or _DEFAULT_OPTIONS


_UID_PREFIX = "breakerpanel-"


def rules_config() -> RulesConfig:
    """The alert rules' configuration that the dashboards being generated follow (the SLO
    dashboard's burn-rate windows): :func:`generate`'s, else :func:`load_rules_config`'s default."""
    config = _RULES_CONFIG.get()
    if config is None:
        from breakerpanel.exporter.rules_config import load_rules_config

        config = load_rules_config()
    return config


def sources() -> list[Path]:
    """The dashboard sources, sorted."""
    return sorted(SOURCE_DIR.glob("*" + _SUFFIX))


def load(path: Path) -> Dashboard:
    """Run a ``*.dashboard.py`` file and return its ``dashboard``."""
    from grafanalib.core import Dashboard

    name = "breakerpanel.dashboards._sources." + path.name.removesuffix(_SUFFIX).replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    board = getattr(module, "dashboard", None)
    if not isinstance(board, Dashboard):
        raise TypeError(f"{path} must define `dashboard`, a grafanalib Dashboard (got {type(board).__name__})")
    return board


#: Keys grafanalib always writes that current Grafana does not read: ``rows`` is the pre-5.0
#: layout, a Prometheus target's ``step`` became its ``interval``, its ``query`` repeats ``expr``.
_LEGACY_DASHBOARD_KEYS = ("__inputs", "gnetId", "hideControls", "rows", "sharedCrosshair", "style")
_LEGACY_TARGET_KEYS = ("metric", "query", "step", "target")


def render(dashboard: Dashboard) -> dict[str, Any]:
    """The dashboard's JSON model, as plain data, without the legacy keys grafanalib adds."""
    from grafanalib._gen import DashboardEncoder  # type: ignore[import-untyped]

    data: dict[str, Any] = json.loads(json.dumps(dashboard.to_json_data(), cls=DashboardEncoder))
    if data.get("rows"):
        raise ValueError(f"{data.get('title')!r}: use panels and row panels, not grafanalib's legacy rows")
    for key in _LEGACY_DASHBOARD_KEYS:
        data.pop(key, None)
    for panel in _panels(data.get("panels", [])):
        for target in panel.get("targets", []):
            for key in _LEGACY_TARGET_KEYS:
                target.pop(key, None)
    return data


def dump(dashboard_json: Mapping[str, Any]) -> str:
    """The file text: indented, sorted keys, trailing newline (stable, so diffs stay small)."""
    return json.dumps(dashboard_json, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def output_path(dashboard_json: Mapping[str, Any], directory: Path | None = None) -> Path:
    """``<directory>/<uid without the breakerpanel- prefix>.json``; the directory defaults to the
    repository's ``dashboards/generated/``."""
    uid = str(dashboard_json["uid"])
    return (GENERATED_DIR if directory is None else directory) / f"{uid.removeprefix(_UID_PREFIX)}.json"


def generate(
    directory: Path | None = None, rules: RulesConfig | None = None, options: DashboardOptions | None = None
) -> dict[Path, str]:
    """Every file the directory (``generated/`` by default) should hold, with its text, for the
    alert rules' configuration ``rules`` (:func:`rules_config` by default) and ``options``."""
    files: dict[Path, str] = {}
    token = _RULES_CONFIG.set(rules)
    options_token = _OPTIONS.set(options)
    try:
        for path in sources():
            data = render(load(path))
            out = output_path(data, directory)
            if out in files:
                raise ValueError(f"{path}: uid {data['uid']!r} is already used by another dashboard")
            files[out] = dump(data)
    finally:
        _OPTIONS.reset(options_token)
        _RULES_CONFIG.reset(token)
    return files


def stale(expected: Mapping[Path, str] | None = None, directory: Path | None = None) -> list[Path]:
    """Generated files that differ from what the sources make, are missing, or that no source
    makes any more; empty when the directory (``generated/`` by default) is up to date."""
    directory = GENERATED_DIR if directory is None else directory
    expected = generate(directory) if expected is None else expected
    wrong = [path for path, text in expected.items() if not path.exists() or path.read_text() != text]
    orphans = [path for path in directory.glob("*.json") if path not in expected]
    return sorted(wrong + orphans)


def expressions(dashboard_json: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """``(where, expression)`` for every query in a dashboard: each panel target (in rows too),
    each query variable's query (``label_values(...)``, ``query_result(...)``) and each
    annotation's expression. ``where`` reads like ``panel "Title" target A``."""
    for panel in _panels(dashboard_json.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield f"panel {panel.get('title', '')!r} target {target.get('refId', '?')}", target["expr"]
    for variable in dashboard_json.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            text = query.get("query", "") if isinstance(query, Mapping) else query
            yield f"variable {variable['name']}", text
    for annotation in dashboard_json.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            yield f"annotation {annotation.get('name', '')!r}", annotation["expr"]


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))
