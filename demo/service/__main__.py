"""``python -m demo.service --host 0.0.0.0 --port 8000``: serve the assistant with uvicorn.

Settings come from ``DEMO_*`` environment variables (demo/README.md lists them).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys

import uvicorn
from pydantic import ValidationError

from .app import create_app
from .settings import Settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m demo.service", description="Serve the breaker-protected demo RAG assistant."
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:  # one line per setting, naming its variable
        for error in exc.errors(include_url=False):
            field = "_".join(str(part) for part in error["loc"])
            # OPENAI_API_KEY and ANTHROPIC_API_KEY are read under the SDKs' own names.
            where = "" if not field else f"{field}: " if field.isupper() else f"DEMO_{field.upper()}: "
            print(f"{where}{error['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        sys.exit(2)
    # uvicorn configures its own loggers only; the service's warnings (seeding retries, manual
    # breaker changes) need a handler too.
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.run(app, host=args.host, port=args.port, log_level=settings.log_level)


if __name__ == "__main__":
    main()
