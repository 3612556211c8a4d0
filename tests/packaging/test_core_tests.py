"""The breaker core's tests need only the core's dependencies: in a clean venv holding the wheel
without any extra, the core's locked dependencies (none today) and the test tools the core's tests
use (pytest, pytest-asyncio, hypothesis, at the lock's versions), every file of ``tests/breaker``
runs, except those listed in :data:`NEEDS_AN_EXTRA` with the extra they exercise.

A new file in ``tests/breaker`` is a core test unless listed: if it imports an extra's module
(or a fixture that does, such as the PagerDuty and Slack fakes, which the root conftest therefore
does not register), it fails here. About 400 tests in 18 files run in under 10 s; building the
wheel and the venv (from uv's cache) takes a few seconds more.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .support import ROOT, clean_env, export, run, uv

TESTS = ROOT / "tests" / "breaker"

#: The files of tests/breaker that exercise an extra, not the core alone: file -> why.
NEEDS_AN_EXTRA = {
    "test_cache_keys.py": "numpy and pydantic arguments to the default cache key",
    "test_config_file.py": "breakers.yaml (extra config)",
    "test_duration_readers.py": "breakers.yaml's and the rules' durations (extra config), the demo's",
    "test_fastapi.py": "the FastAPI integration (extra fastapi)",
    "test_guards_http.py": "the guards' FastAPI middleware (extra fastapi)",
    "test_guards_system.py": "the guards against Redis behind FastAPI (extras redis, fastapi)",
    "test_lockout.py": "each case in memory and on Redis (extra redis)",
    "test_ratelimit.py": "each case in memory and on Redis (extra redis)",
    "test_presets.py": "the SDKs whose errors the presets classify (openai, anthropic, asyncpg...)",
    "test_probe.py": "probes against the demo's upstreams (extra fastapi)",
    "test_semantic_cache.py": "the semantic cache on a real Redis 8 (extra redis)",
    "test_store.py": "the Redis store (extra redis) and its breakers.yaml section (extra config)",
    "test_store_replicas.py": "replica processes sharing a Redis store (extra redis)",
}
#: What the core's tests use beyond the core, installed at the lock's versions.
TEST_TOOLS = ("pytest", "pytest-asyncio", "hypothesis")
#: Tells a core test that the extras are absent on purpose (tests/breaker/test_layers.py).
CORE_ONLY = "BREAKERPANEL_TESTS_CORE_ONLY"
#: Modules of extras the core venv must not have: else it would prove nothing.
EXTRAS_MODULES = ("pydantic", "yaml", "httpx", "redis", "fastapi", "starlette", "opentelemetry")


def core_test_files() -> list[str]:
    return sorted(path.name for path in TESTS.glob("test_*.py") if path.name not in NEEDS_AN_EXTRA)


def test_the_list_names_files_that_exist() -> None:
    assert sorted(set(NEEDS_AN_EXTRA) - {p.name for p in TESTS.glob("test_*.py")}) == []


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("core")
    run(uv(), "build", "--wheel", "--quiet", "--out-dir", where / "dist", ROOT, cwd=ROOT)
    (wheel,) = (where / "dist").glob("*.whl")
    core = export(where / "core.txt", "--no-dev")  # no extra: the core's own dependencies
    # Constraints only: the test tools at the lock's versions, nothing else of the lock installed.
    lock = export(where / "lock.txt", "--all-extras", "--all-groups")
    venv = where / "venv"
    run(uv(), "venv", "--quiet", "--python", sys.executable, venv, cwd=where)
    python = venv / "bin" / "python"
    run(uv(), "pip", "install", "--quiet", "--python", python, "-r", core, "-c", lock, *TEST_TOOLS, wheel, cwd=where)
    return venv


def test_the_venv_holds_the_core_alone(core_venv: Path) -> None:
    script = (
        "import importlib.util, sys, breakerpanel\n"
        "print(breakerpanel.__file__)\n"
        "print(*[m for m in sys.argv[1:] if importlib.util.find_spec(m) is not None])"
    )
    env = clean_env(core_venv)
    out = run(core_venv / "bin" / "python", "-c", script, *EXTRAS_MODULES, cwd=ROOT, env=env).splitlines()
    assert out[0].startswith(str(core_venv)), "breakerpanel came from the checkout, not the wheel"
    assert out[1] == "", f"extras' modules installed: {out[1]}"


def test_the_core_tests_pass_with_the_core_s_dependencies_only(core_venv: Path) -> None:
    files = [TESTS / name for name in core_test_files()]
    out = run(
        core_venv / "bin" / "python", "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *files,
        cwd=ROOT, env=clean_env(core_venv) | {CORE_ONLY: "1"}, timeout=600,
    )  # fmt: skip
    assert " passed" in out.splitlines()[-1], out


#: Each integration and the extra its error names when its library is missing.
INTEGRATIONS = {
    "httpx": "httpx",
    "httpx2": "httpx2",
    "redis": "redis",
    "asyncpg": "postgres",
    "sqlalchemy": "postgres",
    "fastapi": "fastapi",
    "guards": "fastapi",
}


def test_an_integration_without_its_extra_says_what_to_install(core_venv: Path) -> None:
    script = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        importlib.import_module(f'breakerpanel.integrations.{name}')\n"
        "    except ModuleNotFoundError as exc:\n"
        "        print(name, exc, sep='\\t')\n"
    )
    out = run(core_venv / "bin" / "python", "-c", script, *INTEGRATIONS, cwd=ROOT, env=clean_env(core_venv))
    said = dict(line.split("\t") for line in out.splitlines())
    assert set(said) == set(INTEGRATIONS)
    for name, extra in INTEGRATIONS.items():
        assert said[name].endswith(f"pip install 'breakerpanel[{extra}]'"), said[name]
