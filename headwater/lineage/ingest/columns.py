"""What a lineage event says about a dataset's columns: the event dataset as ingestion wants it (identity,
symlinks, schema, the columns its lineage names, the renames it states), and the columns to store from it.

A ``schema`` facet states the whole schema at its event's time (:func:`stated_fields`): columns it lacks leave, a
rename is recognised by a field id (``id``/``fieldId`` on a schema field: the facet's spec has none, some producers
add one) or by the same event's column lineage mapping the old column to the new one as an identity
(:meth:`WantedDataset.note_renames`). An event without one only adds the columns its lineage names
(:func:`merged_fields`). Which events may change a schema at all is the resolver's business
(:mod:`.resolve`; docs/concepts/lineage.md).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from headwater.catalog.fields import FlatField
from headwater.catalog.models import Field
from headwater.lineage.schemas import (
    ColumnLineageFacet,
    DatasetIn,
    SchemaFacet,
    SchemaField,
    SymlinksFacet,
    parse_facet,
)

__all__ = [
    "UNKNOWN_TYPE",
    "WantedDataset",
    "facts_of",
    "flat_of",
    "flat_schema",
    "merged_fields",
    "stated_fields",
    "wanted_from",
]

UNKNOWN_TYPE = "unknown"

# What a schema says, for comparing with the catalog's: (path, type) of its typed fields, paths of the others, every
# path.
_Facts = tuple[frozenset[tuple[str, str]], frozenset[str], frozenset[str]]


@dataclass
class WantedDataset:
    """What one event says about a dataset: its identities, schema, and the columns lineage names."""

    namespace: str
    name: str
    symlinks: list[tuple[str, str]] = field(default_factory=list)
    schema: list[FlatField] | None = None
    columns: list[str] = field(default_factory=list)
    # What the schema says (see _Facts).
    schema_facts: _Facts | None = field(default=None, repr=False)
    # The event's time: an event older than the schema statement last applied changes no schema.
    at: dt.datetime | None = None
    # Renames the event's column lineage states (new path -> old path).
    renamed: dict[str, str] = field(default_factory=dict)
    # ``columns`` as a set.
    column_set: set[str] = field(default_factory=set, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.column_set.update(self.columns)

    def add_columns(self, paths: Iterable[str]) -> None:
        """Remember columns the event's lineage refers to."""
        named = self.column_set
        for path in paths:
            if path not in named:
                self.columns.append(path)
                named.add(path)

    def note_renames(self, facet: ColumnLineageFacet) -> None:
        """Remember the renames ``facet`` (this dataset's column lineage) states: a column of the schema whose one
        input is, as an identity, a column of this same dataset the schema no longer has."""
        if self.schema is None:
            return
        paths = {f.path for f in self.schema}
        names = {(self.namespace, self.name), *self.symlinks}
        for target, out in facet.fields.items():
            if target not in paths or len(out.inputFields) != 1:
                continue
            source = out.inputFields[0]
            if (source.namespace, source.name) not in names or source.field in paths:
                continue
            subtypes = {(t.subtype or "").upper() for t in source.transformations}
            identity = "IDENTITY" in subtypes or (not subtypes and (out.transformationType or "").upper() == "IDENTITY")
            if identity and source.field not in self.renamed.values():
                self.renamed[target] = source.field


def _field_id(item: SchemaField) -> int | None:
    """The id a producer gave a schema field (an extra key: the facet's spec has none), which survives renames."""
    extra = item.model_extra or {}
    for key in ("id", "fieldId", "field_id"):
        value = extra.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31:
            return value
    return None


def flat_schema(fields: Sequence[SchemaField], parent: str | None = None) -> list[FlatField]:
    """The schema facet's (possibly nested) fields as catalog flat fields."""
    flat: list[FlatField] = []
    for item in fields:
        path = f"{parent}.{item.name}" if parent else item.name
        flat.append(
            FlatField(
                path=path,
                name=item.name,
                type=(item.type or UNKNOWN_TYPE)[:4096],
                parent_path=parent,
                field_id=_field_id(item),
                description=item.description,
            )
        )
        flat.extend(flat_schema(item.fields, path))
    return flat


