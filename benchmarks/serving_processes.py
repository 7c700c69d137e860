"""Benchmark of ``headwater serve --workers N`` on PostgreSQL: the same load through 1, 2 and 3 serving processes.

What one run does:

1. makes a fresh PostgreSQL database (``_postgres.fresh_database``), migrated, and registers ``--datasets``
   datasets through the catalog service (``catalog_api.load_datasets``: 10 to 30 fields each, a few 200);
2. for each ``--workers`` count, in ``--rounds`` interleaved rounds, starts ``headwater serve --workers N`` (its own
   process tree, stopped by PID), waits until the search index has caught up, and loads two URLs from a separate
   process (``_async_load.py``) at each ``--clients`` count: a search (``/api/v1/search?q=...``, column documents
   on, the default) and a GET of one dataset;
3. prints req/s, p50 and p99 for each, and the ratio of req/s to one worker's from the same round. The floor is
   one worker: the question is what more processes add on this machine, not the distance to a bare server
   (``catalog_api.py`` measures that).

Run from the repository root::

    .venv/bin/python benchmarks/serving_processes.py [--datasets 2000] [--workers 1,2,3] [--clients 16,50]

On a shared machine the figures move with the other processes' load: the table prints the load average beside
each round, and only ratios within a round mean much.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _postgres import drop_database, fresh_database  # noqa: E402
from catalog_api import free_port, load_datasets  # noqa: E402

from headwater.secrets import generate_key  # noqa: E402


def load_average() -> str:
    """The 1-minute load average, as ``uptime`` prints it."""
    return f"{os.getloadavg()[0]:.1f}"


def start_server(database_url: str, workers: int, data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``headwater serve --workers N`` on a free port; its process and base URL once the index has caught up."""
    port = free_port()
    env = {
        **os.environ,
        "HEADWATER_DATABASE_URL": database_url,
        "HEADWATER_DATA_DIR": str(data_dir),
        "HEADWATER_SECRETS_KEY": SECRETS_KEY,
        "HEADWATER_LOG_LEVEL": "warning",
        "HEADWATER_RATE_LIMIT_PER_SECOND": "0",
    }
    command = [sys.executable, "-m", "headwater.cli", "serve", "--port", str(port), "--workers", str(workers)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            status = httpx.get(f"{base}/api/v1/search/status", timeout=10).json()
            if status.get("lag") == 0 and status.get("position", 0) > 0:
                return process, base
        except (httpx.TransportError, ValueError):
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop_server(process)
            raise SystemExit(f"headwater serve --workers {workers} did not become ready with its index caught up")
        time.sleep(0.5)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the supervisor (it stops its children); SIGKILL after 30 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def measure(url: str, clients: int, duration: float) -> dict[str, float]:
    """req/s, p50 and p99 (ms) of ``url`` at ``clients`` connections, from a separate process."""
    done = subprocess.run(
        [sys.executable, str(HERE / "_async_load.py"), url, "--concurrency", str(clients), "--duration", str(duration)],
        capture_output=True,
        text=True,
        timeout=duration + 120,
        check=True,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


SECRETS_KEY = generate_key()


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=2000)
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--clients", default="16,50")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    client_counts = [int(n) for n in args.clients.split(",")]

    url = fresh_database("headwater_bench_serving_processes")
    try:
        print(f"load {load_average()}: registering {args.datasets:,} datasets", flush=True)
        load_datasets(url, count=args.datasets, batch=250)
        data_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"hw-serving-bench-{os.getpid()}"
        rows: list[tuple[int, int, str, int, dict[str, float], str]] = []
        for round_number in range(1, args.rounds + 1):
            for workers in counts:
                process, base = start_server(url, workers, data_dir)
                try:
                    first = httpx.get(f"{base}/api/v1/datasets", params={"limit": 1}, timeout=30).json()["items"][0]
                    targets = {
                        "search": f"{base}/api/v1/search?q=events&limit=20",
                        "get": f"{base}/api/v1/datasets/{first['id']}",
                    }
                    for name, target in targets.items():
                        measure(target, 4, 2)  # warm-up
                        for clients in client_counts:
                            load = load_average()
                            result = measure(target, clients, args.duration)
                            rows.append((round_number, workers, name, clients, result, load))
                            print(
                                f"round {round_number} workers {workers} {name:<6} {clients:>3} clients: "
                                f"{result['rps']:8.1f} req/s p50 {result['p50_ms']:7.1f} ms "
                                f"p99 {result['p99_ms']:7.1f} ms errors {result['errors']:.0f} non-2xx {result['non_2xx']:.0f} "
                                f"(load {load})",
                                flush=True,
                            )
                finally:
                    stop_server(process)
        print("\n| round | workers | request | clients | req/s | x 1 worker | p50 ms | p99 ms | load |")
        print("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
        for round_number, workers, name, clients, result, load in rows:
            floor = next(
                (r[4]["rps"] for r in rows if r[0] == round_number and r[1] == counts[0] and r[2:4] == (name, clients)),
                None,
            )
            ratio = f"{result['rps'] / floor:.2f}" if floor else "-"
            print(
                f"| {round_number} | {workers} | {name} | {clients} | {result['rps']:.1f} | {ratio} | "
                f"{result['p50_ms']:.1f} | {result['p99_ms']:.1f} | {load} |"
            )
    finally:
        drop_database(url)


if __name__ == "__main__":
    main()
