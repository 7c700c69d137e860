"""The demo's live Iceberg warehouse: a pyiceberg SQL catalog (a SQLite file) with a ``file://`` warehouse,
holding the demo's raw and curated tables with a few rows each, partitioned as declared.

``raw.playback_events`` is written with its first schema, then evolved the Iceberg way (``bitrate``
renamed ``bitrate_kbps`` keeping its field id, ``position_ms`` widened from int to long, a ``network``
struct added) and written again, so the synced catalog shows a real schema history.

Building is idempotent: a table that exists is left alone (no rows appended, no schema changed), so
building twice commits nothing and a second sync finds every table unchanged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.catalog.schemas import FieldIn, PartitionField

if TYPE_CHECKING:
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.schema import Schema
    from pyiceberg.table import Table
    from pyiceberg.types import IcebergType

__all__ = ["CATALOG_NAME", "DemoWarehouse", "LakeTable", "build_demo_warehouse", "iceberg_available"]

CATALOG_NAME = "demo"
ROWS_PER_WRITE = 3


def iceberg_available() -> bool:
    """Whether pyiceberg (the ``headwater[iceberg]`` extra) is installed, so the demo can run a live warehouse."""
    import importlib.util

    return all(importlib.util.find_spec(module) is not None for module in ("pyiceberg", "pyarrow"))


@dataclass(frozen=True)
class LakeTable:
    """What the warehouse needs to build one demo table."""

    name: str
    fields: Sequence[FieldIn]
    partitioning: Sequence[PartitionField]
    comment: str | None
    later_fields: Sequence[FieldIn] | None = None


@dataclass(frozen=True)
class DemoWarehouse:
    """Where the warehouse lives and the Headwater source config that reaches it."""

    root: Path
    catalog_uri: str
    warehouse_uri: str
    tables_created: int

    def source_config(self) -> dict[str, Any]:
        """The config of the ``iceberg`` source that syncs this warehouse."""
        return {"type": "sql", "uri": self.catalog_uri, "warehouse": self.warehouse_uri, "catalog_name": CATALOG_NAME}


# ------------------------------------------------------------------------------------------ schema


_PRIMITIVES = {
    "string": "StringType",
    "long": "LongType",
    "int": "IntegerType",
    "double": "DoubleType",
    "boolean": "BooleanType",
    "date": "DateType",
    "timestamptz": "TimestamptzType",
}


def _iceberg_type(item: FieldIn, ids: Iterator[int]) -> IcebergType:
    from pyiceberg import types

    kind = item.type
    if kind in _PRIMITIVES:
        primitive: IcebergType = getattr(types, _PRIMITIVES[kind])()
        return primitive
    if kind == "struct":
        return types.StructType(*(_nested(child, ids) for child in item.fields))
    if kind == "list":
        (element,) = item.fields
        element_id = next(ids)
        return types.ListType(element_id, _iceberg_type(element, ids), element_required=not element.nullable)
    if kind == "map":
        key, value = item.fields
        key_id, value_id = next(ids), next(ids)
        return types.MapType(
            key_id, _iceberg_type(key, ids), value_id, _iceberg_type(value, ids), value_required=not value.nullable
        )
    raise ValueError(f"the demo warehouse has no Iceberg type for {kind!r} (field {item.name!r})")


def _nested(item: FieldIn, ids: Iterator[int]) -> Any:
    from pyiceberg.types import NestedField

    field_id = next(ids)
    return NestedField(
        field_id, item.name, _iceberg_type(item, ids), required=not item.nullable, doc=item.description or None
    )


def iceberg_schema(fields: Sequence[FieldIn]) -> Schema:
    """The demo's field declarations as an Iceberg schema (ids numbered depth first from 1)."""
    from pyiceberg.schema import Schema

    ids = itertools.count(1)
    return Schema(*(_nested(item, ids) for item in fields))


def _partition_spec(schema: Schema, partitioning: Sequence[PartitionField]) -> Any:
    from pyiceberg.partitioning import PartitionField as IcebergPartitionField
    from pyiceberg.partitioning import PartitionSpec
    from pyiceberg.transforms import parse_transform

    parts = []
    for spec_id, item in enumerate(partitioning, start=1000):
        source = schema.find_field(item.column)
        column = item.column.replace(".", "_")
        transform = item.transform.split("[")[0]
        name = item.name or (column if transform == "identity" else f"{column}_{transform}")
        parts.append(IcebergPartitionField(source.field_id, spec_id, parse_transform(item.transform), name))
    return PartitionSpec(*parts)


# -------------------------------------------------------------------------------------------- rows

