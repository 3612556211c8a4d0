"""Running the demo service against the fake upstreams: in-process (the app's own lifespan, over
an ASGI transport) or as ``python -m demo.service`` in a subprocess (for the load generator and
the command line the stack uses)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from breakerpanel import BreakerRegistry
from demo.service import Settings, create_app
from tests.servers import find_free_port, wait_until

__all__ = ["RunningService", "serve", "service_process", "service_settings"]


def service_settings(upstreams_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    """Settings pointing at the fake upstreams, with a collection and SQLite file of the test's own."""
    values: dict[str, Any] = {
        "openai_base_url": f"{upstreams_url}/v1",
        "anthropic_base_url": upstreams_url,
        "qdrant_url": upstreams_url,
        "qdrant_collection": f"demo-{uuid.uuid4().hex[:8]}",
        "sqlite_path": tmp_path / "documents.sqlite3",
        "admin_token": "test-admin-token",
        "seed_retry_s": 0.2,
        **overrides,
    }
    return Settings(**values)


@dataclass
class RunningService:
    app: FastAPI
    client: httpx.AsyncClient

    @property
    def registry(self) -> BreakerRegistry:
        registry: BreakerRegistry = self.app.state.registry
        return registry

    async def ask(self, question: str = "What does a circuit breaker do?") -> dict[str, Any]:
        """Ask, and check the one promise the service makes whatever is down: a 200."""
        response = await self.client.post("/v1/ask", json={"question": question})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[RunningService]:
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://demo") as client,
    ):
        yield RunningService(app, client)


@contextmanager
def service_process(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """``python -m demo.service`` on a free port with ``env`` added; yields its URL once ready."""
    port = find_free_port()
    log = (tmp_path / "service.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "demo.service", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if process.poll() is not None:
            output = (tmp_path / "service.log").read_text()
            raise RuntimeError(f"the service exited with {process.returncode}:\n{output}")
        try:
            return httpx.get(f"{url}/health/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, timeout=30, what="demo service ready")
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()
