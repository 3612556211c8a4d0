"""The semantic-cache fallback step: the answer to the nearest earlier question, from Redis 8.

:class:`SemanticCache` stores each question the primary call answered, as a vector in a Redis 8
Vector Set, with the answer beside it. When the chain falls back, it embeds the new question and
asks Redis for the nearest stored one (``VSIM``); above ``min_similarity`` (cosine) that
question's answer is served, counted as a ``semantic_cache`` fallback. A reworded question then
gets an answer while every language model is down, where an exact-key cache would miss.

Keys (``{name}`` is a Redis Cluster hash tag: the scripts touch the three in one slot):

- ``{prefix}:{name}:vectors``: the Vector Set, one element per question (its hash);
- ``{prefix}:{name}:answers``: a hash of element -> the question and its answer (JSON), each field
  expiring after ``ttl`` (``HPEXPIRE``);
- ``{prefix}:{name}:expiry``: a sorted set of element -> expiry time, which removes expired and
  surplus elements (over ``max_entries``, the oldest first) from the Vector Set.

Every Redis call goes through a breaker (a ``ProtectedRedis`` client's, or ``breaker``): while
Redis is down the step fails fast and the chain moves on. The core imports no Redis library:
the client is the caller's (``redis.asyncio.Redis`` or ``redis.Redis``), and :meth:`SemanticCache.from_url`
imports redis-py when called.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import struct
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ._breaker import CircuitBreaker
from ._classify import Classifier
from ._embedding import Embedder, HashingEmbedder
from ._exceptions import BreakerConfigError
from ._fallback import CacheMiss, FallbackStep
from ._state import FallbackType
from .integrations._guard import guarded, record_exception
from .presets import redis_errors

__all__ = [
    "DEFAULT_MIN_SIMILARITY",
    "SemanticCache",
    "SemanticCacheMiss",
    "SemanticHit",
    "VectorSetsUnsupportedError",
    "first_text_argument",
    "sole_text_argument",
]

#: The cosine similarity above which a stored question counts as the same question. Chosen with
#: bench/semantic_cache.py for the default :class:`HashingEmbedder` (results in
#: bench/results/semantic_cache.json): rewordings score above it, unrelated questions below.
DEFAULT_MIN_SIMILARITY = 0.85

Quantization = Literal["q8", "noquant", "bin"]

# KEYS: vectors, answers, expiry. ARGV: element, FP32 vector, payload, ttl (ms), max entries,
# quantization flag. Drops expired elements, stores this one, then drops the oldest over the bound.
_REMEMBER = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[4])
local function forget(element)
  redis.call('VREM', KEYS[1], element)
  redis.call('HDEL', KEYS[2], element)
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 64)
for _, element in ipairs(expired) do
  forget(element)
  redis.call('ZREM', KEYS[3], element)
end
redis.call('VADD', KEYS[1], 'FP32', ARGV[2], ARGV[1], ARGV[6])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('HPEXPIRE', KEYS[2], ttl, 'FIELDS', 1, ARGV[1])
redis.call('ZADD', KEYS[3], now + ttl, ARGV[1])
local over = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[5])
if over > 0 then
  local oldest = redis.call('ZPOPMIN', KEYS[3], over)
  for i = 1, #oldest, 2 do
    forget(oldest[i])
  end
end
for i = 1, 3 do
  redis.call('PEXPIRE', KEYS[i], ttl)
end
return redis.call('ZCARD', KEYS[3])
"""

