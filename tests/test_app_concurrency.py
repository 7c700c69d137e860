"""A burst of requests against a real server, on both databases: every one answered, none stalled.

A burst larger than AnyIO's 40 worker threads used to fill every thread with routes waiting for a pool
connection while the requests holding the connections waited for a thread to commit and give them back;
the server answered nothing until the pool's timeout (30 s). Requests now wait for a database slot
without holding a thread.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import anyio
import httpx
import pytest
from fastapi import FastAPI
from live_http import serve_in_thread
from sqlalchemy import Engine

from headwater.app import create_app
from headwater.settings import Settings

pytestmark = pytest.mark.anyio

BURST = 120  # three times AnyIO's default thread limit


@pytest.fixture
def small_pool_app(app_settings: Settings, engine: Engine) -> Iterator[FastAPI]:
    """The suite's app with a pool of 2 (+2 overflow) connections: the smallest a deployment may set."""
    app = create_app(app_settings.model_copy(update={"db_pool_size": 2}), prepare=False)
    yield app
    app.state.engine.dispose()


async def test_a_burst_larger_than_the_thread_pool_is_answered_in_full(small_pool_app: FastAPI) -> None:
    command = {"name": "echo", "executable": ["/bin/echo"], "tags": ["type:shell"]}
    with serve_in_thread(small_pool_app) as url:
        limits = httpx.Limits(max_connections=BURST)
        async with httpx.AsyncClient(base_url=url, timeout=20, limits=limits) as http:
            assert (await http.post("/api/v1/commands", json=command)).status_code == 201
            statuses: list[int] = []

            async def one(i: int) -> None:
                if i % 3 == 0:  # writes too, each committed before its answer goes out
                    body = {"description": f"echo, take {i}"}
                    response = await http.patch("/api/v1/commands/echo", json=body)
                else:
                    response = await http.get("/api/v1/commands/echo")
                statuses.append(response.status_code)

            started = time.monotonic()
            async with anyio.create_task_group() as group:
                for i in range(BURST):
                    group.start_soon(one, i)
            elapsed = time.monotonic() - started
            last = (await http.get("/api/v1/commands/echo")).json()
    assert statuses.count(200) == BURST, sorted(set(statuses))
    assert elapsed < 15, f"the burst took {elapsed:.1f} s"
    assert last["description"].startswith("echo, take ")
