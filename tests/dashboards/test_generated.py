"""The committed JSON is what the sources generate, and every dashboard follows the house rules:
datasource variable and references, schema version, stable unique uids, links, a unit and
thresholds and a query on every panel, unique panel ids, no undefined variable."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from breakerpanel import dashboards
from breakerpanel.dashboards import __main__ as cli
from breakerpanel.dashboards import common
from breakerpanel.exporter import loop_names

from .support import rendered

BOARDS = sorted(rendered())
DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
# Variables Grafana defines itself: $__rate_interval, ${__field.labels.x}, ${__url_time_range}...
_VARIABLE = re.compile(r"\$\{([A-Za-z_]\w*)[^}]*\}|\$([A-Za-z_]\w*)|\[\[([A-Za-z_]\w*)")


def _board(name: str) -> dict[str, Any]:
    return rendered()[name]


def _panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _visual_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in _panels(board) if p["type"] != "row"]


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")


# ---------------------------------------------------------------------- generated files


def test_the_committed_json_is_what_the_sources_generate() -> None:
    stale = dashboards.stale()
    assert stale == [], f"stale generated dashboards (run `make dashboards`): {[str(p) for p in stale]}"
    assert cli.main(["--check"]) == 0


def test_check_lists_changed_missing_and_orphaned_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(dashboards, "GENERATED_DIR", tmp_path)
    assert cli.main(["--check"]) == 1  # nothing generated yet: every file is missing
    assert len(capsys.readouterr().err.splitlines()) == len(BOARDS)
    assert cli.main([]) == 0
    assert cli.main(["--check"]) == 0
    changed = tmp_path / "overview.json"
    changed.write_text(changed.read_text().replace("Circuit breakers overview", "Edited by hand"))
    orphan = tmp_path / "old.json"
    orphan.write_text("{}\n")
    assert dashboards.stale() == [orphan, changed]
    assert cli.main(["--check"]) == 1
    assert "overview.json is stale" in capsys.readouterr().err
    assert cli.main([]) == 0
    assert not orphan.exists()
    assert dashboards.stale() == []


def test_generation_is_deterministic() -> None:
    again = {path.name: dashboards.render(dashboards.load(path)) for path in dashboards.sources()}
    assert again == rendered()
    for board in again.values():
        text = dashboards.dump(board)
        assert text.endswith("}\n")
        assert dashboards.dump(board) == text


def test_one_generated_file_per_dashboard_named_by_uid() -> None:
    names = {dashboards.output_path(board).name for board in rendered().values()}
    assert names == {f"{d.uid.removeprefix('breakerpanel-')}.json" for d in loop_names.DASHBOARDS}


# ---------------------------------------------------------------------- identity and links


def test_uids_and_titles_are_the_ones_in_loop_names() -> None:
    expected = {d.uid: d.title for d in loop_names.DASHBOARDS}
    found = {board["uid"]: board["title"] for board in rendered().values()}
    assert found == expected
    assert len(found) == len(BOARDS)


@pytest.mark.parametrize("name", BOARDS)
def test_schema_version_is_current(name: str) -> None:
    assert common.SCHEMA_VERSION >= 36
    assert _board(name)["schemaVersion"] == common.SCHEMA_VERSION


@pytest.mark.parametrize("name", BOARDS)
def test_the_first_variable_is_the_datasource(name: str) -> None:
    first = _board(name)["templating"]["list"][0]
    assert first["name"] == loop_names.Var.DATASOURCE
    assert first["type"] == "datasource"
    assert first["query"] == dashboards.DATASOURCE_TYPE
    assert first["current"]["value"] == dashboards.DATASOURCE_UID


@pytest.mark.parametrize("name", BOARDS)
def test_every_datasource_reference_is_the_variable(name: str) -> None:
    refs = [(path, value) for path, value in _walk(_board(name)) if path.endswith(".datasource")]
    assert refs, "no datasource reference at all"
    wrong = [(path, value) for path, value in refs if value != DATASOURCE_REF]
    assert wrong == []
    for panel in _visual_panels(_board(name)):
        assert panel["datasource"] == DATASOURCE_REF, panel["title"]
        assert all(t["datasource"] == DATASOURCE_REF for t in panel["targets"]), panel["title"]


@pytest.mark.parametrize("name", BOARDS)
def test_links_to_the_other_dashboards(name: str) -> None:
    board = _board(name)
    assert dashboards.TAG in board["tags"]
    by_tag = [link for link in board["links"] if link["type"] == "dashboards"]
    assert by_tag
    assert by_tag[0]["tags"] == [dashboards.TAG]
    assert by_tag[0]["keepTime"] is True


def test_overview_breakers_link_to_their_detail() -> None:
    board = _board("overview.dashboard.py")
    linked = {
        panel["title"]: link["url"]
        for panel in _visual_panels(board)
        for link in panel["fieldConfig"]["defaults"].get("links", [])
    }
    assert {"State per breaker", "Failure rate / threshold", "Breakers by error ratio (5m)"} <= set(linked)
    for url in linked.values():
        assert url.startswith(loop_names.DETAIL.path() + "?")
        for variable in (loop_names.Var.JOB, loop_names.Var.LEVEL, loop_names.Var.SERVICE, loop_names.Var.BREAKER):
            assert f"var-{variable}=$" in url
        assert url.endswith("&${__url_time_range}")


# ---------------------------------------------------------------------- panels


@pytest.mark.parametrize("name", BOARDS)
def test_every_panel_has_a_unit_and_thresholds(name: str) -> None:
    for panel in _visual_panels(_board(name)):
        defaults = panel["fieldConfig"]["defaults"]
        assert defaults.get("unit"), f"{panel['title']}: no unit"
        steps = defaults.get("thresholds", {}).get("steps")
        assert defaults["thresholds"]["mode"] == "absolute", panel["title"]
        assert steps, f"{panel['title']}: no thresholds"
        assert steps[0]["value"] is None, f"{panel['title']}: thresholds need a base step"
        values = [step["value"] for step in steps[1:]]
        assert values == sorted(values), f"{panel['title']}: thresholds out of order"


@pytest.mark.parametrize("name", BOARDS)
def test_every_panel_queries_something(name: str) -> None:
    for panel in _visual_panels(_board(name)):
        targets = panel["targets"]
        assert targets, f"{panel['title']}: no target"
        assert all(t["expr"].strip() for t in targets), panel["title"]
        ref_ids = [t["refId"] for t in targets]
        assert len(set(ref_ids)) == len(ref_ids), panel["title"]


@pytest.mark.parametrize("name", BOARDS)
def test_panel_ids_are_unique_and_the_grid_holds(name: str) -> None:
    panels = list(_panels(_board(name)))
    ids = [p["id"] for p in panels]
    assert None not in ids
    assert len(set(ids)) == len(ids)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        covered = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not covered & cells, f"{panel['title']} overlaps another panel"
        cells |= covered


@pytest.mark.parametrize("name", BOARDS)
def test_every_variable_used_is_defined(name: str) -> None:
    board = _board(name)
    defined = {v["name"] for v in board["templating"]["list"]}
    texts = [expr for _, expr in dashboards.expressions(board)]
    texts += [value for path, value in _walk(board) if isinstance(value, str) and path.endswith(".url")]
    used = {next(group for group in match.groups() if group) for text in texts for match in _VARIABLE.finditer(text)}
    assert {v for v in used if not v.startswith("__")} <= defined


@pytest.mark.parametrize("name", BOARDS)
def test_variables_chain_in_order(name: str) -> None:
    """A variable's query may only use the variables before it (Grafana resolves them in order)."""
    variables = _board(name)["templating"]["list"]
    for index, variable in enumerate(variables):
        if variable["type"] != "query":
            continue
        earlier = {v["name"] for v in variables[:index]}
        used = {next(g for g in m.groups() if g) for m in _VARIABLE.finditer(variable["query"])}
        assert used <= earlier, f"{variable['name']} uses {used - earlier} defined after it"
        assert variable["datasource"] == DATASOURCE_REF


