"""The demo loader: registers the platform that :mod:`headwater.demo.datasets` declares through the
catalog's service functions, then its lineage (:mod:`headwater.demo.lineage`).

Given a warehouse directory and pyiceberg (``headwater[iceberg]``), the lake is live: the demo builds a
real Iceberg warehouse holding the raw and curated tables with some rows (headwater/demo/warehouse.py),
registers it as an ``iceberg`` source, syncs it with the sync engine, then applies what people say about
the tables (owners, tags, descriptions, pii field tags) through the catalog service. Without pyiceberg,
the lake is registered by hand as before and the report says so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session

from headwater.catalog.models import Source
from headwater.catalog.schemas import SourceCreate
from headwater.catalog.service import get_dataset_by_name, register_dataset, replace_manual_schema
from headwater.catalog.sources import create_source, get_source
from headwater.demo.datasets import DEMO_DATASETS, DEMO_SOURCES
from headwater.demo.lineage import load_demo_lineage
from headwater.demo.live import LIVE_ICEBERG_SOURCE, apply_lake_metadata, ensure_live_source, lake_tables, sync_lake
from headwater.demo.names import DemoDataset, DemoReport
from headwater.demo.warehouse import build_demo_warehouse, iceberg_available
from headwater.errors import Conflict, NotFound

__all__ = ["DemoReport", "load_demo"]


def _ensure_source(session: Session, data: SourceCreate, report: DemoReport, say: Callable[[str], None]) -> Source:
    try:
        source = get_source(session, name=data.name)
    except NotFound:
        report.sources_created += 1
        say(f"created source {data.name} ({data.namespace})")
        return create_source(session, data=data)
    if source.kind != data.kind.value or source.namespace != data.namespace:
        raise Conflict(
            f"source {data.name!r} exists as a {source.kind} source in namespace {source.namespace!r}; the demo "
            f"needs a {data.kind.value} source in {data.namespace!r}. Delete or rename it, then load the demo again",
            detail={"field": "name", "source": data.name},
        )
    return source


def _ensure_dataset(
    session: Session, item: DemoDataset, namespace: str, report: DemoReport, say: Callable[[str], None]
) -> None:
    name = item.create.name
    try:
        dataset = get_dataset_by_name(session, namespace=namespace, name=name, include_deleted=True)
    except NotFound:
        dataset = register_dataset(session, data=item.create)
        report.datasets_created += 1
        say(f"registered {namespace}/{name}")
    else:
        report.datasets_existing += 1
        if dataset.deleted_at is not None:
            # Someone deleted it on purpose; loading the demo again should not undo that.
            say(f"{namespace}/{name} was deleted; left deleted")
            return
        say(f"{namespace}/{name} exists; kept as it is")
    for version, fields in enumerate(item.later_schemas, start=2):
        if (dataset.current_schema_version or 0) >= version:
            continue
        dataset, added = replace_manual_schema(
            session, dataset_id=dataset.id, fields=fields, expected_revision=dataset.revision
        )
        if added:
            report.schema_changes += 1
            say(f"{namespace}/{name}: schema version {dataset.current_schema_version}")


def load_demo(
    session: Session, *, progress: Callable[[str], None] | None = None, warehouse_dir: Path | None = None
) -> DemoReport:
    """Load the demo platform; flushes only — the caller (CLI) commits.

    With ``warehouse_dir`` and pyiceberg installed, the lake is a live Iceberg warehouse built there and
    synced; otherwise its tables are registered by hand (``report.iceberg_note`` says why).
    """
    say: Callable[[str], None] = progress or (lambda _message: None)
    report = DemoReport(sources_created=0, datasets_created=0, datasets_existing=0, schema_changes=0)
    live = False
    if warehouse_dir is None:
        report.iceberg_note = "no warehouse directory given, so the lake is registered by hand"
    elif not iceberg_available():
        report.iceberg_note = (
            "pyiceberg is not installed, so the lake is registered by hand (pip install 'headwater[iceberg]')"
        )
    else:
        warehouse = build_demo_warehouse(warehouse_dir, lake_tables(), progress=say)
        report.tables_built = warehouse.tables_created
        live = ensure_live_source(session, warehouse, report, say)
    report.iceberg_live = live
    namespaces: dict[str, str] = {}
    for data in DEMO_SOURCES:
        if live and data.name == LIVE_ICEBERG_SOURCE:
            continue
        namespaces[data.name] = _ensure_source(session, data, report, say).namespace
    for item in DEMO_DATASETS:
        if item.create.source in namespaces:
            _ensure_dataset(session, item, namespaces[item.create.source], report, say)
    session.flush()
    if live:
        sync_lake(session, report, say)
        apply_lake_metadata(session, report, say)
        session.flush()
    load_demo_lineage(session, progress=say)
    return report
