"""The shared background services: the loops a deployment runs once, however many processes serve its API.

The sync scheduler, the search indexer, the job reaper, storage retention and (where enabled) the job worker act on
the whole database, not on one process's memory. ``headwater serve`` with one process runs them as threads beside
the API; with several (``--workers``) they run in one process of their own, and ``headwater services`` runs them
alone (docs/operate/processes.md; why a process of their own: docs/adr/0010-serving-processes.md). The cache and
revocation pollers are not here: they keep one serving process's memory coherent, so each serving process runs its
own.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from headwater.catalog.sync_scheduler import SyncScheduler
from headwater.db import create_db_engine, make_sessionmaker
from headwater.egress import EgressPolicy
from headwater.jobs.reaper import ReaperThread
from headwater.jobs.worker import JobWorker, WorkerThread
from headwater.loops import LoopService
from headwater.retention import RetentionPolicy, RetentionThread
from headwater.search import IndexerThread, SearchIndexer, make_backend, make_indexer
from headwater.secrets import SecretVault
from headwater.settings import Settings

__all__ = [
    "SharedServices",
    "die_with_parent",
    "enabled_services",
    "run_services",
    "services_process",
    "stop_on_signals",
]

log = logging.getLogger("headwater.services")
PR_SET_PDEATHSIG = 1


@dataclass
class SharedServices:
    """The shared loops built for ``settings``; :attr:`loops` holds the ones the settings enable, in start order."""

    scheduler: SyncScheduler
    indexer_thread: IndexerThread
    job_worker: JobWorker
    job_reaper: ReaperThread
    retention: RetentionThread
    loops: list[LoopService[Any]] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        settings: Settings,
        factory: sessionmaker[Session],
        search_indexer: SearchIndexer,
        *,
        vault: SecretVault,
        egress: EgressPolicy,
        run: bool = True,
    ) -> SharedServices:
        """Every shared loop, whether or not the settings enable it (the app hands them to tests either way);
        ``run=False``: this process will not run them (then :attr:`loops` is empty)."""
        scheduler = SyncScheduler(
            factory,
            poll_seconds=settings.sync_poll_interval,
            lease_seconds=settings.sync_lease_seconds,
            vault=vault,
            egress=egress,
        )
        indexer_thread = IndexerThread(search_indexer, interval=settings.search_index_interval)
        # A process that runs no worker neither needs root for HEADWATER_JOBS_RUN_AS nor touches the data dir's modes.
        worker_settings = (
            settings if run and settings.should_run_job_worker else settings.model_copy(update={"jobs_run_as": None})
        )
        job_worker = JobWorker.from_settings(factory, worker_settings)
        # Lost jobs are reaped here too, so they end even when no worker is alive (docs/security/fencing.md).
        job_reaper = ReaperThread(
            factory,
            interval=settings.jobs_reaper_interval,
            timeout_seconds=settings.jobs_heartbeat_timeout,
            shared_work_dirs=settings.jobs_shared_work_dirs,
            host=settings.jobs_host,
        )
        retention = RetentionThread(
            factory, RetentionPolicy.from_settings(settings), interval=settings.retention_interval
        )
        services = cls(scheduler, indexer_thread, job_worker, job_reaper, retention)
        worker_thread = WorkerThread(job_worker, interval=settings.jobs_poll_interval)
        enabled = enabled_services(settings) if run else []
        services.loops = [
            loop for loop in (scheduler, indexer_thread, worker_thread, job_reaper, retention) if loop.name in enabled
        ]
        return services


def enabled_services(settings: Settings) -> list[str]:
    """The names of the shared loops ``settings`` turn on (their threads' names), in the order they start."""
    return [
        name
        for name, enabled in (
            ("headwater-sync", settings.sync_scheduler_enabled),
            ("headwater-search-indexer", settings.search_indexer_enabled),
            ("headwater-job-worker", settings.should_run_job_worker),
            ("headwater-job-reaper", settings.jobs_reaper_interval > 0),
            ("headwater-retention", settings.retention_enabled),
        )
        if enabled
    ]


def run_services(settings: Settings, stop: threading.Event, ready: Any = None) -> list[str]:
    """Run the shared loops the settings enable until ``stop`` is set (``ready.set()`` once they all started); the
    names of the loops it ran. Nothing enabled: returns at once with no name."""
    vault = SecretVault.from_settings(settings)
    vault.check_keys()
    egress = EgressPolicy.from_settings(settings)
    engine: Engine = create_db_engine(
        settings.resolved_database_url,
        pool_size=settings.db_pool_size,
        echo=settings.db_echo,
        prepared_statements=settings.db_prepared_statements,
    )
    search_backend = make_backend(settings, engine)
    try:
        indexer = make_indexer(settings, engine, search_backend)
        services = SharedServices.build(settings, make_sessionmaker(engine), indexer, vault=vault, egress=egress)
        names = [loop.name for loop in services.loops]
        if not names:
            return names
        started: list[LoopService[Any]] = []
        try:
            for loop in services.loops:
                loop.start()
                started.append(loop)
            log.info("background services running: %s", ", ".join(names))
            if ready is not None:
                ready.set()
            stop.wait()
        finally:
            for loop in reversed(started):
                loop.stop()
        return names
    finally:
        search_backend.close()
        engine.dispose()


def die_with_parent() -> None:
    """Linux: have this process sent SIGTERM when the process that started it ends, however it ends (a supervisor
    killed outright leaves no orphan serving its port); elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # no prctl: the supervisor's own shutdown still stops its children
        return
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # it ended before the call above
        os.kill(os.getpid(), signal.SIGTERM)


def stop_on_signals(stop: threading.Event) -> None:
    """Set ``stop`` on SIGTERM or SIGINT (call from the main thread)."""

    def _stop(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)


def services_process(settings: Settings, ready: Any) -> None:
    """The body of the services process ``headwater serve --workers N`` starts: the shared loops until SIGTERM or
    SIGINT (or its supervisor's end); exit status 3 when they cannot start."""
    die_with_parent()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    stop_on_signals(stop)
    try:
        run_services(settings, stop, ready)
    except ValueError as exc:  # a setting it cannot honour (a run-as user, a key): its message says which
        log.error("the background services could not start: %s", exc)
        sys.exit(3)
    except Exception:
        log.exception("the background services could not start")
        sys.exit(3)
