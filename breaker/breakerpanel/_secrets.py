"""Reading a secret from a file (a Docker or Kubernetes secret), for the settings of the services
built on breakerpanel (the incident bot, the demo): one set of rules and messages for both."""

from __future__ import annotations

from pathlib import Path

__all__ = ["secret_from_file"]


def secret_from_file(file: Path, label: str) -> str:
    """The secret in ``file``, without surrounding whitespace. A file that cannot be read, or holds
    nothing, is a ``ValueError`` naming ``label`` (the setting) and the file, never its content:
    an empty secret would quietly turn off what it guards."""
    try:
        text = file.read_text().strip()
    except OSError as exc:
        raise ValueError(f"{label}: cannot read {file}: {exc.strerror or exc}") from None
    if not text:
        raise ValueError(f"{label}: {file} is empty")
    return text
