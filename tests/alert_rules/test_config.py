"""alert_rules/config.yaml: defaults, validation with line and key, and what a change generates."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from breakerpanel.alert_rules import load_rules_config, render, rule_groups
from breakerpanel.alert_rules.__main__ import main
from breakerpanel.config import ConfigFileError
from breakerpanel.exporter.rules_config import RulesConfig, duration_seconds
from tests.servers import run_promtool


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def alerts_named(config: RulesConfig, name: str) -> list[dict[str, object]]:
    return [rule for group in rule_groups(config) for rule in group["rules"] if rule.get("alert") == name]


def test_an_empty_file_is_the_defaults_and_promtool_accepts_its_rules(tmp_path: Path) -> None:
    config = load_rules_config(write(tmp_path, ""))
    assert config == RulesConfig()
    assert alerts_named(config, "CircuitBreakerErrorBudgetBurn") == []  # no SLO, no budget
    rules = tmp_path / "rules.yaml"
    rules.write_text(render(config))
    result = run_promtool("check", "rules", rules)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_problem_is_reported_with_its_line_and_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
grafana_url: localhost:3000
slos:
  - name: llm
    target: 1.5
    match: {gen_ai.provider: openai}
  - name: llm
    target: 0.99
    match: {circuit_breaker.name: "(unclosed"}
alerts:
  open:
    for: 5 minutes
    severity_by_level: {service: page}
  flapping: {openings: 1, windw: 15m}
""",
    )
    with pytest.raises(ConfigFileError) as caught:
        load_rules_config(path)
    problems = {(line, key) for line, key, _ in caught.value.problems}
    assert (1, "grafana_url") in problems
    assert (4, "slos.0.target") in problems
    assert (5, "slos.0.match") in problems
    assert (8, "slos.1.match") in problems
    assert (11, "alerts.open.for") in problems
    assert (12, "alerts.open.severity_by_level.service") in problems
    assert (13, "alerts.flapping.openings") in problems
    assert (13, "alerts.flapping.windw") in problems
    text = str(caught.value)
    assert "gen_ai.provider' is not a breaker attribute" in text
    assert "not a duration like 30s, 5m, 1h30m or 3d (got '5 minutes')" in text
    assert "not a regular expression" in text


