"""``/metrics`` over HTTP: an ASGI app for web frameworks and a server thread for the rest.

Both serve the Prometheus text format 0.0.4 (which every Prometheus accepts, whatever it asks
for first), gzipped when the request accepts gzip, as Prometheus' requests do: the text of 1,000
breakers shrinks about twentyfold. Level 1: the text is repetitive enough that higher levels gain
a few percent for several times the CPU.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

__all__ = ["CONTENT_TYPE", "MetricsServer", "metrics_asgi_app", "start_metrics_server"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_GZIP_LEVEL = 1

Body = Callable[[], bytes]
ASGIApp = Callable[..., Any]


def _accepts_gzip(accept_encoding: str) -> bool:
    return any(part.split(";")[0].strip().lower() == "gzip" for part in accept_encoding.split(","))


def _response(body: Body, accept_encoding: str) -> tuple[bytes, list[tuple[str, str]]]:
    data = body()
    headers = [("Content-Type", CONTENT_TYPE)]
    if _accepts_gzip(accept_encoding):
        data = gzip.compress(data, compresslevel=_GZIP_LEVEL, mtime=0)
        headers.append(("Content-Encoding", "gzip"))
    headers.append(("Content-Length", str(len(data))))
    return data, headers


def metrics_asgi_app(body: Body) -> ASGIApp:
    """An ASGI app that answers every HTTP request with ``body()``, written in a worker thread."""

    async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            return
        accept = ""
        for name, value in scope.get("headers", ()):
            if name.lower() == b"accept-encoding":
                accept = value.decode("latin-1")
        data, headers = await asyncio.to_thread(_response, body, accept)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": b"" if scope.get("method") == "HEAD" else data})

    return app


class MetricsServer(ThreadingMixIn, WSGIServer):
    """The ``/metrics`` server: one thread per request, daemon threads (a scrape in progress does
    not hold the process open)."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes come every few seconds: no access log on stderr."""


def start_metrics_server(body: Body, port: int, addr: str = "127.0.0.1") -> MetricsServer:
    """Serve ``body()`` on ``addr:port`` from a daemon thread; ``shutdown()`` stops it."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/favicon.ico":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b""]
        data, headers = _response(body, environ.get("HTTP_ACCEPT_ENCODING", ""))
        start_response("200 OK", headers)
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else data]

    server = make_server(addr, port, app, MetricsServer, handler_class=_QuietHandler)
    assert isinstance(server, MetricsServer)
    threading.Thread(target=server.serve_forever, name="breakerpanel-metrics", daemon=True).start()
    return server
