"""Provider states for the verifier: a small HTTP endpoint that sets a provider up before each interaction.

Pact's verifier POSTs ``{"state": ..., "params": {...}, "action": "setup"}`` to a state change URL before it
replays an interaction that names a provider state (``given(...)`` in the consumer test), and uses the JSON object
the endpoint answers as *provider state values*: a request field defined with
``generate.provider_state("${name}")`` is sent with the value the state handler returned (the ``ts`` of a Slack
message the state posted, for instance), not the consumer's example.

pact-python's own function handlers cannot return values (and its callback server leaves its socket open, which
``filterwarnings = error`` turns into a failure), hence this endpoint, given to ``Verifier.state_handler(url,
body=True)``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

__all__ = ["ProviderStates", "StateHandler"]

#: Sets one provider state up from its parameters; returns the provider state values, if any.
StateHandler = Callable[[Mapping[str, Any]], Mapping[str, Any] | None]


class ProviderStates:
    """``with ProviderStates({"state name": handler, ...}, before_each=reset) as states: ... states.url``.

    ``before_each`` runs before every state setup (say, to reset a fake). An unknown state, or a handler that
    raises, answers 500, which fails that interaction; :attr:`errors` keeps what went wrong for the test's report.
    """

    def __init__(self, handlers: Mapping[str, StateHandler], *, before_each: Callable[[], None] | None = None) -> None:
        self.handlers = dict(handlers)
        self.before_each = before_each
        self.errors: list[str] = []
        self.seen: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the provider state endpoint is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/provider-states"

    def _change(self, request: Mapping[str, Any]) -> Mapping[str, Any]:
        state = str(request.get("state", ""))
        if request.get("action", "setup") != "setup":
            return {}
        self.seen.append(state)
        if self.before_each is not None:
            self.before_each()
        if not state:  # the verifier's generic set-up call, for an interaction without a state
            return {}
        handler = self.handlers.get(state)
        if handler is None:
            raise LookupError(f"no handler for provider state {state!r}")
        return handler(request.get("params") or {}) or {}

    def __enter__(self) -> Self:
        states = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    values = states._change(json.loads(self.rfile.read(length) or b"{}"))
                    status, body = 200, json.dumps(values).encode()
                except Exception as exc:  # reported to the verifier as a failed state change
                    states.errors.append(f"{type(exc).__name__}: {exc}")
                    status, body = 500, json.dumps({"error": str(exc)}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None  # the verifier's report says which state ran

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="pact-provider-states", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None
