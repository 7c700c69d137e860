"""The storage floor of the HTTP ingestion benchmarks: an app that only inserts each POSTed event, raw.

``POST /api/v1/lineage`` takes the body as it is and inserts it into a plain table (``id bigserial, body
jsonb``) of the database named by ``HEADWATER_DATABASE_URL``; ``POST /api/v1/lineage/batch`` takes a JSON array
and inserts each event of it as a row (one executemany). One transaction per request, through the same
engine settings Headwater uses (``headwater.db.create_db_engine``), and answers 201. It runs under the same
uvicorn options as Headwater, so the two differ only in what is done with the event: stored, or stored and
applied to the lineage model.
"""

from __future__ import annotations

import os

import orjson
from sqlalchemy import Connection, TextClause, text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from headwater.db import create_db_engine

__all__ = ["TABLE", "create_app", "raw_table"]

TABLE = "bench_raw_http"


def raw_table(connection: Connection, table: str) -> TextClause:
    """Make sure the plain ``(id bigserial, body jsonb)`` table ``table`` exists; the INSERT of one raw body
    (``:body``) into it. The floor's storage, in process (``lineage_ingest.floor``) and behind this app alike."""
    connection.execute(text(f"CREATE TABLE IF NOT EXISTS {table} (id bigserial PRIMARY KEY, body jsonb NOT NULL)"))
    return text(f"INSERT INTO {table} (body) VALUES (CAST(:body AS jsonb))")


def create_app() -> Starlette:
    """The floor app: ``POST /api/v1/lineage``, ``POST /api/v1/lineage/batch`` and ``GET /readyz``."""
    engine = create_db_engine(os.environ["HEADWATER_DATABASE_URL"])
    with engine.begin() as connection:
        connection.execute(text(f"DROP TABLE IF EXISTS {TABLE}"))
        statement = raw_table(connection, TABLE)

    def insert(body: str) -> None:
        with engine.begin() as connection:
            connection.execute(statement, {"body": body})

    def insert_many(bodies: list[str]) -> None:
        with engine.begin() as connection:
            connection.execute(statement, [{"body": body} for body in bodies])

    async def post(request: Request) -> Response:
        await run_in_threadpool(insert, (await request.body()).decode())
        return Response(b'{"received":1,"applied":1}', status_code=201, media_type="application/json")

    async def post_batch(request: Request) -> Response:
        bodies = [orjson.dumps(event).decode() for event in orjson.loads(await request.body())]
        await run_in_threadpool(insert_many, bodies)
        answer = orjson.dumps({"received": len(bodies), "applied": len(bodies)})
        return Response(answer, status_code=201, media_type="application/json")

    async def readyz(_: Request) -> Response:
        return Response(b'{"status":"ready"}', media_type="application/json")

    routes = [
        Route("/api/v1/lineage", post, methods=["POST"]),
        Route("/api/v1/lineage/batch", post_batch, methods=["POST"]),
        Route("/readyz", readyz),
    ]
    return Starlette(routes=routes)
