"""Dataset logic: applying what a source says (snapshots), registration, user metadata, soft delete,
schema history and listing. Every function takes the session keyword-only and flushes, never commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from headwater.auth.policy import Audience
from headwater.auth.principal import Principal
from headwater.catalog import identity, restrictions
from headwater.catalog.bulk import validate_fields
from headwater.catalog.events import Change, record_change, record_changes
from headwater.catalog.fields import FlatField, diff_schemas, fingerprint, flatten
from headwater.catalog.models import (
    ChangeKind,
    Dataset,
    DatasetKind,
    DatasetOwner,
    DatasetTag,
    Field,
    SchemaVersion,
    Source,
    SourceKind,
)
from headwater.catalog.reads import (  # re-exported: the catalog's one entry point
    FIELD_VIEW_COLUMNS,
    DatasetFilters,
    dataset_query,
    datasets_by_id,
    get_dataset,
    get_dataset_by_name,
    get_schema_version,
    list_datasets,
    list_schema_versions,
    read_dataset,
)
from headwater.catalog.schemas import DatasetCreate, DatasetUpdate, FieldIn, Owner
from headwater.catalog.snapshots import SOURCE_FACTS, DatasetSnapshot, HistoricalSchema
from headwater.catalog.sources import DEFAULT_MANUAL_SOURCE, ensure_manual_source, get_source
from headwater.db import utcnow
from headwater.errors import Conflict, InvalidInput, NotFound, PreconditionFailed

__all__ = [
    "FIELD_VIEW_COLUMNS",
    "ApplyResult",
    "DatasetFilters",
    "DatasetSnapshot",
    "HistoricalSchema",
    "NotFound",
    "apply_snapshot",
    "datasets_by_id",
    "delete_dataset",
    "get_dataset",
    "get_dataset_by_name",
    "get_schema_version",
    "list_datasets",
    "list_schema_versions",
    "mark_deleted",
    "read_dataset",
    "register_dataset",
    "replace_manual_schema",
    "update_dataset_metadata",
]


@dataclass
class ApplyResult:
    """What applying a snapshot did."""

    dataset: Dataset
    outcome: Literal["adopted", "created", "restored", "schema_changed", "updated", "unchanged"]


# ------------------------------------------------------------------------------------ writing


def _current_version(session: Session, dataset: Dataset) -> SchemaVersion | None:
    if dataset.current_schema_version is None:
        return None
    return session.scalar(
        select(SchemaVersion).where(
            SchemaVersion.dataset_id == dataset.id, SchemaVersion.version == dataset.current_schema_version
        )
    )


def _match_rows(
    rows: Sequence[Field], fields: Sequence[FlatField], renamed: Mapping[str, str] | None = None
) -> list[Field | None]:
    """For each new field, the existing row it continues: same source field id, else the path it was renamed
    from, else same path."""
    by_id = {row.field_id: row for row in rows if row.field_id is not None}
    by_path = {row.path: row for row in rows}
    used: set[int] = set()
    matches: list[Field | None] = []
    for item in fields:
        row = by_id.get(item.field_id) if item.field_id is not None else None
        if row is None and renamed and item.path in renamed:
            row = by_path.get(renamed[item.path])
        if row is None:
            candidate = by_path.get(item.path)
            if candidate is not None and (item.field_id is None or candidate.field_id in (None, item.field_id)):
                row = candidate
        if row is not None and id(row) in used:
            row = None
        if row is not None:
            used.add(id(row))
        matches.append(row)
    return matches


def _write_field_rows(
    session: Session, dataset: Dataset, fields: Sequence[FlatField], renamed: Mapping[str, str] | None = None
) -> None:
    """Make the dataset's field rows match ``fields``, keeping each surviving row (its id and what people
    wrote on it) across renames and retypes."""
    matches = _match_rows(dataset.fields, fields, renamed)
    kept = {id(row) for row in matches if row is not None}
    for row in list(dataset.fields):
        if id(row) not in kept:
            dataset.fields.remove(row)
    session.flush()
    moving = [row for row, item in zip(matches, fields, strict=True) if row is not None and row.path != item.path]
    if moving:  # paths may swap; park them on unique temporary paths first to satisfy UNIQUE(dataset_id, path)
        token = uuid.uuid4().hex
        for moving_row in moving:
            moving_row.path = f"#moving#{moving_row.id}#{token}"
        session.flush()
    rows: list[Field] = []
    for position, (match, item) in enumerate(zip(matches, fields, strict=True)):
        row = Field(dataset_id=dataset.id, tags=list(item.tags)) if match is None else match
        if match is not None and item.tags:
            row.tags = list(dict.fromkeys([*row.tags, *item.tags]))
        row.path = item.path
        row.name = item.name
        row.parent_path = item.parent_path
        row.position = position
        row.type = item.type
        row.normalized_type = item.normalized_type
        row.nullable = item.nullable
        row.field_id = item.field_id
        row.source_description = item.description
        rows.append(row)
    dataset.fields = rows
    dataset.field_count = len(rows)


def _add_schema_version(
    session: Session,
    dataset: Dataset,
    fields: Sequence[FlatField],
    source_schema_id: str | None,
    renamed: Mapping[str, str] | None = None,
) -> SchemaVersion | None:
    """Record a new schema version when the schema differs from the current one."""
    current = _current_version(session, dataset)
    new_print = fingerprint(fields)
    if current is not None and current.fingerprint == new_print:
        return None
    diff = diff_schemas(current.fields if current else [], fields, renamed)
    version = SchemaVersion(
        dataset_id=dataset.id,
        version=(current.version + 1) if current else 1,
        fingerprint=new_print,
        fields=[f.as_version_dict() for f in fields],
        diff=diff.model_dump(),
        source_schema_id=source_schema_id,
    )
    session.add(version)
    dataset.current_schema_version = version.version
    return version


def _add_history(session: Session, dataset: Dataset, history: Sequence[HistoricalSchema]) -> SchemaVersion | None:
    """Record the source's earlier schemas not yet in the dataset's history; the last one added."""
    if not history:
        return None
    current = _current_version(session, dataset)
    start = 0
    if current is not None:
        ids = [item.source_schema_id for item in history]
        if current.source_schema_id is None or current.source_schema_id not in ids:
            return None
        start = ids.index(current.source_schema_id) + 1
    last: SchemaVersion | None = None
    for item in history[start:]:
        added = _add_schema_version(session, dataset, item.fields, item.source_schema_id)
        if added is not None:
            session.flush()
            last = added
    return last


def apply_snapshot(session: Session, *, source: Source, snapshot: DatasetSnapshot) -> ApplyResult:
    """Create or update a dataset from what its source says; user-entered metadata is never touched.

    A changed schema becomes a new SchemaVersion with its diff; every change appends a ChangeEvent.
    """
    validate_fields(snapshot.fields)
    dataset = session.scalar(
        dataset_query()
        .where(Dataset.namespace == snapshot.namespace, Dataset.name == snapshot.name)
        .with_for_update(of=Dataset)
    )
    if dataset is not None and dataset.merged_into_id is not None:
        # An admin merged it into another dataset: its source still lists it, but every name of it reaches that
        # one now, and re-federating it would split them again. It stays as the merge left it until undone.
        return ApplyResult(dataset, "unchanged")
    adopted_from: Source | None = None
    if dataset is not None and dataset.source_id != source.id:
        if not _adoptable(dataset, source):
            raise Conflict(
                f"dataset {snapshot.name!r} in namespace {snapshot.namespace!r} belongs to source "
                f"{dataset.source.name!r}, not {source.name!r}",
                detail={"field": "name", "dataset_id": dataset.id},
            )
        adopted_from = dataset.source
        dataset.source = source
    facts = snapshot.facts()
    now = utcnow()
    if dataset is None:
        dataset = Dataset(source=source, namespace=snapshot.namespace, name=snapshot.name, **facts)
        dataset.fields = []
        session.add(dataset)
        session.flush()
        _write_field_rows(session, dataset, snapshot.fields)
        _add_history(session, dataset, snapshot.schema_history)
        _add_schema_version(session, dataset, snapshot.fields, snapshot.source_schema_id)
        session.flush()
        _record(
            session,
            dataset,
            ChangeKind.CREATED,
            {"source": source.name, "schema_version": dataset.current_schema_version},
        )
        return ApplyResult(dataset, "created")

    restored = dataset.deleted_at is not None
    changed_facts = sorted(key for key in SOURCE_FACTS if getattr(dataset, key) != facts[key])
    for key in changed_facts:
        setattr(dataset, key, facts[key])
    earlier = _add_history(session, dataset, snapshot.schema_history)
    version = (
        _add_schema_version(session, dataset, snapshot.fields, snapshot.source_schema_id, snapshot.renamed) or earlier
    )
    comments_changed = [row.source_description for row in dataset.fields] != [f.description for f in snapshot.fields]
    if version is not None or comments_changed:
        _write_field_rows(session, dataset, snapshot.fields, snapshot.renamed)
    if adopted_from is not None:
        dataset.schema_stated_at = None  # the schema is the source's from now on, never an event's
    elif not (restored or changed_facts or version is not None or comments_changed):
        return ApplyResult(dataset, "unchanged")

    dataset.deleted_at = None
    dataset.delete_reason = None
    dataset.updated_at = now
    dataset.revision += 1
    session.flush()
    outcome: Literal["adopted", "restored", "schema_changed", "updated"]
    if adopted_from is not None:
        _record(
            session,
            dataset,
            ChangeKind.ADOPTED,
            {"source": source.name, "from_source": adopted_from.name, "was_deleted": restored},
        )
    if restored:
        outcome = "restored"
        _record(session, dataset, ChangeKind.RESTORED, {"source": source.name})
    if version is not None:
        outcome = "restored" if restored else "schema_changed"
        _record(session, dataset, ChangeKind.SCHEMA_CHANGED, {"version": version.version, "diff": version.diff})
    elif not restored:
        outcome = "updated"
    if changed_facts or (comments_changed and version is None):
        _record(
            session,
            dataset,
            ChangeKind.METADATA_UPDATED,
            {"by": "source", "changed": changed_facts or ["field_descriptions"]},
        )
    return ApplyResult(dataset, "adopted" if adopted_from is not None else outcome)


def _adoptable(dataset: Dataset, source: Source) -> bool:
    """Whether federated ``source`` takes over ``dataset``, which another source holds: only from a manual source
    (lineage's, or one people register in), which no connector states, and never from another federated source,
    whose claim is a conflict to report (docs/concepts/catalog.md, Adoption)."""
    return source.kind != SourceKind.MANUAL.value and dataset.source.kind == SourceKind.MANUAL.value


def _snapshot_from_create(data: DatasetCreate, namespace: str) -> DatasetSnapshot:
    return DatasetSnapshot(
        namespace=namespace,
        name=data.name,
        kind=data.kind,
        fields=flatten(data.fields),
        format=data.format,
        location=data.location,
        partitioning=[p.model_dump(exclude_none=True) for p in data.partitioning],
        description=data.source_description,
        properties=data.source_properties,
    )


def _manual_source(session: Session, name: str) -> Source:
    source = ensure_manual_source(session) if name == DEFAULT_MANUAL_SOURCE else get_source(session, name=name)
    if source.kind != SourceKind.MANUAL.value:
        raise Conflict(
            f"source {name!r} is a {source.kind} source whose datasets come from syncing it; "
            "register datasets in a manual source",
            detail={"field": "source"},
        )
    return source


def register_dataset(session: Session, *, data: DatasetCreate, audience: Audience = None) -> Dataset:
    """Register a dataset by hand in a manual source (a deleted one with the same identity is restored).

    A name taken by a dataset restricted from ``audience`` is refused without its id: the name cannot be had
    twice, but the refusal must not hand out a handle to the hidden dataset."""
    source = _manual_source(session, data.source)
    namespace = data.namespace or source.namespace
    # The name may be a live dataset's own, or another name (an alias) of one: one dataset, one node. A deleted
    # dataset's own name is free: registering it restores that dataset.
    holder_id = identity.resolve_id(session, namespace, data.name)
    holder = session.get(Dataset, holder_id) if holder_id is not None else None
    if holder is not None and holder.deleted_at is None:
        if audience is not None and restrictions.hidden_among(session, [holder.id], audience):
            raise Conflict(
                f"the name {data.name!r} in namespace {namespace!r} is taken by a dataset you may not see; "
                "choose another name or ask an admin",
                detail={"field": "name"},
            )
        if (holder.namespace, holder.name) != (namespace, data.name):
            raise Conflict(
                f"{namespace}/{data.name} is another name of dataset {holder.id} ({holder.namespace}/{holder.name}); "
                "use that dataset",
                detail={"field": "name", "dataset_id": holder.id},
            )
        raise Conflict(
            f"dataset {data.name!r} in namespace {namespace!r} already exists with id {holder.id}",
            detail={"field": "name", "dataset_id": holder.id},
        )
    result = apply_snapshot(session, source=source, snapshot=_snapshot_from_create(data, namespace))
    dataset = result.dataset
    user_changes = DatasetUpdate(
        description=data.description, tags=data.tags, owners=data.owners, properties=data.properties
    )
    _apply_user_metadata(session, dataset, user_changes, record=False)
    session.flush()
    return dataset


def replace_manual_schema(
    session: Session,
    *,
    dataset_id: int,
    fields: Sequence[FieldIn],
    expected_revision: int | None,
    audience: Audience = None,
) -> tuple[Dataset, bool]:
    """Declare a new schema for a manual dataset; returns the dataset and whether a version was added."""
    dataset = get_dataset(session, dataset_id=dataset_id, for_update=True, audience=audience)
    _check_revision(dataset, expected_revision)
    source = dataset.source
    if source.kind != SourceKind.MANUAL.value:
        raise Conflict(
            f"dataset {dataset_id} comes from {source.kind} source {source.name!r}; its schema changes "
            "when the source does",
            detail={"field": "fields"},
        )
    snapshot = DatasetSnapshot(
        namespace=dataset.namespace,
        name=dataset.name,
        kind=DatasetKind(dataset.kind),
        fields=flatten(fields),
        format=dataset.format,
        location=dataset.location,
        partitioning=dataset.partitioning,
        description=dataset.source_description,
        properties=dataset.source_properties,
    )
    result = apply_snapshot(session, source=source, snapshot=snapshot)
    return result.dataset, result.outcome == "schema_changed"


def _record(session: Session, dataset: Dataset, kind: ChangeKind, payload: dict[str, Any]) -> None:
    """Append the change event of a dataset change (the last step of every write)."""
    record_change(
        session,
        kind=kind,
        entity_type="dataset",
        entity_id=dataset.id,
        namespace=dataset.namespace,
        name=dataset.name,
        payload=payload,
    )


def _check_revision(dataset: Dataset, expected_revision: int | None) -> None:
    if expected_revision is not None and expected_revision != dataset.revision:
        raise PreconditionFailed(
            f"dataset {dataset.id} changed since you read it (you have revision {expected_revision}, "
            f"it is now at {dataset.revision}); GET it again and reapply your change",
            detail={"current_etag": etag_of(dataset)},
        )


def etag_of(dataset: Dataset) -> str:
    """The dataset's current ETag (changes whenever anything about the dataset does)."""
    return f'"{dataset.id}.{dataset.revision}"'


def _apply_user_metadata(
    session: Session, dataset: Dataset, data: DatasetUpdate, *, record: bool, principal: Principal | None = None
) -> list[str]:
    """Apply user metadata changes; returns the names of what changed."""
    changes = data.model_fields_set
    changed: list[str] = []
    if "description" in changes and data.description != dataset.user_description:
        dataset.user_description = data.description
        changed.append("description")
    if data.tags is not None:
        wanted = list(dict.fromkeys(data.tags))
        if sorted(wanted) != sorted(t.tag for t in dataset.tags):
            before = {t.tag for t in dataset.tags}
            dataset.tags = [DatasetTag(tag=tag) for tag in sorted(wanted)]
            changed.append("tags")
            if restrictions.restricting_tags_among(session, before ^ set(wanted)):
                if principal is not None:  # adding or removing a restricting tag restricts or lifts
                    restrictions.check_restrict(principal, dataset)
                session.flush()
                restrictions.refresh_audience(session, [dataset.id])
    if data.owners is not None:
        owners = _dedupe_owners(data.owners)
        if owners != sorted((o.owner, o.role) for o in dataset.owners):
            dataset.owners = [DatasetOwner(owner=name, role=role) for name, role in owners]
            changed.append("owners")
    if data.properties is not None and data.properties != dataset.user_properties:
        dataset.user_properties = dict(data.properties)
        changed.append("properties")
    if data.fields:
        rows = {row.path: row for row in dataset.fields}
        unknown = sorted(set(data.fields) - set(rows))
        if unknown:
            raise InvalidInput(
                f"dataset {dataset.id} has no field {unknown[0]!r}; field paths are dotted, e.g. 'device.os'",
                detail={"field": "fields", "unknown": unknown[:20]},
            )
        for path, update in data.fields.items():
            row = rows[path]
            if "description" in update.model_fields_set and update.description != row.user_description:
                row.user_description = update.description
                changed.append(f"fields.{path}.description")
            if update.tags is not None and list(dict.fromkeys(update.tags)) != row.tags:
                flipped = set(row.tags or ()) ^ set(update.tags)
                row.tags = list(dict.fromkeys(update.tags))
                changed.append(f"fields.{path}.tags")
                if restrictions.restricting_tags_among(session, flipped):  # a pii column restricts its dataset
                    if principal is not None:
                        restrictions.check_restrict(principal, dataset)
                    session.flush()
                    restrictions.refresh_audience(session, [dataset.id])
    if changed and record:
        dataset.updated_at = utcnow()
        dataset.revision += 1
        session.flush()
        _record(session, dataset, ChangeKind.METADATA_UPDATED, {"by": "user", "changed": changed})
    return changed


def _dedupe_owners(owners: Sequence[Owner]) -> list[tuple[str, str]]:
    by_name: dict[str, str] = {}
    for owner in owners:
        if by_name.get(owner.name, owner.role) != owner.role:
            raise InvalidInput(f"owner {owner.name!r} is listed twice with different roles", detail={"field": "owners"})
        by_name[owner.name] = owner.role
    return sorted(by_name.items())


def update_dataset_metadata(
    session: Session,
    *,
    dataset_id: int,
    data: DatasetUpdate,
    expected_revision: int | None,
    principal: Principal | None = None,
) -> Dataset:
    """Change what people say about a dataset; refused when ``expected_revision`` is stale.

    ``principal`` (None: an internal caller) must see the dataset, and may add or remove a restricting tag only
    when it may restrict the dataset.
    """
    dataset = get_dataset(
        session, dataset_id=dataset_id, for_update=True, audience=restrictions.audience_or_all(principal)
    )
    _check_revision(dataset, expected_revision)
    _apply_user_metadata(session, dataset, data, record=True, principal=principal)
    session.flush()
    return dataset


def delete_dataset(
    session: Session, *, dataset_id: int, reason: str, expected_revision: int | None, audience: Audience = None
) -> Dataset:
    """Soft-delete a dataset with a reason; it stays readable with include_deleted and can come back."""
    dataset = get_dataset(session, dataset_id=dataset_id, for_update=True, audience=audience)
    _check_revision(dataset, expected_revision)
    mark_deleted(session, [dataset], reason=reason, payload={"by": "user"})
    return dataset


def mark_deleted(session: Session, datasets: Sequence[Dataset], *, reason: str, payload: dict[str, Any]) -> None:
    """Soft-delete locked, live datasets and append a ``deleted`` event for each (``reason`` joins ``payload``)."""
    now = utcnow()
    for dataset in datasets:
        dataset.deleted_at = now
        dataset.delete_reason = reason
        dataset.updated_at = now
        dataset.revision += 1
    session.flush()
    record_changes(
        session,
        [
            Change(
                ChangeKind.DELETED,
                "dataset",
                dataset.id,
                dataset.namespace,
                dataset.name,
                {"reason": reason, **payload},
            )
            for dataset in datasets
        ],
    )
