"""Benchmark of Spark jobs on a real standalone cluster in cluster deploy mode (issue 19).

What it does, in one run:

1. starts a real Spark standalone master (REST submission server on) and ``--spark-workers`` workers from pyspark's
   ``spark-class`` (the same starter the tests use: tests/jobs/spark_cluster.py), a fresh PostgreSQL database, a
   real ``headwater serve`` and ``--workers`` real ``headwater worker`` processes;
2. **latency**: ``--latency-jobs`` jobs one at a time, each POSTed over HTTP; measured from the POST to the master's
   answer RUNNING for the job's driver (the one new driver on the master, asked every 50 ms), to the job's own
   RUNNING, and to the driver's id shown by the API. Floor in the same run: the very ``spark-submit`` the engine
   builds, run directly against the same master, from its start to the master's RUNNING (the id taken as soon as
   spark-submit prints it);
3. **throughput**: ``--jobs`` (default 200) short PySpark drivers through the Headwater workers onto the cluster,
   then the same drivers submitted directly (``spark-submit`` then the master's status until each ends, the same
   number at a time as Headwater's cluster limit); jobs/s of both, and from the database and the master: jobs lost
   (not SUCCEEDED) and jobs run twice (a second claim or attempt, or more drivers on the master than jobs).

The driver (``--driver``): ``session`` starts a SparkSession and counts ``spark.range(100)`` (needs an executor);
``plain`` is a PySpark driver that only imports pyspark and exits (the driver JVM, its Python, no executor).

Run from the repository root (PostgreSQL at 127.0.0.1:5432, or HEADWATER_BENCH_POSTGRES_URL)::

    .venv/bin/python benchmarks/jobs_cluster.py [--jobs 200] [--latency-jobs 10] [--driver plain]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests"), str(ROOT / "tests" / "jobs")]

from _postgres import drop_database  # noqa: E402  (the benchmarks directory is not a package)
from jobs_common import fresh_database, load_average, outcome, percentile, server, workers  # noqa: E402
from spark_cluster import StandaloneCluster, standalone_cluster  # noqa: E402

from headwater.jobs.drivers import SPEC_ENV  # noqa: E402
from headwater.jobs.engines import JobContext, SparkEngine  # noqa: E402

DRIVERS = {
    "session": """
        from pyspark.sql import SparkSession
        spark = SparkSession.builder.appName("headwater-bench").getOrCreate()
        print("COUNT", spark.range(100).count(), flush=True)
        spark.stop()
    """,
    "plain": """
        import pyspark
        print("PYSPARK", pyspark.__version__, flush=True)
    """,
}
_DRIVER_ID = re.compile(r"(driver-\d{14}-\d{4,})")


def driver_state(cluster: StandaloneCluster, driver_id: str) -> str:
    """The master's state of one driver."""
    return str(cluster.driver(driver_id).get("driverState", ""))


def wait_state(cluster: StandaloneCluster, driver_id: str, wanted: set[str], timeout: float = 300) -> str:
    """Ask the master every 50 ms until the driver's state is in ``wanted`` (or final); the state seen."""
    deadline = time.monotonic() + timeout
    final = {"FINISHED", "FAILED", "ERROR", "KILLED"}
    while time.monotonic() < deadline:
        try:
            state = driver_state(cluster, driver_id)
        except (httpx.HTTPError, ValueError):
            state = ""
        if state in wanted or state in final:
            return state
        time.sleep(0.05)
    raise TimeoutError(f"driver {driver_id} never reached {wanted}")


def submit_directly(cluster: StandaloneCluster, script: Path, config: dict[str, Any]) -> tuple[str, float]:
    """The very ``spark-submit`` Headwater's engine would run (the supervisor's argv after ``--``), run directly
    against the master; the driver id and when spark-submit printed it."""
    context = JobContext(
        job_id="direct", job_name="direct", run_uuid=str(uuid.uuid4()), args=[str(script)],
        command=["spark-submit"], cluster_config=config,
    )  # fmt: skip
    launch = SparkEngine().launch(context)
    argv = launch.argv[launch.argv.index("--") + 1 :]
    env = {**os.environ, **{k: v for k, v in launch.env.items() if k != SPEC_ENV}}
    # The id is taken the moment spark-submit prints it (as the supervisor does), not when it exits: spark-submit
    # itself sleeps 5 s to ask the master once more before exiting, which is no part of the floor.
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert process.stdout is not None
    seen: list[str] = []
    for line in process.stdout:
        seen.append(line)
        match = _DRIVER_ID.search(line)
        if match is not None:
            threading.Thread(target=_drain, args=(process,), daemon=True).start()
            return match.group(1), time.monotonic()
    process.wait()
    raise RuntimeError("spark-submit printed no driver id:\n" + "".join(seen)[-2000:])


