"""The demo's shared names: the namespaces and warehouse its sources live in, and the records the loader
and its live half pass around. Below every other demo module, so none of them imports another in a circle."""

from __future__ import annotations

from dataclasses import dataclass

from headwater.catalog.schemas import DatasetCreate, FieldIn

__all__ = ["HIVE_NAMESPACE", "ICEBERG_NAMESPACE", "KAFKA_NAMESPACE", "WAREHOUSE", "DemoDataset", "DemoReport"]

KAFKA_NAMESPACE = "kafka://kafka.streaming.internal:9092"
ICEBERG_NAMESPACE = "iceberg://warehouse"
HIVE_NAMESPACE = "hive://metastore.internal:9083"
WAREHOUSE = "s3://demo-warehouse"


@dataclass(frozen=True)
class DemoDataset:
    """One demo dataset: how it is registered, then the schemas it evolved through (versions 2, 3, ...)."""

    create: DatasetCreate
    later_schemas: tuple[list[FieldIn], ...] = ()


@dataclass
class DemoReport:
    """What one run of :func:`load_demo` did."""

    sources_created: int
    datasets_created: int
    datasets_existing: int
    schema_changes: int
    iceberg_live: bool = False
    iceberg_note: str | None = None
    tables_built: int = 0
    synced_added: int = 0
    synced_changed: int = 0
    synced_unchanged: int = 0
    sync_status: str | None = None
    metadata_applied: int = 0
