"""Grading one run against its scenario's expectations, and the totals over every scenario.

An incident is what the bot opened as a root (``parent_id`` empty); an attached incident is a
child of one. The bot keys incidents by breaker (``breaker:<job>:<level>:<name>``) or, for an
alert about no breaker, by ``alert:<alertname>:<job>:<instance>``: an expected incident matches a
root incident about the same breaker name, or the same alert name.

Timing targets (wall-clock seconds, after scaling):

- first notification (the first Slack post or PagerDuty trigger of the incident) within one scrape
  interval + one evaluation interval + Alertmanager's group_wait + 1 s of the root breaker's trip
  (the first ``open`` seen at a replica after the fault began);
- resolved (the bot's ``resolved_at``) within the bot's ``resolve_after`` + two evaluation intervals
  of the moment the last of the incident's alerts stopped firing in Prometheus.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

from .observe import Observed
from .scenario import ExpectedIncident, Scenario

__all__ = ["Budget", "grade", "totals"]


@dataclass(frozen=True)
class Budget:
    """The timing targets of a run, in wall-clock seconds."""

    scrape_s: float
    evaluation_s: float
    group_wait_s: float
    resolve_after_s: float

    @property
    def first_notification_s(self) -> float:
        return self.scrape_s + self.evaluation_s + self.group_wait_s + 1.0

    @property
    def resolve_s(self) -> float:
        return self.resolve_after_s + 2 * self.evaluation_s


def _subject(incident: Mapping[str, Any]) -> str:
    identity = str(incident["identity"])
    if identity.startswith("alert:"):
        return "alert:" + identity.split(":")[1]
    return identity.rsplit(":", 1)[-1]


def _breaker_of(incident: Mapping[str, Any]) -> str:
    labels = incident.get("labels") or {}
    return str(labels.get("circuit_breaker_name") or _subject(incident))


def _alert_keys(incident: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(alertname, breaker-or-instance) of the incident's alerts, to find them in Prometheus."""
    keys = set()
    for alert in incident.get("alerts", []):
        labels = alert.get("labels") or {}
        keys.add((str(labels.get("alertname")), str(labels.get("circuit_breaker_name") or labels.get("instance"))))
    return keys


def _notifications(incident: Mapping[str, Any], observed: Observed) -> tuple[list[float], list[float], int]:
    """Times of the incident's PagerDuty triggers (as the fake received them), of its Slack messages
    (the bot's delivered Slack items: each one is one post or edit), and their count."""
    dedup = incident["dedup_key"]
    triggers = [e["at"] for e in observed.pagerduty if e["dedup_key"] == dedup and e["action"] == "trigger"]
    messages = [
        float(d["sent_at"])
        for d in incident.get("deliveries", [])
        if d["target"] == "slack" and d["status"] == "sent" and not d["dry_run"] and d["sent_at"] is not None
    ]
    return triggers, messages, len(messages)


def _expected_match(expected: ExpectedIncident, incident: Mapping[str, Any]) -> bool:
    """An expected root cause is matched by an incident about it, or about a breaker of its service
    (an endpoint that tripped alone is that service's trouble)."""
    if _subject(incident) == expected.subject:
        return True
    labels = incident.get("labels") or {}
    return expected.breaker is not None and expected.breaker in (
        _breaker_of(incident),
        labels.get("circuit_breaker_service"),
    )


