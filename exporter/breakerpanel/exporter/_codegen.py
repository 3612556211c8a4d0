"""Generate ``exporter/breakerpanel/exporter/semconv.py`` and ``docs/semantic-conventions.md`` from the registry.

Usage: ``python -m breakerpanel.exporter._codegen`` rewrites both; ``--check`` exits 1 when one is stale
(``tests/exporter/test_semconv.py`` does the same).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from breakerpanel._outputs import write_or_check

from ._registry import Attribute, Metric, SemanticConventions, load_registry, prometheus_label

#: The repository (exporter/breakerpanel/exporter/ is three levels down): a maintainer's tool, run from a checkout.
ROOT = Path(__file__).resolve().parents[3]
SEMCONV_PY = Path(__file__).resolve().with_name("semconv.py")
SEMCONV_MD = ROOT / "docs" / "semantic-conventions.md"
COMMON_GROUP = "attributes.circuit_breaker.common"
#: The attributes that say which breaker and where it sits (the rest are configured dependency attributes).
IDENTITY = (
    "circuit_breaker.name",
    "circuit_breaker.level",
    "circuit_breaker.parent",
    "circuit_breaker.service",
    "circuit_breaker.requires",
)


def constant(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).upper()


def class_name(attribute: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", attribute)) + "Values"


def _doc(text: str) -> str:
    return " ".join(text.split()).replace('"""', "'''")


def render_python(conventions: SemanticConventions) -> str:
    manifest = conventions.manifest
    out = [
        '"""Semantic conventions for circuit-breaker telemetry: attributes, metrics, Prometheus names.',
        "",
        "Generated from exporter/breakerpanel/exporter/semconv/ by ``python -m breakerpanel.exporter._codegen``.",
        "Do not edit: change the registry and regenerate (tests/exporter/test_semconv.py fails when this file",
        "is stale).",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from dataclasses import dataclass",
        "from enum import StrEnum",
        "from typing import Final",
        "",
        f'SCHEMA_URL: Final = "{manifest.schema_base_url.rstrip("/")}/{manifest.semconv_version}"',
        f'SEMCONV_VERSION: Final = "{manifest.semconv_version}"',
        "",
        "# ---------------------------------------------------------------------- attributes",
        "",
    ]
    for attribute in sorted(conventions.attributes.values(), key=lambda a: a.id):
        out += [f'{constant(attribute.id)}: Final = "{attribute.id}"', f'"""{_doc(attribute.brief)}"""']
        out += [f'{constant(attribute.id)}_LABEL: Final = "{attribute.label}"', '"""Its Prometheus label."""', ""]
    for attribute in sorted(conventions.attributes.values(), key=lambda a: a.id):
        if attribute.type != "enum":
            continue
        out += ["", f"class {class_name(attribute.id)}(StrEnum):", f'    """Values of ``{attribute.id}``."""', ""]
        for member in attribute.members:
            out += [f'    {constant(member.id)} = "{member.value}"', f'    """{_doc(member.brief)}"""', ""]
        out.pop()
        out.append("")
    common = [a.attribute.id for a in conventions.groups[COMMON_GROUP]]
    dependency = [a for a in common if a not in IDENTITY]
    out += [
        "",
        "#: Attributes on every breaker series: the breaker's identity, then its dependency attributes.",
        "COMMON_ATTRIBUTES: Final = (" + "".join(f"{constant(a)}, " for a in common) + ")",
        "#: The dependency attributes a breaker may carry (configured per breaker; others are dropped).",
        "DEPENDENCY_ATTRIBUTES: Final = (" + "".join(f"{constant(a)}, " for a in dependency) + ")",
        "",
        "# ---------------------------------------------------------------------- metrics",
        "",
        "",
        "@dataclass(frozen=True)",
        "class MetricSpec:",
        '    """One metric: its OpenTelemetry definition and the Prometheus series it becomes."""',
        "",
        "    name: str",
        "    instrument: str",
        "    unit: str",
        "    description: str",
        "    #: The series name in Prometheus (histograms add _bucket, _sum and _count).",
        "    prometheus_name: str",
        "    prometheus_type: str",
        "    #: The attributes beyond COMMON_ATTRIBUTES (all of them, for metrics not in BREAKER_METRICS).",
        "    attributes: tuple[str, ...]",
        "",
        "    @property",
        "    def labels(self) -> tuple[str, ...]:",
        '        """Prometheus labels beyond the common ones."""',
        "        return tuple(label(a) for a in self.attributes)",
        "",
    ]
    names = []
    breaker_names = []
    for metric in conventions.metrics:
        extra = [a.attribute.id for a in metric.attributes if a.attribute.id not in common]
        var = "METRIC_" + constant(metric.name)
        names.append(var)
        if len(extra) < len(metric.attributes):  # it carries the common attributes: a breaker's metric
            breaker_names.append(var)
        out += [
            "",
            f"{var}: Final = MetricSpec(",
            f'    name="{metric.name}",',
            f'    instrument="{metric.instrument}",',
            f'    unit="{metric.unit}",',
            f'    description="{_doc(metric.brief)}",',
            f'    prometheus_name="{metric.prometheus_name}",',
            f'    prometheus_type="{metric.prometheus_type}",',
            "    attributes=(" + "".join(f"{constant(a)}, " for a in extra) + "),",
            ")",
        ]
    out += ["", "# ---------------------------------------------------------------------- span events", ""]
    for event in conventions.events:
        out += [f'EVENT_{constant(event.name)}: Final = "{event.name}"', f'"""{_doc(event.brief)}"""']
    out += [
        "",
        "METRICS: Final = (" + "".join(f"{n}, " for n in names) + ")",
        "#: The metrics of breakers, with COMMON_ATTRIBUTES on every series (the others describe guards",
        "#: and the state store, and carry their attributes only).",
        "BREAKER_METRICS: Final = (" + "".join(f"{n}, " for n in breaker_names) + ")",
        "",
        "",
        "def label(attribute: str) -> str:",
        '    """The Prometheus label of an attribute: ``circuit_breaker.name`` -> ``circuit_breaker_name``."""',
        '    return "".join(c if c.isalnum() else "_" for c in attribute)',
        "",
    ]
    return "\n".join(out)


