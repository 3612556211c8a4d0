"""The wheel and the sdist, as a user gets them: built from this checkout, installed into clean
venvs (the locked dependencies of every extra, nothing of the repository on ``sys.path``), then
used as the README says.

- the only top-level import name installed is ``breakerpanel`` (a second one could silently
  overwrite an unrelated project's);
- every public module imports; the README's library example runs;
- ``breakerpanel --help`` works, and the generators write a service's own files from its own
  configuration (``tests/packaging/sample/``): rules that ``promtool check rules`` accepts and the
  promtool tests written beside them pass (``promtool test rules``), an Alertmanager configuration
  that ``amtool check-config`` accepts, the dashboards' JSON, mesh policies;
- a demo command says it needs a checkout instead of failing on an import.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import run_amtool, run_promtool

from .support import ROOT, clean_env, export, run, uv

SAMPLE = Path(__file__).with_name("sample")
README = ROOT / "README.md"

# Imports every public module of the installed package: no name with a part that starts with "_".
_IMPORT_ALL = """
import importlib, pkgutil, sys
import breakerpanel
failed = []
names = []
for info in pkgutil.walk_packages(breakerpanel.__path__, "breakerpanel."):
    if any(part.startswith("_") for part in info.name.split(".")):
        continue
    names.append(info.name)
    try:
        importlib.import_module(info.name)
    except Exception as exc:
        failed.append(f"{info.name}: {type(exc).__name__}: {exc}")
print("\\n".join(failed) if failed else f"imported {len(names)} public modules")
print("file", breakerpanel.__file__)
sys.exit(1 if failed else 0)
"""


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    # uv builds the sdist, then the wheel from the sdist: a file the sdist forgets fails here.
    run(uv(), "build", "--quiet", "--out-dir", out, ROOT, cwd=ROOT)
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    assert len(wheels) == 1, wheels
    assert len(sdists) == 1, sdists
    return {"wheel": wheels[0], "sdist": sdists[0]}


def _export(path: Path, *extras: str) -> Path:
    """The lock's versions of the extras' dependencies (every extra without any named)."""
    selection = [arg for extra in extras for arg in ("--extra", extra)] or ["--all-extras"]
    return export(path, "--no-dev", *selection)


@pytest.fixture(scope="module")
def locked_requirements(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory.mktemp("lock") / "requirements.txt")


def _install(kind: str, dist: Path, requirements: Path, where: Path) -> Path:
    venv = where / f"venv-{kind}"
    run(uv(), "venv", "--quiet", "--python", sys.executable, venv, cwd=where)
    run(uv(), "pip", "install", "--quiet", "--python", venv / "bin" / "python", "-r", requirements, dist, cwd=where)
    return venv


class _Installs:
    """One clean venv per distribution, made on first use and shared by the module's tests."""

    def __init__(self, dists: dict[str, Path], requirements: Path, factory: pytest.TempPathFactory) -> None:
        self._dists, self._requirements, self._factory = dists, requirements, factory
        self._made: dict[str, tuple[Path, Path]] = {}

    def __call__(self, kind: str) -> tuple[Path, Path]:
        if kind not in self._made:
            where = self._factory.mktemp(f"user-{kind}")
            self._made[kind] = (_install(kind, self._dists[kind], self._requirements, where), where)
        return self._made[kind]


@pytest.fixture(scope="module")
def installs(dists: dict[str, Path], locked_requirements: Path, tmp_path_factory: pytest.TempPathFactory) -> _Installs:
    return _Installs(dists, locked_requirements, tmp_path_factory)


@pytest.fixture(params=["wheel", "sdist"])
def installed(request: pytest.FixtureRequest, installs: _Installs) -> tuple[str, Path, Path]:
    kind: str = request.param
    return (kind, *installs(kind))


def _top_level_names(venv: Path) -> set[str]:
    (record,) = venv.glob("lib/python*/site-packages/breakerpanel-*.dist-info/RECORD")
    names = set()
    for line in record.read_text().splitlines():
        path = line.split(",", 1)[0]
        first = path.split("/", 1)[0]
        if first.endswith(".dist-info") or first == "..":  # metadata, the console script in bin/
            continue
        names.add(first.removesuffix(".py").removesuffix(".pth"))
    return names


def test_the_only_top_level_import_name_is_breakerpanel(installed: tuple[str, Path, Path]) -> None:
    _, venv, _ = installed
    assert _top_level_names(venv) == {"breakerpanel"}


def test_every_public_module_imports_from_the_install(installed: tuple[str, Path, Path]) -> None:
    _, venv, where = installed
    out = run(venv / "bin" / "python", "-I", "-c", _IMPORT_ALL, cwd=where, env=clean_env(venv))
    assert "imported" in out
    assert f"file {venv}" in out, "breakerpanel came from somewhere else than the clean venv"


def test_breakerpanel_help_lists_the_commands(installed: tuple[str, Path, Path]) -> None:
    _, venv, where = installed
    out = run(venv / "bin" / "breakerpanel", "--help", cwd=where, env=clean_env(venv))
    for command in ("rules", "alertmanager", "dashboards", "bot", "up"):
        assert re.search(rf"^\s+{command}\s", out, re.M), out


