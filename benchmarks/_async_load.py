"""The fallback load generator of ``catalog_api.py`` when ``wrk`` is not installed.

Runs in its own process: ``concurrency`` asyncio tasks, each on its own kept-alive HTTP/1.1 connection,
send GET requests to one URL back to back for ``duration`` seconds, timing each one, and print one JSON
object (requests, errors, req/s, p50/p99 in ms). With ``--paths FILE`` (one path and query string a line) the
requests go to those paths of the URL's host instead, each taken once, in the file's order, by whichever task
is free (``search_concurrency.py``: many different queries, none repeated; the run ends early if they run out).

It speaks just enough HTTP/1.1 over asyncio streams (responses with Content-Length, which both servers
send) because a full client caps the figures it is meant to measure: on a 2-core machine, httpx 0.28 at
32 connections reached about 190 req/s against a server that answers 18,000 req/s to wrk.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections.abc import Coroutine
from typing import Any
from urllib.parse import urlsplit


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values (0.0 when there are none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


class ProtocolError(Exception):
    """The server's answer is not one this client understands."""


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one response; its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split(b" ", 2)[1])
    except (IndexError, ValueError) as exc:
        raise ProtocolError(lines[0][:80].decode(errors="replace")) from exc
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length is None:
        raise ProtocolError("response without Content-Length")
    await reader.readexactly(length)
    return status


async def run(
    url: str,
    *,
    concurrency: int,
    duration: float,
    timeout: float,
    headers: list[str] | None = None,
    paths: list[str] | None = None,
) -> dict[str, Any]:
    """Load ``url`` with ``concurrency`` connections for ``duration`` seconds (each request carrying the
    ``Name: value`` lines of ``headers``; with ``paths``, each request to the next of them instead of the URL's
    own path); the figures as a dict."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    extra = "".join(f"{line}\r\n" for line in headers or ())

    def request_for(target: str) -> bytes:
        return f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: */*\r\n{extra}\r\n".encode()

    own = request_for((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    queue = iter([request_for(path) for path in paths]) if paths else None
    latencies: list[float] = []
    errors = 0
    non_2xx = 0
    started = time.perf_counter()
    deadline = started + duration

    async def worker() -> None:
        nonlocal errors, non_2xx
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while time.perf_counter() < deadline:
            request = own if queue is None else next(queue, None)
            if request is None:
                break  # every path has been asked once
            try:
                if connection is None:
                    connection = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
                reader, writer = connection
                sent = time.perf_counter()
                writer.write(request)
                status = await asyncio.wait_for(_read_response(reader), timeout)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ProtocolError, ValueError):
                errors += 1
                if connection is not None:
                    connection[1].close()
                connection = None
                continue
            latencies.append(time.perf_counter() - sent)
            if not 200 <= status < 400:
                non_2xx += 1
        if connection is not None:
            connection[1].close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "non_2xx": non_2xx,
        "duration_s": elapsed,
        "rps": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the load, print the JSON figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--header", action="append", default=[], help="a `Name: value` line sent with each request")
    parser.add_argument("--paths", help="a file of paths (with query strings), one a line, each requested once")
    args = parser.parse_args(argv)
    paths = None
    if args.paths:
        with open(args.paths, encoding="utf-8") as listed:
            paths = [line.rstrip("\n") for line in listed if line.strip()]
    load = run(
        args.url,
        concurrency=args.concurrency,
        duration=args.duration,
        timeout=args.timeout,
        headers=args.header,
        paths=paths,
    )
    json.dump(run_fastest(load), sys.stdout)
    return 0


def run_fastest(load: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """Run a load coroutine on uvloop when it is installed (a faster client), else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(load)
    return uvloop.run(load)


if __name__ == "__main__":
    sys.exit(main())
