"""Search under concurrent clients, over HTTP, against a real ``headwater serve`` on PostgreSQL (issue 18, finding 3).

``search.py`` measures the backend in process, one query at a time, without column documents, on queries that
repeat. This one measures what many users see:

1. the catalog of ``search.py`` (``--datasets`` x ``--fields``, 100,000 x 20 by default) bulk-loaded into
   PostgreSQL and indexed *with* one document per column (the server's default), then ``VACUUM ANALYZE``;
   the database is the one ``search.py --columns --reuse`` keeps, and ``--reuse`` here reuses it too;
2. a real ``headwater serve`` on loopback with its default settings (search indexer on; rate limit off), with
   ``--workers N`` and any ``--server-arg`` passed on to ``serve`` (one process unless asked);
3. a varied query mix, none asked twice in a run (:func:`query_mix`): full and short names, half-typed words,
   several words, ``tag:``/``owner:``/``kind:`` syntax, quoted phrases and ``-word``, misspellings, column
   names (some with ``type=column``), words that match nothing (the fallback's retries) and random words;
4. for ``/api/v1/search`` and the UI search page ``/ui``, at each of ``--clients`` (1, 16 and 50), the asyncio
   load generator ``_async_load.py`` in its own process, each client on its own kept-alive connection;
5. the floor, in the same run and with the same load generator: a bare Starlette app
   (``_baseline_app.py``) answering every request with a typical captured body (REST, then UI).

It prints req/s, p50, p99, errors, CPU milliseconds per request of the server's processes and of the
PostgreSQL backends serving them, the floor's req/s and the ratio, and the goal's verdict
(50 clients: ≥ 2x the 80 req/s of issue 18 and p99 ≤ 500 ms). Run from the repository root::

    .venv/bin/python benchmarks/search_concurrency.py --reuse [--clients 1,16,50] [--duration 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import random
import signal
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import _postgres
import httpx
import search
from jobs_common import free_port, load_average
from sqlalchemy import create_engine, make_url, text

from headwater import migrations
from headwater.db import create_db_engine, make_sessionmaker
from headwater.search.indexer import SearchIndexer
from headwater.search.sql import SqlSearchBackend

HERE = Path(__file__).resolve().parent
HEADWATER = [sys.executable, "-m", "headwater.cli"]
TODAY_RPS = 80.0  # issue 18: 50 clients, 100k datasets, column documents on
GOAL_P99_MS = 500.0

# Kind of query -> share of the mix.
MIX = {
    "full name": 0.10,
    "short name": 0.08,
    "half-typed": 0.12,
    "words": 0.14,
    "syntax": 0.10,
    "misspelt": 0.10,
    "column": 0.12,
    "nothing": 0.06,
    "random words": 0.13,
    "browse": 0.05,
}


def database_url(datasets: int, fields: int) -> str:
    """The kept database (the one ``search.py --columns --reuse`` uses for the same size)."""
    name = f"headwater_bench_search_keep_{datasets}x{fields}c"
    return make_url(_postgres.ADMIN).set(database=name).render_as_string(hide_password=False)


def prepare(url: str, datasets: int, fields: int, *, reuse: bool) -> search.Catalog:
    """Load and index the catalog (columns on) unless ``reuse`` finds it there; what was generated."""
    rows = search.generate(datasets, fields)
    admin = create_engine(_postgres.ADMIN, isolation_level="AUTOCOMMIT")
    name = make_url(url).database
    with admin.connect() as conn:
        present = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        if present and not reuse:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        if not present or not reuse:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    migrations.upgrade(url)
    engine = create_db_engine(url)
    try:
        if reuse and search._loaded(engine, datasets):
            with engine.connect() as conn:
                columns = conn.scalar(text("SELECT count(*) FROM search_documents WHERE type = 'column'"))
            if columns != datasets * fields:
                raise SystemExit(f"{name} holds {columns:,} column documents, not {datasets * fields:,}: drop it")
            print(f"reusing {name}", flush=True)
            return rows[4]
        began = time.perf_counter()
        search.load(engine, rows[:4])
        loaded = time.perf_counter() - began
        backend = SqlSearchBackend(engine)
        report = SearchIndexer(
            factory=make_sessionmaker(engine), backend=backend, include_columns=True, batch_size=500
        ).rebuild()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        print(f"{name}: loaded in {loaded:.0f} s, indexed {report.documents:,} documents in {report.seconds:.0f} s")
        return rows[4]
    finally:
        engine.dispose()


def _typo(word: str, rng: random.Random) -> str:
    """``word`` with two neighbouring letters swapped, one dropped or one doubled."""
    i = rng.randrange(1, len(word) - 1)
    kind = rng.randrange(3)
    if kind == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == 1:
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def _gibberish(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(5, 9)))


def one_query(kind: str, names: list[str], rng: random.Random) -> dict[str, str]:
    """The parameters of one query of ``kind`` (see :data:`MIX`)."""
    name = rng.choice(names)
    short = name.split(".", 1)[1]
    if kind == "full name":
        return {"q": name}
    if kind == "short name":
        return {"q": short}
    if kind == "half-typed":
        typed = rng.choice([name, short, rng.choice(search.ENTITIES)])
        return {"q": typed[: rng.randint(3, max(3, len(typed) - 1))]}
    if kind == "words":
        words = short.split("_")
        return {"q": " ".join(rng.sample(words, rng.randint(2, len(words))))}
    if kind == "syntax":
        word = rng.choice(search.ENTITIES)
        return {
            "q": rng.choice(
                [
                    f"tag:{rng.choice(search.TAGS)} {word}",
                    f"owner:{rng.choice(search.OWNERS)} {word}",
                    f"kind:table {word} {rng.choice(search.METRICS)}",
                    f'"{word} {rng.choice(search.ENTITIES)}"',
                    f"{word} -{rng.choice(search.METRICS)}",
                    f"tag:{rng.choice(search.TAGS)} tag:{rng.choice(search.TAGS)}",
                ]
            )
        }
    if kind == "misspelt":
        words = short.split("_")
        i = rng.randrange(len(words))
        if len(words[i]) > 4:
            words[i] = _typo(words[i], rng)
        return {"q": " ".join(words[: rng.randint(1, len(words))])}
    if kind == "column":
        column = f"{rng.choice(search.COLUMN_WORDS)}_{rng.choice(search.COLUMN_WORDS)}"
        if rng.random() < 0.5:
            return {"q": column, "type": "column"}
        return {"q": rng.choice([column, column.replace("_", " ")])}
    if kind == "nothing":
        return {"q": " ".join(_gibberish(rng) for _ in range(rng.randint(1, 3)))}
    if kind == "random words":
        pool = search.ENTITIES + search.DESCRIPTION_WORDS + search.COLUMN_WORDS + search.DOMAINS
        return {"q": " ".join(rng.choice(pool).strip(",;") for _ in range(rng.randint(1, 3)))}
    if kind == "browse":
        return rng.choice(
            [
                {"tag": rng.choice(search.TAGS), "sort": "name"},
                {"owner": rng.choice(search.OWNERS)},
                {"q": rng.choice(search.ENTITIES), "sort": "-updated_at"},
                {"namespace": "manual", "tag": rng.choice(search.TAGS), "sort": "updated_at"},
            ]
        )
    raise ValueError(kind)


def query_mix(catalog: search.Catalog, count: int, seed: int) -> tuple[list[tuple[str, str]], float]:
    """``count`` queries (kind, query string) in random order, kinds in the shares of :data:`MIX`, and the share
    of them that repeat an earlier one: a query is drawn again (up to 50 times) until it is new, so only kinds
    with few possible queries (browsing a tag) repeat."""
    rng = random.Random(seed)
    names = list(catalog.names.values())
    kinds, weights = list(MIX), list(MIX.values())
    seen: set[str] = set()
    found: list[tuple[str, str]] = []
    repeats = 0
    for _ in range(count):
        kind = rng.choices(kinds, weights)[0]
        for _attempt in range(50):
            query = urlencode(one_query(kind, names, rng))
            if query not in seen:
                break
        else:
            repeats += 1
        seen.add(query)
        found.append((kind, query))
    return found, repeats / count


def _cpu_ticks(pids: set[int]) -> dict[int, int]:
    """User + system clock ticks of each of ``pids`` so far (those that ended are left out)."""
    ticks = {}
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks[pid] = int(fields[11]) + int(fields[12])
    return ticks


def _spent(before: dict[int, int], pids: set[int]) -> int:
    """Ticks ``pids`` spent since ``before`` (a process started since counts from 0; one that ended counts 0, as
    its last ticks cannot be read: an undercount when the pool closes connections)."""
    after = _cpu_ticks(pids | set(before))
    return sum(ticks - before.get(pid, 0) for pid, ticks in after.items())


def _group(pgid: int) -> set[int]:
    """The processes of process group ``pgid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) == pgid:
                    found.add(int(entry.name))
    return found


