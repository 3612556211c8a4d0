"""The ``answer`` feature's semantic-cache step: the answer of the most similar earlier question,
from the service's Redis when it is a Redis 8 (Vector Sets).

Built from the step's settings in ``breakers.yaml`` on the service's own Redis URL, through the
step's endpoint breaker (``redis.semantic``); answers are :class:`~demo.service.models.Answer`
objects as JSON, served marked ``served_by: semantic_cache``. Without a Redis URL the step is left
out. At startup :func:`check_semantic_steps` asks Redis whether it has Vector Sets: a Redis 7
gets the step taken out of its chain, with the reason logged once, instead of a step that would
fail in every outage.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from breakerpanel import BreakerConfigError, BreakerRegistry, SemanticCache, SemanticHit
from breakerpanel.config import SemanticCacheStep, import_object

from .models import Answer

__all__ = ["check_semantic_steps", "close_semantic_steps", "semantic_step"]

logger = logging.getLogger(__name__)


def _dumps(answer: Answer) -> str:
    return answer.model_dump_json()


def semantic_step(step: SemanticCacheStep, registry: BreakerRegistry, redis_url: str) -> SemanticCache | None:
    """The step for ``step`` on ``redis_url`` (None without a Redis: nothing to look up)."""
    if not redis_url:
        logger.info("fallback step %s left out: no DEMO_REDIS_URL (it needs a Redis 8)", step.name)
        return None
    # Short timeouts and no retries: the step runs while users wait for a degraded answer.
    client = Redis.from_url(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    options = {"question": import_object(step.question)} if step.question else {}
    return SemanticCache(
        client,
        breaker=registry[step.endpoint],
        min_similarity=step.min_similarity,
        ttl=step.ttl,
        max_entries=step.max_entries,
        max_question_chars=step.max_question_chars,
        present=import_object(step.present) if step.present else _marked,
        dumps=_dumps,
        loads=Answer.model_validate_json,
        prefix="breakerpanel-demo:semantic",
        name=step.name,
        **options,
    )


def _marked(hit: SemanticHit) -> Answer:
    """The earlier answer, marked as such: users are told it was not written for them."""
    answer = hit.answer
    assert isinstance(answer, Answer)  # what _dumps stored and Answer.model_validate_json read back
    return answer.model_copy(update={"served_by": "semantic_cache"})


def _steps(registry: BreakerRegistry) -> list[tuple[str, SemanticCache]]:
    return [
        (feature.name, step)
        for feature in registry.features()
        for step in feature.chain.steps
        if isinstance(step, SemanticCache)
    ]


async def check_semantic_steps(registry: BreakerRegistry) -> None:
    """Take out of their chains the semantic steps whose Redis cannot serve them (a Redis 7: no
    Vector Sets). A Redis that is down is left to the step's breaker: it may come back."""
    for feature_name, step in _steps(registry):
        try:
            await step.acheck()
        except BreakerConfigError as exc:  # VectorSetsUnsupportedError, or vectors of other dimensions
            logger.error("feature %s: fallback step %s taken out: %s", feature_name, step.name, exc)
            chain = registry.get_feature(feature_name).chain
            chain.steps = tuple(s for s in chain.steps if s is not step)
            await step.client.aclose()
        except Exception as exc:
            logger.warning(
                "feature %s: fallback step %s not checked (%s): Redis may be down", feature_name, step.name, exc
            )


async def close_semantic_steps(registry: BreakerRegistry) -> None:
    for _, step in _steps(registry):
        await step.client.aclose()
