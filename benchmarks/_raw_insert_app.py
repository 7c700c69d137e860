"""The storage floor of ``lineage_ingest.py``'s HTTP mode: an app that only inserts each POSTed event, raw.

``POST /api/v1/lineage`` takes the body as it is and inserts it into a plain table (``id bigserial, body
jsonb``) of the database named by ``HEADWATER_DATABASE_URL``, one transaction per request, through the same
engine settings Headwater uses (``headwater.db.create_db_engine``), and answers 201. It runs under the same
uvicorn options as Headwater, so the two differ only in what is done with the event: stored, or stored and
applied to the lineage model.
"""

from __future__ import annotations

import os

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
    """The floor app: ``POST /api/v1/lineage`` and ``GET /readyz``."""
    engine = create_db_engine(os.environ["HEADWATER_DATABASE_URL"])
    with engine.begin() as connection:
        connection.execute(text(f"DROP TABLE IF EXISTS {TABLE}"))
        statement = raw_table(connection, TABLE)

    def insert(body: str) -> None:
        with engine.begin() as connection:
            connection.execute(statement, {"body": body})

    async def post(request: Request) -> Response:
        await run_in_threadpool(insert, (await request.body()).decode())
        return Response(b'{"received":1,"applied":1}', status_code=201, media_type="application/json")

    async def readyz(_: Request) -> Response:
        return Response(b'{"status":"ready"}', media_type="application/json")

    return Starlette(routes=[Route("/api/v1/lineage", post, methods=["POST"]), Route("/readyz", readyz)])
