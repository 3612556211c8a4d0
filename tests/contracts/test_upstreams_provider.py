"""Provider side of ``demo-service`` -> ``openai-api``, ``anthropic-api`` and ``qdrant-api``: the fake upstreams
(``demo/upstreams``) honour the committed pacts.

One fake serves all three APIs (the session's ``upstream_server``, from ``tests/conftest.py``), but the demo
depends on three services, which in production are three providers with their own releases: one pact each, so a
change to one provider's contract reads as such, and each is verified against the fake on its own.

Provider states (Qdrant only) are set up through the fake's own REST API, as any Qdrant client would: delete the
collection, create it with a vector size, upsert documents. Every interaction starts with no fault injected
(``Chaos.reset``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest
from pact import Verifier

from demo.upstreams import Chaos, UpstreamServer

from . import test_anthropic_consumer, test_openai_consumer, test_qdrant_consumer
from .demo_clients import example_vector
from .pactfiles import CommittedPact
from .states import ProviderStates, StateHandler
from .test_qdrant_consumer import COLLECTION_OF_SIZE, COLLECTION_WITH_DOCUMENTS, NO_COLLECTION
from .verification import verify_committed


@pytest.fixture
def qdrant(upstream_server: UpstreamServer) -> Iterator[httpx.Client]:
    """A client of the fake's Qdrant API, to set provider states up."""
    with httpx.Client(base_url=upstream_server.url, timeout=10, trust_env=False) as client:
        yield client


def _qdrant_states(qdrant: httpx.Client) -> dict[str, StateHandler]:
    def no_collection(parameters: Mapping[str, Any]) -> None:
        response = qdrant.delete(f"/collections/{parameters['collection']}")
        if response.status_code != 404:
            response.raise_for_status()

    def collection_of_size(parameters: Mapping[str, Any]) -> None:
        no_collection(parameters)
        body = {"vectors": {"size": int(parameters["size"]), "distance": "Cosine"}}
        qdrant.put(f"/collections/{parameters['collection']}", json=body).raise_for_status()

    def collection_with_documents(parameters: Mapping[str, Any]) -> None:
        collection_of_size(parameters)
        points = [
            {
                "id": document["id"],
                "vector": example_vector(document["id"], int(parameters["size"])),
                "payload": {"doc_id": document["id"], "title": document["title"]},
            }
            for document in parameters["documents"]
        ]
        response = qdrant.put(f"/collections/{parameters['collection']}/points?wait=true", json={"points": points})
        response.raise_for_status()

    return {
        NO_COLLECTION: no_collection,
        COLLECTION_OF_SIZE: collection_of_size,
        COLLECTION_WITH_DOCUMENTS: collection_with_documents,
    }


@pytest.mark.parametrize(
    "pact_file",
    [test_openai_consumer.PACT_FILE, test_anthropic_consumer.PACT_FILE, test_qdrant_consumer.PACT_FILE],
    ids=lambda pact_file: pact_file.provider,
)
def test_the_fake_upstreams_honour_the_demo_pacts(
    pact_file: CommittedPact, upstream_server: UpstreamServer, upstream_chaos: Chaos, qdrant: httpx.Client
) -> None:
    verifier = Verifier(pact_file.provider, host="127.0.0.1").add_transport(url=upstream_server.url)
    with ProviderStates(_qdrant_states(qdrant), before_each=upstream_chaos.reset) as states:
        verify_committed(verifier, pact_file, states)
    upstream_chaos.reset()
