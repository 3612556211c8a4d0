"""``breakerpanel.alert_rules.render(config, time_scale=...)``: the rules for a compressed clock (the alert-quality
benchmark runs outages in seconds). Every duration is scaled (``for``, ``keep_firing_for``, every
range, the seconds a rate is multiplied by), nothing else changes, promtool accepts the result, and
the alerts behave on the compressed clock as the committed ones do on the real one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from breakerpanel.alert_rules import RULES_FILE, load_rules_config, render, rule_groups
from breakerpanel.exporter.rules_config import duration_seconds
from tests.servers import run_promtool

SCALE = 0.1

RANGE = re.compile(r"\[([0-9a-z]+)\]")
#: The seconds of a window a rate is multiplied by, to compare a count with min_calls.
SECONDS = re.compile(r"\* ([0-9.]+) >= ")


def rules(time_scale: float = 1.0) -> list[dict[str, Any]]:
    return [rule for group in rule_groups(load_rules_config(), time_scale) for rule in group["rules"]]


def scaled_ms(duration: str) -> str:
    return f"{round(duration_seconds(duration) * 1000 * SCALE)}ms"


def test_time_scale_1_is_the_committed_file() -> None:
    assert render(load_rules_config(), time_scale=1) == RULES_FILE.read_text()


@pytest.mark.parametrize("scale", [0, -1.0])
def test_a_time_scale_must_be_positive(scale: float) -> None:
    with pytest.raises(ValueError, match="time_scale must be positive"):
        render(load_rules_config(), time_scale=scale)


def test_every_duration_is_scaled_and_nothing_else_changes() -> None:
    nominal, scaled = rules(), rules(SCALE)
    assert [r.get("record") or r["alert"] for r in scaled] == [r.get("record") or r["alert"] for r in nominal]
    seen = {"for": 0, "keep_firing_for": 0, "ranges": 0, "seconds": 0}
    for before, after in zip(nominal, scaled, strict=True):
        # Record names keep the nominal window (dashboards and alerts read them by name), labels and
        # annotations are the same: only the durations move.
        assert {k: v for k, v in after.items() if k not in ("expr", "for", "keep_firing_for")} == {
            k: v for k, v in before.items() if k not in ("expr", "for", "keep_firing_for")
        }
        for key in ("for", "keep_firing_for"):
            assert (key in after) == (key in before)
            if key in before:
                assert after[key] == scaled_ms(before[key]), (before.get("alert"), key)
                seen[key] += 1
        ranges = RANGE.findall(before["expr"])
        assert RANGE.findall(after["expr"]) == [scaled_ms(r) for r in ranges]
        seconds = SECONDS.findall(before["expr"])
        assert [float(s) for s in SECONDS.findall(after["expr"])] == pytest.approx([float(s) * SCALE for s in seconds])
        seen["ranges"] += len(ranges)
        seen["seconds"] += len(seconds)

        def shape(expr: str) -> str:
            return SECONDS.sub("* N >= ", RANGE.sub("[D]", expr))

        assert shape(after["expr"]) == shape(before["expr"])
    assert all(seen.values()), seen  # each kind of duration was there to scale


def test_promtool_accepts_the_scaled_rules(tmp_path: Path) -> None:
    for scale in (SCALE, 0.01):
        path = tmp_path / f"scaled-{scale}.rules.yaml"
        path.write_text(render(load_rules_config(), time_scale=scale))
        result = run_promtool("check", "rules", path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"SUCCESS: {len(rules())} rules found" in result.stdout
        assert "FAILED" not in result.stdout + result.stderr


def test_the_open_alert_on_a_compressed_clock(tmp_path: Path) -> None:
    """open.test.yaml's first scenarios at a tenth of the time: 6s is a minute. The warning at once,
    the critical after 30s (5m), both kept 12s (2m) after the breaker closes; calls turned away are
    counted over 6s (`affected_window`, 1m)."""
    step = 60 * SCALE
    (tmp_path / "rules.yaml").write_text(render(load_rules_config(), time_scale=SCALE))
    labels = (
        'job="rag", instance="rag-0:8000", circuit_breaker_name="openai", circuit_breaker_level="service", '
        'circuit_breaker_service="openai", gen_ai_provider_name="openai"'
    )
    state = "circuit_breaker_state"
    rejected = 'circuit_breaker_outcome="rejected", circuit_breaker_rejection_reason="open"'

    def firing(at_step: int, *severities: str) -> dict[str, Any]:
        return {
            "expr": 'count by (severity) (ALERTS{alertname="CircuitBreakerOpen", alertstate="firing"})',
            "eval_time": f"{round(at_step * step * 1000)}ms",
            "exp_samples": [{"labels": f'{{severity="{s}"}}', "value": 1} for s in severities],
        }

    unit_test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": f"{round(step * 1000)}ms",
        "tests": [
            {
                "interval": f"{round(step * 1000)}ms",
                # Open from step 2 to step 14, turning calls away; closed from step 15.
                "input_series": [
                    {"series": f'circuit_breaker_state{{{labels}, {state}="open"}}', "values": "0 0 1x12 0x10"},
                    {"series": f'circuit_breaker_state{{{labels}, {state}="closed"}}', "values": "1 1 0x12 1x10"},
                    {"series": f"circuit_breaker_calls_total{{{labels}, {rejected}}}", "values": "0 0 10+10x12 130x10"},
                ],
                "promql_expr_test": [
                    firing(1),
                    firing(2, "warning"),
                    firing(6, "warning"),  # the critical is pending
                    firing(7, "critical", "warning"),
                    firing(16, "critical", "warning"),  # closed at 15: kept 2 steps
                    firing(17),
                ],
            }
        ],
    }
    path = tmp_path / "open.test.yaml"
    path.write_text(yaml.safe_dump(unit_test, sort_keys=False))
    result = run_promtool("test", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
