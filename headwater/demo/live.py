"""The live half of the demo: its lake as an ``iceberg`` source on the warehouse that
:mod:`headwater.demo.warehouse` builds, synced by the sync engine, then described through the catalog service."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from headwater.catalog.models import SourceKind
from headwater.catalog.schemas import DatasetUpdate, FieldIn, FieldMetadataUpdate, SourceCreate, SourceUpdate
from headwater.catalog.service import get_dataset_by_name, update_dataset_metadata
from headwater.catalog.sources import create_source, get_source, update_source
from headwater.demo.datasets import LAKE_TABLES
from headwater.demo.names import ICEBERG_NAMESPACE, DemoDataset, DemoReport
from headwater.errors import Conflict, NotFound

if TYPE_CHECKING:
    from headwater.demo.warehouse import DemoWarehouse, LakeTable

__all__ = ["LIVE_ICEBERG_SOURCE", "apply_lake_metadata", "ensure_live_source", "lake_tables", "sync_lake"]

LIVE_ICEBERG_SOURCE = "demo-iceberg"
_LIVE_DESCRIPTION = (
    "The demo lakehouse: raw and curated Iceberg tables in a local warehouse that `headwater demo` builds "
    "(pyiceberg SQL catalog on SQLite, file:// warehouse under the data directory), synced by the iceberg connector."
)


def lake_tables() -> list[LakeTable]:
    """What the warehouse builds: the demo's lake tables, with raw.playback_events' evolved schema."""
    from headwater.demo.warehouse import LakeTable

    return [
        LakeTable(
            name=item.create.name,
            fields=item.create.fields,
            partitioning=item.create.partitioning,
            comment=item.create.source_description,
            later_fields=item.later_schemas[-1] if item.later_schemas else None,
        )
        for item in LAKE_TABLES
    ]


def ensure_live_source(
    session: Session, warehouse: DemoWarehouse, report: DemoReport, say: Callable[[str], None]
) -> bool:
    """The ``iceberg`` source of the demo warehouse; False when an earlier demo registered the lake by hand."""
    config = warehouse.source_config()
    try:
        source = get_source(session, name=LIVE_ICEBERG_SOURCE)
    except NotFound:
        data = SourceCreate(
            name=LIVE_ICEBERG_SOURCE,
            kind=SourceKind.ICEBERG,
            namespace=ICEBERG_NAMESPACE,
            description=_LIVE_DESCRIPTION,
            config=config,
        )
        create_source(session, data=data)
        report.sources_created += 1
        say(f"created iceberg source {LIVE_ICEBERG_SOURCE} ({ICEBERG_NAMESPACE}) on {warehouse.catalog_uri}")
        return True
    if source.kind == SourceKind.MANUAL.value and source.namespace == ICEBERG_NAMESPACE:
        report.iceberg_note = (
            f"source {LIVE_ICEBERG_SOURCE!r} was registered by hand by an earlier demo, so it stays manual; "
            "delete its datasets and the source, then run the demo again to make the lake live"
        )
        return False
    if source.kind != SourceKind.ICEBERG.value or source.namespace != ICEBERG_NAMESPACE:
        raise Conflict(
            f"source {LIVE_ICEBERG_SOURCE!r} exists as a {source.kind} source in namespace {source.namespace!r}; "
            f"the demo needs an iceberg source in {ICEBERG_NAMESPACE!r}. Delete or rename it, then load the demo again",
            detail={"field": "name", "source": LIVE_ICEBERG_SOURCE},
        )
    if dict(source.config or {}) != config:  # the data directory moved: follow the warehouse
        update_source(session, name=LIVE_ICEBERG_SOURCE, data=SourceUpdate(config=config))
        say(f"source {LIVE_ICEBERG_SOURCE} now reads {warehouse.catalog_uri}")
    return True


def _user_metadata(item: DemoDataset) -> DatasetUpdate:
    """What people say about a lake table (the part of its DatasetCreate no source knows)."""
    fields: dict[str, FieldMetadataUpdate] = {}

    def visit(items: Sequence[FieldIn], prefix: str) -> None:
        for child in items:
            path = f"{prefix}.{child.name}" if prefix else child.name
            if child.tags:
                fields[path] = FieldMetadataUpdate(tags=list(child.tags))
            visit(child.fields, path)

    visit(item.later_schemas[-1] if item.later_schemas else item.create.fields, "")
    changes: dict[str, Any] = {
        "tags": item.create.tags,
        "owners": item.create.owners,
        "properties": item.create.properties,
        "fields": fields,
    }
    if item.create.description is not None:
        changes["description"] = item.create.description
    return DatasetUpdate(**changes)


def apply_lake_metadata(session: Session, report: DemoReport, say: Callable[[str], None]) -> None:
    """Owners, tags, descriptions and field tags on the synced tables nobody has described yet."""
    for item in LAKE_TABLES:
        name = item.create.name
        try:
            dataset = get_dataset_by_name(session, namespace=ICEBERG_NAMESPACE, name=name)
        except NotFound:
            say(f"{ICEBERG_NAMESPACE}/{name} is not in the catalog; its metadata was not applied")
            continue
        if dataset.user_description or dataset.tags or dataset.owners or dataset.user_properties:
            continue  # someone (an earlier demo run, or a person) has described it: leave their words
        update_dataset_metadata(session, dataset_id=dataset.id, data=_user_metadata(item), expected_revision=None)
        report.metadata_applied += 1
        say(f"{ICEBERG_NAMESPACE}/{name}: owners, tags and descriptions applied")


def sync_lake(session: Session, report: DemoReport, say: Callable[[str], None]) -> None:
    """Sync the demo warehouse with the sync engine, inside the caller's transaction."""
    from headwater.catalog.sync import run_sync
    from headwater.catalog.sync_models import SyncRun, SyncTrigger

    session.flush()
    # The engine commits page by page through its own sessions; bound to our connection with savepoints,
    # its commits stay inside the caller's transaction, so the caller still decides (and a failure rolls
    # the whole demo back).
    factory = sessionmaker(
        bind=session.connection(), expire_on_commit=False, autoflush=False, join_transaction_mode="create_savepoint"
    )

    def progress(run: SyncRun) -> None:
        say(
            f"syncing {LIVE_ICEBERG_SOURCE}: {run.listed} listed, {run.added} added, {run.changed} changed, "
            f"{run.unchanged} unchanged, {run.failed} failed"
        )

    run = run_sync(factory, source_name=LIVE_ICEBERG_SOURCE, trigger=SyncTrigger.CLI, progress=progress)
    session.expire_all()
    report.sync_status = run.status
    report.synced_added, report.synced_changed, report.synced_unchanged = run.added, run.changed, run.unchanged
    if run.message:
        say(f"sync of {LIVE_ICEBERG_SOURCE}: {run.message}")
