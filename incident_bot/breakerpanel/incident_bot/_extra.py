"""Imported first by the package: without the `incident-bot` extra, one line naming it, not a bare
``ModuleNotFoundError`` from a module deep inside."""

from breakerpanel._extras import require

require(
    "breakerpanel.incident_bot",
    "incident-bot",
    "fastapi",
    "uvicorn",
    "sqlalchemy",
    "aiosqlite",
    "pagerduty",
    "slack_sdk",
    "matplotlib",
)
