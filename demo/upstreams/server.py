"""Running the fake upstreams in-process, on a free loopback port, for tests and tools.

:class:`UpstreamServer` runs uvicorn in a background thread with its own event loop, so it serves
sync and async callers alike and outlives any one test's loop. The listening socket is bound
before the thread starts (port 0 lets the kernel pick a free port, with no race), and ``start``
returns once uvicorn accepts connections. ``stop`` asks uvicorn to exit, cancels requests still
running after ``shutdown_timeout_s`` (a stalled stream would otherwise hold it forever), and
joins the thread, which closes the socket and frees the port.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import TracebackType
from typing import Self

import uvicorn
from starlette.types import ASGIApp
from uvicorn.config import LOGGING_CONFIG

from .connection import AbortableH11Protocol

__all__ = ["UpstreamServer", "server_config"]


def server_config(
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    shutdown_timeout_s: int = 1,
    log_level: str | None = None,
    in_process: bool = False,
) -> uvicorn.Config:
    """uvicorn's configuration for the fake upstreams, with the protocol that can reset connections.

    ``in_process`` leaves the host program's logging alone and turns the access log off.
    """
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=AbortableH11Protocol,
        ws="none",
        lifespan="off",
        timeout_graceful_shutdown=shutdown_timeout_s,
        log_level=log_level,
        log_config=None if in_process else LOGGING_CONFIG,
        access_log=not in_process,
    )


class UpstreamServer:
    """Serves ``app`` on ``host`` (port 0 picks a free one) from a background thread.

    Use as ``with UpstreamServer(app) as server: ... server.url``, or ``async with`` from a
    running event loop (start and stop then run in a worker thread, not blocking the loop).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        shutdown_timeout_s: int = 1,
        startup_timeout_s: float = 10.0,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.shutdown_timeout_s = shutdown_timeout_s
        self.startup_timeout_s = startup_timeout_s
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://host:port``, once started."""
        if self._server is None:
            raise RuntimeError("the server is not running")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> Self:
        """Bind, serve from a new thread, and return once connections are accepted."""
        if self._server is not None:
            raise RuntimeError("the server is already running")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP, not 0: asyncio disables Nagle only on sockets that say they are TCP, and
        # without TCP_NODELAY every answer written in two parts waits 40 ms for a delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        config = server_config(self.app, shutdown_timeout_s=self.shutdown_timeout_s, in_process=True)
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"upstreams:{self.port}", daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + self.startup_timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self._server = self._thread = None
                server.should_exit = True
                thread.join(self.startup_timeout_s)
                sock.close()
                raise RuntimeError(f"uvicorn did not start on {self.host}:{self.port}")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Shut down, cancelling requests still running after ``shutdown_timeout_s``, and join the thread."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(self.shutdown_timeout_s + 5.0)
        if thread.is_alive():
            raise RuntimeError(f"the server thread on port {self.port} did not stop")
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)
