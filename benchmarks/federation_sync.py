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

With ``--catalogs`` (default ``rest hive``; SQL always runs) the same tables are also reached through the other catalog
types, each as its own source in the same database, and for each a full sync and a no-change re-sync are
timed against the *metadata-file floor* measured in the same run (listing the tables' metadata locations in
one query, then reading and JSON-parsing every metadata file) and against the *source's own floor* for a
no-change re-sync (REST: one bare ``loadTable`` per table with its ETag; Hive: every table object read with
``get_table_objects_by_name``), the least a client of that server must do:

- ``rest``: the Iceberg REST stand-in of the tests (``tests/catalog/connectors/iceberg_rest_standin.py``)
  in a child process over the SQL catalog, with ETags (``rest``) and without (``rest-noetag``);
- ``hive``: a real Hive Metastore (``tests/catalog/connectors/hive_test_server.py``: Java and pyspark's
  jars) on an empty Derby database, each table registered in it with pyiceberg's ``register_table``;
- ``hive-connector``: the same metastore read by the ``hive`` connector (the tables as Hive tables).

Goal: a no-change re-sync <= 0.2x a full sync for every catalog type.

Run from the repository root::

    .venv/bin/python benchmarks/federation_sync.py [--tables 2000 10000] [--columns 30] [--reuse]
        [--catalogs sql rest rest-noetag hive]
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
STANDINS = Path(__file__).resolve().parent.parent / "tests" / "catalog" / "connectors"
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


def metadata_floor(root: Path) -> int:
    """The least a sync reads: every table's metadata location (one query), then each metadata file read and
    parsed as JSON; how many were read."""
    import sqlite3
    from urllib.parse import urlsplit

    import orjson

    with sqlite3.connect(root / "catalog.db") as connection:
        locations = [row[0] for row in connection.execute("SELECT metadata_location FROM iceberg_tables")]
    read = 0
    for location in locations:
        with open(urlsplit(location).path, "rb") as handle:
            read += bool(orjson.loads(handle.read())["schemas"])
    return read


# ------------------------------------------------------------------------------------ other catalogs


def _locations(root: Path) -> list[tuple[str, str, str]]:
    import sqlite3

    with sqlite3.connect(root / "catalog.db") as connection:
        return list(connection.execute("SELECT table_namespace, table_name, metadata_location FROM iceberg_tables"))


def rest_floor(root: Path, url: str) -> int:
    """The REST server's own floor for a no-change re-sync: one bare ``loadTable`` per table, in a loop, with
    the ETag a client would hold (304s), or reading just the ``metadata-location`` of each answer."""
    import hashlib

    import orjson
    import requests

    unchanged = 0
    with requests.Session() as session:
        for namespace, name, location in _locations(root):
            etag = '"' + hashlib.sha256(location.encode()).hexdigest() + '"'
            response = session.get(f"{url}/v1/namespaces/{namespace}/tables/{name}", headers={"If-None-Match": etag})
            if response.status_code == 304 or orjson.loads(response.content)["metadata-location"] == location:
                unchanged += 1
    return unchanged


def hive_floor(uri: str) -> int:
    """The metastore's own floor for a no-change re-sync: every table object read with
    ``get_table_objects_by_name``, one call per database (the Thrift client pyiceberg ships)."""
    from hive_metastore import ThriftHiveMetastore
    from thrift.protocol import TBinaryProtocol
    from thrift.transport import TSocket, TTransport

    host, port = uri.removeprefix("thrift://").split(":")
    transport = TTransport.TBufferedTransport(TSocket.TSocket(host, int(port)))
    transport.open()
    try:
        client = ThriftHiveMetastore.Client(TBinaryProtocol.TBinaryProtocol(transport))
        return sum(
            len(client.get_table_objects_by_name(database, client.get_all_tables(database)))
            for database in client.get_all_databases()
        )
    finally:
        transport.close()


def serve_rest(root: Path, etags: bool) -> None:
    """Child process: serve the REST stand-in over the SQL catalog, print its URL, stop when stdin closes."""
    sys.path.insert(0, str(STANDINS))
    from iceberg_rest_standin import IcebergRestStandIn

    standin = IcebergRestStandIn(open_catalog(root), etags=etags).start()
    print(standin.url, flush=True)
    sys.stdin.read()
    standin.stop()


