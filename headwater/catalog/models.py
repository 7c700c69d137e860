"""The catalog's tables: sources, datasets, their fields, immutable schema history and the change outbox.

Source-derived facts (``source_*`` columns) and what people entered (``user_*`` columns, tags, owners)
live side by side but are written by different code paths, like Metacat's definition metadata, so a
re-sync never overwrites what a person wrote.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from headwater.db import Base, BigInt, JSONType
from headwater.orm import BigIntPK, Code, Count, LongText, Name, Namespace, UTCNow, UTCTime, one_of

__all__ = [
    "ChangeEvent",
    "ChangeEventTrim",
    "ChangeKind",
    "Dataset",
    "DatasetAlias",
    "DatasetAudience",
    "DatasetKind",
    "DatasetOwner",
    "DatasetRestriction",
    "DatasetTag",
    "Field",
    "RestrictingTag",
    "SchemaVersion",
    "Source",
    "SourceKind",
    "SourceStatus",
]


class SourceKind(enum.StrEnum):
    """The kinds of system a source federates."""

    ICEBERG = "iceberg"
    HIVE = "hive"
    KAFKA = "kafka"
    POSTGRES = "postgres"
    MANUAL = "manual"


class SourceStatus(enum.StrEnum):
    """How the last contact with a source went."""

    NEW = "new"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


class DatasetKind(enum.StrEnum):
    """What a dataset physically is."""

    TABLE = "table"
    VIEW = "view"
    TOPIC = "topic"
    STREAM = "stream"
    FILE = "file"


class ChangeKind(enum.StrEnum):
    """What a change event records."""

    CREATED = "created"
    SCHEMA_CHANGED = "schema_changed"
    METADATA_UPDATED = "metadata_updated"
    DELETED = "deleted"
    RESTORED = "restored"
    # A dataset lineage (or a person) filed in a manual source is now stated by the federated source that holds it.
    ADOPTED = "adopted"
    # An admin said two datasets are one: the duplicate's names and lineage now reach the other (and undid it).
    MERGED = "merged"
    UNMERGED = "unmerged"


class Source(Base):
    """A federated system (or the manual source people register datasets in)."""

    __tablename__ = "sources"
    __table_args__ = (one_of("kind", SourceKind),)

    id: Mapped[BigIntPK]
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[Code]
    namespace: Mapped[Namespace]
    description: Mapped[LongText | None]
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Write-only: {key: Fernet token} (headwater.secrets); the API returns only the names of the keys.
    secrets: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    status: Mapped[Code] = mapped_column(default=SourceStatus.NEW.value)
    status_message: Mapped[LongText | None]
    last_sync_at: Mapped[UTCTime | None]
    created_at: Mapped[UTCNow]
    updated_at: Mapped[UTCNow]
    revision: Mapped[int] = mapped_column(Integer, default=1)


class Dataset(Base):
    """A table, view, topic, stream or file, identified by its OpenLineage ``(namespace, name)``."""

    __tablename__ = "datasets"
    __table_args__ = (
        UniqueConstraint("namespace", "name"),
        one_of("kind", DatasetKind),
        Index("ix_datasets_source_id_name", "source_id", "name"),
        Index("ix_datasets_name_id", "name", "id"),
        Index("ix_datasets_updated_at_id", "updated_at", "id"),
    )

    id: Mapped[BigIntPK]
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="RESTRICT"))
    namespace: Mapped[Namespace]
    # Code-point order on both databases (SQLite compares bytes): the list's order, and the order the list cache
    # compares names in (headwater.catalog.list_pages; migration 0021).
    name: Mapped[str] = mapped_column(String(1024).with_variant(String(1024, collation="C"), "postgresql"))
    kind: Mapped[Code]
    # Physical facts, as the source states them.
    format: Mapped[str | None] = mapped_column(String(64))
    location: Mapped[LongText | None]
    partitioning: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    source_description: Mapped[LongText | None]
    source_properties: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    # What people entered; sync never writes these.
    user_description: Mapped[LongText | None]
    user_properties: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    current_schema_version: Mapped[int | None] = mapped_column(Integer)
    # For a schema taken from lineage events: the event time of its newest statement (a repetition included), so
    # that an older event delivered late never rolls the schema back.
    schema_stated_at: Mapped[UTCTime | None]
    # Kept beside the field rows so lists need not count them per dataset.
    field_count: Mapped[Count]
    created_at: Mapped[UTCNow]
    updated_at: Mapped[UTCNow]
    deleted_at: Mapped[UTCTime | None]
    delete_reason: Mapped[LongText | None]
    # Bumped by every change; the ETag is derived from it.
    revision: Mapped[int] = mapped_column(Integer, default=1)
    # Set when an admin merged this dataset into another (it is deleted then): every name of this one resolves to
    # that one. Always a dataset that is not merged itself, so resolution is one step (headwater/lineage/merges.py).
    merged_into_id: Mapped[int | None] = mapped_column(
        BigInt, ForeignKey("datasets.id", ondelete="SET NULL"), index=True
    )

    source: Mapped[Source] = relationship(lazy="joined", innerjoin=True)
    fields: Mapped[list[Field]] = relationship(
        back_populates="dataset",
        order_by="Field.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )
    tags: Mapped[list[DatasetTag]] = relationship(
        order_by="DatasetTag.tag", cascade="all, delete-orphan", passive_deletes=True
    )
    owners: Mapped[list[DatasetOwner]] = relationship(
        order_by="DatasetOwner.owner", cascade="all, delete-orphan", passive_deletes=True
    )


class DatasetTag(Base):
    """A tag a person put on a dataset; a table of its own so tag filters use an index."""

    __tablename__ = "dataset_tags"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(128), primary_key=True, index=True)


class DatasetOwner(Base):
    """An owner (a person or a team) of a dataset, with the role they play."""

    __tablename__ = "dataset_owners"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    owner: Mapped[str] = mapped_column(String(256), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(32), default="technical_owner")


class Field(Base):
    """One column of a dataset's current schema; nested fields are flattened to dotted paths."""

    __tablename__ = "fields"
    __table_args__ = (UniqueConstraint("dataset_id", "path"),)

    id: Mapped[BigIntPK]
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(1024))
    name: Mapped[str] = mapped_column(String(256))
    parent_path: Mapped[str | None] = mapped_column(String(1024))
    position: Mapped[int] = mapped_column(Integer)
    type: Mapped[LongText]
    normalized_type: Mapped[str] = mapped_column(String(32))
    nullable: Mapped[bool] = mapped_column(Boolean, default=True)
    field_id: Mapped[int | None] = mapped_column(Integer)
    source_description: Mapped[LongText | None]
    user_description: Mapped[LongText | None]
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)

    dataset: Mapped[Dataset] = relationship(back_populates="fields")


