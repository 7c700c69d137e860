"""CPU time per cached ``GET /api/v1/datasets/{id}`` through the whole middleware stack, in process.

No sockets, no uvicorn, no load generator: the app is called as ASGI in a loop, so the figure is the edge's own
cost (security headers, Host check, cross-site check, authentication, the dataset cache) and is repeatable on a
busy machine, where ``catalog_api.py``'s req/s are not. Compare two checkouts by running it under each::

    PYTHONPATH=<checkout> .venv/bin/python benchmarks/edge_cost.py [--token]

``--token`` turns authentication on and sends a viewer's API token with every request (verified once, then
cached), which is what issue 16's authenticated mode costs on a cache hit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from typing import Any

import httpx

from headwater.app import create_app
from headwater.settings import Settings

REQUESTS = 20_000
REPEATS = 5


async def measure(token: bool) -> dict[str, Any]:
    """The best of REPEATS runs of REQUESTS cached GETs, in microseconds of process CPU per request."""
    settings = Settings(
        data_dir=tempfile.mkdtemp(prefix="edge_cost-"),
        search_indexer_enabled=False,
        jobs_worker_enabled=False,
        sync_scheduler_enabled=False,
        rate_limit_per_second=0,
        **({"auth": "on", "auth_default_role": "viewer", "auth_admins": ["service:bench"]} if token else {}),
    )
    app = create_app(settings)
    headers: list[tuple[bytes, bytes]] = [(b"host", b"127.0.0.1:8000"), (b"accept", b"*/*")]
    async with app.router.lifespan_context(app):
        if token:
            from headwater.auth.models import SubjectKind
            from headwater.auth.tokens import create_token

            with app.state.sessionmaker.begin() as session:
                _, secret = create_token(session, kind=SubjectKind.SERVICE, name="bench", label="edge_cost")
            headers.append((b"authorization", f"Bearer {secret}".encode()))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
            auth = {"Authorization": headers[-1][1].decode()} if token else {}
            created = await client.post(
                "/api/v1/datasets",
                headers=auth,
                json={
                    "namespace": "postgres://db:5432",
                    "name": "shop.public.orders",
                    "kind": "table",
                    "fields": [{"name": f"c{i}", "type": "int"} for i in range(200)],
                },
            )
            created.raise_for_status()
            dataset_id = created.json()["id"]
            (await client.get(f"/api/v1/datasets/{dataset_id}", headers=auth)).raise_for_status()
        path = f"/api/v1/datasets/{dataset_id}"
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 8000),
        }
        statuses: set[int] = set()

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.add(message["status"])

        for _ in range(2_000):  # warm-up
            await app(dict(scope), receive, send)
        runs = []
        for _ in range(REPEATS):
            started = time.process_time()
            for _ in range(REQUESTS):
                await app(dict(scope), receive, send)
            runs.append((time.process_time() - started) / REQUESTS * 1e6)
    if statuses != {200}:
        raise SystemExit(f"expected only 200s, got {sorted(statuses)}")
    return {"mode": "bearer token" if token else "no credential", "us_per_request": round(min(runs), 2)}


def main() -> None:
    """Parse arguments, measure, print one JSON line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--token", action="store_true", help="authentication on, a viewer's API token per request")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.token))))


if __name__ == "__main__":
    main()