# KEYS: vectors, answers. ARGV: FP32 vector, candidates, minimum VSIM score.
# The nearest candidate with an answer still stored, if it scores at least the minimum; else the
# nearest one's score (for the miss's message) and, when it scored enough but its answer expired, a
# nil in third place; nothing when the set is empty.
_LOOKUP = """
local found = redis.call('VSIM', KEYS[1], 'FP32', ARGV[1], 'WITHSCORES', 'COUNT', ARGV[2])
local minimum = tonumber(ARGV[3])
for i = 1, #found, 2 do
  if not (tonumber(found[i + 1]) >= minimum) then  -- a NaN score is not enough either
    break
  end
  local payload = redis.call('HGET', KEYS[2], found[i])
  if payload then
    return {found[i], found[i + 1], payload}
  end
end
if #found == 0 then
  return {}
end
if tonumber(found[2]) >= minimum then
  return {found[1], found[2], false}
end
return {found[1], found[2]}
"""

_QUANTIZATION_FLAGS: dict[str, str] = {"q8": "Q8", "noquant": "NOQUANT", "bin": "BIN"}


class VectorSetsUnsupportedError(BreakerConfigError):
    """The Redis server has no Vector Sets (``VADD``, ``VSIM``): Redis 8 or later is needed."""


class SemanticCacheMiss(CacheMiss):
    """No stored question was similar enough (or none is stored).

    ``similarity`` is the nearest stored question's, or ``None`` when none is stored."""

    def __init__(self, message: str, similarity: float | None) -> None:
        super().__init__(message)
        self.similarity = similarity


@dataclass(frozen=True)
class SemanticHit:
    """What the semantic cache found for a question: the stored ``answer`` of the earlier
    ``question``, whose vector's cosine ``similarity`` to the asked one reached the minimum."""

    answer: Any
    question: str
    similarity: float


def sole_text_argument(*args: Any, **kwargs: Any) -> str:
    """The question of a call (SemanticCache's default): its only argument, a string, given
    positionally or by keyword (``ask(question)``). Any other call needs a ``question=``
    function: in ``create(model="gpt-4o-mini", messages=[...])`` the one string is the model's
    name, and a guess that took it for the question would store every answer under it and serve
    the last one to every question."""
    values = (*args, *kwargs.values())
    if len(values) == 1 and isinstance(values[0], str):
        return values[0]
    raise BreakerConfigError(
        "question",
        f"the call has {len(values)} arguments, not one string: which is the question cannot be told; "
        "give SemanticCache a question= function",
    )


def first_text_argument(*args: Any, **kwargs: Any) -> str:
    """The question of a call: its first positional argument that is a string (for calls whose
    question comes first, ahead of other strings; pass it as ``question=``)."""
    for value in args:
        if isinstance(value, str):
            return value
    raise BreakerConfigError("question", "the call has no string argument: give SemanticCache a question= function")


def _served_as_is(hit: SemanticHit) -> Any:
    return hit.answer


def question_id(question: str) -> str:
    """The element a question is stored as: the same text, whatever its spacing and case, is
    stored once (a later answer replaces the earlier)."""
    return hashlib.sha256(" ".join(question.casefold().split()).encode()).hexdigest()[:32]


