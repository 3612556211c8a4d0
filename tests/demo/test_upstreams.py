"""Running the fake upstreams: the in-process server's life cycle and ``python -m demo.upstreams``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from demo.upstreams import Chaos, StallStream, Upstream, UpstreamServer, create_app
from tests.servers import find_free_port

ROOT = Path(__file__).resolve().parents[2]


def _server_threads(port: int) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == f"upstreams:{port}"]


def test_stop_frees_the_port_and_the_thread() -> None:
    server = UpstreamServer(create_app()).start()
    port = server.port
    assert httpx.get(f"{server.url}/chaos").status_code == 200
    assert _server_threads(port)

    server.stop()

    assert not _server_threads(port)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/chaos")
    with UpstreamServer(create_app(), port=port) as again:  # the port can be bound again at once
        assert httpx.get(f"{again.url}/chaos").status_code == 200


def test_url_and_start_need_the_right_state() -> None:
    server = UpstreamServer(create_app())
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url
    with server, pytest.raises(RuntimeError, match="already running"):
        server.start()
    server.stop()  # stopping a stopped server is a no-op


def test_a_busy_port_fails_to_start() -> None:
    with UpstreamServer(create_app()) as running, pytest.raises(OSError, match="in use"):
        UpstreamServer(create_app(), port=running.port).start()


async def test_async_context_manager_serves_the_running_loop() -> None:
    async with UpstreamServer(create_app()) as server, httpx.AsyncClient() as client:
        response = await client.get(f"{server.url}/chaos")

    assert response.status_code == 200
    assert not _server_threads(server.port)


async def test_stop_cancels_a_stream_stalled_forever() -> None:
    chaos = Chaos()
    chaos.set(Upstream.OPENAI, StallStream(after_chunks=1))
    server = UpstreamServer(create_app(chaos=chaos), shutdown_timeout_s=1).start()
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}

    first_chunk = asyncio.Event()

    async def read_stream() -> None:
        async with (
            httpx.AsyncClient(timeout=10) as client,
            client.stream(
                "POST", f"{server.url}/v1/chat/completions", json=body, headers={"authorization": "Bearer k"}
            ) as response,
        ):
            async for _ in response.aiter_bytes():
                first_chunk.set()

    reader = asyncio.create_task(read_stream())
    await asyncio.wait_for(first_chunk.wait(), timeout=5)
    assert chaos.state(Upstream.OPENAI).in_flight == 1
    started = time.monotonic()
    await asyncio.to_thread(server.stop)
    stopped_in = time.monotonic() - started

    with pytest.raises(httpx.TransportError):  # the stream was cut, not finished
        await reader
    assert stopped_in < 5  # a 1 s graceful shutdown and the thread join, on a busy machine
    assert not _server_threads(server.port)
    assert chaos.state(Upstream.OPENAI).in_flight == 0


def test_python_m_demo_upstreams_serves_until_interrupted() -> None:
    port = find_free_port()  # below the kernel's ephemeral range: no other bind(0) takes it meanwhile
    process = subprocess.Popen(
        [sys.executable, "-m", "demo.upstreams", "--port", str(port), "--seed", "3", "--log-level", "warning"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                response = httpx.put(f"http://127.0.0.1:{port}/chaos/qdrant", json={"fault": "outage"})
                break
            except httpx.ConnectError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.05)
        outage = httpx.get(f"http://127.0.0.1:{port}/collections")
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)

    assert response.status_code == 200
    assert outage.status_code == 503
    assert process.returncode == 0, stderr.decode()
