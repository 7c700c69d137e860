"""The catalog read API as users load it (issue 18): 100,000 datasets, random ids and random pages, cold then warm,
with 0, 1 and 10 writes per second running, through one and through several server processes, beside the
bare-Starlette floor measured in the same run.

What one run does:

1. a PostgreSQL database holding ``--datasets`` datasets (default 100,000): ``--base`` of them (default 2,000, five
   with 200 fields) registered through ``service.register_dataset`` as ``catalog_api.py`` does, then copied in SQL
   (fields, schema versions, tags and owners with them) under new names until the count is reached, with
   ``updated_at`` spread over a year; VACUUM ANALYZE. ``--reuse`` keeps a database already loaded.
2. for each process count in ``--processes`` (default ``1,2``), ``headwater serve --workers N`` (background services
   in their own process when N > 1, where the CLI offers it) on 127.0.0.1, and these passes, each from a separate
   load-generator process (``_mixed_load.py``) at ``--concurrency`` connections:

   * ``GET first read``: ids in random order, each read once, none read before (no stored answer, no cache);
   * ``GET cold``: a restarted server reading the same ids again: the in-process cache is empty, the stored
     answers are there: the cold read a new or restarted process, or a random id, costs;
   * ``GET warm``: the same ids once more (every answer cached in the process that read it);
   * ``GET warm + N writes/s`` for N in 1 and 10: the writer edits random datasets (GET for the ETag, PATCH);
   * ``LIST hot + N writes/s`` for N in 0, 1 and 10: the 24 pages people open most (first pages of each sort,
     the common filters), round robin;
   * ``LIST random pages + N writes/s`` for N in 0 and 10: a cursor at a random dataset under a random sort;

3. the floor: a bare Starlette app (``_baseline_app.py``) answering GET and LIST from memory with bodies Headwater
   gave, under the same load;
4. a table of req/s, p50, p99, the ratio to the floor and the issue's goals: random cold GETs >= 0.1x the floor
   with p99 <= 50 ms; LIST with 10 writes/s p99 <= 100 ms.

Run from the repository root::

    .venv/bin/python benchmarks/catalog_load.py [--reuse] [--duration 10] [--processes 1,2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import Table, make_url, text

from headwater.catalog.models import Dataset, DatasetOwner, DatasetTag, Field, SchemaVersion
from headwater.db import create_db_engine
from headwater.pagination import encode_cursor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from catalog_api import (  # noqa: E402  (a sibling script, not a package)
    Server,
    database_exists,
    free_port,
    load_datasets,
    recreate_database,
    running,
    vacuum_analyze,
)

HERE = Path(__file__).resolve().parent
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/headwater_bench_catalog_load"
GOAL_GET_RATIO = 0.1
GOAL_GET_P99_MS = 50.0
GOAL_LIST_P99_MS = 100.0
PAGE = 50


# ------------------------------------------------------------------------------------ data set


def _copy_statement(table: Table, replace: dict[str, str]) -> str:
    """``INSERT INTO table SELECT ... FROM table CROSS JOIN generate_series`` with ``replace``'s expressions."""
    columns = [c.name for c in table.columns if not (c.primary_key and c.name == "id" and "id" not in replace)]
    chosen = [replace.get(c, f"t.{c}") for c in columns]
    key = "t.id" if table.name == "datasets" else "t.dataset_id"
    return (
        f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT {', '.join(chosen)} "
        f"FROM {table.name} t CROSS JOIN generate_series(1, :copies) AS c(n) WHERE {key} <= :base_max"
    )


