"""The fake Qdrant REST API, driven by the real ``AsyncQdrantClient`` (which validates every answer)."""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import TypeAdapter
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.common.version_check import get_server_version, is_compatible
from qdrant_client.http.exceptions import UnexpectedResponse

from demo.upstreams import Chaos, ErrorRate, RateLimit, Upstream

DOCS: list[tuple[int | str, list[float], dict[str, str]]] = [
    (1, [1.0, 0.0, 0.0, 0.0], {"title": "breakers", "lang": "en"}),
    (2, [0.0, 1.0, 0.0, 0.0], {"title": "retries", "lang": "en"}),
    (str(uuid.UUID(int=3)), [0.7, 0.7, 0.0, 0.0], {"title": "both", "lang": "fr"}),
]


@pytest.fixture
async def docs(qdrant: AsyncQdrantClient) -> AsyncIterator[str]:
    """A cosine collection of three points with payloads; dropped afterwards."""
    name = f"docs-{uuid.uuid4().hex[:8]}"
    assert await qdrant.create_collection(
        name, vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE)
    )
    result = await qdrant.upsert(
        name, points=[models.PointStruct(id=i, vector=v, payload=p) for i, v, p in DOCS], wait=True
    )
    assert result.status == models.UpdateStatus.COMPLETED
    yield name
    await qdrant.delete_collection(name)


async def test_collections_are_listed_described_and_checked(qdrant: AsyncQdrantClient, docs: str) -> None:
    info = await qdrant.get_collection(docs)

    assert docs in [c.name for c in (await qdrant.get_collections()).collections]
    assert await qdrant.collection_exists(docs)
    assert not await qdrant.collection_exists("no-such-collection")
    assert info.status == models.CollectionStatus.GREEN
    assert info.points_count == 3
    assert info.config.params.vectors == models.VectorParams(size=4, distance=models.Distance.COSINE)


async def test_query_points_scores_by_cosine_with_payloads(qdrant: AsyncQdrantClient, docs: str) -> None:
    response = await qdrant.query_points(docs, query=[1.0, 0.1, 0.0, 0.0], limit=2)

    assert [point.id for point in response.points] == [1, str(uuid.UUID(int=3))]
    assert response.points[0].score == pytest.approx(1 / math.sqrt(1.01))
    assert response.points[0].payload == {"title": "breakers", "lang": "en"}
    assert response.points[0].vector is None
    assert response.points[0].version == 1


async def test_query_points_options(qdrant: AsyncQdrantClient, docs: str) -> None:
    nearest = await qdrant.query_points(
        docs,
        query=models.NearestQuery(nearest=[0.0, 2.0, 0.0, 0.0]),
        limit=5,
        offset=1,
        score_threshold=0.5,
        with_payload=["title"],
        with_vectors=True,
    )

    [point] = nearest.points  # "retries" scored 1.0 but was skipped by the offset; "breakers" scored 0
    assert point.payload == {"title": "both"}
    assert point.vector == pytest.approx([math.sqrt(0.5), math.sqrt(0.5), 0.0, 0.0])  # stored normalised


async def test_search_returns_scored_points(url: str, docs: str) -> None:
    # qdrant-client 1.20 dropped search(); RAG code on older clients or plain HTTP still calls it.
    body = {"vector": [0.0, 1.0, 0.0, 0.0], "limit": 2, "with_payload": True}
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{url}/collections/{docs}/points/search", json=body)

    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == "ok"
    assert answer["time"] >= 0
    points = TypeAdapter(list[models.ScoredPoint]).validate_python(answer["result"])
    assert [point.id for point in points] == [2, str(uuid.UUID(int=3))]
    assert points[0].payload == {"title": "retries", "lang": "en"}


async def test_retrieve_by_ids_skips_unknown_ones(qdrant: AsyncQdrantClient, docs: str) -> None:
    records = await qdrant.retrieve(docs, ids=[2, 99, 1], with_vectors=True)

    assert [record.id for record in records] == [2, 1]
    assert records[0].payload == {"title": "retries", "lang": "en"}
    assert records[0].vector == [0.0, 1.0, 0.0, 0.0]


async def test_upsert_overwrites_and_accepts_batches(qdrant: AsyncQdrantClient, docs: str) -> None:
    result = await qdrant.upsert(
        docs,
        points=models.Batch(ids=[1, 4], vectors=[[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]], payloads=[{"v": 2}, {}]),
        wait=False,
    )
    [record] = await qdrant.retrieve(docs, ids=[1])

    assert result.status == models.UpdateStatus.ACKNOWLEDGED
    assert result.operation_id == 2
    assert record.payload == {"v": 2}
    assert (await qdrant.get_collection(docs)).points_count == 4


