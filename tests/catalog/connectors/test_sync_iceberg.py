"""The sync engine against a real Iceberg warehouse, on both databases: history, incremental sync,
deletion only after complete listings, faults mid-sync, user metadata, the lease and periodic sync."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from headwater.catalog import events, service, sources, sync, sync_pages, sync_scheduler
from headwater.catalog.connectors.iceberg import IcebergConnector
from headwater.catalog.models import SourceKind, SourceStatus
from headwater.catalog.schemas import DatasetCreate, DatasetUpdate, FieldMetadataUpdate, Owner, SourceCreate
from headwater.catalog.sync_models import SyncLease, SyncMode, SyncRun, SyncStatus, SyncTrigger
from headwater.db import session_scope, utcnow

NS = "iceberg://lake"


def _add_source(factory: sessionmaker[Session], config: dict[str, Any], name: str = "lake") -> None:
    with session_scope(factory) as session:
        sources.create_source(
            session, data=SourceCreate(name=name, kind=SourceKind.ICEBERG, namespace=NS, config=config)
        )


def _dataset(factory: sessionmaker[Session], name: str, include_deleted: bool = False) -> service.Dataset:
    with session_scope(factory) as session:
        return service.get_dataset_by_name(session, namespace=NS, name=name, include_deleted=include_deleted)


def _versions(factory: sessionmaker[Session], dataset_id: int) -> list[Any]:
    with session_scope(factory) as session:
        page = service.list_schema_versions(session, dataset_id=dataset_id, newest_first=False)
        return page.items


def _event_kinds(factory: sessionmaker[Session], name: str) -> list[str]:
    with session_scope(factory) as session:
        return [e.kind for e in events.list_changes(session, after=0, limit=1000) if e.name == name]


def test_first_sync_records_every_schema_and_the_physical_facts(
    sync_factory: sessionmaker[Session], warehouse: Any
) -> None:
    warehouse.rename_and_widen()
    _add_source(sync_factory, warehouse.config())
    run = sync.run_sync(sync_factory, source_name="lake", trigger=SyncTrigger.CLI)
    assert (run.status, run.complete, run.added, run.failed, run.deleted) == ("succeeded", True, 3, 0, 0)
    assert run.listed == 3 and run.duration_seconds is not None and run.finished_at is not None

    views = _dataset(sync_factory, "analytics.title_views")
    assert [f.path for f in views.fields] == [
        "id", "country", "ts", "view_count", "device", "device.os", "device.tags", "device.tags.element",
        "attrs", "attrs.key", "attrs.value",
    ]  # fmt: skip
    by_path = {f.path: f for f in views.fields}
    assert by_path["view_count"].type == "long" and by_path["view_count"].field_id == 4
    assert by_path["id"].nullable is False and by_path["country"].source_description == "ISO country code"
    assert by_path["device.tags"].normalized_type == "array" and by_path["attrs"].normalized_type == "map"
    assert views.format == "iceberg" and views.location and views.location.endswith("analytics/title_views")
    assert [(p["column"], p["transform"]) for p in views.partitioning] == [
        ("country", "identity"),
        ("ts", "day"),
        ("id", "bucket[16]"),
    ]
    props = views.source_properties
    assert props["iceberg.format_version"] == "2" and props["iceberg.sort_order"] == "ts ASC NULLS FIRST"
    assert props["iceberg.snapshot.added-records"] == "4" and props["iceberg.snapshot.operation"] == "append"
    assert props["namespace.owner"] == "team:analytics" and props["write.format.default"] == "parquet"
    assert views.source_description == "views per title per day"

    history = _versions(sync_factory, views.id)
    assert [(v.version, v.source_schema_id) for v in history] == [(1, "0"), (2, "1")]
    diff = history[1].diff
    assert diff["renamed"] == [{"field_id": 4, "old_path": "views", "new_path": "view_count"}]
    assert [(r["path"], r["old_type"], r["new_type"]) for r in diff["retyped"]] == [("view_count", "int", "long")]
    assert diff["added"] == [] and diff["removed"] == []
    with session_scope(sync_factory) as session:
        source = sources.get_source(session, name="lake")
        assert source.status == SourceStatus.HEALTHY.value and source.last_sync_at is not None


def test_incremental_resync_loads_only_changed_tables_and_keeps_user_metadata(
    sync_factory: sessionmaker[Session], warehouse: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _add_source(sync_factory, warehouse.config())
    sync.run_sync(sync_factory, source_name="lake")
    views = _dataset(sync_factory, "analytics.title_views")
    with session_scope(sync_factory) as session:
        service.update_dataset_metadata(
            session,
            dataset_id=views.id,
            data=DatasetUpdate(
                description="Our most watched titles",
                tags=["gold"],
                owners=[Owner(name="team:content")],
                fields={"views": FieldMetadataUpdate(description="plays over 2 minutes", tags=["metric"])},
            ),
            expected_revision=None,
        )

    loaded: list[str] = []
    real_load = IcebergConnector.load

    def counting_load(self: IcebergConnector, ref: Any) -> Any:
        loaded.append(ref.name)
        return real_load(self, ref)

    monkeypatch.setattr(IcebergConnector, "load", counting_load)
    quiet = sync.run_sync(sync_factory, source_name="lake")
    assert (quiet.unchanged, quiet.changed, quiet.added, loaded) == (3, 0, 0, [])

    warehouse.rename_and_widen()
    changed = sync.run_sync(sync_factory, source_name="lake")
    assert (changed.changed, changed.unchanged, loaded) == (1, 2, ["analytics.title_views"])
    after = _dataset(sync_factory, "analytics.title_views")
    assert after.current_schema_version == 2
    assert after.user_description == "Our most watched titles"
    assert [t.tag for t in after.tags] == ["gold"] and [o.owner for o in after.owners] == ["team:content"]
    renamed = next(f for f in after.fields if f.path == "view_count")
    assert renamed.user_description == "plays over 2 minutes" and renamed.tags == ["metric"]
    assert _event_kinds(sync_factory, "analytics.title_views") == ["created", "metadata_updated", "schema_changed"]

    full = sync.run_sync(sync_factory, source_name="lake", mode=SyncMode.FULL)
    assert (full.mode, full.unchanged, full.changed) == ("full", 3, 0)
    assert len(loaded) == 4  # the full sync loaded every table, and found nothing new


def test_a_full_resync_skips_unchanged_tables_in_bulk_and_still_sees_every_kind_of_change(
    sync_factory: sessionmaker[Session], warehouse: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyiceberg.types import StringType

    _add_source(sync_factory, warehouse.config())
    sync.run_sync(sync_factory, source_name="lake")
    with session_scope(sync_factory) as session:
        before = events.latest_change_id(session)
    applied: list[str] = []
    real_apply = sync_pages.apply_snapshot

    def counting_apply(session: Session, *, source: Any, snapshot: Any) -> Any:
        applied.append(snapshot.name)
        return real_apply(session, source=source, snapshot=snapshot)

    monkeypatch.setattr(sync_pages, "apply_snapshot", counting_apply)
    quiet = sync.run_sync(sync_factory, source_name="lake", mode=SyncMode.FULL)
    assert (quiet.unchanged, quiet.changed, applied) == (3, 0, [])
    with session_scope(sync_factory) as session:
        assert events.latest_change_id(session) == before

    warehouse.add_column("analytics.title_views", "genre")  # a schema change
    with warehouse.catalog.load_table("analytics.titles").transaction() as tx:  # a property change
        tx.set_properties({"owner": "team:catalog"})
    with warehouse.catalog.load_table("raw.clicks").update_schema() as update:  # only a column comment
        update.update_column("name", StringType(), doc="the click's label")
    changed = sync.run_sync(sync_factory, source_name="lake", mode=SyncMode.FULL)
    assert (changed.changed, changed.unchanged) == (3, 0)
    assert sorted(applied) == ["analytics.title_views", "analytics.titles", "raw.clicks"]
    assert _event_kinds(sync_factory, "analytics.title_views")[-1] == "schema_changed"
    assert _event_kinds(sync_factory, "analytics.titles")[-1] == "metadata_updated"
    assert _dataset(sync_factory, "analytics.titles").source_properties["owner"] == "team:catalog"
    clicks = _dataset(sync_factory, "raw.clicks")
    assert next(f for f in clicks.fields if f.path == "name").source_description == "the click's label"


def test_a_table_dropped_at_the_source_is_soft_deleted_after_a_complete_listing(
    sync_factory: sessionmaker[Session], warehouse: Any
) -> None:
    _add_source(sync_factory, warehouse.config(page_size=1))
    sync.run_sync(sync_factory, source_name="lake")
    warehouse.catalog.drop_table("raw.clicks")
    run = sync.run_sync(sync_factory, source_name="lake")
    assert (run.status, run.complete, run.deleted, run.unchanged) == ("succeeded", True, 1, 2)
    gone = _dataset(sync_factory, "raw.clicks", include_deleted=True)
    assert gone.deleted_at is not None and f"sync run {run.id}" in (gone.delete_reason or "")
    assert _event_kinds(sync_factory, "raw.clicks") == ["created", "deleted"]
    with pytest.raises(service.NotFound):
        _dataset(sync_factory, "raw.clicks")

    # The table comes back: the dataset is restored, its history continues.
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField

    warehouse.catalog.create_table("raw.clicks", Schema(NestedField(1, "id", LongType(), required=True)))
    back = sync.run_sync(sync_factory, source_name="lake")
    assert back.restored == 1
    assert _dataset(sync_factory, "raw.clicks").deleted_at is None


def test_a_source_down_mid_sync_deletes_nothing_and_marks_the_source_unhealthy(
    sync_factory: sessionmaker[Session], warehouse: Any, fault_after_first_page: Any
) -> None:
    _add_source(sync_factory, warehouse.config(page_size=1))
    sync.run_sync(sync_factory, source_name="lake")
    warehouse.catalog.drop_table("raw.clicks")  # would be deleted by a complete listing
    warehouse.add_column("analytics.title_views", "genre")

    fault_after_first_page(IcebergConnector, warehouse.wipe)
    run = sync.run_sync(sync_factory, source_name="lake")
    assert run.status == SyncStatus.FAILED.value and run.complete is False
    assert run.deleted == 0 and run.listed == 1
    assert run.message and "nothing was deleted" in run.message
    assert any(e["dataset"] is None for e in run.errors)
    # The first page was applied and kept; everything else keeps its last known metadata.
    assert "genre" in {f.path for f in _dataset(sync_factory, "analytics.title_views").fields}
    assert _dataset(sync_factory, "raw.clicks").deleted_at is None
    assert _dataset(sync_factory, "analytics.titles").deleted_at is None
    with session_scope(sync_factory) as session:
        source = sources.get_source(session, name="lake")
        assert source.status == SourceStatus.UNHEALTHY.value
        assert source.status_message and "cannot list" in source.status_message
        assert session.get(SyncLease, source.id).holder is None  # type: ignore[union-attr]


def test_a_dataset_registered_while_its_page_loads_is_adopted_and_the_rest_is_created(
    sync_factory: sessionmaker[Session], warehouse: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New datasets are written in bulk; one that appears between the listing and the write (here a
    manual registration) sends the page down the one-at-a-time path instead of failing it, where the
    source adopts it (a manual dataset: see test_sync_adoption.py)."""
    _add_source(sync_factory, warehouse.config())
    original = IcebergConnector.load_many

    def load_many_while_someone_registers(self: Any, refs: Any) -> Any:
        with session_scope(sync_factory) as session:
            service.register_dataset(session, data=DatasetCreate(namespace=NS, name="raw.clicks"))
        return original(self, refs)

    monkeypatch.setattr(IcebergConnector, "load_many", load_many_while_someone_registers)
    run = sync.run_sync(sync_factory, source_name="lake")
    assert (run.status, run.added, run.failed, run.errors) == ("succeeded", 3, 0, [])
    assert _dataset(sync_factory, "raw.clicks").source.name == "lake"
    assert _event_kinds(sync_factory, "raw.clicks")[:2] == ["created", "adopted"]
    assert _dataset(sync_factory, "analytics.titles").current_schema_version == 1


