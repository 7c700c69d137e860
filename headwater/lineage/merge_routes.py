"""REST routes that merge two datasets that are one, and undo it (``/api/v1/datasets/{id}/merges``,
``/api/v1/dataset-merges``): docs/concepts/catalog.md, "Merging two datasets". A merge changes what every name
reaches and moves lineage, so every route is for admins and audited. They live with lineage, not the catalog,
because a merge moves lineage rows (the catalog layer does not know them).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from headwater.api.auth import allow
from headwater.api.deps import SessionDep
from headwater.api.params import MAX_ID
from headwater.api.responses import json_response
from headwater.auth import audit
from headwater.auth.actions import Action
from headwater.auth.principal import Principal
from headwater.lineage import merges
from headwater.lineage.models import DatasetMerge

__all__ = ["merges_router"]

merges_router = APIRouter(tags=["datasets"])

DatasetId = Annotated[int, Path(ge=1, le=MAX_ID, description="The dataset the other one is merged into.")]
MergeId = Annotated[int, Path(ge=1, le=MAX_ID, description="The merge's id.")]


class MergeIn(BaseModel):
    """Which dataset is the same as this one, and why."""

    model_config = ConfigDict(extra="forbid")

    duplicate_id: int = Field(ge=1, le=MAX_ID, description="The dataset that is this one under another name.")
    reason: str | None = Field(default=None, max_length=2000)


class MergeOut(BaseModel):
    """A merge: which dataset went into which, by whom, what it moved, and whether it was undone."""

    id: int
    into_id: int
    duplicate_id: int
    merged_by: str
    merged_at: dt.datetime
    reason: str | None
    moved: dict[str, int] = Field(description="Lineage rows repointed to the dataset merged into, by kind.")
    removed: dict[str, int] = Field(
        description="Lineage rows of the duplicate the other dataset had already (or that would point at itself)."
    )
    unmoved_columns: list[str] = Field(
        description="Columns of the duplicate the other dataset has not: their column lineage stays with it."
    )
    copied: dict[str, object] = Field(description="What people wrote on the duplicate that filled in the other.")
    undone_at: dt.datetime | None
    undone_by: str | None

    @classmethod
    def of(cls, merge: DatasetMerge) -> MergeOut:
        record = merge.moved
        return cls(
            id=merge.id,
            into_id=merge.into_id,
            duplicate_id=merge.duplicate_id,
            merged_by=merge.merged_by,
            merged_at=merge.merged_at,
            reason=merge.reason,
            moved={k: len(v) for k, v in record.get("moved", {}).items()},
            removed={k: len(v) for k, v in record.get("removed", {}).items()},
            unmoved_columns=record.get("unmoved_columns", []),
            copied=record.get("copied", {}),
            undone_at=merge.undone_at,
            undone_by=merge.undone_by,
        )


class MergeList(BaseModel):
    """Merges, newest first."""

    items: list[MergeOut]


@merges_router.post(
    "/api/v1/datasets/{dataset_id}/merges",
    response_model=MergeOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        404: {"description": "Either dataset does not exist"},
        409: {"description": "A dataset is merged already, deleted, or restricted differently"},
    },
)
def merge_dataset(
    dataset_id: DatasetId, body: MergeIn, session: SessionDep, principal: Annotated[Principal, allow(Action.ADMIN)]
) -> Response:
    """Merge another dataset into this one (admins): its names resolve here, its lineage moves here."""
    outcome = merges.merge_datasets(
        session, into_id=dataset_id, duplicate_id=body.duplicate_id, by=principal.name, reason=body.reason
    )
    audit.describe(
        session, target_kind="dataset", target=str(dataset_id), merged=body.duplicate_id, merge=outcome.merge.id
    )
    return json_response(MergeOut.of(outcome.merge), status_code=status.HTTP_201_CREATED)


@merges_router.get("/api/v1/datasets/{dataset_id}/merges", response_model=MergeList)
def list_dataset_merges(
    dataset_id: DatasetId,
    session: SessionDep,
    principal: Annotated[Principal, allow(Action.ADMIN)],
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    """The merges a dataset took part in, either way, newest first (admins)."""
    found = merges.list_merges(session, dataset_id=dataset_id, limit=limit)
    return json_response(MergeList(items=[MergeOut.of(m) for m in found]))


@merges_router.get("/api/v1/dataset-merges/{merge_id}", response_model=MergeOut)
def get_dataset_merge(
    merge_id: MergeId, session: SessionDep, principal: Annotated[Principal, allow(Action.ADMIN)]
) -> Response:
    """One merge (admins)."""
    return json_response(MergeOut.of(merges.get_merge(session, merge_id)))


@merges_router.post(
    "/api/v1/dataset-merges/{merge_id}/undo",
    response_model=MergeOut,
    responses={409: {"description": "Undone already, or a later merge of either dataset must be undone first"}},
)
def undo_dataset_merge(
    merge_id: MergeId, session: SessionDep, principal: Annotated[Principal, allow(Action.ADMIN)]
) -> Response:
    """Undo a merge (admins): the duplicate is itself again, with the lineage the merge moved."""
    outcome = merges.undo_merge(session, merge_id=merge_id, by=principal.name)
    audit.describe(session, target_kind="dataset_merge", target=str(merge_id), undone=True)
    return json_response(MergeOut.of(outcome.merge))
