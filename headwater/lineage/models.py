"""The lineage tables: the raw OpenLineage event log, jobs, runs, and the dataset- and column-level edges.

Edges point at catalog rows (``datasets.id``, ``fields.id``), never at names: a column renamed at its
source keeps its ``fields`` row (matched by Iceberg field id), so it keeps its lineage. Every edge says how
it is known (``origin`` + ``producer``), when it was first and last seen (event time), the run that last
confirmed it, and when a later declaration of the same job stopped mentioning it (``retired_at``): the
graph can be read as of any point in time.
"""

from __future__ import annotations

import enum
import zlib
from typing import Any

import orjson
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Dialect,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    TypeDecorator,
    UniqueConstraint,
    and_,
    case,
)
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from headwater.catalog.models import DatasetAlias  # re-exported: the catalog owns a dataset's other names
from headwater.db import Base, BigInt, JSONType
from headwater.orm import BigIntPK, Code, Count, LongText, Name, Namespace, UTCNow, UTCTime, one_of

__all__ = [
    "ColumnConfirmation",
    "ColumnEdge",
    "DatasetAlias",
    "DatasetEdge",
    "DatasetMerge",
    "EdgeOrigin",
    "JobDataset",
    "LineageEvent",
    "LineageJob",
    "LineageRun",
    "PackedJSON",
    "RunState",
    "confirmed_provenance",
    "pack_payload",
    "unpack_payload",
]


class RunState(enum.StrEnum):
    """Where a run is in its life (OpenLineage eventType, OTHER excluded: it changes no state)."""

    START = "START"
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    FAIL = "FAIL"
    ABORT = "ABORT"


class EdgeOrigin(enum.StrEnum):
    """How an edge is known."""

    OPENLINEAGE = "openlineage"
    SQL = "sql"
    JOB = "job"
    MANUAL = "manual"


def pack_payload(document: Any) -> bytes:
    """An event as the log stores it: its JSON, zlib-compressed (a 5.3 KB event takes about 0.6 KB)."""
    return zlib.compress(orjson.dumps(document), 6)


def unpack_payload(packed: bytes) -> Any:
    """The event :func:`pack_payload` stored."""
    return orjson.loads(zlib.decompress(packed))


class PackedJSON(TypeDecorator[Any]):
    """A JSON document stored compressed (:func:`pack_payload`) in a binary column, read back as the document.

    Bytes given are taken as packed already (ingestion packs its log rows once, for either database). Why zlib in
    the application rather than PostgreSQL's TOAST compression (pglz or lz4), with the figures:
    docs/operate/storage.md.
    """

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        if value is None or isinstance(value, bytes):
            return value
        return pack_payload(value)

    def process_result_value(self, value: bytes | None, dialect: Dialect) -> Any:
        return None if value is None else unpack_payload(value)


class LineageEvent(Base):
    """One OpenLineage event exactly as received (the append-only event log); duplicates are stored once.

    Kept for HEADWATER_LINEAGE_EVENTS_RETENTION_DAYS after it was received (headwater.lineage.retention); what was
    made of it (jobs, edges, their provenance) stays. Only the primary and fingerprint keys are indexed: nothing
    reads the log by run or job, and every index costs WAL on each event (migration 0019).
    """

    __tablename__ = "lineage_events"

    id: Mapped[BigIntPK]
    # sha256 of the canonical JSON: the same event sent twice is recognised and changes nothing.
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[Code]  # run, dataset, job
    event_type: Mapped[Code | None]
    event_time: Mapped[UTCTime]
    producer: Mapped[str] = mapped_column(String(1024))
    run_uuid: Mapped[str | None] = mapped_column(String(64))
    job_namespace: Mapped[Namespace | None]
    job_name: Mapped[Name | None]
    payload: Mapped[Any] = mapped_column(PackedJSON)
    # What could not be applied (an unknown column of a federated dataset, SQL that did not parse, ...).
    warnings: Mapped[list[str]] = mapped_column(JSONType, default=list)
    received_at: Mapped[UTCNow]


class _Named:
    """A row named as OpenLineage names things: ``(namespace, name)``, unique."""

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return (UniqueConstraint("namespace", "name"),)

    # First in the table, as the migrations made them (a mixin's columns would come last).
    id: Mapped[int] = mapped_column(BigInt, primary_key=True, sort_order=-1)
    namespace: Mapped[str] = mapped_column(String(512), sort_order=-1)
    name: Mapped[str] = mapped_column(String(1024), sort_order=-1)


