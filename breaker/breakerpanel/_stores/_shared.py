"""What replicas exchange, and the decisions made from it: pure functions, no I/O.

Each replica writes its window counts into the breaker's ``counts`` hash (one field per replica)
every sync interval, and reads everyone's back. The state in force lives in the ``state`` hash
with a generation number; every change bumps the generation (atomically, in a Lua script) and is
published, so a replica follows a change it has not seen (a higher generation) and ignores old ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from breakerpanel._state import State

__all__ = [
    "PeerCounts",
    "Record",
    "cluster_trip",
    "counts_key",
    "decode_peer",
    "encode_counts",
    "state_key",
    "votes",
]

#: States that are published to the other replicas (half-open is reached by each one on its own).
SHARED_STATES = frozenset({State.CLOSED, State.OPEN, State.FORCED_OPEN, State.DISABLED, State.METRICS_ONLY})


def _tag(name: str) -> str:
    # Redis Cluster hashes only what is inside the first {...}: a breaker's keys share one slot.
    # Braces in a name would end the tag early; they are replaced (names are lowercase words anyway).
    return "{" + name.replace("{", "(").replace("}", ")") + "}"


def state_key(prefix: str, name: str) -> str:
    return f"{prefix}:{_tag(name)}:state"


def counts_key(prefix: str, name: str) -> str:
    return f"{prefix}:{_tag(name)}:counts"


@dataclass(frozen=True, slots=True)
class PeerCounts:
    """One replica's window, as last written: calls, failures, slow calls, and whether it is open
    or half-open on its own."""

    calls: int
    failures: int
    slow: int
    tripped: bool

    def sees_failures(self, failure_rate_threshold: float, slow_call_rate_threshold: float) -> bool:
        """Whether this replica votes for opening: tripped, or its window at a threshold."""
        if self.tripped:
            return True
        if self.calls <= 0:
            return False
        return (self.failures > 0 and self.failures / self.calls >= failure_rate_threshold) or (
            self.slow > 0 and self.slow / self.calls >= slow_call_rate_threshold
        )


def encode_counts(calls: int, failures: int, slow: int, tripped: bool) -> list[str]:
    return [str(calls), str(failures), str(slow), "1" if tripped else "0"]


def decode_peer(value: str | bytes) -> PeerCounts | None:
    """``"calls failures slow tripped timestamp"`` (as the sync script stores it), or ``None``."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    parts = value.split()
    if len(parts) < 4:
        return None
    try:
        calls, failures, slow = (max(0, int(p)) for p in parts[:3])
    except ValueError:
        return None
    return PeerCounts(calls, min(failures, calls), min(slow, calls), parts[3] == "1")


@dataclass(frozen=True, slots=True)
class Record:
    """The shared state of one breaker: generation 0 means none was ever published."""

    generation: int
    state: State
    reason: str
    #: Milliseconds left open (open, forced open with expiry), else ``None``.
    remaining_ms: int | None
    origin: str
    #: Set once when the record is first written: a different one means Redis lost the record
    #: (restarted empty) and it started over; "" before anything was published.
    epoch: str = ""

    @classmethod
    def parse(
        cls, gen: object, state: object, reason: object, remaining: object, origin: object, epoch: object = ""
    ) -> Record:
        text = [_text(v) for v in (gen, state, reason, remaining, origin, epoch)]
        try:
            generation = max(0, int(text[0] or 0))  # generations count up from 0: less is garbage
        except ValueError:
            generation = 0
        try:
            parsed = State(text[1]) if text[1] else State.CLOSED
        except ValueError:
            parsed = State.CLOSED
        remaining_ms: int | None
        try:
            remaining_ms = max(0, int(float(text[3]))) if text[3] not in ("", "-1") else None
        except (ValueError, OverflowError):
            remaining_ms = None
        return cls(generation, parsed, text[2], remaining_ms, text[4], text[5])


def _text(value: object) -> str:
    if value is None or value is False:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def votes(
    self_sees: bool, peers: Iterable[PeerCounts], failure_rate_threshold: float, slow_call_rate_threshold: float
) -> int:
    """How many replicas see failures: this one (if it does) and the peers that do."""
    return int(self_sees) + sum(1 for p in peers if p.sees_failures(failure_rate_threshold, slow_call_rate_threshold))


def cluster_trip(
    own: PeerCounts,
    peers: Iterable[PeerCounts],
    *,
    minimum_calls: int,
    failure_rate_threshold: float,
    slow_call_rate_threshold: float,
    quorum: int,
) -> str | None:
    """Whether the summed windows of every replica trip the breaker: ``failure_rate``,
    ``slow_call_rate`` or ``None``. With ``quorum`` above 1, at least that many replicas must
    see failures themselves."""
    peers = list(peers)
    calls = own.calls + sum(p.calls for p in peers)
    if calls <= 0 or calls < minimum_calls:
        return None
    failures = own.failures + sum(p.failures for p in peers)
    slow = own.slow + sum(p.slow for p in peers)
    if failures / calls >= failure_rate_threshold:
        reason = "failure_rate"
    elif slow / calls >= slow_call_rate_threshold:
        reason = "slow_call_rate"
    else:
        return None
    own_sees = own.sees_failures(failure_rate_threshold, slow_call_rate_threshold)
    if votes(own_sees, peers, failure_rate_threshold, slow_call_rate_threshold) < quorum:
        return None
    return reason
