"""What the dashboards share: the datasource, variables, panel builders, units, thresholds, links,
and the PromQL pieces more than one dashboard needs.

grafanalib 0.7.1 writes an old dashboard schema (``schemaVersion: 12``, datasources as names,
graph-era thresholds), so the builders here set the modern fields themselves: every panel gets a
``{"type": "prometheus", "uid": "${datasource}"}`` datasource, a unit and thresholds in
``fieldConfig.defaults``, and its targets the same datasource; :func:`new_dashboard` sets the schema
version, the tag, the links between dashboards and the layout.

Every metric and label name comes from :mod:`breakerpanel.exporter.semconv` (through
:mod:`breakerpanel.exporter.promql`)
or from the recording rules' names (:mod:`breakerpanel.exporter.loop_names`); ``tests/dashboards`` checks
it with a PromQL parser.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import attr
from grafanalib.core import (  # type: ignore[import-untyped]
    Annotations,
    BarGauge,
    Dashboard,
    DashboardLink,
    GridPos,
    Panel,
    RowPanel,
    Stat,
    StateTimeline,
    Table,
    Target,
    Templating,
    Time,
    TimeSeries,
)

from breakerpanel import RATE_LIMITED_ERROR_TYPE, dashboards
from breakerpanel.exporter import loop_names, promql
from breakerpanel.exporter import semconv as sc
from breakerpanel.exporter.breaker_panels import STATE_CODES, state_code
from breakerpanel.exporter.loop_names import COUNTED_OUTCOMES, ERROR_OUTCOMES, DashboardId, Var

from . import DATASOURCE_TYPE, TAG

__all__ = [
    "BASELINE",
    "BUCKET_LABEL",
    "COUNTED_OUTCOMES",
    "DATASOURCE",
    "ERROR_OUTCOMES",
    "ERROR_RATIO",
    "INSTANCE_LABEL",
    "RANGE",
    "RATE_INTERVAL",
    "RATE_LIMITED_ERROR_TYPE",
    "SCHEMA_VERSION",
    "SERVICE_LABEL",
    "STATE_CODES",
    "STATE_MAPPINGS",
    "Section",
    "Unit",
    "bar_gauge",
    "counter_increase",
    "datasource_variable",
    "defined",
    "detail_link",
    "new_dashboard",
    "query_variable",
    "ratio",
    "show",
    "stat",
    "state_code",
    "state_timeline",
    "table",
    "target",
    "thresholds",
    "timeseries",
    "transitions_annotation",
    "var",
    "with_service",
]

#: The dashboard JSON schema the dashboards declare (Grafana 10.4 / 11); grafanalib says 12.
SCHEMA_VERSION: Final = 39
#: Every datasource reference: the datasource variable, resolved by Grafana at display time.
DATASOURCE: Final[Mapping[str, str]] = {"type": DATASOURCE_TYPE, "uid": "${" + Var.DATASOURCE + "}"}

#: Grafana's rate window: at least four scrape intervals, whatever the zoom.
RATE_INTERVAL: Final = "$__rate_interval"
#: The dashboard's time range, as a PromQL duration.
RANGE: Final = "$__range"

#: Labels Prometheus itself adds: the scraped target, and a histogram bucket's upper bound.
INSTANCE_LABEL: Final = promql.INSTANCE_LABEL
BUCKET_LABEL: Final = "le"

#: A label the dashboards compute (:func:`with_service`): the service-level breaker at the top of
#: a breaker's hierarchy. Not a registry label: no exporter emits it.
SERVICE_LABEL: Final = "service"


def show(label: str) -> str:
    """A legend or annotation placeholder for a label's value: ``{{label}}``."""
    return "{{" + label + "}}"


def var(name: str) -> str:
    """A dashboard variable as a query uses it: ``$job``."""
    return "$" + name


class Unit:
    """Grafana unit ids the dashboards use."""

    CALLS_PER_SECOND = "reqps"
    RATIO = "percentunit"
    SECONDS = "s"
    COUNT = "short"
    #: Codes shown through value mappings (the breaker state).
    STATE = "none"
    #: A burn rate: how many times faster than the objective allows the budget is spent.
    BURN_RATE = "suffix:x"


def thresholds(base: str, *steps: tuple[float, str]) -> dict[str, Any]:
    """Absolute thresholds: ``base`` color below the first step, then ``(value, color)`` steps."""
    return {
        "mode": "absolute",
        "steps": [{"color": base, "value": None}, *({"color": color, "value": value} for value, color in steps)],
    }