def test_a_catalog_that_is_gone_fails_the_sync_without_deleting(
    sync_factory: sessionmaker[Session], warehouse: Any
) -> None:
    _add_source(sync_factory, warehouse.config())
    sync.run_sync(sync_factory, source_name="lake")
    warehouse.db_path.unlink()
    run = sync.run_sync(sync_factory, source_name="lake")
    assert (run.status, run.complete, run.deleted) == ("failed", False, 0)
    with session_scope(sync_factory) as session:
        live = service.list_datasets(session, filters=service.DatasetFilters(source="lake"))
        assert live.total == 3


def test_two_syncs_of_one_source_never_run_at_once(sync_factory: sessionmaker[Session], warehouse: Any) -> None:
    _add_source(sync_factory, warehouse.config())
    first = sync.start_sync(sync_factory, source_name="lake")
    with pytest.raises(sync.SyncInProgress) as info:
        sync.run_sync(sync_factory, source_name="lake")
    assert info.value.detail["run_id"] == first.run.id and info.value.status_code == 409
    done = sync.execute_sync(sync_factory, first)
    assert done.status == "succeeded"
    again = sync.run_sync(sync_factory, source_name="lake")
    assert again.unchanged == 3


def test_an_expired_lease_is_taken_over_and_its_run_marked_abandoned(
    sync_factory: sessionmaker[Session], warehouse: Any
) -> None:
    _add_source(sync_factory, warehouse.config())
    crashed = sync.start_sync(sync_factory, source_name="lake")
    with session_scope(sync_factory) as session:  # the process holding it died; its lease ran out
        lease = session.scalar(select(SyncLease))
        assert lease is not None
        lease.expires_at = utcnow() - dt.timedelta(seconds=1)
    run = sync.run_sync(sync_factory, source_name="lake")
    assert run.status == "succeeded"
    with session_scope(sync_factory) as session:
        stale = session.get(SyncRun, crashed.run.id)
        assert stale is not None and stale.status == "failed" and "abandoned" in (stale.message or "")
    # The dead run cannot write any more: its lease renewal fails.
    late = sync.execute_sync(sync_factory, crashed)
    assert late.status == "failed" and "lease" in (late.message or "")


