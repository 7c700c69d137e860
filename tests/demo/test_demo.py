"""The demo platform loads through the catalog services: nested schemas, metadata, a schema history, and
a second load that changes nothing — with its lake as a live Iceberg warehouse synced by the iceberg
connector (``live``), and registered by hand as when pyiceberg is missing (``manual``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from headwater.catalog.events import list_changes
from headwater.catalog.models import ChangeKind, Dataset, DatasetKind, SourceKind
from headwater.catalog.schemas import DatasetUpdate, SourceCreate
from headwater.catalog.service import (
    DatasetFilters,
    delete_dataset,
    get_dataset_by_name,
    list_datasets,
    list_schema_versions,
    update_dataset_metadata,
)
from headwater.catalog.sources import create_source, get_source
from headwater.catalog.sync_models import SyncRun
from headwater.demo import DemoReport, load_demo
from headwater.demo.datasets import DEMO_DATASETS, DEMO_SOURCES
from headwater.demo.names import HIVE_NAMESPACE, ICEBERG_NAMESPACE, KAFKA_NAMESPACE
from headwater.errors import Conflict
from headwater.lineage.graph import graph_around, resolve_node
from headwater.lineage.models import LineageEvent

Load = Callable[..., DemoReport]
LAKE = {"raw.playback_events", "raw.ui_interactions", "raw.device_telemetry"} | {
    "curated.viewing_sessions",
    "curated.title_catalog",
    "curated.member_profiles",
}


@pytest.fixture(scope="session")
def demo_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo warehouse per test process: building is idempotent and syncing only reads it."""
    return tmp_path_factory.mktemp("demo") / "demo-warehouse"


@pytest.fixture(params=["live", "manual"])
def mode(request: pytest.FixtureRequest) -> str:
    """Whether the demo's lake is a live Iceberg warehouse or registered by hand."""
    return str(request.param)


@pytest.fixture
def load(mode: str, demo_warehouse: Path) -> Load:
    """load_demo in the test's mode."""
    return functools.partial(load_demo, warehouse_dir=demo_warehouse if mode == "live" else None)


def _dataset(session: Session, namespace: str, name: str) -> Dataset:
    return get_dataset_by_name(session, namespace=namespace, name=name)


def _paths(dataset: Dataset) -> set[str]:
    return {row.path for row in dataset.fields}


def _all_datasets(session: Session) -> list[Dataset]:
    return list_datasets(session, filters=DatasetFilters(include_deleted=True), limit=500).items


def _names(session: Session, filters: DatasetFilters) -> set[str]:
    return {d.name for d in list_datasets(session, filters=filters, limit=500).items}


def test_first_load_registers_every_source_and_dataset(session: Session, load: Load, mode: str) -> None:
    messages: list[str] = []
    report = load(session, progress=messages.append)

    lake_by_hand = 0 if mode == "live" else len(LAKE)
    assert (report.sources_created, report.datasets_created, report.datasets_existing) == (
        len(DEMO_SOURCES),
        len(DEMO_DATASETS) - len(LAKE) + lake_by_hand,
        0,
    )
    assert report.iceberg_live is (mode == "live")
    assert len(_all_datasets(session)) == len(DEMO_DATASETS)
    assert messages, "progress is reported"
    for name in ("demo-kafka", "demo-hive"):
        source = get_source(session, name=name)
        assert source.kind == SourceKind.MANUAL.value
        assert "registered by hand" in (source.description or "").lower()
    lake_source = get_source(session, name="demo-iceberg")
    assert lake_source.namespace == ICEBERG_NAMESPACE
    if mode == "live":
        assert (report.sync_status, report.synced_added, report.metadata_applied) == ("succeeded", 6, 6)
        assert report.schema_changes == 0 and report.iceberg_note is None
        assert lake_source.kind == SourceKind.ICEBERG.value and lake_source.status == "healthy"
        assert lake_source.config["type"] == "sql" and lake_source.config["uri"].startswith("sqlite:///")
        assert any(m.startswith("syncing demo-iceberg: 6 listed, 6 added") for m in messages)
        runs = session.scalars(select(SyncRun).where(SyncRun.source_id == lake_source.id)).all()
        assert [(r.status, r.added) for r in runs] == [("succeeded", 6)]
    else:
        assert report.schema_changes == 1 and report.iceberg_note
        assert lake_source.kind == SourceKind.MANUAL.value
        assert "registered by hand" in (lake_source.description or "").lower()
    topics = _names(session, DatasetFilters(source="demo-kafka", kind=DatasetKind.TOPIC))
    assert {"playback.play", "playback.pause", "playback.stop", "playback.seek"} <= topics
    assert {"ui.interactions", "device.telemetry"} <= topics
    assert _names(session, DatasetFilters(source="demo-iceberg")) == LAKE
    assert _names(session, DatasetFilters(namespace=ICEBERG_NAMESPACE)) == LAKE
    assert {"analytics.title_daily_views", "analytics.ab_experiment_metrics"} <= _names(
        session, DatasetFilters(namespace=HIVE_NAMESPACE)
    )


