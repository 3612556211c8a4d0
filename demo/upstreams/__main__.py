"""``python -m demo.upstreams``: serve the fake upstreams with uvicorn until interrupted."""

from __future__ import annotations

import argparse
import contextlib

import uvicorn

from .app import create_app
from .capacity import Capacity
from .chaos import Upstream
from .server import server_config


def parse_capacity(text: str) -> tuple[Upstream, Capacity]:
    """``openai=6:200:0.1``: upstream, then concurrency, queue and service time (the last two optional)."""
    name, _, spec = text.partition("=")
    try:
        upstream = Upstream(name)
        parts = spec.split(":")
        if not 1 <= len(parts) <= 3:
            raise ValueError(spec)
        concurrency = int(parts[0])
        queue = int(parts[1]) if len(parts) > 1 else 0
        service_time_s = float(parts[2]) if len(parts) > 2 else 0.0
        return upstream, Capacity(concurrency=concurrency, queue=queue, service_time_s=service_time_s)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError too
        raise argparse.ArgumentTypeError(f"expected UPSTREAM=CONCURRENCY[:QUEUE[:SERVICE_S]], got {text!r}") from exc


def main(argv: list[str] | None = None) -> None:
    """Serve the app configured by the command line ``argv`` (default: ``sys.argv``)."""
    parser = argparse.ArgumentParser(
        prog="python -m demo.upstreams",
        description="Serve the fake OpenAI, Anthropic and Qdrant upstreams, with chaos controls under /chaos.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8600, help="port to listen on (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the error_rate draws (default: %(default)s)")
    parser.add_argument("--embedding-dim", type=int, default=64, help="default embedding size (default: %(default)s)")
    parser.add_argument(
        "--max-prompt-chars", type=int, default=8000, help="context window in characters (default: %(default)s)"
    )
    parser.add_argument("--openai-api-key", help="the only OpenAI key accepted (default: any)")
    parser.add_argument("--anthropic-api-key", help="the only Anthropic key accepted (default: any)")
    parser.add_argument(
        "--capacity",
        type=parse_capacity,
        action="append",
        default=[],
        metavar="UPSTREAM=CONCURRENCY[:QUEUE[:SERVICE_S]]",
        help="limit an upstream to CONCURRENCY requests at once, QUEUE waiting, each holding its slot "
        "SERVICE_S seconds (repeatable; default: unlimited)",
    )
    parser.add_argument("--log-level", default="info", help="uvicorn log level (default: %(default)s)")
    args = parser.parse_args(argv)
    app = create_app(
        seed=args.seed,
        embedding_dim=args.embedding_dim,
        max_prompt_chars=args.max_prompt_chars,
        openai_api_key=args.openai_api_key,
        anthropic_api_key=args.anthropic_api_key,
        capacity=dict(args.capacity),
    )
    config = server_config(app, host=args.host, port=args.port, shutdown_timeout_s=5, log_level=args.log_level)
    # uvicorn re-raises Ctrl-C once it has shut down gracefully; here that is the normal way out.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
