"""An Iceberg REST catalog stand-in: the read endpoints of the Iceberg REST spec, served from a real catalog.

No Iceberg REST server (the Java reference fixture, Polaris, Lakekeeper, Gravitino) can be installed
here, so the tests run this small server and talk to it only through pyiceberg's own ``RestCatalog``,
the client Headwater's connector uses. Every answer comes from a real pyiceberg ``SqlCatalog`` and its
real metadata files: the stand-in translates, it invents nothing. It implements ``GET /v1/config``,
``POST /v1/oauth/tokens`` (client credentials), namespace listing with ``parent`` and pagination
(``pageSize`` / ``pageToken``), namespace properties, table listing with pagination and ``loadTable``
with the spec's error bodies (``NoSuchNamespaceException`` / ``NoSuchTableException``,
``NotAuthorizedException``, ``invalid_client``). ``loadTable`` sends an ``ETag`` (a hash of the metadata
location, as Iceberg's reference server makes it) and answers ``If-None-Match`` with ``304 Not Modified``
from the catalog's row alone, without reading the metadata file; ``etags=False`` makes a server that predates
both. It does not write.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from standin_server import StandInServer

SEPARATOR = "\x1f"


class IcebergRestStandIn(StandInServer):
    """The stand-in server on 127.0.0.1, in a thread of the test process."""

    thread_name = "iceberg-rest-standin"

    def __init__(
        self, catalog: Any, *, client_id: str | None = None, client_secret: str | None = None, etags: bool = True
    ) -> None:
        self.catalog = catalog
        self.client = (client_id, client_secret) if client_id is not None else None
        self.etags = etags
        self.tokens: set[str] = set()
        self.requests: list[str] = []
        # loadTable answers: full bodies sent, and 304s.
        self.loads = 0
        self.not_modified = 0
        super().__init__()

    # ------------------------------------------------------------------------------ dispatch

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        """Answer one request."""
        parts = urlsplit(request.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        path = [unquote(p) for p in parts.path.strip("/").split("/")]
        self.requests.append(f"{method} {parts.path}")
        try:
            if path[:1] != ["v1"]:
                return self._error(request, 404, "NotFoundException", f"no route {parts.path}")
            route = path[1:]
            if method == "POST" and route == ["oauth", "tokens"]:
                return self._token(request)
            if self.client is not None and not self._authorised(request):
                return self._error(request, 401, "NotAuthorizedException", "not authorized: no valid bearer token")
            if method == "GET" and route == ["config"]:
                return self._send(request, 200, {"defaults": {}, "overrides": {}})
            if route[:1] == ["namespaces"]:
                return self._namespaces(request, method, route[1:], query)
            return self._error(request, 404, "NotFoundException", f"no route {method} {parts.path}")
        except Exception as exc:  # a bug in the stand-in: say so the way a server would
            return self._error(request, 500, "ServerErrorException", f"{type(exc).__name__}: {exc}")

    def _namespaces(self, request: Any, method: str, route: list[str], query: dict[str, str]) -> None:
        from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

        if not route:
            parent = tuple(query["parent"].split(SEPARATOR)) if query.get("parent") else ()
            try:
                children = sorted(self.catalog.list_namespaces(parent))
            except NoSuchNamespaceError:
                return self._error(request, 404, "NoSuchNamespaceException", f"namespace {parent} does not exist")
            items, token = self._page([list(n) for n in children], query)
            return self._send(request, 200, {"namespaces": items, "next-page-token": token})
        namespace = tuple(route[0].split(SEPARATOR))
        try:
            if len(route) == 1:
                properties = self.catalog.load_namespace_properties(namespace)
                if method == "HEAD":
                    return self._send(request, 204, None)
                return self._send(request, 200, {"namespace": list(namespace), "properties": properties})
            if route[1:] == ["tables"]:
                tables = sorted(self.catalog.list_tables(namespace))
                identifiers = [{"namespace": list(t[:-1]), "name": t[-1]} for t in tables]
                items, token = self._page(identifiers, query)
                return self._send(request, 200, {"identifiers": items, "next-page-token": token})
            if len(route) == 3 and route[1] == "tables":
                return self._load_table(request, (*namespace, route[2]))
        except NoSuchTableError as exc:
            return self._error(request, 404, "NoSuchTableException", str(exc))
        except NoSuchNamespaceError as exc:
            return self._error(request, 404, "NoSuchNamespaceException", str(exc))
        return self._error(request, 404, "NotFoundException", f"no route {method} {'/'.join(route)}")

    def _load_table(self, request: Any, identifier: tuple[str, ...]) -> None:
        from pyiceberg.exceptions import NoSuchTableError

        location = self._metadata_location(identifier)
        if location is None:
            raise NoSuchTableError(f"table {'.'.join(identifier)} does not exist")
        etag = '"' + hashlib.sha256(location.encode()).hexdigest() + '"'
        if self.etags and request.headers.get("If-None-Match") == etag:
            self.not_modified += 1
            return self._send(request, 304, None, etag=etag)
        metadata = json.loads(Path(urlsplit(location).path).read_text())
        self.loads += 1
        body = {"metadata-location": location, "metadata": metadata, "config": {}}
        return self._send(request, 200, body, etag=etag if self.etags else None)

    def _metadata_location(self, identifier: tuple[str, ...]) -> str | None:
        """The table's current metadata location, from the catalog's row (what a server keeps in its database)."""
        from pyiceberg.catalog.sql import IcebergTables
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        stmt = select(IcebergTables.metadata_location).where(
            IcebergTables.catalog_name == self.catalog.name,
            IcebergTables.table_namespace == ".".join(identifier[:-1]),
            IcebergTables.table_name == identifier[-1],
        )
        with Session(self.catalog.engine) as session:
            return session.scalar(stmt)

    # ---------------------------------------------------------------------------- helpers

    def _page(self, items: list[Any], query: dict[str, str]) -> tuple[list[Any], str | None]:
        """One page of ``items`` from the opaque ``pageToken`` (an offset here) and ``pageSize``."""
        if "pageSize" not in query:
            return items, None
        start = int(query.get("pageToken") or 0)
        size = int(query["pageSize"])
        end = start + size
        return items[start:end], (str(end) if end < len(items) else None)

    def _authorised(self, request: Any) -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and header.removeprefix("Bearer ") in self.tokens

    def _token(self, request: Any) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        form = {key: values[0] for key, values in parse_qs(request.rfile.read(length).decode()).items()}
        if self.client is None or (form.get("client_id"), form.get("client_secret")) != self.client:
            body = {"error": "invalid_client", "error_description": "unknown client or wrong secret"}
            return self._send(request, 401, body)
        token = secrets.token_hex(16)
        self.tokens.add(token)
        body = {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": 3600,
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        }
        return self._send(request, 200, body)

    def _error(self, request: Any, status: int, kind: str, message: str) -> None:
        self._send(request, status, {"error": {"message": message, "type": kind, "code": status}})

    def _send(self, request: Any, status: int, body: Any, *, etag: str | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        if etag is not None:
            request.send_header("ETag", etag)
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(data)