@pytest.mark.parametrize("name", BOARDS)
def test_expressions_cover_targets_variables_and_annotations(name: str) -> None:
    board = _board(name)
    found = list(dashboards.expressions(board))
    targets = [t for p in _visual_panels(board) for t in p["targets"]]
    queries = [v for v in board["templating"]["list"] if v["type"] == "query"]
    assert len(found) == len(targets) + len(queries) + len(board["annotations"]["list"])
    assert {where.split()[0] for where, _ in found} >= {"panel", "variable"}


@pytest.mark.parametrize("name", BOARDS)
def test_table_sorting_and_overrides_name_shown_columns(name: str) -> None:
    for panel in (p for p in _visual_panels(_board(name)) if p["type"] == "table"):
        shown = next(t for t in panel["transformations"] if t["id"] == "filterFieldsByName")["options"]["include"]
        titles = set(shown["names"])
        assert {s["displayName"] for s in panel["options"]["sortBy"]} <= titles, panel["title"]
        matched = {o["matcher"]["options"] for o in panel["fieldConfig"]["overrides"] if o["matcher"]["id"] == "byName"}
        assert matched <= titles, panel["title"]
        renamed = next(t for t in panel["transformations"] if t["id"] == "organize")["options"]["renameByName"]
        values = [field for field in renamed if field.startswith("Value")]
        assert values == (
            ["Value"] if len(panel["targets"]) == 1 else [f"Value #{t['refId']}" for t in panel["targets"]]
        )


