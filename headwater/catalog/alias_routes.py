"""REST routes of a dataset's other names (``/api/v1/datasets/{id}/aliases``): the storage paths, host spellings and
names producers used for it, each resolving to the dataset (docs/concepts/catalog.md, "One dataset, whatever it is
called"). Reading them is ``catalog.read``; declaring or removing one changes what every producer's events and
every lookup reach, so it is for admins.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict, StringConstraints

from headwater.api.auth import allow
from headwater.api.deps import SessionDep
from headwater.api.params import MAX_ID
from headwater.api.responses import json_response
from headwater.auth import audit
from headwater.auth.actions import Action
from headwater.auth.policy import audience_of
from headwater.auth.principal import Principal
from headwater.catalog import identity, service

__all__ = ["aliases_router"]

aliases_router = APIRouter(prefix="/api/v1/datasets", tags=["datasets"])

DatasetId = Annotated[int, Path(ge=1, le=MAX_ID, description="The dataset's id.")]
AliasNamespace = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=512)]
AliasName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1024)]


class AliasIn(BaseModel):
    """Another name of a dataset, as OpenLineage names datasets."""

    model_config = ConfigDict(extra="forbid")

    namespace: AliasNamespace
    name: AliasName


class AliasList(BaseModel):
    """A dataset's other names, sorted."""

    items: list[AliasIn]


def _list(session: SessionDep, dataset_id: int) -> Response:
    names = identity.aliases_of(session, dataset_id)
    return json_response(AliasList(items=[AliasIn(namespace=ns, name=n) for ns, n in names]))


@aliases_router.get("/{dataset_id}/aliases", response_model=AliasList)
def list_aliases(
    dataset_id: DatasetId, session: SessionDep, principal: Annotated[Principal, allow(Action.CATALOG_READ)]
) -> Response:
    """The other names of a dataset (every one of them reaches it in lookups and events)."""
    service.get_dataset(session, dataset_id=dataset_id, include_deleted=True, audience=audience_of(principal))
    return _list(session, dataset_id)


@aliases_router.put(
    "/{dataset_id}/aliases",
    response_model=AliasList,
    responses={409: {"description": "The name is the dataset's own, or already names another dataset"}},
)
def put_alias(
    dataset_id: DatasetId,
    body: AliasIn,
    session: SessionDep,
    principal: Annotated[Principal, allow(Action.ADMIN)],
) -> Response:
    """Declare another name of a dataset (admins); the dataset's names after it. Idempotent."""
    dataset = service.get_dataset(session, dataset_id=dataset_id, for_update=True)
    identity.add_alias(session, dataset=dataset, namespace=body.namespace, name=body.name, by=principal.name)
    audit.describe(session, target_kind="dataset", target=str(dataset_id), alias=f"{body.namespace}/{body.name}")
    return _list(session, dataset_id)


@aliases_router.delete("/{dataset_id}/aliases", status_code=status.HTTP_204_NO_CONTENT)
def delete_alias(
    dataset_id: DatasetId,
    namespace: Annotated[str, Query(min_length=1, max_length=512)],
    name: Annotated[str, Query(min_length=1, max_length=1024)],
    session: SessionDep,
    principal: Annotated[Principal, allow(Action.ADMIN)],
) -> Response:
    """Stop a name naming a dataset (admins); 404 when it does not."""
    dataset = service.get_dataset(session, dataset_id=dataset_id, for_update=True)
    identity.remove_alias(session, dataset=dataset, namespace=namespace, name=name, by=principal.name)
    audit.describe(session, target_kind="dataset", target=str(dataset_id), alias_removed=f"{namespace}/{name}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
