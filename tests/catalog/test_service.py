"""Catalog services on both databases: snapshots, schema history, user metadata, deletes, listing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from headwater.catalog import events, service, sources
from headwater.catalog.fields import FlatField
from headwater.catalog.models import ChangeEvent, ChangeKind, DatasetKind, SourceKind
from headwater.catalog.schemas import DatasetCreate, DatasetUpdate, FieldIn, FieldMetadataUpdate, Owner, SourceCreate
from headwater.errors import Conflict, InvalidInput, NotFound, PreconditionFailed
from headwater.secrets import KeyRing, SecretVault, generate_key


def _iceberg_source(session: Session) -> sources.Source:
    return sources.create_source(
        session,
        vault=SecretVault(keys=KeyRing(text=generate_key())),
        data=SourceCreate(
            name="lake",
            kind=SourceKind.ICEBERG,
            namespace="iceberg://lake",
            config={"uri": "http://127.0.0.1:8181"},
            secrets={"token": "t0p"},
        ),
    )


def _snapshot(*fields: FlatField, name: str = "analytics.title_daily_views", **kw: object) -> service.DatasetSnapshot:
    return service.DatasetSnapshot(namespace="iceberg://lake", name=name, fields=list(fields), **kw)  # type: ignore[arg-type]


def _change_kinds(session: Session) -> list[str]:
    return [c.kind for c in events.list_changes(session, after=0, limit=1000)]


def test_snapshot_creates_dataset_version_and_event(session: Session) -> None:
    source = _iceberg_source(session)
    result = service.apply_snapshot(
        session,
        source=source,
        snapshot=_snapshot(
            FlatField(path="title_id", name="title_id", type="long", field_id=1),
            FlatField(path="views", name="views", type="int", field_id=2),
            format="iceberg",
            location="s3://lake/title_daily_views",
        ),
    )
    session.commit()
    assert result.outcome == "created"
    dataset = service.get_dataset(session, dataset_id=result.dataset.id)
    assert [f.path for f in dataset.fields] == ["title_id", "views"]
    assert dataset.current_schema_version == 1
    assert dataset.field_count == 2
    assert _change_kinds(session) == ["created"]


def test_unchanged_snapshot_records_nothing(session: Session) -> None:
    source = _iceberg_source(session)
    snap = _snapshot(FlatField(path="a", name="a", type="int", field_id=1))
    service.apply_snapshot(session, source=source, snapshot=snap)
    again = service.apply_snapshot(session, source=source, snapshot=snap)
    assert again.outcome == "unchanged"
    assert again.dataset.revision == 1
    assert _change_kinds(session) == ["created"]


def test_rename_by_field_id_keeps_row_identity_and_user_metadata(session: Session) -> None:
    source = _iceberg_source(session)
    first = service.apply_snapshot(
        session,
        source=source,
        snapshot=_snapshot(
            FlatField(path="title", name="title", type="string", field_id=2),
            FlatField(path="views", name="views", type="int", field_id=3),
        ),
    ).dataset
    row_ids = {f.path: f.id for f in first.fields}
    service.update_dataset_metadata(
        session,
        dataset_id=first.id,
        data=DatasetUpdate(
            description="Daily views per title",
            tags=["tier-1"],
            fields={"title": FieldMetadataUpdate(description="Display title", tags=["certified"])},
        ),
        expected_revision=None,
    )
    result = service.apply_snapshot(
        session,
        source=source,
        snapshot=_snapshot(
            FlatField(path="title_name", name="title_name", type="string", field_id=2),
            FlatField(path="views", name="views", type="long", field_id=3),
            description="source comment changed too",
        ),
    )
    session.commit()
    assert result.outcome == "schema_changed"
    dataset = service.get_dataset(session, dataset_id=first.id)
    by_path = {f.path: f for f in dataset.fields}
    assert by_path["title_name"].id == row_ids["title"]
    assert by_path["title_name"].user_description == "Display title"
    assert by_path["title_name"].tags == ["certified"]
    assert dataset.user_description == "Daily views per title"
    assert [t.tag for t in dataset.tags] == ["tier-1"]
    assert dataset.source_description == "source comment changed too"
    version = service.get_schema_version(session, dataset_id=dataset.id, version=2)
    assert version.diff["renamed"] == [{"field_id": 2, "old_path": "title", "new_path": "title_name"}]
    assert version.diff["retyped"][0]["path"] == "views"
    assert _change_kinds(session) == ["created", "metadata_updated", "schema_changed", "metadata_updated"]


def test_swapped_paths_do_not_trip_the_unique_constraint(session: Session) -> None:
    source = _iceberg_source(session)
    service.apply_snapshot(
        session,
        source=source,
        snapshot=_snapshot(
            FlatField(path="a", name="a", type="int", field_id=1), FlatField(path="b", name="b", type="int", field_id=2)
        ),
    )
    result = service.apply_snapshot(
        session,
        source=source,
        snapshot=_snapshot(
            FlatField(path="b", name="b", type="int", field_id=1), FlatField(path="a", name="a", type="int", field_id=2)
        ),
    )
    session.commit()
    assert [(f.path, f.field_id) for f in result.dataset.fields] == [("b", 1), ("a", 2)]
    diff = service.get_schema_version(session, dataset_id=result.dataset.id, version=2).diff
    assert len(diff["renamed"]) == 2


def test_snapshot_for_a_dataset_of_another_source_is_refused(session: Session) -> None:
    lake = _iceberg_source(session)
    other = sources.create_source(
        session,
        data=SourceCreate(
            name="other", kind=SourceKind.ICEBERG, namespace="iceberg://lake", config={"uri": "http://127.0.0.1:8181"}
        ),
    )
    service.apply_snapshot(session, source=lake, snapshot=_snapshot())
    with pytest.raises(Conflict, match="belongs to source 'lake'"):
        service.apply_snapshot(session, source=other, snapshot=_snapshot())


def test_duplicate_paths_are_refused(session: Session) -> None:
    source = _iceberg_source(session)
    with pytest.raises(InvalidInput, match="'a' is declared more than once"):
        service.apply_snapshot(
            session,
            source=source,
            snapshot=_snapshot(FlatField(path="a", name="a", type="int"), FlatField(path="a", name="a", type="long")),
        )


def test_register_requires_a_manual_source(session: Session) -> None:
    _iceberg_source(session)
    with pytest.raises(Conflict, match="iceberg source whose datasets come from syncing"):
        service.register_dataset(session, data=DatasetCreate(source="lake", name="t"))


def test_register_twice_is_a_conflict_naming_the_existing_id(session: Session) -> None:
    first = service.register_dataset(session, data=DatasetCreate(namespace="kafka://k:9092", name="play"))
    with pytest.raises(Conflict, match=f"already exists with id {first.id}"):
        service.register_dataset(session, data=DatasetCreate(namespace="kafka://k:9092", name="play"))


def test_soft_delete_then_register_again_restores_with_history(session: Session) -> None:
    data = DatasetCreate(
        namespace="kafka://k:9092", name="play", kind=DatasetKind.TOPIC, fields=[FieldIn(name="a", type="int")]
    )
    dataset = service.register_dataset(session, data=data)
    service.delete_dataset(session, dataset_id=dataset.id, reason="topic retired", expected_revision=None)
    with pytest.raises(NotFound, match="reason: topic retired"):
        service.get_dataset(session, dataset_id=dataset.id)
    assert service.get_dataset(session, dataset_id=dataset.id, include_deleted=True).delete_reason == "topic retired"
    restored = service.register_dataset(session, data=data)
    session.commit()
    assert restored.id == dataset.id
    assert restored.deleted_at is None
    assert _change_kinds(session) == ["created", "deleted", "restored"]


def test_stale_revision_is_refused_and_changes_nothing(session: Session) -> None:
    dataset = service.register_dataset(session, data=DatasetCreate(namespace="kafka://k:9092", name="play"))
    service.update_dataset_metadata(
        session, dataset_id=dataset.id, data=DatasetUpdate(description="first"), expected_revision=1
    )
    with pytest.raises(PreconditionFailed, match="changed since you read it"):
        service.update_dataset_metadata(
            session, dataset_id=dataset.id, data=DatasetUpdate(description="second"), expected_revision=1
        )
    assert service.get_dataset(session, dataset_id=dataset.id).user_description == "first"


def test_unknown_field_path_in_metadata_update_is_named(session: Session) -> None:
    dataset = service.register_dataset(
        session, data=DatasetCreate(namespace="kafka://k:9092", name="play", fields=[FieldIn(name="a", type="int")])
    )
    with pytest.raises(InvalidInput, match="no field 'nope'"):
        service.update_dataset_metadata(
            session,
            dataset_id=dataset.id,
            data=DatasetUpdate(fields={"nope": FieldMetadataUpdate(description="x")}),
            expected_revision=None,
        )


def test_change_event_rolls_back_with_its_change(session: Session) -> None:
    service.register_dataset(session, data=DatasetCreate(namespace="kafka://k:9092", name="play"))
    session.rollback()
    assert session.scalar(select(func.count()).select_from(ChangeEvent)) == 0
    with pytest.raises(NotFound):
        service.get_dataset_by_name(session, namespace="kafka://k:9092", name="play")


def test_change_feed_ids_strictly_increase_and_filter_by_kind(session: Session) -> None:
    for i in range(5):
        ds = service.register_dataset(session, data=DatasetCreate(namespace="kafka://k:9092", name=f"t{i}"))
        service.delete_dataset(session, dataset_id=ds.id, reason="x", expected_revision=None)
    session.commit()
    feed = events.list_changes(session, after=0, limit=100)
    ids = [c.id for c in feed]
    assert ids == sorted(ids) and len(set(ids)) == 10
    deletes = events.list_changes(session, after=0, limit=100, kinds=[ChangeKind.DELETED])
    assert len(deletes) == 5
    assert events.list_changes(session, after=ids[6], limit=100) == feed[7:]


def _register_many(session: Session) -> None:
    for i in range(7):
        service.register_dataset(
            session,
            data=DatasetCreate(
                namespace="kafka://k:9092" if i % 2 else "hive://meta:9083",
                name=f"db.t{i:02d}",
                kind=DatasetKind.TOPIC if i % 2 else DatasetKind.TABLE,
                tags=["pii"] if i % 3 == 0 else [],
                owners=[Owner(name="team:playback")] if i < 3 else [],
            ),
        )
    session.commit()


def test_list_filters_combine(session: Session) -> None:
    _register_many(session)
    filters = service.DatasetFilters
    names = lambda f: [d.name for d in service.list_datasets(session, filters=f, limit=100).items]  # noqa: E731
    assert names(filters(tag="pii")) == ["db.t00", "db.t03", "db.t06"]
    assert names(filters(owner="team:playback", kind=DatasetKind.TABLE)) == ["db.t00", "db.t02"]
    assert names(filters(namespace="kafka://k:9092", name_prefix="db.t0")) == ["db.t01", "db.t03", "db.t05"]
    assert names(filters(name_prefix="db_")) == []  # '_' is literal, not a LIKE wildcard
    with pytest.raises(NotFound, match="no source named 'nope'"):
        service.list_datasets(session, filters=filters(source="nope"))


@pytest.mark.parametrize("sort", ["name", "-name", "id", "-updated_at", "created_at"])
def test_cursor_pagination_visits_every_row_once(session: Session, sort: str) -> None:
    _register_many(session)
    seen: list[str] = []
    cursor = None
    while True:
        page = service.list_datasets(session, filters=service.DatasetFilters(), sort=sort, cursor=cursor, limit=3)
        assert page.total == 7
        seen.extend(d.name for d in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == [f"db.t{i:02d}" for i in range(7)]
    assert len(seen) == 7
    if sort in ("name", "-name"):
        assert seen == sorted(seen, reverse=sort.startswith("-"))


def test_cursor_from_another_sort_is_refused(session: Session) -> None:
    _register_many(session)
    page = service.list_datasets(session, filters=service.DatasetFilters(), sort="name", limit=2)
    with pytest.raises(InvalidInput, match="issued for sort 'name', not 'id'"):
        service.list_datasets(session, filters=service.DatasetFilters(), sort="id", cursor=page.next_cursor, limit=2)


def test_source_with_live_datasets_cannot_be_removed(session: Session) -> None:
    service.register_dataset(session, data=DatasetCreate(name="t"))
    with pytest.raises(Conflict, match="still has 1 dataset"):
        sources.delete_source(session, name="manual")