def grade(
    scenario: Scenario,
    observed: Observed,
    budget: Budget,
    *,
    started_at: float,
    scale: float,
) -> dict[str, Any]:
    """The scenario's result: what was expected, what happened, and whether it passes."""
    roots = [i for i in observed.incidents if i.get("parent_id") is None]
    by_id = {i["id"]: i for i in observed.incidents}
    unmatched = list(roots)
    problems: list[str] = []
    actual: list[dict[str, Any]] = []
    pages = 0
    for incident in roots:
        triggers, messages, count = _notifications(incident, observed)
        children = sorted(_breaker_of(by_id.get(c["id"], c)) for c in incident.get("children", []))
        pages += bool(triggers)
        # The fault's first notification: the root's, or one of an incident it adopted (an endpoint
        # that tripped first gets its card out first; its service's incident then takes that very
        # Slack message over), as the trip below is the first among the root and its children.
        adopted = [by_id[c["id"]] for c in incident.get("children", []) if c.get("id") in by_id]
        first = min(
            [*triggers, *messages, *(t for child in adopted for t in chain(*_notifications(child, observed)[:2]))],
            default=None,
        )
        # The fault's first trip: the root's breaker, or one it touched that tripped first (an
        # endpoint under half its calls failing trips before its service).
        touched = {_breaker_of(incident), *children}
        trip = min((t.at for b in touched for t in observed.trips(b, after=started_at)), default=None)
        firing_ends = [
            span.last
            for span in observed.alerts.values()
            if (span.labels.get("alertname"), span.labels.get("circuit_breaker_name") or span.labels.get("instance"))
            in _alert_keys(incident)
        ]
        resolved_at = incident.get("resolved_at")
        actual.append(
            {
                "id": incident["id"],
                "subject": _subject(incident),
                "title": incident["title"],
                "severity": incident["severity"],
                "status": incident["status"],
                "paged": bool(triggers),
                "children": children,
                "slack_messages": count,
                "alerts": sorted({a["alertname"] for a in incident.get("alerts", [])}),
                "first_notification_s": _since(first, started_at, scale),
                "time_to_first_notification_s": round(first - trip, 2) if first and trip else None,
                "time_to_page_s": round(min(triggers) - (trip or started_at), 2) if triggers else None,
                "time_to_resolve_s": round(resolved_at - max(firing_ends), 2) if resolved_at and firing_ends else None,
                "resolved_s": _since(resolved_at, started_at, scale),
            }
        )
    matched: list[tuple[ExpectedIncident, dict[str, Any] | None]] = []
    for expected in scenario.expect.incidents:
        found = next(
            (a for a, i in zip(actual, roots, strict=True) if i in unmatched and _expected_match(expected, i)), None
        )
        if found is not None:
            unmatched.remove(next(i for i in roots if i["id"] == found["id"]))
        matched.append((expected, found))
    for expected, found in matched:
        problems += _check(expected, found, budget, scale)
    for incident in unmatched:
        problems.append(f"unexpected incident #{incident['id']} {incident['title']} ({incident['severity']})")
    expected_pages = sum(e.paged for e in scenario.expect.incidents)
    change_events = sum(1 for e in observed.pagerduty if e["kind"] == "change")
    if change_events < scenario.expect.change_events:
        problems.append(f"{change_events} PagerDuty change event(s), expected at least {scenario.expect.change_events}")
    slack_total = len(observed.slack)
    allowed = scenario.expect.max_slack_messages_per_fault * max(1, scenario.faults)
    if slack_total > allowed:
        problems.append(f"{slack_total} Slack messages, at most {allowed} allowed")
    unexpected_pages = sum(
        1
        for a, i in zip(actual, roots, strict=True)
        if a["paged"] and not any(e.paged and _expected_match(e, i) for e in scenario.expect.incidents)
    )
    missed_pages = sum(1 for e, found in matched if e.paged and not (found and found["paged"]))
    return {
        "expected": scenario.expect.model_dump(mode="json"),
        "actual": {
            "incidents": actual,
            "pages": pages,
            "slack_messages": slack_total,
            "change_events": change_events,
            "children_attached": {a["subject"]: a["children"] for a in actual},
            "time_to_first_notification_s": _first([a["time_to_first_notification_s"] for a in actual]),
            "time_to_page_s": _first([a["time_to_page_s"] for a in actual]),
            "time_to_resolve_s": _last([a["time_to_resolve_s"] for a in actual]),
        },
        "counts": {
            "expected_incidents": len(scenario.expect.incidents),
            "incidents": len(roots),
            "matched": sum(1 for _, found in matched if found is not None),
            "expected_pages": expected_pages,
            "unexpected_pages": unexpected_pages,
            "missed_pages": missed_pages,
            "faults": scenario.faults,
            "soak": scenario.soak,
        },
        "problems": problems,
        "pass": not problems,
    }


def _since(at: float | None, started_at: float, scale: float) -> float | None:
    """Wall-clock ``at`` as scenario seconds since the load started."""
    return None if at is None else round((at - started_at) / scale, 1)


def _first(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def _last(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _check(expected: ExpectedIncident, found: dict[str, Any] | None, budget: Budget, scale: float) -> list[str]:
    what = expected.subject
    if found is None:
        return [f"missing incident about {what}"]
    problems = []
    if found["severity"] != expected.severity:
        problems.append(f"{what}: severity {found['severity']}, expected {expected.severity}")
    if found["paged"] != expected.paged:
        got, wanted = ("paged" if found["paged"] else "not paged"), ("a page" if expected.paged else "no page")
        problems.append(f"{what}: {got}, expected {wanted}")
    missing = sorted(set(expected.children) - set(found["children"]))
    if missing:
        problems.append(f"{what}: children {missing} not attached (attached: {found['children']})")
    stray = sorted(set(found["children"]) - set(expected.children) - set(expected.may_attach))
    if stray:
        problems.append(f"{what}: attached {stray}, not expected")
    first = found["time_to_first_notification_s"]
    if first is not None and first > budget.first_notification_s:
        problems.append(
            f"{what}: first notification {first:.1f}s after the trip (target {budget.first_notification_s:.1f}s)"
        )
    resolve = found["time_to_resolve_s"]
    if found["status"] != "resolved":
        problems.append(f"{what}: not resolved by the end of the run ({found['status']})")
    elif resolve is not None and resolve > budget.resolve_s:
        problems.append(
            f"{what}: resolved {resolve:.1f}s after its last alert cleared (target {budget.resolve_s:.1f}s)"
        )
    if expected.notified_by is not None and (
        found["first_notification_s"] is None or found["first_notification_s"] > expected.notified_by
    ):
        problems.append(
            f"{what}: first notified at {found['first_notification_s']}s, expected by {expected.notified_by:g}s"
        )
    if expected.resolved_by is not None and (found["resolved_s"] is None or found["resolved_s"] > expected.resolved_by):
        problems.append(f"{what}: resolved at {found['resolved_s']}s, expected by {expected.resolved_by:g}s")
    return problems


def totals(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Precision, recall and the rest over every scenario graded."""
    incidents = sum(r["counts"]["incidents"] for r in results.values())
    matched = sum(r["counts"]["matched"] for r in results.values())
    expected = sum(r["counts"]["expected_incidents"] for r in results.values())
    faults = sum(r["counts"]["faults"] for r in results.values() if not r["counts"]["soak"])
    with_faults = sum(r["counts"]["incidents"] for r in results.values() if not r["counts"]["soak"])
    return {
        "scenarios": len(results),
        "passed": sum(1 for r in results.values() if r["pass"]),
        "precision": round(matched / incidents, 4) if incidents else 1.0,
        "recall": round(matched / expected, 4) if expected else 1.0,
        "incidents_per_fault": round(with_faults / faults, 3) if faults else None,
        "false_incidents_in_soak": sum(r["counts"]["incidents"] for r in results.values() if r["counts"]["soak"]),
        "unexpected_pages": sum(r["counts"]["unexpected_pages"] for r in results.values()),
        "missed_pages": sum(r["counts"]["missed_pages"] for r in results.values()),
    }
