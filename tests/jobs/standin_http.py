"""JSON stand-ins for the cluster-manager tests (a ResourceManager, a Kubernetes API server), on the suite's
stand-in plumbing (tests/standin_server.py): every request is recorded (method, path, query, JSON body) and
handed to the stand-in's ``answer``."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from standin_server import StandInServer


@dataclass(frozen=True)
class Request:
    """One request as the stand-in received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: Any  # the JSON body, None when there was none


class JsonStandIn(StandInServer):
    """A stand-in that records each request and answers it with :meth:`answer` (JSON through :meth:`send`)."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Request] = []
        self.lock = threading.Lock()

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        """Record the request, then :meth:`answer` it."""
        parts = urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        body = json.loads(request.rfile.read(length)) if length else None
        seen = Request(method, parts.path, parse_qs(parts.query), body)
        with self.lock:
            self.requests.append(seen)
        self.answer(request, seen)

    def answer(self, handler: BaseHTTPRequestHandler, request: Request) -> None:
        """Answer one request (``handler`` sends the answer, ``request`` is what was asked)."""
        raise NotImplementedError

    @staticmethod
    def send(handler: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
        """Send ``payload`` as JSON."""
        JsonStandIn.send_bytes(handler, status, json.dumps(payload).encode(), "application/json")

    @staticmethod
    def send_bytes(handler: BaseHTTPRequestHandler, status: int, data: bytes, content_type: str) -> None:
        """Send ``data``."""
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
