"""The baseline of ``catalog_api.py``: a bare Starlette app answering the benchmarked requests from memory.

It returns, byte for byte, the bodies (and ETag) Headwater gave for the same requests, read once at
start-up from the JSON file named by ``HEADWATER_BENCH_RESPONSES``. Run under the same uvicorn options
as Headwater, it measures what the framework and server can do here with no work behind them: the
ceiling Headwater's figures are compared to.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["create_app"]

RESPONSES_ENV = "HEADWATER_BENCH_RESPONSES"


def _canned(entry: dict[str, str | None]) -> tuple[bytes, dict[str, str]]:
    body = (entry["body"] or "").encode()
    etag = entry.get("etag")
    return body, ({"ETag": etag} if etag else {})


def create_app() -> Starlette:
    """The baseline app: ``GET /api/v1/datasets/{id}``, ``GET /api/v1/datasets`` and ``/readyz``."""
    captured = json.loads(Path(os.environ[RESPONSES_ENV]).read_text())
    one_body, one_headers = _canned(captured["get_one"])
    list_body, list_headers = _canned(captured["list"])

    async def get_one(_: Request) -> Response:
        return Response(one_body, media_type="application/json", headers=one_headers)

    async def list_datasets(_: Request) -> Response:
        return Response(list_body, media_type="application/json", headers=list_headers)

    async def readyz(_: Request) -> Response:
        return Response(b'{"status":"ready"}', media_type="application/json")

    return Starlette(
        routes=[
            Route("/api/v1/datasets/{dataset_id:int}", get_one),
            Route("/api/v1/datasets", list_datasets),
            Route("/readyz", readyz),
        ]
    )
