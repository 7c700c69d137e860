"""Benchmark of lineage storage on PostgreSQL (issue 18, finding 4): WAL per event, and table sizes under retention.

What it does:

1. ``wal``: ingests ``--events`` COMPLETE events (the stream of ``lineage_ingest.py``) one per transaction into a
   fresh database, and prints the WAL written per event: the server-wide LSN difference, and, read back with
   ``pg_walinspect``, the part of it that touched this database's relations, broken down by relation (indexes and
   TOAST tables named after their table), with full-page images apart. The breakdown is immune to other databases
   on the same server writing meanwhile; the LSN difference is not.
2. ``payload``: stores the same payloads, one per transaction, in four one-column tables (jsonb with pglz TOAST
   compression, jsonb with lz4, bytea holding zlib-compressed JSON as Headwater stores it, and uncompressed text
   for reference), and prints WAL and table bytes per payload of each.
3. ``week``: a compressed-time run. ``--days`` simulated days of ``--events-per-day`` events each, the ingestion
   clock set to the simulated day (event times too), with a retention pass at the end of each simulated day under
   ``--retention-days`` (raw events, runs and the outbox floor alike): prints each table's total size
   (``pg_total_relation_size``) per day, which stops growing once the retention window is full, and the bytes
   per retained event, from which the bound at 100 events/s is stated.

Run from the repository root::

    .venv/bin/python benchmarks/lineage_storage.py wal [--events 3000]
    .venv/bin/python benchmarks/lineage_storage.py payload [--events 3000]
    .venv/bin/python benchmarks/lineage_storage.py week [--days 7 --events-per-day 2000 --retention-days 2]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import os
import sys
import zlib
from collections.abc import Iterator
from typing import Any

import orjson
from _postgres import drop_database, fresh_database
from lineage_ingest import events_of
from sqlalchemy import Engine, text

from headwater.db import create_db_engine, make_sessionmaker
from headwater.lineage.ingest import ingest as ingest_outcome
from headwater.transactions import run_in_transaction

# The WAL records of a range touching this database's relations, summed per relation (by relfilenode) and per
# record kind; records without a block reference (commits) are counted under the transactions that wrote here.
_WAL_BY_RELATION = text(
    """
WITH records AS (
    SELECT xid, record_length, fpi_length,
           (regexp_match(block_ref, 'rel \\d+/(\\d+)/(\\d+)'))[1]::oid AS db,
           (regexp_match(block_ref, 'rel \\d+/(\\d+)/(\\d+)'))[2]::oid AS relfilenode
    FROM pg_get_wal_records_info(CAST(:start AS pg_lsn), CAST(:end AS pg_lsn))
),
ours AS (SELECT DISTINCT xid FROM records WHERE db = :db AND xid <> 0)
SELECT coalesce(CAST(relfilenode AS text), 'no block (commit, ...)') AS rel,
       sum(record_length) AS bytes, sum(fpi_length) AS fpi
FROM records
WHERE db = :db OR (db IS NULL AND xid IN (SELECT xid FROM ours))
GROUP BY 1
"""
)

_RELATION_NAMES = text(
    """
SELECT c.relfilenode::text, coalesce(t.relname || ' (toast)', i_t.relname || ' index ' || c.relname, c.relname)
FROM pg_class c
LEFT JOIN pg_class t ON t.reltoastrelid = c.oid
LEFT JOIN pg_index i ON i.indexrelid = c.oid
LEFT JOIN pg_class i_t ON i_t.oid = i.indrelid
WHERE c.relfilenode <> 0
"""
)


def lsn(engine: Engine) -> str:
    """The server's current WAL insert position."""
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT pg_current_wal_insert_lsn()")).scalar_one())


def wal_between(engine: Engine, start: str, end: str) -> tuple[int, dict[str, tuple[int, int]]]:
    """Server-wide WAL bytes between two positions, and this database's share by relation: (bytes, fpi bytes)."""
    with engine.begin() as conn:
        conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_walinspect"))
        total = int(
            conn.execute(text("SELECT CAST(:e AS pg_lsn) - CAST(:s AS pg_lsn)"), {"s": start, "e": end}).scalar_one()
        )
        db = conn.execute(text("SELECT oid FROM pg_database WHERE datname = current_database()")).scalar_one()
        names = {str(k): str(v) for k, v in conn.execute(_RELATION_NAMES).all()}
        rows = conn.execute(_WAL_BY_RELATION, {"start": start, "end": end, "db": db}).all()
    by_relation: dict[str, tuple[int, int]] = {}
    for rel, size, fpi in rows:
        name = names.get(rel, rel)
        # Indexes and TOAST are charged to their table's line under their own name; sum what maps alike.
        old = by_relation.get(name, (0, 0))
        by_relation[name] = (old[0] + int(size), old[1] + int(fpi))
    return total, by_relation