def test_model_level_problems_name_the_culprit(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
slos:
  - {name: llm, target: 0.99, match: {circuit_breaker.level: service}}
  - {name: llm, target: 0.999, match: {circuit_breaker.level: service}}
alerts:
  open:
    tiers:
      - {name: core, breakers: [answer], severity: critical}
      - {name: extra, breakers: [answer], severity: info}
""",
    )
    with pytest.raises(ConfigFileError) as caught:
        load_rules_config(path)
    text = str(caught.value)
    assert "SLO names must be unique: llm used twice" in text
    assert "breaker 'answer' is in two tiers: 'core' and 'extra'" in text


def test_cli_reports_a_bad_file_without_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "rules.yaml"
    assert main(["--config", str(write(tmp_path, "alerts: {open: {for: soon}}")), "--output", str(output)]) == 2
    assert "alerts.open.for" in capsys.readouterr().err
    assert not output.exists()


def test_thresholds_reach_the_rules(tmp_path: Path) -> None:
    config = load_rules_config(
        write(
            tmp_path,
            """\
slos:
  - {name: llm, target: 0.99, match: {circuit_breaker.level: service}}
  - {name: db, target: 0.999, match: {circuit_breaker.level: service}, page_severity: warning}
  - {name: cache, target: 0.9, match: {circuit_breaker.level: service}, ticket: false}
alerts:
  open:
    for: 2m
    keep_firing_for: 30s
    affected_window: 45s
    severity_by_level: {service: warning, endpoint: info, feature: info}
  flapping: {openings: 6, window: 30m}
  fallback_failing: {window: 10m}
  degraded: {ratio: 0.3, window: 10m, for: 1m, min_calls: 50, fallback_types: [static], breakers: [answer, search]}
  metrics_absent: {for: 3m}
""",
        )
    )
    # The immediate warning (no `for`), then one rule per other severity, held `for`; a level at
    # warning gets no second rule. Both keep firing for keep_firing_for, the range of "open
    # lately"; both need calls failed or turned away within affected_window.
    warning, sustained = alerts_named(config, "CircuitBreakerOpen")
    assert warning["labels"] == {"severity": "warning"}
    assert "for" not in warning
    assert warning["keep_firing_for"] == "30s"
    assert sustained["labels"] == {"severity": "info"}
    assert (sustained["for"], sustained["keep_firing_for"]) == ("2m", "30s")
    assert 'circuit_breaker_level=~"endpoint|feature"' in str(sustained["expr"])
    assert "[30s]) == 1" in str(sustained["expr"])
    for rule in (warning, sustained):
        assert 'circuit_breaker_outcome=~"failure|rejected"}[45s])) > 0' in str(rule["expr"])
    (flapping,) = alerts_named(config, "CircuitBreakerFlapping")
    assert str(flapping["expr"]).endswith("[30m])) >= 6")
    (fallback,) = alerts_named(config, "CircuitBreakerFallbackFailing")
    assert "[10m]" in str(fallback["expr"])
    assert "> 0.1\n" in str(fallback["expr"])
    (degraded,) = alerts_named(config, "CircuitBreakerDegraded")
    assert degraded["for"] == "1m"
    assert degraded["labels"] == {"severity": "critical"}
    expr = str(degraded["expr"])
    assert 'circuit_breaker_name=~"answer|search"' in expr
    assert 'circuit_breaker_fallback_type=~"static"' in expr
    assert "[10m]" in expr
    assert "[5m]" not in expr
    assert "> 0.3\n" in expr
    assert expr.endswith(" * 600 >= 50")
    (absent,) = alerts_named(config, "BreakerMetricsAbsent")
    assert (absent["for"], absent["labels"]) == ("3m", {"severity": "critical"})
    # Per SLO: the fast burn at the SLO's page_severity (else error_budget_burn's), the slow at the
    # ticket's, unless the SLO turns it off.
    burns = {
        (r["labels"]["slo"], r["labels"]["burn"]): r["labels"]["severity"]  # type: ignore[index]
        for r in alerts_named(config, "CircuitBreakerErrorBudgetBurn")
    }
    assert burns == {
        ("llm", "fast"): "critical",
        ("llm", "slow"): "warning",
        ("db", "fast"): "warning",
        ("db", "slow"): "warning",
        ("cache", "fast"): "critical",
    }


def test_tiers_and_no_immediate_warning(tmp_path: Path) -> None:
    """Without `notify`, every severity, warning included, waits `for`; a tier takes its breakers out of
    their level's rule (names are escaped), and promtool finds no duplicate among the rules."""
    config = load_rules_config(
        write(
            tmp_path,
            """\
alerts:
  open:
    notify: false
    tiers:
      - {name: core, breakers: [answer], severity: critical}
      - {name: quiet, breakers: [openai.chat], severity: info}
""",
        )
    )
    rules = alerts_named(config, "CircuitBreakerOpen")
    assert [r["labels"]["severity"] for r in rules] == ["critical", "warning", "info"]  # type: ignore[index]
    assert {(r["for"], r["keep_firing_for"]) for r in rules} == {("5m", "2m")}
    critical, warning, info = (str(r["expr"]) for r in rules)
    untiered = r'circuit_breaker_name!~"answer|openai\\.chat"'
    assert 'circuit_breaker_name=~"answer"}' in critical
    assert f'circuit_breaker_level=~"endpoint|service", {untiered}' in critical
    assert f'circuit_breaker_level=~"feature", {untiered}' in warning
    assert r'circuit_breaker_name=~"openai\\.chat"}' in info
    path = tmp_path / "rules.yaml"
    path.write_text(render(config))
    result = run_promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout + result.stderr


def test_the_committed_configuration_is_valid_yaml_with_comments_kept() -> None:
    from breakerpanel.alert_rules import DEFAULT_CONFIG

    assert yaml.safe_load(DEFAULT_CONFIG.read_text())["slos"]
    assert load_rules_config().slos[0].name == "llm-providers"


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("5m", 300), ("1h30m", 5400), ("3d", 259200)])
def test_durations(text: str, seconds: int) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "1.5h", "m", "5 m", "-5m", "1w"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        duration_seconds(text)