def test_a_demo_command_says_it_needs_a_checkout(installed: tuple[str, Path, Path]) -> None:
    _, venv, where = installed
    result = subprocess.run(
        [venv / "bin" / "breakerpanel", "status"], cwd=where, env=clean_env(venv), capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "checkout of the repository" in result.stderr
    assert "Traceback" not in result.stderr


def _readme_example() -> str:
    text = README.read_text()
    section = text.split("## The library in five minutes", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README: no python block under 'The library in five minutes'"
    return match.group(1)


def test_the_readme_library_example_runs_from_the_install(installed: tuple[str, Path, Path]) -> None:
    _, venv, where = installed
    script = where / "readme_example.py"
    script.write_text(_readme_example())
    out = run(venv / "bin" / "python", "-I", script, cwd=where, env=clean_env(venv))
    assert "openai.chat" in out
    assert "open" in out


def test_the_generators_write_a_service_s_own_files(installs: _Installs) -> None:
    venv, where = installs("wheel")  # the sdist installs the same files (the tests above check both)
    config = where / "config"
    shutil.copytree(SAMPLE, config)
    out = where / "out"
    bp, env = venv / "bin" / "breakerpanel", clean_env(venv)
    rules, alertmanager = out / "rules.yaml", out / "alertmanager.yml"
    run(
        bp,
        "rules",
        "--config",
        config / "rules.yaml",
        "--output",
        rules,
        "--alertmanager",
        alertmanager,
        cwd=where,
        env=env,
    )
    run(bp, "alertmanager", "--config", config / "rules.yaml", "--output", out / "am-alone.yml", cwd=where, env=env)
    mesh = run(bp, "mesh", "istio", "--config", config / "breakers.yaml", cwd=where, env=env)
    assert "kind: DestinationRule" in mesh
    assert "anthropic" in mesh
    run(
        bp, "dashboards", "--output", out / "dashboards", "--config", config / "rules.yaml",
        "--datasource-uid", "team-prom", "--job", "assistant|worker", cwd=where, env=env,
    )  # fmt: skip

    checked = run_promtool("check", "rules", rules)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "FAILED" not in checked.stdout + checked.stderr
    tested = run_promtool("test", "rules", out / "tests" / "rules.test.yaml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert 'circuit_breaker_name="anthropic.messages"' in (out / "tests" / "rules.test.yaml").read_text()
    assert "https://runbooks.example.com/breakers/" in rules.read_text()
    assert "https://grafana.example.com/d/" in rules.read_text()
    amtool = run_amtool("check-config", alertmanager)
    assert amtool.returncode == 0, amtool.stdout + amtool.stderr
    assert (out / "am-alone.yml").read_text() == alertmanager.read_text()
    assert 'circuit_breaker_name="anthropic"' in alertmanager.read_text()
    boards = sorted((out / "dashboards").glob("*.json"))
    assert [board.name for board in boards] == ["ai-providers.json", "detail.json", "overview.json", "slo.json"]
    for board in boards:
        data = json.loads(board.read_text())
        assert data["uid"].startswith("breakerpanel-")
        variables = {v["name"]: v for v in data["templating"]["list"]}
        assert variables["datasource"]["current"]["value"] == "team-prom"
        assert variables["job"]["regex"] == "/^(?:assistant|worker)$/"


def test_the_config_extra_alone_writes_rules_and_names_the_extras_it_lacks(
    dists: dict[str, Path], tmp_path: Path
) -> None:
    # `pip install 'breakerpanel[config]'`: the rule and Alertmanager generators need nothing more
    # (the registry's names come without OpenTelemetry); what needs another extra says which.
    requirements = _export(tmp_path / "requirements.txt", "config")
    venv = _install("config", dists["wheel"], requirements, tmp_path)
    bp, env = venv / "bin" / "breakerpanel", clean_env(venv)
    shutil.copytree(SAMPLE, tmp_path / "config")
    rules = tmp_path / "rules.yaml"
    run(
        bp, "rules", "--config", tmp_path / "config" / "rules.yaml", "--output", rules,
        "--alertmanager", tmp_path / "alertmanager.yml", cwd=tmp_path, env=env,
    )  # fmt: skip
    checked = run_promtool("check", "rules", rules)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run_promtool("test", "rules", tmp_path / "tests" / "rules.test.yaml")
    assert tested.returncode == 0, tested.stdout + tested.stderr

    dashboards = subprocess.run(
        [bp, "dashboards", "--output", tmp_path / "boards"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert dashboards.returncode == 1
    assert "pip install 'breakerpanel[dashboards]'" in dashboards.stderr
    assert "Traceback" not in dashboards.stderr

    script = "from breakerpanel.exporter import BreakerTelemetry"
    exporter = subprocess.run(
        [venv / "bin" / "python", "-I", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert exporter.returncode == 1
    assert exporter.stderr.strip().splitlines()[-1] == (
        "ModuleNotFoundError: breakerpanel.exporter needs 'opentelemetry.sdk', which is not installed: "
        "pip install 'breakerpanel[exporter]'"
    )
