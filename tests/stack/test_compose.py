"""docker-compose.yml checked by the real Compose v2 binary, and every file it mounts present."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from demo.stack.compose import load_compose
from demo.stack.paths import COMPOSE_FILE, REPO_ROOT

from .dockerfile import read_stages

#: Variables Compose would read from a user's .env; the tests must not depend on one.
_CLEAN_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent"}


def _compose(binary: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), "--project-directory", str(REPO_ROOT), "-f", str(COMPOSE_FILE), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env or _CLEAN_ENV,
    )


@pytest.fixture(scope="module")
def normalized(compose_binary: Path) -> dict[str, Any]:
    """The model Compose builds from the file: paths absolute, variables resolved, short forms expanded."""
    result = _compose(compose_binary, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    model: dict[str, Any] = json.loads(result.stdout)
    return model


def test_config_is_valid(compose_binary: Path) -> None:
    result = _compose(compose_binary, "config", "-q")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", "Compose warns (an unset variable?): " + result.stderr


def test_binary_rejects_a_broken_file(compose_binary: Path, tmp_path: Path) -> None:
    """The check can fail: a service depending on one that does not exist is refused."""
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  a:\n    image: busybox\n    depends_on: [missing]\n")
    result = subprocess.run(
        [str(compose_binary), "-f", str(broken), "config", "-q"], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "missing" in result.stderr


def _referenced_files(model: dict[str, Any]) -> list[tuple[str, Path]]:
    files: list[tuple[str, Path]] = []
    for name, service in model["services"].items():
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                files.append((f"{name} volume {volume['target']}", Path(volume["source"])))
        build = service.get("build")
        if build:
            context = Path(build["context"])
            files.append((f"{name} build context", context))
            files.append((f"{name} Dockerfile", context / build.get("dockerfile", "Dockerfile")))
        for env_file in service.get("env_file", []):
            if env_file.get("required", True):
                files.append((f"{name} env_file", Path(env_file["path"])))
    for name, secret in model.get("secrets", {}).items():
        files.append((f"secret {name}", Path(secret["file"])))
    return files


def test_every_mounted_file_exists(normalized: dict[str, Any]) -> None:
    files = _referenced_files(normalized)
    assert len(files) >= 10  # binds, secrets and the Dockerfile: a parsing slip would find none
    missing = [f"{what}: {path}" for what, path in files if not path.exists()]
    assert not missing, "docker-compose.yml refers to files that are not in the repository:\n" + "\n".join(missing)
    outside = [f"{what}: {path}" for what, path in files if not path.resolve().is_relative_to(REPO_ROOT)]
    assert not outside, "mounts from outside the repository:\n" + "\n".join(outside)


def test_the_bot_runs_from_its_own_image_and_the_others_from_the_stack(normalized: dict[str, Any]) -> None:
    """The bot's service builds deploy/Dockerfile's incident-bot stage and passes its entrypoint
    (`breakerpanel bot`) arguments only; the other Python services build the default stage."""
    stages = read_stages()
    built = {name: s for name, s in normalized["services"].items() if "build" in s}
    assert {name: s["build"]["dockerfile"] for name, s in built.items()} == dict.fromkeys(built, "deploy/Dockerfile")
    bot = built.pop("incident-bot")
    assert bot["build"]["target"] == "incident-bot"
    assert "incident-bot" in stages
    assert bot["image"] == "breakerpanel/incident-bot:dev"
    assert bot["command"][0].startswith("--"), "compose's command follows the image's entrypoint"
    assert stages["incident-bot"].last("ENTRYPOINT").exec_form()[0] not in bot["command"]
    assert built, "no other service is built"
    for name, service in built.items():
        assert "target" not in service["build"], name
        assert service["image"] == "breakerpanel/stack:dev", name


def test_ports_are_published_on_loopback_at_their_own_number(normalized: dict[str, Any]) -> None:
    """The local stack relies on it: a service answers on the same port inside and out."""
    for name, service in normalized["services"].items():
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", name
            assert int(port["published"]) == port["target"], name


def test_every_long_running_service_has_a_healthcheck_and_waits_on_healthy(normalized: dict[str, Any]) -> None:
    services = normalized["services"]
    for name, service in services.items():
        if service.get("ports"):
            assert "healthcheck" in service, f"{name} has no healthcheck"
        for dependency, condition in service.get("depends_on", {}).items():
            assert "healthcheck" in services[dependency], f"{name} waits on {dependency}, which has no healthcheck"
            assert condition["condition"] == "service_healthy", (name, dependency)


def test_our_reader_agrees_with_compose(normalized: dict[str, Any]) -> None:
    """The local stack reads docker-compose.yml itself; it must see what Compose sees."""
    ours = load_compose(COMPOSE_FILE, environ={})
    assert set(ours.services) == set(normalized["services"])
    for name, theirs in normalized["services"].items():
        mine = ours.services[name]
        assert list(mine.command) == (theirs.get("command") or []), name
        assert dict(mine.environment) == (theirs.get("environment") or {}), name
        assert [(p.published, p.target) for p in mine.ports] == [
            (int(p["published"]), p["target"]) for p in theirs.get("ports", [])
        ], name
        their_mounts = {v["target"]: v.get("source") for v in theirs.get("volumes", [])}
        their_mounts |= {s["target"]: normalized["secrets"][s["source"]]["file"] for s in theirs.get("secrets", [])}
        my_mounts = {m.target: str(m.source) if m.source else m.volume for m in mine.mounts}
        assert my_mounts == their_mounts, name
        assert set(mine.depends_on) == set(theirs.get("depends_on", {})), name


def test_grafana_datasource_uid_is_the_dashboards_default() -> None:
    from breakerpanel.dashboards import DATASOURCE_UID

    datasources = (REPO_ROOT / "deploy/grafana/provisioning/datasources/prometheus.yaml").read_text()
    assert f"uid: {DATASOURCE_UID}\n" in datasources
    generated = list((REPO_ROOT / "dashboards/generated").glob("*.json"))
    assert generated
    for path in generated:
        assert DATASOURCE_UID in path.read_text(), path
