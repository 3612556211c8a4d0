"""Reading request bodies into pydantic models, with the failure worded by the caller.

Each provider rejects a malformed body in its own format (OpenAI's ``param``, Anthropic's
``invalid_request_error``, Qdrant's ``status.error``), so parsing reports a neutral
:class:`BodyProblem` and lets the provider turn it into a response.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from .errors import UpstreamError

__all__ = ["BodyProblem", "parse_body"]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class BodyProblem:
    """Why a request body was rejected."""

    param: str | None
    """The offending field as a path such as ``messages[0].content``; None for the whole body."""
    message: str
    missing: bool
    """True when a required field is absent rather than wrong."""


async def parse_body(request: Request, model: type[M], *, reject: Callable[[BodyProblem], Response]) -> M:
    """The request's JSON body as ``model``; raises :class:`UpstreamError` with ``reject``'s answer."""
    raw = await request.body()
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise UpstreamError(reject(BodyProblem(None, f"The body is not valid JSON: {exc}", missing=False))) from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = _path(first["loc"])
        raise UpstreamError(
            reject(BodyProblem(param or None, first["msg"], missing=first["type"] == "missing"))
        ) from exc


_UNION_MEMBER_TAGS = frozenset({"str", "int", "float", "bool", "list", "dict"})


def _path(loc: tuple[int | str, ...]) -> str:
    """``loc`` as ``messages[0].content``, without the tags pydantic adds for union members."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not part.isidentifier():  # a union member such as "list[str]": what follows is no field
            break
        elif part not in _UNION_MEMBER_TAGS:
            path += f".{part}" if path else part
    return path
