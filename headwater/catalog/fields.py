"""Schemas as flat field lists: flattening nested declarations, normalising types across sources,
fingerprints, and the diff between two versions (added, removed, renamed, retyped).

Nested paths follow Iceberg's naming: struct members are ``parent.child``; a list's element is
``parent.element`` and a map's parts are ``parent.key`` / ``parent.value``.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import orjson

from headwater.catalog.schemas import FieldIn, SchemaChangeRename, SchemaChangeRetype, SchemaDiff

__all__ = ["Declared", "FlatField", "diff_schemas", "fingerprint", "flatten", "flatten_tree", "normalize_type"]


@dataclass(frozen=True, slots=True)
class FlatField:
    """One field of a schema, flattened; what connectors produce and schema versions store."""

    path: str
    name: str
    type: str
    nullable: bool = True
    parent_path: str | None = None
    field_id: int | None = None
    description: str | None = None
    tags: tuple[str, ...] = field(default=())

    @property
    def normalized_type(self) -> str:
        """The type in Headwater's cross-source vocabulary."""
        return normalize_type(self.type)

    def as_version_dict(self) -> dict[str, Any]:
        """The form kept in an immutable schema version (user tags are not part of a schema)."""
        return {
            "path": self.path,
            "name": self.name,
            "type": self.type,
            "nullable": self.nullable,
            "parent_path": self.parent_path,
            "field_id": self.field_id,
            "description": self.description,
            "normalized_type": self.normalized_type,
        }


class Declared(Protocol):
    """A nested field declaration as its source gives it: a FieldIn, a Kafka schema's node."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def nullable(self) -> bool: ...
    @property
    def description(self) -> str | None: ...


Item = TypeVar("Item", bound=Declared)


def flatten_tree(
    items: Iterable[Item],
    children: Callable[[Item], Iterable[Item]],
    extra: Callable[[Item], dict[str, Any]] = lambda _item: {},
    parent: str | None = None,
) -> list[FlatField]:
    """Nested declarations as a flat, ordered list of paths (parents before their members); ``extra`` gives the
    FlatField arguments beyond path, name, type, nullability, parent and description."""
    flat: list[FlatField] = []
    for item in items:
        path = f"{parent}.{item.name}" if parent else item.name
        flat.append(
            FlatField(
                path=path,
                name=item.name,
                type=item.type,
                nullable=item.nullable,
                parent_path=parent,
                description=item.description,
                **extra(item),
            )
        )
        flat.extend(flatten_tree(children(item), children, extra, path))
    return flat


def flatten(fields: Iterable[FieldIn], parent: str | None = None) -> list[FlatField]:
    """Nested field declarations as a flat, ordered list of paths (parents before their members)."""
    return flatten_tree(
        fields,
        lambda item: item.fields,
        lambda item: {"field_id": item.field_id, "tags": tuple(dict.fromkeys(item.tags))},
        parent,
    )


def check_unique_paths(fields: Sequence[FlatField]) -> list[str]:
    """Paths that occur more than once (a schema must name each field once)."""
    seen: set[str] = set()
    dupes: list[str] = []
    for item in fields:
        if item.path in seen:
            dupes.append(item.path)
        seen.add(item.path)
    return dupes


# fmt: off
_SIMPLE_TYPES = {
    # strings
    "string": "string", "varchar": "string", "char": "string", "text": "string", "character varying": "string",
    "character": "string", "bpchar": "string", "enum": "string", "citext": "string", "name": "string",
    # integers
    "tinyint": "int", "smallint": "int", "int": "int", "integer": "int", "int2": "int", "int4": "int",
    "short": "int", "byte": "int", "serial": "int",
    "int32": "int", "sint32": "int", "sfixed32": "int", "uint32": "int", "fixed32": "int",  # Protobuf
    "int64": "long", "sint64": "long", "sfixed64": "long", "uint64": "long", "fixed64": "long",  # Protobuf
    "bigint": "long", "long": "long", "int8": "long", "bigserial": "long",
    # floating point and exact numbers
    "float": "float", "real": "float", "float4": "float",
    "double": "double", "double precision": "double", "float8": "double",
    "decimal": "decimal", "numeric": "decimal", "number": "decimal",
    "boolean": "boolean", "bool": "boolean",
    # binary, dates and times
    "binary": "binary", "bytes": "binary", "bytea": "binary", "fixed": "binary", "blob": "binary",
    "varbinary": "binary",
    "date": "date",
    "time": "time", "time without time zone": "time", "time-millis": "time", "time-micros": "time",
    "timestamp": "timestamp", "timestamp without time zone": "timestamp", "timestamp_ntz": "timestamp",
    "local-timestamp-millis": "timestamp", "local-timestamp-micros": "timestamp", "datetime": "timestamp",
    "timestamptz": "timestamptz", "timestamp with time zone": "timestamptz", "timestamp_ltz": "timestamptz",
    "timestamp-millis": "timestamptz", "timestamp-micros": "timestamptz", "timestamp_tz": "timestamptz",
    "uuid": "uuid",
    "json": "json", "jsonb": "json", "variant": "json",
    "null": "null",
}
_COMPLEX_PREFIXES = (
    ("struct", "struct"), ("record", "struct"), ("row", "struct"), ("object", "struct"), ("message", "struct"),
    ("array", "array"), ("list", "array"), ("map", "map"),
)
# fmt: on
_PARAMS_RE = re.compile(r"\s*[(<].*$", re.DOTALL)


@functools.lru_cache(maxsize=4096)  # a source repeats a handful of type spellings
def normalize_type(raw: str) -> str:
    """Map a source's type spelling (Iceberg, Hive/Spark, Avro, PostgreSQL, JSON Schema) to one vocabulary."""
    text = raw.strip().lower()
    if text.endswith("[]"):  # PostgreSQL arrays: integer[]
        return "array"
    for prefix, normal in _COMPLEX_PREFIXES:
        if text == prefix or text.startswith(prefix + "<") or text.startswith(prefix + "("):
            return normal
    base = _PARAMS_RE.sub("", text).strip()
    if base in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[base]
    if base.startswith("varchar") or base.startswith("char"):
        return "string"
    return "unknown"


