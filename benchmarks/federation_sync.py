"""Benchmark of the Iceberg federation sync into PostgreSQL against pyiceberg's own floor (issue 3).

What it does, for each size in ``--tables`` (each size in its own process, so peak memory is its own):

1. builds (or, with ``--reuse``, reuses) an Iceberg SQL catalog (SQLite file + ``file://`` warehouse) of N
   tables x ``--columns`` columns in 10 namespaces, through pyiceberg's ``create_table`` in a loop (no data);
2. the baseline, the source's own floor: a fresh pyiceberg ``SqlCatalog`` lists every namespace and table and
   loads every table (``load_table`` reads each table's metadata file);
3. into a fresh PostgreSQL database migrated with ``headwater.migrations.upgrade``: registers the catalog as an
   ``iceberg`` source and times a full sync (``run_sync``; every table is new), then a no-change re-sync
   (incremental: the listing's metadata locations match, nothing is loaded), then a full-mode re-sync (every
   table loaded again and compared, as a catalog without version tokens needs; ratio to the baseline);
4. samples the process's RSS every 10 ms in a thread and reports, per phase, the peak RSS growth over the
   RSS at the start of that phase (and the process's peak RSS);
5. prints the figures, the ratios and PASS/FAIL against the goals (full sync <= 1.5x baseline; re-sync <=
   0.5x full sync; peak memory flat in the number of tables).

Run from the repository root::

    .venv/bin/python benchmarks/federation_sync.py [--tables 2000 10000] [--columns 30] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _postgres import drop_database, fresh_database

NAMESPACES = 10
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """The process's resident set size, from /proc."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


class RssSampler:
    """Samples RSS in a background thread; ``phase()`` gives a block's peak growth over its starting RSS."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes())

    @contextmanager
    def phase(self, result: dict[str, float]) -> Iterator[None]:
        """Time the block and record its peak RSS growth (MiB) in ``result``."""
        start_rss = rss_bytes()
        self.peak = start_rss
        started = time.perf_counter()
        yield
        result["seconds"] = time.perf_counter() - started
        self.peak = max(self.peak, rss_bytes())
        result["peak_growth_mib"] = (self.peak - start_rss) / 2**20
        result["peak_rss_mib"] = self.peak / 2**20

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join()


# ------------------------------------------------------------------------------------------ catalog


def open_catalog(root: Path) -> Any:
    """The benchmark's pyiceberg SQL catalog under ``root``."""
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog("bench", uri=f"sqlite:///{root / 'catalog.db'}", warehouse=(root / "warehouse").as_uri())


def build_catalog(root: Path, tables: int, columns: int) -> float:
    """Create ``tables`` empty tables of ``columns`` columns (every fifth a long, the rest strings); seconds."""
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField, StringType

    root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    catalog = open_catalog(root)
    schema = Schema(
        *(
            NestedField(i + 1, f"col_{i:02d}", LongType() if i % 5 == 0 else StringType(), doc=f"column {i}")
            for i in range(columns)
        )
    )
    for n in range(NAMESPACES):
        catalog.create_namespace(f"ns{n:02d}", {"owner": f"team-{n}"})
    for i in range(tables):
        catalog.create_table(f"ns{i % NAMESPACES:02d}.table_{i:06d}", schema)
        if (i + 1) % 1000 == 0:
            print(f"  built {i + 1:,} / {tables:,} tables ({time.perf_counter() - started:.0f} s)", flush=True)
    catalog.engine.dispose()
    return time.perf_counter() - started


def baseline(root: Path) -> int:
    """pyiceberg alone: list every namespace and table, load every table; how many were loaded."""
    catalog = open_catalog(root)
    loaded = 0
    for namespace in catalog.list_namespaces():
        for identifier in catalog.list_tables(namespace):
            table = catalog.load_table(identifier)
            loaded += len(table.schema().fields) > 0
    catalog.engine.dispose()
    return loaded


# ---------------------------------------------------------------------------------------- database