class LineageJob(_Named, Base):
    """A job as OpenLineage names it: ``(namespace, name)``; a Spark action is a child of its application."""

    __tablename__ = "lineage_jobs"

    parent_job_id: Mapped[int | None] = mapped_column(ForeignKey("lineage_jobs.id", ondelete="SET NULL"))
    job_type: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[LongText | None]
    sql: Mapped[LongText | None]
    facets: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Event time of the newest event that described the job (facets from older events never win).
    described_at: Mapped[UTCTime | None]
    created_at: Mapped[UTCNow]
    updated_at: Mapped[UTCNow]


class LineageRun(Base):
    """One run of a job; its state follows START -> RUNNING -> COMPLETE | FAIL | ABORT whatever the arrival order."""

    __tablename__ = "lineage_runs"
    __table_args__ = (
        one_of("state", RunState, nullable=True),
        # A job's runs newest first: its latest runs, which retention keeps (migration 0019).
        Index("ix_lineage_runs_job_id_id", "job_id", "id"),
        Index("ix_lineage_runs_parent_run_id", "parent_run_id"),
        # Room for the update each of a run's events makes (migration 0009).
        {"postgresql_with": {"fillfactor": 80}},
    )

    id: Mapped[BigIntPK]
    run_uuid: Mapped[str] = mapped_column(String(64), unique=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("lineage_jobs.id", ondelete="CASCADE"))
    parent_run_id: Mapped[int | None] = mapped_column(ForeignKey("lineage_runs.id", ondelete="SET NULL"))
    # None for a run known only as some other run's parent (its own events have not arrived yet).
    state: Mapped[Code | None]
    state_time: Mapped[UTCTime | None]
    started_at: Mapped[UTCTime | None]
    ended_at: Mapped[UTCTime | None]
    facets: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    event_count: Mapped[Count]
    created_at: Mapped[UTCNow]
    updated_at: Mapped[UTCNow]


class _Provenance:
    """Columns every edge carries: how it is known, when, and by which run.

    ``last_run_id`` points at a ``lineage_runs`` row without a foreign key (migration 0010): the check cost a
    lookup and a row lock on the run for every edge every run confirms, about a tenth of the database's time per
    event. Runs go only with their job, and the job's edges go with it; readers outer-join the run, so a pointer
    to a run that is gone reads as no run, as ``ON DELETE SET NULL`` made it.
    """

    origin: Mapped[Code]
    producer: Mapped[str | None] = mapped_column(String(1024))
    first_seen: Mapped[UTCTime]
    last_seen: Mapped[UTCTime]
    retired_at: Mapped[UTCTime | None]
    last_run_id: Mapped[int | None] = mapped_column(BigInt)


class JobDataset(_Provenance, Base):
    """A job reads (``in``) or writes (``out``) a dataset."""

    __tablename__ = "lineage_job_datasets"
    __table_args__ = (
        UniqueConstraint("job_id", "dataset_id", "direction"),
        CheckConstraint("direction IN ('in', 'out')", name="direction"),
        one_of("origin", EdgeOrigin),
        Index("ix_lineage_job_datasets_dataset_id", "dataset_id"),
        # Room for the update each confirming run makes (migration 0009).
        {"postgresql_with": {"fillfactor": 70}},
    )

    id: Mapped[BigIntPK]
    job_id: Mapped[int] = mapped_column(ForeignKey("lineage_jobs.id", ondelete="CASCADE"))
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(3))


class DatasetEdge(_Provenance, Base):
    """Dataset-level lineage: ``source`` flows into ``target`` through ``job`` (input -> run -> output)."""

    __tablename__ = "lineage_dataset_edges"
    __table_args__ = (
        UniqueConstraint("source_id", "target_id", "job_id"),
        one_of("origin", EdgeOrigin),
        Index("ix_lineage_dataset_edges_target_id", "target_id", "source_id"),
        Index("ix_lineage_dataset_edges_job_id", "job_id"),
        # Room for the update each confirming run makes (migration 0009).
        {"postgresql_with": {"fillfactor": 70}},
    )

    id: Mapped[BigIntPK]
    source_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    target_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    job_id: Mapped[int] = mapped_column(ForeignKey("lineage_jobs.id", ondelete="CASCADE"))


