"""Tables of the sync engine: one report per sync run, the lease that keeps two syncs of a source from
running at once (across processes), and the version token last read for each synced dataset."""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from headwater.db import Base, BigInt, JSONType
from headwater.orm import BigIntPK, Code, Count, LongText, UTCNow, UTCTime, one_of

__all__ = ["DatasetSyncState", "SyncLease", "SyncMode", "SyncRun", "SyncStatus", "SyncTrigger"]


class SyncMode(enum.StrEnum):
    """Incremental loads only datasets whose version token changed; full loads every dataset."""

    INCREMENTAL = "incremental"
    FULL = "full"


class SyncStatus(enum.StrEnum):
    """How a sync run ended.

    ``succeeded``: complete listing, every dataset read. ``partial``: complete listing, some datasets
    could not be read (they keep their last known metadata). ``failed``: the listing did not complete,
    so nothing was deleted.
    """

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"


class SyncTrigger(enum.StrEnum):
    """Who started a sync run."""

    API = "api"
    CLI = "cli"
    SCHEDULE = "schedule"


class SyncRun(Base):
    """The report of one sync of one source."""

    __tablename__ = "sync_runs"
    __table_args__ = (
        one_of("status", SyncStatus),
        one_of("mode", SyncMode),
        one_of("trigger", SyncTrigger),
        Index("ix_sync_runs_source_id_id", "source_id", "id"),
    )

    id: Mapped[BigIntPK]
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    mode: Mapped[Code]
    trigger: Mapped[Code]
    status: Mapped[Code] = mapped_column(default=SyncStatus.RUNNING.value)
    # True when the listing ran to its end; only then were missing datasets deleted.
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    listed: Mapped[Count]
    added: Mapped[Count]
    changed: Mapped[Count]
    restored: Mapped[Count]
    unchanged: Mapped[Count]
    deleted: Mapped[Count]
    failed: Mapped[Count]
    # [{"dataset": name or null, "error": message}], the first MAX_ERRORS of them.
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    message: Mapped[LongText | None]
    started_at: Mapped[UTCNow]
    finished_at: Mapped[UTCTime | None]
    duration_seconds: Mapped[float | None] = mapped_column(Float)


class SyncLease(Base):
    """Who may sync a source right now: claimed by a conditional UPDATE, renewed per batch, expiring."""

    __tablename__ = "sync_leases"

    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(128))
    run_id: Mapped[int | None] = mapped_column(BigInt)
    expires_at: Mapped[UTCTime | None]


class DatasetSyncState(Base):
    """What the last sync read of one dataset: its version token and the run that last listed it."""

    __tablename__ = "dataset_sync_states"
    __table_args__ = (Index("ix_dataset_sync_states_source_id_last_seen_run_id", "source_id", "last_seen_run_id"),)

    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("sources.id", ondelete="CASCADE"))
    version: Mapped[str | None] = mapped_column(String(2048))
    last_seen_run_id: Mapped[int | None] = mapped_column(BigInt)
    synced_at: Mapped[UTCNow]
