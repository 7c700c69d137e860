"""Jobs whose driver runs on a cluster manager: the contract (:mod:`.base`), the supervisor (:mod:`.supervise`) and
one module per manager, each registering itself with :func:`~.base.register` when :func:`~.base.manager_for`
first asks for it (a supervisor imports only its own manager: it starts faster)."""

from __future__ import annotations

from typing import Any

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
    manager_class,
    manager_for,
    read_app_record,
    register,
    write_app_record,
)

__all__ = [
    "APP_RECORD",
    "DRIVER_LOGS_DIR",
    "SPEC_ENV",
    "AppRecord",
    "AppState",
    "AppStatus",
    "ClusterManager",
    "ManagerError",
    "Submission",
    "cancel_cluster_app",
    "describe",
    "manager_class",
    "manager_for",
    "read_app_record",
    "register",
    "write_app_record",
]


def cancel_cluster_app(
    work_dir: object,
    *,
    manager: str | None = None,
    config: dict[str, Any] | None = None,
    http: httpx.Client | None = None,
) -> str | None:
    """Kill, through its manager, the application the job in ``work_dir`` submitted (a :class:`~headwater.jobs.
    engines.Launch` ``cancel``: the worker calls it before signalling the job, so a supervisor killed with SIGKILL
    leaves nothing running on the cluster). The application id, or None when the job submitted none yet.

    Only the application id comes from the job's record, and only in the form ``manager``'s ids have: the manager
    and its config are the cluster's, given by the engine. The job can write its record, and must not aim the
    worker's requests anywhere else. Requests go through the egress policy: ``http``, else a client of the policy
    of this process's settings (:func:`headwater.egress.default_policy`)."""
    import logging
    from pathlib import Path

    log = logging.getLogger("headwater.jobs.drivers")
    record = read_app_record(Path(str(work_dir)))
    if record is None or manager is None or AppState(record.state).final:
        return None
    cls = manager_class(manager)
    if cls is None or record.manager != manager or not cls.valid_id(record.app_id):
        log.warning("job in %s: its record names no %s application id; nothing to kill", work_dir, manager)
        return None
    own = http is None
    if http is None:
        from headwater.egress import default_policy, http_client

        http = http_client(default_policy(), timeout=float((config or {}).get("timeout", 10.0)))
    try:
        manager_for(manager, config or {}, http=http).kill(record.app_id)
    except ManagerError as exc:
        log.warning("killing %s failed: %s", record.app_id, exc)
    finally:
        if own:
            http.close()
    return record.app_id