def test_periodic_sync_runs_sources_that_are_due(sync_factory: sessionmaker[Session], warehouse: Any) -> None:
    _add_source(sync_factory, warehouse.config(sync_interval_seconds=60), name="lake")
    _add_source(sync_factory, warehouse.config(), name="unscheduled")
    scheduler = sync_scheduler.SyncScheduler(sync_factory, poll_seconds=0.05)
    runs = scheduler.tick()
    assert [(r.trigger, r.added) for r in runs] == [("schedule", 3)]
    assert scheduler.tick() == []  # not due again for a minute
    with session_scope(sync_factory) as session:
        later = utcnow() + dt.timedelta(seconds=61)
        assert sync.due_sources(session, now=later) == ["lake"]
    scheduler.start()
    scheduler.stop()


def test_history_written_between_two_syncs_is_kept_in_order(
    sync_factory: sessionmaker[Session], warehouse: Any
) -> None:
    _add_source(sync_factory, warehouse.config())
    sync.run_sync(sync_factory, source_name="lake")
    warehouse.rename_and_widen()  # schema 1
    warehouse.add_column("analytics.title_views", "genre")  # schema 2
    sync.run_sync(sync_factory, source_name="lake")
    views = _dataset(sync_factory, "analytics.title_views")
    history = _versions(sync_factory, views.id)
    assert [(v.version, v.source_schema_id) for v in history] == [(1, "0"), (2, "1"), (3, "2")]
    assert history[2].diff["added"] == ["genre"]
