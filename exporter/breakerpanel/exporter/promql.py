"""PromQL over the conventions' series, for the dashboards, the alert rules and your own queries.

Every metric and label name comes from :mod:`breakerpanel.exporter.semconv`, so a query built here cannot drift
from what the exporter emits::

    >>> from breakerpanel.exporter import promql, semconv as sc
    >>> promql.selector(sc.METRIC_CIRCUIT_BREAKER_CALLS, promql.eq(sc.CIRCUIT_BREAKER_OUTCOME_LABEL, "failure"))
    'circuit_breaker_calls_total{circuit_breaker_outcome="failure"}'
    >>> promql.sum_by_breaker("rate(x[5m])", without_dependency=True)  # doctest: +NORMALIZE_WHITESPACE
    'sum by (job, circuit_breaker_name, circuit_breaker_level, circuit_breaker_parent, circuit_breaker_service,
    circuit_breaker_requires) (rate(x[5m]))'
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from breakerpanel import CircuitBreaker

from . import semconv as sc
from ._sources import BreakerReading, common_attributes

__all__ = [
    "BREAKER_LABELS",
    "DEPENDENCY_LABELS",
    "IDENTITY_LABELS",
    "INSTANCE_LABEL",
    "JOB_LABEL",
    "alternation",
    "breaker_labels",
    "eq",
    "ne",
    "nre",
    "one_of",
    "re",
    "selector",
    "sum_by_breaker",
]

#: The label Prometheus adds to every series of a scrape job: the monitored application.
JOB_LABEL = "job"
#: The label Prometheus adds to every series of a scrape: the scraped target (one process).
INSTANCE_LABEL = "instance"
#: The labels that name one breaker across the instances of one application.
IDENTITY_LABELS: tuple[str, ...] = (
    JOB_LABEL,
    sc.CIRCUIT_BREAKER_NAME_LABEL,
    sc.CIRCUIT_BREAKER_LEVEL_LABEL,
    sc.CIRCUIT_BREAKER_PARENT_LABEL,
    sc.CIRCUIT_BREAKER_SERVICE_LABEL,
    sc.CIRCUIT_BREAKER_REQUIRES_LABEL,
)
#: The dependency labels: fixed per breaker, so keeping them in an aggregation adds no series.
DEPENDENCY_LABELS: tuple[str, ...] = tuple(sc.label(a) for a in sc.DEPENDENCY_ATTRIBUTES)
#: What a per-breaker aggregation keeps: identity and dependency labels (never ``instance``).
BREAKER_LABELS: tuple[str, ...] = IDENTITY_LABELS + DEPENDENCY_LABELS


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def eq(label: str, value: str) -> str:
    """``label="value"``."""
    return f"{label}={_quote(str(value))}"


def ne(label: str, value: str) -> str:
    """``label!="value"``."""
    return f"{label}!={_quote(str(value))}"


def re(label: str, pattern: str) -> str:
    """``label=~"pattern"`` (Prometheus anchors the pattern at both ends)."""
    return f"{label}=~{_quote(pattern)}"


def nre(label: str, pattern: str) -> str:
    """``label!~"pattern"``."""
    return f"{label}!~{_quote(pattern)}"


def one_of(label: str, values: Iterable[str | StrEnum]) -> str:
    """``label=~"a|b"``: the label is one of ``values`` (matched literally)."""
    return re(label, alternation(values))


def alternation(values: Iterable[str | StrEnum]) -> str:
    """The regular expression ``a|b`` that matches exactly one of ``values``."""
    return "|".join(_escape_regex(str(v)) for v in values)


def _escape_regex(value: str) -> str:
    return "".join("\\" + c if c in r".^$*+?()[]{}|\\" else c for c in value)


def selector(metric: sc.MetricSpec | str, *matchers: str, suffix: str = "") -> str:
    """A series selector: ``metric{matcher, ...}``; ``suffix`` picks a histogram's ``_bucket``,
    ``_sum`` or ``_count``."""
    name = (metric.prometheus_name if isinstance(metric, sc.MetricSpec) else metric) + suffix
    return f"{name}{{{', '.join(matchers)}}}" if matchers else name


def sum_by_breaker(expr: str, *extra: str, without_dependency: bool = False) -> str:
    """``sum by (<breaker labels>, extra...) (expr)``: one series per breaker (instances summed)."""
    labels = (IDENTITY_LABELS if without_dependency else BREAKER_LABELS) + extra
    return f"sum by ({', '.join(labels)}) ({expr})"


def breaker_labels(breaker: CircuitBreaker) -> dict[str, str]:
    """The labels on every series of ``breaker``, as the exporter writes them (``job`` and
    ``instance`` are Prometheus's): its name and level, its parent and service or the services a
    feature requires, and its dependency attributes (others are dropped, as the exporter drops them)."""
    reading = BreakerReading(
        name=breaker.name,
        level=breaker.level.value,
        parent=breaker.parent.name if breaker.parent is not None else None,
        attributes={k: v for k, v in breaker.attributes.items() if k in sc.DEPENDENCY_ATTRIBUTES},
        state=breaker.state.value,
        requires=breaker.requires,
    )
    return {sc.label(attribute): value for attribute, value in common_attributes(reading).items()}