#: For panels whose values have no good or bad level (call rates, durations of healthy calls).
BASELINE: Final = thresholds("green")
#: For error ratios: 1% is worth a look, 5% is an incident.
ERROR_RATIO: Final = thresholds("green", (0.01, "orange"), (0.05, "red"))

# ---------------------------------------------------------------------- PromQL pieces

# STATE_CODES and state_code live with the breaker chart's queries
# (breakerpanel.exporter.breaker_panels): the incident bot's chart draws the same codes.
_STATE = sc.CircuitBreakerStateValues
_STATE_COLORS: Final[Mapping[sc.CircuitBreakerStateValues, str]] = {
    _STATE.CLOSED: "green",
    _STATE.METRICS_ONLY: "blue",
    _STATE.DISABLED: "text",
    _STATE.HALF_OPEN: "yellow",
    _STATE.OPEN: "red",
    _STATE.FORCED_OPEN: "dark-red",
}
#: Value mappings that show :data:`STATE_CODES` as state names, in the state's color.
STATE_MAPPINGS: Final = [
    {
        "type": "value",
        "options": {
            str(code): {"text": state.value, "color": _STATE_COLORS[state], "index": index}
            for index, (state, code) in enumerate(STATE_CODES.items())
        },
    }
]


def with_service(expr: str) -> str:
    """``expr`` with a :data:`SERVICE_LABEL` label: the parent's name for an endpoint, the breaker's
    own name for a service, and for a feature too (features have no parent: a feature is the top
    of its own hierarchy). The detail dashboard's ``service`` variable takes these values."""
    own = f'label_replace({expr}, "{SERVICE_LABEL}", "$1", "{sc.CIRCUIT_BREAKER_NAME_LABEL}", "(.*)")'
    return f'label_replace({own}, "{SERVICE_LABEL}", "$1", "{sc.CIRCUIT_BREAKER_PARENT_LABEL}", "(.+)")'


def counter_increase(series: str, window: str) -> str:
    """How much the counters of ``series`` grew over ``window``, a series that appeared within the
    window counting from 0.

    Some counter series appear at their first increment (an error type, a manual transition):
    Prometheus's first sample of such a series is already 1, so ``increase()`` misses that
    increment. A series absent ``window`` ago counts its whole value instead. Aggregate the result (``sum by``):
    new series keep their metric name, increased ones lose it."""
    new = f"({series} unless {series} offset {window})"
    return f"(\n  increase({series}[{window}]) unless {new}\nor\n  {new}\n)"


def ratio(numerator: str, denominator: str) -> str:
    """``numerator / denominator``, 0 rather than no data when the numerator has no series (a
    breaker that never failed has no failure series); no data, rather than NaN, when the
    denominator is 0 or has no series (no calls: no ratio)."""
    return f"({numerator} or 0 * {denominator})\n/\n({denominator} > 0)"


def defined(expr: str) -> str:
    """``expr`` without its NaN samples, for series that are never negative: the recording rules'
    error ratios are 0/0 = NaN for a breaker without calls in the window, and Grafana would draw
    or list "NaN"."""
    return f"({expr} >= 0)"


# ---------------------------------------------------------------------- variables


def datasource_variable() -> dict[str, Any]:
    """The ``datasource`` variable: any Prometheus datasource, the provisioned one by default."""
    uid = dashboards.options().datasource_uid
    return {
        "name": Var.DATASOURCE,
        "label": "Data source",
        "type": "datasource",
        "query": DATASOURCE_TYPE,
        "current": {"text": uid, "value": uid},
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "options": [],
        "refresh": 1,
        "regex": "",
    }


def query_variable(
    name: str,
    query: str,
    *,
    label: str,
    multi: bool = False,
    include_all: bool = False,
    regex: str = "",
    description: str = "",
    all_value: str = ".*",
) -> dict[str, Any]:
    """A query variable (``label_values(...)`` or ``query_result(...)``), refreshed when the time
    range changes. With ``include_all`` the "All" option is the default and is ``all_value``:
    ``.*`` matches every value, the empty one too (series without the label), where Grafana's own
    "All" would list the values it saw; ``.+`` leaves out series without the label."""
    job_regex = dashboards.options().job_regex
    if name == Var.JOB and job_regex and not regex:  # the service's own jobs only
        regex = f"/^(?:{job_regex})$/"
    current: dict[str, Any] = (
        {"text": ["All"] if multi else "All", "value": [loop_names.ALL] if multi else loop_names.ALL}
        if include_all
        else {}
    )
    return {
        "name": name,
        "label": label,
        "description": description,
        "type": "query",
        "datasource": dict(DATASOURCE),
        "query": query,
        "definition": query,
        "regex": regex,
        "multi": multi,
        "includeAll": include_all,
        "allValue": all_value if include_all else None,
        "current": current,
        "options": [],
        "refresh": 2,
        "sort": 1,
        "hide": 0,
    }


