"""The load generator: steady ``POST /v1/ask`` traffic against the demo service.

``python -m demo.load --url http://127.0.0.1:8000 --rps 5 --duration 60s`` from a shell;
``await run_load(url, rps, duration, on_progress=print)`` from code (the ``breakerpanel load``
command); :class:`BackgroundLoad` runs it in a thread (the end-to-end test, bench/alert_quality.py).
"""

from .background import BackgroundLoad
from .questions import QUESTIONS
from .report import LoadReport
from .runner import positive_number, run_load, stop_on_signals

__all__ = ["QUESTIONS", "BackgroundLoad", "LoadReport", "positive_number", "run_load", "stop_on_signals"]
