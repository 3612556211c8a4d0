"""The generated rule file: current, valid for promtool, every alert unit-tested both ways, every
alert annotated and given a runbook."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from breakerpanel.alert_rules import ALERTS, RULES_FILE, TESTS_FILE, load_rules_config, render, runbook_slug
from breakerpanel.alert_rules.__main__ import main
from breakerpanel.exporter import loop_names
from breakerpanel.exporter.rules_config import Severity
from tests.servers import run_promtool

ROOT = Path(__file__).resolve().parents[2]
UNIT_TESTS = sorted((ROOT / "alert_rules" / "tests").glob("*.test.yaml"))
RUNBOOKS = ROOT / "docs" / "runbooks"


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alerting_rules() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def test_the_committed_rule_file_is_current() -> None:
    assert RULES_FILE.read_text() == render(load_rules_config()), "run `make rules`"
    assert main(["--check"]) == 0  # its generated promtool tests too (TESTS_FILE)
    # ... which test_promtool_unit_tests runs with the hand-written ones.
    assert TESTS_FILE in UNIT_TESTS


def test_check_reports_a_stale_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "rules.yaml"
    stale.write_text(RULES_FILE.read_text().replace("for: 5m", "for: 6m", 1))
    assert main(["--check", "--output", str(stale)]) == 1
    assert "stale" in capsys.readouterr().err
    assert main(["--output", str(stale)]) == 0
    assert stale.read_text() == RULES_FILE.read_text()


def test_promtool_accepts_the_rules() -> None:
    result = run_promtool("check", "rules", RULES_FILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout
    assert "FAILED" not in result.stdout + result.stderr  # promtool's lint (duplicate rules) exits 0


@pytest.mark.parametrize("unit_test", UNIT_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests(unit_test: Path) -> None:
    result = run_promtool("test", "rules", unit_test)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """A rule file whose open alert waits longer must fail the open unit test: the tests pin behaviour."""
    (tmp_path / "generated").mkdir()
    (tmp_path / "generated" / RULES_FILE.name).write_text(RULES_FILE.read_text().replace("for: 5m", "for: 10m"))
    unit_test = tmp_path / "tests" / "open.test.yaml"
    unit_test.parent.mkdir()
    unit_test.write_text((ROOT / "alert_rules" / "tests" / "open.test.yaml").read_text())
    result = run_promtool("test", "rules", unit_test)
    assert result.returncode == 1
    assert "CircuitBreakerOpen" in result.stdout + result.stderr


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in UNIT_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert set(ALERTS) - firing == set(), "alerts never tested firing"
    assert set(ALERTS) - quiet == set(), "alerts never tested staying quiet"


def test_the_rule_file_holds_exactly_the_alerts_we_define() -> None:
    assert {rule["alert"] for rule in alerting_rules()} == set(ALERTS)


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda r: f"{r['alert']}-{r['labels']['severity']}")
def test_every_alert_is_annotated_in_the_mixin_style(rule: dict[str, Any]) -> None:
    assert rule["alert"][0].isupper()
    assert "_" not in rule["alert"]
    assert rule["labels"]["severity"] in {s.value for s in Severity}
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url", "dashboard_url"}
    assert annotations["summary"].endswith(".")
    assert "\n" not in annotations["summary"]
    config = load_rules_config()
    assert annotations["runbook_url"] == f"{config.runbook_url}/{runbook_slug(rule['alert'])}.md"
    assert annotations["dashboard_url"].startswith(config.grafana_url + "/d/")
    assert any(f"/d/{d.uid}/" in annotations["dashboard_url"] for d in loop_names.DASHBOARDS)


@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_every_alert_has_a_runbook(alert: str) -> None:
    runbook = RUNBOOKS / f"{runbook_slug(alert)}.md"
    assert runbook.is_file(), f"write {runbook.relative_to(ROOT)}"
    text = runbook.read_text()
    assert text.startswith(f"# {alert}\n")
    for section in ("## Meaning", "## Impact", "## Diagnosis", "## Mitigation"):
        assert section in text, f"{runbook.name} lacks {section}"


def test_breaker_dashboard_links_preselect_the_breaker() -> None:
    open_rule = next(r for r in alerting_rules() if r["alert"] == "CircuitBreakerOpen")
    url = open_rule["annotations"]["dashboard_url"]
    assert f"/d/{loop_names.DETAIL.uid}/" in url
    assert f"var-{loop_names.Var.BREAKER}={{{{ $labels.circuit_breaker_name | urlquery }}}}" in url


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda r: f"{r['alert']}-{r['labels']['severity']}")
def test_dashboard_urls_set_variables_the_dashboard_has(rule: dict[str, Any]) -> None:
    import json
    from urllib.parse import urlsplit

    url = rule["annotations"]["dashboard_url"]
    uid = urlsplit(url.split("?")[0]).path.split("/")[2]
    dashboard = json.loads(
        next((ROOT / "dashboards" / "generated").glob(f"{uid.removeprefix('breakerpanel-')}.json")).read_text()
    )
    assert dashboard["uid"] == uid
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    for pair in url.split("?", 1)[1].split("&"):
        name, value = pair.split("=", 1)
        variable = variables.get(name.removeprefix("var-"))
        assert variable is not None, f"{name}: {uid} has no such variable"
        if value == loop_names.ALL:
            assert variable["includeAll"], f"{name}: {uid} has no All option"
