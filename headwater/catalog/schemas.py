"""Pydantic models of the catalog API by role: ``*Create`` / ``*Update`` in (unknown fields refused),
``*Out`` out, and the snapshot shape connectors and manual registration hand to the service."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, model_validator

from headwater.catalog.models import ChangeKind, DatasetKind, SourceKind, SourceStatus
from headwater.inputs import JsonObject

# An OpenLineage dataset namespace: `scheme://authority` (kafka://host:9092, postgres://db:5432) or a
# bare scheme-like name for sources that have no authority (file, or an Iceberg catalog's name).
_NAMESPACE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-_]*(://[^\s]*)?$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


def _check_namespace(value: str) -> str:
    if not _NAMESPACE_RE.match(value):
        raise ValueError(
            f"namespace {value!r} is not an OpenLineage namespace; use scheme://authority "
            "(e.g. kafka://broker:9092) or a bare name such as 'file'"
        )
    return value


def _check_printable(value: str) -> str:
    if _CONTROL_RE.search(value):
        raise ValueError(f"{value!r} contains control characters")
    return value


Namespace = Annotated[str, StringConstraints(min_length=1, max_length=512), AfterValidator(_check_namespace)]
DatasetName = Annotated[
    str, StringConstraints(min_length=1, max_length=1024, strip_whitespace=True), AfterValidator(_check_printable)
]
SourceName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")]
Tag = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-/]{0,127}$")]
OwnerName = Annotated[str, StringConstraints(min_length=1, max_length=256), AfterValidator(_check_printable)]


def _check_no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("contains a NUL character (\\u0000), which cannot be stored; remove it")
    return value


Text = Annotated[str, StringConstraints(max_length=65_536), AfterValidator(_check_no_nul)]
Properties = Annotated[
    dict[Annotated[str, StringConstraints(min_length=1, max_length=256)], Text], Field(max_length=500)
]

OWNER_ROLES = ("technical_owner", "business_owner", "data_steward")


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# ----------------------------------------------------------------------------------------- sources


SecretValue = Annotated[str, StringConstraints(max_length=8192)]
SECRETS_HELP = (
    "Credentials, stored encrypted and never shown again: literal values, or env:NAME / file:/path references "
    "where the server's settings allow them (literal:... keeps a value starting with env: or file:)."
)


class SourceCreate(_In):
    """A source to federate (or a manual source to register datasets in)."""

    name: SourceName
    kind: SourceKind
    namespace: Namespace
    description: Text | None = None
    config: JsonObject = Field(default_factory=dict)
    secrets: dict[str, SecretValue] = Field(default_factory=dict, description=SECRETS_HELP)


class SourceUpdate(_In):
    """Changes to a source; omitted fields stay as they are. ``secrets`` replaces the named keys, or all of them
    when ``config`` changes where the credentials go (``uri``, ``host``...), which requires sending them again."""

    description: Text | None = None
    config: JsonObject | None = None
    secrets: dict[str, SecretValue] | None = Field(default=None, description=SECRETS_HELP)


class SourceOut(_Out):
    """A source as the API shows it: secrets are reduced to the names of the keys that are set."""

    id: int
    name: str
    kind: SourceKind
    namespace: str
    description: str | None
    config: dict[str, Any]
    secret_keys: list[str]
    status: SourceStatus
    status_message: str | None
    last_sync_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @model_validator(mode="before")
    @classmethod
    def _hide_secrets(cls, data: Any) -> Any:
        if hasattr(data, "secrets"):
            return {
                **{key: getattr(data, key) for key in cls.model_fields if key != "secret_keys"},
                "secret_keys": sorted(data.secrets or {}),
            }
        return data


# ---------------------------------------------------------------------------------------- datasets


class FieldIn(_In):
    """A field as declared at registration; ``fields`` nests struct members (flattened to dotted paths)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    type: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    nullable: bool = True
    description: Text | None = None
    field_id: int | None = Field(
        default=None, ge=-(2**31), le=2**31 - 1, description="The source's own id of the field (a 32-bit integer)."
    )
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    fields: list[FieldIn] = Field(default_factory=list, max_length=2000)

    @model_validator(mode="after")
    def _no_dots(self) -> FieldIn:
        if "." in self.name:
            raise ValueError(f"field name {self.name!r} contains '.'; nest it under 'fields' instead")
        return self


class PartitionField(_In):
    """One partition key: the source column and its transform (identity, day, bucket[16], ...)."""

    column: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    transform: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "identity"
    name: str | None = None


class Owner(_In):
    """An owner: a person or a team, and the role they play."""

    name: OwnerName
    role: Annotated[str, AfterValidator(lambda r: _check_role(r))] = "technical_owner"


def _check_role(role: str) -> str:
    if role not in OWNER_ROLES:
        raise ValueError(f"owner role {role!r} is not one of {', '.join(OWNER_ROLES)}")
    return role


class DatasetCreate(_In):
    """A dataset registered by hand in a ``manual`` source: its physical facts, schema and metadata."""

    source: SourceName = "manual"
    namespace: Namespace | None = Field(default=None, description="Defaults to the source's namespace.")
    name: DatasetName
    kind: DatasetKind = DatasetKind.TABLE
    format: Annotated[str, StringConstraints(max_length=64)] | None = None
    location: Annotated[str, StringConstraints(max_length=4096)] | None = None
    partitioning: list[PartitionField] = Field(default_factory=list, max_length=100)
    source_description: Text | None = None
    source_properties: Properties = Field(default_factory=dict)
    fields: list[FieldIn] = Field(default_factory=list, max_length=5000)
    description: Text | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=100)
    owners: list[Owner] = Field(default_factory=list, max_length=100)
    properties: Properties = Field(default_factory=dict)