def wanted_from(dataset: DatasetIn, *, where: str, at: dt.datetime | None = None) -> WantedDataset:
    """Read the identity, symlinks and schema facets of one event dataset (of an event at time ``at``)."""
    wanted = WantedDataset(dataset.namespace, dataset.name, at=at)
    facets = dataset.facets
    if facets.get("symlinks"):
        symlinks = parse_facet(SymlinksFacet, facets["symlinks"], where=f"{where}.facets.symlinks")
        wanted.symlinks = [(i.namespace, i.name) for i in symlinks.identifiers]
    if facets.get("schema"):
        schema, wanted.schema_facts = _schema_of(facets["schema"], where=f"{where}.facets.schema")
        wanted.schema = list(schema)
    return wanted


# Schema facets already read, by their JSON: a job's every run repeats the same facet (bounded; FlatField is frozen).
_SCHEMAS: dict[bytes, tuple[list[FlatField], _Facts]] = {}


def facts_of(schema: Sequence[FlatField]) -> _Facts:
    typed = frozenset((f.path, f.type) for f in schema if f.type != UNKNOWN_TYPE)
    return typed, frozenset(f.path for f in schema if f.type == UNKNOWN_TYPE), frozenset(f.path for f in schema)


def _schema_of(facet: Any, *, where: str) -> tuple[list[FlatField], _Facts]:
    try:
        key: bytes | None = orjson.dumps(facet)
    except TypeError:
        key = None
    cached = _SCHEMAS.get(key) if key is not None else None
    if cached is None:
        schema = parse_facet(SchemaFacet, facet, where=where)
        seen: set[str] = set()
        flat = [f for f in flat_schema(schema.fields) if not (f.path in seen or seen.add(f.path))]  # type: ignore[func-returns-value]
        cached = (flat, facts_of(flat))
        if key is not None:
            if len(_SCHEMAS) >= 1024:
                _SCHEMAS.clear()
            _SCHEMAS[key] = cached
    return cached


def stated_fields(current: Sequence[FlatField], wanted: WantedDataset) -> tuple[list[FlatField], dict[str, str]]:
    """The schema the event states, whole: an untyped column keeps the type it had (under its old name when
    renamed); with the renames that apply to ``current`` (new path -> old path)."""
    known = {f.path: f for f in current}
    paths = {f.path for f in wanted.schema or []}
    renamed = {
        new: old for new, old in wanted.renamed.items() if old in known and new not in known and old not in paths
    }
    fields: list[FlatField] = []
    for item in wanted.schema or []:
        old = known.get(renamed.get(item.path, item.path))
        if item.type == UNKNOWN_TYPE and old is not None:
            item = dataclasses.replace(item, type=old.type, nullable=old.nullable)
        fields.append(item)
    return fields, renamed


def merged_fields(current: Sequence[FlatField], wanted: WantedDataset) -> list[FlatField]:
    """``current`` and the columns the event's lineage names that it lacks (untyped): what an event without a
    schema facet says, which is only that those columns exist."""
    merged: dict[str, FlatField] = {f.path: f for f in current}
    for path in wanted.columns:
        if path not in merged:
            parent, _, leaf = path.rpartition(".")
            if parent and parent not in merged:
                merged[parent] = FlatField(path=parent, name=parent.rpartition(".")[2], type="struct")
            merged[path] = FlatField(path=path, name=leaf, type=UNKNOWN_TYPE, parent_path=parent or None)
    # Parents before their members, as the catalog keeps them.
    order = list(merged)
    return sorted(merged.values(), key=lambda f: _order_key(f.path, order))


def _order_key(path: str, order: list[str]) -> tuple[int, ...]:
    """Sort key keeping parents before members while preserving declaration order among siblings."""
    parts = path.split(".")
    key: list[int] = []
    for depth in range(1, len(parts) + 1):
        prefix = ".".join(parts[:depth])
        key.append(order.index(prefix) if prefix in order else len(order))
    return tuple(key)


def flat_of(row: Field) -> FlatField:
    """A catalog field row as a flat field."""
    return FlatField(
        path=row.path,
        name=row.name,
        type=row.type,
        nullable=row.nullable,
        parent_path=row.parent_path,
        field_id=row.field_id,
        description=row.source_description,
        tags=tuple(row.tags or ()),
    )
