"""The rule generator and the dashboards import neither each other: what they share (the recording
rules' names, the dashboards' identities, the rules' configuration) is in
``breakerpanel.exporter.loop_names`` and ``breakerpanel.exporter.rules_config``.

Checked twice: every import statement of each package's files, read with ``ast`` (imports inside
functions and under ``TYPE_CHECKING`` included), and each generator run in a fresh interpreter in
which importing the other package fails.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: package -> (its folder, the package it must not import)
PACKAGES = {
    "breakerpanel.alert_rules": (ROOT / "alert_rules" / "breakerpanel" / "alert_rules", "breakerpanel.dashboards"),
    "breakerpanel.dashboards": (ROOT / "dashboards" / "breakerpanel" / "dashboards", "breakerpanel.alert_rules"),
}


def imported_modules(source: str, package: str) -> Iterator[str]:
    """Every module ``source`` (a module of ``package``) imports, relative imports resolved, and
    the constant names given to ``importlib.import_module``. ``from a import b`` yields ``a`` and
    ``a.b`` (``b`` may be a module)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value


def imports_of(source: str, package: str, forbidden: str) -> list[str]:
    return sorted(
        {name for name in imported_modules(source, package) if name == forbidden or name.startswith(forbidden + ".")}
    )


@pytest.mark.parametrize("source", [
    "from breakerpanel.dashboards import links",
    "import breakerpanel.dashboards.common as common",
    "from breakerpanel import dashboards",
    "from .. import dashboards",
    "from ..dashboards.common import var",
    "def f():\n    from breakerpanel.dashboards import generate",
    "if TYPE_CHECKING:\n    from breakerpanel.dashboards import DashboardOptions",
    "importlib.import_module('breakerpanel.dashboards.common')",
])  # fmt: skip
def test_the_check_sees_every_way_of_importing(source: str) -> None:
    assert imports_of(source, "breakerpanel.alert_rules", "breakerpanel.dashboards") != []


@pytest.mark.parametrize("source", [
    "from breakerpanel.exporter import loop_names",
    "from . import recording",
    "from .recording import recording_groups",
    "import breakerpanel.dashboards_extra",
])  # fmt: skip
def test_the_check_passes_other_imports(source: str) -> None:
    assert imports_of(source, "breakerpanel.alert_rules", "breakerpanel.dashboards") == []


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_file_of_one_package_imports_the_other(package: str) -> None:
    folder, forbidden = PACKAGES[package]
    files = sorted(folder.rglob("*.py"))
    assert files, f"no sources in {folder}"
    found = {}
    for path in files:
        # A module's package: the folder's, plus its subfolders (a *.dashboard.py is a module of it too).
        subpackage = ".".join((package, *path.parent.relative_to(folder).parts))
        names = imports_of(path.read_text(), subpackage, forbidden)
        if names:
            found[str(path.relative_to(ROOT))] = names
    assert found == {}, f"{package} imports {forbidden}"


#: Run in a fresh interpreter: importing the blocked package raises, then the generator runs.
_BLOCKED_RUN = """
import sys
from importlib.abc import MetaPathFinder

BLOCKED = {blocked!r}

class Block(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == BLOCKED or name.startswith(BLOCKED + "."):
            raise ImportError(f"{{name}} is blocked: this generator must not import it")
        return None

sys.meta_path.insert(0, Block())
{run}
leaked = sorted(m for m in sys.modules if m == BLOCKED or m.startswith(BLOCKED + "."))
assert not leaked, leaked
print("ran without", BLOCKED)
"""

_RUN_RULES = """
import breakerpanel.alert_rules.__main__
from breakerpanel.alert_rules import load_rules_config, render, render_alertmanager_for
config = load_rules_config()
assert "CircuitBreakerOpen" in render(config)
render_alertmanager_for(config)
"""

_RUN_DASHBOARDS = """
import breakerpanel.dashboards.__main__
from breakerpanel import dashboards
files = dashboards.generate()
assert len(files) == 4, files
"""


@pytest.mark.parametrize(
    ("run", "blocked"),
    [(_RUN_RULES, "breakerpanel.dashboards"), (_RUN_DASHBOARDS, "breakerpanel.alert_rules")],
    ids=["rules without dashboards", "dashboards without rules"],
)
def test_each_generator_runs_with_the_other_package_unimportable(run: str, blocked: str) -> None:
    script = _BLOCKED_RUN.format(blocked=blocked, run=textwrap.dedent(run))
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ran without {blocked}" in result.stdout