def run_size(tables: int, columns: int, workdir: Path, reuse: bool) -> dict[str, Any]:
    """Every phase for one catalog size, in this process."""
    from headwater.catalog.models import SourceKind
    from headwater.catalog.schemas import SourceCreate
    from headwater.catalog.sources import create_source
    from headwater.catalog.sync import run_sync
    from headwater.catalog.sync_models import SyncMode
    from headwater.db import create_db_engine, make_sessionmaker, session_scope

    root = workdir / f"iceberg_{tables}x{columns}"
    result: dict[str, Any] = {"tables": tables, "columns": columns}
    if reuse and (root / "catalog.db").is_file():
        result["build_seconds"] = None
        print(f"reusing the catalog in {root}", flush=True)
    else:
        if root.exists():
            import shutil

            shutil.rmtree(root)
        print(f"building {tables:,} tables x {columns} columns in {root}", flush=True)
        result["build_seconds"] = build_catalog(root, tables, columns)

    sampler = RssSampler()
    phases: dict[str, dict[str, float]] = {"baseline": {}, "full": {}, "resync": {}, "full_resync": {}}
    with sampler.phase(phases["baseline"]):
        loaded = baseline(root)
    assert loaded == tables, (loaded, tables)

    url = fresh_database(f"headwater_bench_federation_{tables}")
    engine = create_db_engine(url)
    factory = make_sessionmaker(engine)
    config = {"type": "sql", "uri": f"sqlite:///{root / 'catalog.db'}", "catalog_name": "bench", "page_size": 500}
    with session_scope(factory) as session:
        create_source(
            session,
            data=SourceCreate(name="bench", kind=SourceKind.ICEBERG, namespace="iceberg://bench", config=config),
        )

    def progress(run: Any) -> None:
        if run.listed % 2000 == 0 or run.finished_at is not None:
            print(f"  {run.listed:,} listed, {run.added:,} added, {run.unchanged:,} unchanged", flush=True)

    with sampler.phase(phases["full"]):
        full = run_sync(factory, source_name="bench", mode=SyncMode.INCREMENTAL, progress=progress)
    with sampler.phase(phases["resync"]):
        again = run_sync(factory, source_name="bench", mode=SyncMode.INCREMENTAL, progress=progress)
    with sampler.phase(phases["full_resync"]):  # loads every table again and compares (what REST catalogs need)
        reread = run_sync(factory, source_name="bench", mode=SyncMode.FULL, progress=progress)
    sampler.stop()
    assert (full.status, full.added, full.failed) == ("succeeded", tables, 0), (full.status, full.errors[:3])
    assert (again.status, again.unchanged, again.added, again.changed) == ("succeeded", tables, 0, 0)
    assert (reread.status, reread.unchanged, reread.changed) == ("succeeded", tables, 0)
    engine.dispose()
    drop_database(url)
    result.update(phases=phases, peak_rss_mib=sampler.peak / 2**20)
    return result


# ------------------------------------------------------------------------------------------ report


def report(results: list[dict[str, Any]]) -> None:
    """Print the table and the verdicts."""
    print()
    print(
        "| tables x columns | build | baseline | full sync | ratio | re-sync | ratio | full re-sync | ratio "
        "| peak RSS growth b/f/r |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        p = r["phases"]
        build = f"{r['build_seconds']:.0f} s" if r["build_seconds"] is not None else "reused"
        base, full, resync = p["baseline"]["seconds"], p["full"]["seconds"], p["resync"]["seconds"]
        reread = p["full_resync"]["seconds"]
        growth = " / ".join(f"{p[k]['peak_growth_mib']:.0f}" for k in ("baseline", "full", "resync"))
        print(
            f"| {r['tables']:,} x {r['columns']} | {build} | {base:.1f} s | {full:.1f} s | {full / base:.2f}x "
            f"| {resync:.1f} s | {resync / full:.2f}x | {reread:.1f} s | {reread / base:.2f}x | {growth} MiB |"
        )
    print()
    for r in results:
        p = r["phases"]
        full_ok = p["full"]["seconds"] <= 1.5 * p["baseline"]["seconds"]
        resync_ok = p["resync"]["seconds"] <= 0.5 * p["full"]["seconds"]
        print(
            f"{r['tables']:,} tables: full sync <= 1.5x baseline: {'PASS' if full_ok else 'FAIL'}; "
            f"re-sync <= 0.5x full: {'PASS' if resync_ok else 'FAIL'}"
        )
    if len(results) > 1:
        small, large = results[0], results[-1]
        grow_small = small["phases"]["full"]["peak_growth_mib"]
        grow_large = large["phases"]["full"]["peak_growth_mib"]
        flat = grow_large <= max(1.5 * grow_small, grow_small + 32)
        print(
            f"peak memory of the full sync: {grow_small:.0f} MiB at {small['tables']:,} tables, "
            f"{grow_large:.0f} MiB at {large['tables']:,}: {'PASS (flat)' if flat else 'FAIL (grows)'}"
        )


def main() -> None:
    """Parse arguments; run each size in a child process; print the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", type=int, nargs="+", default=[500, 2000], help="catalog sizes to run")
    parser.add_argument("--columns", type=int, default=30)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "headwater-bench-federation")
    parser.add_argument("--reuse", action="store_true", help="reuse catalogs built by an earlier run")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child: run one size, print JSON
    args = parser.parse_args()
    if args.one is not None:
        result = run_size(args.one, args.columns, args.workdir, args.reuse)
        print("RESULT " + json.dumps(result), flush=True)
        return
    results = []
    for tables in args.tables:
        command = [sys.executable, __file__, "--one", str(tables), "--columns", str(args.columns)]
        command += ["--workdir", str(args.workdir)] + (["--reuse"] if args.reuse else [])
        child = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
        lines = child.stdout.splitlines()
        print("\n".join(line for line in lines if not line.startswith("RESULT ")), flush=True)
        if child.returncode != 0:
            sys.exit(f"the run of {tables} tables failed (exit {child.returncode})")
        results.append(json.loads(next(line for line in lines if line.startswith("RESULT "))[7:]))
    report(results)


if __name__ == "__main__":
    main()
