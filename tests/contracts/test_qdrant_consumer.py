"""Consumer side of ``demo-service`` -> ``qdrant-api``: what the demo's Qdrant calls need.

The demo talks to Qdrant's REST API with ``httpx`` (:class:`demo.service.vectors.VectorIndex`; it uses no
qdrant-client, so that the same calls work against the fake and the real server). Its calls, driven here in the
order the service makes them: seeding (:meth:`Seeder._seed_vectors`: ``ensure_collection`` then ``upsert``), which
creates a missing collection, keeps one of the right vector size and replaces one of another size; a search
(``nearest``); and the health probe (``GET /collections``). Verified against the fake upstreams in
``test_upstreams_provider.py``, where the provider states below set the fake's collections up.

From the answers, only what the demo reads: statuses (404 for a missing collection, 2xx otherwise), the
collection's vector size, and the points' ``payload`` (``doc_id``, ``title``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from pact import match

from .demo_clients import COLLECTION, EMBEDDING_DIM, demo_clients, example_vector
from .pactfiles import CommittedPact

LOOKUP_MISSING: Final = "the collection looked up when it does not exist"
CREATE: Final = "the collection created"
LOOKUP_SAME_SIZE: Final = "the collection looked up when its vectors have the embedding size"
LOOKUP_OTHER_SIZE: Final = "the collection looked up when its vectors have another size"
DELETE: Final = "the collection deleted to be created again with another size"
UPSERT: Final = "document vectors upserted"
QUERY: Final = "the nearest documents to a question's vector"
LIST: Final = "the collections listed, as a health probe"
PACT_FILE: Final = CommittedPact(
    "demo-service",
    "qdrant-api",
    (LOOKUP_MISSING, CREATE, LOOKUP_SAME_SIZE, LOOKUP_OTHER_SIZE, DELETE, UPSERT, QUERY, LIST),
)

# Provider states (see test_upstreams_provider.py), with parameters ``collection`` and ``size``.
NO_COLLECTION: Final = "there is no collection"
COLLECTION_OF_SIZE: Final = "the collection has vectors of the given size"
#: ... and ``documents``: ``[{"id", "title"}]``, stored with vectors of that size.
COLLECTION_WITH_DOCUMENTS: Final = "the collection holds documents"

PATH: Final = f"/collections/{COLLECTION}"
OTHER_SIZE: Final = 32
DOCUMENTS: Final = ({"id": 1, "title": "Circuit breakers"}, {"id": 2, "title": "Fallbacks"})


def _given(interaction: Any, state: str, **parameters: Any) -> Any:
    return interaction.given(state, {"collection": COLLECTION, **parameters})


def _lookup(pact: Any, description: str) -> Any:
    return pact.upon_receiving(description).with_request("GET", PATH)


def _collection_info(size: int) -> dict[str, Any]:
    # The demo reads result.config.params.vectors.size, to keep or replace the collection.
    return {"result": {"config": {"params": {"vectors": {"size": match.integer(size)}}}}}


def _define_create(pact: Any) -> None:
    (
        _given(pact.upon_receiving(CREATE), NO_COLLECTION)
        .with_request("PUT", PATH)
        .with_body(
            {"vectors": {"size": match.integer(EMBEDDING_DIM), "distance": "Cosine"}}, content_type="application/json"
        )
        .will_respond_with(200)
    )


def _define_upsert(pact: Any) -> None:
    points = [
        {
            "id": match.integer(d["id"]),
            "vector": match.like(example_vector(d["id"])),
            "payload": match.like(_payload(d)),
        }
        for d in DOCUMENTS
    ]
    (
        _given(pact.upon_receiving(UPSERT), COLLECTION_OF_SIZE, size=EMBEDDING_DIM)
        .with_request("PUT", f"{PATH}/points")
        # wait=true: the points are searchable once Qdrant answers (seeding is then done).
        .with_query_parameter("wait", "true")
        .with_body({"points": points}, content_type="application/json")
        .will_respond_with(200)
    )


def _payload(document: dict[str, Any]) -> dict[str, Any]:
    return {"doc_id": document["id"], "title": document["title"]}


async def _seed(base_url: str) -> None:
    """What :meth:`demo.service.seeding.Seeder._seed_vectors` does with Qdrant once the embeddings are in."""
    async with demo_clients(base_url) as clients:
        await clients.index.ensure_collection(EMBEDDING_DIM)
        await clients.index.upsert([(d["id"], example_vector(d["id"]), _payload(d)) for d in DOCUMENTS])


async def test_seeding_creates_a_missing_collection(tmp_path: Path) -> None:
    pact = PACT_FILE.new_pact()
    _given(_lookup(pact, LOOKUP_MISSING), NO_COLLECTION).will_respond_with(404)
    _define_create(pact)
    _define_upsert(pact)

    with pact.serve() as server:
        await _seed(str(server.url))

    PACT_FILE.check(pact, tmp_path / "written")


async def test_seeding_keeps_a_collection_of_the_embedding_size(tmp_path: Path) -> None:
    pact = PACT_FILE.new_pact()
    (
        _given(_lookup(pact, LOOKUP_SAME_SIZE), COLLECTION_OF_SIZE, size=EMBEDDING_DIM)
        .will_respond_with(200)
        .with_body(_collection_info(EMBEDDING_DIM), content_type="application/json")
    )
    _define_upsert(pact)

    with pact.serve() as server:
        await _seed(str(server.url))

    PACT_FILE.check(pact, tmp_path / "written")


async def test_seeding_replaces_a_collection_of_another_size(tmp_path: Path) -> None:
    pact = PACT_FILE.new_pact()
    (
        _given(_lookup(pact, LOOKUP_OTHER_SIZE), COLLECTION_OF_SIZE, size=OTHER_SIZE)
        .will_respond_with(200)
        .with_body(_collection_info(OTHER_SIZE), content_type="application/json")
    )
    _given(pact.upon_receiving(DELETE), COLLECTION_OF_SIZE, size=OTHER_SIZE).with_request(
        "DELETE", PATH
    ).will_respond_with(200)
    _define_create(pact)
    _define_upsert(pact)

    with pact.serve() as server:
        await _seed(str(server.url))

    PACT_FILE.check(pact, tmp_path / "written")


async def test_a_search_finds_the_nearest_documents(tmp_path: Path) -> None:
    pact = PACT_FILE.new_pact()
    (
        _given(pact.upon_receiving(QUERY), COLLECTION_WITH_DOCUMENTS, size=EMBEDDING_DIM, documents=list(DOCUMENTS))
        .with_request("POST", f"{PATH}/points/query")
        .with_body(
            {"query": match.like(example_vector(1)), "limit": match.integer(3), "with_payload": True},
            content_type="application/json",
        )
        .will_respond_with(200)
        .with_body(
            {"result": {"points": match.each_like({"payload": _typed_payload(DOCUMENTS[0])}, min=1)}},
            content_type="application/json",
        )
    )

    with pact.serve() as server:
        async with demo_clients(str(server.url)) as clients:
            sources = await clients.index.nearest(example_vector(1), 3)

    assert [(s.id, s.title) for s in sources] == [(DOCUMENTS[0]["id"], DOCUMENTS[0]["title"])]
    PACT_FILE.check(pact, tmp_path / "written")


def _typed_payload(document: dict[str, Any]) -> dict[str, Any]:
    return {"doc_id": match.integer(document["id"]), "title": match.like(document["title"])}


async def test_the_health_probe_lists_collections(tmp_path: Path) -> None:
    pact = PACT_FILE.new_pact()
    # The probe reads only the status (below 400).
    pact.upon_receiving(LIST).with_request("GET", "/collections").will_respond_with(200)

    with pact.serve() as server:
        async with demo_clients(str(server.url)) as clients:
            assert await clients.qdrant_probe()

    PACT_FILE.check(pact, tmp_path / "written")


def test_the_committed_pact_holds_every_interaction() -> None:
    PACT_FILE.check_complete()
