"""``headwater worker``: a job worker process that claims and runs jobs from the database queue."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Annotated

import typer

from headwater.cli import _settings, console, friendly_errors
from headwater.db import create_db_engine, make_sessionmaker

__all__ = ["worker"]


@friendly_errors
def worker(
    slots: Annotated[
        int | None, typer.Option(min=1, max=256, help="Jobs run at a time (HEADWATER_JOBS_WORKER_SLOTS).")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Run until the queue is empty, then exit.")] = False,
) -> None:
    """Claim and run jobs until stopped (SIGINT/SIGTERM kill the jobs it runs, which end KILLED)."""
    from headwater.app import prepare_database
    from headwater.jobs.worker import JobWorker

    settings = _settings()
    prepare_database(settings)
    engine = create_db_engine(settings.resolved_database_url)
    job_worker = JobWorker.from_settings(make_sessionmaker(engine), settings, slots=slots)
    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    console.print(
        f"Job worker [bold]{job_worker.worker_id}[/] with {job_worker.slots} slot(s); jobs in {job_worker.jobs_dir}"
    )
    try:
        if once:
            job_worker.drain(timeout=7 * 24 * 3600, interval=settings.jobs_poll_interval)
            return
        job_worker.serve(stop)
    finally:
        job_worker.shutdown()
        engine.dispose()
