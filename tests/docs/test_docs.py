"""The docs: generated blocks are current and every Python example runs."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
YAML_FENCE = re.compile(r"^```yaml\n(.*?)^```", re.DOTALL | re.MULTILINE)


def test_generated_blocks_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(DOCS / "generate.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"run `python docs/generate.py`:\n{result.stdout}{result.stderr}"


def examples() -> list[tuple[str, int, str]]:
    found = []
    for path in sorted([*DOCS.glob("*.md"), ROOT / "README.md"]):
        for index, match in enumerate(FENCE.finditer(path.read_text())):
            found.append((path.name, index, match.group(1)))
    return found


@pytest.mark.parametrize(("doc", "index", "code"), examples(), ids=[f"{d}#{i}" for d, i, _ in examples()])
def test_python_examples_run(doc: str, index: int, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An example may read the page's YAML example as breakers.yaml from the working directory.
    yaml_blocks = YAML_FENCE.findall((ROOT / doc if doc == "README.md" else DOCS / doc).read_text())
    if yaml_blocks:
        (tmp_path / "breakers.yaml").write_text(yaml_blocks[0])
    monkeypatch.chdir(tmp_path)
    script = tmp_path / f"example_{index}.py"
    script.write_text(code)
    runpy.run_path(str(script), run_name="__main__")


def yaml_examples() -> list[tuple[str, int, str]]:
    return [
        (path.name, index, match.group(1))
        for path in sorted(DOCS.glob("*.md"))
        for index, match in enumerate(YAML_FENCE.finditer(path.read_text()))
    ]


@pytest.mark.parametrize(("doc", "index", "text"), yaml_examples(), ids=[f"{d}#{i}" for d, i, _ in yaml_examples()])
def test_yaml_examples_load_and_build(doc: str, index: int, text: str, tmp_path: Path) -> None:
    if doc == "alerting.md":  # alert_rules/config.yaml examples: they generate rules promtool accepts
        from breakerpanel.alert_rules import load_rules_config, render
        from tests.servers import run_promtool

        (tmp_path / "config.yaml").write_text(text)
        (tmp_path / "rules.yaml").write_text(render(load_rules_config(tmp_path / "config.yaml")))
        result = run_promtool("check", "rules", tmp_path / "rules.yaml")
        assert result.returncode == 0, result.stdout + result.stderr
        return
    if doc == "incident-bot.md":  # Alertmanager's config (amtool checks it) or the bot's routes
        import yaml

        from breakerpanel.incident_bot.routing import load_routing
        from tests.servers import run_amtool

        if "receivers" in yaml.safe_load(text):
            (tmp_path / "alertmanager.yml").write_text(text)
            (tmp_path / "token").write_text("t")
            result = run_amtool("check-config", tmp_path / "alertmanager.yml")
            assert result.returncode == 0, result.stdout + result.stderr
        else:
            (tmp_path / "routes.yaml").write_text(text)
            assert load_routing(tmp_path / "routes.yaml").routes
        return
    if doc == "alert-quality.md":  # a scenario file of bench/alert_quality.py
        from tests.bench.support import load_bench

        scenario = load_bench("alert_quality").load_scenario
        (tmp_path / "scenario.yaml").write_text(text)
        assert scenario(tmp_path / "scenario.yaml").steps
        return
    from breakerpanel.config import load_config

    path = tmp_path / "breakers.yaml"
    path.write_text(text)
    built = load_config(path).build()
    assert len(built.registry) > 0
