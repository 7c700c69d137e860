"""Creating many datasets at once: what a first sync of a large source does.

:func:`~headwater.catalog.service.apply_snapshot` is the general path (create, restore, schema change,
metadata change) and costs about a dozen statements per dataset through the ORM's unit of work. A first
sync of a source with thousands of tables is nearly all *creates*, and those need no reading back: the
rows to write follow from the snapshots alone. This module writes a whole page of new datasets in five
multi-row statements (datasets, fields, schema versions, change events, and the caller's own rows), with
the same results row for row as applying each snapshot alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from headwater.catalog.events import Change, record_changes
from headwater.catalog.fields import FlatField, check_unique_paths, diff_schemas, fingerprint
from headwater.catalog.models import ChangeKind, Dataset, Field, SchemaVersion, Source
from headwater.catalog.snapshots import SOURCE_FACTS, DatasetSnapshot
from headwater.db import bulk_insert, bulk_insert_returning_ids, utcnow
from headwater.errors import InvalidInput

__all__ = ["CreatedDataset", "create_datasets", "unchanged_datasets", "validate_fields"]


@dataclass(frozen=True)
class CreatedDataset:
    """One dataset written by :func:`create_datasets`."""

    id: int
    namespace: str
    name: str
    schema_version: int | None


def validate_fields(fields: Sequence[FlatField]) -> None:
    """Refuse a schema that names a field twice or gives two fields one source field id."""
    dupes = check_unique_paths(fields)
    if dupes:
        raise InvalidInput(f"field path {dupes[0]!r} is declared more than once", detail={"field": "fields"})
    ids = [f.field_id for f in fields if f.field_id is not None]
    if len(ids) != len(set(ids)):
        raise InvalidInput("two fields share one field_id; field ids must be unique", detail={"field": "fields"})


def _versions(snapshot: DatasetSnapshot) -> list[dict[str, Any]]:
    """The schema versions a new dataset starts with: its source's earlier schemas, then the current one.

    As in the one-at-a-time path, a schema equal to the one before it adds no version.
    """
    versions: list[dict[str, Any]] = []
    previous_print: str | None = None
    previous_fields: list[dict[str, Any]] = []
    schemas = [(item.fields, item.source_schema_id) for item in snapshot.schema_history]
    schemas.append((snapshot.fields, snapshot.source_schema_id))
    for fields, source_schema_id in schemas:
        new_print = fingerprint(fields)
        if new_print == previous_print:
            continue
        stored = [f.as_version_dict() for f in fields]
        versions.append(
            {
                "version": len(versions) + 1,
                "fingerprint": new_print,
                "fields": stored,
                "diff": diff_schemas(previous_fields, fields).model_dump(),
                "source_schema_id": source_schema_id,
            }
        )
        previous_print, previous_fields = new_print, stored
    return versions


def create_datasets(session: Session, *, source: Source, snapshots: Sequence[DatasetSnapshot]) -> list[CreatedDataset]:
    """Create one dataset per snapshot, none of which may exist yet, each with a ``created`` change event.

    ``snapshots`` are :class:`~headwater.catalog.snapshots.DatasetSnapshot` objects whose fields were checked
    with :func:`validate_fields`. A dataset that appeared meanwhile makes the INSERT fail with an
    IntegrityError; callers run this in a savepoint and fall back to the one-at-a-time path.
    """
    if not snapshots:
        return []
    now = utcnow()
    versions = [_versions(snapshot) for snapshot in snapshots]
    dataset_rows = [
        {
            "source_id": source.id,
            "namespace": snapshot.namespace,
            "name": snapshot.name,
            **snapshot.facts(),
            "user_description": None,
            "user_properties": {},
            "current_schema_version": len(history) or None,
            "field_count": len(snapshot.fields),
            "created_at": now,
            "updated_at": now,
            "revision": 1,
        }
        for snapshot, history in zip(snapshots, versions, strict=True)
    ]
    ids = bulk_insert_returning_ids(session, Dataset, dataset_rows)
    field_rows = [
        {
            "dataset_id": dataset_id,
            "path": item.path,
            "name": item.name,
            "parent_path": item.parent_path,
            "position": position,
            "type": item.type,
            "normalized_type": item.normalized_type,
            "nullable": item.nullable,
            "field_id": item.field_id,
            "source_description": item.description,
            "user_description": None,
            "tags": list(item.tags),
        }
        for dataset_id, snapshot in zip(ids, snapshots, strict=True)
        for position, item in enumerate(snapshot.fields)
    ]
    bulk_insert(session, Field, field_rows)
    version_rows = [
        {"dataset_id": dataset_id, "created_at": now, **version}
        for dataset_id, history in zip(ids, versions, strict=True)
        for version in history
    ]
    bulk_insert(session, SchemaVersion, version_rows)
    created = [
        CreatedDataset(
            id=dataset_id, namespace=snapshot.namespace, name=snapshot.name, schema_version=len(history) or None
        )
        for dataset_id, snapshot, history in zip(ids, snapshots, versions, strict=True)
    ]
    record_changes(
        session,
        [
            Change(
                kind=ChangeKind.CREATED,
                entity_type="dataset",
                entity_id=item.id,
                namespace=item.namespace,
                name=item.name,
                payload={"source": source.name, "schema_version": item.schema_version},
            )
            for item in created
        ],
    )
    return created


def unchanged_datasets(session: Session, *, snapshots: Mapping[int, DatasetSnapshot]) -> set[int]:
    """The ids among ``snapshots`` (dataset id -> snapshot of a live dataset) that applying would leave as they are.

    Three reads for a whole page (facts, current schema version, field comments) instead of a dozen
    statements per dataset: what lets a full re-sync, or a sync of a source without version tokens
    (an Iceberg REST catalog), skip the datasets that did not change. Anything it cannot vouch for
    (a new earlier schema, a restore) is left to :func:`~headwater.catalog.service.apply_snapshot`.
    """
    if not snapshots:
        return set()
    ids = list(snapshots)
    rows = session.execute(
        select(
            Dataset.id,
            *(getattr(Dataset, name) for name in SOURCE_FACTS),
            SchemaVersion.fingerprint,
            SchemaVersion.source_schema_id,
        )
        .join(
            SchemaVersion,
            (SchemaVersion.dataset_id == Dataset.id) & (SchemaVersion.version == Dataset.current_schema_version),
        )
        .where(Dataset.id.in_(ids), Dataset.deleted_at.is_(None))
    ).all()
    candidates: set[int] = set()
    for dataset_id, *facts, stored_print, stored_schema_id in rows:
        snapshot = snapshots[dataset_id]
        if dict(zip(SOURCE_FACTS, facts, strict=True)) != snapshot.facts():
            continue
        if stored_print != fingerprint(snapshot.fields):
            continue
        if snapshot.schema_history and stored_schema_id != snapshot.source_schema_id:
            continue  # earlier schemas may be new to us: the careful path sorts that out
        candidates.add(dataset_id)
    if not candidates:
        return candidates
    comments: dict[int, list[str | None]] = {dataset_id: [] for dataset_id in candidates}
    for dataset_id, comment in session.execute(
        select(Field.dataset_id, Field.source_description)
        .where(Field.dataset_id.in_(candidates))
        .order_by(Field.dataset_id, Field.position)
    ):
        comments[dataset_id].append(comment)
    return {
        dataset_id
        for dataset_id in candidates
        if comments[dataset_id] == [f.description for f in snapshots[dataset_id].fields]
    }
