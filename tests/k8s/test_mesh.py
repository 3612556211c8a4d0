"""``breakerpanel mesh``: the manifests are what Istio, Linkerd and the Gateway API document, and
they agree with the breakers.yaml they come from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from breakerpanel import mesh
from breakerpanel.cli import main
from breakerpanel.config import BreakersFile, load_config

from .conftest import K8S
from .models import (
    DestinationRule,
    GatewayHTTPRoute,
    LinkerdRouteAnnotations,
    LinkerdServiceAnnotations,
    ServicePatch,
    VirtualService,
    seconds,
)
from .resources import of_kind

# A configuration with what demo/breakers.yaml lacks: call_timeout, an exponential wait, a
# consecutive-failure trigger, a count-based window, an idempotent route, a service with hosts only.
OTHER = """
defaults: {sliding_window_type: count_based, sliding_window_size: 4, minimum_calls: 10, failure_rate_threshold: 0.5}
services:
  search-api:
    hosts: [search-api]
    breaker: {call_timeout: 3s, wait_in_open: {exponential: {initial: 5s, maximum: 2m, jitter: 0.3}}}
    endpoints:
      lookup:
        breaker: {consecutive_failures_threshold: 2, call_timeout: 500ms}
        routes: [{path: /lookup, methods: [GET]}]
      write:
        routes: [{path_regex: "/items/[0-9]+", methods: [PUT, POST]}]
  billing:
    hosts: [billing.example.com]
    breaker: {minimum_calls: 40, failure_rate_threshold: 0.25, wait_in_open: 90s}
  cache:
    breaker: {classifier: redis}