class SchemaVersion(Base):
    """One immutable version of a dataset's schema, with its diff from the version before."""

    __tablename__ = "schema_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "version"),)

    id: Mapped[BigIntPK]
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(64))
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    diff: Mapped[dict[str, Any]] = mapped_column(JSONType)
    source_schema_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[UTCNow]


class ChangeEvent(Base):
    """An append-only outbox row; consumers read ``id > after`` in order and never miss one.

    Ids are assigned while writers hold one lock until commit (see ``catalog.events``), so an id is
    only visible once every smaller id is: a consumer's "after" position is safe to store.
    """

    __tablename__ = "change_events"
    __table_args__ = (
        one_of("kind", ChangeKind),
        Index("ix_change_events_entity", "entity_type", "entity_id"),
    )

    id: Mapped[BigIntPK]
    kind: Mapped[str] = mapped_column(String(32))
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[int] = mapped_column(BigInt)
    namespace: Mapped[Namespace | None]
    name: Mapped[Name | None]
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[UTCNow]


class ChangeEventTrim(Base):
    """How far retention has removed the outbox: every change event with an id up to ``through`` is gone.

    One row. A consumer whose position is below ``through`` may have missed changes and must resync from the
    catalog rather than carry on (docs/operate/storage.md).
    """

    __tablename__ = "change_event_trims"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)  # always 1
    through: Mapped[int] = mapped_column(BigInt)
    trimmed_at: Mapped[UTCTime]


class DatasetRestriction(Base):
    """A dataset restricted, by hand, to some groups (or users): who set it, and when."""

    __tablename__ = "dataset_restrictions"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    groups: Mapped[list[str]] = mapped_column(JSONType)
    set_by: Mapped[str] = mapped_column(String(255))
    set_at: Mapped[UTCNow]


class RestrictingTag(Base):
    """A tag (a classification such as ``pii``) that restricts every dataset carrying it to some groups."""

    __tablename__ = "restricting_tags"

    tag: Mapped[str] = mapped_column(String(128), primary_key=True)
    groups: Mapped[list[str]] = mapped_column(JSONType)
    set_by: Mapped[str] = mapped_column(String(255))
    set_at: Mapped[UTCNow]


class DatasetAudience(Base):
    """Who may see a restricted dataset: one row per group (or user) of its restriction and of its restricting
    tags. Derived from the two tables above by ``catalog.restrictions.refresh_audience``; a dataset without rows
    is not restricted. Kept so that every read filters with one indexed subquery."""

    __tablename__ = "dataset_audience"

    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    member: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)


class DatasetAlias(Base):
    """Another name of a catalog dataset (a Spark file path whose OpenLineage symlink is a Hive table): any name
    a producer or a source used for it resolves to it (:mod:`headwater.catalog.identity`). The table keeps the
    name the lineage tables gave it first."""

    __tablename__ = "lineage_dataset_aliases"
    __table_args__ = (UniqueConstraint("namespace", "name"),)

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    namespace: Mapped[str] = mapped_column(String(512))
    name: Mapped[str] = mapped_column(String(1024))
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