# ---------------------------------------------------------------------- annotations


def transitions_annotation(matchers: Sequence[str], *, name: str = "Transitions") -> dict[str, Any]:
    """State changes as annotations, from increases of ``circuit_breaker_transitions_total``."""
    transitions = promql.selector(sc.METRIC_CIRCUIT_BREAKER_TRANSITIONS, *matchers)
    labels = (
        promql.JOB_LABEL,
        sc.CIRCUIT_BREAKER_NAME_LABEL,
        sc.CIRCUIT_BREAKER_PREVIOUS_STATE_LABEL,
        sc.CIRCUIT_BREAKER_STATE_LABEL,
    )
    return {
        "name": name,
        "datasource": dict(DATASOURCE),
        "enable": True,
        "hide": False,
        "iconColor": "orange",
        "expr": f"sum by ({', '.join(labels)}) {counter_increase(transitions, RATE_INTERVAL)} > 0",
        "step": "30s",
        "titleFormat": f"{show(sc.CIRCUIT_BREAKER_NAME_LABEL)}: "
        f"{show(sc.CIRCUIT_BREAKER_PREVIOUS_STATE_LABEL)} → {show(sc.CIRCUIT_BREAKER_STATE_LABEL)}",
        "textFormat": show(promql.JOB_LABEL),
        "tagKeys": f"{sc.CIRCUIT_BREAKER_NAME_LABEL},{sc.CIRCUIT_BREAKER_STATE_LABEL}",
        "useValueForTime": False,
    }


# ---------------------------------------------------------------------- links


def detail_link(source: str = "field") -> dict[str, Any]:
    """A data link to the detail dashboard with the clicked breaker selected, keeping the time
    range and datasource. ``source``: ``"field"`` for a time series (its labels), ``"data"`` for a
    table row (its columns). The series must carry ``job``, the breaker's name and level and
    :data:`SERVICE_LABEL` (:func:`with_service`)."""

    def ref(label: str) -> str:
        return f"${{__field.labels.{label}}}" if source == "field" else f"${{__data.fields.{label}}}"

    url = loop_names.url(
        loop_names.DETAIL,
        "",
        **{
            Var.DATASOURCE: var("{" + Var.DATASOURCE + "}"),
            Var.JOB: ref(promql.JOB_LABEL),
            Var.LEVEL: ref(sc.CIRCUIT_BREAKER_LEVEL_LABEL),
            Var.SERVICE: ref(SERVICE_LABEL),
            Var.BREAKER: ref(sc.CIRCUIT_BREAKER_NAME_LABEL),
        },
    )
    title = f"Breaker detail: ${{__field.labels.{sc.CIRCUIT_BREAKER_NAME_LABEL}}}" if source == "field" else None
    return {"title": title or "Breaker detail", "url": url + "&${__url_time_range}", "targetBlank": False}


def _dashboard_links(extra: Iterable[DashboardLink]) -> list[DashboardLink]:
    return [
        DashboardLink(
            type="dashboards",
            tags=[TAG],
            asDropdown=True,
            title="Circuit breakers",
            includeVars=True,
            keepTime=True,
        ),
        *extra,
    ]


# ---------------------------------------------------------------------- panels


def target(expr: str, legend: str = "", *, instant: bool = False, table: bool = False, heatmap: bool = False) -> Target:
    """A Prometheus query; ``table`` for table panels (one row per series), ``heatmap`` for
    histogram buckets (Grafana de-accumulates them)."""
    fmt = "table" if table else "heatmap" if heatmap else "time_series"
    return Target(expr=expr, legendFormat=legend, instant=instant, format=fmt, datasource=dict(DATASOURCE))


