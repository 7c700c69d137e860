"""A real HTTP server for tests that need one: uvicorn in a thread (streaming bodies, concurrency), or
``headwater serve`` as a process of its own (what a person runs)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI


def free_port() -> int:
    """A loopback port nobody listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_in_thread(app: FastAPI, port: int | None = None) -> Iterator[str]:
    """``app`` served by a real uvicorn on ``port`` (a free loopback one by default), in a thread (no lifespan:
    tests run their own background workers); its base URL."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def headwater_serve(data_dir: Path, env: Mapping[str, str] | None = None, timeout: float = 60) -> Iterator[str]:
    """``headwater serve`` on a free loopback port over the embedded database in ``data_dir``, as a process of its
    own (this interpreter, so the code under test); its base URL once ``/readyz`` answers. Stopped by its PID."""
    port = free_port()
    environment = {**os.environ, "HEADWATER_DATA_DIR": str(data_dir), "HEADWATER_LOG_LEVEL": "warning", **(env or {})}
    environment.pop("HEADWATER_DATABASE_URL", None)
    command = [sys.executable, "-m", "headwater.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
            assert time.monotonic() < deadline, f"headwater serve was not ready in {timeout:.0f} s"
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
