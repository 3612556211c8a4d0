"""Keeping credentials out of messages: a URL's user information is masked wherever a URL is shown."""

from __future__ import annotations

import re

__all__ = ["redacted"]

# //user:password@host or //password@host (Redis, PostgreSQL, HTTP URLs; a mistyped scheme too,
# "redis//:password@host", which is just when an error shows the URL).
# Up to the last "@" before the host: a password may hold an unencoded "@" (httpx sends it).
_USERINFO = re.compile(r"(?P<scheme>//)[^/\s'\"]*@")
# ?password=..., &pass=... or &sslpassword=...: redis-py and libpq take passwords as query
# parameters too.
_PASSWORD_PARAMETER = re.compile(r"(?P<key>[?&](?:sslpassword|password|pass)=)[^&#\s'\"]*", re.IGNORECASE)


def redacted(text: str) -> str:
    """``text`` with the user information and password parameters of every URL in it replaced by
    ``***``.

    >>> redacted("got 'redis://default:hunter2@redis:6379/0'")
    "got 'redis://***@redis:6379/0'"
    >>> redacted("redis://redis:6379/0?password=hunter2&db=1")
    'redis://redis:6379/0?password=***&db=1'
    """
    return _PASSWORD_PARAMETER.sub(r"\g<key>***", _USERINFO.sub(r"\g<scheme>***@", text))