def _with_refs(targets: Sequence[Target]) -> list[Target]:
    if not targets:
        raise ValueError("a panel needs at least one target")
    return [attr.evolve(t, refId=chr(ord("A") + i), intervalFactor=1) for i, t in enumerate(targets)]


def _field_defaults(
    unit: str,
    threshold_steps: Mapping[str, Any],
    *,
    data_links: Sequence[Mapping[str, Any]] = (),
    minimum: float | None = None,
    maximum: float | None = None,
    decimals: int | None = None,
) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": unit, "thresholds": dict(threshold_steps), "links": list(data_links)}
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    if decimals is not None:
        defaults["decimals"] = decimals
    return defaults


def timeseries(
    title: str,
    targets: Sequence[Target],
    *,
    unit: str,
    threshold_steps: Mapping[str, Any] = BASELINE,
    show_thresholds: bool = False,
    description: str = "",
    stack: bool = False,
    bars: bool = False,
    data_links: Sequence[Mapping[str, Any]] = (),
    overrides: Sequence[Mapping[str, Any]] = (),
    minimum: float | None = None,
    maximum: float | None = None,
) -> TimeSeries:
    """A time series panel; ``show_thresholds`` draws the thresholds as dashed lines."""
    return TimeSeries(
        title=title,
        maxDataPoints=None,
        description=description,
        dataSource=dict(DATASOURCE),
        targets=_with_refs(targets),
        unit=unit,
        drawStyle="bars" if bars else "line",
        fillOpacity=60 if bars else 10,
        stacking={"mode": "normal", "group": "A"} if stack else {"mode": "none", "group": "A"},
        showPoints="never",
        lineWidth=1,
        spanNulls=False,
        tooltipMode="multi",
        tooltipSort="desc",
        legendDisplayMode="table" if len(targets) > 1 or stack else "list",
        legendCalcs=["max", "lastNotNull"],
        thresholdsStyleMode="dashed" if show_thresholds else "off",
        overrides=list(overrides),
        extraJson={
            "fieldConfig": {
                "defaults": _field_defaults(
                    unit, threshold_steps, data_links=data_links, minimum=minimum, maximum=maximum
                )
            }
        },
    )


def stat(
    title: str,
    targets: Sequence[Target],
    *,
    unit: str,
    threshold_steps: Mapping[str, Any] = BASELINE,
    description: str = "",
    mappings: Sequence[Mapping[str, Any]] = (),
    graph: bool = True,
    color_background: bool = False,
    no_value: str = "0",
    decimals: int | None = None,
) -> Stat:
    """A stat panel showing each series' last value."""
    return Stat(
        title=title,
        maxDataPoints=None,
        description=description,
        dataSource=dict(DATASOURCE),
        targets=_with_refs(targets),
        format=unit,
        reduceCalc="lastNotNull",
        graphMode="area" if graph else "none",
        colorMode="background" if color_background else "value",
        mappings=list(mappings),
        noValue=no_value,
        decimals=decimals,
        textMode="auto",
        extraJson={
            "fieldConfig": {"defaults": _field_defaults(unit, threshold_steps, decimals=decimals)},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
        },
    )


def state_timeline(
    title: str,
    targets: Sequence[Target],
    *,
    description: str = "",
    data_links: Sequence[Mapping[str, Any]] = (),
) -> StateTimeline:
    """A state timeline of :func:`state_code` series, one row per series."""
    return StateTimeline(
        title=title,
        maxDataPoints=None,
        description=description,
        dataSource=dict(DATASOURCE),
        targets=_with_refs(targets),
        mappings=list(STATE_MAPPINGS),
        colorMode="thresholds",
        showValue="never",
        rowHeight=0.8,
        mergeValues=True,
        tooltipMode="single",
        extraJson={
            "fieldConfig": {"defaults": _field_defaults(Unit.STATE, BASELINE, data_links=data_links)},
        },
    )


