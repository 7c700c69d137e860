"""The thread that fences a job worker's expiring leases on its own (docs/adr/0001-job-fencing.md), so a worker loop
stuck in a database call that hangs, or in a blocked write, cannot delay the kill of a job it may no longer hold."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from headwater.loops import LoopService

if TYPE_CHECKING:
    from headwater.jobs.worker import JobWorker

__all__ = ["LeaseFence"]

log = logging.getLogger("headwater.jobs.worker")


class LeaseFence(LoopService[None]):
    """Fences a worker's expiring leases from a thread of its own too, so a loop stuck in a database call that hangs
    (or in a blocked write) cannot delay it."""

    log = log

    def __init__(self, worker: JobWorker) -> None:
        period = min(1.0, max(0.05, (worker.heartbeat_timeout - worker.fence_after) / 4))
        super().__init__(name="headwater-job-fence", interval=period)
        self.worker = worker

    def run_once(self) -> None:
        """Kill the jobs whose lease is about to run out."""
        self.worker.fence_expiring()

    def on_error(self, exc: Exception) -> None:
        """The loop changed what it runs meanwhile: look again next period."""