def test_nested_fields_follow_iceberg_path_naming(session: Session, load: Load) -> None:
    load(session)

    topic = _dataset(session, KAFKA_NAMESPACE, "device.telemetry")
    table = _dataset(session, ICEBERG_NAMESPACE, "raw.device_telemetry")
    for dataset in (topic, table):
        version = next(row for row in dataset.fields if row.path == "device.os.version")
        assert (version.name, version.parent_path) == ("version", "device.os")
        assert {"errors.element", "errors.element.code", "attributes.key", "attributes.value"} <= _paths(dataset)
    # Avro and Iceberg spell the types differently; the normalised vocabulary agrees.
    assert {row.path: row.normalized_type for row in topic.fields} == {
        row.path: row.normalized_type for row in table.fields
    }
    play = _dataset(session, KAFKA_NAMESPACE, "playback.play")
    assert {"experiments.element.test_id", "experiments.element.cell", "network.bandwidth_kbps"} <= _paths(play)
    assert next(row for row in play.fields if row.path == "event_ts").normalized_type == "timestamptz"


def test_every_declared_type_is_understood(session: Session, load: Load) -> None:
    load(session)

    unknown = [
        (d.name, f.path, f.type)
        for d in _all_datasets(session)
        for f in _dataset(session, d.namespace, d.name).fields
        if f.normalized_type == "unknown"
    ]
    assert unknown == []


def test_owners_tags_descriptions_and_properties(session: Session, load: Load, mode: str) -> None:
    load(session)

    sessions = _dataset(session, ICEBERG_NAMESPACE, "curated.viewing_sessions")
    roles = {owner.owner: owner.role for owner in sessions.owners}
    assert roles["team:playback-data"] == "technical_owner"
    assert {"business_owner", "data_steward"} <= set(roles.values())
    assert {"certified", "tier-1", "pii", "gdpr"} <= {tag.tag for tag in sessions.tags}
    assert sessions.user_description and sessions.source_description
    assert "sla" in sessions.user_properties and "retention_days" in sessions.user_properties
    assert [(p["column"], p["transform"]) for p in sessions.partitioning] == [
        ("session_start", "day"),
        ("member_id", "bucket[32]"),
    ]
    assert sessions.location and sessions.location.startswith("file://" if mode == "live" else "s3://")

    member_id = next(row for row in sessions.fields if row.path == "member_id")
    assert "pii" in member_id.tags and member_id.source_description
    telemetry = _dataset(session, ICEBERG_NAMESPACE, "raw.device_telemetry")
    assert "pii" in next(row for row in telemetry.fields if row.path == "device.device_id").tags
    play = _dataset(session, KAFKA_NAMESPACE, "playback.play")
    assert "pii" in next(row for row in play.fields if row.path == "ip_address").tags
    assert "playback.play" in _names(session, DatasetFilters(tag="pii"))
    assert "analytics.title_daily_views" not in _names(session, DatasetFilters(tag="pii"))
    assert "raw.playback_events" in _names(session, DatasetFilters(owner="team:playback-data"))
    if mode == "live":  # what the warehouse itself says: its data and its table facts
        props = _dataset(session, ICEBERG_NAMESPACE, "raw.playback_events").source_properties
        assert props["iceberg.format_version"] == "2"
        assert props["iceberg.snapshot.total-records"] == "6"  # three rows per schema
        assert props["namespace.comment"] == "the demo's raw layer"
        titles = _dataset(session, ICEBERG_NAMESPACE, "curated.title_catalog")
        assert titles.source_properties["iceberg.snapshot.total-records"] == "3"


def test_playback_events_has_a_schema_change(session: Session, load: Load, mode: str) -> None:
    load(session)

    dataset = _dataset(session, ICEBERG_NAMESPACE, "raw.playback_events")
    versions = list_schema_versions(session, dataset_id=dataset.id, newest_first=False).items
    assert [v.version for v in versions] == [1, 2]
    assert dataset.current_schema_version == 2
    diff = versions[1].diff
    assert {"network", "network.type", "network.bandwidth_kbps"} <= set(diff["added"])
    assert diff["removed"] == []
    assert [(r["path"], r["old_type"], r["new_type"]) for r in diff["retyped"]] == [("position_ms", "int", "long")]
    assert [(r["old_path"], r["new_path"]) for r in diff["renamed"]] == [("bitrate", "bitrate_kbps")]
    assert "bitrate_kbps" in _paths(dataset) and "bitrate" not in _paths(dataset)
    bitrate = next(row for row in dataset.fields if row.path == "bitrate_kbps")
    old_bitrate = next(f for f in versions[0].fields if f["path"] == "bitrate")
    assert bitrate.field_id == old_bitrate["field_id"], "a rename keeps the Iceberg field id"
    changes = list_changes(session, limit=1000, kinds=[ChangeKind.SCHEMA_CHANGED])
    if mode == "manual":
        assert [(c.name, c.payload["version"]) for c in changes] == [("raw.playback_events", 2)]
    else:  # synced with its history already in place: one "created" event, no change to announce
        assert changes == []


