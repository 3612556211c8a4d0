"""What reaches the people on call, graded across whole fault scenarios.

Each scenario (one YAML file in bench/alert_scenarios/, or any file given with ``--scenario``) runs
through the real pipeline on loopback: demo replicas under load, the fake upstreams and Redis they
depend on, Prometheus with the shipped rules, Alertmanager with the shipped configuration, the
incident bot with the shipped routes, and a fake PagerDuty and Slack at the end. Faults come
through the upstreams' chaos API, process control (kill, start, restart) and the demo's admin API.
What the fakes received and what the bot made of it are graded against the scenario's
expectations: which incidents (by subject), how urgent, paged or not, which breakers attached,
how many Slack messages, notified and resolved by when.

Compressed time (``--time-scale``, 0.1 by default: a 30-minute soak takes 3 minutes). One factor
multiplies every duration of the alerting side, so that its behaviour is the production one in
fast motion:

================================  =============================  ==========================
what                              shipped                        at 0.1
================================  =============================  ==========================
Prometheus scrape, evaluation     deploy/prometheus              15s -> 1.5s
every ``for``, ``keep_firing_for``  alert_rules/config.yaml      5m -> 30s
every range, window, horizon      alert_rules (recording too)    5m -> 30s, 1h -> 6m
Alertmanager group_wait, ...      deploy/alertmanager            as shipped x 0.1
the bot's resolve_after           incident_bot default           5m -> 30s
scenario times (``at``, duration)  bench/alert_scenarios          10m -> 60s
================================  =============================  ==========================

The breakers are not scaled: their windows, waits and probes (demo/breakers.yaml) are seconds
already, and a fault's own parameters (a 5 s latency, a 2 s Retry-After) are what the breakers
meet. So at 0.1 a breaker trips in about the same wall-clock second as in production, which is
ten "scenario seconds": the targets below are therefore wall-clock seconds.

Targets (one run of every scenario): recall and precision 100%, one incident per fault, none in
the healthy soak, no unexpected or missed page, at most 3 Slack messages per fault; the first
notification within one scrape + one evaluation + group_wait + 1 s of the breaker tripping; the
incident resolved within resolve_after + two evaluations of its last alert clearing.

Usage::

    python bench/alert_quality.py                      # every scenario, results in bench/results/
    python bench/alert_quality.py --scenario FILE ...  # these scenario files only (anywhere)
    python bench/alert_quality.py --time-scale 0.2     # slower, closer to production timing

Writes ``bench/results/alert_quality.json`` (``--output``) and a Markdown report beside it with
each scenario's timeline.
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from alertq.grade import totals
from alertq.pipeline import TimeScale
from alertq.run import run_scenario
from alertq.scenario import load_scenario

SCENARIOS = ROOT / "bench" / "alert_scenarios"
RESULTS = ROOT / "bench" / "results" / "alert_quality.json"
TARGETS = {
    "precision": 1.0,
    "recall": 1.0,
    "incidents_per_fault": 1.0,
    "false_incidents_in_soak": 0,
    "unexpected_pages": 0,
    "missed_pages": 0,
}


def _log(text: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {text}", flush=True)


def _interrupt(signum: int, frame: object) -> None:
    # SIGTERM (a `timeout`, a CI cancel) unwinds like Ctrl-C, so every process started is stopped.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", type=Path, action="append", help="a scenario file (repeatable)")
    parser.add_argument("--time-scale", type=float, default=0.1, help="wall-clock seconds per scenario second")
    parser.add_argument("--output", type=Path, default=RESULTS, help="the JSON results (Markdown beside it)")
    args = parser.parse_args(argv)
    if not 0 < args.time_scale <= 1:
        parser.error("--time-scale must be in (0, 1]")
    files = args.scenario or sorted(SCENARIOS.glob("*.yaml"))
    scenarios = [load_scenario(path) for path in files]  # every file checked before anything starts
    scale = TimeScale(args.time_scale)
    estimate = sum(s.duration for s in scenarios) * scale.factor
    _log(f"{len(scenarios)} scenario(s), about {estimate / 60:.0f} min of scenario clock plus start-up and settling")
    results: dict[str, Any] = {}
    started = time.monotonic()
    for index, scenario in enumerate(scenarios, 1):
        _log(f"[{index}/{len(scenarios)}] {scenario.name}: {scenario.description}")
        try:
            results[scenario.name] = run_scenario(scenario, scale, _log)
        except Exception as exc:  # one broken run must not lose the others' results
            _log(f"{scenario.name}: the run failed: {type(exc).__name__}: {exc}")
            raise
        result = results[scenario.name]
        # What is done so far, on disk at once: a long run interrupted keeps its results.
        partial = args.output.with_suffix(".partial.json")
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps({"time_scale": scale.factor, "scenarios": results}, indent=2) + "\n")
        verdict = "PASS" if result["pass"] else "FAIL: " + "; ".join(result["problems"])
        elapsed = time.monotonic() - started
        _log(f"[{index}/{len(scenarios)}] {scenario.name}: {verdict} ({elapsed / 60:.1f} min so far)")
    summary = totals(results)
    report = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "time_scale": scale.factor,
        "scenarios": results,
        "totals": summary,
        "targets": {
            k: {"target": v, "measured": summary.get(k), "holds": summary.get(k) == v} for k, v in TARGETS.items()
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    args.output.with_suffix(".md").write_text(markdown(report))
    args.output.with_suffix(".partial.json").unlink(missing_ok=True)
    _log(f"totals: {json.dumps(summary)}")
    _log(f"wrote {args.output} and {args.output.with_suffix('.md').name}")
    failed = [name for name, r in results.items() if not r["pass"]]
    return 1 if failed or not all(t["holds"] for t in report["targets"].values()) else 0


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Alert quality",
        "",
        f"Generated by `python bench/alert_quality.py` at {report['generated_at']}, time scale "
        f"{report['time_scale']:g} (bench/alert_quality.py explains the mapping).",
        "",
        "| target | measured | holds |",
        "|---|---|---|",
    ]
    for name, target in report["targets"].items():
        lines.append(
            f"| {name} = {target['target']} | {target['measured']} | {'yes' if target['holds'] else '**no**'} |"
        )
    lines += [
        "",
        "| scenario | pass | incidents | pages | Slack | first notification s | resolve s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, result in report["scenarios"].items():
        actual = result["actual"]
        subjects = ", ".join(f"{i['subject']} ({i['severity']})" for i in actual["incidents"]) or "none"
        lines.append(
            f"| {name} | {'yes' if result['pass'] else '**no**'} | {subjects} | {actual['pages']} | "
            f"{actual['slack_messages']} | {actual['time_to_first_notification_s']} | {actual['time_to_resolve_s']} |"
        )
    for name, result in report["scenarios"].items():
        lines += ["", f"## {name}", ""]
        if result["problems"]:
            lines += [f"- problem: {p}" for p in result["problems"]] + [""]
        for incident in result["actual"]["incidents"]:
            children = ", ".join(incident["children"]) or "none"
            lines.append(
                f"- incident #{incident['id']} {incident['title']}: {incident['severity']}, "
                f"{'paged' if incident['paged'] else 'not paged'}, {incident['slack_messages']} Slack message(s), "
                f"children {children}, alerts {', '.join(incident['alerts'])}"
            )
        lines += ["", "| scenario s | what |", "|---|---|"]
        lines += [f"| {item['at_s']} | {item['what']} |" for item in result["timeline"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
