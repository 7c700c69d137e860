"""Benchmark of the catalog's read API on PostgreSQL against a bare-Starlette ceiling (issue 2).

What one run does:

1. creates a fresh PostgreSQL database (dropped and re-created unless ``--reuse``), migrates it, loads
   10,000 datasets through ``headwater.catalog.service.register_dataset`` (250 per transaction; five of
   them have exactly 200 fields) and runs VACUUM ANALYZE;
2. starts three uvicorn servers with the same options, each in its own process group on 127.0.0.1:
   Headwater as configured by default (dataset cache on), a bare Starlette app (``_baseline_app.py``)
   answering from memory with the exact bytes Headwater returned, and Headwater with
   ``HEADWATER_CACHE_ENABLED=false``; before measuring, it waits for Headwater's search indexer (when
   there is one) to work through the load's backlog of change events;
3. measures GET of one 200-field dataset and LIST of 100 datasets on each of the three servers (Headwater
   cached, the baseline, Headwater uncached) at 32 concurrent connections with wrk
   (or, without wrk, the asyncio load generator ``_async_load.py``), always from a separate process and
   after a warm-up, in ``--rounds`` interleaved rounds;
4. prints machine facts and a table of req/s, p50, p99, the ratio to the baseline and PASS/FAIL against
   the issue's goals (req/s >= 0.5x the baseline's and p99 <= 50 ms).

Run from the repository root::

    .venv/bin/python benchmarks/catalog_api.py [--database-url URL] [--duration 10] [--concurrency 32]

Servers are stopped by process id when the run ends, fails or is interrupted. ``--profile DIR`` adds a
py-spy recording of each Headwater scenario (a separate, unmeasured load run: sampling slows the server).
On a shared machine use ``--rounds 3 --quiet-wait 240``: the table shows each figure's median and the
CPU other processes were using just before each measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType

import httpx
from sqlalchemy import make_url, text

import headwater
from headwater import migrations
from headwater.catalog import service, sources
from headwater.catalog.models import SourceKind
from headwater.catalog.schemas import DatasetCreate, FieldIn, Owner, SourceCreate
from headwater.db import create_db_engine, make_sessionmaker, session_scope

HERE = Path(__file__).resolve().parent
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/headwater_bench"
DATASET_COUNT = 10_000
WIDE_FIELD_COUNT = 200
WIDE_DATASET_COUNT = 5
LIST_LIMIT = 100
GOAL_RATIO = 0.5
GOAL_P99_MS = 50.0
# Issue 16: with a bearer token, cached reads keep at least this share of the unauthenticated req/s.
AUTH_GOAL_RATIO = 0.9
READY_TIMEOUT_S = 60.0
NOISY_BUSY = 0.25  # CPU share other processes may use before a measurement without a warning


# ------------------------------------------------------------------------------------ data set


@dataclass(frozen=True)
class ManualSource:
    """A manual source the benchmark registers datasets in, and how its dataset names look."""

    name: str
    namespace: str
    style: str  # "manual", "postgres", "hive" or "kafka"


SOURCES = (
    ManualSource("manual", "manual", "manual"),
    ManualSource("finance-warehouse", "postgres://finance-db.internal:5432", "postgres"),
    ManualSource("lake-curated", "hive://metastore.internal:9083", "hive"),
    ManualSource("event-streams", "kafka://broker-1.internal:9092", "kafka"),
)
DOMAINS = ("sales", "billing", "marketing", "growth", "logistics", "support", "identity", "risk", "inventory", "ads")
ENTITIES = ("orders", "customers", "invoices", "sessions", "shipments", "tickets", "accounts", "events", "payments")
TAGS = ("gold", "silver", "bronze", "certified", "pii", "gdpr", "daily", "hourly", "finance", "core", "deprecated-soon")
OWNERS = (
    "data-platform",
    "finance-analytics",
    "growth-eng",
    "alice@example.com",
    "bob@example.com",
    "carol@example.com",
    "dan@example.com",
    "logistics-data",
)
ROLES = ("technical_owner", "business_owner", "data_steward")
SCALAR_TYPES = (
    "bigint",
    "int",
    "string",
    "varchar(255)",
    "boolean",
    "date",
    "timestamp",
    "timestamptz",
    "double",
    "decimal(18,2)",
    "uuid",
    "array<string>",
    "map<string,string>",
)
WORDS = (
    "the",
    "identifier",
    "of",
    "customer",
    "order",
    "amount",
    "in",
    "cents",
    "when",
    "record",
    "was",
    "created",
    "updated",
    "by",
    "upstream",
    "system",
    "country",
    "code",
    "status",
    "currency",
    "normalised",
    "daily",
    "snapshot",
)


def _sentence(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high))).capitalize() + "."


def _field(rng: random.Random, name: str, field_id: int | None, children: list[FieldIn] | None = None) -> FieldIn:
    return FieldIn(
        name=name,
        type="struct" if children else rng.choice(SCALAR_TYPES),
        nullable=rng.random() < 0.7,
        description=_sentence(rng, 4, 12) if rng.random() < 0.6 else None,
        field_id=field_id,
        tags=["pii"] if rng.random() < 0.08 else [],
        fields=children or [],
    )


def _fields(rng: random.Random, total: int, *, with_ids: bool) -> list[FieldIn]:
    """Exactly ``total`` flattened fields: mostly scalars, some in a struct of 2 to 4 members."""
    out: list[FieldIn] = []
    next_id = 1
    remaining = total
    while remaining:
        if remaining >= 5 and rng.random() < 0.05:
            members = rng.randint(2, 4)
            parent_id = next_id if with_ids else None
            children = [_field(rng, f"member_{k}", next_id + 1 + k if with_ids else None) for k in range(members)]
            out.append(_field(rng, f"col_{len(out):03d}_struct", parent_id, children))
            next_id += members + 1
            remaining -= members + 1
        else:
            out.append(_field(rng, f"col_{len(out):03d}", next_id if with_ids else None))
            next_id += 1
            remaining -= 1
    return out


def wide_dataset_name(index: int) -> str:
    """The name of the ``index``-th 200-field dataset (registered in the ``manual`` source)."""
    return f"analytics_wide_events_{index}"


def dataset_definitions(count: int, *, seed: int = 2) -> Iterator[DatasetCreate]:
    """``count`` realistic registrations; ``WIDE_DATASET_COUNT`` of them, spread out, have 200 fields."""
    rng = random.Random(seed)
    wide_at = {round((k + 0.5) * count / WIDE_DATASET_COUNT): k for k in range(WIDE_DATASET_COUNT)}
    for i in range(count):
        source = SOURCES[i % len(SOURCES)]
        domain, entity = rng.choice(DOMAINS), rng.choice(ENTITIES)
        if i in wide_at:
            source, name = SOURCES[0], wide_dataset_name(wide_at[i])
            fields = _fields(rng, WIDE_FIELD_COUNT, with_ids=True)
        else:
            name = {
                "manual": f"{domain}_{entity}_{i:05d}",
                "postgres": f"{domain}.public.{entity}_{i:05d}",
                "hive": f"{domain}.{entity}_{i:05d}",
                "kafka": f"{domain}.{entity}.v1_{i:05d}",
            }[source.style]
            fields = _fields(rng, rng.randint(10, 30), with_ids=source.style in ("hive", "kafka"))
        hive = source.style == "hive"
        yield DatasetCreate(
            source=source.name,
            name=name,
            kind="topic" if source.style == "kafka" else "table",
            format="parquet" if hive else None,
            location=f"s3://lake/curated/{domain}/{entity}_{i:05d}" if hive else None,
            partitioning=[{"column": "event_date", "transform": "day"}] if hive else [],
            source_description=_sentence(rng, 6, 16),
            source_properties={"retention_days": str(rng.choice((7, 30, 90, 365)))},
            fields=fields,
            description=_sentence(rng, 8, 24) if rng.random() < 0.7 else None,
            tags=rng.sample(TAGS, rng.randint(1, 4)),
            owners=[Owner(name=o, role=rng.choice(ROLES)) for o in rng.sample(OWNERS, rng.randint(1, 3))],
            properties={"tier": str(rng.randint(1, 3)), "domain": domain},
        )


# ------------------------------------------------------------------------------------ database


def recreate_database(url: str) -> None:
    """Drop and create the database named in ``url`` (only one whose name says it is for benchmarks)."""
    target = make_url(url)
    name = target.database or ""
    if "bench" not in name:
        raise SystemExit(f"refusing to drop database {name!r}: its name must contain 'bench' (or pass --reuse)")
    admin = create_db_engine(target.set(database="postgres").render_as_string(hide_password=False))
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()


def database_exists(url: str) -> bool:
    """True when the database named in ``url`` exists on its server."""
    target = make_url(url)
    admin = create_db_engine(target.set(database="postgres").render_as_string(hide_password=False))
    try:
        with admin.connect() as connection:
            found = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database}
            ).first()
            return found is not None
    finally:
        admin.dispose()


@dataclass
class LoadedData:
    """What the benchmark needs to know about the loaded catalog."""

    dataset_count: int
    wide_ids: list[int]
    load_seconds: float | None  # None when an existing load was reused


def load_datasets(url: str, *, count: int, batch: int) -> float:
    """Register ``count`` datasets through the service, ``batch`` per transaction; returns the seconds taken."""
    engine = create_db_engine(url)
    factory = make_sessionmaker(engine)
    started = time.perf_counter()
    try:
        with session_scope(factory) as session:
            for source in SOURCES[1:]:
                sources.create_source(
                    session, data=SourceCreate(name=source.name, kind=SourceKind.MANUAL, namespace=source.namespace)
                )
        definitions = dataset_definitions(count)
        done = 0
        while done < count:
            with session_scope(factory) as session:
                for data in definitions:
                    service.register_dataset(session, data=data)
                    done += 1
                    if done % batch == 0:
                        break
            elapsed = time.perf_counter() - started
            if done % (batch * 8) == 0 or done == count:
                print(f"  loaded {done:>6,} datasets in {elapsed:6.1f} s ({done / elapsed:,.0f}/s)", flush=True)
    finally:
        engine.dispose()
    return time.perf_counter() - started


def describe_loaded(url: str) -> tuple[int, list[int]]:
    """The number of live datasets and the ids of the 200-field ones."""
    engine = create_db_engine(url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            total = service.list_datasets(session, filters=service.DatasetFilters(), limit=1).total
            wide_ids = []
            for k in range(WIDE_DATASET_COUNT):
                dataset = service.get_dataset_by_name(
                    session, namespace=SOURCES[0].namespace, name=wide_dataset_name(k)
                )
                if dataset.field_count != WIDE_FIELD_COUNT:
                    raise SystemExit(f"dataset {dataset.id} has {dataset.field_count} fields, expected 200")
                wide_ids.append(dataset.id)
    finally:
        engine.dispose()
    return total, wide_ids


def vacuum_analyze(url: str) -> None:
    """Give the planner statistics, as autovacuum would on a live server (it may be off, or not yet run).

    Right after a bulk load PostgreSQL has none, and the list's ORDER BY name LIMIT plan degrades from an
    index scan to a sort of every row; measuring that would measure the load, not the service.
    """
    engine = create_db_engine(url)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM (ANALYZE)"))
    finally:
        engine.dispose()


def prepare_data(url: str, *, reuse: bool, batch: int) -> LoadedData:
    """A migrated database holding the benchmark's 10,000 datasets (re-created unless ``reuse``)."""
    fresh = not (reuse and database_exists(url))
    if fresh:
        print(f"creating database {make_url(url).database!r} ...", flush=True)
        recreate_database(url)
    migrations.upgrade(url)
    seconds: float | None = None
    if fresh:
        print(f"loading {DATASET_COUNT:,} datasets through service.register_dataset, {batch} per transaction ...")
        seconds = load_datasets(url, count=DATASET_COUNT, batch=batch)
    vacuum_analyze(url)
    total, wide_ids = describe_loaded(url)
    if total != DATASET_COUNT:
        raise SystemExit(f"the database holds {total} datasets, expected {DATASET_COUNT}; run without --reuse")
    return LoadedData(dataset_count=total, wide_ids=wide_ids, load_seconds=seconds)


