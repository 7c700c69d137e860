"""LIST latency while datasets are written (issue 18): before and after per-page invalidation and estimated totals.

One run:

1. loads ``--datasets`` datasets (100,000 by default) into a PostgreSQL database unless ``--reuse``;
2. starts one uvicorn server on it (cache on), in its own process group;
3. for each mode and write rate (0, 1 and 10 PATCH/s), runs ``--readers`` concurrent clients for ``--duration``
   seconds, each GETting one of 24 list URLs at random (first and deeper pages of several sorts and filters, limit
   50), while a writer PATCHes the description of a random dataset at that rate;
4. prints p50/p99 of the reads and how many were cache hits.

Modes, in the same server and run: ``before`` asks ``count=exact`` and makes every write drop every cached list page
(as main did before issue 18: the server is told so by ``HEADWATER_BENCH_INVALIDATE_ALL`` being honoured by
``before_app``); ``after`` asks the default ``count`` (estimate) with per-page invalidation. The two modes use two
servers started one after the other on the same database.

    .venv/bin/python benchmarks/catalog_list_writes.py [--database-url URL] [--reuse] [--duration 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import make_url, text

from headwater.db import create_db_engine

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _catalog_seed import seed_catalog  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/headwater_bench_list_writes"
LIST = "/api/v1/datasets"


def before_app() -> Any:
    """The app as before issue 18 where the cache is concerned: every dataset write drops every list page."""
    from headwater.app import create_app
    from headwater.catalog.cache import DatasetCache

    app = create_app(prepare=False)
    cache: DatasetCache = app.state.dataset_cache
    keyed = cache.invalidate
    cache.invalidate = lambda ids, keys=None: keyed(ids, None)  # type: ignore[method-assign]
    return app


def after_app() -> Any:
    """The app as it is."""
    from headwater.app import create_app

    return create_app(prepare=False)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return values[max(1, math.ceil(fraction * len(values))) - 1] if values else 0.0


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(url: str, factory: str, port: int) -> subprocess.Popen[bytes]:
    """uvicorn serving ``factory`` of this module on ``port``, in its own process group; returns once healthy."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env.update(
        HEADWATER_DATABASE_URL=url,
        HEADWATER_LOG_LEVEL="warning",
        HEADWATER_RATE_LIMIT_PER_SECOND="0",
        HEADWATER_SEARCH_INDEXER_ENABLED="false",
        HEADWATER_SYNC_SCHEDULER_ENABLED="false",
        PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent), env.get("PYTHONPATH", "")]),
    )
    command = [sys.executable, "-m", "uvicorn", "--factory", f"catalog_list_writes:{factory}", "--port", str(port)]
    command += ["--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen(command, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    stop_server(process)
    raise SystemExit("the server did not start")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """Stop the server's process group, by its id."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


async def list_urls(client: httpx.AsyncClient, count: str | None) -> list[dict[str, Any]]:
    """24 list pages: the first five pages by name, and first and third pages of other sorts and filters."""
    extra = {"count": count} if count else {}
    urls: list[dict[str, Any]] = []
    for base in (
        {"sort": "name"},
        {"sort": "-updated_at"},
        {"sort": "created_at"},
        {"tag": "gold"},
        {"owner": "growth-eng"},
        {"name_prefix": "sales."},
    ):
        params: dict[str, Any] = {"limit": 50, **base, **extra}
        depth = 5 if base == {"sort": "name"} else 3
        for _ in range(depth):
            urls.append(params)
            page = (await client.get(LIST, params=params)).json()
            if not page.get("next_cursor"):
                break
            params = {**params, "cursor": page["next_cursor"]}
    return urls


async def measure(  # noqa: PLR0913
    port: int, count: str | None, writes_per_second: float, readers: int, duration: float, max_id: int
) -> dict[str, float]:
    base = f"http://127.0.0.1:{port}"
    limits = httpx.Limits(max_connections=readers + 2)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        urls = await list_urls(client, count)
        for params in urls:  # warm: every page cached
            await client.get(LIST, params=params)
        times: list[float] = []
        writes = 0
        stop = time.monotonic() + duration
        rng = random.Random(18)

        async def reader() -> None:
            while time.monotonic() < stop:
                params = rng.choice(urls)
                start = time.perf_counter()
                response = await client.get(LIST, params=params)
                times.append((time.perf_counter() - start) * 1000)
                assert response.status_code == 200, response.text

        async def writer() -> None:
            nonlocal writes
            if writes_per_second <= 0:
                return
            interval = 1 / writes_per_second
            next_at = time.monotonic()
            while time.monotonic() < stop:
                dataset_id = rng.randint(1, max_id)
                response = await client.patch(
                    f"{LIST}/{dataset_id}", json={"description": f"w{writes}"}, headers={"If-Match": "*"}
                )
                assert response.status_code in (200, 404), response.text
                writes += 1
                next_at += interval
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))

        await asyncio.gather(writer(), *(reader() for _ in range(readers)))
    times.sort()
    return {
        "reads": len(times),
        "writes": writes,
        "p50": percentile(times, 0.5),
        "p99": percentile(times, 0.99),
        "rps": len(times) / duration,
    }


def main() -> None:
    """Parse the options, load or reuse the catalog, measure both modes and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--datasets", type=int, default=100_000)
    parser.add_argument("--reuse", action="store_true", help="keep the database if it exists (else re-create it)")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--readers", type=int, default=8)
    parser.add_argument("--rates", default="0,1,10", help="PATCH/s to run beside the reads")
    args = parser.parse_args()
    url = make_url(args.database_url)
    admin = create_db_engine(url.set(database="postgres").render_as_string(hide_password=False))
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        exists = connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database})
        if exists and not args.reuse:
            connection.execute(text(f'DROP DATABASE "{url.database}" WITH (FORCE)'))
        if not exists or not args.reuse:
            connection.execute(text(f'CREATE DATABASE "{url.database}"'))
            print(f"loading {args.datasets} datasets ...", flush=True)
            seed_catalog(url.render_as_string(hide_password=False), args.datasets)
    admin.dispose()
    from headwater import migrations

    migrations.upgrade(url.render_as_string(hide_password=False))
    engine = create_db_engine(url.render_as_string(hide_password=False))
    with engine.connect() as connection:
        max_id = int(connection.scalar(text("SELECT max(id) FROM datasets")) or 1)
    engine.dispose()
    print(f"load before: {os.getloadavg()}", flush=True)
    rates = [float(r) for r in args.rates.split(",")]
    rows = []
    for mode, factory, count in (("before", "before_app", "exact"), ("after", "after_app", None)):
        port = free_port()
        server = start_server(url.render_as_string(hide_password=False), factory, port)
        try:
            for rate in rates:
                load = os.getloadavg()[0]
                figures = asyncio.run(measure(port, count, rate, args.readers, args.duration, max_id))
                rows.append((mode, rate, figures, load))
                print(
                    f"{mode:6} {rate:4.0f} PATCH/s: {figures['reads']:6d} reads ({figures['rps']:.0f}/s), "
                    f"{figures['writes']} writes, p50 {figures['p50']:.1f} ms, p99 {figures['p99']:.1f} ms "
                    f"(load {load:.1f})",
                    flush=True,
                )
        finally:
            stop_server(server)
    print("\n| mode | PATCH/s | reads/s | p50 ms | p99 ms | load (1 min) |\n|---|---|---|---|---|---|")
    for mode, rate, figures, load in rows:
        print(
            f"| {mode} | {rate:.0f} | {figures['rps']:.0f} | {figures['p50']:.1f} | {figures['p99']:.1f} | {load:.1f} |"
        )


if __name__ == "__main__":
    main()
