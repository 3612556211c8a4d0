"""Which metric and label names a PromQL expression uses, and which of them nothing defines.

A misspelled metric or label does not make PromQL fail: the query just returns nothing, and a
dashboard panel or an alert stays quietly empty. These helpers parse an expression with
``promql_parser`` and check every name it references against what the exporter emits
(:mod:`breakerpanel.exporter.semconv`), the recording rules, and a few names Prometheus itself provides.

They take what dashboards and rule files contain: Grafana variables (``$job``, ``${datasource}``,
``[[breaker]]``, ``$__rate_interval``...) are substituted before parsing, and Grafana's variable
queries ``label_values(...)``, ``query_result(...)`` are understood.

>>> r = referenced('sum by (job) (rate(circuit_breaker_calls_total{circuit_breaker_name="$b"}[$__rate_interval]))')
>>> sorted(r.metrics), sorted(r.labels)
(['circuit_breaker_calls_total'], ['circuit_breaker_name', 'job'])
>>> unknown_names('rate(circuit_breaker_cals_total{circuit_breaker_nme="x"}[5m])')
['label circuit_breaker_nme', 'metric circuit_breaker_cals_total']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import promql_parser as pp

from breakerpanel.exporter import promql
from breakerpanel.exporter import semconv as sc
from breakerpanel.exporter.loop_names import SLO_LABEL

__all__ = [
    "DEFAULT_VARIABLE_VALUES",
    "KNOWN_LABELS",
    "PROMETHEUS_LABELS",
    "PROMETHEUS_METRICS",
    "Referenced",
    "known_metrics",
    "referenced",
    "substitute",
    "unknown_names",
]

#: Values given to Grafana's built-in variables before parsing (any valid duration or number will
#: do: only names matter here). Other variables become :data:`_PLACEHOLDER`.
DEFAULT_VARIABLE_VALUES: Mapping[str, str] = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "__interval_ms": "60000",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
#: What a dashboard variable becomes when the caller gives no value: inside a matcher's quotes it
#: is a regular expression that matches anything; outside quotes it does not parse, on purpose (a
#: bare variable in PromQL is a mistake worth a parse error).
_PLACEHOLDER = ".*"

#: Metrics Prometheus itself writes for every target.
PROMETHEUS_METRICS = frozenset({"up"})
#: Labels Prometheus adds (``job``, ``instance``), the histogram bucket label, and the SLO label
#: the recording rules add.
PROMETHEUS_LABELS = frozenset({promql.JOB_LABEL, "instance", "le"})
#: Every label a query may use without creating it: the registry's labels, Prometheus's, and ``slo``.
KNOWN_LABELS = frozenset(
    {sc.label(a) for a in sc.COMMON_ATTRIBUTES}
    | {label for spec in sc.METRICS for label in spec.labels}
    | PROMETHEUS_LABELS
    | {SLO_LABEL}
)

_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# $name, ${name}, ${name:format}, ${name.field}, [[name]], [[name:format]].
# Names start with a letter or an underscore: ``$1`` in label_replace is a regex group, not a variable.
_VARIABLE = re.compile(r"\$\{([A-Za-z_]\w*)(?:[:.][^}]*)?\}|\$([A-Za-z_]\w*)|\[\[([A-Za-z_]\w*)(?::[^\]]*)?\]\]")
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<args>.*)\)\s*$", re.DOTALL)
_QUERY_RESULT = re.compile(r"^\s*query_result\((?P<expr>.*)\)\s*$", re.DOTALL)
_METRICS = re.compile(r"^\s*metrics\(.*\)\s*$", re.DOTALL)
_LABEL_NAMES = re.compile(r"^\s*label_names\(.*\)\s*$", re.DOTALL)


@dataclass(frozen=True)
class Referenced:
    """The names an expression uses.

    ``metrics``: metric names of its selectors (``{__name__="x"}`` included; a regular
    expression on ``__name__`` is kept as written, ``__name__=~"..."``, and is never known).
    ``labels``: labels it reads (matchers, ``by``/``without``, ``on``/``ignoring``,
    ``group_left``/``group_right``, the source labels of ``label_replace``/``label_join``).
    ``created``: labels it creates (the target of ``label_replace``/``label_join``, the label of
    ``count_values``); reading them elsewhere in the same expression is fine.
    """

    metrics: frozenset[str] = field(default_factory=frozenset)
    labels: frozenset[str] = field(default_factory=frozenset)
    created: frozenset[str] = field(default_factory=frozenset)


def substitute(expr: str, values: Mapping[str, str] | None = None) -> str:
    """``expr`` with Grafana's variables replaced: by ``values`` (name -> text, without ``$``),
    then :data:`DEFAULT_VARIABLE_VALUES`, then ``.*``.

    >>> substitute('rate(x{job=~"$job", b="${breaker}"}[$__rate_interval])', {"job": "rag"})
    'rate(x{job=~"rag", b=".*"}[5m])'
    """
    given = {**DEFAULT_VARIABLE_VALUES, **(values or {})}

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group is not None)
        return given.get(name, _PLACEHOLDER)

    return _VARIABLE.sub(replace, expr)


def referenced(expr: str, values: Mapping[str, str] | None = None) -> Referenced:
    """The metrics and labels ``expr`` references: PromQL, or a Grafana variable query
    (``label_values(selector, label)``, ``label_values(label)``, ``query_result(expr)``;
    ``metrics(...)`` and ``label_names()`` reference nothing). Grafana variables are substituted
    first (:func:`substitute`, with ``values``). A syntax error raises ``ValueError`` naming the
    expression."""
    text = substitute(expr, values)
    label_values = _LABEL_VALUES.match(text)
    if label_values:
        selector, _, label = label_values["args"].rpartition(",")
        found = _parse(selector, expr) if selector.strip() else Referenced()
        return Referenced(found.metrics, found.labels | {label.strip()}, found.created)
    query_result = _QUERY_RESULT.match(text)
    if query_result:
        return _parse(query_result["expr"], expr)
    if _METRICS.match(text) or _LABEL_NAMES.match(text):
        return Referenced()
    return _parse(text, expr)


def known_metrics(recording_rules: Iterable[str] = ()) -> frozenset[str]:
    """The registry's series (histograms as ``_bucket``, ``_sum`` and ``_count``), Prometheus's
    own (:data:`PROMETHEUS_METRICS`), and ``recording_rules``."""
    names = set(PROMETHEUS_METRICS) | set(recording_rules)
    for spec in sc.METRICS:
        if spec.prometheus_type == "histogram":
            names.update(spec.prometheus_name + suffix for suffix in _HISTOGRAM_SUFFIXES)
        else:
            names.add(spec.prometheus_name)
    return frozenset(names)


def unknown_names(
    expr: str, recording_rules: Iterable[str] = (), *, values: Mapping[str, str] | None = None
) -> list[str]:
    """What ``expr`` references that nothing defines, sorted: ``"metric <name>"`` for a metric
    that is neither a registry metric, one of ``recording_rules``, nor ``up``; ``"label <name>"``
    for a label outside :data:`KNOWN_LABELS` that the expression does not create itself.
    Empty when every name is known."""
    found = referenced(expr, values)
    metrics = known_metrics(recording_rules)
    unknown = [f"metric {name}" for name in found.metrics if name not in metrics]
    unknown += [f"label {name}" for name in found.labels if name not in KNOWN_LABELS | found.created]
    return sorted(unknown)


# ---------------------------------------------------------------------- the AST walk


def _parse(text: str, original: str) -> Referenced:
    try:
        tree = pp.parse(text)
    except ValueError as exc:
        raise ValueError(f"{original!r} does not parse (as {text!r}): {exc}") from None
    walker = _Walker()
    pp.walk(tree, walker.visit)
    return Referenced(frozenset(walker.metrics), frozenset(walker.labels), frozenset(walker.created))


def _strings(args: Iterable[object]) -> list[str]:
    return [arg.val for arg in args if isinstance(arg, pp.StringLiteral)]


class _Walker:
    def __init__(self) -> None:
        self.metrics: set[str] = set()
        self.labels: set[str] = set()
        self.created: set[str] = set()

    def visit(self, node: pp.Expr) -> bool:
        if isinstance(node, pp.MatrixSelector):
            self._selector(node.vector_selector)
        elif isinstance(node, pp.VectorSelector):
            self._selector(node)
        elif isinstance(node, pp.AggregateExpr):
            if node.modifier is not None:
                self.labels.update(node.modifier.labels)
            if str(node.op) == "count_values" and isinstance(node.param, pp.StringLiteral):
                self.created.add(node.param.val)
        elif isinstance(node, pp.BinaryExpr) and node.modifier is not None:
            if node.modifier.matching is not None:
                self.labels.update(node.modifier.matching.labels)
            self.labels.update(node.modifier.group_labels or ())
        elif isinstance(node, pp.Call):
            self._call(node)
        return True

    def _selector(self, node: pp.VectorSelector) -> None:
        if node.name:
            self.metrics.add(node.name)
        groups = [node.matchers.matchers, *node.matchers.or_matchers]
        for matcher in (m for group in groups for m in group):
            if matcher.name != "__name__":
                self.labels.add(matcher.name)
            elif matcher.op == pp.MatchOp.Equal:
                self.metrics.add(matcher.value)
            else:
                self.metrics.add(str(matcher))

    def _call(self, node: pp.Call) -> None:
        name = node.func.name
        strings = _strings(node.args)
        if name == "label_replace" and len(strings) == 4:
            destination, _replacement, source, _regex = strings
            self.created.add(destination)
            self.labels.add(source)
        elif name == "label_join" and len(strings) >= 2:
            destination, _separator, *sources = strings
            self.created.add(destination)
            self.labels.update(sources)
        elif name == "sort_by_label" or name == "sort_by_label_desc":
            self.labels.update(strings)
