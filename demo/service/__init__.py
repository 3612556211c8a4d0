"""The demo RAG assistant: a FastAPI service whose every dependency is behind a breaker.

``POST /v1/ask`` embeds the question (OpenAI), searches Qdrant, reads the documents from
PostgreSQL (or SQLite), and answers with OpenAI, falling back to Anthropic, then to a cached
answer (Redis or memory), then to a degraded answer that says so. The breakers come from
``demo/breakers.yaml``; ``/metrics`` exports them, ``/health/ready`` shows their tree and
``/admin`` changes their states by hand. Run it with ``python -m demo.service``.
"""

from .app import create_app
from .settings import Settings

__all__ = ["Settings", "create_app"]
