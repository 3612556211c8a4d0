"""deploy/Dockerfile: what its images copy, install and run (read from the file: no Docker engine here).

Two images: the stack's (the last stage, what compose builds without a target) and the incident
bot's (``--target incident-bot``), which must hold the wheel with the bot's extra and nothing more,
and run ``breakerpanel bot`` as an unprivileged user, healthy when the bot says it is ready.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from breakerpanel.cli import COMMANDS
from demo.stack.paths import REPO_ROOT

from .dockerfile import Stage, read_stages

BOT = "incident-bot"
#: Files of the build context besides the package's folders that a build needs (metadata, lock, uv's pin).
BUILD_FILES = {"pyproject.toml", "uv.lock", "README.md", "deploy/uv-requirements.txt"}


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    return read_stages()


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def _built_from(stages: dict[str, Stage], target: str) -> list[Stage]:
    """The stages an image is made of: its own, the stages it starts from or copies from, theirs."""
    found: list[Stage] = []
    todo = [target]
    while todo:
        stage = stages[todo.pop()]
        if stage in found:
            continue
        found.append(stage)
        todo += [name for name in (stage.base, *(c.from_stage for c in stage.copies())) if name in stages]
    return found


def _wheel_folders(pyproject: dict[str, Any]) -> set[str]:
    """The repository folders the wheel is built from (breaker/, exporter/, ...)."""
    return {package.split("/")[0] for package in pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]}


def _extras(command: list[str]) -> list[str]:
    return [command[i + 1] for i, word in enumerate(command) if word == "--extra"]


def test_every_copy_comes_from_the_context_or_an_earlier_stage(stages: dict[str, Stage]) -> None:
    names = list(stages)
    copied = 0
    for position, stage in enumerate(stages.values()):
        for copy in stage.copies():
            copied += 1
            if copy.from_stage is not None:
                assert copy.from_stage in names[:position], f"{stage.name}: COPY --from={copy.from_stage}"
            else:
                missing = [source for source in copy.sources if not (REPO_ROOT / source).exists()]
                assert not missing, f"{stage.name}: {missing}"
    assert copied >= 10


def test_the_default_image_is_the_stack(stages: dict[str, Stage]) -> None:
    """`docker build` and compose's services without a target build the last stage."""
    stack = list(stages.values())[-1]
    assert stack.name == "stack"
    assert stack.last("CMD").exec_form()[:3] == ["python", "-m", "demo.service"]
    assert any(copy.sources == ("demo/",) for copy in stack.copies())


def test_the_bot_image_holds_the_wheel_with_the_bot_extra_only(
    stages: dict[str, Stage], pyproject: dict[str, Any]
) -> None:
    image = _built_from(stages, BOT)
    syncs = [command for stage in image for command in stage.commands("uv sync")]
    assert syncs, "the bot's image installs nothing with uv sync"
    for command in syncs:
        assert {"--locked", "--no-dev"} <= set(command), command  # from the lock, no test or dev group
        assert _extras(command) == [BOT], command
        assert "--all-extras" not in command, command
    assert "--no-editable" in syncs[-1], "the project must go in as its wheel, not as a link to the sources"
    assert BOT in pyproject["project"]["optional-dependencies"]
    sources = {source.rstrip("/") for stage in image for copy in stage.copies() for source in copy.sources}
    sources -= {"/opt/venv"}  # copied from the stage that built it
    assert sources == _wheel_folders(pyproject) | BUILD_FILES, "the bot's image copies what the wheel is not made of"


def test_the_bot_image_is_a_fresh_base_with_the_venv_alone(stages: dict[str, Stage]) -> None:
    """No sources, no uv, no build cache in the image that runs: only the venv they made."""
    bot = stages[BOT]
    assert bot.base not in stages, "the bot's image starts from a builder stage"
    assert [(copy.sources, copy.destination) for copy in bot.copies()] == [(("/opt/venv",), "/opt/venv")]
    assert all(copy.from_stage in stages for copy in bot.copies())


def test_the_bot_image_runs_the_wheels_breakerpanel_bot(stages: dict[str, Stage], pyproject: dict[str, Any]) -> None:
    bot = stages[BOT]
    script, *command = bot.last("ENTRYPOINT").exec_form()
    assert (script, command) == ("breakerpanel", ["bot"])
    # The console script is the wheel's, and its `bot` command needs exactly the extra installed.
    assert pyproject["project"]["scripts"][script] == "breakerpanel.cli:main"
    assert COMMANDS["bot"].extra == BOT
    assert not COMMANDS["bot"].checkout_only


def test_the_bot_image_listens_where_its_healthcheck_asks(stages: dict[str, Stage], tmp_path: Path) -> None:
    from breakerpanel.incident_bot.app import create_app
    from breakerpanel.incident_bot.settings import Settings

    bot = stages[BOT]
    arguments = bot.last("CMD").exec_form()
    assert arguments[arguments.index("--host") + 1] == "0.0.0.0"  # reachable from outside the container
    port = arguments[arguments.index("--port") + 1]
    assert bot.last("EXPOSE").arguments == port
    healthcheck = bot.last("HEALTHCHECK").exec_form()
    prefix = f"http://127.0.0.1:{port}/"
    (url,) = [part for word in healthcheck for part in word.split("'") if part.startswith(prefix)]
    path = "/" + url.removeprefix(prefix)
    settings = Settings(webhook_token=SecretStr("t"), database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}")
    routes = {getattr(route, "path", None) for route in create_app(settings).routes}
    assert path in routes & {"/healthz", "/readyz"}


def test_every_image_runs_as_an_unprivileged_user(stages: dict[str, Stage]) -> None:
    for name in (BOT, list(stages)[-1]):
        uid = stages[name].last("USER").arguments.split(":")[0]
        # A number: Kubernetes' runAsNonRoot cannot check a name.
        assert uid.isdigit(), name
        assert int(uid) != 0, name
