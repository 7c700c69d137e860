"""REST routes of restricted datasets: a dataset's restriction (``/api/v1/datasets/{id}/restriction``) and the
tags that restrict every dataset carrying them (``/api/v1/restricting-tags``). docs/security/restricted-data.md.

Restricting a dataset or lifting its restriction is ``catalog.restrict``: admins, and the dataset's owners
(users or groups), who know who should see it; ``catalog.edit`` is not enough. Restricting tags are a policy
for the whole catalog: admins only.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from headwater.api.auth import allow
from headwater.api.deps import SessionDep
from headwater.api.params import MAX_ID
from headwater.api.responses import json_response
from headwater.auth import audit
from headwater.auth.actions import Action
from headwater.auth.policy import audience_of
from headwater.auth.principal import Principal
from headwater.catalog import restrictions, service
from headwater.catalog.access import dataset_owners
from headwater.catalog.schemas import Tag

__all__ = ["restricting_tags_router", "restriction_router"]

restriction_router = APIRouter(prefix="/api/v1/datasets", tags=["restricted datasets"])
restricting_tags_router = APIRouter(prefix="/api/v1/restricting-tags", tags=["restricted datasets"])

DatasetId = Annotated[int, Path(ge=1, le=MAX_ID, description="The dataset's id.")]
GroupName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


class RestrictionIn(BaseModel):
    """The groups (or users) a dataset, or every dataset carrying a tag, is visible to (besides admins)."""

    model_config = ConfigDict(extra="forbid")

    groups: list[GroupName] = Field(min_length=1, max_length=50)


class RestrictionOut(BaseModel):
    """A dataset's own restriction, the restricting tags it carries, and the audience they make together."""

    dataset_id: int
    groups: list[str]
    set_by: str | None
    set_at: str | None
    tags: dict[str, list[str]]
    audience: list[str]
    restricted: bool


class RestrictingTagOut(BaseModel):
    """A tag that restricts every dataset carrying it."""

    model_config = ConfigDict(from_attributes=True)

    tag: str
    groups: list[str]
    set_by: str
    set_at: dt.datetime


class RestrictingTagList(BaseModel):
    """Every restricting tag."""

    items: list[RestrictingTagOut]


def _out(session: SessionDep, dataset_id: int) -> Response:
    view = restrictions.get_restriction(session, dataset_id=dataset_id)
    return json_response(RestrictionOut(**view.__dict__, restricted=bool(view.audience)))


@restriction_router.get("/{dataset_id}/restriction", response_model=RestrictionOut)
def get_restriction(
    dataset_id: DatasetId, session: SessionDep, principal: Annotated[Principal, allow(Action.CATALOG_READ)]
) -> Response:
    """Whom a dataset is restricted to: by hand, through its restricting tags, and both together."""
    service.get_dataset(session, dataset_id=dataset_id, include_deleted=True, audience=audience_of(principal))
    return _out(session, dataset_id)


@restriction_router.put("/{dataset_id}/restriction", response_model=RestrictionOut)
def put_restriction(
    dataset_id: DatasetId,
    body: RestrictionIn,
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, allow(Action.CATALOG_RESTRICT, owned_by=dataset_owners)],
) -> Response:
    """Restrict a dataset to groups (replacing its own restriction); admins and its owners."""
    dataset = service.get_dataset(session, dataset_id=dataset_id, for_update=True, audience=audience_of(principal))
    restrictions.set_restriction(session, dataset=dataset, groups=body.groups, principal=principal)
    audit.describe(session, target_kind="dataset", target=str(dataset_id), groups=sorted(body.groups))
    return _out(session, dataset_id)


@restriction_router.delete("/{dataset_id}/restriction", status_code=status.HTTP_204_NO_CONTENT)
def delete_restriction(
    dataset_id: DatasetId,
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, allow(Action.CATALOG_RESTRICT, owned_by=dataset_owners)],
) -> Response:
    """Lift a dataset's own restriction (restricting tags it carries still apply); admins and its owners."""
    dataset = service.get_dataset(session, dataset_id=dataset_id, for_update=True, audience=audience_of(principal))
    restrictions.clear_restriction(session, dataset=dataset, principal=principal)
    audit.describe(session, target_kind="dataset", target=str(dataset_id), restriction="lifted")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@restricting_tags_router.get("", response_model=RestrictingTagList)
def list_restricting_tags(session: SessionDep, _: Annotated[Principal, allow(Action.CATALOG_READ)]) -> Response:
    """The tags that restrict every dataset carrying them, and to whom."""
    rows = restrictions.list_restricting_tags(session)
    return json_response(RestrictingTagList(items=[RestrictingTagOut.model_validate(r) for r in rows]))


@restricting_tags_router.put("/{tag}", response_model=RestrictingTagOut)
def put_restricting_tag(
    tag: Annotated[Tag, Path()],
    body: RestrictionIn,
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, allow(Action.ADMIN)],
) -> Response:
    """Make a tag (a classification such as ``pii``) restrict every dataset carrying it to groups; admins."""
    row = restrictions.set_restricting_tag(session, tag=tag, groups=body.groups, principal=principal)
    audit.describe(session, target_kind="restricting_tag", target=tag, groups=sorted(body.groups))
    return json_response(RestrictingTagOut.model_validate(row))


@restricting_tags_router.delete("/{tag}", status_code=status.HTTP_204_NO_CONTENT)
def delete_restricting_tag(
    tag: Annotated[Tag, Path()],
    request: Request,
    session: SessionDep,
    principal: Annotated[Principal, allow(Action.ADMIN)],
) -> Response:
    """Stop a tag restricting the datasets carrying it; admins."""
    restrictions.clear_restricting_tag(session, tag=tag, principal=principal)
    audit.describe(session, target_kind="restricting_tag", target=tag)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
