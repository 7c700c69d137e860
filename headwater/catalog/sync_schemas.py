"""Pydantic models of the sync API: a sync run's report as the API and CLI show it."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict

from headwater.catalog.sync_models import SyncMode, SyncStatus, SyncTrigger

__all__ = ["SyncErrorOut", "SyncRunOut"]


class SyncErrorOut(BaseModel):
    """One problem a sync met: a dataset it could not read (``dataset`` set) or the listing itself."""

    dataset: str | None
    error: str


class SyncRunOut(BaseModel):
    """The report of one sync run."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    source: str
    mode: SyncMode
    trigger: SyncTrigger
    status: SyncStatus
    complete: bool
    listed: int
    added: int
    changed: int
    restored: int
    unchanged: int
    deleted: int
    failed: int
    errors: list[SyncErrorOut]
    message: str | None
    started_at: dt.datetime
    finished_at: dt.datetime | None
    duration_seconds: float | None

    @classmethod
    def of(cls, run: object, source: str) -> SyncRunOut:
        """The report of ``run`` (a SyncRun) of the source named ``source``."""
        return cls.model_validate({**{k: getattr(run, k) for k in cls.model_fields if k != "source"}, "source": source})
