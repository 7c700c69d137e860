"""The catalog's permissions: what its routes declare, and what a check needs of a dataset (its owners).

Anyone who reads the catalog reads its sources and their sync reports (a source's secrets are never answered);
registering, changing, deleting and syncing them is ``sources.admin`` (they hold credentials).

A dataset's owners are names as the catalog stores them (``dataset_owners.owner``): a user's name or a group's;
:func:`headwater.auth.policy.decide` matches them against the principal's name and groups, so an owner may edit
the dataset's metadata without the editor role.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import Path
from sqlalchemy import select
from sqlalchemy.orm import Session

from headwater.api.auth import Guard, ResourceLoader
from headwater.api.params import MAX_ID
from headwater.auth.actions import Action
from headwater.auth.policy import Resource
from headwater.catalog.models import Dataset, DatasetAudience, DatasetOwner
from headwater.errors import NotFound

__all__ = ["CATALOG", "SOURCES", "dataset_owners", "dataset_resource"]

CATALOG = Guard(read=Action.CATALOG_READ, write=Action.CATALOG_EDIT)
SOURCES = Guard(read=Action.CATALOG_READ, write=Action.SOURCES_ADMIN)


def dataset_resource(session: Session, *, dataset_id: int) -> Resource:
    """The dataset ``dataset_id`` as a decision sees it (a deleted one too: the route says it is deleted);
    404 when there is no such dataset, whoever asks."""
    missing = f"no dataset with id {dataset_id}"  # as the catalog's own lookup says it
    identity = session.execute(select(Dataset.namespace, Dataset.name).where(Dataset.id == dataset_id)).first()
    if identity is None:
        raise NotFound(missing)
    owners = session.scalars(select(DatasetOwner.owner).where(DatasetOwner.dataset_id == dataset_id)).all()
    audience = session.scalars(select(DatasetAudience.member).where(DatasetAudience.dataset_id == dataset_id)).all()
    return Resource(
        kind="dataset",
        name=f"{identity.namespace}/{identity.name}",
        owners=frozenset(owners),
        restricted_to=frozenset(audience),  # one who may not see it is told it does not exist
        missing=missing,
    )


def dataset_owners(
    dataset_id: Annotated[int, Path(ge=1, le=MAX_ID, description="The dataset's id.")],
) -> ResourceLoader:
    """The ``owned_by`` of a route on ``/api/v1/datasets/{dataset_id}``."""
    return partial(dataset_resource, dataset_id=dataset_id)
