"""The load generator of ``catalog_load.py``: many URLs, with writes running beside the reads.

Runs in its own process. ``concurrency`` asyncio tasks, each on its own kept-alive HTTP/1.1 connection, take the
next path from one shared list (so a list of distinct ids is read once each, in order: a cold pass stays cold) and
send GET requests back to back until the list is used up or ``duration`` seconds have passed. Beside them, when
``writes_per_second`` is above zero, one more connection edits dataset descriptions at that rate the way the UI
does: GET the dataset for its ETag, then PATCH with If-Match (a 412 from a concurrent write is retried once).
It prints one JSON object: the reads' requests, errors, non-2xx, req/s, p50/p99 in ms, and the writes' count,
failures and p50/p99.

It speaks just enough HTTP/1.1 over asyncio streams (responses with Content-Length), like ``_async_load.py``,
because a full client caps the figures it is meant to measure on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from _async_load import ProtocolError, percentile, run_fastest


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[bytes, bytes], bytes]:
    """Read one response: its status, lower-cased headers and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split(b" ", 2)[1])
    except (IndexError, ValueError) as exc:
        raise ProtocolError(lines[0][:80].decode(errors="replace")) from exc
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name:
            headers[name.strip().lower()] = value.strip()
    if b"content-length" not in headers:
        raise ProtocolError("response without Content-Length")
    body = await reader.readexactly(int(headers[b"content-length"]))
    return status, headers, body


def _request(
    method: str, target: str, netloc: str, *, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    length = f"Content-Length: {len(body)}\r\n" if method != "GET" else ""
    return f"{method} {target} HTTP/1.1\r\nHost: {netloc}\r\nAccept: */*\r\n{extra}{length}\r\n".encode() + body


async def run(
    base_url: str,
    paths: list[str],
    *,
    concurrency: int,
    duration: float,
    timeout: float,
    writes_per_second: float,
    write_ids: list[int],
) -> dict[str, Any]:
    """Read ``paths`` with ``concurrency`` connections (writing at ``writes_per_second`` beside them)."""
    parts = urlsplit(base_url)
    host, port, netloc = parts.hostname or "127.0.0.1", parts.port or 80, parts.netloc
    latencies: list[float] = []
    write_latencies: list[float] = []
    counts = {"errors": 0, "non_2xx": 0, "write_failures": 0}
    position = 0
    started = time.perf_counter()
    deadline = started + duration
    done = asyncio.Event()

    def next_path() -> str | None:
        nonlocal position
        if position >= len(paths) or time.perf_counter() >= deadline:
            return None
        position += 1
        return paths[position - 1]

    async def reader_task() -> None:
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while (path := next_path()) is not None:
            try:
                if connection is None:
                    connection = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
                reader, writer = connection
                sent = time.perf_counter()
                writer.write(_request("GET", path, netloc))
                status, _, _ = await asyncio.wait_for(read_response(reader), timeout)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ProtocolError, ValueError):
                counts["errors"] += 1
                if connection is not None:
                    connection[1].close()
                connection = None
                continue
            latencies.append(time.perf_counter() - sent)
            if not 200 <= status < 400:
                counts["non_2xx"] += 1
        if connection is not None:
            connection[1].close()

    async def writer_task() -> None:
        rng = random.Random(11)
        reader, writer = await asyncio.open_connection(host, port)
        interval = 1.0 / writes_per_second
        next_at = time.perf_counter()
        n = 0
        try:
            while not done.is_set():
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                next_at += interval
                dataset_id = rng.choice(write_ids)
                target = f"/api/v1/datasets/{dataset_id}"
                began = time.perf_counter()
                ok = False
                for _ in range(2):
                    writer.write(_request("GET", target, netloc))
                    status, headers, _ = await asyncio.wait_for(read_response(reader), timeout)
                    if status != 200:
                        break
                    n += 1
                    body = json.dumps({"description": f"Edited by the benchmark's writer, edit {n}."}).encode()
                    writer.write(
                        _request(
                            "PATCH",
                            target,
                            netloc,
                            headers={"If-Match": headers[b"etag"].decode(), "Content-Type": "application/json"},
                            body=body,
                        )
                    )
                    status, _, _ = await asyncio.wait_for(read_response(reader), timeout)
                    if status == 200:
                        ok = True
                        break
                    if status != 412:
                        break
                if ok:
                    write_latencies.append(time.perf_counter() - began)
                else:
                    counts["write_failures"] += 1
        finally:
            writer.close()

    readers = [asyncio.ensure_future(reader_task()) for _ in range(concurrency)]
    writing = asyncio.ensure_future(writer_task()) if writes_per_second > 0 and write_ids else None
    await asyncio.gather(*readers)
    elapsed = time.perf_counter() - started
    done.set()
    if writing is not None:
        await writing
    latencies.sort()
    write_latencies.sort()
    return {
        "requests": len(latencies),
        **counts,
        "duration_s": elapsed,
        "rps": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "writes": len(write_latencies),
        "write_rate": len(write_latencies) / elapsed if elapsed else 0.0,
        "write_p50_ms": percentile(write_latencies, 0.50) * 1000,
        "write_p99_ms": percentile(write_latencies, 0.99) * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the load, print the JSON figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("base_url")
    parser.add_argument("paths_file", help="a JSON list of paths (with query strings) to GET, in order")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--writes-per-second", type=float, default=0.0)
    parser.add_argument("--write-ids-file", help="a JSON list of dataset ids the writer edits")
    args = parser.parse_args(argv)
    paths = json.loads(Path(args.paths_file).read_text())
    write_ids = json.loads(Path(args.write_ids_file).read_text()) if args.write_ids_file else []
    load = run(
        args.base_url,
        paths,
        concurrency=args.concurrency,
        duration=args.duration,
        timeout=args.timeout,
        writes_per_second=args.writes_per_second,
        write_ids=write_ids,
    )
    json.dump(run_fastest(load), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
