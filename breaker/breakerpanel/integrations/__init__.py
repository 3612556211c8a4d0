"""Integrations: put breakers in front of the clients a Python AI service already uses.

- :mod:`breakerpanel.integrations.httpx` and :mod:`breakerpanel.integrations.httpx2`: transports that route
  each request to an endpoint breaker by host and path (the OpenAI and Anthropic SDKs are built on
  ``httpx2``; qdrant-client on ``httpx``);
- :mod:`breakerpanel.integrations.redis`: a redis-py asyncio client whose commands go through a breaker;
- :mod:`breakerpanel.integrations.asyncpg` and :mod:`breakerpanel.integrations.sqlalchemy`: PostgreSQL;
- :mod:`breakerpanel.integrations.fastapi`: dependencies and error mapping for routes.

Each module imports its library on import, so install the matching extra (without it, the import
fails with one line naming it): ``breakerpanel[httpx]``, ``[httpx2]``, ``[redis]``, ``[postgres]``, ``[fastapi]``.
"""

from ._http import Route, Router, StreamLimits, StreamStalledError

__all__ = ["Route", "Router", "StreamLimits", "StreamStalledError"]
