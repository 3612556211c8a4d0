"""Fake OpenAI, Anthropic and Qdrant upstreams that speak the real wire formats, with chaos controls.

Tests drive the real SDKs against them; the demo stack's load generator and CLI inject faults
through ``/chaos``. Start one in-process with ``UpstreamServer(create_app())``, or as a process
with ``python -m demo.upstreams --port 8600``.
"""

from .app import create_app
from .capacity import Capacity
from .chaos import Chaos, ErrorRate, Fault, Latency, Outage, RateLimit, SlowStream, StallStream, Upstream, UpstreamState
from .echo import CONTENT_FILTER_MARKER, CONTEXT_OVERFLOW_MARKER
from .server import UpstreamServer

__all__ = [
    "CONTENT_FILTER_MARKER",
    "CONTEXT_OVERFLOW_MARKER",
    "Capacity",
    "Chaos",
    "ErrorRate",
    "Fault",
    "Latency",
    "Outage",
    "RateLimit",
    "SlowStream",
    "StallStream",
    "Upstream",
    "UpstreamServer",
    "UpstreamState",
    "create_app",
]