"""


@pytest.fixture(params=["demo", "other"])
def config_path(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if request.param == "demo":
        return mesh.DEFAULT_CONFIG
    path = tmp_path / "breakers.yaml"
    path.write_text(OTHER)
    return path


def _docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def _istio(path: Path) -> list[dict[str, Any]]:
    return _docs(mesh.rendered_files("istio", path)["mesh.yaml"])


def _linkerd(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    files = mesh.rendered_files("linkerd", path)
    return _docs(files["http-routes.yaml"]), _docs(files["service-annotations.yaml"])


def _breakers(config: BreakersFile, service: str) -> list[str]:
    return [service, *(f"{service}.{e}" for e in config.services[service].endpoints)]


def _first_wait(config: BreakersFile, breaker: str) -> float:
    plan = mesh._waits(config.options_for(breaker).to_config())
    return plan[0]


def _observe(config: BreakersFile, breaker: str) -> float:
    c = config.options_for(breaker).to_config()
    return c.call_timeout if c.call_timeout is not None else c.slow_call_duration


def test_istio_manifests_validate(config_path: Path) -> None:
    for doc in _istio(config_path):
        model = {"DestinationRule": DestinationRule, "VirtualService": VirtualService}[doc["kind"]]
        model.model_validate(doc)


def test_linkerd_manifests_validate(config_path: Path) -> None:
    routes, patches = _linkerd(config_path)
    for doc in routes:
        GatewayHTTPRoute.model_validate(doc)
        LinkerdRouteAnnotations.model_validate(doc["metadata"]["annotations"])
    for doc in patches:
        ServicePatch.model_validate(doc)
        LinkerdServiceAnnotations.model_validate(doc["metadata"]["annotations"])


def test_every_service_has_a_destination_rule_that_leaves_the_decision_to_our_breakers(config_path: Path) -> None:
    config = load_config(config_path)
    rules = {d["metadata"]["name"]: DestinationRule.model_validate(d) for d in _istio(config_path)
             if d["kind"] == "DestinationRule"}  # fmt: skip
    assert set(rules) == set(config.services)
    for name, rule in rules.items():
        policy = rule.spec.trafficPolicy
        assert policy is not None
        assert policy.outlierDetection is not None
        outlier = policy.outlierDetection
        breakers = _breakers(config, name)
        trips = [mesh._trip_failures(config.options_for(b).to_config()) for b in breakers]
        assert outlier.consecutive5xxErrors is not None
        assert outlier.consecutive5xxErrors > max(trips), name
        assert outlier.baseEjectionTime is not None
        assert seconds(outlier.baseEjectionTime) >= max(_first_wait(config, b) for b in breakers), name
        # Never the whole dependency: an outage of every host is our breakers' to handle.
        assert outlier.maxEjectionPercent is not None
        assert outlier.maxEjectionPercent < 100
        assert outlier.minHealthPercent is not None
        assert outlier.minHealthPercent > 0


def test_http_routes_let_our_breakers_see_the_slow_call_and_never_retry_non_idempotent_calls(
    config_path: Path,
) -> None:
    config = load_config(config_path)
    services = {d["metadata"]["name"]: VirtualService.model_validate(d) for d in _istio(config_path)
                if d["kind"] == "VirtualService"}  # fmt: skip
    http = {n for n, s in config.services.items() if s.hosts or any(e.routes for e in s.endpoints.values())}
    assert set(services) == http
    for name, service in services.items():
        routes = {r.name: r for r in service.spec.http or []}
        for endpoint_name, endpoint in config.services[name].endpoints.items():
            breaker = f"{name}.{endpoint_name}"
            if not endpoint.routes:
                continue
            route = routes[breaker]
            assert route.timeout is not None
            assert seconds(route.timeout) > _observe(config, breaker), breaker
            methods = {m for r in endpoint.routes for m in r.methods or ["*"]}
            assert route.retries is not None
            if not methods <= {"GET", "HEAD", "OPTIONS"}:
                assert route.retries.attempts == 0, breaker
            else:
                assert route.retries.attempts <= 1, breaker
        fallback = routes[name]
        assert fallback.match is None, "the service's own route catches the rest, last"
        assert fallback.timeout is not None
        assert seconds(fallback.timeout) > _observe(config, name)


def test_linkerd_agrees_with_the_breakers(config_path: Path) -> None:
    config = load_config(config_path)
    routes, patches = _linkerd(config_path)
    annotated = {p["metadata"]["name"]: LinkerdServiceAnnotations.model_validate(p["metadata"]["annotations"])
                 for p in patches}  # fmt: skip
    istio_rules = {d["metadata"]["name"] for d in _istio(config_path) if d["kind"] == "VirtualService"}
    assert set(annotated) == istio_rules, "failure accrual is HTTP-only: the HTTP services, all of them"
    for name, accrual in annotated.items():
        breakers = _breakers(config, name)
        trips = max(mesh._trip_failures(config.options_for(b).to_config()) for b in breakers)
        assert accrual.max_failures is not None
        assert int(accrual.max_failures) > trips
        assert accrual.min_penalty is not None
        assert seconds(accrual.min_penalty) >= max(_first_wait(config, b) for b in breakers)
    for route in routes:
        annotations = LinkerdRouteAnnotations.model_validate(route["metadata"]["annotations"])
        methods = {m.get("method", "*") for rule in route["spec"]["rules"] for m in rule["matches"]}
        if not methods <= {"GET", "HEAD", "OPTIONS"}:
            assert annotations.retry_http is None, route["metadata"]["name"]
            assert annotations.retry_limit is None
        assert annotations.request is not None
        parent = route["spec"]["parentRefs"][0]["name"]
        assert seconds(annotations.request) > min(_observe(config, b) for b in _breakers(config, parent))


def test_mesh_hosts_and_ports_are_the_base_services(base: list[dict[str, Any]]) -> None:
    services = of_kind(base, "Service")
    for doc in _istio(mesh.DEFAULT_CONFIG):
        name = doc["metadata"]["name"]
        assert name in services
        if doc["kind"] == "VirtualService":
            ports = {p["port"] for p in services[name]["spec"]["ports"]}
            for route in doc["spec"]["http"]:
                assert route["route"][0]["destination"]["port"]["number"] in ports
            assert doc["spec"]["hosts"] == [f"{name}.breakerpanel.svc.cluster.local"]
    routes, patches = _linkerd(mesh.DEFAULT_CONFIG)
    for route in routes:
        ref = route["spec"]["parentRefs"][0]
        assert ref["port"] in {p["port"] for p in services[ref["name"]]["spec"]["ports"]}
    assert {p["metadata"]["name"] for p in patches} <= set(services)


@pytest.mark.parametrize("which", mesh.MESHES)
def test_committed_overlays_are_up_to_date(which: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["mesh", which, "--out", str(K8S / "overlays" / which), "--check"])
    assert code == 0, capsys.readouterr().err


def test_cli_prints_writes_and_explains(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mesh", "istio"]) == 0
    printed = capsys.readouterr().out
    assert "kind: DestinationRule" in printed
    assert "&id" not in printed
    assert main(["mesh", "linkerd", "--out", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"http-routes.yaml", "service-annotations.yaml"}
    assert main(["mesh", "linkerd", "--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "http-routes.yaml").write_text("stale")
    assert main(["mesh", "linkerd", "--out", str(tmp_path), "--check"]) == 1
    capsys.readouterr()
    assert main(["mesh", "istio", "--explain"]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:2] == ["service", "proto"]
    assert "openai.chat" in table
    assert "redis" in table


def test_cli_rejects_unknown_services_and_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mesh", "istio", "--port", "nosuch=80"]) == 2
    assert "nosuch" in capsys.readouterr().err
    bad = tmp_path / "breakers.yaml"
    bad.write_text("defaults: {failure_rate_threshold: 3}\n")
    assert main(["mesh", "istio", "--config", str(bad)]) == 2
    assert "failure_rate_threshold" in capsys.readouterr().err


def test_hosts_and_namespace_options(tmp_path: Path) -> None:
    config = load_config(mesh.DEFAULT_CONFIG)
    policies = mesh.plan(config, namespace="prod", hosts={"openai": "api.openai.com"}, ports={"openai": 443})
    by_name = {p.name: p for p in policies}
    assert by_name["openai"].host == "api.openai.com"
    assert by_name["openai"].port == 443
    assert by_name["qdrant"].host == "qdrant.prod.svc.cluster.local"
    assert by_name["redis"].protocol == "tcp"


def test_every_http_route_has_a_name_of_its_own(tmp_path: Path) -> None:
    # kubectl apply keeps one object per name: an endpoint with two routes made two HTTPRoutes
    # named openai-chat, and an endpoint named "default" took the name of the service's catch-all.
    path = tmp_path / "breakers.yaml"
    path.write_text(
        """\
services:
  openai:
    endpoints:
      chat:
        routes: [{path: /v1/chat/completions}, {path: /v1/responses}]
      default:
        routes: [{path: /v1/models}]
"""
    )
    routes = [d for d in yaml.safe_load_all(mesh.rendered_files("linkerd", path)["http-routes.yaml"]) if d]
    names = [route["metadata"]["name"] for route in routes]
    assert len(names) == len(set(names)) == 4
