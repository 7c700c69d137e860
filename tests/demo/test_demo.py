"""The demo platform loads through the catalog services: nested schemas, metadata, a schema history, and
a second load that changes nothing."""

from __future__ import annotations

import pytest
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
from headwater.demo import DemoReport, load_demo
from headwater.demo.platform import DEMO_DATASETS, DEMO_SOURCES, HIVE_NAMESPACE, ICEBERG_NAMESPACE, KAFKA_NAMESPACE
from headwater.errors import Conflict


def _dataset(session: Session, namespace: str, name: str) -> Dataset:
    return get_dataset_by_name(session, namespace=namespace, name=name)


def _paths(dataset: Dataset) -> set[str]:
    return {row.path for row in dataset.fields}


def _all_datasets(session: Session) -> list[Dataset]:
    return list_datasets(session, filters=DatasetFilters(include_deleted=True), limit=500).items


def _names(session: Session, filters: DatasetFilters) -> set[str]:
    return {d.name for d in list_datasets(session, filters=filters, limit=500).items}


def test_first_load_registers_every_source_and_dataset(session: Session) -> None:
    messages: list[str] = []
    report = load_demo(session, progress=messages.append)

    assert report == DemoReport(
        sources_created=len(DEMO_SOURCES), datasets_created=len(DEMO_DATASETS), datasets_existing=0, schema_changes=1
    )
    assert len(_all_datasets(session)) == len(DEMO_DATASETS)
    assert messages, "progress is reported"
    for data in DEMO_SOURCES:
        source = get_source(session, name=data.name)
        assert source.kind == SourceKind.MANUAL.value
        assert "registered by hand" in (source.description or "").lower()
    topics = _names(session, DatasetFilters(source="demo-kafka", kind=DatasetKind.TOPIC))
    assert {"playback.play", "playback.pause", "playback.stop", "playback.seek"} <= topics
    assert {"ui.interactions", "device.telemetry"} <= topics
    assert {"raw.playback_events", "curated.viewing_sessions"} <= _names(
        session, DatasetFilters(namespace=ICEBERG_NAMESPACE)
    )
    assert {"analytics.title_daily_views", "analytics.ab_experiment_metrics"} <= _names(
        session, DatasetFilters(namespace=HIVE_NAMESPACE)
    )


def test_nested_fields_follow_iceberg_path_naming(session: Session) -> None:
    load_demo(session)

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


def test_every_declared_type_is_understood(session: Session) -> None:
    load_demo(session)

    unknown = [
        (d.name, f.path, f.type)
        for d in _all_datasets(session)
        for f in _dataset(session, d.namespace, d.name).fields
        if f.normalized_type == "unknown"
    ]
    assert unknown == []


def test_owners_tags_descriptions_and_properties(session: Session) -> None:
    load_demo(session)

    sessions = _dataset(session, ICEBERG_NAMESPACE, "curated.viewing_sessions")
    roles = {owner.owner: owner.role for owner in sessions.owners}
    assert roles["team:playback-data"] == "technical_owner"
    assert {"business_owner", "data_steward"} <= set(roles.values())
    assert {"certified", "tier-1", "pii", "gdpr"} <= {tag.tag for tag in sessions.tags}
    assert sessions.user_description and sessions.source_description
    assert "sla" in sessions.user_properties and "retention_days" in sessions.user_properties
    assert sessions.partitioning and sessions.location and sessions.location.startswith("s3://")

    member_id = next(row for row in sessions.fields if row.path == "member_id")
    assert "pii" in member_id.tags and member_id.source_description
    play = _dataset(session, KAFKA_NAMESPACE, "playback.play")
    assert "pii" in next(row for row in play.fields if row.path == "ip_address").tags
    assert "playback.play" in _names(session, DatasetFilters(tag="pii"))
    assert "analytics.title_daily_views" not in _names(session, DatasetFilters(tag="pii"))
    assert "raw.playback_events" in _names(session, DatasetFilters(owner="team:playback-data"))


def test_playback_events_has_a_schema_change(session: Session) -> None:
    load_demo(session)

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
    changes = list_changes(session, limit=1000, kinds=[ChangeKind.SCHEMA_CHANGED])
    assert [(c.name, c.payload["version"]) for c in changes] == [("raw.playback_events", 2)]


def test_second_load_adds_nothing(session: Session) -> None:
    first = load_demo(session)
    session.commit()
    datasets = len(_all_datasets(session))
    changes = len(list_changes(session, limit=1000))
    playback = _dataset(session, ICEBERG_NAMESPACE, "raw.playback_events")
    revision = playback.revision

    second = load_demo(session)
    session.commit()

    assert second == DemoReport(
        sources_created=0, datasets_created=0, datasets_existing=first.datasets_created, schema_changes=0
    )
    assert len(_all_datasets(session)) == datasets
    assert len(list_changes(session, limit=1000)) == changes
    session.refresh(playback)
    assert (playback.current_schema_version, playback.revision) == (2, revision)


def test_reload_keeps_what_people_changed(session: Session) -> None:
    load_demo(session)
    titles = _dataset(session, ICEBERG_NAMESPACE, "curated.title_catalog")
    update_dataset_metadata(
        session, dataset_id=titles.id, data=DatasetUpdate(description="Edited by a person."), expected_revision=None
    )
    profiles = _dataset(session, ICEBERG_NAMESPACE, "curated.member_profiles")
    delete_dataset(session, dataset_id=profiles.id, reason="not in this region", expected_revision=None)
    session.commit()
    changes = len(list_changes(session, limit=1000))

    report = load_demo(session)

    assert report.datasets_created == 0
    assert len(list_changes(session, limit=1000)) == changes
    assert _dataset(session, ICEBERG_NAMESPACE, "curated.title_catalog").user_description == "Edited by a person."
    assert "curated.member_profiles" not in _names(session, DatasetFilters(namespace=ICEBERG_NAMESPACE))


def test_a_clashing_source_is_refused(session: Session) -> None:
    create_source(
        session, data=SourceCreate(name="demo-kafka", kind=SourceKind.MANUAL, namespace="kafka://elsewhere:9092")
    )

    with pytest.raises(Conflict, match="demo-kafka"):
        load_demo(session)