_BURN_PANEL = re.compile(r"^(Fast|Slow) burn: rate over (\w+) and (\w+) \(alert at ([\d.]+)x\)$")
_BURN_PAIR = re.compile(r"(\w+)/(\w+) over ([\d.]+)x")


@pytest.mark.parametrize(
    "slos",
    [
        "the demo's",
        [{"name": "api", "target": 0.99, "match": {"circuit_breaker.level": "service"}}],
        [
            {"name": "api", "target": 0.99, "match": {"circuit_breaker.level": "service"}, "ticket": False},
            {
                "name": "db",
                "target": 0.999,
                "match": {"db.system.name": ".+"},
                "page": [{"long": "6h", "short": "30m", "factor": 6}],
            },
        ],
        [{"name": "api", "target": 0.99, "match": {"circuit_breaker.level": "service"}, "page": [], "ticket": False}],
    ],
    ids=["demo", "defaults", "overrides", "no burn alert"],
)
def test_the_slo_dashboard_draws_the_burn_windows_the_alerts_fire_on(slos: Any, tmp_path: Path) -> None:
    """One burn-rate panel per window pair some CircuitBreakerErrorBudgetBurn alert fires on, and
    none for a pair no alert uses (an SLO's own pairs replace the defaults; ``ticket: false``
    drops the slow ones), read back from the generated rules' descriptions."""
    from breakerpanel.alert_rules import rule_groups
    from breakerpanel.exporter.rules_config import RulesConfig

    config = dashboards.rules_config()
    if slos != "the demo's":
        config = RulesConfig.model_validate(config.model_dump() | {"slos": slos})
    alerted = set()
    for group in rule_groups(config):
        for rule in group["rules"]:
            if rule.get("alert") == "CircuitBreakerErrorBudgetBurn":
                burn = rule["labels"]["burn"]
                alerted |= {(burn, *pair) for pair in _BURN_PAIR.findall(rule["annotations"]["description"])}
    slo_board = next(
        json.loads(text)
        for path, text in dashboards.generate(tmp_path, rules=config).items()
        if json.loads(text)["uid"] == loop_names.SLO.uid
    )
    drawn = set()
    for panel in _visual_panels(slo_board):
        match = _BURN_PANEL.match(panel["title"])
        if match:
            burn, long, short, factor = match.groups()
            drawn.add((burn.lower(), long, short, factor))
    assert drawn == alerted