# ------------------------------------------------------------------------------------- servers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ServerOptions:
    """The uvicorn options every server of the run shares."""

    workers: int
    loop: str
    http: str

    def command(self, app: str, port: int, *extra: str) -> list[str]:
        """The uvicorn command line serving ``app`` on ``port``."""
        return [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--factory",
            *extra,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(self.workers),
            "--loop",
            self.loop,
            "--http",
            self.http,
            "--no-access-log",
            "--log-level",
            "warning",
        ]


class Server:
    """One uvicorn process group, started in the background and stopped by its id."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], port: int, work_dir: Path) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.port = port
        self.work_dir = work_dir
        self.log_path = work_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The id of the uvicorn process (the supervisor when there are several workers)."""
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        """Start the server and wait until ``/readyz`` answers 200."""
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.work_dir,  # not the checkout: sys.path[0] of `python -m` is the cwd, PYTHONPATH must win
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopping it reaches every worker
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} was not ready within {READY_TIMEOUT_S:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop the server's process group: SIGTERM, then SIGKILL after 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines the server wrote."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    """Run ``server`` for the duration of the block, stopping it however the block ends."""
    try:
        server.start()
        yield server
    finally:
        server.stop()


# -------------------------------------------------------------------------------- load generator


@dataclass
class LoadResult:
    """The figures of one load run."""

    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors and timeouts
    non_2xx: int


_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_wrk(output: str) -> LoadResult:
    """The figures of ``wrk --latency`` output."""

    def latency(percent: str) -> float:
        found = re.search(rf"^\s*{percent}%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE)
        if found is None:
            raise ValueError(f"no {percent}% latency in wrk output:\n{output}")
        return float(found.group(1)) * _WRK_UNITS[found.group(2)]

    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    requests = re.search(r"^\s*(\d+) requests in", output, re.MULTILINE)
    if rps is None or requests is None:
        raise ValueError(f"cannot read wrk output:\n{output}")
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return LoadResult(
        requests=int(requests.group(1)),
        rps=float(rps.group(1)),
        p50_ms=latency("50"),
        p99_ms=latency("99"),
        errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


@dataclass
class LoadGenerator:
    """How load is generated: ``wrk`` or the asyncio fallback (``_async_load.py``), always in a separate process."""

    kind: str  # "wrk" or "python"
    concurrency: int
    threads: int

    def describe(self) -> str:
        """A line naming the tool, its version and its settings."""
        if self.kind == "wrk":
            version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10).stdout.splitlines()
            name = version[0].split(" Copyright")[0] if version else "wrk"
            return f"{name}, {self.threads} threads, {self.concurrency} connections, keep-alive"
        return (
            f"_async_load.py (asyncio, one process; reaches ~0.7x of wrk's req/s here), "
            f"{self.concurrency} connections, keep-alive"
        )

    def run(self, url: str, duration: float, headers: dict[str, str] | None = None) -> LoadResult:
        """Load ``url`` for ``duration`` seconds from a separate process, sending ``headers`` with each request."""
        limit = duration + 60
        header_args = [part for name, value in (headers or {}).items() for part in ("-H", f"{name}: {value}")]
        if self.kind == "wrk":
            command = [
                "wrk",
                *header_args,
                f"-t{self.threads}",
                f"-c{self.concurrency}",
                f"-d{max(1, round(duration))}s",
                "--timeout",
                "30s",  # a slow answer is a latency to report, not a dropped request
                "--latency",
                url,
            ]
            done = subprocess.run(command, capture_output=True, text=True, timeout=limit, check=True)
            return parse_wrk(done.stdout)
        command = [
            sys.executable,
            str(HERE / "_async_load.py"),
            url,
            "--concurrency",
            str(self.concurrency),
            "--duration",
            str(duration),
            "--timeout",
            "30",
            *(part for name, value in (headers or {}).items() for part in ("--header", f"{name}: {value}")),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=limit, check=True)
        figures = json.loads(done.stdout)
        return LoadResult(
            requests=figures["requests"],
            rps=figures["rps"],
            p50_ms=figures["p50_ms"],
            p99_ms=figures["p99_ms"],
            errors=figures["errors"],
            non_2xx=figures["non_2xx"],
        )


# ------------------------------------------------------------------------------------ profiling


def profile_run(
    server: Server, loadgen: LoadGenerator, url: str, duration: float, out: Path, *, workers: int
) -> list[str]:
    """Record the server with py-spy while loading ``url`` (unmeasured); the summary lines."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        return ["py-spy is not installed (.venv/bin/pip install py-spy); no profile"]
    # --gil: one Python process serves every request, so where the GIL is held is where throughput goes.
    command = [py_spy, "record", "--pid", str(server.pid), "--duration", str(round(duration)), "--rate", "250"]
    command += ["--gil", "--format", "raw", "--output", str(out), "--nonblocking"]
    if workers > 1:
        command.append("--subprocesses")
    recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)  # let py-spy attach before the load starts
        loadgen.run(url, duration)
        _, err = recorder.communicate(timeout=duration + 60)
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.wait()
    if recorder.returncode != 0 or not out.exists():
        return [f"py-spy failed: {err.decode(errors='replace').strip()[-500:]}"]
    return summarise_profile(out)


_FRAME_RE = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
# Frames every sample of a uvicorn process passes through; they say nothing about where time goes.
_ENTRY_FILES: tuple[str, ...] = ("<frozen", "click/", "threading.py", "uvicorn/main.py", "uvicorn/server.py")
_ENTRY_FILES += ("uvicorn/_compat.py", "uvicorn/__main__.py", "asyncio/runners.py", "<string>")


def summarise_profile(path: Path, top: int = 20) -> list[str]:
    """What a py-spy raw profile says: self time by package, then the functions most on the stack."""
    inclusive: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames: list[tuple[str, str]] = []
        for frame in stack.split(";"):
            found = _FRAME_RE.match(frame)
            frames.append((found["func"], found["file"]) if found else (frame, ""))
        for func, file in set(frames):
            if not file.startswith(_ENTRY_FILES):
                inclusive[f"{func} ({file})"] += count
        leaf_file = frames[-1][1]
        by_package[leaf_file.split("/")[0].removesuffix(".py") or "?"] += count
    if not total:
        return ["(no samples)"]
    shares = ", ".join(f"{name} {100 * n / total:.0f}%" for name, n in by_package.most_common(10))
    lines = [f"{total} samples of the thread holding the GIL; self time by package: {shares}"]
    lines.append("functions most on the stack (inclusive share):")
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return lines


# -------------------------------------------------------------------------------------- running


def median_result(results: Sequence[LoadResult]) -> LoadResult:
    """The median of each figure over rounds (request and error counts are summed)."""
    return LoadResult(
        requests=sum(r.requests for r in results),
        rps=statistics.median(r.rps for r in results),
        p50_ms=statistics.median(r.p50_ms for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        errors=sum(r.errors for r in results),
        non_2xx=sum(r.non_2xx for r in results),
    )


@dataclass
class Scenario:
    """One line of the result table: one request against one server, measured once per round."""

    request: str
    server_label: str
    server: Server
    path: str
    body_bytes: int
    baseline: Scenario | None = None
    headers: dict[str, str] = field(default_factory=dict)
    goal_ratio: float = GOAL_RATIO
    results: list[LoadResult] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)  # the machine's CPU use just before each measurement
    profile: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The measured URL."""
        return self.server.base_url + self.path

    @property
    def result(self) -> LoadResult:
        """The figures over every round (medians)."""
        return median_result(self.results)

    @property
    def ratio(self) -> float | None:
        """req/s relative to the baseline's."""
        if self.baseline is None:
            return None
        base = self.baseline.result.rps
        return self.result.rps / base if base else None

    @property
    def verdict(self) -> str:
        """PASS, or FAIL with what missed, against the issue's goals."""
        if self.baseline is None:
            return "(ceiling)"
        missed = []
        if self.ratio is None or self.ratio < self.goal_ratio:
            missed.append(f"req/s < {self.goal_ratio}x")
        if self.result.p99_ms > GOAL_P99_MS:
            missed.append(f"p99 > {GOAL_P99_MS:.0f} ms")
        if self.result.errors or self.result.non_2xx:
            missed.append("errors")
        return "PASS" if not missed else "FAIL (" + ", ".join(missed) + ")"


def measure(
    loadgen: LoadGenerator, url: str, *, warmup: float, duration: float, headers: dict[str, str] | None = None
) -> LoadResult:
    """Warm up on ``url``, then measure it."""
    if warmup > 0:
        loadgen.run(url, warmup, headers)
    return loadgen.run(url, duration, headers)


def mint_token(database_url: str) -> str:
    """A viewer's API token in the benchmark database (issue 16's authenticated mode)."""
    from headwater.auth.actions import Role
    from headwater.auth.models import SubjectKind
    from headwater.auth.roles import bind
    from headwater.auth.tokens import create_token

    engine = create_db_engine(database_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            name = f"bench-{os.getpid()}"
            bind(session, kind=SubjectKind.SERVICE, subject=name, role=Role.VIEWER, by="catalog_api.py")
            _, secret = create_token(session, kind=SubjectKind.SERVICE, name=name, label="catalog_api benchmark")
    finally:
        engine.dispose()
    return secret


def cpu_busy(seconds: float = 1.0, *, settle: float = 1.0) -> float:
    """The share of the machine's CPU busy over ``seconds``, after ``settle`` seconds for our servers to
    finish requests still in flight (NaN where /proc/stat is missing)."""

    def snapshot() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        return values[3] + values[4], sum(values)  # idle + iowait, total

    time.sleep(settle)
    try:
        idle_before, total_before = snapshot()
        time.sleep(seconds)
        idle_after, total_after = snapshot()
    except (OSError, ValueError, IndexError):
        return math.nan
    total = total_after - total_before
    return 1.0 - (idle_after - idle_before) / total if total else math.nan


def fetch(url: str) -> httpx.Response:
    """GET ``url``, insisting on 200."""
    response = httpx.get(url, timeout=30)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} answered {response.status_code}: {response.text[:500]}")
    return response


def wait_for_search_index(base_url: str, timeout: float) -> str:
    """Wait until the server's search indexer, when it has one, has caught up with the change outbox.

    After a bulk load the indexer works through every dataset's change event inside the server process;
    measuring while it does would measure the indexer. Returns what happened, for the report.
    """
    started = time.monotonic()
    reported = started
    while True:
        response = httpx.get(f"{base_url}/api/v1/search/status", timeout=30)
        if response.status_code == 404:
            return "no search indexer in this Headwater"
        response.raise_for_status()
        lag = response.json().get("lag")
        waited = time.monotonic() - started
        if not lag:
            return f"search index caught up with the outbox before measuring (waited {waited:.0f} s)"
        if waited > timeout:
            raise RuntimeError(f"the search indexer is still {lag} change events behind after {timeout:.0f} s")
        if time.monotonic() - reported >= 15:
            print(f"  waiting for the search indexer: {lag:,} change events behind ({waited:.0f} s)", flush=True)
            reported = time.monotonic()
        time.sleep(2)


def check_bodies(get_one: httpx.Response, listing: httpx.Response, wide_id: int) -> None:
    """The captured answers are the ones the benchmark means to measure."""
    one = get_one.json()
    if one["id"] != wide_id or len(one["fields"]) != WIDE_FIELD_COUNT:
        raise RuntimeError(f"GET one returned dataset {one['id']} with {len(one['fields'])} fields")
    page = listing.json()
    if len(page["items"]) != LIST_LIMIT or page["total"] != DATASET_COUNT:
        raise RuntimeError(f"LIST returned {len(page['items'])} items of total {page['total']}")


def headwater_env(database_url: str, *, cache: bool, extra: Sequence[str]) -> dict[str, str]:
    """The server's environment: ours minus any HEADWATER_* setting, plus the benchmark's."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HEADWATER_")}
    env.update(
        HEADWATER_DATABASE_URL=database_url,
        HEADWATER_CACHE_ENABLED="true" if cache else "false",
        HEADWATER_LOG_LEVEL="warning",
        HEADWATER_RATE_LIMIT_PER_SECOND="0",  # one client sending as fast as it can, on purpose
    )
    for item in extra:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def code_version() -> str:
    """Which Headwater was measured: the package's directory, and its git commit when it is a checkout."""
    package = Path(headwater.__file__).resolve().parent
    described = str(package)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "-C", str(package), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if commit.returncode == 0:
            dirty = subprocess.run(
                ["git", "-C", str(package), "status", "--porcelain", "--", "."],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            described += f" (git {commit.stdout.strip()}{', with uncommitted changes' if dirty else ''})"
    return described


def machine_facts(database_url: str, loadgen: LoadGenerator, options: ServerOptions) -> dict[str, str]:
    """The facts a reader needs to compare figures across machines."""
    memory_kib = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            pg_version = str(connection.execute(text("SHOW server_version")).scalar_one())
    finally:
        engine.dispose()
    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}"
        for name in ("fastapi", "starlette", "uvicorn", "pydantic", "sqlalchemy", "psycopg")
    )
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "code": code_version(),
        "cpus": f"{os.cpu_count()} (nproc {len(os.sched_getaffinity(0))})",
        "memory": f"{memory_kib / 1024 / 1024:.1f} GiB",
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "postgresql": pg_version,
        "packages": versions,
        "uvicorn options": f"--workers {options.workers} --loop {options.loop} --http {options.http} "
        "--no-access-log --log-level warning",
        "load generator": loadgen.describe(),
    }


