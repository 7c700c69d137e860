"""Checks and conversions of GraphQL arguments every domain's resolvers share: ids, bounds, and input objects
validated by the REST body models (so both APIs refuse the same values with the same messages)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import strawberry
from pydantic import BaseModel, ValidationError
from strawberry.types.unset import UNSET

from headwater.api import parse_id, validation_message
from headwater.errors import InvalidInput

__all__ = ["as_filters", "bounded", "database_id", "is_set", "page_size", "validated"]

M = TypeVar("M", bound=BaseModel)
D = TypeVar("D")


def database_id(value: strawberry.ID, name: str) -> int:
    """A database id from a GraphQL ID argument."""
    return parse_id(str(value), name)


def bounded(value: int, low: int, high: int, name: str) -> int:
    """``value``, or InvalidInput naming the argument when it is outside ``low..high``."""
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}, got {value}", detail={"field": name})
    return value


def page_size(first: int, high: int) -> int:
    """The ``first`` argument of a list, checked."""
    return bounded(first, 1, high, "first")


def is_set(value: Any) -> bool:
    """Whether an input field was given (null included), as opposed to omitted."""
    return value is not UNSET


def as_filters(kind: type[D], given: Any) -> D:
    """The service's filter dataclass ``kind`` from a GraphQL filter input with the same field names."""
    return kind(**{f.name: getattr(given, f.name) for f in dataclasses.fields(kind)})  # type: ignore[arg-type]


def validated(model: type[M], data: dict[str, Any], name: str) -> M:
    """``data`` as the REST body model, or InvalidInput naming the first field at fault (``name.field``; the
    argument itself when ``name`` is empty)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors: list[dict[str, Any]] = [
            {**e, "loc": (*([name] if name else []), *_graphql_loc(e["loc"]))} for e in exc.errors()
        ]
        where = ".".join(str(p) for p in errors[0]["loc"])
        raise InvalidInput(validation_message(errors), detail={"field": where}) from None


def _graphql_loc(loc: tuple[int | str, ...]) -> list[str]:
    """A REST model's error location as GraphQL names it: field names in camelCase, a dict's keys (a dataset's
    field paths) as they are."""
    parts: list[str] = []
    for index, part in enumerate(loc):
        is_key = index > 0 and loc[index - 1] == "fields"
        head, *rest = str(part).split("_")
        if is_key:
            parts.append(str(part))
        elif part == "field_id":  # a field's source id, named sourceFieldId here (id is the catalog's)
            parts.append("sourceFieldId")
        else:
            parts.append(head + "".join(word.title() for word in rest))
    return parts
