"""The promtool tests ``breakerpanel rules`` writes with a service's rules
(:mod:`breakerpanel.alert_rules.promtool_tests`): made from that service's configuration
(``sample_service/``, not the demo's), passing on the rules written with them, failing on rules
that behave otherwise, and checked by ``--check`` like the rules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from breakerpanel.alert_rules.__main__ import main, unit_tests_for
from tests.servers import run_promtool

SAMPLE = Path(__file__).with_name("sample_service")


def write(config: Path, out: Path, *extra: str) -> Path:
    """The rules (and their tests, and the Alertmanager configuration) of ``config`` into ``out``."""
    rules = out / "rules.yaml"
    args = ["--config", str(config), "--output", str(rules), "--alertmanager", str(out / "alertmanager.yml")]
    assert main([*args, *extra]) == 0
    return rules


def promtool_test(tests: Path) -> str:
    result = run_promtool("test", "rules", tests)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_promtool_passes_the_tests_written_with_the_rules(tmp_path: Path) -> None:
    rules = write(SAMPLE / "rules.yaml", tmp_path)
    tests = tmp_path / "tests" / "rules.test.yaml"
    assert yaml.safe_load(tests.read_text())["rule_files"] == ["../rules.yaml"]
    assert "SUCCESS" in promtool_test(tests)
    assert rules.is_file()


def test_the_tests_are_made_from_the_service_s_own_configuration(tmp_path: Path) -> None:
    write(SAMPLE / "rules.yaml", tmp_path)
    text = (tmp_path / "tests" / "rules.test.yaml").read_text()
    names = [test["name"] for test in yaml.safe_load(text)["tests"]]
    assert names == [
        # Every breaker of breakers.yaml opens: the tier (billing, summarize) and the levels of rules.yaml.
        "mistral opens: CircuitBreakerOpen warns at once (the cause), then at critical once open for 90s",
        "mistral.chat opens: CircuitBreakerOpen warns at once (the cause), then no more (its severity is warning)",
        "billing opens: CircuitBreakerOpen warns at once (the cause), then at critical once open for 90s",
        "mysql opens: CircuitBreakerOpen warns at once (the cause), then at critical once open for 90s",
        "summarize opens: CircuitBreakerOpen warns at once (the cause), then at critical once open for 90s",
        # Each SLO that covers a breaker; `queues` covers none.
        "SLO inference: every call of mistral, mistral.chat fails: its budget burns",
        "SLO money: every call of billing fails: its budget burns",
        # The feature with a fallback.
        "summarize: its calls fail and so do its fallbacks: users see errors",
        "every breaker closed, every call succeeding: no alert, firing or pending",
    ]
    assert "# Not tested: SLO queues (no breaker of breakers_file matches).\n" in text
    # Labelled as the exporter labels the series: registry attributes kept, others dropped.
    assert 'server_address="billing.internal"' in text
    assert "team" not in text
    assert 'circuit_breaker_requires="mistral"' in text
    # The SLOs' own severities and windows: inference pages at warning with a slow burn too, money
    # pages at the default (critical) without one.
    assert 'severity="warning", slo="inference", burn="fast"' in text
    assert 'severity="warning", slo="inference", burn="slow"' in text
    assert 'severity="critical", slo="money", burn="fast"' in text
    assert 'slo="money", burn="slow"' not in text


def _variant(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    config = yaml.safe_load((SAMPLE / "rules.yaml").read_text())
    config["breakers_file"] = str(SAMPLE / "breakers.yaml")
    change(config)
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _set(*keys: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(config: dict[str, Any]) -> None:
        node = config
        for key in keys[:-1]:
            node = node[key] if not isinstance(node, list) else node[int(key)]
        node[keys[-1]] = value

    return change


@pytest.mark.parametrize(
    ("change", "alert"),
    [
        (_set("alerts", "open", "for", value="3m"), "CircuitBreakerOpen"),  # pages later
        (_set("alerts", "open", "tiers", value=[]), "CircuitBreakerOpen"),  # billing no longer pages
        (_set("alerts", "open", "notify", value=False), "CircuitBreakerOpen"),  # no cause alert at once
        (_set("slos", "0", "page_severity", value="critical"), "CircuitBreakerErrorBudgetBurn"),
        (_set("slos", "1", "target", value=0.2), "CircuitBreakerErrorBudgetBurn"),  # 100% failing burns < 14.4x
        (_set("alerts", "fallback_failing", "severity", value="warning"), "CircuitBreakerFallbackFailing"),
    ],
    ids=["open later", "no tier", "no notify", "page severity", "unreachable factor", "fallback severity"],
)
def test_the_tests_fail_on_rules_made_from_another_configuration(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], alert: str
) -> None:
    write(SAMPLE / "rules.yaml", tmp_path)
    # The variant's rules where the tests read them; its own tests elsewhere.
    variant_tests = str(tmp_path / "variant" / "tests" / "rules.test.yaml")
    write(
        _variant(tmp_path, change),
        tmp_path / "variant",
        "--output",
        str(tmp_path / "rules.yaml"),
        "--tests",
        variant_tests,
    )
    result = run_promtool("test", "rules", tmp_path / "tests" / "rules.test.yaml")
    assert result.returncode == 1, result.stdout
    assert alert in result.stdout + result.stderr


def test_the_healthy_test_fails_on_a_rule_that_fires_on_healthy_traffic(tmp_path: Path) -> None:
    rules = write(SAMPLE / "rules.yaml", tmp_path)
    data = yaml.safe_load(rules.read_text())
    (rule,) = [r for g in data["groups"] for r in g["rules"] if r.get("alert") == "CircuitBreakerRejectingTraffic"]
    assert " > 0.5\n" in rule["expr"]
    rule["expr"] = rule["expr"].replace(" > 0.5\n", " >= 0\n")  # no rejection at all is "rejecting"
    rules.write_text(yaml.safe_dump(data))
    result = run_promtool("test", "rules", tmp_path / "tests" / "rules.test.yaml")
    assert result.returncode == 1
    assert "CircuitBreakerRejectingTraffic" in result.stdout + result.stderr


def test_the_tests_can_go_elsewhere_and_find_the_rules(tmp_path: Path) -> None:
    tests = tmp_path / "promtool" / "breakers.test.yaml"
    write(SAMPLE / "rules.yaml", tmp_path / "out", "--tests", str(tests))
    assert not (tmp_path / "out" / "tests").exists()
    assert yaml.safe_load(tests.read_text())["rule_files"] == ["../out/rules.yaml"]
    promtool_test(tests)


def test_check_reports_stale_tests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(SAMPLE / "rules.yaml", tmp_path)
    args = ["--config", str(SAMPLE / "rules.yaml"), "--output", str(tmp_path / "rules.yaml")]
    args += ["--alertmanager", str(tmp_path / "alertmanager.yml"), "--check"]
    assert main(args) == 0
    tests = tmp_path / "tests" / "rules.test.yaml"
    tests.write_text(tests.read_text().replace("for 90s", "for 2m"))
    capsys.readouterr()
    assert main(args) == 1
    assert f"{tests} is stale" in capsys.readouterr().err


def test_without_a_breakers_file_the_tests_use_one_example_breaker(tmp_path: Path) -> None:
    config = tmp_path / "rules-only.yaml"
    config.write_text("slos: [{name: all, target: 0.99, match: {circuit_breaker.level: service}}]\n")
    write(config, tmp_path)
    text = (tmp_path / "tests" / "rules.test.yaml").read_text()
    assert "example opens:" in text
    assert 'slo="all", burn="fast"' in text
    promtool_test(tmp_path / "tests" / "rules.test.yaml")


def test_unit_tests_for() -> None:
    assert unit_tests_for(Path("out/rules.yaml")) == Path("out/tests/rules.test.yaml")
    assert unit_tests_for(Path("breakerpanel.rules.yml")) == Path("tests/breakerpanel.rules.test.yml")
    assert unit_tests_for(Path("rules")) == Path("tests/rules.test.yaml")


def test_prometheus_loading_the_rule_folder_by_glob_loads_the_rules_and_not_their_tests(tmp_path: Path) -> None:
    # The usual way to load rules: every *.yaml of a folder. A test file among them would be read
    # as rules, and promtool (as Prometheus) would reject the configuration.
    write(SAMPLE / "rules.yaml", tmp_path / "rules")
    assert sorted(p.name for p in (tmp_path / "rules").glob("*.yaml")) == ["rules.yaml"]
    config = tmp_path / "prometheus.yml"
    config.write_text("rule_files: [rules/*.yaml]\n")
    checked = run_promtool("check", "config", config)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rule files found" in checked.stdout + checked.stderr
    promtool_test(tmp_path / "rules" / "tests" / "rules.test.yaml")
