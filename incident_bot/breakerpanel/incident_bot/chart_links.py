"""Signed, expiring URLs of the charts the bot serves (``GET /charts/{id}.png?expires=...&signature=...``).

PagerDuty fetches an event's image from a URL without credentials, and whoever opens the incident
in PagerDuty fetches it again later: the URL itself is the credential. It carries its expiry and
an HMAC-SHA256, keyed with a secret of the bot's settings, over the chart's id and that expiry;
the bot serves the chart only when the signature matches (compared in constant time) and the expiry
has not passed. Nothing else about the incident is in the URL, and no other chart can be reached
by changing its id.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlencode

__all__ = ["ChartFormat", "ChartLinks", "Refusal"]


class ChartFormat(StrEnum):
    """The files a chart is served as (one signature covers both)."""

    PNG = "png"
    SVG = "svg"

    @property
    def media_type(self) -> str:
        return "image/png" if self is ChartFormat.PNG else "image/svg+xml"


class Refusal(StrEnum):
    """Why a chart URL is refused (the 403's reason)."""

    MISSING = "a chart URL needs the expires and signature the bot signed it with"
    TAMPERED = "the signature does not match this chart and expiry"
    EXPIRED = "this chart URL has expired"


@dataclass(frozen=True)
class ChartLinks:
    """Signs and checks chart URLs under ``base_url`` (the bot as PagerDuty and people reach it),
    valid ``ttl`` seconds from signing."""

    key: bytes
    base_url: str
    ttl: float

    def __post_init__(self) -> None:
        if len(self.key) < 16:
            raise ValueError("a chart URL key needs 16 bytes at least")
        if self.ttl <= 0:
            raise ValueError(f"a chart URL lives a positive number of seconds (got {self.ttl})")

    def signature(self, chart_id: int, expires: int) -> str:
        """Hex HMAC-SHA256 of ``{chart_id}:{expires}``."""
        return hmac.new(self.key, f"{chart_id}:{expires}".encode(), hashlib.sha256).hexdigest()

    def url(self, chart_id: int, fmt: ChartFormat, *, now: float) -> str:
        """The chart's URL, valid until ``now`` + the TTL (rounded up to a whole second)."""
        expires = math.ceil(now + self.ttl)
        query = urlencode({"expires": expires, "signature": self.signature(chart_id, expires)})
        return f"{self.base_url.rstrip('/')}/charts/{chart_id}.{fmt}?{query}"

    def check(self, chart_id: int, expires: str | None, signature: str | None, *, now: float) -> Refusal | None:
        """None when ``expires`` and ``signature`` (as the URL gave them) were signed here for
        ``chart_id`` and have not expired; else why not. The signature is compared in constant time
        before the expiry is looked at, so a forger learns nothing from which answer comes."""
        if not expires or not signature or not (expires.isascii() and expires.isdigit()) or len(expires) > 12:
            return Refusal.MISSING
        expected = self.signature(chart_id, int(expires))
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            return Refusal.TAMPERED
        if int(expires) < now:
            return Refusal.EXPIRED
        return None
