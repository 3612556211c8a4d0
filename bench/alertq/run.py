"""One scenario through the whole pipeline: start it, drive load and faults on the scenario's clock,
wait for the bot to settle, collect, grade."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from demo.load import BackgroundLoad

from .grade import Budget, grade
from .observe import Observed, Watcher, collect
from .pipeline import Pipeline, TimeScale
from .scenario import Scenario, Step, chaos_body

__all__ = ["run_scenario"]

Log = Callable[[str], None]
#: Answers each replica must have served before the scenario's clock starts (a warm service, and
#: breakers that have seen calls).
WARM_ANSWERS = 10
#: Longest wait for the warm-up and for the bot to settle after the load, in wall-clock seconds.
SETTLE_TIMEOUT_S = 240.0


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:g}s")
        time.sleep(0.2)


def _apply(pipeline: Pipeline, step: Step) -> str:
    if step.chaos is not None:
        chaos = step.chaos
        for upstreams in pipeline.upstreams_for(chaos.replica):
            upstreams.chaos(chaos.upstream, chaos_body(chaos))
        where = "" if chaos.replica is None else f" (replica {chaos.replica})"
        return f"chaos {chaos.upstream} {chaos.fault} {chaos.params or ''}{where}".rstrip()
    if step.process is not None:
        target = step.process.target
        process = pipeline.redis if target == "redis" else pipeline.demo(target)
        assert process is not None
        if step.process.action == "kill":
            process.kill()
        elif step.process.action == "start":
            process.start()
        else:
            process.restart()
        return f"{step.process.action} {target}"
    assert step.breaker is not None
    pipeline.demos[step.breaker.replica].set_breaker(step.breaker.name, step.breaker.state)
    return f"breaker {step.breaker.name} -> {step.breaker.state} on demo-{step.breaker.replica}"


def _settled(pipeline: Pipeline) -> bool:
    """Every incident resolved and nothing left to deliver."""
    incidents = pipeline.bot_get("/v1/incidents?limit=500")
    if any(i["status"] != "resolved" for i in incidents):
        return False
    return not any(
        d["status"] == "pending" for i in incidents for d in pipeline.bot_get(f"/v1/incidents/{i['id']}")["deliveries"]
    )


def run_scenario(scenario: Scenario, scale: TimeScale, log: Log) -> dict[str, Any]:
    """Run ``scenario`` at ``scale`` and grade it."""
    log(f"{scenario.name}: starting the pipeline ({scenario.replicas} replica(s))")
    with Pipeline(scale, scenario.replicas, scenario.upstreams_per_replica) as pipeline:
        assert pipeline.prometheus is not None
        for job in ("demo", "incident-bot"):
            pipeline.prometheus.wait_for_target_up(job, timeout=60)
        for chaos in scenario.background:
            for upstreams in pipeline.upstreams_for(chaos.replica):
                upstreams.chaos(chaos.upstream, chaos_body(chaos))
        observed = Observed()
        watcher = Watcher(pipeline, observed)
        loads = [BackgroundLoad(demo.url, scenario.rps).start() for demo in pipeline.demos]
        try:
            _wait(
                lambda: all(load.latest is not None and load.latest.ok >= WARM_ANSWERS for load in loads),
                SETTLE_TIMEOUT_S,
                "warm answers from every replica",
            )
            watcher.start()
            started_at = time.time()
            timeline: list[dict[str, Any]] = []
            end = started_at + scale.seconds(scenario.duration)
            log(f"{scenario.name}: {scenario.duration:g}s of scenario time = {end - started_at:.0f}s of wall clock")
            for step in sorted(scenario.steps, key=lambda s: s.at):
                _sleep_until(started_at + scale.seconds(step.at))
                what = _apply(pipeline, step)
                timeline.append({"at_s": step.at, "wall_s": round(time.time() - started_at, 2), "what": what})
                log(f"{scenario.name}: t={step.at:>5.0f}s {what} ({_remaining(end)} left)")
            _sleep_until(end)
        finally:
            for load in loads:
                load.stop()
        log(f"{scenario.name}: load stopped; waiting for the bot to settle")
        try:
            _wait(lambda: _settled(pipeline), SETTLE_TIMEOUT_S, "every incident resolved and delivered")
        except TimeoutError as exc:
            log(f"{scenario.name}: {exc}")
        watcher.stop()
        collect(pipeline, observed)
        assert pipeline.prometheus is not None
        budget = _budget(pipeline)
        result = grade(scenario, observed, budget, started_at=started_at, scale=scale.factor)
        result["timeline"] = timeline + _story(observed, started_at, scale)
        result["settings"] = pipeline.settings
        result["budget_s"] = {"first_notification": budget.first_notification_s, "resolve": budget.resolve_s}
        return result


def _budget(pipeline: Pipeline) -> Budget:
    prometheus = pipeline.settings["prometheus"]
    alertmanager = pipeline.settings["alertmanager"]

    def seconds(text: str) -> float:
        return float(text.removesuffix("ms")) / 1000

    return Budget(
        scrape_s=seconds(prometheus["scrape_interval"]),
        evaluation_s=seconds(prometheus["evaluation_interval"]),
        group_wait_s=seconds(alertmanager["group_wait"]),
        resolve_after_s=float(pipeline.settings["incident_bot"]["resolve_after_s"]),
    )


def _sleep_until(at: float) -> None:
    delay = at - time.time()
    if delay > 0:
        time.sleep(delay)


def _remaining(end: float) -> str:
    return f"{max(0.0, end - time.time()):.0f}s"


def _story(observed: Observed, started_at: float, scale: TimeScale) -> list[dict[str, Any]]:
    """Breaker transitions, alerts firing and notifications, in scenario seconds, in order."""

    def at(wall: float) -> float:
        return round((wall - started_at) / scale.factor, 1)

    story: list[dict[str, Any]] = [
        {"at_s": at(t.at), "what": f"{t.replica} {t.breaker} -> {t.state}"}
        for t in observed.transitions
        if t.at >= started_at
    ]
    for span in observed.alerts.values():
        labels = span.labels
        name = labels.get("circuit_breaker_name") or labels.get("instance", "")
        what = f"{labels.get('alertname')} {name} ({labels.get('severity')})"
        story.append({"at_s": at(span.first), "what": f"firing: {what}"})
        story.append({"at_s": at(span.last), "what": f"last seen firing: {what}"})
    for event in observed.pagerduty:
        story.append(
            {"at_s": at(event["at"]), "what": f"PagerDuty {event['action'] or event['kind']}: {event['summary']}"}
        )
    for message in observed.slack:
        kind = "edit" if message["method"] == "chat.update" else ("reply" if message["thread_ts"] else "post")
        story.append({"at_s": at(message["at"]), "what": f"Slack {kind} {message['channel']}: {message['text'][:120]}"})
    return sorted(story, key=lambda item: item["at_s"])