class SemanticCache(FallbackStep):
    """Serve the stored answer of the most similar earlier question (Redis 8 Vector Sets).

    ``client`` is a ``redis.asyncio.Redis`` (for ``acall``) or a ``redis.Redis`` (for ``call``).
    Its calls go through ``breaker``, classified with the Redis preset; a ``ProtectedRedis``
    client already goes through its own breaker, which is then used (give no ``breaker``).

    ``question`` maps the call's arguments to the question's text (by default the call's only
    argument, a string: any other call needs one); ``present`` maps a :class:`SemanticHit` to the
    value served (by default the stored answer as is: give one that marks the answer, so that
    users can be told). Answers are
    stored with ``dumps`` and read with ``loads`` (JSON by default), for ``ttl`` seconds, at
    most ``max_entries`` of them (the oldest go first). A question longer than
    ``max_question_chars`` is neither stored nor served: embedding it would hold the event loop
    (a megabyte of text takes the built-in embedder most of a second).

    Call :meth:`acheck` (or :meth:`check`) at startup: it raises
    :class:`VectorSetsUnsupportedError` on a Redis without Vector Sets (7.x), instead of a failed
    step in the middle of an outage.
    """

    type = FallbackType.SEMANTIC_CACHE

    def __init__(
        self,
        client: Any,
        *,
        breaker: CircuitBreaker | None = None,
        embedder: Embedder | None = None,
        min_similarity: float = DEFAULT_MIN_SIMILARITY,
        question: Callable[..., str] = sole_text_argument,
        present: Callable[[SemanticHit], Any] = _served_as_is,
        ttl: float = 3600.0,
        max_entries: int = 10_000,
        max_question_chars: int = 10_000,
        prefix: str = "breakerpanel:semantic",
        dumps: Callable[[Any], str] = json.dumps,
        loads: Callable[[str], Any] = json.loads,
        quantization: Quantization = "q8",
        candidates: int = 4,
        name: str = "semantic_cache",
    ) -> None:
        if breaker is None:
            breaker = getattr(client, "breaker", None)
            if not isinstance(breaker, CircuitBreaker):
                raise BreakerConfigError(
                    "breaker", "SemanticCache's Redis calls need a breaker: pass breaker=, or a ProtectedRedis client"
                )
            self._guard: CircuitBreaker | None = None  # the client's commands already go through it
        elif isinstance(breaker, CircuitBreaker):
            self._guard = breaker
        else:
            raise BreakerConfigError("breaker", f"expected a CircuitBreaker (got {breaker!r})")
        embedder = HashingEmbedder() if embedder is None else embedder
        if not isinstance(embedder, Embedder):
            raise BreakerConfigError("embedder", f"expected an Embedder: dimensions and embed(text) (got {embedder!r})")
        if not (isinstance(min_similarity, int | float) and -1.0 <= min_similarity <= 1.0):
            raise BreakerConfigError("min_similarity", f"must be a cosine in [-1, 1] (got {min_similarity!r})")
        if not (isinstance(ttl, int | float) and not isinstance(ttl, bool) and 0.001 <= ttl < math.inf):
            # Each answer expires (HPEXPIRE takes milliseconds): infinity has no such form.
            raise BreakerConfigError("ttl", f"must be a finite number of seconds, at least 1 ms (got {ttl!r})")
        for field, value in (
            ("max_entries", max_entries),
            ("candidates", candidates),
            ("max_question_chars", max_question_chars),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BreakerConfigError(field, f"must be a whole number >= 1 (got {value!r})")
        if quantization not in _QUANTIZATION_FLAGS:
            raise BreakerConfigError("quantization", f"one of {sorted(_QUANTIZATION_FLAGS)} (got {quantization!r})")
        self.client = client
        self.breaker = breaker
        self.embedder = embedder
        self.min_similarity = float(min_similarity)
        self.question = question
        self.present = present
        self.ttl = float(ttl)
        self.max_entries = max_entries
        self.max_question_chars = max_question_chars
        self.dumps = dumps
        self.loads = loads
        self.quantization: Quantization = quantization
        self.candidates = candidates
        self.name = name
        self.keys = (f"{prefix}:{{{name}}}:vectors", f"{prefix}:{{{name}}}:answers", f"{prefix}:{{{name}}}:expiry")
        self.is_async = inspect.iscoroutinefunction(getattr(client, "execute_command", None))
        self._classifier: Classifier = redis_errors()
        self._remember_script = client.register_script(_REMEMBER)
        self._lookup_script = client.register_script(_LOOKUP)

    @classmethod
    def from_url(cls, url: str, *, breaker: CircuitBreaker, timeout: float = 0.5, **options: Any) -> SemanticCache:
        """A cache on a new ``redis.asyncio`` client for ``url``, without redis-py's retries (the
        breaker decides) and with ``timeout`` seconds to connect and per command. Needs the
        ``redis`` extra."""
        try:
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
        except ImportError as exc:
            raise BreakerConfigError(
                "semantic_cache", "SemanticCache needs the redis package: pip install 'breakerpanel[redis]'"
            ) from exc
        no_retries = Retry(NoBackoff(), 0)
        client = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=no_retries)
        return cls(client, breaker=breaker, **options)

    # ------------------------------------------------------------------ startup check

    async def acheck(self) -> None:
        """Raise :class:`VectorSetsUnsupportedError` unless the server has Vector Sets, and
        :class:`~breakerpanel.BreakerConfigError` when the stored vectors have other dimensions
        than the embedder's. Redis errors (down, unreachable) are raised as they come."""
        self._require_async()
        try:
            stored = await self._acall(self.client.execute_command, "VCARD", self.keys[0])
        except Exception as exc:
            if not _unknown_command(exc):
                raise
            info = await self._acall(self.client.info, "server")
            raise self._unsupported(info) from exc
        if stored:
            self._check_dimensions(await self._acall(self.client.execute_command, "VDIM", self.keys[0]))

    def check(self) -> None:
        """Sync variant of :meth:`acheck` (for a ``redis.Redis`` client)."""
        self._require_sync()
        try:
            stored = self._call(self.client.execute_command, "VCARD", self.keys[0])
        except Exception as exc:
            if not _unknown_command(exc):
                raise
            raise self._unsupported(self._call(self.client.info, "server")) from exc
        if stored:
            self._check_dimensions(self._call(self.client.execute_command, "VDIM", self.keys[0]))

    def _unsupported(self, info: Any) -> VectorSetsUnsupportedError:
        version = info.get("redis_version", "unknown") if isinstance(info, dict) else "unknown"
        return VectorSetsUnsupportedError(
            "semantic_cache",
            f"the Redis server (version {version}) has no Vector Sets (VADD, VSIM): "
            "SemanticCache needs Redis 8 or later",
        )

    def _check_dimensions(self, stored: Any) -> None:
        if int(stored) != self.embedder.dimensions:
            raise BreakerConfigError(
                "embedder",
                f"{self.keys[0]} holds {int(stored)}-dimension vectors but the embedder makes "
                f"{self.embedder.dimensions}: use another prefix or name, or delete the key",
            )

    # ------------------------------------------------------------------ store and look up

    async def astore(self, question: str, answer: Any) -> None:
        """Store ``answer`` as the answer to ``question`` (not when the question has nothing to
        compare: see :meth:`alookup`)."""
        self._require_async()
        vector = self._vector(question)
        if vector is not None:
            keys, args = self._remember_call(question, vector, answer)
            await self._acall(self._remember_script, keys=keys, args=args)

    def store(self, question: str, answer: Any) -> None:
        """Sync variant of :meth:`astore`."""
        self._require_sync()
        vector = self._vector(question)
        if vector is not None:
            keys, args = self._remember_call(question, vector, answer)
            self._call(self._remember_script, keys=keys, args=args)

    async def alookup(self, question: str) -> SemanticHit:
        """The stored answer of the question nearest to ``question``; raises
        :class:`SemanticCacheMiss` when none reaches ``min_similarity``, or when the question has
        nothing to compare (its vector is all zeros: no words, for the :class:`HashingEmbedder`)."""
        self._require_async()
        keys, args = self._lookup_call(self._vector_to_compare(question))
        return self._hit(await self._acall(self._lookup_script, keys=keys, args=args))

    def lookup(self, question: str) -> SemanticHit:
        """Sync variant of :meth:`alookup`."""
        self._require_sync()
        keys, args = self._lookup_call(self._vector_to_compare(question))
        return self._hit(self._call(self._lookup_script, keys=keys, args=args))

    def _remember_call(self, question: str, vector: bytes, answer: Any) -> tuple[list[str], list[Any]]:
        payload = json.dumps({"question": question, "answer": self.dumps(answer)}, separators=(",", ":"))
        flag = _QUANTIZATION_FLAGS[self.quantization]
        ttl_ms = max(1, round(self.ttl * 1000))
        return list(self.keys), [question_id(question), vector, payload, ttl_ms, self.max_entries, flag]

    def _lookup_call(self, vector: bytes) -> tuple[list[str], list[Any]]:
        # VSIM scores are (1 + cosine) / 2: 1 for the same direction, 0 for the opposite.
        minimum = (1.0 + self.min_similarity) / 2.0
        return list(self.keys[:2]), [vector, self.candidates, repr(minimum)]

    def _vector_to_compare(self, question: str) -> bytes:
        vector = self._vector(question)
        if vector is None:
            raise SemanticCacheMiss(
                f"the question has nothing to compare (no words), or over {self.max_question_chars} characters",
                None,
            )
        return vector

    def _vector(self, question: str) -> bytes | None:
        """The question's vector as Redis takes it, or None when it is all zeros (a direction
        that no cosine can be measured against: two questions without words would otherwise
        share any one vector and match each other exactly) or the question is too long."""
        if len(question) > self.max_question_chars:
            return None
        vector = self.embedder.embed(question)
        dimensions = self.embedder.dimensions
        if len(vector) != dimensions:
            raise BreakerConfigError("embedder", f"returned {len(vector)} values, not its {dimensions} dimensions")
        magnitude = sum(map(abs, vector))  # NaN or infinite if any value is
        if not math.isfinite(magnitude):
            # A NaN scores NaN against every vector, which no threshold refuses.
            raise BreakerConfigError("embedder", "returned a vector holding NaN or an infinite value")
        if magnitude == 0:
            return None
        return struct.pack(f"<{dimensions}f", *vector)

    def _hit(self, reply: Sequence[Any]) -> SemanticHit:
        if not reply:
            raise SemanticCacheMiss("the semantic cache is empty", None)
        similarity = 2.0 * float(reply[1]) - 1.0
        if len(reply) < 3:
            raise SemanticCacheMiss(
                f"no stored question similar enough (nearest {similarity:.3f} < {self.min_similarity:g})", similarity
            )
        if reply[2] is None:
            raise SemanticCacheMiss(
                f"the answers of the similar questions expired (nearest {similarity:.3f})", similarity
            )
        stored = json.loads(reply[2])
        return SemanticHit(answer=self.loads(stored["answer"]), question=stored["question"], similarity=similarity)

    # ------------------------------------------------------------------ the fallback step

    @property
    def answers_by_arguments(self) -> bool:  # type: ignore[override]
        return self.question is sole_text_argument or self.question is first_text_argument

    async def aserve(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self.present(await self.alookup(self.question(*args, **kwargs)))

    def serve(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self.present(self.lookup(self.question(*args, **kwargs)))

    async def aremember(self, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        await self.astore(self.question(*args, **kwargs), result)

    def remember(self, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        self.store(self.question(*args, **kwargs), result)

    # ------------------------------------------------------------------ Redis calls, guarded

    async def _acall(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        if self._guard is None:
            return await fn(*args, **kwargs)
        return await guarded(self._guard, self._classifier, True, fn, *args, **kwargs)

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._guard is None:
            return fn(*args, **kwargs)
        permit = self._guard.acquire()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            error = record_exception(permit, self._classifier, exc, True)
            if error is exc:
                raise
            raise error from exc
        permit.success()
        return result

    def _require_async(self) -> None:
        if not self.is_async:
            raise BreakerConfigError("client", f"{self!r} has a sync Redis client: use call() and the sync methods")

    def _require_sync(self) -> None:
        if self.is_async:
            raise BreakerConfigError("client", f"{self!r} has an asyncio Redis client: use acall() and the a* methods")

    def __repr__(self) -> str:
        return f"SemanticCache({self.name!r}, min_similarity={self.min_similarity:g}, embedder={self.embedder!r})"


def _unknown_command(exc: BaseException) -> bool:
    """Whether Redis refused a command it does not know (Redis 7 and ``VCARD``)."""
    return type(exc).__name__ == "ResponseError" and "unknown command" in str(exc).lower()
