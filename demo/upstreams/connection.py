"""Dropping a client's connection on purpose, for the ``outage`` fault's ``reset`` mode.

ASGI has no way to hang up without answering: uvicorn turns an exception raised before the
response into a 500, and one raised after it leaves a status line on the wire. So the fake
upstreams are served by :class:`AbortableH11Protocol`, uvicorn's h11 protocol plus an ASGI scope
extension that resets the TCP connection (``SO_LINGER`` 0, then abort). The client sees what a
crashed upstream or a load balancer giving up shows it: a transport error and no response.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable
from typing import cast

from starlette.types import Receive, Scope
from uvicorn._types import ASGIReceiveCallable, ASGISendCallable
from uvicorn._types import Scope as UvicornScope
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

__all__ = ["ABORT_EXTENSION", "AbortableH11Protocol", "reset_connection"]

ABORT_EXTENSION = "demo.upstreams.abort"
"""The scope extension holding ``{"abort": callable}``, set on every HTTP request."""


class AbortableH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, offering each request a way to reset its connection."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, object],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        app = self.app

        async def app_with_abort(scope: UvicornScope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
            if scope["type"] == "http":
                scope.setdefault("extensions", {})[ABORT_EXTENSION] = {"abort": self._reset}
            await app(scope, receive, send)

        self.app = app_with_abort

    def _reset(self) -> None:
        sock = self.transport.get_extra_info("socket")
        if sock is not None:  # linger 0: close with a RST, not a FIN
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()


async def reset_connection(scope: Scope, receive: Receive) -> None:
    """Reset the connection of the request in ``scope`` and wait until the server has noticed.

    Raises RuntimeError when the server is not running :class:`AbortableH11Protocol`.
    """
    extension = scope.get("extensions", {}).get(ABORT_EXTENSION)
    if extension is None:
        raise RuntimeError("resetting connections needs the server of demo.upstreams.server")
    cast(Callable[[], None], extension["abort"])()
    while (await receive())["type"] != "http.disconnect":  # drain the body until the loss is seen
        pass
