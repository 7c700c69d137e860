"""The worker's side of jobs on cluster managers, without a cluster: the application a job's supervisor submitted is
recorded on the job as soon as its record appears (the reaper needs the id to kill the application of a lost job),
not at the next heartbeat; and only what the job cannot forge is recorded: the manager and config are the
cluster's, the id must have the manager's form and belong to no other job.

The supervisor here is the real one; the ``spark-submit`` it runs is a stand-in script (no master is needed to
print a driver id), so the supervisor then finds no master to ask and the job is killed."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from jobs_helpers import make_worker
from sqlalchemy import select

from headwater.db import session_scope
from headwater.jobs import cluster_apps
from headwater.jobs.drivers import AppRecord, write_app_record
from headwater.jobs.models import Job

pytestmark = pytest.mark.anyio

DRIVER = "driver-20261206080000-0007"
STANDIN_SPARK_SUBMIT = f"""#!/bin/sh
# A stand-in for spark-submit: prints what Spark 4's legacy submission client prints, as a real one would.
echo "INFO Client: Driver successfully submitted as {DRIVER}"
"""


def _spark_home(tmp_path: Path) -> Path:
    home = tmp_path / "spark-standin"
    (home / "bin").mkdir(parents=True)
    submit = home / "bin" / "spark-submit"
    submit.write_text(STANDIN_SPARK_SUBMIT)
    submit.chmod(0o755)
    return home


async def _setup(client: httpx.AsyncClient, tmp_path: Path) -> dict[str, object]:
    config = {
        "master": "spark://127.0.0.1:9", "deploy_mode": "cluster", "rest_url": "http://127.0.0.1:9",
        "spark_home": str(_spark_home(tmp_path)), "poll_interval": 0.5, "kill_wait": 1,
    }  # fmt: skip
    r = await client.post("/api/v1/clusters", json={"name": "standalone", "type": "spark", "tags": ["c"],
                                                    "config": config})  # fmt: skip
    assert r.status_code == 201, r.text
    r = await client.post("/api/v1/commands", json={"name": "s", "executable": ["spark-submit"], "tags": ["t"]})
    assert r.status_code == 201, r.text
    return config


def _body(name: str) -> dict[str, object]:
    return {"name": name, "user": "alice", "command_args": ["/jobs/app.jar"], "cluster_criteria": [["c"]],
            "command_criteria": ["t"]}  # fmt: skip


async def test_a_new_application_id_is_recorded_at_once_not_at_the_next_heartbeat(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path
) -> None:
    config = await _setup(client, tmp_path)
    job_id = (await client.post("/api/v1/jobs", json=_body("at-once"))).json()["id"]
    # A heartbeat every 60 s: only the record's appearance can make the worker write it sooner.
    worker = make_worker(app, tmp_path / "data", heartbeat_interval=60.0, heartbeat_timeout=300.0)
    try:
        started, recorded = time.monotonic(), None
        while time.monotonic() - started < 30 and recorded is None:
            worker.run_once()
            recorded = (await client.get(f"/api/v1/jobs/{job_id}/execution")).json()["cluster_app"]
            time.sleep(0.1)
        assert recorded == {"manager": "spark-standalone", "app_id": DRIVER, "state": "SUBMITTED",
                            "manager_state": ""} or recorded and recorded["app_id"] == DRIVER, recorded  # fmt: skip
        assert time.monotonic() - started < 30
        with session_scope(app.state.sessionmaker) as session:
            job = session.scalar(select(Job).where(Job.id == job_id))
            assert job is not None and job.external_config == {k: v for k, v in config.items() if k != "conf"}
        assert (await client.delete(f"/api/v1/jobs/{job_id}")).status_code == 202
        worker.drain(timeout=60)
        assert (await client.get(f"/api/v1/jobs/{job_id}")).json()["status"] == "KILLED"
    finally:
        worker.shutdown()


async def test_a_record_the_job_forged_is_not_recorded_as_its_application(
    client: httpx.AsyncClient, app: FastAPI, tmp_path: Path
) -> None:
    config = await _setup(client, tmp_path)
    victim = (await client.post("/api/v1/jobs", json=_body("victim"))).json()["id"]
    forger = (await client.post("/api/v1/jobs", json=_body("forger"))).json()["id"]
    work = tmp_path / "forger"
    work.mkdir()
    with session_scope(app.state.sessionmaker) as session:
        pks = dict(session.execute(select(Job.id, Job.pk).where(Job.id.in_([victim, forger]))).all())
        session.execute(Job.__table__.update().where(Job.pk == pks[victim]).values(
            external_manager="spark-standalone", external_id=DRIVER))  # fmt: skip
    cases = [
        # another job's driver: recorded, the reaper would kill the victim's driver as the forger's
        (AppRecord(manager="spark-standalone", app_id=DRIVER, state="RUNNING"), None),
        # not of the manager's form
        (AppRecord(manager="spark-standalone", app_id="../kill/x", state="RUNNING"), None),
        # another manager than the cluster's
        (AppRecord(manager="yarn", app_id="application_1700000000000_0001", state="RUNNING"), None),
        # its own driver, with a config aimed elsewhere: the id is taken, the config is the cluster's
        (
            AppRecord(
                manager="spark-standalone",
                app_id="driver-20261206080000-0008",
                state="RUNNING",
                config={"rest_url": "http://10.9.9.9:6066"},
            ),
            "driver-20261206080000-0008",
        ),  # fmt: skip
    ]
    for record, expected in cases:
        write_app_record(work, record)
        with session_scope(app.state.sessionmaker) as session:
            cluster_apps.note_apps(session, [(pks[forger], work)], {})
        with session_scope(app.state.sessionmaker) as session:
            job = session.get(Job, pks[forger])
            assert job is not None and job.external_id == expected, record
            if expected:
                assert job.external_config == {k: v for k, v in config.items() if k != "conf"}