def _fmt_rps(value: float) -> str:
    return f"{value:,.0f}"


def _fmt_ms(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _fmt_busy(values: Sequence[float]) -> str:
    known = [v for v in values if not math.isnan(v)]
    return "/".join(f"{100 * v:.0f}%" for v in known) if known else "?"


def render_table(rows: Sequence[Scenario]) -> str:
    """The figures as a Markdown table."""
    header = (
        "| request | server | body bytes | req/s | p50 ms | p99 ms | errors | req/s vs baseline "
        f"| goal (>= {GOAL_RATIO}x, p99 <= {GOAL_P99_MS:.0f} ms) | CPU busy before |"
    )
    lines = [header, "|" + "---|" * 10]
    for row in rows:
        result = row.result
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "1.00x"
        lines.append(
            f"| {row.request} | {row.server_label} | {row.body_bytes:,} | {_fmt_rps(result.rps)} "
            f"| {_fmt_ms(result.p50_ms)} | {_fmt_ms(result.p99_ms)} | {result.errors + result.non_2xx} "
            f"| {ratio} | {row.verdict} | {_fmt_busy(row.busy)} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="PostgreSQL URL of the benchmark database")
    parser.add_argument("--reuse", action="store_true", help="keep the database if it is already loaded")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each measurement")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before each measurement")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; the table shows medians")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each measurement, wait up to this long for other processes to leave the CPU idle",
    )
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent connections")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of every server")
    parser.add_argument("--loop", default="auto", help="uvicorn --loop of every server")
    parser.add_argument("--http", default="auto", help="uvicorn --http of every server")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto", help="auto: wrk if on PATH")
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk -t")
    parser.add_argument("--batch", type=int, default=250, help="datasets registered per transaction")
    parser.add_argument(
        "--index-timeout", type=float, default=1800, metavar="SECONDS", help="longest wait for the search indexer"
    )
    parser.add_argument(
        "--server-env", action="append", default=[], metavar="KEY=VALUE", help="extra env for the Headwater servers"
    )
    parser.add_argument(
        "--auth",
        action="store_true",
        help="also measure a server with HEADWATER_AUTH=on, every request carrying a viewer's API token (issue 16)",
    )
    parser.add_argument("--profile", type=Path, metavar="DIR", help="also record each Headwater scenario with py-spy")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    return parser.parse_args(argv)


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def wait_for_quiet(limit: float) -> float:
    """Wait up to ``limit`` seconds for the machine to be at most ``NOISY_BUSY`` busy; the last reading."""
    deadline = time.monotonic() + limit
    busy = cpu_busy()
    while busy > NOISY_BUSY and time.monotonic() < deadline:
        busy = cpu_busy(settle=0.0)
    return busy


