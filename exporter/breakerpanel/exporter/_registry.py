"""Load and validate the semantic-conventions registry (``exporter/breakerpanel/exporter/semconv/``).

The registry is written in OpenTelemetry Weaver's format: a ``registry_manifest.yaml`` and model
files of ``groups`` (attribute groups and metrics). Weaver itself cannot be installed here, so
this module checks what Weaver would (schema, unique ids, resolvable ``ref`` and ``extends``, enum
members, metric instruments and units) and resolves the registry into the attributes and metrics
the code generator writes out. It also derives each metric's Prometheus name the way the
OpenTelemetry Prometheus exporter does, so dashboards and rules can use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "REGISTRY_DIR",
    "Attribute",
    "Event",
    "Member",
    "Metric",
    "RegistryError",
    "SemanticConventions",
    "load_registry",
    "prometheus_label",
    "prometheus_metric_name",
]

REGISTRY_DIR = Path(__file__).resolve().parent / "semconv"

Stability = Literal["stable", "development", "experimental", "deprecated", "alpha", "beta", "release_candidate"]
_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")


class RegistryError(ValueError):
    """The registry is invalid; the message names the file and the problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Manifest(_Strict):
    name: str
    description: str
    semconv_version: str
    schema_base_url: str


class Member(_Strict):
    id: str
    value: str | int
    brief: str
    stability: Stability
    note: str | None = None


class EnumType(_Strict):
    members: list[Member] = Field(min_length=1)


class AttributeDefinition(_Strict):
    id: Annotated[str, Field(pattern=_NAME.pattern)]
    type: Literal["string", "int", "double", "boolean", "string[]"] | EnumType
    stability: Stability
    brief: str
    note: str | None = None
    examples: list[Any] | None = None


RequirementLevel = (
    Literal["required", "recommended", "opt_in"] | dict[Literal["conditionally_required", "recommended"], str]
)


class AttributeReference(_Strict):
    ref: str
    requirement_level: RequirementLevel = "recommended"
    note: str | None = None
    brief: str | None = None


class Group(_Strict):
    id: str
    type: Literal["attribute_group", "metric", "event"]
    brief: str
    display_name: str | None = None
    note: str | None = None
    stability: Stability | None = None
    extends: str | None = None
    attributes: list[AttributeDefinition | AttributeReference] = Field(default_factory=list)
    metric_name: str | None = None
    name: str | None = None
    instrument: Literal["counter", "updowncounter", "gauge", "histogram"] | None = None
    unit: str | None = None


class ModelFile(_Strict):
    groups: list[Group]


@dataclass(frozen=True)
class Attribute:
    id: str
    type: str  # "string", ..., or "enum"
    members: tuple[Member, ...]
    stability: str
    brief: str
    note: str | None
    examples: tuple[Any, ...]

    @property
    def label(self) -> str:
        """The Prometheus label this attribute becomes."""
        return prometheus_label(self.id)


@dataclass(frozen=True)
class MetricAttribute:
    attribute: Attribute
    requirement_level: str
    condition: str | None
    note: str | None


@dataclass(frozen=True)
class Metric:
    group_id: str
    name: str
    instrument: str
    unit: str
    stability: str
    brief: str
    note: str | None
    attributes: tuple[MetricAttribute, ...]

    @property
    def prometheus_name(self) -> str:
        """The series name in Prometheus (``_total`` for counters; histograms add ``_bucket``,
        ``_sum`` and ``_count`` to it)."""
        base = prometheus_metric_name(self.name, self.unit)
        return base + "_total" if self.instrument == "counter" else base

    @property
    def prometheus_type(self) -> str:
        return {"counter": "counter", "updowncounter": "gauge", "gauge": "gauge", "histogram": "histogram"}[
            self.instrument
        ]


@dataclass(frozen=True)
class Event:
    group_id: str
    name: str
    stability: str
    brief: str
    attributes: tuple[MetricAttribute, ...]


@dataclass(frozen=True)
class SemanticConventions:
    manifest: Manifest
    attributes: dict[str, Attribute]
    metrics: tuple[Metric, ...]
    events: tuple[Event, ...]
    #: Attribute groups made of references (such as the attributes common to every metric).
    groups: dict[str, tuple[MetricAttribute, ...]]

    def metric(self, name: str) -> Metric:
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise KeyError(name)


# ---------------------------------------------------------------------- Prometheus naming

_UNIT_WORDS = {
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "1": "",
    "%": "percent",
}


def prometheus_metric_name(name: str, unit: str) -> str:
    """The OpenTelemetry-to-Prometheus name: dots to underscores, the unit as a suffix
    (``s`` -> ``_seconds``; annotations such as ``{call}`` and ``1`` add nothing)."""
    base = re.sub(r"[^a-zA-Z0-9:]+", "_", name)
    unit = re.sub(r"\{.*\}", "", unit)
    suffix = _UNIT_WORDS.get(unit, re.sub(r"[^a-zA-Z0-9:]+", "_", unit).strip("_"))
    if suffix and not base.endswith("_" + suffix):
        base += "_" + suffix
    return base


def prometheus_label(attribute: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "_", attribute)


# ---------------------------------------------------------------------- loading


def _read(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {exc}") from None


def _parse(model: type[_Strict], path: Path, data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False))
        raise RegistryError(f"{path}: {problems}") from None