@pytest.mark.parametrize("distance", [models.Distance.DOT, models.Distance.EUCLID, models.Distance.MANHATTAN])
async def test_other_distances_rank_nearest_first(qdrant: AsyncQdrantClient, distance: models.Distance) -> None:
    name = f"distance-{distance.value.lower()}"
    await qdrant.create_collection(name, vectors_config=models.VectorParams(size=2, distance=distance))
    await qdrant.upsert(
        name,
        points=[
            models.PointStruct(id=1, vector=[1.0, 0.0]),
            models.PointStruct(id=2, vector=[-1.0, 0.0]),
            models.PointStruct(id=3, vector=[0.5, 0.5]),
        ],
    )
    response = await qdrant.query_points(name, query=[1.0, 0.0], limit=2)
    await qdrant.delete_collection(name)

    assert [point.id for point in response.points] == [1, 3]


async def test_missing_collection_is_404(qdrant: AsyncQdrantClient) -> None:
    with pytest.raises(UnexpectedResponse) as caught:
        await qdrant.get_collection("no-such-collection")

    assert caught.value.status_code == 404
    assert caught.value.structured()["status"] == {"error": "Not found: Collection `no-such-collection` doesn't exist!"}
    with pytest.raises(UnexpectedResponse) as caught_query:
        await qdrant.query_points("no-such-collection", query=[1.0])
    assert caught_query.value.status_code == 404


async def test_creating_a_collection_twice_is_409(qdrant: AsyncQdrantClient, docs: str) -> None:
    with pytest.raises(UnexpectedResponse) as caught:
        await qdrant.create_collection(docs, vectors_config=models.VectorParams(size=4, distance=models.Distance.DOT))

    assert caught.value.status_code == 409
    assert "already exists" in caught.value.structured()["status"]["error"]


async def test_wrong_input_is_400(qdrant: AsyncQdrantClient, docs: str) -> None:
    with pytest.raises(UnexpectedResponse) as wrong_size:
        await qdrant.upsert(docs, points=[models.PointStruct(id=9, vector=[1.0, 2.0])])
    with pytest.raises(UnexpectedResponse) as wrong_id:
        await qdrant.upsert(docs, points=[models.PointStruct(id="not-a-uuid", vector=[1.0, 0.0, 0.0, 0.0])])
    with pytest.raises(UnexpectedResponse) as with_filter:
        await qdrant.query_points(
            docs,
            query=[1.0, 0.0, 0.0, 0.0],
            query_filter=models.Filter(must=[models.FieldCondition(key="lang", match=models.MatchValue(value="en"))]),
        )

    assert wrong_size.value.status_code == 400
    assert "expected dim: 4, got 2" in wrong_size.value.structured()["status"]["error"]
    assert wrong_id.value.status_code == 400
    assert with_filter.value.status_code == 400
    assert "filters" in with_filter.value.structured()["status"]["error"]


async def test_delete_collection_says_whether_there_was_one(qdrant: AsyncQdrantClient) -> None:
    await qdrant.create_collection(
        "short-lived", vectors_config=models.VectorParams(size=2, distance=models.Distance.COSINE)
    )

    assert await qdrant.delete_collection("short-lived")
    assert not await qdrant.delete_collection("short-lived")


async def test_root_reports_a_version_the_client_accepts(url: str, qdrant: AsyncQdrantClient) -> None:
    version = get_server_version(url, {}, None, 5)

    assert (await qdrant.info()).version == version
    assert is_compatible("1.20.0", version)


async def test_error_rate_is_a_500(qdrant: AsyncQdrantClient, chaos: Chaos) -> None:
    chaos.set(Upstream.QDRANT, ErrorRate(rate=1.0))

    with pytest.raises(UnexpectedResponse) as caught:
        await qdrant.get_collections()

    assert caught.value.status_code == 500
    assert caught.value.structured()["status"]["error"].startswith("Service internal error")


async def test_rate_limit_is_resource_exhausted_with_retry_after(qdrant: AsyncQdrantClient, chaos: Chaos) -> None:
    chaos.set(Upstream.QDRANT, RateLimit(retry_after_s=0.2))

    with pytest.raises(ResourceExhaustedResponse) as caught:
        await qdrant.get_collections()

    assert caught.value.retry_after_s == 1  # whole seconds: the client parses Retry-After as an integer