def main(argv: Sequence[str] | None = None) -> int:
    """Run the whole benchmark; 0 when every goal is met, 1 when one is missed."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    database_url = args.database_url
    kind = args.loadgen if args.loadgen != "auto" else ("wrk" if shutil.which("wrk") else "python")
    if kind == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not on PATH (apt-get install wrk), use --loadgen python")
    loadgen = LoadGenerator(kind=kind, concurrency=args.concurrency, threads=min(args.wrk_threads, args.concurrency))
    options = ServerOptions(workers=args.workers, loop=args.loop, http=args.http)

    data = prepare_data(database_url, reuse=args.reuse, batch=args.batch)
    if data.load_seconds is not None:
        print(f"loaded {data.dataset_count:,} datasets in {data.load_seconds:.1f} s")
    else:
        print(f"reusing {data.dataset_count:,} loaded datasets")
    facts = machine_facts(database_url, loadgen, options)
    if data.load_seconds is not None:
        facts["load"] = (
            f"{DATASET_COUNT:,} datasets via service.register_dataset, {args.batch}/transaction, "
            f"{data.load_seconds:.0f} s ({DATASET_COUNT / data.load_seconds:,.0f}/s), then VACUUM ANALYZE"
        )
    get_path = f"/api/v1/datasets/{data.wide_ids[0]}"
    list_path = f"/api/v1/datasets?limit={LIST_LIMIT}"
    get_label = f"GET one ({WIDE_FIELD_COUNT} fields)"
    list_label = f"LIST {LIST_LIMIT}"
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)

    work_parent = HERE / ".work"
    work_parent.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="catalog_api-", dir=work_parent))
    try:
        with contextlib.ExitStack() as servers:
            print("starting Headwater (cache on, the default) ...", flush=True)
            port = free_port()
            headwater = Server(
                "headwater",
                options.command("headwater.app:create_app", port),
                headwater_env(database_url, cache=True, extra=args.server_env),
                port,
                work,
            )
            servers.enter_context(running(headwater))
            facts["search index"] = wait_for_search_index(headwater.base_url, args.index_timeout)
            one = fetch(headwater.base_url + get_path)
            listing = fetch(headwater.base_url + list_path)
            check_bodies(one, listing, data.wide_ids[0])
            responses = work / "responses.json"
            captured = {
                "get_one": {"body": one.content.decode(), "etag": one.headers.get("etag")},
                "list": {"body": listing.content.decode(), "etag": listing.headers.get("etag")},
            }
            responses.write_text(json.dumps(captured))

            print("starting the baseline (bare Starlette, the same bytes from memory) ...", flush=True)
            baseline_env = {key: value for key, value in os.environ.items() if not key.startswith("HEADWATER_")}
            baseline_env["HEADWATER_BENCH_RESPONSES"] = str(responses)
            port = free_port()
            baseline = Server(
                "baseline",
                options.command("_baseline_app:create_app", port, "--app-dir", str(HERE)),
                baseline_env,
                port,
                work,
            )
            servers.enter_context(running(baseline))
            for path, expected in ((get_path, one.content), (list_path, listing.content)):
                if fetch(baseline.base_url + path).content != expected:
                    raise RuntimeError(f"the baseline's answer to {path} differs from Headwater's")

            print("starting Headwater with HEADWATER_CACHE_ENABLED=false ...", flush=True)
            port = free_port()
            uncached = Server(
                "headwater-uncached",
                options.command("headwater.app:create_app", port),
                headwater_env(database_url, cache=False, extra=args.server_env),
                port,
                work,
            )
            servers.enter_context(running(uncached))
            for path, expected in ((get_path, one.content), (list_path, listing.content)):
                if fetch(uncached.base_url + path).content != expected:
                    raise RuntimeError(f"the uncached answer to {path} differs from the cached one")

            authed: Server | None = None
            bearer: dict[str, str] = {}
            if args.auth:
                print("starting Headwater with HEADWATER_AUTH=on (API tokens) ...", flush=True)
                bearer = {"Authorization": f"Bearer {mint_token(database_url)}"}
                port = free_port()
                authed = Server(
                    "headwater-auth",
                    options.command("headwater.app:create_app", port),
                    headwater_env(database_url, cache=True, extra=[*args.server_env, "HEADWATER_AUTH=on"]),
                    port,
                    work,
                )
                servers.enter_context(running(authed))
                for path, expected in ((get_path, one.content), (list_path, listing.content)):
                    answer = httpx.get(authed.base_url + path, headers=bearer, timeout=30)
                    if answer.content != expected:
                        raise RuntimeError(f"the authenticated answer to {path} differs: {answer.status_code}")
                if httpx.get(authed.base_url + get_path, timeout=30).status_code != 401:
                    raise RuntimeError("the authenticated server answered a request without a token")

            base_get = Scenario(get_label, "baseline: bare Starlette", baseline, get_path, len(one.content))
            base_list = Scenario(list_label, "baseline: bare Starlette", baseline, list_path, len(listing.content))
            rows = [
                base_get,
                Scenario(get_label, "Headwater, cache on (default)", headwater, get_path, len(one.content), base_get),
                Scenario(get_label, "Headwater, uncached", uncached, get_path, len(one.content), base_get),
                base_list,
                Scenario(
                    list_label, "Headwater, cache on (default)", headwater, list_path, len(listing.content), base_list
                ),
                Scenario(list_label, "Headwater, uncached", uncached, list_path, len(listing.content), base_list),
            ]
            if authed is not None:
                open_get, open_list = rows[1], rows[4]
                rows += [
                    Scenario(
                        get_label,
                        "Headwater, cache on, bearer token (vs cache on, open)",
                        authed,
                        get_path,
                        len(one.content),
                        open_get,
                        headers=bearer,
                        goal_ratio=AUTH_GOAL_RATIO,
                    ),
                    Scenario(
                        list_label,
                        "Headwater, cache on, bearer token (vs cache on, open)",
                        authed,
                        list_path,
                        len(listing.content),
                        open_list,
                        headers=bearer,
                        goal_ratio=AUTH_GOAL_RATIO,
                    ),
                ]
            # Rounds interleave every scenario, so a neighbour's burst of load does not land on one line only.
            for round_no in range(1, args.rounds + 1):
                for row in rows:
                    busy = wait_for_quiet(args.quiet_wait)
                    print(
                        f"  round {round_no}/{args.rounds}: {row.request}, {row.server_label} "
                        f"(machine {100 * busy:.0f}% busy before) ...",
                        flush=True,
                    )
                    row.results.append(
                        measure(loadgen, row.url, warmup=args.warmup, duration=args.duration, headers=row.headers)
                    )
                    row.busy.append(busy)
            if args.profile:
                for row in rows:
                    if row.baseline is None:
                        continue
                    print(f"  profiling {row.request}, {row.server_label} with py-spy (not measured) ...", flush=True)
                    name = re.sub(r"[^a-z0-9]+", "_", f"{row.request} {row.server_label}".lower()).strip("_")
                    out = args.profile / f"{name}.txt"
                    row.profile = profile_run(row.server, loadgen, row.url, args.duration, out, workers=args.workers)
    except KeyboardInterrupt:
        print(f"interrupted; servers stopped; their logs are in {work}", file=sys.stderr)
        return 130
    except BaseException:
        print(f"failed; servers stopped; their logs are in {work}", file=sys.stderr)
        raise

    print()
    print("## Machine")
    for key, value in facts.items():
        print(f"- {key}: {value}")
    print(f"- datasets: {data.dataset_count:,}; GET one = {get_path}; LIST = {list_path}")
    rounds = f"median of {args.rounds} interleaved rounds" if args.rounds > 1 else "one round"
    print(
        f"- each figure: {args.duration:g} s at {args.concurrency} connections after {args.warmup:g} s of warm-up, "
        f"{rounds}"
    )
    busy_values = [b for row in rows for b in row.busy if not math.isnan(b)]
    if busy_values:
        print(
            "- CPU busy before: the machine's CPU use in the second before each round's measurement, our "
            f"servers idle, i.e. other processes ({100 * min(busy_values):.0f}-{100 * max(busy_values):.0f}%)"
        )
    print()
    print(render_table(rows))
    if args.rounds > 1:
        print()
        for row in rows:
            each = ", ".join(_fmt_rps(r.rps) for r in row.results)
            print(f"- req/s per round, {row.request}, {row.server_label}: {each}")
    if busy_values and max(busy_values) > NOISY_BUSY:
        print(
            f"\nWARNING: other processes kept the machine up to {100 * max(busy_values):.0f}% busy just before "
            "a measurement; these figures are noisy. Run again on a quiet machine."
        )
    for row in rows:
        if row.profile:
            print(f"\nprofile of {row.request}, {row.server_label}:")
            print("\n".join(row.profile))
    if args.json:
        document = {
            "machine": facts,
            "rows": [
                {
                    "request": row.request,
                    "server": row.server_label,
                    "url_path": row.path,
                    "body_bytes": row.body_bytes,
                    "median": asdict(row.result),
                    "rounds": [asdict(r) for r in row.results],
                    "busy_before": row.busy,
                    "ratio": row.ratio,
                    "verdict": row.verdict,
                }
                for row in rows
            ],
        }
        args.json.write_text(json.dumps(document, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0 if all(row.verdict in ("PASS", "(ceiling)") for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
