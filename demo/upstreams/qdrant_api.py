"""Fake Qdrant REST API: the collection and point routes a RAG service and qdrant-client use.

Answers are ``{"result": ..., "status": "ok", "time": seconds}`` and errors ``{"status":
{"error": message}, "time": seconds}`` with Qdrant's status codes (404 for a missing collection,
409 for one created twice, 400 for wrong input), so ``AsyncQdrantClient`` parses them into its own
models and raises its own exceptions. A collection has one unnamed dense vector; filters, named
vectors and prefetch are refused with a 400 rather than silently ignored.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, RootModel, StrictInt, StrictStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .errors import ErrorFormat, UpstreamError
from .parsing import BodyProblem, parse_body
from .qdrant_store import AlreadyExists, Collection, Distance, NotFound, PointId, Store, StoredPoint, WrongInput

__all__ = ["QDRANT_ERRORS", "QDRANT_VERSION", "qdrant_router"]

QDRANT_VERSION = "1.20.0"
"""The server version ``GET /`` reports, within the range qdrant-client 1.20 accepts."""


def qdrant_router(store: Store) -> APIRouter:
    """The routes, serving the collections in ``store``."""
    router = APIRouter()

    @router.get("/")
    async def root() -> Response:
        return JSONResponse({"title": "qdrant - vector search engine", "version": QDRANT_VERSION})

    @router.get("/collections")
    async def list_collections() -> Response:
        started = time.perf_counter()
        return _ok({"collections": [{"name": name} for name in store.collections]}, started)

    @router.get("/collections/{name}")
    async def get_collection(name: str) -> Response:
        started = time.perf_counter()
        return _ok(_info(_collection(store, name)), started)

    @router.put("/collections/{name}")
    async def create_collection(name: str, request: Request) -> Response:
        started = time.perf_counter()
        body = await parse_body(request, _CreateCollection, reject=_invalid_body)
        if not isinstance(body.vectors, _VectorParams):
            raise UpstreamError(
                _error(400, "Wrong input: this fake Qdrant supports one unnamed dense vector per collection")
            )
        try:
            store.create(name, size=body.vectors.size, distance=body.vectors.distance)
        except AlreadyExists as exc:
            raise UpstreamError(_error(409, str(exc))) from exc
        return _ok(True, started)

    @router.delete("/collections/{name}")
    async def delete_collection(name: str) -> Response:
        started = time.perf_counter()
        return _ok(store.delete(name), started)

    @router.get("/collections/{name}/exists")
    async def collection_exists(name: str) -> Response:
        started = time.perf_counter()
        return _ok({"exists": name in store.collections}, started)

    @router.put("/collections/{name}/points")
    async def upsert_points(name: str, request: Request) -> Response:
        started = time.perf_counter()
        wait = request.query_params.get("wait") == "true"
        collection = _collection(store, name)
        body = (await parse_body(request, _Upsert, reject=_invalid_body)).root
        if isinstance(body, _PointsList):
            points = [(p.id, p.vector, p.payload) for p in body.points]
        else:
            batch = body.batch
            if isinstance(batch.vectors, dict):
                raise _named_vectors(batch.vectors)
            payloads = batch.payloads if batch.payloads is not None else [None] * len(batch.ids)
            if not len(batch.ids) == len(batch.vectors) == len(payloads):
                raise UpstreamError(_error(400, "Wrong input: ids, vectors and payloads differ in length"))
            points = list(zip(batch.ids, batch.vectors, payloads, strict=True))
        operation = _write(collection, [(_point_id(i), _dense(v), p) for i, v, p in points])
        return _ok({"operation_id": operation, "status": "completed" if wait else "acknowledged"}, started)

    @router.post("/collections/{name}/points")
    async def retrieve_points(name: str, request: Request) -> Response:
        started = time.perf_counter()
        collection = _collection(store, name)
        body = await parse_body(request, _PointRequest, reject=_invalid_body)
        points = collection.retrieve([_point_id(i) for i in body.ids])
        return _ok([_record(p, body.with_payload, body.with_vector) for p in points], started)

    @router.post("/collections/{name}/points/search")
    async def search_points(name: str, request: Request) -> Response:
        started = time.perf_counter()
        collection = _collection(store, name)
        body = await parse_body(request, _SearchRequest, reject=_invalid_body)
        _refuse_filter(body.filter)
        if isinstance(body.vector, _NamedVector):
            _refuse_vector_name(body.vector.name)
            vector = body.vector.vector
        else:
            vector = body.vector
        hits = _nearest(collection, vector, body.limit, body.offset, body.score_threshold)
        return _ok([_scored(p, s, body.with_payload, body.with_vector) for p, s in hits], started)

    @router.post("/collections/{name}/points/query")
    async def query_points(name: str, request: Request) -> Response:
        started = time.perf_counter()
        collection = _collection(store, name)
        body = await parse_body(request, _QueryRequest, reject=_invalid_body)
        _refuse_filter(body.filter)
        if body.prefetch is not None:
            raise UpstreamError(_error(400, "Wrong input: this fake Qdrant does not support prefetch"))
        if body.using:
            _refuse_vector_name(body.using)
        if body.query is None:
            raise UpstreamError(_error(400, "Wrong input: this fake Qdrant needs a dense vector as the query"))
        vector = body.query.nearest if isinstance(body.query, _Nearest) else body.query
        hits = _nearest(collection, vector, body.limit, body.offset, body.score_threshold)
        points = [_scored(p, s, body.with_payload, body.with_vector) for p, s in hits]
        return _ok({"points": points}, started)

    return router


class _Request(BaseModel):
    """Request bodies: fields this fake does not use (consistency, shard keys) are ignored."""

    model_config = ConfigDict(extra="ignore")


class _VectorParams(_Request):
    size: int = Field(ge=1, le=65_536)
    distance: Distance


class _CreateCollection(_Request):
    vectors: _VectorParams | dict[str, _VectorParams] | None = None


class _PointStruct(_Request):
    id: StrictInt | StrictStr
    vector: list[float] | dict[str, Any]
    payload: dict[str, Any] | None = None


class _PointsList(_Request):
    points: list[_PointStruct]


class _Batch(_Request):
    ids: list[StrictInt | StrictStr]
    vectors: list[list[float]] | dict[str, Any]
    payloads: list[dict[str, Any] | None] | None = None


class _PointsBatch(_Request):
    batch: _Batch


class _Upsert(RootModel[_PointsList | _PointsBatch]):
    pass


class _PayloadSelector(_Request):
    include: list[str] | None = None
    exclude: list[str] | None = None


WithPayload = bool | list[str] | _PayloadSelector


class _PointRequest(_Request):
    ids: list[StrictInt | StrictStr]
    with_payload: WithPayload = True
    with_vector: bool = False


class _NamedVector(_Request):
    name: str
    vector: list[float]


class _SearchRequest(_Request):
    vector: list[float] | _NamedVector
    filter: dict[str, Any] | None = None
    limit: int = Field(ge=1)
    offset: int | None = Field(default=None, ge=0)
    with_payload: WithPayload = False
    with_vector: bool = False
    score_threshold: float | None = None


class _Nearest(_Request):
    nearest: list[float]


class _QueryRequest(_Request):
    query: list[float] | _Nearest | None = None
    using: str | None = None
    prefetch: Any = None
    filter: dict[str, Any] | None = None
    limit: int = Field(default=10, ge=1)
    offset: int | None = Field(default=None, ge=0)
    with_payload: WithPayload = False
    with_vector: bool = False
    score_threshold: float | None = None


def _collection(store: Store, name: str) -> Collection:
    try:
        return store.get(name)
    except NotFound as exc:
        raise UpstreamError(_error(404, str(exc))) from exc


def _write(collection: Collection, points: list[tuple[PointId, list[float], dict[str, Any] | None]]) -> int:
    try:
        return collection.upsert(points)
    except WrongInput as exc:
        raise UpstreamError(_error(400, str(exc))) from exc


def _nearest(
    collection: Collection, vector: list[float], limit: int, offset: int | None, score_threshold: float | None
) -> list[tuple[StoredPoint, float]]:
    try:
        return collection.nearest(vector, limit=limit, offset=offset or 0, score_threshold=score_threshold)
    except WrongInput as exc:
        raise UpstreamError(_error(400, str(exc))) from exc


def _point_id(value: int | str) -> PointId:
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise UpstreamError(
        _error(
            400,
            f"Format error in JSON body: value {value} is not a valid point ID, "
            "valid values are either an unsigned integer or a UUID",
        )
    )


def _dense(vector: list[float] | dict[str, Any]) -> list[float]:
    if isinstance(vector, dict):
        raise _named_vectors(vector)
    return vector


def _named_vectors(vectors: dict[str, Any]) -> UpstreamError:
    _refuse_vector_name(next(iter(vectors), ""))
    return UpstreamError(_error(400, "Wrong input: this fake Qdrant supports one unnamed dense vector"))


def _refuse_vector_name(name: str) -> None:
    if name:
        raise UpstreamError(_error(400, f"Wrong input: Not existing vector name error: {name}"))


def _refuse_filter(query_filter: dict[str, Any] | None) -> None:
    if query_filter is not None:
        raise UpstreamError(_error(400, "Wrong input: this fake Qdrant does not support filters"))


def _payload(point: StoredPoint, selector: WithPayload) -> dict[str, Any] | None:
    if selector is False:
        return None
    if selector is True:
        return point.payload
    if isinstance(selector, list):
        return {key: value for key, value in point.payload.items() if key in selector}
    if selector.include is not None:
        return {key: value for key, value in point.payload.items() if key in selector.include}
    excluded = selector.exclude or []
    return {key: value for key, value in point.payload.items() if key not in excluded}


def _record(point: StoredPoint, with_payload: WithPayload, with_vector: bool) -> dict[str, Any]:
    vector = point.vector if with_vector else None
    return {"id": point.id, "payload": _payload(point, with_payload), "vector": vector}


def _scored(point: StoredPoint, score: float, with_payload: WithPayload, with_vector: bool) -> dict[str, Any]:
    return {**_record(point, with_payload, with_vector), "version": point.version, "score": score}


def _info(collection: Collection) -> dict[str, Any]:
    """``CollectionInfo`` as Qdrant answers it, with the defaults of a fresh single-node collection."""
    params = {
        "vectors": {"size": collection.size, "distance": collection.distance.value},
        "shard_number": 1,
        "replication_factor": 1,
        "write_consistency_factor": 1,
        "on_disk_payload": True,
    }
    optimizer = {
        "deleted_threshold": 0.2,
        "vacuum_min_vector_number": 1000,
        "default_segment_number": 0,
        "max_segment_size": None,
        "memmap_threshold": None,
        "indexing_threshold": 10000,
        "flush_interval_sec": 5,
        "max_optimization_threads": None,
    }
    return {
        "status": "green",
        "optimizer_status": "ok",
        "indexed_vectors_count": 0,
        "points_count": len(collection.points),
        "segments_count": 1,
        "config": {
            "params": params,
            "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000, "on_disk": False},
            "optimizer_config": optimizer,
            "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0},
            "quantization_config": None,
            "strict_mode_config": {"enabled": False},
        },
        "payload_schema": {},
        "created_at": collection.created_at.isoformat(),
    }


def _ok(result: Any, started: float) -> JSONResponse:
    return JSONResponse({"result": result, "status": "ok", "time": time.perf_counter() - started})


def _error(status: int, message: str, *, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"status": {"error": message}, "time": 0.0}, status_code=status, headers=headers)


def _invalid_body(problem: BodyProblem) -> Response:
    where = f" at {problem.param}" if problem.param else ""
    return _error(400, f"Format error in JSON body: {problem.message}{where}")


def _server_error(status: int | None) -> Response:
    return _error(status or 500, "Service internal error: injected failure")


def _unavailable() -> Response:
    return _error(503, "Service unavailable: injected outage")


def _rate_limited(retry_after_s: float) -> Response:
    seconds = math.ceil(retry_after_s)
    return _error(
        429,
        f"Rate limiting exceeded: Read rate limit exceeded, retry after {seconds}s",
        headers={"retry-after": str(seconds)},  # qdrant-client parses an integer
    )


QDRANT_ERRORS = ErrorFormat(server_error=_server_error, unavailable=_unavailable, rate_limited=_rate_limited)
"""How fake Qdrant words injected failures."""
