"""Reading datasets: one by id or by name, lists with filters, schema history. A dataset the reader's audience may
not see (catalog.restrictions) is answered as one that does not exist. Every function takes the session
keyword-only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, exists, select
from sqlalchemy.orm import Session, selectinload

from headwater.auth.policy import Audience
from headwater.catalog import identity, restrictions
from headwater.catalog.models import Dataset, DatasetKind, DatasetOwner, DatasetTag, Field, SchemaVersion, Source
from headwater.db import in_chunks
from headwater.errors import NotFound
from headwater.pagination import PageResult, SortKey, paginate

__all__ = [
    "DATASET_SORTS",
    "FIELD_VIEW_COLUMNS",
    "VERSION_SORTS",
    "DatasetFilters",
    "dataset_query",
    "datasets_by_id",
    "get_dataset",
    "get_dataset_by_name",
    "get_schema_version",
    "list_datasets",
    "list_schema_versions",
    "read_dataset",
]


DATASET_SORTS = {
    "name": SortKey(Dataset.name, Dataset.id),
    "updated_at": SortKey(Dataset.updated_at, Dataset.id, kind="datetime"),
    "created_at": SortKey(Dataset.created_at, Dataset.id, kind="datetime"),
    "id": SortKey(Dataset.id, Dataset.id, kind="int"),
}
VERSION_SORTS = {"version": SortKey(SchemaVersion.version, SchemaVersion.id, kind="int")}


@dataclass
class DatasetFilters:
    """Filters of the dataset list; every one is optional and they combine with AND."""

    source: str | None = None
    namespace: str | None = None
    kind: DatasetKind | None = None
    tag: str | None = None
    owner: str | None = None
    name_prefix: str | None = None
    include_deleted: bool = False


def dataset_query(*, with_fields: bool = True) -> Select[Dataset]:
    """A select of datasets with their tags and owners loaded, and their fields unless ``with_fields`` is false."""
    loads = (selectinload(Dataset.tags), selectinload(Dataset.owners))
    return select(Dataset).options(*((selectinload(Dataset.fields),) if with_fields else ()), *loads)


def _not_found_or_deleted(
    dataset: Dataset | None,
    label: str,
    include_deleted: bool,
    session: Session | None = None,
    audience: Audience = None,
) -> Dataset:
    # A dataset the reader may not see is answered exactly as one that does not exist (and before the deleted
    # message, which would name its reason).
    if dataset is None or (
        audience is not None and session is not None and not restrictions.is_visible(session, dataset.id, audience)
    ):
        raise NotFound(f"no dataset {label}")
    if dataset.deleted_at is not None and not include_deleted:
        raise NotFound(
            f"dataset {label} was deleted at {dataset.deleted_at.isoformat()} "
            f"(reason: {dataset.delete_reason}); ask with include_deleted=true to see it",
            detail={
                "deleted_at": dataset.deleted_at.isoformat(),
                "reason": dataset.delete_reason,
                **({"merged_into": dataset.merged_into_id} if dataset.merged_into_id is not None else {}),
            },
        )
    return dataset


def get_dataset(
    session: Session,
    *,
    dataset_id: int,
    include_deleted: bool = False,
    for_update: bool = False,
    audience: Audience = None,
    with_fields: bool = True,
) -> Dataset:
    """One dataset with its tags, owners and (``with_fields``) fields (NotFound when ``audience`` may not see it)."""
    stmt = dataset_query(with_fields=with_fields).where(Dataset.id == dataset_id)
    if for_update:
        stmt = stmt.with_for_update(of=Dataset)
    return _not_found_or_deleted(session.scalar(stmt), f"with id {dataset_id}", include_deleted, session, audience)


FIELD_VIEW_COLUMNS = (
    Field.path,
    Field.name,
    Field.parent_path,
    Field.position,
    Field.type,
    Field.normalized_type,
    Field.nullable,
    Field.field_id,
    Field.source_description,
    Field.user_description,
    Field.tags,
)


def read_dataset(
    session: Session, *, dataset_id: int, include_deleted: bool = False, audience: Audience = None
) -> tuple[Dataset, list[dict[str, Any]]]:
    """The read path: a dataset with tags and owners, and its field rows as plain dicts.

    Reading thousands of fields as rows rather than ORM objects (identity map, collections) is what
    makes an uncached GET affordable; writes use :func:`get_dataset`.
    """
    stmt = select(Dataset).options(selectinload(Dataset.tags), selectinload(Dataset.owners))
    dataset = _not_found_or_deleted(
        session.scalar(stmt.where(Dataset.id == dataset_id)),
        f"with id {dataset_id}",
        include_deleted,
        session,
        audience,
    )
    result = session.execute(select(*FIELD_VIEW_COLUMNS).where(Field.dataset_id == dataset_id).order_by(Field.position))
    keys = [column.key for column in FIELD_VIEW_COLUMNS]
    return dataset, [dict(zip(keys, row, strict=True)) for row in result]


def get_dataset_by_name(
    session: Session,
    *,
    namespace: str,
    name: str,
    include_deleted: bool = False,
    audience: Audience = None,
    with_fields: bool = True,
) -> Dataset:
    """One dataset by its OpenLineage identity or any other name it is known by (an alias)."""
    dataset_id = identity.resolve_id(session, namespace, name)
    found = (
        None
        if dataset_id is None
        else session.scalar(dataset_query(with_fields=with_fields).where(Dataset.id == dataset_id))
    )
    label = f"named {name!r} in namespace {namespace!r}"
    return _not_found_or_deleted(found, label, include_deleted, session, audience)


def datasets_by_id(session: Session, *, dataset_ids: Sequence[int], audience: Audience = None) -> list[Dataset]:
    """The live datasets among ``dataset_ids`` that ``audience`` may see (tags and owners loaded, fields not), in
    no particular order."""
    found: list[Dataset] = []
    ids = sorted(set(dataset_ids))
    stmt = select(Dataset).options(selectinload(Dataset.tags), selectinload(Dataset.owners))
    if (condition := restrictions.visible(Dataset.id, audience)) is not None:
        stmt = stmt.where(condition)
    for chunk in in_chunks(ids):
        found.extend(session.scalars(stmt.where(Dataset.id.in_(chunk), Dataset.deleted_at.is_(None))))
    return found


def list_datasets(
    session: Session,
    *,
    filters: DatasetFilters,
    sort: str = "name",
    cursor: str | None = None,
    limit: int = 50,
    audience: Audience = None,
    count: str = "exact",
) -> PageResult[Dataset]:
    """Datasets matching ``filters`` that ``audience`` may see, one page at a time, with tags and owners loaded; the
    total counted as ``count`` says (headwater.pagination.COUNT_MODES)."""
    stmt = select(Dataset).options(selectinload(Dataset.tags), selectinload(Dataset.owners))
    if (condition := restrictions.visible(Dataset.id, audience)) is not None:
        stmt = stmt.where(condition)  # in the query, so that pages stay full
    if not filters.include_deleted:
        stmt = stmt.where(Dataset.deleted_at.is_(None))
    if filters.source:
        source_id = session.scalar(select(Source.id).where(Source.name == filters.source))
        if source_id is None:
            raise NotFound(f"no source named {filters.source!r}", detail={"field": "source"})
        stmt = stmt.where(Dataset.source_id == source_id)
    if filters.namespace:
        stmt = stmt.where(Dataset.namespace == filters.namespace)
    if filters.kind:
        stmt = stmt.where(Dataset.kind == filters.kind.value)
    if filters.tag:
        stmt = stmt.where(exists().where(DatasetTag.dataset_id == Dataset.id, DatasetTag.tag == filters.tag))
    if filters.owner:
        stmt = stmt.where(exists().where(DatasetOwner.dataset_id == Dataset.id, DatasetOwner.owner == filters.owner))
    if filters.name_prefix:
        escaped = filters.name_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(Dataset.name.like(escaped + "%", escape="\\"))
    return paginate(session, stmt, sorts=DATASET_SORTS, sort=sort, cursor=cursor, limit=limit, count=count)


def list_schema_versions(
    session: Session,
    *,
    dataset_id: int,
    cursor: str | None = None,
    limit: int = 50,
    newest_first: bool = True,
    audience: Audience = None,
) -> PageResult[SchemaVersion]:
    """A dataset's schema history with diffs, newest first by default."""
    get_dataset(session, dataset_id=dataset_id, include_deleted=True, audience=audience)
    stmt = select(SchemaVersion).where(SchemaVersion.dataset_id == dataset_id)
    sort = "-version" if newest_first else "version"
    return paginate(session, stmt, sorts=VERSION_SORTS, sort=sort, cursor=cursor, limit=limit)


def get_schema_version(session: Session, *, dataset_id: int, version: int, audience: Audience = None) -> SchemaVersion:
    """One schema version of a dataset."""
    if audience is not None:
        get_dataset(session, dataset_id=dataset_id, include_deleted=True, audience=audience)
    row = session.scalar(
        select(SchemaVersion).where(SchemaVersion.dataset_id == dataset_id, SchemaVersion.version == version)
    )
    if row is None:
        get_dataset(session, dataset_id=dataset_id, include_deleted=True)
        raise NotFound(f"dataset {dataset_id} has no schema version {version}", detail={"field": "version"})
    return row
