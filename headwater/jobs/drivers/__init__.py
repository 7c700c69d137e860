"""Jobs whose driver runs on a cluster manager: the contract (:mod:`.base`), the supervisor (:mod:`.supervise`) and
one module per manager, each registering itself with :func:`~.base.register` when imported here."""

from __future__ import annotations

import httpx

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
    describe,
    manager_for,
    read_app_record,
    register,
    write_app_record,
)
from headwater.jobs.drivers.flink_application import FlinkApplicationManager
from headwater.jobs.drivers.kubernetes import KubernetesManager
from headwater.jobs.drivers.spark_standalone import SparkStandaloneManager
from headwater.jobs.drivers.yarn import YarnManager

__all__ = [
    "APP_RECORD",
    "DRIVER_LOGS_DIR",
    "SPEC_ENV",
    "AppRecord",
    "AppState",
    "AppStatus",
    "ClusterManager",
    "FlinkApplicationManager",
    "KubernetesManager",
    "ManagerError",
    "SparkStandaloneManager",
    "Submission",
    "YarnManager",
    "cancel_cluster_app",
    "describe",
    "manager_for",
    "read_app_record",
    "register",
    "write_app_record",
]


def cancel_cluster_app(work_dir: object, *, http: httpx.Client | None = None) -> str | None:
    """Kill, through its manager, the application the job in ``work_dir`` submitted (a :class:`~headwater.jobs.
    engines.Launch` ``cancel``: the worker calls it before signalling the job, so a supervisor killed with SIGKILL
    leaves nothing running on the cluster). The application id, or None when the job submitted none yet.

    It runs in the worker, so its requests go through the egress policy: ``http``, else a client of the policy of
    this process's settings (:func:`headwater.egress.default_policy`)."""
    import logging
    from pathlib import Path

    record = read_app_record(Path(str(work_dir)))
    if record is None or AppState(record.state).final:
        return None
    own = http is None
    if http is None:
        from headwater.egress import default_policy, http_client

        http = http_client(default_policy(), timeout=float(record.config.get("timeout", 10.0)))
    try:
        manager_for(record.manager, record.config, http=http).kill(record.app_id)
    except ManagerError as exc:
        logging.getLogger("headwater.jobs.drivers").warning("killing %s failed: %s", record.app_id, exc)
    finally:
        if own:
            http.close()
    return record.app_id
