"""Batch reads of the catalog for many datasets at once: what GraphQL's batch loading calls (one query per chunk of
ids, never one per dataset)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from headwater.catalog.models import Field
from headwater.catalog.schemas import FieldOut
from headwater.catalog.service import FIELD_VIEW_COLUMNS
from headwater.db import in_chunks

__all__ = ["FieldOfDataset", "fields_of_datasets"]


class FieldOfDataset(FieldOut):
    """A field of a dataset's current schema with its catalog id (what lineage queries take)."""

    id: int


def fields_of_datasets(session: Session, *, dataset_ids: Sequence[int]) -> dict[int, list[FieldOfDataset]]:
    """The current fields of each of ``dataset_ids``, in position order (an empty list for an unknown id)."""
    found: dict[int, list[FieldOfDataset]] = {i: [] for i in dataset_ids}
    for chunk in in_chunks(list(dataset_ids)):
        result = session.execute(
            select(Field.dataset_id, Field.id, *FIELD_VIEW_COLUMNS)
            .where(Field.dataset_id.in_(chunk))
            .order_by(Field.dataset_id, Field.position)
        )
        keys = list(result.keys())  # once: a row's own mapping rebuilds them (a page holds thousands of fields)
        for row in result:
            data = dict(zip(keys, row, strict=True))
            data["tags"] = data["tags"] or []
            found[data["dataset_id"]].append(FieldOfDataset.model_validate(data))
    return found
