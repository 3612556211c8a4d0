"""The fake Qdrant's in-memory collections: points with one dense vector each, scored exhaustively.

Enough of Qdrant's semantics for a RAG service and for qdrant-client to be unable to tell: cosine
collections store normalised vectors (as Qdrant does), similarity scores sort descending and
distances ascending, ``score_threshold`` cuts on the right side, and every write gets an
operation id that becomes the version of the points it wrote.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from .vectors import dot, normalize

__all__ = [
    "AlreadyExists",
    "Collection",
    "Distance",
    "NotFound",
    "PointId",
    "Store",
    "StoredPoint",
    "WrongInput",
]

PointId = int | str
"""An unsigned integer or a UUID in its canonical hyphenated form."""


class NotFound(LookupError):
    """A collection that does not exist."""


class AlreadyExists(ValueError):
    """A collection created twice."""


class WrongInput(ValueError):
    """A request Qdrant would refuse as ``Wrong input``, such as a vector of the wrong size."""


class Distance(StrEnum):
    COSINE = "Cosine"
    DOT = "Dot"
    EUCLID = "Euclid"
    MANHATTAN = "Manhattan"


@dataclass
class StoredPoint:
    id: PointId
    vector: list[float]
    payload: dict[str, Any]
    version: int


@dataclass
class Collection:
    name: str
    size: int
    distance: Distance
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    points: dict[PointId, StoredPoint] = field(default_factory=dict)
    last_operation: int = 0

    def upsert(self, points: Sequence[tuple[PointId, list[float], dict[str, Any] | None]]) -> int:
        """Insert or overwrite ``points`` (id, vector, payload) as one operation; returns its id."""
        for _, vector, _ in points:
            self._check_size(vector)
        self.last_operation += 1
        for point_id, vector, payload in points:
            stored = normalize(vector) if self.distance is Distance.COSINE else list(vector)
            self.points[point_id] = StoredPoint(point_id, stored, payload or {}, self.last_operation)
        return self.last_operation

    def retrieve(self, ids: Sequence[PointId]) -> list[StoredPoint]:
        """The points with these ids, in the order asked, skipping unknown ids as Qdrant does."""
        return [self.points[point_id] for point_id in ids if point_id in self.points]

    def nearest(
        self, vector: list[float], *, limit: int, offset: int = 0, score_threshold: float | None = None
    ) -> list[tuple[StoredPoint, float]]:
        """The points closest to ``vector`` with their scores, best first."""
        self._check_size(vector)
        query = normalize(vector) if self.distance is Distance.COSINE else vector
        scored = [(point, self._score(query, point.vector)) for point in self.points.values()]
        similarity = self.distance in (Distance.COSINE, Distance.DOT)
        if score_threshold is not None:
            scored = [(p, s) for p, s in scored if (s >= score_threshold if similarity else s <= score_threshold)]
        scored.sort(key=lambda item: -item[1] if similarity else item[1])
        return scored[offset : offset + limit]

    def _score(self, query: list[float], stored: list[float]) -> float:
        if self.distance in (Distance.COSINE, Distance.DOT):
            return dot(query, stored)
        if self.distance is Distance.EUCLID:
            return math.dist(query, stored)
        return math.fsum(abs(a - b) for a, b in zip(query, stored, strict=True))

    def _check_size(self, vector: Sequence[float]) -> None:
        if len(vector) != self.size:
            raise WrongInput(f"Wrong input: Vector dimension error: expected dim: {self.size}, got {len(vector)}")


@dataclass
class Store:
    """All collections, by name."""

    collections: dict[str, Collection] = field(default_factory=dict)

    def create(self, name: str, *, size: int, distance: Distance) -> Collection:
        if name in self.collections:
            raise AlreadyExists(f"Wrong input: Collection `{name}` already exists!")
        collection = self.collections[name] = Collection(name, size, distance)
        return collection

    def get(self, name: str) -> Collection:
        try:
            return self.collections[name]
        except KeyError:
            raise NotFound(f"Not found: Collection `{name}` doesn't exist!") from None

    def delete(self, name: str) -> bool:
        """Drop a collection; False when there was none."""
        return self.collections.pop(name, None) is not None