def ingest_all(engine: Engine, events: list[dict[str, Any]]) -> None:
    """Ingest ``events`` one per transaction, as the POST route commits them."""
    factory = make_sessionmaker(engine)
    for event in events:
        result = run_in_transaction(factory, functools.partial(ingest_outcome, documents=[event]))
        assert result.applied == 1, result.warnings[:3]


@contextlib.contextmanager
def database(name: str) -> Iterator[Engine]:
    """A fresh migrated database, dropped afterwards."""
    url = fresh_database(name)
    engine = create_db_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()
        drop_database(url)


def print_breakdown(events: int, total: int, by_relation: dict[str, tuple[int, int]], top: int = 25) -> None:
    """The WAL per event, server-wide and this database's, by relation."""
    ours = sum(size for size, _ in by_relation.values())
    fpi = sum(f for _, f in by_relation.values())
    print(
        f"WAL per event: {total / events:,.0f} B server-wide, {ours / events:,.0f} B this database's "
        f"(of which full-page images {fpi / events:,.0f} B)"
    )
    print(f"{'relation':64} {'B/event':>9} {'FPI B/event':>12}")
    for name, (size, f) in sorted(by_relation.items(), key=lambda item: -item[1][0])[:top]:
        print(f"{name[:64]:64} {size / events:9,.0f} {f / events:12,.0f}")


def run_wal(args: argparse.Namespace) -> None:
    """Part 1: WAL per single-event ingestion, by relation."""
    events = events_of(args.events + args.warmup, args.seed, stable=args.stable)
    with database("headwater_bench_lineage_storage_wal") as engine:
        ingest_all(engine, events[: args.warmup])  # the datasets and jobs created first
        with engine.connect() as conn:
            conn.execute(text("CHECKPOINT"))
        start = lsn(engine)
        ingest_all(engine, events[args.warmup :])
        end = lsn(engine)
        total, by_relation = wal_between(engine, start, end)
    print_breakdown(args.events, total, by_relation)


_PAYLOAD_TABLES = {
    "jsonb, pglz TOAST (before)": ("jsonb", "pglz"),
    "jsonb, lz4 TOAST": ("jsonb", "lz4"),
    "bytea, zlib-compressed JSON (after)": ("bytea", None),
    "text, uncompressed (reference)": ("text", None),
}


def run_payload(args: argparse.Namespace) -> None:
    """Part 2: WAL and bytes per payload of each way of storing it."""
    events = events_of(args.events, args.seed, stable=args.stable)
    bodies = [orjson.dumps(e) for e in events]
    print(
        f"{len(bodies):,} payloads of {sum(map(len, bodies)) / len(bodies):,.0f} B of JSON on average, "
        f"{sum(len(zlib.compress(b, 6)) for b in bodies) / len(bodies):,.0f} B zlib-compressed"
    )
    print(f"{'stored as':40} {'WAL B/payload':>14} {'table B/payload':>16}")
    with database("headwater_bench_lineage_storage_payload") as engine:
        for number, (label, (kind, compression)) in enumerate(_PAYLOAD_TABLES.items()):
            table = f"payload_{number}"
            with engine.begin() as conn:
                conn.execute(text(f"CREATE TABLE {table} (id bigserial PRIMARY KEY, body {kind})"))
                if compression:
                    conn.execute(text(f"ALTER TABLE {table} ALTER COLUMN body SET COMPRESSION {compression}"))
                if kind == "text":
                    conn.execute(text(f"ALTER TABLE {table} ALTER COLUMN body SET STORAGE EXTERNAL"))
                conn.execute(text("CHECKPOINT"))
            start = lsn(engine)
            for body in bodies:
                value: Any = zlib.compress(body, 6) if kind == "bytea" else body.decode()
                with engine.begin() as conn:
                    cast = "CAST(:b AS jsonb)" if kind == "jsonb" else ":b"
                    conn.execute(text(f"INSERT INTO {table} (body) VALUES ({cast})"), {"b": value})
            _, by_relation = wal_between(engine, start, lsn(engine))
            with engine.connect() as conn:
                size = conn.execute(text(f"SELECT pg_total_relation_size('{table}')")).scalar_one()
            wal = sum(s for s, _ in by_relation.values())
            print(f"{label:40} {wal / len(bodies):14,.0f} {size / len(bodies):16,.0f}")