class ColumnEdge(_Provenance, Base):
    """Column-level lineage between two catalog fields, with the OpenLineage transformation type and subtype.

    ``dataset_level`` marks an edge expanded from the facet's dataset-wide list (a filter or join column
    that affects every output column). ``source_dataset_id`` / ``target_dataset_id`` are kept beside the
    field ids so walks can report datasets without a join per step.
    """

    __tablename__ = "lineage_column_edges"
    __table_args__ = (
        UniqueConstraint("source_field_id", "target_field_id", "job_id", "transformation_type", "subtype"),
        CheckConstraint("transformation_type IN ('DIRECT', 'INDIRECT')", name="transformation_type"),
        one_of("origin", EdgeOrigin),
        Index("ix_lineage_column_edges_target", "target_field_id", "source_field_id"),
        Index("ix_lineage_column_edges_job_target_dataset", "job_id", "target_dataset_id"),
        # Room for the update each confirming run makes, so it is HOT (migration 0009).
        {"postgresql_with": {"fillfactor": 70}},
    )

    id: Mapped[BigIntPK]
    source_field_id: Mapped[int] = mapped_column(ForeignKey("fields.id", ondelete="CASCADE"))
    target_field_id: Mapped[int] = mapped_column(ForeignKey("fields.id", ondelete="CASCADE"))
    source_dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    target_dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("lineage_jobs.id", ondelete="CASCADE"))
    transformation_type: Mapped[str] = mapped_column(String(8))
    # '' rather than NULL so the unique key holds (NULLs never collide in a unique constraint).
    subtype: Mapped[str] = mapped_column(String(32), default="")
    description: Mapped[LongText | None]
    masking: Mapped[bool] = mapped_column(Boolean, default=False)
    dataset_level: Mapped[bool] = mapped_column(Boolean, default=False)


class ColumnConfirmation(Base):
    """The newest complete declaration of a job's column lineage into one dataset: its event time, run and producer.

    A complete declaration (a COMPLETE run event's ``columnLineage``, a JobEvent, SQL applied) names every column
    edge the job makes into the dataset, and retires the pair's other edges. The edges it names that were live
    already are not rewritten for it: it is recorded here, once, and those edges read their last seen, last run
    and producer from this row when it is newer than their own (:func:`confirmed_provenance`). A job whose lineage
    does not change between runs so costs one row per run, not one per column edge.

    That holds because every live edge of the pair (manual ones aside) was named by this declaration or by a
    later statement: edges a declaration does not name are retired by it, and an edge only an older declaration
    names, arriving late, is recorded as retired at this declaration's time.
    """

    __tablename__ = "lineage_column_confirmations"
    __table_args__ = (
        # Room for the update each confirming run makes (as the edge tables, migration 0009).
        {"postgresql_with": {"fillfactor": 70}},
    )

    job_id: Mapped[int] = mapped_column(ForeignKey("lineage_jobs.id", ondelete="CASCADE"), primary_key=True)
    target_dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    confirmed_at: Mapped[UTCTime]
    last_run_id: Mapped[int | None] = mapped_column(BigInt)  # no foreign key, as the edges' (see _Provenance)
    producer: Mapped[str | None] = mapped_column(String(1024))


def confirmed_provenance() -> tuple[Any, Any, Any, Any]:
    """A column edge's last seen, last run id and producer as SQL expressions (its own, or its pair's confirmation
    when newer), and the ON clause to outer-join :class:`ColumnConfirmation` with."""
    confirmed = and_(
        ColumnConfirmation.confirmed_at > ColumnEdge.last_seen,
        ColumnEdge.retired_at.is_(None),
        ColumnEdge.origin != EdgeOrigin.MANUAL.value,
    )
    on = and_(
        ColumnConfirmation.job_id == ColumnEdge.job_id,
        ColumnConfirmation.target_dataset_id == ColumnEdge.target_dataset_id,
    )
    return (
        case((confirmed, ColumnConfirmation.confirmed_at), else_=ColumnEdge.last_seen),
        case((confirmed, ColumnConfirmation.last_run_id), else_=ColumnEdge.last_run_id),
        case((confirmed, ColumnConfirmation.producer), else_=ColumnEdge.producer),
        on,
    )


class DatasetMerge(Base):
    """An admin's statement that two datasets are one: ``duplicate`` was merged into ``into``.

    ``moved`` records what the merge changed, so that undoing it puts back exactly that: the ids of the lineage
    rows it repointed (with where they pointed before), the rows it removed because ``into`` had the same one
    already (whole), the datasets merged into the duplicate earlier that now point at ``into``, and the metadata
    it copied (headwater/lineage/merges.py).
    """

    __tablename__ = "lineage_dataset_merges"

    id: Mapped[BigIntPK]
    into_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    duplicate_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    merged_by: Mapped[str] = mapped_column(String(255))
    merged_at: Mapped[UTCNow]
    reason: Mapped[LongText | None]
    moved: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    undone_at: Mapped[UTCTime | None]
    undone_by: Mapped[str | None] = mapped_column(String(255))
