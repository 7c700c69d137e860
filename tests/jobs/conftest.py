"""Fixtures of the jobs tests: a worker on the suite's database, driven by the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from jobs_helpers import make_worker

from headwater.jobs.worker import JobWorker


@pytest.fixture
def worker(app: FastAPI, tmp_path: Path) -> Iterator[JobWorker]:
    """A job worker (not looping: tests drive it with run_once / drain); its jobs are killed afterwards."""
    job_worker = make_worker(app, tmp_path / "data")
    yield job_worker
    job_worker.shutdown()