_SIZED = (
    "lineage_events",
    "lineage_runs",
    "change_events",
    "lineage_column_edges",
    "lineage_dataset_edges",
    "lineage_job_datasets",
    "lineage_column_confirmations",
    "fields",
    "datasets",
)


def run_week(args: argparse.Namespace) -> None:
    """Part 3: a compressed-time run: days of events under a retention window, table sizes per day."""
    from headwater.retention import RetentionPolicy, run_retention

    policy = RetentionPolicy(
        events=dt.timedelta(days=args.retention_days),
        runs=dt.timedelta(days=args.retention_days),
        runs_kept_per_job=args.keep_runs,
        outbox_floor=dt.timedelta(days=args.retention_days),
        outbox_ceiling=dt.timedelta(days=args.retention_days * 4),
    )
    per_day = args.events_per_day
    events = events_of(per_day * args.days, args.seed, stable=args.stable)
    start_day = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    print(
        f"{args.days} simulated days of {per_day:,} events, retention {args.retention_days:g} days, "
        f"each job's {args.keep_runs} latest runs kept"
    )
    print(f"{'day':>4} " + " ".join(f"{t[:22]:>22}" for t in _SIZED[:5]) + f" {'events kept':>12}")
    with database("headwater_bench_lineage_storage_week") as engine:
        factory = make_sessionmaker(engine)
        for day in range(args.days):
            batch = events[day * per_day : (day + 1) * per_day]
            for i, event in enumerate(batch):
                moment = start_day + dt.timedelta(days=day, seconds=i * 86_400 / per_day)
                event["eventTime"] = moment.isoformat()
                # The ingestion clock (received_at, created_at) follows the simulated day.
                with _clock(moment):
                    result = run_in_transaction(factory, functools.partial(ingest_outcome, documents=[event]))
                assert result.applied == 1
            end_of_day = start_day + dt.timedelta(days=day + 1)
            run_retention(factory, policy, now=end_of_day)
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                for table in _SIZED:
                    conn.execute(text(f"VACUUM {table}"))
                sizes = [conn.execute(text(f"SELECT pg_total_relation_size('{t}')")).scalar_one() for t in _SIZED]
                kept = conn.execute(text("SELECT count(*) FROM lineage_events")).scalar_one()
            print(f"{day + 1:>4} " + " ".join(f"{s / 1e6:19,.1f} MB" for s in sizes[:5]) + f" {kept:>12,}")
        print()
        print("bytes per retained event (table total / events kept):")
        for table, size in zip(_SIZED, sizes, strict=True):
            print(f"  {table:32} {size / max(kept, 1):10,.0f}")


@contextlib.contextmanager
def _clock(moment: dt.datetime) -> Iterator[None]:
    """Every Headwater module's ``utcnow`` set to ``moment`` (received_at of the log, created_at and updated_at of
    runs, created_at of change events)."""
    from headwater import db

    patched = [
        m
        for name, m in list(sys.modules.items())
        if name.startswith("headwater.") and getattr(m, "utcnow", None) is db.utcnow
    ]
    for module in patched:
        module.utcnow = lambda: moment  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module in patched:
            module.utcnow = db.utcnow  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["wal", "payload", "week"])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=500, help="wal: events ingested before measuring")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--stable", action="store_true", help="Every run of a job states the same column lineage.")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--events-per-day", type=int, default=2000)
    parser.add_argument("--retention-days", type=float, default=2.0)
    parser.add_argument("--keep-runs", type=int, default=3)
    args = parser.parse_args()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} cpu, Python {sys.version.split()[0]}, PostgreSQL local, load {load}")
    {"wal": run_wal, "payload": run_payload, "week": run_week}[args.part](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
