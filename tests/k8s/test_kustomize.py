"""deploy/k8s builds, holds together, and runs what docker-compose.yml runs.

Every test runs on the Python build (tests/k8s/kustomize.py) and, where kubectl or kustomize is
installed, on the real tool's output too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from demo.stack.compose import ComposeService, load_compose
from demo.stack.paths import COMPOSE_FILE
from tests.servers import require_binary

from . import kustomize
from .conftest import K8S, REPO, build
from .resources import by_plain_name, container, data, of_kind, plain, pod_specs, selects

NAMESPACE = "breakerpanel"
#: compose service -> the Deployments that run it (compose's one `upstreams` is two here).
WORKLOADS = {"upstreams": ["openai", "anthropic"]}
#: Values that differ from compose on purpose, by workload and variable.
EXPECTED_ENV = {
    ("demo", "DEMO_OPENAI_BASE_URL"): "http://openai:8600/v1",
    ("demo", "DEMO_ANTHROPIC_BASE_URL"): "http://anthropic:8600",
    # Compose points the demo at the fakes' Qdrant API (chaos reaches it); the cluster runs the
    # real server, which compose keeps as its opt-in real-qdrant profile (docs/kubernetes.md).
    ("demo", "DEMO_QDRANT_URL"): "http://qdrant:6333",
}
COMPOSE_DEFAULTS = {"POSTGRES_PASSWORD": "breakerpanel", "GRAFANA_ADMIN_PASSWORD": "admin"}


def compose_services() -> dict[str, ComposeService]:
    return dict(load_compose(COMPOSE_FILE, environ={}, profiles=("real-qdrant",)).services)


def workloads_of(service: str) -> list[str]:
    return WORKLOADS.get(service, [service])


def test_every_resource_is_named_and_namespaced(base: list[dict[str, Any]]) -> None:
    seen = set()
    for doc in base:
        assert doc.get("apiVersion"), doc
        assert doc.get("kind"), doc
        key = (doc["kind"], doc["metadata"]["name"])
        assert key not in seen, f"{key} twice"
        seen.add(key)
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, key
    assert ("Namespace", NAMESPACE) in seen


def test_selectors_match_their_pods(base: list[dict[str, Any]]) -> None:
    for doc in of_kind(base, "Deployment").values():
        selector = doc["spec"]["selector"]["matchLabels"]
        assert selects(selector, doc["spec"]["template"]["metadata"]["labels"]), doc["metadata"]["name"]
    pods = [(name, meta["labels"]) for name, meta, _ in pod_specs(base)]
    for name, service in of_kind(base, "Service").items():
        matched = [pod for pod, labels in pods if selects(service["spec"]["selector"], labels)]
        assert matched == [name], f"Service {name} selects {matched}"


def test_service_ports_exist_on_their_pods(base: list[dict[str, Any]]) -> None:
    for name, service in of_kind(base, "Service").items():
        ports = container(base, name)["ports"]
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            if isinstance(target, str):
                assert target in {p["name"] for p in ports}, f"Service {name}: no container port named {target}"
            else:
                assert target in {p["containerPort"] for p in ports}, f"Service {name}: no container port {target}"


def test_every_referenced_config_secret_and_claim_exists(base: list[dict[str, Any]]) -> None:
    names = {(d["kind"], d["metadata"]["name"]) for d in base}
    for workload, _, spec in pod_specs(base):
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in names, (workload, volume)
            if "secret" in volume:
                assert ("Secret", volume["secret"]["secretName"]) in names, (workload, volume)
            if "persistentVolumeClaim" in volume:
                assert ("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) in names
        for c in spec["containers"]:
            mounted = {v["name"] for v in spec.get("volumes", [])}
            assert {m["name"] for m in c.get("volumeMounts", [])} <= mounted, workload
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    secret = of_kind(base, "Secret").get(ref["name"])
                    assert secret is not None, (workload, env)
                    assert ref["key"] in data(secret), (workload, env)
            for source in c.get("envFrom", []):
                ref = source.get("secretRef") or source.get("configMapRef")
                assert ref.get("optional") or ("Secret", ref["name"]) in names, (workload, source)


def test_probes_use_declared_ports(base: list[dict[str, Any]]) -> None:
    for workload, _, spec in pod_specs(base):
        for c in spec["containers"]:
            if not c.get("ports"):
                continue
            for kind in ("readinessProbe", "livenessProbe"):
                probe = c.get(kind)
                assert probe, f"{workload}: no {kind}"
                action = probe.get("httpGet") or probe.get("tcpSocket")
                if action:
                    assert action["port"] in {p["name"] for p in c["ports"]} | {p["containerPort"] for p in c["ports"]}


@pytest.mark.parametrize("service", sorted(compose_services()))
def test_workloads_run_what_compose_runs(base: list[dict[str, Any]], service: str) -> None:
    spec = compose_services()[service]
    for workload in workloads_of(service):
        c = container(base, workload)
        assert c["image"] == (spec.image or "breakerpanel/stack:dev")
        assert tuple(c.get("args", ())) == spec.command, "compose's command is the container's args"
        ports = {p["containerPort"] for p in c.get("ports", [])}
        assert ports == {p.target for p in spec.ports}
        if spec.has_healthcheck:
            assert "readinessProbe" in c
            assert "livenessProbe" in c
        env = _resolved_env(base, workload, c)
        for key, value in spec.environment.items():
            assert key in env, f"{workload}: {key} missing"
            assert env[key] == EXPECTED_ENV.get((workload, key), value), f"{workload}: {key}"


def _resolved_env(base: list[dict[str, Any]], workload: str, c: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in c.get("env", []):
        if "value" in item:
            value = str(item["value"])
            for name, known in env.items():
                value = value.replace(f"$({name})", known)
            env[item["name"]] = value
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = data(of_kind(base, "Secret")[ref["name"]])[ref["key"]]
    return env


@pytest.mark.parametrize("service", sorted(compose_services()))
def test_compose_mounts_are_mounted(base: list[dict[str, Any]], service: str) -> None:
    """Every file or folder compose mounts is at the same path, with the same content."""
    spec = compose_services()[service]
    for workload in workloads_of(service):
        pod = next(s for name, _, s in pod_specs(base) if name == workload)
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        mounts = container(base, workload).get("volumeMounts", [])
        for mount in spec.mounts:
            _check_mounted(base, workload, volumes, mounts, mount.target, mount.source)


def _check_mounted(
    base: list[dict[str, Any]],
    workload: str,
    volumes: dict[str, dict[str, Any]],
    mounts: list[dict[str, Any]],
    target: str,
    source: Path | None,
) -> None:
    exact = [m for m in mounts if m["mountPath"] == target]
    if exact:
        if source is not None and source.is_dir():
            content = _volume_data(base, volumes[exact[0]["name"]])
            files = {p.name: p.read_text() for p in source.iterdir() if p.is_file()}
            assert set(content) <= set(files), f"{workload}: {target} holds more than {source}"
            for name, text in content.items():
                assert text == files[name], f"{workload}: {target}/{name}"
        return
    if source is not None and source.is_dir():
        # Mounted piece by piece (Grafana's provisioning folders, one ConfigMap each).
        for child in source.iterdir():
            _check_mounted(base, workload, volumes, mounts, f"{target}/{child.name}", child)
        return
    parent = [m for m in mounts if target.startswith(m["mountPath"].rstrip("/") + "/")]
    assert parent, f"{workload}: nothing mounted at {target}"
    volume = volumes[parent[-1]["name"]]
    key = target[len(parent[-1]["mountPath"].rstrip("/")) + 1 :]
    content = _volume_data(base, volume)
    assert key in content, f"{workload}: {target} is not in volume {volume['name']}"
    if source is not None and source.is_file():
        assert content[key] == source.read_text(), target


def _name(doc: dict[str, Any]) -> str:
    name = str(doc["metadata"]["name"])
    return plain(name) if doc["kind"] in ("ConfigMap", "Secret") else name


def _volume_data(base: list[dict[str, Any]], volume: dict[str, Any]) -> dict[str, str]:
    if "configMap" in volume:
        return data(of_kind(base, "ConfigMap")[volume["configMap"]["name"]])
    if "secret" in volume:
        return data(of_kind(base, "Secret")[volume["secret"]["secretName"]])
    return {}


def test_generated_config_maps_list_every_generated_file() -> None:
    for folder, pattern in (
        (REPO / "dashboards" / "generated", "*.json"),
        (REPO / "alert_rules" / "generated", "*.yaml"),
    ):
        spec = yaml.safe_load(kustomize.kustomization_file(folder).read_text())
        listed = {f for g in spec["configMapGenerator"] for f in g["files"]}
        assert listed == {p.name for p in folder.glob(pattern)}, f"{folder}/Kustomization is out of date"


def test_grafana_provisioning_is_complete(base: list[dict[str, Any]]) -> None:
    for sub, name in (("datasources", "grafana-datasources"), ("dashboards", "grafana-dashboard-providers")):
        files = {p.name for p in (REPO / "deploy" / "grafana" / "provisioning" / sub).iterdir()}
        assert set(data(by_plain_name(base, "ConfigMap", name))) == files


def test_secrets_come_from_deploy_secrets(base: list[dict[str, Any]]) -> None:
    for secret, (key, path) in {
        "webhook-token": ("webhook_token", "webhook-token"),
        "demo-admin-token": ("demo_admin_token", "demo-admin-token"),
        "bot-read-token": ("bot_read_token", "bot-read-token"),
    }.items():
        assert data(by_plain_name(base, "Secret", secret))[key] == (REPO / "deploy" / "secrets" / path).read_text()
    assert data(by_plain_name(base, "Secret", "demo-credentials")) == COMPOSE_DEFAULTS


def test_config_maps_named_as_the_generators_say(base: list[dict[str, Any]]) -> None:
    generated = {plain(d["metadata"]["name"]) for d in base if d["kind"] in ("ConfigMap", "Secret")}
    assert generated == {
        "prometheus-config", "prometheus-rules", "alertmanager-config", "grafana-datasources",
        "grafana-dashboard-providers", "grafana-dashboards", "incident-bot-routes", "postgres-init",
        "webhook-token", "demo-admin-token", "bot-read-token", "demo-credentials",
    }  # fmt: skip


@pytest.mark.parametrize("overlay", ["istio", "linkerd"])
def test_overlays_build(builder: str, overlay: str) -> None:
    docs = build(K8S / "overlays" / overlay, builder)
    namespace = of_kind(docs, "Namespace")[NAMESPACE]
    if overlay == "istio":
        assert namespace["metadata"]["labels"]["istio-injection"] == "enabled"
        assert of_kind(docs, "DestinationRule")
        assert of_kind(docs, "VirtualService")
    else:
        assert namespace["metadata"]["annotations"]["linkerd.io/inject"] == "enabled"
        annotated = [s for s in of_kind(docs, "Service").values() if s["metadata"].get("annotations")]
        assert {s["metadata"]["name"] for s in annotated} == {"openai", "anthropic", "qdrant"}
    assert all(d["metadata"].get("namespace") == NAMESPACE for d in docs if d["kind"] != "Namespace")


def test_python_builder_enforces_the_load_restrictor(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("a: 1\n")
    root = tmp_path / "k8s"
    root.mkdir()
    (root / "kustomization.yaml").write_text("configMapGenerator:\n  - name: c\n    files: [../config.yaml]\n")
    with pytest.raises(kustomize.KustomizeError, match="not in or below"):
        kustomize.build_python(root)
    (root / "kustomization.yaml").write_text("resources: [..]\n")
    (tmp_path / "kustomization.yaml").write_text("resources: []\n")
    with pytest.raises(kustomize.KustomizeError, match="cycle"):
        kustomize.build_python(root)


def test_python_build_matches_the_real_tool() -> None:
    """The fallback builder produces what kustomize does (names up to the hash suffix)."""
    if kustomize.binary() is None:
        require_binary("kubectl")  # skips locally, fails under CI
    for root in (K8S / "base", K8S / "overlays" / "istio", K8S / "overlays" / "linkerd", K8S / "chaos"):
        real = {(d["kind"], _name(d)): d for d in kustomize.build_binary(root)}
        ours = {(d["kind"], d["metadata"]["name"]): d for d in kustomize.build_python(root)}
        assert set(real) == set(ours), root
        for key, doc in ours.items():
            other = real[key]
            assert doc["metadata"].get("labels") == other["metadata"].get("labels"), key
            assert doc["metadata"].get("annotations") == other["metadata"].get("annotations"), key
            if doc["kind"] in ("ConfigMap", "Secret"):
                assert data(doc) == data(other), key
