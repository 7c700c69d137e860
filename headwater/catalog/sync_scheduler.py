"""The periodic sync: a background loop that syncs every source whose ``sync_interval_seconds`` has passed.

Each due source is synced by :func:`~headwater.catalog.sync.run_sync`, which takes the source's lease, so a source
that another process or request is syncing right now is skipped until the next check.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session, sessionmaker

from headwater.catalog.sync import DEFAULT_LEASE_SECONDS, SyncInProgress, due_sources, run_sync
from headwater.catalog.sync_models import SyncRun, SyncTrigger
from headwater.db import session_scope
from headwater.egress import EgressPolicy
from headwater.errors import HeadwaterError
from headwater.loops import LoopService
from headwater.secrets import SecretVault

__all__ = ["SyncScheduler"]

log = logging.getLogger("headwater.sync")


class SyncScheduler(LoopService[list[SyncRun]]):
    """Runs the periodic syncs of sources that set ``sync_interval_seconds``, every ``poll_seconds`` in the background
    (a running sync finishes its current page before the loop stops)."""

    log = log

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        poll_seconds: float,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        vault: SecretVault | None = None,
        egress: EgressPolicy | None = None,
    ) -> None:
        super().__init__(name="headwater-sync", interval=poll_seconds)
        self.factory = factory
        self.lease_seconds = lease_seconds
        self.vault = vault
        self.egress = egress

    def run_once(self) -> list[SyncRun]:
        """Sync every due source once; the reports of the runs this call made."""
        with session_scope(self.factory) as session:
            names = due_sources(session)
        runs: list[SyncRun] = []
        for name in names:
            if self.stopping:
                break
            try:
                runs.append(
                    run_sync(
                        self.factory,
                        source_name=name,
                        trigger=SyncTrigger.SCHEDULE,
                        lease_seconds=self.lease_seconds,
                        vault=self.vault,
                        egress=self.egress,
                    )
                )
            except SyncInProgress:
                continue  # another process or request is syncing it right now
            except HeadwaterError as exc:
                log.warning("periodic sync of source %r not started: %s", name, exc.message)
        return runs