class SchemaUpdate(_In):
    """A new schema for a manual dataset; a real change becomes a new schema version."""

    fields: list[FieldIn] = Field(max_length=5000)


class FieldMetadataUpdate(_In):
    """What a person may change on one field."""

    description: Text | None = None
    tags: list[Tag] | None = Field(default=None, max_length=50)


class DatasetUpdate(_In):
    """User metadata changes; omitted keys stay, ``null`` clears a description."""

    description: Text | None = None
    tags: list[Tag] | None = Field(default=None, max_length=100)
    owners: list[Owner] | None = Field(default=None, max_length=100)
    properties: Properties | None = None
    fields: dict[Annotated[str, StringConstraints(min_length=1, max_length=1024)], FieldMetadataUpdate] | None = Field(
        default=None, max_length=5000
    )


class FieldOut(_Out):
    """One field of the current schema."""

    path: str
    name: str
    parent_path: str | None
    position: int
    type: str
    normalized_type: str
    nullable: bool
    field_id: int | None
    source_description: str | None
    description: str | None = Field(validation_alias="user_description")
    tags: list[str]


class OwnerOut(_Out):
    """An owner of a dataset."""

    name: str
    role: str


class DatasetSummary(_Out):
    """A dataset in a list: identity, kind, metadata, without its fields."""

    id: int
    namespace: str
    name: str
    kind: DatasetKind
    source: str
    source_kind: SourceKind
    format: str | None
    location: str | None
    source_description: str | None
    description: str | None
    tags: list[str]
    owners: list[OwnerOut]
    schema_version: int | None
    field_count: int
    created_at: dt.datetime
    updated_at: dt.datetime
    deleted_at: dt.datetime | None
    delete_reason: str | None
    merged_into: int | None = Field(
        default=None, description="The dataset an admin merged this one into: every name of this one reaches it."
    )

    @classmethod
    def summary_of(cls, dataset: Any) -> DatasetSummary:
        """The list form of an ORM dataset."""
        return DatasetSummary.model_validate(_summary_dict(dataset))


class DatasetOut(DatasetSummary):
    """A dataset, whole: physical facts, source and user metadata, and the current fields."""

    partitioning: list[dict[str, Any]]
    source_properties: dict[str, str]
    properties: dict[str, str]
    revision: int
    fields: list[FieldOut]

    @classmethod
    def of(cls, dataset: Any, field_rows: Sequence[Mapping[Any, Any]] | None = None) -> DatasetOut:
        """The whole form of an ORM dataset: its loaded ``fields``, or ``field_rows`` read as plain rows."""
        data = _summary_dict(dataset)
        data.update(
            partitioning=dataset.partitioning,
            source_properties=dataset.source_properties,
            properties=dataset.user_properties,
            revision=dataset.revision,
            fields=(
                _FIELD_ROWS.validate_python(field_rows)
                if field_rows is not None
                else [FieldOut.model_validate(row, from_attributes=True) for row in dataset.fields]
            ),
        )
        return cls.model_validate(data)


_FIELD_ROWS = TypeAdapter(list[FieldOut])


def _summary_dict(dataset: Any) -> dict[str, Any]:
    return {
        "id": dataset.id,
        "namespace": dataset.namespace,
        "name": dataset.name,
        "kind": dataset.kind,
        "source": dataset.source.name,
        "source_kind": dataset.source.kind,
        "format": dataset.format,
        "location": dataset.location,
        "source_description": dataset.source_description,
        "description": dataset.user_description,
        "tags": [t.tag for t in dataset.tags],
        "owners": [{"name": o.owner, "role": o.role} for o in dataset.owners],
        "schema_version": dataset.current_schema_version,
        "field_count": dataset.field_count,
        "created_at": dataset.created_at,
        "updated_at": dataset.updated_at,
        "deleted_at": dataset.deleted_at,
        "delete_reason": dataset.delete_reason,
        "merged_into": dataset.merged_into_id,
    }


class SchemaChangeRename(BaseModel):
    """A field that kept its identity (source field id) under a new path."""

    field_id: int | None
    old_path: str
    new_path: str


class SchemaChangeRetype(BaseModel):
    """A field whose type or nullability changed."""

    path: str
    old_type: str
    new_type: str
    old_nullable: bool
    new_nullable: bool


class SchemaDiff(BaseModel):
    """What changed between two consecutive schema versions."""

    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    renamed: list[SchemaChangeRename] = Field(default_factory=list)
    retyped: list[SchemaChangeRetype] = Field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        """True when nothing changed."""
        return not (self.added or self.removed or self.renamed or self.retyped)


class SchemaVersionOut(_Out):
    """One immutable schema version with its diff from the one before."""

    version: int
    fingerprint: str
    source_schema_id: str | None
    created_at: dt.datetime
    diff: SchemaDiff
    fields: list[dict[str, Any]]


class ChangeEventOut(_Out):
    """One entry of the change feed."""

    id: int
    kind: ChangeKind
    entity_type: str
    entity_id: int
    namespace: str | None
    name: str | None
    payload: dict[str, Any]
    created_at: dt.datetime


class ChangeFeed(BaseModel):
    """Change events after a position, and the position to ask from next."""

    items: list[ChangeEventOut]
    next_after: int
