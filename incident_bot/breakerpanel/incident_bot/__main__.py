"""``python -m breakerpanel.incident_bot [--host H] [--port P]``: serve the bot with uvicorn.

Configuration comes from ``INCIDENT_BOT_*`` environment variables (see docs/incident-bot.md); a
bad one stops the bot here with the variable's name and the reason. The bot listens on loopback
unless told otherwise; beyond it, reading its incidents and metrics needs the read token.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys

import uvicorn
from pydantic import ValidationError

from .app import create_app
from .runtime import StartupError
from .settings import ENV_PREFIX, Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m breakerpanel.incident_bot", description=__doc__)
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (beyond loopback, reads need the read token)"
    )
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings()
        app = create_app(settings, listen_host=args.host)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            field = ".".join(str(p) for p in error["loc"]) or "settings"
            print(f"{ENV_PREFIX}{field.upper()}: {error['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(exc, file=sys.stderr)
        return 2
    gc.freeze()
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
