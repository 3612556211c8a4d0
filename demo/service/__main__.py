"""``python -m demo.service --host 0.0.0.0 --port 8000``: serve the assistant with uvicorn.

Settings come from ``DEMO_*`` environment variables (demo/README.md lists them).
"""

from __future__ import annotations

import argparse
import contextlib
import logging

import uvicorn

from .app import create_app
from .settings import Settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m demo.service", description="Serve the breaker-protected demo RAG assistant."
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    args = parser.parse_args(argv)
    settings = Settings()
    # uvicorn configures its own loggers only; the service's warnings (seeding retries, manual
    # breaker changes) need a handler too.
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.run(app, host=args.host, port=args.port, log_level=settings.log_level)


if __name__ == "__main__":
    main()
