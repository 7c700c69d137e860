"""Input types shared by the request models: fields a PATCH may omit but not null, and free-form JSON objects
that the database and every JSON client can hold.

* ``Omittable[T]``: a field of an update model that may be left out (it keeps its value) but not sent as
  ``null`` when the column cannot be empty: ``{"max_concurrent_jobs": null}`` is a 422 naming the field, not a
  NOT NULL violation (a 500) in the database. Nullable fields stay ``T | None`` and are set to null.
* ``JsonObject``: a free-form object (a source's or a cluster's ``config``, OpenLineage facets). Its numbers must
  be finite (``NaN`` and ``Infinity`` are not JSON; the JSON column stored them as null) and integers must lie
  within +-2**53, what JavaScript and most JSON parsers hold exactly (beyond 64 bits the server could not even
  encode them: a 500). Nesting is bounded too.

Details: docs/security/fuzz.md.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, TypeVar

from pydantic import MISSING, AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

__all__ = ["MAX_JSON_DEPTH", "MAX_JSON_INTEGER", "MISSING", "JsonObject", "Omittable", "check_json_value"]

# The largest integer a JSON number can carry everywhere: JavaScript's Number.MAX_SAFE_INTEGER + 1.
MAX_JSON_INTEGER = 2**53
MAX_JSON_DEPTH = 64

T = TypeVar("T")


def _refuse_null(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError("null_not_allowed", "cannot be null: omit the field to keep its current value")
    return value


# Left out: unchanged (pydantic's MISSING sentinel keeps it out of model_dump); null: refused with the field named.
Omittable = Annotated[T | MISSING, BeforeValidator(_refuse_null)]


def check_json_value(value: Any) -> Any:
    """``value`` unchanged when every number in it is finite and every integer within +-2**53 and it nests at most
    MAX_JSON_DEPTH deep; else ValueError naming the path of the first offending value."""
    if not _acceptable(value):
        _refuse(value)
    return value


_LEAVES = frozenset({str, bool, type(None)})


def _acceptable(value: Any) -> bool:
    """Whether ``value`` passes :func:`check_json_value`: one level at a time, no paths built.

    Every lineage event's facets go through this (issue 18: the walk that names paths cost half an event's CPU);
    the paths are worked out only for a value that fails."""
    level, depth = [value], 0
    while level:
        if depth > MAX_JSON_DEPTH:
            return False
        below: list[Any] = []
        for item in level:
            kind = type(item)
            if kind in _LEAVES:
                continue
            if kind is dict:
                below.extend(item.values())
            elif kind is list:
                below.extend(item)
            elif kind is int:
                if not -MAX_JSON_INTEGER <= item <= MAX_JSON_INTEGER:
                    return False
            elif kind is float:
                if not math.isfinite(item):
                    return False
            else:  # a subclass (or anything else): the careful walk decides
                return False
        level, depth = below, depth + 1
    return True


def _refuse(value: Any) -> None:
    """Raise ValueError naming the path of the first value :func:`check_json_value` refuses (none: return)."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"{path or 'the value'} nests deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        if isinstance(item, int):
            if not -MAX_JSON_INTEGER <= item <= MAX_JSON_INTEGER:
                raise ValueError(
                    f"{path or 'the value'}: the integer {str(item)[:30]}{'...' if len(str(item)) > 30 else ''} is "
                    f"outside +-2**53, which JSON clients cannot hold exactly; send it as a string"
                )
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(f"{path or 'the value'}: {item} is not a JSON number; send a finite number or null")
        elif isinstance(item, dict):
            stack.extend((v, f"{path}.{k}" if path else str(k), depth + 1) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(item))


JsonObject = Annotated[dict[str, Any], AfterValidator(check_json_value)]