_DAY = dt.datetime(2026, 3, 1, 18, 0, tzinfo=dt.UTC)
_CHOICES: dict[str, Sequence[Any]] = {
    "event_type": ("play", "pause", "stop", "seek"),
    "type": ("tv", "mobile", "web"),
    "country": ("US", "BR", "DE"),
    "plan": ("basic", "standard", "premium"),
    "title_type": ("movie", "episode", "special"),
    "action": ("impression", "click", "search"),
    "page": ("home", "search", "title_details"),
}


def _value(kind: IcebergType, name: str, row: int) -> Any:
    """A plausible value of ``kind`` for row ``row`` of column ``name``."""
    from pyiceberg import types

    if isinstance(kind, types.StructType):
        return {child.name: _value(child.field_type, child.name, row) for child in kind.fields}
    if isinstance(kind, types.ListType):
        return [_value(kind.element_type, name, row)]
    if isinstance(kind, types.MapType):
        return [(f"{name}_key", str(_value(kind.value_type, name, row)))]
    if isinstance(kind, types.StringType):
        choices = _CHOICES.get(name)
        return choices[row % len(choices)] if choices else f"{name}-{row + 1}"
    if isinstance(kind, (types.IntegerType, types.LongType)):
        return 1000 * (row + 1) + len(name)
    if isinstance(kind, types.DoubleType):
        return round(0.5 + row * 1.25, 2)
    if isinstance(kind, types.BooleanType):
        return row % 2 == 0
    if isinstance(kind, types.DateType):
        return (_DAY + dt.timedelta(days=row)).date()
    if isinstance(kind, types.TimestamptzType):
        return _DAY + dt.timedelta(minutes=37 * row)
    raise ValueError(f"no demo value for type {kind}")


def _append_rows(table: Table, first_row: int) -> None:
    import pyarrow as pa  # type: ignore[import-untyped]

    schema = table.schema()
    rows = [
        {column.name: _value(column.field_type, column.name, row) for column in schema.fields}
        for row in range(first_row, first_row + ROWS_PER_WRITE)
    ]
    table.append(pa.Table.from_pylist(rows, schema=schema.as_arrow()))


# ------------------------------------------------------------------------------------------ build


def _evolve_playback_events(table: Table, later: Sequence[FieldIn]) -> None:
    """bitrate -> bitrate_kbps (same field id), position_ms int -> long, and the network struct added."""
    from pyiceberg.types import LongType

    by_name = {item.name: item for item in later}
    with table.update_schema() as update:
        update.rename_column("bitrate", "bitrate_kbps")
        update.update_column("position_ms", field_type=LongType())
        update.update_column("bitrate", doc=by_name["bitrate_kbps"].description)
        network = by_name["network"]
        network_type = iceberg_schema([network]).find_field("network").field_type
        update.add_column("network", network_type, doc=network.description)


def _open_catalog(root: Path) -> SqlCatalog:
    from pyiceberg.catalog.sql import SqlCatalog

    root.mkdir(parents=True, exist_ok=True)
    return SqlCatalog(
        CATALOG_NAME,
        uri=f"sqlite:///{(root / 'catalog.db').resolve()}",
        warehouse=(root / "warehouse").resolve().as_uri(),
    )


def build_demo_warehouse(
    root: Path, tables: Sequence[LakeTable], *, progress: Callable[[str], None] | None = None
) -> DemoWarehouse:
    """Create the warehouse under ``root`` with every table that is missing (existing ones are left alone)."""
    from pyiceberg.exceptions import NamespaceAlreadyExistsError

    say: Callable[[str], None] = progress or (lambda _message: None)
    catalog = _open_catalog(root)
    created = 0
    try:
        for namespace in sorted({table.name.split(".")[0] for table in tables}):
            with contextlib.suppress(NamespaceAlreadyExistsError):
                catalog.create_namespace(namespace, {"comment": f"the demo's {namespace} layer"})
        for item in tables:
            if catalog.table_exists(item.name):
                continue
            schema = iceberg_schema(item.fields)
            properties = {"write.format.default": "parquet"}
            if item.comment:
                properties["comment"] = item.comment
            table = catalog.create_table(
                item.name,
                schema,
                location=f"{(root / 'warehouse').resolve().as_uri()}/{item.name.replace('.', '/')}",
                partition_spec=_partition_spec(schema, item.partitioning),
                properties=properties,
            )
            _append_rows(table, 0)
            if item.later_fields is not None:
                _evolve_playback_events(table, item.later_fields)
                table = catalog.load_table(item.name)
                _append_rows(table, ROWS_PER_WRITE)
            created += 1
            say(f"built Iceberg table {item.name} in the demo warehouse")
    finally:
        catalog.engine.dispose()
    return DemoWarehouse(
        root=root,
        catalog_uri=f"sqlite:///{(root / 'catalog.db').resolve()}",
        warehouse_uri=(root / "warehouse").resolve().as_uri(),
        tables_created=created,
    )
