"""The baseline of ``catalog_api.py`` and ``search_concurrency.py``: a bare Starlette app answering the
benchmarked requests from memory.

It returns, byte for byte, the bodies (and ETag) Headwater gave for the same requests, read once at
start-up from the JSON file named by ``HEADWATER_BENCH_RESPONSES`` (each of its entries ``get_one``, ``list``,
``search`` and ``ui`` that is present serves its route; a search body answers every query). Run under the same uvicorn options
as Headwater, it measures what the framework and server can do here with no work behind them: the
ceiling Headwater's figures are compared to.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["create_app"]

RESPONSES_ENV = "HEADWATER_BENCH_RESPONSES"


_ROUTES = {
    "get_one": ("/api/v1/datasets/{dataset_id:int}", "application/json"),
    "list": ("/api/v1/datasets", "application/json"),
    "search": ("/api/v1/search", "application/json"),
    "ui": ("/ui", "text/html; charset=utf-8"),
}


def _canned(entry: dict[str, str | None], media_type: str) -> Callable[[Request], Awaitable[Response]]:
    body = (entry["body"] or "").encode()
    etag = entry.get("etag")
    headers = {"ETag": etag} if etag else {}

    async def answer(_: Request) -> Response:
        return Response(body, media_type=media_type, headers=headers)

    return answer


def create_app() -> Starlette:
    """The baseline app: ``/readyz`` and the routes of ``_ROUTES`` whose answers were captured."""
    captured = json.loads(Path(os.environ[RESPONSES_ENV]).read_text())

    async def readyz(_: Request) -> Response:
        return Response(b'{"status":"ready"}', media_type="application/json")

    routes = [
        Route(path, _canned(captured[name], media)) for name, (path, media) in _ROUTES.items() if name in captured
    ]
    return Starlette(routes=[*routes, Route("/readyz", readyz)])
