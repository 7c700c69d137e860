"""What the source-secrets tests share: an HTTP endpoint on 127.0.0.1 that records what reaches it (its
fixtures are in this directory's conftest)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import httpx

MakeServer = Callable[..., httpx.AsyncClient]


class RecordingEndpoint:
    """A plain HTTP server on 127.0.0.1 (the standard library's, in a thread) that stands for an endpoint a
    caller chose: it records every request (line, headers, body) and answers 503."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
                endpoint.requests.append(f"{self.requestline}\n{self.headers}\n{body}")
                self.send_response(503)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"error": {"message": "unavailable", "type": "Unavailable", "code": 503}}')

            do_GET = do_POST = do_HEAD = _record

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name="recording-endpoint", daemon=True)

    @property
    def url(self) -> str:
        """Its base URL."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Self:
        """Serve in a background thread."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()

    def received(self, text: str) -> bool:
        """Whether ``text`` reached the endpoint in any request line, header or body."""
        return any(text in request for request in self.requests)
