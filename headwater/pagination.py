"""The one pagination helper every list endpoint uses: keyset (cursor) pagination over an allow-listed
sort key, with the primary key as the tiebreaker so the order is total and stable under inserts.

A cursor is opaque to clients: URL-safe base64 of a small JSON document naming the sort it belongs to
and the last row's key. A cursor from another sort, or one that does not decode, is an
:class:`~headwater.errors.InvalidInput` (400), never a 500.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from headwater.errors import InvalidInput

__all__ = ["MAX_PAGE_SIZE", "PageResult", "SortKey", "decode_cursor", "encode_cursor", "paginate"]

MAX_PAGE_SIZE = 500

T = TypeVar("T")


@dataclass(frozen=True)
class SortKey:
    """One allow-listed sort: a non-null column and the primary key that breaks ties."""

    column: InstrumentedAttribute[Any]
    pk: InstrumentedAttribute[Any]
    kind: str = "str"  # how the value is kept in a cursor: "str", "int" or "datetime"


@dataclass(frozen=True)
class PageResult(Generic[T]):
    """One page of rows, the cursor for the next page (None at the end) and the filtered total."""

    items: list[T]
    next_cursor: str | None
    total: int


def encode_cursor(sort: str, values: Sequence[Any]) -> str:
    """An opaque cursor for the position just after ``values`` under ``sort``."""
    raw = orjson.dumps({"s": sort, "k": [_dump(value) for value in values]})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> list[Any]:
    """The key stored in ``cursor``; raises InvalidInput naming the problem when it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        document = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (binascii.Error, UnicodeEncodeError, orjson.JSONDecodeError, ValueError) as exc:
        raise InvalidInput(
            f"cursor {cursor[:40]!r} is not a cursor this API issued; start again without one",
            detail={"field": "cursor"},
        ) from exc
    if not isinstance(document, dict) or not isinstance(document.get("k"), list):
        raise InvalidInput(f"cursor {cursor[:40]!r} is malformed", detail={"field": "cursor"})
    if document.get("s") != sort:
        raise InvalidInput(
            f"cursor was issued for sort {document.get('s')!r}, not {sort!r}; keep the same sort while paging",
            detail={"field": "cursor"},
        )
    return list(document["k"])


def _dump(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _load(value: Any, kind: str) -> Any:
    try:
        if kind == "datetime":
            return dt.datetime.fromisoformat(value)
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:
                raise TypeError(value)  # a cursor only ever holds a 64-bit key; anything else was made up
            return value
        if not isinstance(value, str) or "\x00" in value:
            raise TypeError(value)
        return value
    except (TypeError, ValueError) as exc:
        raise InvalidInput("cursor holds a value of the wrong type", detail={"field": "cursor"}) from exc


def paginate(
    session: Session,
    stmt: Select[Any],
    *,
    sorts: Mapping[str, SortKey],
    sort: str,
    cursor: str | None,
    limit: int,
    with_total: bool = True,
) -> PageResult[Any]:
    """Run ``stmt`` (a select of one entity) for one page ordered by ``sort`` (``-name`` = descending)."""
    descending = sort.startswith("-")
    key_name = sort.lstrip("-")
    if key_name not in sorts:
        allowed = ", ".join(sorted(sorts))
        raise InvalidInput(
            f"sort {sort!r} is not supported; use one of {allowed} (prefix '-' for descending)",
            detail={"field": "sort"},
        )
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}", detail={"field": "limit"})
    key = sorts[key_name]
    total = session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) if with_total else -1

    page_stmt = stmt
    if cursor:
        values = decode_cursor(cursor, sort)
        if len(values) != 2:
            raise InvalidInput(f"cursor {cursor[:40]!r} is malformed", detail={"field": "cursor"})
        last_value, last_pk = _load(values[0], key.kind), _load(values[1], "int")
        page_stmt = page_stmt.where(_after(key, last_value, last_pk, descending=descending))
    order = (key.column.desc(), key.pk.desc()) if descending else (key.column.asc(), key.pk.asc())
    rows = list(session.scalars(page_stmt.order_by(*order).limit(limit + 1)).unique())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(sort, [getattr(last, key.column.key), getattr(last, key.pk.key)])
    return PageResult(items=rows, next_cursor=next_cursor, total=total or 0)


def _after(key: SortKey, value: Any, pk: int, *, descending: bool) -> ColumnElement[bool]:
    # Spelled out instead of a row-value comparison so both SQLite and PostgreSQL use the index.
    if descending:
        return or_(key.column < value, and_(key.column == value, key.pk < pk))
    return or_(key.column > value, and_(key.column == value, key.pk > pk))
