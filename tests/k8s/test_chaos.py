"""deploy/k8s/chaos: Litmus experiments that Litmus accepts, aimed at pods and ports that exist."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import pytest

from demo import cli

from .conftest import K8S, build
from .models import EXPERIMENT_ENV, HTTP_STATUS_CODES, ChaosEngine
from .resources import container, of_kind, pod_specs, selects

#: The local scenarios (issue 10's scenario runner) and the manifest that plays each here.
SCENARIOS = {
    "full outage of the primary LLM provider": "openai-outage",
    "50% errors": "openai-errors",
    "a latency spike beyond the client timeout": "openai-latency",
    "a 429 storm with Retry-After": "openai-rate-limit",
    "a flapping dependency": "openai-flapping",
    "a Redis outage": "redis-outage",
}


@pytest.fixture(scope="module")
def chaos(builder: str) -> list[dict[str, Any]]:
    return build(K8S / "chaos", builder)


def _engines(chaos: list[dict[str, Any]]) -> dict[str, ChaosEngine]:
    return {name: ChaosEngine.model_validate(doc) for name, doc in of_kind(chaos, "ChaosEngine").items()}


def test_every_local_scenario_has_an_experiment(chaos: list[dict[str, Any]]) -> None:
    names = {d["metadata"]["name"] for d in chaos if d["kind"] in ("ChaosEngine", "Job")}
    assert set(SCENARIOS.values()) == names


def test_engines_validate_and_use_only_documented_settings(chaos: list[dict[str, Any]]) -> None:
    for name, engine in _engines(chaos).items():
        for experiment in engine.spec.experiments:
            env = {e.name: e.value for e in experiment.spec.components.env}
            assert set(env) <= EXPERIMENT_ENV[experiment.name], (name, set(env) - EXPERIMENT_ENV[experiment.name])
            if "STATUS_CODE" in env:
                assert int(env["STATUS_CODE"]) in HTTP_STATUS_CODES
            if "TOXICITY" in env:
                assert 0 <= int(env["TOXICITY"]) <= 100
            assert int(env["TOTAL_CHAOS_DURATION"]) > 0


def test_engines_target_pods_and_ports_that_exist(chaos: list[dict[str, Any]], base: list[dict[str, Any]]) -> None:
    accounts = of_kind(chaos, "ServiceAccount")
    services = of_kind(base, "Service")
    for name, engine in _engines(chaos).items():
        assert engine.spec.chaosServiceAccount in accounts
        assert engine.spec.appinfo is not None
        assert engine.spec.appinfo.appns == "breakerpanel"
        key, _, value = engine.spec.appinfo.applabel.partition("=")
        targets = [w for w, meta, _ in pod_specs(base) if selects({key: value}, meta["labels"])]
        assert len(targets) == 1, (name, targets)
        for experiment in engine.spec.experiments:
            env = {e.name: e.value for e in experiment.spec.components.env}
            if "TARGET_SERVICE_PORT" in env:
                ports = {p["containerPort"] for p in container(base, targets[0])["ports"]}
                assert int(env["TARGET_SERVICE_PORT"]) in ports
            for probe in experiment.spec.probe or []:
                assert probe.http_inputs is not None
                url = urlparse(probe.http_inputs.url)
                service = (url.hostname or "").split(".")[0]
                assert service in services
                assert url.port in {p["port"] for p in services[service]["spec"]["ports"]}


def test_rate_limit_job_runs_a_valid_cli_command(chaos: list[dict[str, Any]], base: list[dict[str, Any]]) -> None:
    (job,) = of_kind(chaos, "Job").values()
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:3] == ["python", "-m", "demo.cli"]
    parsed = cli._parser().parse_args(args[3:])
    assert (parsed.command, parsed.upstream, parsed.fault) == ("chaos", "openai", "rate_limit")
    assert parsed.retry_after
    assert parsed.for_s
    url = urlparse(parsed.url)
    service = of_kind(base, "Service")[(url.hostname or "").split(".")[0]]
    assert url.port in {p["port"] for p in service["spec"]["ports"]}
