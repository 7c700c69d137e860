"""Fixtures of the jobs tests: a worker on the suite's database, driven by the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from jobs_helpers import make_worker
from spark_cluster import StandaloneCluster, standalone_cluster

from headwater.jobs.worker import JobWorker


@pytest.fixture
def worker(app: FastAPI, tmp_path: Path) -> Iterator[JobWorker]:
    """A job worker (not looping: tests drive it with run_once / drain); its jobs are killed afterwards."""
    job_worker = make_worker(app, tmp_path / "data")
    yield job_worker
    job_worker.shutdown()


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneCluster]:
    """A real Spark standalone master (REST submission server on) and two workers, shared by the session."""
    with standalone_cluster(tmp_path_factory.mktemp("spark-standalone")) as cluster:
        yield cluster
