"""Lookups over a list of built Kubernetes resources."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

# kustomize encodes the hash in an alphabet without vowels (so no word looks like a suffix).
_HASH = re.compile(r"-[2456789bcdfghkmt]{10}$")


def plain(name: str) -> str:
    """A generated ConfigMap's or Secret's name without kustomize's hash suffix."""
    return _HASH.sub("", name)


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def by_plain_name(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and plain(d["metadata"]["name"]) == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(workload name, pod template metadata, pod spec) of every Deployment and Job."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            template = doc["spec"]["template"]
            yield doc["metadata"]["name"], template["metadata"], template["spec"]


def container(docs: list[dict[str, Any]], workload: str) -> dict[str, Any]:
    for name, _, spec in pod_specs(docs):
        if name == workload:
            (only,) = spec["containers"]
            return dict(only)
    raise AssertionError(f"no workload {workload}")


def data(doc: dict[str, Any]) -> dict[str, str]:
    """A ConfigMap's or Secret's data, decoded."""
    if doc["kind"] == "Secret":
        return {k: base64.b64decode(v).decode() for k, v in doc.get("data", {}).items()} | dict(
            doc.get("stringData", {})
        )
    return dict(doc.get("data", {}))


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())