def _backends(url: str) -> set[int]:
    """The PostgreSQL backends connected to ``url``'s database."""
    admin = create_engine(_postgres.ADMIN)
    try:
        with admin.connect() as conn:
            return set(
                conn.execute(
                    text("SELECT pid FROM pg_stat_activity WHERE datname = :n AND backend_type = 'client backend'"),
                    {"n": make_url(url).database},
                ).scalars()
            )
    finally:
        admin.dispose()


@contextlib.contextmanager
def serve(command: list[str], env: dict[str, str], log: Path, cwd: Path) -> Iterator[tuple[str, int]]:
    """A server process group (``command`` gets ``--port``); its base URL and group id once /readyz answers."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it reaches every worker
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        yield base_url, process.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class Queries:
    """The query strings, handed out in disjoint slices so that no query is asked twice in a run."""

    def __init__(self, mix: list[tuple[str, str]]) -> None:
        self.queries = [q for _, q in mix]
        self.offset = 0

    def take(self, count: int) -> list[str]:
        """The next ``count`` queries (fewer when they run out)."""
        taken = self.queries[self.offset : self.offset + count]
        return taken


def load(base_url: str, path: str, queries: Queries, *, clients: int, duration: float) -> dict[str, float]:
    """``clients`` connections asking ``path`` with the next unused queries for ``duration`` seconds."""
    paths = [f"{path}?{q}" if q else path for q in queries.take(100_000)]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
        listing.write("\n".join(paths) + "\n")
    done = subprocess.run(
        [
            sys.executable,
            str(HERE / "_async_load.py"),
            base_url + path,
            "--concurrency",
            str(clients),
            "--duration",
            str(duration),
            "--timeout",
            "60",
            "--paths",
            listing.name,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    os.unlink(listing.name)
    figures: dict[str, float] = json.loads(done.stdout)
    queries.offset += int(figures["requests"] + figures["errors"]) + clients
    return figures


def measured(
    base_url: str, path: str, queries: Queries, *, clients: int, args: argparse.Namespace, pgid: int, url: str
) -> dict[str, float]:
    """A warm-up, then the measured load; with CPU milliseconds per request of the server's processes (group
    ``pgid``) and of the PostgreSQL backends connected to ``url`` (those open after the warm-up)."""
    if args.warmup:
        load(base_url, path, queries, clients=clients, duration=args.warmup)
    server, database = _cpu_ticks(_group(pgid)), _cpu_ticks(_backends(url))
    figures = load(base_url, path, queries, clients=clients, duration=args.duration)
    per_request = 1000 / os.sysconf("SC_CLK_TCK") / max(1, figures["requests"])
    figures["cpu_ms"] = _spent(server, _group(pgid)) * per_request
    backends = _backends(url)
    figures["db_cpu_ms"] = _spent(database, backends) * per_request
    figures["connections"] = len(backends | set(database))
    return figures


def main() -> int:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=int, default=100_000)
    parser.add_argument("--fields", type=int, default=20)
    parser.add_argument("--clients", default="1,16,50", help="Comma-separated concurrent client counts.")
    parser.add_argument("--targets", default="rest,ui", help="rest (/api/v1/search) and/or ui (/ui).")
    parser.add_argument("--duration", type=float, default=20.0, help="Measured seconds per target and count.")
    parser.add_argument("--warmup", type=float, default=5.0, help="Seconds of load before each measurement.")
    parser.add_argument("--workers", type=int, default=1, help="Server processes (`headwater serve --workers`).")
    parser.add_argument("--server-arg", action="append", default=[], help="One more argument to `headwater serve`.")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE in the server's environment.")
    parser.add_argument("--no-floor", action="store_true", help="Skip the bare-Starlette floor.")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--queries", type=int, default=40_000, help="Queries drawn; a run stops when they run out.")
    parser.add_argument("--reuse", action="store_true", help="Reuse the database of an earlier run (or search.py's).")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",") if c.strip()]
    targets = {"rest": "/api/v1/search", "ui": "/ui"}
    chosen = [t.strip() for t in args.targets.split(",") if t.strip()]
    if any(t not in targets for t in chosen):
        parser.error(f"--targets takes rest and/or ui, not {args.targets!r}")
    url = database_url(args.datasets, args.fields)
    catalog = prepare(url, args.datasets, args.fields, reuse=args.reuse)
    mix, repeated = query_mix(catalog, args.queries, args.seed)
    queries = Queries(mix)
    shares = {kind: sum(1 for k, _ in mix if k == kind) / len(mix) for kind in MIX}
    server_cmd = [*HEADWATER, "serve", *(["--workers", str(args.workers)] if args.workers > 1 else [])]
    server_cmd += args.server_arg
    print(f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cpu, Python {sys.version.split()[0]}")
    print(f"server: {' '.join(server_cmd[1:])} {' '.join(args.env)}")
    print(
        f"query mix ({len(mix):,} queries, {repeated:.1%} repeats of an earlier one, each asked once): "
        + ", ".join(f"{kind} {share:.0%}" for kind, share in shares.items())
    )
    print(f"load average before: {load_average()}", flush=True)
    rows: list[tuple[str, int, dict[str, float]]] = []
    samples: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="hw-search-conc-") as tmp:
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
        env.update(
            HEADWATER_DATABASE_URL=url,
            HEADWATER_DATA_DIR=str(work / "data"),
            HEADWATER_LOG_LEVEL="warning",
            HEADWATER_RATE_LIMIT_PER_SECOND="0",  # clients sending as fast as they can, on purpose
        )
        env.update(item.split("=", 1) for item in args.env)  # type: ignore[arg-type]
        with serve(server_cmd, env, work / "server.log", work) as (base_url, pgid):
            status = httpx.get(f"{base_url}/api/v1/search/status", timeout=30).json()
            print(f"index: {status['documents']} (in sync: {status['in_sync']}, lag {status['lag']})", flush=True)
            # The floor's answers: a typical query's REST body and UI page.
            typical = urlencode({"q": "member daily"})
            for name in chosen:
                samples[name] = httpx.get(f"{base_url}{targets[name]}?{typical}", timeout=60).text
            for name in chosen:
                for count in clients:
                    figures = measured(base_url, targets[name], queries, clients=count, args=args, pgid=pgid, url=url)
                    rows.append((name, count, figures))
                    print(
                        f"  {name} x{count}: {figures['rps']:.1f} req/s, p50 {figures['p50_ms']:.0f} ms, "
                        f"p99 {figures['p99_ms']:.0f} ms, CPU ms/req server {figures['cpu_ms']:.1f} "
                        f"database {figures['db_cpu_ms']:.1f} ({figures['connections']:.0f} connections)",
                        flush=True,
                    )
        floor: dict[tuple[str, int], dict[str, float]] = {}
        if not args.no_floor:
            captured = {name: {"body": body} for name, body in samples.items()}
            (work / "captured.json").write_text(
                json.dumps({"search" if k == "rest" else k: v for k, v in captured.items()})
            )
            floor_env = {**env, "HEADWATER_BENCH_RESPONSES": str(work / "captured.json")}
            floor_cmd = [
                sys.executable,
                "-m",
                "uvicorn",
                "_baseline_app:create_app",
                "--factory",
                "--app-dir",
                str(HERE),
            ]
            floor_cmd += ["--workers", str(args.workers), "--no-access-log", "--log-level", "warning"]
            with serve(floor_cmd, floor_env, work / "floor.log", work) as (floor_url, _):
                for name in chosen:
                    for count in clients:
                        floor[(name, count)] = load(
                            floor_url, targets[name], Queries(mix), clients=count, duration=args.duration / 2
                        )
    print(f"load average after: {load_average()}")
    print()
    print(
        "| target | clients | req/s | p50 ms | p99 ms | errors / non-2xx | CPU ms/req server / database "
        "| floor req/s | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, count, f in rows:
        fl = floor.get((name, count))
        floor_rps = f"{fl['rps']:,.0f}" if fl else "-"
        ratio = f"{f['rps'] / fl['rps']:.3f}×" if fl else "-"
        print(
            f"| {targets[name]} | {count} | {f['rps']:.1f} | {f['p50_ms']:.0f} | {f['p99_ms']:.0f} | "
            f"{int(f['errors'])} / {int(f['non_2xx'])} | {f['cpu_ms']:.1f} / {f['db_cpu_ms']:.1f} | {floor_rps} | "
            f"{ratio} |"
        )
    for name, count, f in rows:
        if count == 50:
            met = f["rps"] >= 2 * TODAY_RPS and f["p99_ms"] <= GOAL_P99_MS
            print(
                f"- goal ({targets[name]}, 50 clients, ≥ {2 * TODAY_RPS:.0f} req/s and p99 ≤ {GOAL_P99_MS:.0f} ms): "
                f"{'met' if met else 'not met'} ({f['rps']:.0f} req/s, p99 {f['p99_ms']:.0f} ms)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
