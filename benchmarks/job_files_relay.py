"""What reading a job's files costs when its worker is on another host (issue 19): a real ``headwater serve`` reads
the logs and an output of a job that a real ``headwater worker`` (recording another host name) runs, relayed through
PostgreSQL; the floor is a second server that reads the same directory itself (HEADWATER_JOBS_SHARED_WORK_DIRS);
then the same reads from the database archive once the job ended and its worker stopped.

Run: ``.venv/bin/python benchmarks/job_files_relay.py [--reads 200]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import _postgres
import httpx
from jobs_common import fresh_database, server, workers
from sqlalchemy import func, select

from headwater.db import create_db_engine, make_sessionmaker, session_scope
from headwater.jobs import service
from headwater.jobs.models import JobArchiveChunk, JobArchivedFile
from headwater.jobs.schemas import ClusterCreate, CommandCreate

# A real log (this machine's PostgreSQL server log), 48 KiB of base64 noise, a 4.5 MB output, then it waits.
SCRIPT = (
    "cat /var/log/postgresql/*.log > server.log 2>/dev/null; head -c 49152 /dev/urandom | base64 -w 100; "
    "seq 1 600000 > big.txt; touch ready; sleep 300"
)


def _register(url: str) -> None:
    engine = create_db_engine(url)
    with session_scope(make_sessionmaker(engine)) as session:
        service.create_cluster(session, data=ClusterCreate(name="bench", type="shell", tags=["bench"]))
        service.create_command(session, data=CommandCreate(name="sh", executable=["/bin/sh", "-c"], tags=["type:sh"]))
    engine.dispose()


def _listing(api: str, job_id: str) -> list[dict[str, object]]:
    response = httpx.get(f"{api}/api/v1/jobs/{job_id}/output", timeout=30)
    if response.status_code in (404, 503):  # not prepared yet
        return []
    assert response.status_code == 200, response.text
    listing: list[dict[str, object]] = response.json()
    return listing


def _timed(client: httpx.Client, path: str, count: int, **params: object) -> tuple[list[float], int]:
    times, size = [], 0
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(path, params=params)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
        size = len(response.content)
    return times, size


def _row(label: str, times: list[float], size: int) -> str:
    p50 = statistics.median(times)
    p99 = statistics.quantiles(times, n=100)[98] if len(times) >= 100 else max(times)
    return f"| {label} | {size:,} | {p50:.1f} | {p99:.1f} | {size / p50 / 1000:.1f} |"


def _measure(base_url: str, job_id: str, reads: int, label: str) -> list[str]:
    with httpx.Client(base_url=base_url, timeout=60) as client:
        log_times, log_size = _timed(client, f"/api/v1/jobs/{job_id}/logs/stdout", reads, limit=65536)
        file_times, file_size = _timed(client, f"/api/v1/jobs/{job_id}/output/big.txt", max(5, reads // 20))
    return [
        _row(f"{label}: 64 KiB of a log", log_times, log_size),
        _row(f"{label}: 4.5 MB download", file_times, file_size),
    ]


def main() -> None:
    """Measure and print a Markdown table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--reads", type=int, default=200)
    args = parser.parse_args()
    url = fresh_database("files")
    _register(url)
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hw-bench-files-") as tmp:
        base = Path(tmp)
        with server(url, base) as api, server(url, base, "floor", HEADWATER_JOBS_SHARED_WORK_DIRS="true") as floor:
            body = {"name": "files", "user": "bench", "command_args": [SCRIPT], "cluster_criteria": [["bench"]],
                    "command_criteria": ["type:sh"]}  # fmt: skip
            with workers(url, base, 1, 2, HEADWATER_JOBS_HOST="bench-remote", HEADWATER_JOBS_POLL_INTERVAL="0.05"):
                job_id = httpx.post(f"{api}/api/v1/jobs", json=body).json()["id"]
                deadline = time.monotonic() + 60
                while not any(e["path"] == "ready" for e in _listing(api, job_id)):
                    assert time.monotonic() < deadline, "the job never got ready"
                    time.sleep(0.2)
                rows += _measure(api, job_id, args.reads, "relayed from the worker")
                rows += _measure(floor, job_id, args.reads, "floor: the directory read directly")
                httpx.delete(f"{api}/api/v1/jobs/{job_id}")
                while httpx.get(f"{api}/api/v1/jobs/{job_id}/execution").json()["files_archived_at"] is None:
                    assert time.monotonic() < deadline + 60, "never archived"
                    time.sleep(0.2)
            rows += _measure(api, job_id, args.reads, "archive, worker stopped")
    engine = create_db_engine(url)
    with session_scope(make_sessionmaker(engine)) as session:
        stored = session.execute(
            select(JobArchivedFile.path, JobArchivedFile.size, func.sum(func.length(JobArchiveChunk.data)))
            .join(JobArchiveChunk, JobArchiveChunk.file_id == JobArchivedFile.id)
            .group_by(JobArchivedFile.path, JobArchivedFile.size)
            .order_by(JobArchivedFile.path)
        ).all()
    engine.dispose()
    print("| read | bytes | p50 ms | p99 ms | MB/s at p50 |\n|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    print("\n| archived file | bytes | stored | ratio |\n|---|---:|---:|---:|")
    for path, size, packed in stored:
        print(f"| {path} | {size:,} | {packed:,} | {size / packed:.1f}x |")
    _postgres.drop_database(url)


if __name__ == "__main__":
    main()