def test_second_load_adds_nothing(session: Session, load: Load, mode: str) -> None:
    first = load(session)
    session.commit()
    datasets = len(_all_datasets(session))
    changes = len(list_changes(session, limit=1000))
    playback = _dataset(session, ICEBERG_NAMESPACE, "raw.playback_events")
    revision = playback.revision

    second = load(session)
    session.commit()

    assert (second.sources_created, second.datasets_created, second.schema_changes) == (0, 0, 0)
    assert second.datasets_existing == first.datasets_created
    if mode == "live":
        assert (second.tables_built, second.synced_added, second.synced_changed) == (0, 0, 0)
        assert (second.synced_unchanged, second.sync_status, second.metadata_applied) == (6, "succeeded", 0)
    assert len(_all_datasets(session)) == datasets
    assert len(list_changes(session, limit=1000)) == changes
    session.refresh(playback)
    assert (playback.current_schema_version, playback.revision) == (2, revision)


def test_reload_keeps_what_people_changed(session: Session, load: Load) -> None:
    load(session)
    titles = _dataset(session, ICEBERG_NAMESPACE, "curated.title_catalog")
    update_dataset_metadata(
        session, dataset_id=titles.id, data=DatasetUpdate(description="Edited by a person."), expected_revision=None
    )
    stripped = _dataset(session, ICEBERG_NAMESPACE, "raw.ui_interactions")
    update_dataset_metadata(
        session, dataset_id=stripped.id, data=DatasetUpdate(tags=[], properties={}), expected_revision=None
    )
    completion = _dataset(session, HIVE_NAMESPACE, "analytics.content_completion_rates")
    delete_dataset(session, dataset_id=completion.id, reason="not in this region", expected_revision=None)
    session.commit()
    changes = len(list_changes(session, limit=1000))

    report = load(session)

    assert report.datasets_created == 0 and report.metadata_applied == 0
    assert len(list_changes(session, limit=1000)) == changes
    assert _dataset(session, ICEBERG_NAMESPACE, "curated.title_catalog").user_description == "Edited by a person."
    assert not _dataset(session, ICEBERG_NAMESPACE, "raw.ui_interactions").tags
    assert "analytics.content_completion_rates" not in _names(session, DatasetFilters(namespace=HIVE_NAMESPACE))


def test_lineage_attaches_to_the_lake_datasets(session: Session, load: Load) -> None:
    load(session)

    warnings = session.scalars(select(LineageEvent.warnings)).all()
    assert warnings and all(w == [] for w in warnings)
    playback = _dataset(session, ICEBERG_NAMESPACE, "raw.playback_events")
    node = resolve_node(session, namespace=ICEBERG_NAMESPACE, name="raw.playback_events", field_path="bitrate_kbps")
    assert node.dataset_id == playback.id
    upstream = graph_around(
        session,
        node=resolve_node(
            session, namespace=ICEBERG_NAMESPACE, name="curated.viewing_sessions", field_path="avg_bitrate_kbps"
        ),
        direction="upstream",
    )
    assert f"{ICEBERG_NAMESPACE}/raw.playback_events#bitrate_kbps" in {n.path[-1] for n in upstream.nodes if n.path}
    assert len(_all_datasets(session)) == len(DEMO_DATASETS), "lineage created no datasets of its own"


def test_a_clashing_source_is_refused(session: Session, load: Load) -> None:
    create_source(
        session, data=SourceCreate(name="demo-kafka", kind=SourceKind.MANUAL, namespace="kafka://elsewhere:9092")
    )

    with pytest.raises(Conflict, match="demo-kafka"):
        load(session)


def test_a_clashing_lake_source_is_refused(session: Session, load: Load) -> None:
    create_source(session, data=SourceCreate(name="demo-iceberg", kind=SourceKind.MANUAL, namespace="elsewhere"))

    with pytest.raises(Conflict, match="demo-iceberg"):
        load(session)


def test_a_lake_registered_by_an_earlier_demo_stays_manual(session: Session, demo_warehouse: Path) -> None:
    load_demo(session)  # an earlier demo, without pyiceberg
    session.commit()

    report = load_demo(session, warehouse_dir=demo_warehouse)

    assert report.iceberg_live is False and report.iceberg_note and "stays manual" in report.iceberg_note
    assert (report.datasets_created, report.datasets_existing) == (0, len(DEMO_DATASETS))
    assert get_source(session, name="demo-iceberg").kind == SourceKind.MANUAL.value
    assert len(_all_datasets(session)) == len(DEMO_DATASETS)


def test_without_pyiceberg_the_lake_is_registered_by_hand(
    session: Session, demo_warehouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("headwater.demo.platform.iceberg_available", lambda: False)

    report = load_demo(session, warehouse_dir=demo_warehouse / "unused")

    assert report.iceberg_live is False and "pip install 'headwater[iceberg]'" in (report.iceberg_note or "")
    assert not (demo_warehouse / "unused").exists()
    assert get_source(session, name="demo-iceberg").kind == SourceKind.MANUAL.value
    assert _names(session, DatasetFilters(source="demo-iceberg")) == LAKE