@contextmanager
def rest_server(root: Path, etags: bool) -> Iterator[str]:
    """The REST stand-in in its own process (a real server does not share the sync's GIL); its URL."""
    command = [sys.executable, __file__, "--serve-rest", str(root)] + ([] if etags else ["--no-etags"])
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        yield child.stdout.readline().strip()
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)


@contextmanager
def hive_metastore(root: Path, workdir: Path) -> Iterator[str]:
    """A Hive Metastore holding every table of the SQL catalog (registered once, kept with ``--reuse``); its
    Thrift URI."""
    sys.path[:0] = [str(STANDINS), str(STANDINS.parent.parent)]  # hive_test_server imports tests/spark_submit.py
    from hive_test_server import Metastore, compile_launcher

    home = root / "hive"
    classes = workdir / "hive-classes"
    if not (classes / "LocalMetastore.class").is_file():
        compile_launcher(classes)
    filled = (home / "REGISTERED").is_file()
    if not filled and home.exists():
        import shutil

        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    server = Metastore(home, derby=home / "derby", classes=classes, warehouse=(root / "warehouse").as_uri()).start()
    try:
        if not filled:
            from pyiceberg.catalog.hive import HiveCatalog

            started = time.perf_counter()
            hive = HiveCatalog("bench", uri=server.uri, warehouse=(root / "warehouse").as_uri())
            sql = open_catalog(root)
            for namespace in sql.list_namespaces():
                hive.create_namespace(namespace)
                for identifier in sql.list_tables(namespace):
                    hive.register_table(identifier, sql.load_table(identifier).metadata_location)
            sql.engine.dispose()
            (home / "REGISTERED").touch()
            print(f"  registered the tables in the metastore ({time.perf_counter() - started:.0f} s)", flush=True)
        yield server.uri
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------- database


