"""The alert-quality benchmark runs a scenario file from outside the repository through the whole
pipeline and writes its report; what reached the fakes is checked by shape and by count (which
incidents, paged or not, how many Slack messages), never by timing: timing is the benchmark's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.servers import require_binary

from .support import load_bench

SCENARIO = """\
name: smoke-outage
description: OpenAI down briefly; the fallbacks serve; Slack hears of it once, nobody is paged.
duration: 8m
steps:
  - {at: 1m, chaos: {upstream: openai, fault: outage}}
  - {at: 3m, chaos: {upstream: openai, fault: clear}}
expect:
  incidents:
    - {breaker: openai, severity: warning, paged: false, may_attach: [openai.chat, openai.embeddings, answer, search]}
"""


def test_a_scenario_file_from_anywhere_runs_and_is_graded(tmp_path: Path) -> None:
    for binary in ("prometheus", "prometheus-alertmanager", "redis-server"):
        require_binary(binary)
    scenario = tmp_path / "elsewhere" / "smoke.yaml"
    scenario.parent.mkdir()
    scenario.write_text(SCENARIO)
    out = tmp_path / "alert_quality.json"
    bench = load_bench("alert_quality")
    bench.main(["--scenario", str(scenario), "--time-scale", "0.05", "--output", str(out)])
    report = json.loads(out.read_text())
    assert set(report["totals"]) >= {"precision", "recall", "incidents_per_fault", "unexpected_pages", "missed_pages"}
    result = report["scenarios"]["smoke-outage"]
    actual = result["actual"]
    assert set(actual) >= {
        "incidents",
        "pages",
        "slack_messages",
        "children_attached",
        "time_to_first_notification_s",
        "time_to_page_s",
        "time_to_resolve_s",
    }
    assert [(i["subject"], i["severity"], i["paged"]) for i in actual["incidents"]] == [("openai", "warning", False)]
    assert actual["pages"] == 0
    assert 1 <= actual["slack_messages"] <= 3  # the card, and its edit when resolved
    assert (tmp_path / "alert_quality.md").read_text().startswith("# Alert quality")


def test_a_bad_scenario_file_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SCENARIO.replace("fault: outage", "fault: meltdown"))
    bench = load_bench("alert_quality")
    with pytest.raises(Exception, match=r"steps\.0\.chaos\.fault"):
        bench.main(["--scenario", str(bad)])
