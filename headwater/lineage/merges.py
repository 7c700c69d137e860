"""Two datasets that are one: an admin merges the duplicate into the other, and can undo it.

It happens when one table reached the catalog under two names nothing linked: a Spark job wrote
``s3://lake/warehouse/orders`` with no symlinks facet before the Hive sync listed ``warehouse.orders``, or two
catalogs (a Hive Metastore and an Iceberg REST catalog) federate the same table. DataHub answers this with
"siblings" shown side by side; Marquez and Metacat have nothing. Here the two become one node:

- **Names.** The duplicate is kept (deleted, ``merged_into_id`` set): every name it had, its own and its aliases,
  resolves to the dataset it was merged into (:mod:`headwater.catalog.identity`), in lookups and in the events
  producers send from then on. A source that still lists the duplicate leaves it as it is.
- **Lineage.** Its jobs, dataset edges, column edges and column-lineage confirmations move to the other dataset,
  columns matched by path. A row the other dataset has already (the same job writing both names) is removed, and
  so is an edge that would now point at itself. A column edge through a column the other dataset does not have
  stays with the duplicate, and the merge says how many.
- **What people wrote.** Its description, properties, tags and owners, and its columns' descriptions and tags,
  fill in what the other dataset lacks; nothing the other dataset has is overwritten.

Everything the merge changed is recorded in its :class:`~headwater.lineage.models.DatasetMerge` row, so undoing
it puts back exactly that: the rows it moved go back (where they still point where the merge put them), the rows
it removed come back, the metadata it copied is taken away where nobody changed it since, and the duplicate is
live again if it was before. Lineage recorded after the merge through the duplicate's names stays where it
went. Merges undo in reverse order: a merge that a later merge of either dataset builds on waits for that one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, and_, delete, insert, or_, select, update
from sqlalchemy.orm import Session, selectinload

from headwater.catalog import restrictions
from headwater.catalog.events import Change, record_changes
from headwater.catalog.models import ChangeKind, Dataset, DatasetOwner, DatasetTag
from headwater.db import utcnow
from headwater.errors import Conflict, InvalidInput, NotFound
from headwater.lineage.models import ColumnConfirmation, ColumnEdge, DatasetEdge, DatasetMerge, JobDataset

__all__ = ["MergeOutcome", "get_merge", "list_merges", "merge_datasets", "undo_merge"]

_JOBS = cast(Table, JobDataset.__table__)
_EDGES = cast(Table, DatasetEdge.__table__)
_COLUMNS = cast(Table, ColumnEdge.__table__)
_CONFIRMATIONS = cast(Table, ColumnConfirmation.__table__)


@dataclass(frozen=True)
class _Kind:
    """How one lineage table points at datasets: the columns to repoint, its key, and whether a row would point
    at itself once repointed."""

    table: Table
    touches: Callable[[int], Any]  # the rows pointing at a dataset
    key: tuple[str, ...]  # the unique key a moved row must not collide on
    pk: tuple[str, ...]
    loop: tuple[str, str] | None = None


_KINDS = {
    "jobs": _Kind(_JOBS, lambda d: _JOBS.c.dataset_id == d, ("job_id", "dataset_id", "direction"), ("id",)),
    "dataset_edges": _Kind(
        _EDGES,
        lambda d: or_(_EDGES.c.source_id == d, _EDGES.c.target_id == d),
        ("source_id", "target_id", "job_id"),
        ("id",),
        ("source_id", "target_id"),
    ),
    "column_edges": _Kind(
        _COLUMNS,
        lambda d: or_(_COLUMNS.c.source_dataset_id == d, _COLUMNS.c.target_dataset_id == d),
        ("source_field_id", "target_field_id", "job_id", "transformation_type", "subtype"),
        ("id",),
        ("source_field_id", "target_field_id"),
    ),
    "confirmations": _Kind(
        _CONFIRMATIONS,
        lambda d: _CONFIRMATIONS.c.target_dataset_id == d,
        ("job_id", "target_dataset_id"),
        ("job_id", "target_dataset_id"),
    ),
}
_DATASET_COLUMNS = {"dataset_id", "source_id", "target_id", "source_dataset_id", "target_dataset_id"}
_FIELD_COLUMNS = {"source_field_id", "target_field_id"}


@dataclass
class MergeOutcome:
    """A merge (or its undoing) and what it did, counted."""

    merge: DatasetMerge
    moved: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)
    unmoved_columns: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------- rows as JSON


def _dump(row: dict[str, Any]) -> dict[str, Any]:
    return {k: {"$t": v.isoformat()} if isinstance(v, dt.datetime) else v for k, v in row.items()}


def _load(row: dict[str, Any]) -> dict[str, Any]:
    return {k: dt.datetime.fromisoformat(v["$t"]) if isinstance(v, dict) and "$t" in v else v for k, v in row.items()}


# ------------------------------------------------------------------------------------- merge


def _locked(session: Session, ids: Iterable[int]) -> dict[int, Dataset]:
    rows = session.scalars(
        select(Dataset)
        .options(selectinload(Dataset.fields), selectinload(Dataset.tags), selectinload(Dataset.owners))
        .where(Dataset.id.in_(sorted(set(ids))))
        .order_by(Dataset.id)
        .with_for_update(of=Dataset)
    )
    return {dataset.id: dataset for dataset in rows}


def _label(dataset: Dataset) -> str:
    return f"{dataset.id} ({dataset.namespace}/{dataset.name})"


def _check_merge(session: Session, into: Dataset, duplicate: Dataset) -> None:
    if into.merged_into_id is not None:
        raise Conflict(
            f"dataset {_label(into)} was itself merged into dataset {into.merged_into_id}: merge into that one",
            detail={"field": "dataset_id", "merged_into": into.merged_into_id},
        )
    if into.deleted_at is not None:
        raise Conflict(f"dataset {_label(into)} is deleted: merge into a live dataset", detail={"field": "dataset_id"})
    if duplicate.merged_into_id is not None:
        raise Conflict(
            f"dataset {_label(duplicate)} is already merged into dataset {duplicate.merged_into_id}",
            detail={"field": "duplicate_id", "merged_into": duplicate.merged_into_id},
        )
    audiences = restrictions.audience_members(session, [into.id, duplicate.id])
    if duplicate.id in audiences and audiences.get(into.id) != audiences[duplicate.id]:
        raise Conflict(
            f"dataset {_label(duplicate)} is restricted to {sorted(audiences[duplicate.id])} and dataset "
            f"{_label(into)} is not restricted the same way: its names would reach what its restriction hides. "
            "Restrict the dataset it is merged into the same way first, or lift the restriction",
            detail={"field": "duplicate_id"},
        )


def _repoint(
    session: Session, kind: _Kind, into_id: int, duplicate_id: int, fields: dict[int, int]
) -> tuple[list[list[Any]], list[dict[str, Any]], list[int]]:
    """Repoint the rows of ``kind`` that point at the duplicate: (moved: pk + old values, removed rows, ids of
    the field rows left behind for want of a column)."""
    table = kind.table
    rows = [dict(row._mapping) for row in session.execute(select(table).where(kind.touches(duplicate_id)))]
    if not rows:
        return [], [], []
    taken = {
        tuple(row[c] for c in kind.key)
        for row in (dict(r._mapping) for r in session.execute(select(table).where(kind.touches(into_id))))
    }
    moved: list[list[Any]] = []
    removed: list[dict[str, Any]] = []
    left: list[int] = []
    for row in rows:
        new = dict(row)
        for column in _DATASET_COLUMNS & row.keys():
            if row[column] == duplicate_id:
                new[column] = into_id
        missing = [row[c] for c in _FIELD_COLUMNS & row.keys() if row[c] in fields and fields[row[c]] is None]
        if missing:
            left.extend(missing)
            continue
        for column in _FIELD_COLUMNS & row.keys():
            new[column] = fields.get(row[column], row[column])
        changed = {c: row[c] for c in row if new[c] != row[c]}
        match = and_(*(table.c[c] == row[c] for c in kind.pk))
        key = tuple(new[c] for c in kind.key)
        if key in taken or (kind.loop is not None and new[kind.loop[0]] == new[kind.loop[1]]):
            session.execute(delete(table).where(match))
            removed.append(_dump(row))
            continue
        session.execute(update(table).where(match).values({c: new[c] for c in changed}))
        taken.add(key)
        moved.append([[new[c] for c in kind.pk], changed])
    return moved, removed, left


def _copy_metadata(session: Session, into: Dataset, duplicate: Dataset) -> dict[str, Any]:
    """Fill in what ``into`` lacks from what people wrote on ``duplicate``; what was filled in."""
    copied: dict[str, Any] = {}
    if not into.user_description and duplicate.user_description:
        into.user_description = copied["description"] = duplicate.user_description
    properties = {k: v for k, v in duplicate.user_properties.items() if k not in into.user_properties}
    if properties:
        into.user_properties = {**into.user_properties, **properties}
        copied["properties"] = properties
    tags = sorted({t.tag for t in duplicate.tags} - {t.tag for t in into.tags})
    for tag in tags:
        session.add(DatasetTag(dataset_id=into.id, tag=tag))
    owners = {o.owner: o.role for o in duplicate.owners if o.owner not in {x.owner for x in into.owners}}
    for owner, role in owners.items():
        session.add(DatasetOwner(dataset_id=into.id, owner=owner, role=role))
    if tags:
        copied["tags"] = tags
    if owners:
        copied["owners"] = sorted(owners)
    theirs = {f.path: f for f in duplicate.fields}
    columns: dict[str, dict[str, Any]] = {}
    for mine in into.fields:
        other = theirs.get(mine.path)
        if other is None:
            continue
        filled: dict[str, Any] = {}
        if not mine.user_description and other.user_description:
            mine.user_description = filled["description"] = other.user_description
        extra = [t for t in other.tags if t not in mine.tags]
        if extra:
            mine.tags = [*mine.tags, *extra]
            filled["tags"] = extra
        if filled:
            columns[mine.path] = filled
    if columns:
        copied["columns"] = columns
    if tags:
        restrictions.refresh_audience(session, [into.id])
    return copied


def merge_datasets(
    session: Session, *, into_id: int, duplicate_id: int, by: str, reason: str | None = None
) -> MergeOutcome:
    """Merge dataset ``duplicate_id`` into ``into_id`` (see the module doc); the merge and what it moved."""
    if into_id == duplicate_id:
        raise InvalidInput("a dataset cannot be merged into itself", detail={"field": "duplicate_id"})
    found = _locked(session, [into_id, duplicate_id])
    for dataset_id, name in ((into_id, "dataset_id"), (duplicate_id, "duplicate_id")):
        if dataset_id not in found:
            raise NotFound(f"no dataset {dataset_id}", detail={"field": name})
    into, duplicate = found[into_id], found[duplicate_id]
    _check_merge(session, into, duplicate)

    theirs = {f.path: f.id for f in into.fields}
    fields: dict[int, int | None] = {f.id: theirs.get(f.path) for f in duplicate.fields}
    outcome_moved: dict[str, int] = {}
    outcome_removed: dict[str, int] = {}
    record: dict[str, Any] = {"moved": {}, "removed": {}}
    left: set[int] = set()
    for name, kind in _KINDS.items():
        moved, removed, stayed = _repoint(session, kind, into.id, duplicate.id, cast(dict[int, int], fields))
        record["moved"][name], record["removed"][name] = moved, removed
        outcome_moved[name], outcome_removed[name] = len(moved), len(removed)
        left.update(stayed)
    # Datasets merged into the duplicate before now point at the one it is merged into (resolution is one step).
    earlier = list(session.scalars(select(Dataset.id).where(Dataset.merged_into_id == duplicate.id)))
    if earlier:
        session.execute(update(Dataset).where(Dataset.id.in_(earlier)).values(merged_into_id=into.id))
    record["earlier"] = earlier
    record["copied"] = _copy_metadata(session, into, duplicate)
    now = utcnow()
    record["was_live"] = duplicate.deleted_at is None
    if duplicate.deleted_at is None:
        duplicate.deleted_at = now
        duplicate.delete_reason = f"merged into dataset {_label(into)} by {by}"
    duplicate.merged_into_id = into.id
    for dataset in (into, duplicate):
        dataset.revision += 1
        dataset.updated_at = now
    by_path = {f.id: f.path for f in duplicate.fields}
    unmoved: list[str] = sorted({by_path[i] for i in left if i in by_path})
    record["unmoved_columns"] = unmoved
    merge = DatasetMerge(
        into_id=into.id, duplicate_id=duplicate.id, merged_by=by, merged_at=now, reason=reason, moved=record
    )
    session.add(merge)
    session.flush()
    _announce(session, ChangeKind.MERGED, merge, into, duplicate, moved=outcome_moved, unmoved_columns=unmoved)
    return MergeOutcome(merge, outcome_moved, outcome_removed, unmoved)


def _announce(
    session: Session, kind: ChangeKind, merge: DatasetMerge, into: Dataset, duplicate: Dataset, **extra: Any
) -> None:
    payload = {"merge_id": merge.id, "into": into.id, "duplicate": duplicate.id, **extra}
    record_changes(
        session,
        [Change(kind, "dataset", d.id, d.namespace, d.name, payload) for d in sorted((into, duplicate), key=_id)],
    )


def _id(dataset: Dataset) -> int:
    return dataset.id


# ------------------------------------------------------------------------------------- undo


def get_merge(session: Session, merge_id: int, *, for_update: bool = False) -> DatasetMerge:
    """One merge; NotFound when there is none."""
    statement = select(DatasetMerge).where(DatasetMerge.id == merge_id)
    merge = session.scalar(statement.with_for_update() if for_update else statement)
    if merge is None:
        raise NotFound(f"no dataset merge {merge_id}")
    return merge


def list_merges(session: Session, *, dataset_id: int | None = None, limit: int = 100) -> list[DatasetMerge]:
    """Merges, newest first; with ``dataset_id``, those it took part in."""
    statement = select(DatasetMerge).order_by(DatasetMerge.id.desc()).limit(limit)
    if dataset_id is not None:
        statement = statement.where(or_(DatasetMerge.into_id == dataset_id, DatasetMerge.duplicate_id == dataset_id))
    return list(session.scalars(statement))


def _restore_rows(session: Session, merge: DatasetMerge) -> tuple[dict[str, int], dict[str, int]]:
    record = merge.moved
    moved: dict[str, int] = {}
    restored: dict[str, int] = {}
    for name, kind in _KINDS.items():
        table = kind.table
        count = 0
        for pk, old in record["moved"].get(name, []):
            match = and_(*(table.c[c] == v for c, v in zip(kind.pk, pk, strict=True)))
            # Only where the row still points where the merge put it.
            still = and_(*(table.c[c] == merge.into_id for c in old if c in _DATASET_COLUMNS))
            count += session.connection().execute(update(table).where(match, still).values(old)).rowcount or 0
        moved[name] = count
        rows = [_load(row) for row in record["removed"].get(name, [])]
        if kind.pk == ("id",):
            rows = [{k: v for k, v in row.items() if k != "id"} for row in rows]  # an id may have been reused
        if rows:
            session.execute(insert(table), rows)
        restored[name] = len(rows)
    return moved, restored


def _uncopy(session: Session, into: Dataset, copied: dict[str, Any]) -> None:
    if "description" in copied and into.user_description == copied["description"]:
        into.user_description = None
    if copied.get("properties"):
        into.user_properties = {
            k: v for k, v in into.user_properties.items() if copied["properties"].get(k, object()) != v
        }
    if copied.get("tags"):
        session.execute(delete(DatasetTag).where(DatasetTag.dataset_id == into.id, DatasetTag.tag.in_(copied["tags"])))
        restrictions.refresh_audience(session, [into.id])
    if copied.get("owners"):
        session.execute(
            delete(DatasetOwner).where(DatasetOwner.dataset_id == into.id, DatasetOwner.owner.in_(copied["owners"]))
        )
    columns = copied.get("columns", {})
    for mine in into.fields:
        filled = columns.get(mine.path)
        if not filled:
            continue
        if "description" in filled and mine.user_description == filled["description"]:
            mine.user_description = None
        if filled.get("tags"):
            mine.tags = [t for t in mine.tags if t not in filled["tags"]]
    session.expire(into, ["tags", "owners"])


def undo_merge(session: Session, *, merge_id: int, by: str) -> MergeOutcome:
    """Undo merge ``merge_id`` (see the module doc); Conflict when it was undone, or when a later merge of either
    dataset must be undone first."""
    merge = get_merge(session, merge_id, for_update=True)
    if merge.undone_at is not None:
        raise Conflict(
            f"dataset merge {merge.id} was undone at {merge.undone_at.isoformat()} by {merge.undone_by}",
            detail={"field": "merge_id"},
        )
    pair = (merge.into_id, merge.duplicate_id)
    later = session.scalar(
        select(DatasetMerge.id)
        .where(
            DatasetMerge.id > merge.id,
            DatasetMerge.undone_at.is_(None),
            or_(DatasetMerge.into_id.in_(pair), DatasetMerge.duplicate_id.in_(pair)),
        )
        .order_by(DatasetMerge.id.desc())
        .limit(1)
    )
    if later is not None:
        raise Conflict(
            f"dataset merge {later} was made after this one with one of its datasets: undo it first",
            detail={"field": "merge_id", "undo_first": later},
        )
    found = _locked(session, pair)
    into, duplicate = found[merge.into_id], found[merge.duplicate_id]
    moved, restored = _restore_rows(session, merge)
    record = merge.moved
    if record.get("earlier"):
        session.execute(
            update(Dataset)
            .where(Dataset.id.in_(record["earlier"]), Dataset.merged_into_id == into.id)
            .values(merged_into_id=duplicate.id)
        )
    _uncopy(session, into, record.get("copied", {}))
    now = utcnow()
    duplicate.merged_into_id = None
    if record.get("was_live"):
        duplicate.deleted_at = None
        duplicate.delete_reason = None
    for dataset in (into, duplicate):
        dataset.revision += 1
        dataset.updated_at = now
    merge.undone_at, merge.undone_by = now, by
    session.flush()
    _announce(session, ChangeKind.UNMERGED, merge, into, duplicate, moved_back=moved)
    return MergeOutcome(merge, moved, restored)
