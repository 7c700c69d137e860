"""The page every list endpoint answers, ``Page[T]``, and the cursor and page-size parameters that ask for one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from headwater.pagination import COUNT_HELP, MAX_PAGE_SIZE, PageResult

__all__ = ["CountParam", "Cursor", "Limit", "Page", "Sort", "page_of"]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

Cursor = Annotated[str | None, Query(max_length=2048, description="`next_cursor` of the previous page.")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")]
Sort = Annotated[str, Query(max_length=32)]
# A plain string checked by headwater.pagination.count_mode, so a wrong value is a 400 naming the allowed ones.
CountParam = Annotated[
    str,
    Query(
        max_length=16,
        description=COUNT_HELP,
    ),
]


class Page(BaseModel, Generic[T]):
    """One page of a list: the items, the cursor for the next page (null at the end), the total (exact unless
    ``total_exact`` is false: then an estimate, or -1 when not counted)."""

    items: list[T]
    next_cursor: str | None
    total: int
    total_exact: bool = True


def page_of(out: type[M], result: PageResult[Any], convert: Callable[[Any], M] | None = None) -> Page[M]:
    """``result``'s rows as a ``Page[out]``, each made by ``convert`` (default: ``out`` read from the row)."""
    make = convert or out.model_validate
    return Page[out](  # type: ignore[valid-type]
        items=[make(row) for row in result.items],
        next_cursor=result.next_cursor,
        total=result.total,
        total_exact=result.total_exact,
    )