def _requirement(level: str, condition: str | None) -> str:
    return f"{level.replace('_', ' ')}: {condition}" if condition else level.replace("_", " ")


def _attribute_row(attribute: Attribute) -> str:
    if attribute.type == "enum":
        kind = "enum: " + ", ".join(f"`{m.value}`" for m in attribute.members)
    else:
        kind = attribute.type
    note = f" {_doc(attribute.note)}" if attribute.note else ""
    return (
        f"| `{attribute.id}` | `{attribute.label}` | {kind} | {attribute.stability} | {_doc(attribute.brief)}{note} |"
    )


def render_markdown(conventions: SemanticConventions) -> str:
    manifest = conventions.manifest
    common = conventions.groups[COMMON_GROUP]
    common_ids = {a.attribute.id for a in common}
    lines = [
        "# Semantic conventions for circuit breakers",
        "",
        "<!-- Generated from exporter/breakerpanel/exporter/semconv/ by `python -m breakerpanel.exporter._codegen`."
        " Do not edit. -->",
        "",
        f"Registry `{manifest.name}` {manifest.semconv_version}, in OpenTelemetry Weaver's format",
        "(`exporter/breakerpanel/exporter/semconv/`): the single source of truth for every metric and label name",
        "used by the exporter, the dashboards, the alert rules and the incident bot. " + _doc(manifest.description),
        "",
        "## Attributes",
        "",
        "| attribute | Prometheus label | type | stability | description |",
        "|---|---|---|---|---|",
    ]
    lines += [_attribute_row(a) for a in sorted(conventions.attributes.values(), key=lambda a: a.id)]
    lines += [
        "",
        "### On every series",
        "",
        "The breaker's identity, and the dependency attributes configured for it (in `breakers.yaml`,",
        "`attributes:`). Their cardinality is bounded by the number of breakers, never by requests.",
        "",
        "| attribute | requirement |",
        "|---|---|",
    ]
    lines += [f"| `{a.attribute.id}` | {_requirement(a.requirement_level, a.condition)} |" for a in common]
    lines += ["", "## Metrics", ""]
    for metric in conventions.metrics:
        lines += _metric_section(metric, common_ids)
    lines += [
        "## Span events",
        "",
        "Recorded on the span active when they happen, with the common attributes; nothing is",
        "recorded when no span is recording.",
        "",
    ]
    for event in conventions.events:
        extra = ", ".join(f"`{a.attribute.id}`" for a in event.attributes if a.attribute.id not in common_ids)
        lines += [f"- `{event.name}`: {_doc(event.brief)} Attributes: {extra}.", ""]
    return "\n".join(lines).rstrip() + "\n"


def _metric_section(metric: Metric, common_ids: set[str]) -> list[str]:
    prometheus = metric.prometheus_name
    series = (
        f"`{prometheus}_bucket`, `{prometheus}_sum`, `{prometheus}_count`"
        if metric.instrument == "histogram"
        else f"`{prometheus}`"
    )
    lines = [
        f"### `{metric.name}`",
        "",
        _doc(metric.brief) + (f" {_doc(metric.note)}" if metric.note else ""),
        "",
        f"- instrument: {metric.instrument}; unit: `{metric.unit}`; stability: {metric.stability}",
        f"- Prometheus: {series} ({metric.prometheus_type})",
    ]
    extra = [a for a in metric.attributes if a.attribute.id not in common_ids]
    if extra:
        carries_common = len(extra) < len(metric.attributes)
        heading = "beyond the common ones" if carries_common else "(not the common ones)"
        lines += [f"- attributes {heading}:", ""]
        lines += ["  | attribute | Prometheus label | requirement |", "  |---|---|---|"]
        lines += [
            f"  | `{a.attribute.id}` | `{prometheus_label(a.attribute.id)}` | "
            f"{_requirement(a.requirement_level, a.condition)} |"
            for a in extra
        ]
    lines.append("")
    return lines


def _formatted(source: str, filename: str) -> str:
    """The project's formatter over generated code, so the committed file is ruff-clean."""
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", filename, "-"],
        input=source,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ruff format failed on generated {filename}: {result.stderr}")
    return result.stdout


def outputs() -> dict[Path, str]:
    conventions = load_registry()
    return {
        SEMCONV_PY: _formatted(render_python(conventions), "exporter/breakerpanel/exporter/semconv.py"),
        SEMCONV_MD: render_markdown(conventions),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="report stale files, change nothing")
    args = parser.parse_args(argv)
    return write_or_check(
        outputs(), check=args.check, remake="python -m breakerpanel.exporter._codegen", shown_from=ROOT
    )


if __name__ == "__main__":
    sys.exit(main())
