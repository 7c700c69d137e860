"""What a source states about a dataset: the snapshot connectors produce and the catalog applies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from headwater.catalog.fields import FlatField
from headwater.catalog.models import DatasetKind

__all__ = ["SOURCE_FACTS", "DatasetSnapshot", "HistoricalSchema"]

# The dataset columns a source owns (what people write lives in other columns and is never overwritten).
SOURCE_FACTS = ("kind", "format", "location", "partitioning", "source_description", "source_properties")


@dataclass(frozen=True)
class HistoricalSchema:
    """An earlier schema a source still keeps (e.g. an Iceberg schema id), for schema history."""

    fields: list[FlatField]
    source_schema_id: str | None = None


@dataclass
class DatasetSnapshot:
    """Everything a source states about one dataset at one moment; what connectors produce."""

    namespace: str
    name: str
    kind: DatasetKind = DatasetKind.TABLE
    fields: list[FlatField] = field(default_factory=list)
    format: str | None = None
    location: str | None = None
    partitioning: list[dict[str, Any]] = field(default_factory=list)
    description: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    source_schema_id: str | None = None
    # Earlier schemas, oldest first: all become versions before the current one when the dataset is first
    # seen; for a known dataset, those after the one its current version came from.
    schema_history: list[HistoricalSchema] = field(default_factory=list)
    # Renames the source states without field ids (new path -> old path): the field keeps its row and metadata.
    renamed: dict[str, str] = field(default_factory=dict)

    def facts(self) -> dict[str, Any]:
        """The snapshot's values of :data:`SOURCE_FACTS`, as the dataset columns hold them."""
        return {
            "kind": self.kind.value,
            "format": self.format,
            "location": self.location,
            "partitioning": self.partitioning,
            "source_description": self.description,
            "source_properties": self.properties,
        }