def copy_datasets(url: str, *, total: int) -> None:
    """Copy the registered datasets under new names (and new ids) until ``total`` exist."""
    engine = create_db_engine(url)
    try:
        with engine.begin() as connection:
            base_max, base_count = connection.execute(text("SELECT max(id), count(*) FROM datasets")).one()
            copies = -(-total // base_count) - 1
            offset = 10 ** len(str(base_max))
            params = {"copies": copies, "base_max": base_max}
            shift = f"t.dataset_id + c.n * {offset}"
            connection.execute(
                text(
                    _copy_statement(
                        Dataset.__table__, {"id": f"t.id + c.n * {offset}", "name": "t.name || '_c' || c.n"}
                    )
                ),
                params,
            )
            for table in (Field.__table__, SchemaVersion.__table__, DatasetTag.__table__, DatasetOwner.__table__):
                connection.execute(text(_copy_statement(table, {"dataset_id": shift})), params)
            extra = base_count * (copies + 1) - total
            if extra:  # the last copy went past the count: drop its newest datasets (cascades to their rows)
                connection.execute(
                    text("DELETE FROM datasets WHERE id IN (SELECT id FROM datasets ORDER BY id DESC LIMIT :n)"),
                    {"n": extra},
                )
            connection.execute(
                text(
                    "UPDATE datasets SET updated_at = now() - (random() * interval '365 days'), created_at = now() - interval '400 days'"
                )
            )
            connection.execute(
                text("SELECT setval(pg_get_serial_sequence('datasets', 'id'), (SELECT max(id) FROM datasets))")
            )
    finally:
        engine.dispose()


def prepare(url: str, *, total: int, base: int, reuse: bool) -> None:
    """A migrated database holding ``total`` datasets (re-created unless ``reuse`` finds one loaded)."""
    from headwater import migrations

    if reuse and database_exists(url):
        engine = create_db_engine(url)
        with engine.connect() as connection:
            count = connection.execute(text("SELECT count(*) FROM datasets WHERE deleted_at IS NULL")).scalar_one()
        engine.dispose()
        if count == total:
            print(f"reusing {make_url(url).database!r} ({count:,} datasets); its stored answers dropped", flush=True)
            migrations.upgrade(url)
            engine = create_db_engine(url)
            with engine.begin() as connection:  # the first-read pass reads datasets no earlier run answered
                connection.execute(text("TRUNCATE dataset_answers"))
            engine.dispose()
            return
    print(f"creating {make_url(url).database!r}: {base:,} registered, copied to {total:,} ...", flush=True)
    recreate_database(url)
    migrations.upgrade(url)
    load_datasets(url, count=base, batch=250)
    started = time.perf_counter()
    copy_datasets(url, total=total)
    print(f"  copied to {total:,} datasets in {time.perf_counter() - started:.1f} s", flush=True)
    vacuum_analyze(url)


@dataclass
class Workload:
    """The paths every pass reads."""

    get_ids: list[int]
    hot_lists: list[str]
    random_lists: list[str]
    write_ids: list[int]


def workload(url: str, *, reads: int, seed: int = 5) -> Workload:
    """Random ids, the hot list pages and random deep pages, from the loaded catalog."""
    rng = random.Random(seed)
    engine = create_db_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, name, updated_at FROM datasets WHERE deleted_at IS NULL")).all()
        tags = [t for (t,) in connection.execute(text("SELECT DISTINCT tag FROM dataset_tags ORDER BY tag"))]
        owners = [o for (o,) in connection.execute(text("SELECT DISTINCT owner FROM dataset_owners ORDER BY owner"))]
        sources = [s for (s,) in connection.execute(text("SELECT name FROM sources ORDER BY name"))]
    engine.dispose()
    ids = [row.id for row in rows]
    rng.shuffle(ids)
    hot = [f"/api/v1/datasets?limit={PAGE}&sort={sort}" for sort in ("name", "-name", "-updated_at", "updated_at")]
    hot += [f"/api/v1/datasets?limit={PAGE}&tag={tag}" for tag in tags[:8]]
    hot += [f"/api/v1/datasets?limit={PAGE}&owner={owner}" for owner in owners[:6]]
    hot += [f"/api/v1/datasets?limit={PAGE}&source={source}" for source in sources[:6]]
    hot = hot[:24]
    deep = []
    for _ in range(5_000):
        row = rng.choice(rows)
        sort = rng.choice(("name", "-name", "-updated_at"))
        key = row.name if sort.lstrip("-") == "name" else row.updated_at
        if isinstance(key, dt.datetime):
            key = key.isoformat()
        deep.append(f"/api/v1/datasets?limit={PAGE}&sort={sort}&cursor={encode_cursor(sort, [key, row.id])}")
    return Workload(get_ids=ids[:reads], hot_lists=hot, random_lists=deep, write_ids=ids[-5_000:])


# ------------------------------------------------------------------------------------- running


def headwater_server(url: str, work_dir: Path, workers: int) -> Server:
    """``headwater serve`` with ``workers`` processes (the CLI's own supervisor) on a free port."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("HEADWATER_")}
    env.update(
        HEADWATER_DATABASE_URL=url,
        HEADWATER_DATA_DIR=str(work_dir / "data"),
        HEADWATER_LOG_LEVEL="warning",
        HEADWATER_RATE_LIMIT_PER_SECOND="0",
        PYTHONPATH=str(HERE.parent),
    )
    command = [sys.executable, "-m", "headwater.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    if workers > 1:
        command += ["--workers", str(workers)]
    return Server(f"headwater-{workers}p", command, env, port, work_dir)


def floor_server(work_dir: Path, responses: Path) -> Server:
    """The bare Starlette app answering from memory."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("HEADWATER_")}
    env.update(HEADWATER_BENCH_RESPONSES=str(responses), PYTHONPATH=str(HERE))
    command = [sys.executable, "-m", "uvicorn", "_baseline_app:create_app", "--factory", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--no-access-log", "--log-level", "warning"]
    return Server("floor", command, env, port, work_dir)


def load(
    base_url: str,
    paths: list[str],
    work_dir: Path,
    args: argparse.Namespace,
    *,
    writes: float,
    ids: list[int],
    longer: float = 1.0,
) -> dict:
    """One pass from a separate process."""
    paths_file = work_dir / "paths.json"
    paths_file.write_text(json.dumps(paths))
    ids_file = work_dir / "ids.json"
    ids_file.write_text(json.dumps(ids))
    command = [sys.executable, str(HERE / "_mixed_load.py"), base_url, str(paths_file)]
    command += ["--concurrency", str(args.concurrency), "--duration", str(args.duration * longer)]
    command += ["--writes-per-second", str(writes), "--write-ids-file", str(ids_file)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.duration * longer + 120, check=True)
    figures = json.loads(done.stdout)
    figures["load"] = os.getloadavg()[0]
    return figures


def capture(base_url: str, get_id: int, list_path: str, path: Path) -> None:
    """The bodies the floor answers with: one dataset and one list page as Headwater gave them."""
    one = httpx.get(f"{base_url}/api/v1/datasets/{get_id}", timeout=30)
    page = httpx.get(f"{base_url}{list_path}", timeout=30)
    path.write_text(
        json.dumps(
            {
                "get_one": {"body": one.text, "etag": one.headers.get("etag")},
                "list": {"body": page.text, "etag": page.headers.get("etag")},
            }
        )
    )


def row(label: str, figures: dict, floor: dict | None) -> str:
    ratio = f"{figures['rps'] / floor['rps']:.3f}x" if floor else "-"
    writes = f"{figures['write_rate']:.1f}/s p99 {figures['write_p99_ms']:.0f}" if figures["writes"] else "-"
    bad = figures["errors"] + figures["non_2xx"] + figures["write_failures"]
    return (
        f"| {label} | {figures['rps']:,.0f} | {figures['p50_ms']:.1f} | {figures['p99_ms']:.1f} | {ratio} "
        f"| {writes} | {bad} | {figures['load']:.2f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--datasets", type=int, default=100_000)
    parser.add_argument("--base", type=int, default=2_000)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--processes", default="1,2", help="comma-separated server process counts")
    parser.add_argument("--reads", type=int, default=20_000, help="distinct ids the GET passes read")
    args = parser.parse_args()
    url = args.database_url
    prepare(url, total=args.datasets, base=args.base, reuse=args.reuse)
    work = workload(url, reads=args.reads)
    print(
        f"machine: {os.cpu_count()} cores, load {os.getloadavg()}; {args.concurrency} connections, {args.duration:.0f} s passes"
    )
    results: list[tuple[str, str, dict]] = []
    head = "| pass | req/s | p50 ms | p99 ms | ÷ floor | writes | errors | load |\n|---|---|---|---|---|---|---|---|"
    with tempfile.TemporaryDirectory(prefix="hw-catalog-load-") as tmp:
        work_dir = Path(tmp)
        floors: dict[str, dict] = {}
        counts = [int(p) for p in args.processes.split(",")]
        for index, processes in enumerate(counts):
            label = f"{processes}p"
            server = headwater_server(url, work_dir, processes)
            with running(server):
                if not floors:
                    capture(server.base_url, work.get_ids[-1], work.hot_lists[0], work_dir / "responses.json")
                # Each process count reads ids no earlier pass read; the first read runs longer, since the cold
                # pass reads what it stored.
                share = len(work.get_ids) // len(counts)
                first = [f"/api/v1/datasets/{i}" for i in work.get_ids[index * share : (index + 1) * share]]
                figures = load(server.base_url, first, work_dir, args, writes=0, ids=work.write_ids, longer=3)
                results.append(("GET first read", label, figures))
                read = first[: figures["requests"]]
            with running(server):  # a restarted server: stored answers, empty process caches
                out = load(server.base_url, read, work_dir, args, writes=0, ids=work.write_ids)
                results.append(("GET cold", label, out))
                out = load(server.base_url, read * 100, work_dir, args, writes=0, ids=work.write_ids)
                results.append(("GET warm", label, out))
                for writes in (1, 10):
                    out = load(server.base_url, read * 100, work_dir, args, writes=writes, ids=work.write_ids)
                    results.append((f"GET warm + {writes} writes/s", label, out))
                for writes in (0, 1, 10):
                    hot = work.hot_lists * 2_000
                    out = load(server.base_url, hot, work_dir, args, writes=writes, ids=work.write_ids)
                    results.append((f"LIST hot + {writes} writes/s", label, out))
                for writes in (0, 10):
                    out = load(server.base_url, work.random_lists, work_dir, args, writes=writes, ids=work.write_ids)
                    results.append((f"LIST random pages + {writes} writes/s", label, out))
            if not floors:
                floor = floor_server(work_dir, work_dir / "responses.json")
                with running(floor):
                    floors["GET"] = load(floor.base_url, first * 10, work_dir, args, writes=0, ids=[])
                    floors["LIST"] = load(floor.base_url, work.hot_lists * 2_000, work_dir, args, writes=0, ids=[])
    print(head)
    print(row("floor GET (bare Starlette)", floors["GET"], None))
    print(row("floor LIST (bare Starlette)", floors["LIST"], None))
    verdicts = []
    for name, label, figures in results:
        floor = floors["GET" if name.startswith("GET") else "LIST"]
        print(row(f"{label} {name}", figures, floor))
        if name == "GET cold":
            ok = figures["rps"] >= GOAL_GET_RATIO * floor["rps"] and figures["p99_ms"] <= GOAL_GET_P99_MS
            verdicts.append(
                f"{label} random cold GET >= {GOAL_GET_RATIO}x floor, p99 <= {GOAL_GET_P99_MS:.0f} ms: {'PASS' if ok else 'FAIL'}"
            )
        if name.startswith("LIST") and name.endswith("+ 10 writes/s"):
            ok = figures["p99_ms"] <= GOAL_LIST_P99_MS
            verdicts.append(f"{label} {name} p99 <= {GOAL_LIST_P99_MS:.0f} ms: {'PASS' if ok else 'FAIL'}")
    print("\n".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
