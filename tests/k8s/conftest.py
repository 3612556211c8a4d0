from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.servers import require_binary

from . import kustomize

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
BUILDERS = ["python", "binary"]


def build(root: Path, builder: str) -> list[dict[str, Any]]:
    if builder == "binary":
        if kustomize.binary() is None:
            require_binary("kubectl")  # skips locally, fails under CI
        return kustomize.build_binary(root)
    return kustomize.build_python(root)


@pytest.fixture(scope="session", params=BUILDERS)
def builder(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def base(builder: str) -> list[dict[str, Any]]:
    return build(K8S / "base", builder)