def _drain(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    for _ in process.stdout:
        pass
    process.wait()


def register(base_url: str, cluster: StandaloneCluster, config: dict[str, Any], limit: int) -> None:
    """The standalone cluster and the spark-submit command, through the API."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        r = client.post(
            "/api/v1/clusters",
            json={"name": "standalone", "type": "spark", "tags": ["sched:standalone"], "config": config,
                  "max_concurrent_jobs": limit},
        )  # fmt: skip
        r.raise_for_status()
        r = client.post(
            "/api/v1/commands", json={"name": "spark", "executable": ["spark-submit"], "tags": ["type:spark"]}
        )
        r.raise_for_status()


def job_body(script: Path, index: int) -> dict[str, Any]:
    """One job of the benchmark."""
    return {
        "name": f"bench-cluster-{index}",
        "user": "bench",
        "command_args": [str(script)],
        "cluster_criteria": [["sched:standalone"]],
        "command_criteria": ["type:spark"],
    }


def _drivers(cluster: StandaloneCluster) -> set[str]:
    state = cluster.state()
    return {str(d["id"]) for d in [*state.get("activedrivers", []), *state.get("completeddrivers", [])]}


def headwater_latency(base_url: str, cluster: StandaloneCluster, script: Path, count: int) -> dict[str, list[float]]:
    """For ``count`` jobs one at a time (ms from the POST): the job's RUNNING, its driver's id shown by the API, and
    the master's RUNNING for that driver (found on the master itself: the one new driver, asked every 50 ms)."""
    out: dict[str, list[float]] = {"job_running": [], "id_in_api": [], "driver_running": []}
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for index in range(count):
            before = _drivers(cluster)
            sent = time.monotonic()
            job_id = client.post("/api/v1/jobs", json=job_body(script, 10_000 + index)).json()["id"]
            driver_id = None
            marks: dict[str, float] = {}
            deadline = time.monotonic() + 600
            while len(marks) < 3 and time.monotonic() < deadline:
                now = time.monotonic()
                if "job_running" not in marks or "id_in_api" not in marks:
                    execution = client.get(f"/api/v1/jobs/{job_id}/execution").json()
                    if execution.get("started_at"):
                        marks.setdefault("job_running", now)
                    if execution.get("cluster_app"):
                        marks.setdefault("id_in_api", now)
                if driver_id is None:
                    new = _drivers(cluster) - before
                    driver_id = next(iter(new)) if new else None
                if (
                    "driver_running" not in marks
                    and driver_id is not None
                    and driver_state(cluster, driver_id) in {"RUNNING", "FINISHED", "FAILED"}
                ):
                    marks["driver_running"] = time.monotonic()
                time.sleep(0.05)
            for name, at in marks.items():
                out[name].append((at - sent) * 1000)
            _wait_job(client, job_id)
    return out


def _wait_job(client: httpx.Client, job_id: str, timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = str(client.get(f"/api/v1/jobs/{job_id}/status").json()["status"])
        if status in {"SUCCEEDED", "FAILED", "KILLED", "INVALID"}:
            return status
        time.sleep(0.2)
    raise TimeoutError(job_id)


def direct_latency(cluster: StandaloneCluster, script: Path, config: dict[str, Any], count: int) -> list[float]:
    """spark-submit started → the master's RUNNING, ``count`` times one at a time (ms)."""
    out = []
    for _ in range(count):
        started = time.monotonic()
        driver_id, _returned = submit_directly(cluster, script, config)
        wait_state(cluster, driver_id, {"RUNNING"})
        out.append((time.monotonic() - started) * 1000)
        wait_state(cluster, driver_id, set())
    return out


def headwater_throughput(base_url: str, script: Path, count: int) -> tuple[float, dict[str, int]]:
    """Submit ``count`` jobs over HTTP at once and wait for all; seconds, statuses."""
    started = time.monotonic()
    with httpx.Client(base_url=base_url, timeout=60) as client:
        ids = [client.post("/api/v1/jobs", json=job_body(script, index)).json()["id"] for index in range(count)]
        statuses: dict[str, int] = {}
        for job_id in ids:
            status = _wait_job(client, job_id, timeout=3600)
            statuses[status] = statuses.get(status, 0) + 1
    return time.monotonic() - started, statuses


def direct_throughput(
    cluster: StandaloneCluster, script: Path, config: dict[str, Any], count: int, parallel: int
) -> tuple[float, dict[str, int]]:
    """The same drivers submitted directly, ``parallel`` at a time, each followed to its end; seconds, states."""
    states: dict[str, int] = {}
    lock = threading.Lock()

    def one(_: int) -> None:
        driver_id, _returned = submit_directly(cluster, script, config)
        state = wait_state(cluster, driver_id, set(), timeout=3600)
        with lock:
            states[state] = states.get(state, 0) + 1

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(one, range(count)))
    return time.monotonic() - started, states


def drivers_on_master(cluster: StandaloneCluster) -> int:
    """Drivers the master knows of (active and completed)."""
    state = cluster.state()
    return len(state.get("activedrivers", [])) + len(state.get("completeddrivers", []))


def main() -> None:
    """Run the benchmark and print its figures beside their floors."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--latency-jobs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="headwater worker processes")
    parser.add_argument("--slots", type=int, default=4, help="slots per headwater worker")
    parser.add_argument(
        "--limit", type=int, default=4, help="the cluster's max concurrent jobs (and direct parallelism)"
    )
    parser.add_argument("--spark-workers", type=int, default=2)
    parser.add_argument("--cores", type=int, default=2, help="cores each Spark worker offers")
    parser.add_argument("--memory", default="1536m", help="memory each Spark worker offers")
    parser.add_argument("--driver", choices=sorted(DRIVERS), default="plain")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hw-bench-cluster-") as tmp:
        base = Path(tmp)
        script = base / "driver.py"
        script.write_text(textwrap.dedent(DRIVERS[args.driver]))
        url = fresh_database("jobs_cluster")
        try:
            with standalone_cluster(
                base / "spark", workers=args.spark_workers, cores=args.cores, memory=args.memory,
                master_conf={"spark.deploy.retainedDrivers": str(10 * args.jobs + 100)},
            ) as cluster:  # fmt: skip
                config = cluster.config(poll_interval=0.5)
                config["conf"].update({"spark.driver.memory": "384m", "spark.driver.cores": "1"})
                print(f"load before: {load_average()}", flush=True)
                with server(url, base) as base_url, workers(url, base, args.workers, args.slots):
                    register(base_url, cluster, config, args.limit)
                    if not args.skip_latency:
                        marks = headwater_latency(base_url, cluster, script, args.latency_jobs)
                        floor = direct_latency(cluster, script, config, args.latency_jobs)
                        p50, f50 = percentile(marks["driver_running"], 0.5), percentile(floor, 0.5)

                        def summary(values: list[float]) -> dict[str, float]:
                            return {"p50": round(percentile(values, 0.5), 1), "p99": round(percentile(values, 0.99), 1)}

                        print(json.dumps({"latency_jobs": args.latency_jobs, "load": load_average(),
                            "headwater_post_to": {name: summary(values) for name, values in marks.items() if values},
                            "floor_spark_submit_to_driver_running_ms": summary(floor),
                            "ratio_p50": round(p50 / f50, 2)}), flush=True)  # fmt: skip
                    if not args.skip_throughput:
                        before = drivers_on_master(cluster)
                        seconds, statuses = headwater_throughput(base_url, script, args.jobs)
                        drivers = drivers_on_master(cluster) - before
                        result = outcome(url)
                        direct_seconds, states = direct_throughput(cluster, script, config, args.jobs, args.limit)
                        print(json.dumps({"jobs": args.jobs, "load": load_average(),
                            "headwater": {"seconds": round(seconds, 1), "jobs_per_s": round(args.jobs / seconds, 3),
                                          "statuses": statuses, "drivers_on_master": drivers,
                                          "lost": args.jobs - statuses.get("SUCCEEDED", 0),
                                          "run_twice": result["run twice"] + result["claimed twice"] + max(0, drivers - args.jobs)},
                            "direct": {"seconds": round(direct_seconds, 1), "jobs_per_s": round(args.jobs / direct_seconds, 3), "states": states},
                            "ratio": round(direct_seconds / seconds, 3)}), flush=True)  # fmt: skip
        finally:
            drop_database(url)


if __name__ == "__main__":
    main()
