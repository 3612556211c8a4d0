"""The parts that need no server: chaos state on a manual clock, the echo model, embeddings, routing."""

from __future__ import annotations

import math

import pytest

from demo.upstreams import Chaos, ErrorRate, Latency, Outage, Upstream, create_app
from demo.upstreams.app import upstream_for_path
from demo.upstreams.echo import complete
from demo.upstreams.vectors import embed


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_fault_expires_exactly_after_for_s() -> None:
    clock = Clock()
    chaos = Chaos(clock=clock)
    chaos.set(Upstream.QDRANT, Latency(seconds=1, for_s=10))

    clock.now = 109.5
    assert chaos.state(Upstream.QDRANT).expires_in_s == pytest.approx(0.5)
    with chaos.admit(Upstream.QDRANT) as fault:
        assert fault == Latency(seconds=1, for_s=10)
    clock.now = 110.0
    with chaos.admit(Upstream.QDRANT) as fault:
        assert fault is None
    assert chaos.state(Upstream.QDRANT).fault is None


def test_admit_counts_requests_failures_and_in_flight() -> None:
    chaos = Chaos()
    chaos.set(Upstream.OPENAI, Outage())

    with chaos.admit(Upstream.OPENAI):
        assert chaos.state(Upstream.OPENAI).in_flight == 1
    with chaos.admit(Upstream.ANTHROPIC):
        pass

    openai_state = chaos.state(Upstream.OPENAI)
    assert (openai_state.requests, openai_state.failed, openai_state.in_flight) == (1, 1, 0)
    assert chaos.state(Upstream.ANTHROPIC).failed == 0


def _draws(chaos: Chaos, upstream: Upstream, n: int = 100) -> list[bool]:
    picked = []
    for _ in range(n):
        with chaos.admit(upstream) as fault:
            picked.append(fault is not None)
    return picked


def _half_failing(seed: int) -> Chaos:
    chaos = Chaos(seed=seed)
    for upstream in Upstream:
        chaos.set(upstream, ErrorRate(rate=0.5))
    return chaos


def test_error_rate_draws_depend_on_the_seed_and_the_upstream_only() -> None:
    busy = _half_failing(1)
    _draws(busy, Upstream.ANTHROPIC)  # traffic to one upstream does not shift another's draws

    assert _draws(busy, Upstream.OPENAI) == _draws(_half_failing(1), Upstream.OPENAI)
    assert _draws(_half_failing(1), Upstream.OPENAI) != _draws(_half_failing(2), Upstream.OPENAI)
    assert _draws(_half_failing(1), Upstream.OPENAI) != _draws(_half_failing(1), Upstream.QDRANT)


def test_reset_keeps_requests_in_flight() -> None:
    chaos = Chaos()
    with chaos.admit(Upstream.OPENAI):
        chaos.reset()
        assert chaos.state(Upstream.OPENAI).requests == 0
        assert chaos.state(Upstream.OPENAI).in_flight == 1
    assert chaos.state(Upstream.OPENAI).in_flight == 0


def test_the_echo_names_provider_and_model_and_respects_max_tokens() -> None:
    full = complete(provider="openai", model="m", question=" hi there ", prompt="hi there", max_tokens=None)
    cut = complete(provider="openai", model="m", question="hi there", prompt="hi there", max_tokens=2)

    assert full.text == "openai/m echoes: hi there"
    assert full.pieces == ("openai/m ", "echoes: ", "hi ", "there")
    assert not full.truncated
    assert full.prompt_tokens == 2
    assert cut.text == "openai/m echoes: "
    assert cut.truncated
    assert cut.completion_tokens == 2


@pytest.mark.parametrize("dim", [1, 3, 64, 1536])
def test_embeddings_are_unit_vectors_of_the_asked_size(dim: int) -> None:
    for text in ["a", "the same words", "!!!", "x" * 10_000]:
        vector = embed(text, dim)
        assert len(vector) == dim
        assert math.fsum(x * x for x in vector) == pytest.approx(1.0)
        assert embed(text, dim) == vector


@pytest.mark.parametrize(
    ("path", "upstream"),
    [
        ("/v1/chat/completions", Upstream.OPENAI),
        ("/v1/embeddings", Upstream.OPENAI),
        ("/v1/models", Upstream.OPENAI),
        ("/v1/messages", Upstream.ANTHROPIC),
        ("/", Upstream.QDRANT),
        ("/collections", Upstream.QDRANT),
        ("/collections/docs/points/query", Upstream.QDRANT),
        ("/chaos", None),
        ("/chaos/openai", None),
        ("/docs", None),
        ("/collectionsx", None),
    ],
)
def test_paths_map_to_their_upstream(path: str, upstream: Upstream | None) -> None:
    assert upstream_for_path(path) is upstream


def test_create_app_refuses_sizes_below_one() -> None:
    with pytest.raises(ValueError, match="positive"):
        create_app(embedding_dim=0)
    with pytest.raises(ValueError, match="positive"):
        create_app(max_prompt_chars=0)


def test_latency_with_a_rate_delays_a_seeded_share_and_fails_nothing() -> None:
    """A few slow calls (the soak's background): the draws are seeded like error_rate's, and a
    delayed request is not a failed one."""
    chaos = Chaos(seed=3)
    chaos.set(Upstream.QDRANT, Latency(seconds=1.5, rate=0.1))
    first = _draws(chaos, Upstream.QDRANT, 400)
    chaos.set(Upstream.QDRANT, Latency(seconds=1.5, rate=0.1))
    assert _draws(chaos, Upstream.QDRANT, 400) == first
    assert 0.05 < sum(first) / len(first) < 0.15
    assert chaos.state(Upstream.QDRANT).failed == 0
    chaos.set(Upstream.QDRANT, Latency(seconds=1.5))  # no rate: every request waits
    assert all(_draws(chaos, Upstream.QDRANT, 20))
