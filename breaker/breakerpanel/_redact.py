"""Keeping credentials out of messages: a URL's user information is masked wherever a URL is shown."""

from __future__ import annotations

import re

__all__ = ["redacted"]

# //user:password@host or //password@host (Redis, PostgreSQL, HTTP URLs; a mistyped scheme too,
# "redis//:password@host", which is just when an error shows the URL).
_USERINFO = re.compile(r"(?P<scheme>//)[^@/\s'\"]*@")


def redacted(text: str) -> str:
    """``text`` with the user information of every URL in it replaced by ``***``.

    >>> redacted("got 'redis://default:hunter2@redis:6379/0'")
    "got 'redis://***@redis:6379/0'"
    """
    return _USERINFO.sub(r"\g<scheme>***@", text)