def run_size(tables: int, columns: int, workdir: Path, reuse: bool, wanted: list[str]) -> dict[str, Any]:
    """Every phase for one catalog size, in this process."""
    # The sources name a local SQLite catalog and warehouse, and the REST and Hive servers listen on loopback.
    os.environ.setdefault("HEADWATER_EGRESS_FILE_DIRS", str(workdir.resolve()))
    os.environ.setdefault("HEADWATER_EGRESS_ALLOW", "127.0.0.1")
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
    phases: dict[str, dict[str, float]] = {"baseline": {}, "floor": {}, "full": {}, "resync": {}, "full_resync": {}}
    with sampler.phase(phases["floor"]):
        assert metadata_floor(root) == tables
    with sampler.phase(phases["baseline"]):
        loaded = baseline(root)
    assert loaded == tables, (loaded, tables)

    url = fresh_database(f"headwater_bench_federation_{tables}")
    engine = create_db_engine(url)
    factory = make_sessionmaker(engine)

    def add(name: str, config: dict[str, Any], kind: SourceKind = SourceKind.ICEBERG) -> None:
        with session_scope(factory) as session:
            create_source(
                session,
                data=SourceCreate(
                    name=name, kind=kind, namespace=f"{kind.value}://{name}", config={**config, "page_size": 500}
                ),
            )

    def progress(run: Any) -> None:
        if run.listed % 2000 == 0 or run.finished_at is not None:
            print(f"  {run.listed:,} listed, {run.added:,} added, {run.unchanged:,} unchanged", flush=True)

    add("bench", {"type": "sql", "uri": f"sqlite:///{root / 'catalog.db'}", "catalog_name": "bench"})
    with sampler.phase(phases["full"]):
        full = run_sync(factory, source_name="bench", mode=SyncMode.INCREMENTAL, progress=progress)
    with sampler.phase(phases["resync"]):
        again = run_sync(factory, source_name="bench", mode=SyncMode.INCREMENTAL, progress=progress)
    with sampler.phase(phases["full_resync"]):  # loads every table again and compares
        reread = run_sync(factory, source_name="bench", mode=SyncMode.FULL, progress=progress)
    assert (full.status, full.added, full.failed) == ("succeeded", tables, 0), (full.status, full.errors[:3])
    assert (again.status, again.unchanged, again.added, again.changed) == ("succeeded", tables, 0, 0)
    assert (reread.status, reread.unchanged, reread.changed) == ("succeeded", tables, 0)
    catalogs: dict[str, dict[str, dict[str, float]]] = {"sql": {"full": phases["full"], "resync": phases["resync"]}}

    def other(name: str, config: dict[str, Any], floor: Any, kind: SourceKind = SourceKind.ICEBERG) -> None:
        add(name, config, kind)
        timed: dict[str, dict[str, float]] = {"source_floor": {}, "full": {}, "resync": {}}
        print(f"  {name}: full sync, then a no-change re-sync", flush=True)
        with sampler.phase(timed["full"]):
            first = run_sync(factory, source_name=name, mode=SyncMode.INCREMENTAL)
        with sampler.phase(timed["resync"]):
            second = run_sync(factory, source_name=name, mode=SyncMode.INCREMENTAL)
        assert (first.status, first.added) == ("succeeded", tables), (name, first.status, first.errors[:3])
        assert (second.status, second.unchanged) == ("succeeded", tables), (name, second.status, second.errors[:3])
        with sampler.phase(timed["source_floor"]):  # after the syncs: the server is as warm as for the re-sync
            assert floor() == tables
        catalogs[name] = timed

    for kind in wanted:
        if kind in ("rest", "rest-noetag"):
            with rest_server(root, etags=kind == "rest") as rest_url:
                config = {"type": "rest", "uri": rest_url, "catalog_name": "bench"}
                other(kind, config, lambda: rest_floor(root, rest_url))
        elif kind == "hive":
            with hive_metastore(root, workdir) as thrift_uri:
                warehouse = (root / "warehouse").as_uri()
                config = {"type": "hive", "uri": thrift_uri, "catalog_name": "bench", "warehouse": warehouse}
                other(kind, config, lambda: hive_floor(thrift_uri))
        elif kind == "hive-connector":  # the same metastore read as Hive tables by the hive connector
            with hive_metastore(root, workdir) as thrift_uri:
                port = int(thrift_uri.rsplit(":", 1)[1])
                config = {"host": "127.0.0.1", "port": port, "databases": [f"ns{n:02d}" for n in range(NAMESPACES)]}
                other(kind, config, lambda: hive_floor(thrift_uri), SourceKind.HIVE)
    sampler.stop()
    engine.dispose()
    drop_database(url)
    result.update(phases=phases, catalogs=catalogs, peak_rss_mib=sampler.peak / 2**20)
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
    print()
    print(
        "| tables | catalog | metadata-file floor | source's own floor | full sync | full / file floor "
        "| no-change re-sync | re-sync / full | re-sync / file floor | re-sync / source floor | re-sync <= 0.2x full |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        floor = r["phases"]["floor"]["seconds"]
        for name, timed in r["catalogs"].items():
            full, resync = timed["full"]["seconds"], timed["resync"]["seconds"]
            own = timed.get("source_floor", {}).get("seconds")
            own_text = f"{own:.2f} s" if own is not None else "-"
            own_ratio = f"{resync / own:.2f}x" if own else "-"
            verdict = "PASS" if resync <= 0.2 * full else "FAIL"
            print(
                f"| {r['tables']:,} | {name} | {floor:.2f} s | {own_text} | {full:.2f} s | {full / floor:.1f}x "
                f"| {resync:.2f} s | {resync / full:.2f}x | {resync / floor:.1f}x | {own_ratio} | {verdict} |"
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
    parser.add_argument(
        "--catalogs",
        nargs="*",
        default=["rest", "hive"],
        choices=["rest", "rest-noetag", "hive", "hive-connector"],
        help="catalog types to sync besides SQL (always run)",
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child: run one size, print JSON
    parser.add_argument("--serve-rest", type=Path, help=argparse.SUPPRESS)  # child: the REST stand-in
    parser.add_argument("--no-etags", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_rest is not None:
        serve_rest(args.serve_rest, etags=not args.no_etags)
        return
    if args.one is not None:
        result = run_size(args.one, args.columns, args.workdir, args.reuse, args.catalogs)
        print("RESULT " + json.dumps(result), flush=True)
        return
    results = []
    for tables in args.tables:
        command = [sys.executable, __file__, "--one", str(tables), "--columns", str(args.columns)]
        command += ["--workdir", str(args.workdir)] + (["--reuse"] if args.reuse else [])
        command += ["--catalogs", *args.catalogs]
        child = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
        lines = child.stdout.splitlines()
        print("\n".join(line for line in lines if not line.startswith("RESULT ")), flush=True)
        if child.returncode != 0:
            sys.exit(f"the run of {tables} tables failed (exit {child.returncode})")
        results.append(json.loads(next(line for line in lines if line.startswith("RESULT "))[7:]))
    report(results)


if __name__ == "__main__":
    main()