def table(
    title: str,
    targets: Sequence[Target],
    *,
    unit: str,
    columns: Mapping[str, str],
    threshold_steps: Mapping[str, Any] = BASELINE,
    description: str = "",
    overrides: Sequence[Mapping[str, Any]] = (),
    data_links: Sequence[Mapping[str, Any]] = (),
    sort_by: str | None = None,
) -> Table:
    """A table of instant queries merged on their labels. ``columns`` maps the fields to show, in
    order, to their titles (a target's value is ``Value #<refId>``); other fields are hidden.
    ``sort_by``: the title of the column to sort by, highest first."""
    if len(targets) == 1:  # Grafana names a lone query's value field "Value", not "Value #A"
        columns = {"Value" if name == "Value #A" else name: title for name, title in columns.items()}
    if sort_by is not None and sort_by not in columns.values():
        raise ValueError(f"table {title!r}: no column titled {sort_by!r} to sort by")
    order = {name: index for index, name in enumerate(columns)}
    transformations = [
        {"id": "merge", "options": {}},
        {
            "id": "organize",
            "options": {
                "excludeByName": {},
                "indexByName": order,
                "renameByName": dict(columns),
            },
        },
        {"id": "filterFieldsByName", "options": {"include": {"names": list(columns.values())}}},
    ]
    return Table(
        title=title,
        maxDataPoints=None,
        description=description,
        dataSource=dict(DATASOURCE),
        targets=_with_refs([attr.evolve(t, instant=True, format="table") for t in targets]),
        unit=unit,
        overrides=list(overrides),
        transformations=transformations,
        filterable=True,
        extraJson={
            "fieldConfig": {"defaults": _field_defaults(unit, threshold_steps, data_links=data_links)},
            "options": {
                "showHeader": True,
                "cellHeight": "sm",
                "sortBy": [{"displayName": sort_by, "desc": True}] if sort_by else [],
            },
        },
    )


def bar_gauge(
    title: str,
    targets: Sequence[Target],
    *,
    unit: str,
    threshold_steps: Mapping[str, Any] = BASELINE,
    description: str = "",
) -> BarGauge:
    """A bar gauge, one bar per series (histogram buckets: ``target(..., heatmap=True)``)."""
    return BarGauge(
        title=title,
        maxDataPoints=None,
        description=description,
        dataSource=dict(DATASOURCE),
        targets=_with_refs(targets),
        format=unit,
        thresholds=[],
        extraJson={
            "fieldConfig": {"defaults": _field_defaults(unit, threshold_steps)},
            "options": {
                "displayMode": "gradient",
                "orientation": "vertical",
                "showUnfilled": True,
                "valueMode": "color",
                "namePlacement": "auto",
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            },
        },
    )


# ---------------------------------------------------------------------- layout and dashboard


@dataclass(frozen=True)
class Section:
    """A titled row of panels. ``widths`` (of 24 columns) default to equal shares; panels wrap to
    a new line when the row is full."""

    title: str
    panels: Sequence[Panel]
    height: int = 8
    widths: Sequence[int] | None = None


def _layout(sections: Sequence[Section]) -> list[Panel]:
    placed: list[Panel] = []
    y = 0
    for section in sections:
        row = RowPanel(title=section.title, gridPos=GridPos(h=1, w=24, x=0, y=y), dataSource=dict(DATASOURCE))
        placed.append(row)
        y += 1
        widths = list(section.widths or [24 // len(section.panels)] * len(section.panels))
        if len(widths) != len(section.panels):
            raise ValueError(f"section {section.title!r}: {len(widths)} widths for {len(section.panels)} panels")
        x = 0
        for panel, width in zip(section.panels, widths, strict=True):
            if x + width > 24:
                x, y = 0, y + section.height
            placed.append(attr.evolve(panel, gridPos=GridPos(h=section.height, w=width, x=x, y=y)))
            x += width
        y += section.height
    return placed


def new_dashboard(
    ident: DashboardId,
    *,
    description: str,
    variables: Sequence[Mapping[str, Any]],
    sections: Sequence[Section],
    annotations: Sequence[Mapping[str, Any]] = (),
    extra_links: Sequence[DashboardLink] = (),
    time_from: str = "now-3h",
    refresh: str = "30s",
) -> Dashboard:
    """A dashboard with the house settings: uid and title from :mod:`breakerpanel.exporter.loop_names`, the tag,
    the datasource variable first, shared crosshair, the browser's time zone, panel ids in order."""
    return Dashboard(
        title=ident.title,
        uid=ident.uid,
        description=description,
        tags=[TAG],
        editable=False,
        graphTooltip=1,
        schemaVersion=SCHEMA_VERSION,
        timezone="browser",
        refresh=refresh,
        time=Time(time_from, "now"),
        templating=Templating(list=[datasource_variable(), *variables]),
        annotations=Annotations(list=list(annotations)),
        links=_dashboard_links(extra_links),
        panels=_layout(sections),
    ).auto_panel_ids()