def load_registry(directory: Path = REGISTRY_DIR) -> SemanticConventions:
    """Read, validate and resolve the registry in ``directory``."""
    manifest_path = directory / "registry_manifest.yaml"
    if not manifest_path.exists():
        raise RegistryError(f"{manifest_path}: missing")
    manifest = _parse(Manifest, manifest_path, _read(manifest_path))
    groups: dict[str, tuple[Path, Group]] = {}
    for path in sorted((directory / "model").glob("*.yaml")):
        model = _parse(ModelFile, path, _read(path))
        for group in model.groups:
            if group.id in groups:
                raise RegistryError(f"{path}: group {group.id!r} is also defined in {groups[group.id][0].name}")
            groups[group.id] = (path, group)
    if not groups:
        raise RegistryError(f"{directory / 'model'}: no model files")

    attributes: dict[str, Attribute] = {}
    for path, group in groups.values():
        for item in group.attributes:
            if isinstance(item, AttributeDefinition):
                if group.type != "attribute_group" or not group.id.startswith("registry."):
                    raise RegistryError(f"{path}: {item.id!r} must be defined in a registry.* attribute group")
                if item.id in attributes:
                    raise RegistryError(f"{path}: attribute {item.id!r} is defined twice")
                attributes[item.id] = _attribute(path, item)

    def resolve(path: Path, group: Group, seen: tuple[str, ...] = ()) -> list[MetricAttribute]:
        resolved: list[MetricAttribute] = []
        if group.extends is not None:
            if group.extends in seen or group.extends not in groups:
                raise RegistryError(f"{path}: {group.id}: extends {group.extends!r}, which is not a group (or a cycle)")
            base_path, base = groups[group.extends]
            resolved.extend(resolve(base_path, base, (*seen, group.id)))
        for item in group.attributes:
            if isinstance(item, AttributeReference):
                if item.ref not in attributes:
                    raise RegistryError(f"{path}: {group.id}: ref {item.ref!r} is not a defined attribute")
                level, condition = _requirement(item.requirement_level)
                resolved.append(MetricAttribute(attributes[item.ref], level, condition, item.note))
        names = [a.attribute.id for a in resolved]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise RegistryError(f"{path}: {group.id}: attributes {sorted(duplicates)} are referenced twice")
        return resolved

    metrics: list[Metric] = []
    for path, group in groups.values():
        if group.type != "metric":
            continue
        problems = []
        if group.metric_name is None or not _NAME.match(group.metric_name):
            problems.append("metric_name is missing or not a dotted lowercase name")
        elif group.id != f"metric.{group.metric_name}":
            problems.append(f"id should be 'metric.{group.metric_name}'")
        if group.instrument is None:
            problems.append("instrument is missing")
        if not group.unit:
            problems.append("unit is missing")
        if group.stability is None:
            problems.append("stability is missing")
        if problems:
            raise RegistryError(f"{path}: {group.id}: " + "; ".join(problems))
        assert group.metric_name
        assert group.instrument
        assert group.unit
        assert group.stability
        metrics.append(
            Metric(
                group.id,
                group.metric_name,
                group.instrument,
                group.unit,
                group.stability,
                group.brief.strip(),
                group.note.strip() if group.note else None,
                tuple(resolve(path, group)),
            )
        )
    events: list[Event] = []
    for path, group in groups.values():
        if group.type != "event":
            continue
        if group.name is None or not _NAME.match(group.name) or group.id != f"event.{group.name}":
            raise RegistryError(f"{path}: {group.id}: an event needs a dotted lowercase name and the id event.<name>")
        if group.stability is None:
            raise RegistryError(f"{path}: {group.id}: stability is missing")
        events.append(Event(group.id, group.name, group.stability, group.brief.strip(), tuple(resolve(path, group))))
    reference_groups = {
        group.id: tuple(resolve(path, group))
        for path, group in groups.values()
        if group.type == "attribute_group" and not group.id.startswith("registry.")
    }
    names = [m.name for m in metrics]
    if len(set(names)) != len(names):
        raise RegistryError(f"{directory}: metric names are not unique: {names}")
    prometheus = [m.prometheus_name for m in metrics]
    if len(set(prometheus)) != len(prometheus):
        raise RegistryError(f"{directory}: two metrics map to one Prometheus name: {prometheus}")
    return SemanticConventions(manifest, attributes, tuple(metrics), tuple(events), reference_groups)


def _attribute(path: Path, item: AttributeDefinition) -> Attribute:
    if isinstance(item.type, EnumType):
        ids = [m.id for m in item.type.members]
        values = [m.value for m in item.type.members]
        if len(set(ids)) != len(ids) or len(set(values)) != len(values):
            raise RegistryError(f"{path}: {item.id}: enum member ids and values must be unique")
        return Attribute(
            item.id,
            "enum",
            tuple(item.type.members),
            item.stability,
            item.brief.strip(),
            item.note,
            tuple(item.examples or ()),
        )
    return Attribute(item.id, item.type, (), item.stability, item.brief.strip(), item.note, tuple(item.examples or ()))


def _requirement(level: Any) -> tuple[str, str | None]:
    if isinstance(level, str):
        return level, None
    ((name, condition),) = level.items()
    return name, condition
