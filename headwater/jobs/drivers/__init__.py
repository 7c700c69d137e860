"""Jobs whose driver runs on a cluster manager: the contract (:mod:`.base`), the supervisor (:mod:`.supervise`) and
one module per manager, each registering itself with :func:`~.base.register` when imported here."""

from __future__ import annotations

from headwater.jobs.drivers.base import (
    APP_RECORD,
    DRIVER_LOGS_DIR,
    SPEC_ENV,
    AppRecord,
    AppState,
    AppStatus,
    ClusterManager,
    ManagerError,
    Submission,
    manager_for,
    read_app_record,
    register,
    write_app_record,
)
from headwater.jobs.drivers.kubernetes import KubernetesManager
from headwater.jobs.drivers.yarn import YarnManager

__all__ = [
    "APP_RECORD",
    "DRIVER_LOGS_DIR",
    "SPEC_ENV",
    "AppRecord",
    "AppState",
    "AppStatus",
    "ClusterManager",
    "KubernetesManager",
    "ManagerError",
    "Submission",
    "YarnManager",
    "cancel_cluster_app",
    "manager_for",
    "read_app_record",
    "register",
    "write_app_record",
]


def cancel_cluster_app(work_dir: object) -> str | None:
    """Kill, through its manager, the application the job in ``work_dir`` submitted (a :class:`~headwater.jobs.
    engines.Launch` ``cancel``: the worker calls it before signalling the job, so a supervisor killed with SIGKILL
    leaves nothing running on the cluster). The application id, or None when the job submitted none yet."""
    import logging
    from pathlib import Path

    record = read_app_record(Path(str(work_dir)))
    if record is None or AppState(record.state).final:
        return None
    try:
        manager_for(record.manager, record.config).kill(record.app_id)
    except ManagerError as exc:
        logging.getLogger("headwater.jobs.drivers").warning("killing %s failed: %s", record.app_id, exc)
    return record.app_id
