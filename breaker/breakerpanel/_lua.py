"""Lua shared by the Redis scripts of the guards (rate limiter, lockout)."""

from __future__ import annotations

__all__ = ["lua_now"]


def lua_now(argument: int) -> str:
    """Lua setting ``now`` (seconds, a float) from ``ARGV[argument]``, or from the server's
    ``TIME`` when that is empty: every replica then decides on one clock, Redis's."""
    return f"""local now
if ARGV[{argument}] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[{argument}])
end
"""