def fingerprint(fields: Sequence[FlatField]) -> str:
    """A hash of what makes a schema (paths, types, nullability, field ids), not of its comments."""
    canonical = [(f.path, f.type, f.nullable, f.field_id) for f in fields]
    return hashlib.sha256(orjson.dumps(canonical)).hexdigest()


def diff_schemas(
    old: Sequence[dict[str, Any]], new: Sequence[FlatField], renamed: Mapping[str, str] | None = None
) -> SchemaDiff:
    """What changed from ``old`` (a stored version's fields) to ``new``.

    Fields are matched by source field id where both sides have one, so a rename is a rename and not
    a drop plus an add; then by ``renamed`` (new path -> old path, a rename the source stated otherwise);
    otherwise by path.
    """
    old_by_id = {f["field_id"]: f for f in old if f.get("field_id") is not None}
    old_by_path = {f["path"]: f for f in old}
    matched_old: set[str] = set()
    result = SchemaDiff()
    for item in new:
        before = old_by_id.get(item.field_id) if item.field_id is not None else None
        if before is None and renamed and item.path in renamed:
            before = old_by_path.get(renamed[item.path])
        if before is None:
            candidate = old_by_path.get(item.path)
            # A same-path field with a different id is a different field (dropped and re-added).
            if candidate is not None and not (
                item.field_id is not None and candidate.get("field_id") not in (None, item.field_id)
            ):
                before = candidate
        if before is None:
            result.added.append(item.path)
            continue
        matched_old.add(before["path"])
        if before["path"] != item.path:
            result.renamed.append(
                SchemaChangeRename(field_id=item.field_id, old_path=before["path"], new_path=item.path)
            )
        if before["type"] != item.type or bool(before["nullable"]) != item.nullable:
            result.retyped.append(
                SchemaChangeRetype(
                    path=item.path,
                    old_type=before["type"],
                    new_type=item.type,
                    old_nullable=bool(before["nullable"]),
                    new_nullable=item.nullable,
                )
            )
    result.removed.extend(f["path"] for f in old if f["path"] not in matched_old)
    return result
