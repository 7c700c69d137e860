"""Which cached dataset list pages a dataset change can alter, so that a write drops only those (issue 18).

A keyset page covers the sort-key range ``(after, last]``: ``after`` is its cursor's key (nothing for the first page),
``last`` its last row's key, or no bound when it has no next page. A dataset change can alter the page only when

* the dataset is on it (its ids are kept with the page), or is the row after it, whose presence is what gives the
  page a next cursor, or
* the dataset's sort key now falls inside the page's range (it may have joined the page), or
* the page shows an exact total (any change may move a count; an estimated total is dropped once the changes
  since it was read pass 1% of it).

A dataset that left the page's range was on the page, so its old key is not needed: the changed dataset's current
keys (:func:`row_keys`, read in the writing transaction or by the outbox poller) are enough. Filters and the reader's
audience are ignored, which can only drop more. Names compare in Python's code-point order, which is the order of
``datasets.name`` on both databases: byte order on SQLite, ``COLLATE "C"`` on PostgreSQL (migration 0021).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from headwater.catalog.models import Dataset
from headwater.db import in_chunks
from headwater.pagination import PageResult

__all__ = ["ListSpan", "RowKeys", "row_keys", "span_of"]

# Changes an estimated total absorbs, as a share of it, before its page is dropped.
ESTIMATE_SLACK = 0.01


class RowKeys(NamedTuple):
    """A dataset's values of every allow-listed list sort (headwater.catalog.reads.DATASET_SORTS)."""

    id: int
    name: str
    updated_at: dt.datetime
    created_at: dt.datetime

    def key(self, sort: str) -> tuple[Any, int]:
        """The dataset's position under ``sort`` (a sort name without the '-')."""
        return getattr(self, sort), self.id


@dataclass(slots=True)
class ListSpan:
    """What a cached list page covers: its sort, key range, dataset ids and how its total was counted."""

    sort: str
    descending: bool
    after: tuple[Any, int] | None
    last: tuple[Any, int] | None  # None: the page runs to the end of the list
    ids: frozenset[int]
    total_exact: bool
    total: int
    churn: int = field(default=0)

    def changed_by(self, dataset_id: int, keys: RowKeys | None) -> bool:
        """Whether a change to this dataset (now at ``keys``; None: unknown or gone) may alter the page."""
        if keys is None or self.total_exact or dataset_id in self.ids:
            return True
        try:
            position = keys.key(self.sort)
            if self.descending:
                return (self.after is None or position < self.after) and (self.last is None or position >= self.last)
            return (self.after is None or position > self.after) and (self.last is None or position <= self.last)
        except (TypeError, AttributeError):  # a value of another type than the page's: be safe
            return True

    def outlived(self, changes: int) -> bool:
        """Count ``changes`` against an estimated total; whether the estimate is now too old to show."""
        if self.total < 0:  # not counted
            return False
        self.churn += changes
        return self.churn > self.total * ESTIMATE_SLACK


def span_of(page: PageResult[Dataset], sort: str) -> ListSpan:
    """The span of a page of datasets read under ``sort`` (``-name``: descending)."""
    name = sort.lstrip("-")
    last = None
    if page.next_cursor is not None and page.items:
        row = page.items[-1]
        last = (getattr(row, name), row.id)
    return ListSpan(
        sort=name,
        descending=sort.startswith("-"),
        after=page.after,
        last=last,
        ids=frozenset([row.id for row in page.items] + ([page.following.id] if page.following is not None else [])),
        total_exact=page.total_exact,
        total=page.total,
    )


def row_keys(session: Session, dataset_ids: Iterable[int]) -> dict[int, RowKeys]:
    """The current sort keys of these datasets (one primary-key read per 900); gone datasets are left out."""
    found: dict[int, RowKeys] = {}
    columns = (Dataset.id, Dataset.name, Dataset.updated_at, Dataset.created_at)
    for chunk in in_chunks(sorted(set(dataset_ids))):
        for row in session.execute(select(*columns).where(Dataset.id.in_(chunk))):
            found[row.id] = RowKeys(row.id, row.name, row.updated_at, row.created_at)
    return found
