"""Bulk creation (a first sync's path) on both databases: row for row what applying each snapshot alone
writes, and a clean refusal when a dataset appeared meanwhile."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from headwater.catalog import bulk, events, service, sources
from headwater.catalog.fields import FlatField
from headwater.catalog.models import DatasetKind, Field, SchemaVersion, SourceKind
from headwater.catalog.schemas import SourceCreate
from headwater.catalog.service import DatasetSnapshot, HistoricalSchema
from headwater.db import COPY_MIN_ROWS
from headwater.errors import InvalidInput

NS = "iceberg://lake"


def _source(session: Session) -> sources.Source:
    return sources.create_source(
        session,
        data=SourceCreate(name="lake", kind=SourceKind.ICEBERG, namespace=NS, config={"uri": "http://127.0.0.1:1"}),
    )


def _snapshot(name: str) -> DatasetSnapshot:
    """A table whose history holds a rename, a widening and a repeated schema (which adds no version)."""
    v1 = [
        FlatField("id", "id", "int", nullable=False, field_id=1),
        FlatField("views", "views", "int", field_id=2, description="views"),
    ]
    v2 = [v1[0], FlatField("view_count", "view_count", "long", field_id=2, description="views")]
    current = [
        *v2,
        FlatField("device", "device", "struct<os:string>", field_id=3),
        FlatField("device.os", "os", "string", parent_path="device", field_id=4, tags=("pii",)),
    ]
    return DatasetSnapshot(
        namespace=NS,
        name=name,
        kind=DatasetKind.TABLE,
        fields=current,
        format="iceberg",
        location="file:///warehouse/views",
        partitioning=[{"column": "id", "transform": "bucket[4]"}],
        description="daily views",
        properties={"owner": "growth"},
        source_schema_id="2",
        schema_history=[
            HistoricalSchema(v1, "0"),
            HistoricalSchema(v1, "0b"),
            HistoricalSchema(v2, "1"),
        ],
    )


def _written(session: Session, dataset_id: int) -> dict[str, Any]:
    dataset = service.get_dataset(session, dataset_id=dataset_id)
    fields = session.execute(
        select(*service.FIELD_VIEW_COLUMNS).where(Field.dataset_id == dataset_id).order_by(Field.position)
    ).all()
    versions = session.execute(
        select(
            SchemaVersion.version,
            SchemaVersion.fingerprint,
            SchemaVersion.fields,
            SchemaVersion.diff,
            SchemaVersion.source_schema_id,
        )
        .where(SchemaVersion.dataset_id == dataset_id)
        .order_by(SchemaVersion.version)
    ).all()
    facts = ("kind", "format", "location", "partitioning", "source_description", "source_properties")
    return {
        "facts": {key: getattr(dataset, key) for key in facts},
        "current": dataset.current_schema_version,
        "field_count": dataset.field_count,
        "revision": dataset.revision,
        "fields": [tuple(row) for row in fields],
        "versions": [tuple(row) for row in versions],
    }


# A page of 2 goes through INSERT; one of COPY_MIN_ROWS + 5 through COPY on PostgreSQL.
PAGE_SIZES = pytest.mark.parametrize("count", [2, COPY_MIN_ROWS + 5], ids=["insert", "copy"])


@PAGE_SIZES
def test_bulk_creation_writes_what_applying_each_snapshot_writes(session: Session, count: int) -> None:
    source = _source(session)
    one = service.apply_snapshot(session, source=source, snapshot=_snapshot("raw.one_by_one")).dataset
    names = [f"raw.bulk_{i:03d}" for i in range(count)]
    created = bulk.create_datasets(session, source=source, snapshots=[_snapshot(name) for name in names])
    session.commit()

    assert [c.name for c in created] == names
    assert [c.schema_version for c in created] == [3] * count  # v1, v2, current; the repeated v1 adds none
    expected = _written(session, one.id)
    assert expected["versions"][1][3]["renamed"] == [{"field_id": 2, "old_path": "views", "new_path": "view_count"}]
    for item in created:
        assert _written(session, item.id) == expected
    changes = events.list_changes(session, after=0, limit=100)
    assert [(c.kind, c.name, c.payload) for c in changes] == [
        ("created", name, {"source": "lake", "schema_version": 3}) for name in ("raw.one_by_one", *names)
    ]
    assert [c.entity_id for c in changes] == [one.id, *(c.id for c in created)]


@PAGE_SIZES
def test_bulk_creation_refuses_a_dataset_that_exists_and_leaves_nothing_behind(session: Session, count: int) -> None:
    source = _source(session)
    service.apply_snapshot(session, source=source, snapshot=_snapshot("raw.taken"))
    session.commit()
    fresh = [_snapshot(f"raw.fresh_{i:03d}") for i in range(count - 1)]
    with pytest.raises(IntegrityError), session.begin_nested():
        bulk.create_datasets(session, source=source, snapshots=[*fresh, _snapshot("raw.taken")])
    session.commit()
    names = [d.name for d in service.list_datasets(session, filters=service.DatasetFilters()).items]
    assert names == ["raw.taken"]
    assert len(events.list_changes(session, after=0, limit=100)) == 1


def test_invalid_schemas_are_refused_with_the_field_named() -> None:
    twice = [FlatField("a", "a", "int"), FlatField("a", "a", "long")]
    with pytest.raises(InvalidInput, match="'a' is declared more than once"):
        bulk.validate_fields(twice)
    same_id = [FlatField("a", "a", "int", field_id=1), FlatField("b", "b", "int", field_id=1)]
    with pytest.raises(InvalidInput, match="share one field_id"):
        bulk.validate_fields(same_id)
