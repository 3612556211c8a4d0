"""Serving a fake's ASGI app from a background thread, over HTTP or HTTPS, on a loopback port.

:class:`BackgroundServer` runs uvicorn in its own thread with its own event loop, so the fakes serve sync
clients (``pagerduty``, ``slack_sdk.WebClient``) and async ones (``AsyncWebClient``) alike and outlive any one
test's event loop. The listening socket is bound before the thread starts (port 0 lets the kernel pick a free
port, with no race) and ``start()`` returns once uvicorn accepts connections.

``stop()`` followed by ``start()`` comes back on the same port: that is how the fakes refuse connections while
"down" (a closed port answers with a TCP reset, which clients see as "connection refused").

:func:`make_tls_files` writes a throwaway CA and a server certificate signed by it for ``localhost``,
``127.0.0.1`` and ``::1`` (subjectAltName entries; clients match names against the SAN, not the CN). Clients
trust the CA file alone: ``ssl.create_default_context(cafile=ca_file)``. A separate CA rather than one
self-signed leaf keeps Python 3.13's ``VERIFY_X509_STRICT`` default happy.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, TypeVar

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.types import ASGIApp

from ._faults import DownMode

__all__ = ["BackgroundServer", "TLSFiles", "make_tls_files", "wait_for"]

LOOPBACK: Final = "127.0.0.1"
_START_TIMEOUT: Final = 10.0
_POLL: Final = 0.005

_T = TypeVar("_T")


@dataclass(frozen=True)
class TLSFiles:
    """PEM files for an HTTPS fake: the CA clients trust, the server certificate and its private key."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_tls_files(directory: Path, *, hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")) -> TLSFiles:
    """Write ``ca.pem``, ``server.pem`` and ``server-key.pem`` into ``directory`` (valid for two days).

    EC P-256 keys: generating them takes about a millisecond, unlike RSA.
    """
    now = datetime.now(UTC)
    not_before, not_after = now - timedelta(minutes=5), now + timedelta(days=2)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "breakerpanel test fakes"),
            x509.NameAttribute(NameOID.COMMON_NAME, "breakerpanel fake CA"),
        ]
    )
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    files = TLSFiles(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    files.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    files.key_file.chmod(0o600)
    return files


class BackgroundServer:
    """uvicorn serving ``app`` from a daemon thread on 127.0.0.1; HTTPS when ``tls`` is given.

    The port is chosen on the first ``start()`` and kept for later ones.
    """

    def __init__(self, app: ASGIApp, *, name: str, tls: TLSFiles | None = None, shutdown_timeout_s: int = 1) -> None:
        self.app = app
        self.name = name
        self.tls = tls
        self.shutdown_timeout_s = shutdown_timeout_s
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._server is not None

    def _config(self) -> uvicorn.Config:
        return uvicorn.Config(
            self.app,
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=self.shutdown_timeout_s,
            ssl_certfile=self.tls.cert_file if self.tls else None,
            ssl_keyfile=self.tls.key_file if self.tls else None,
        )

    def start(self) -> None:
        """Bind (the same port as before, if any), serve from a new thread, return once connections are accepted."""
        with self._lock:
            if self._server is not None:
                return
            # IPPROTO_TCP so that asyncio sets TCP_NODELAY (no 40 ms delayed-ACK stalls on small answers).
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((LOOPBACK, self.port))
            except OSError:
                sock.close()
                raise
            self.port = sock.getsockname()[1]
            server = uvicorn.Server(self._config())
            thread = threading.Thread(
                target=self._run, args=(server, sock), name=f"{self.name}:{self.port}", daemon=True
            )
            thread.start()
            deadline = time.monotonic() + _START_TIMEOUT
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    server.should_exit = True
                    thread.join(_START_TIMEOUT)
                    sock.close()
                    raise RuntimeError(f"{self.name}: uvicorn did not start on {LOOPBACK}:{self.port}")
                time.sleep(_POLL)
            self._server, self._thread = server, thread

    def stop(self) -> None:
        """Close the listening socket and every connection, then join the thread. The port stays reserved for us
        only in the sense that ``start()`` binds it again; nothing listens on it meanwhile."""
        with self._lock:
            server, thread = self._server, self._thread
            if server is None or thread is None:
                return
            loop = self._loop
            if loop is not None and not loop.is_closed():
                # Stop listening and abort every connection at once, like a crash. uvicorn's own shutdown closes
                # idle keep-alive connections gracefully, but over TLS the close_notify goes unanswered until the
                # client reuses its pooled connection, which would hold every stop for the graceful timeout.
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(_abort_connections, server)
            server.should_exit = True
            thread.join(self.shutdown_timeout_s + 5.0)
            if thread.is_alive():
                raise RuntimeError(f"{self.name}: the server thread on port {self.port} did not stop")
            self._server = self._thread = self._loop = None

    def _run(self, server: uvicorn.Server, sock: socket.socket) -> None:
        asyncio.run(self._serve(server, sock))

    async def _serve(self, server: uvicorn.Server, sock: socket.socket) -> None:
        self._loop = asyncio.get_running_loop()
        await server.serve(sockets=[sock])


def _abort_connections(server: uvicorn.Server) -> None:
    """Runs in the server's loop: close the listeners, then abort (RST) every open connection."""
    for listener in server.servers:
        listener.close()
    for connection in list(server.server_state.connections):
        transport = getattr(connection, "transport", None)
        if isinstance(transport, asyncio.Transport):
            transport.abort()


def wait_for(check: Callable[[], _T | None], *, timeout: float, what: str, condition: threading.Condition) -> _T:
    """Wait on ``condition`` (notified on every recorded request) until ``check()`` returns something other than
    None, and return that; TimeoutError after ``timeout`` seconds. ``check`` runs with the condition's lock held."""
    deadline = time.monotonic() + timeout
    with condition:
        while True:
            result = check()
            if result is not None:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{what}: not reached within {timeout:g}s")
            condition.wait(remaining)


class DownSwitch:
    """Taking a fake down and back up, shared by the fakes (which set ``_lock``, ``_down`` and
    ``_server`` in their constructors)."""

    _lock: threading.RLock
    _down: DownMode | None
    _server: BackgroundServer | None

    def set_down(self, down: bool = True, *, mode: DownMode = "refuse") -> None:
        """Take the fake down (``"refuse"``: the port is closed, clients get connection refused;
        ``"503"``: every request gets the service's 503) or bring it back up on the same port
        (``down=False``)."""
        with self._lock:
            self._down = mode if down else None
        if self._server is None:
            return
        if down and mode == "refuse":
            self._server.stop()
        else:
            self._server.start()

    @property
    def is_down(self) -> bool:
        with self._lock:
            return self._down is not None
