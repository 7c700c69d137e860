"""The HTTP plumbing shared by the tests' stand-ins for servers that cannot be installed here.

A stand-in serves on 127.0.0.1 (a free port) from a thread of the test process and routes every request
to its ``handle(request, method)``; it is started and stopped by the test that uses it.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class StandInServer:
    """Base of the stand-ins: the server, its thread, its URL; subclasses implement :meth:`handle`."""

    thread_name = "standin"

    def __init__(self) -> None:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep the test output clean
                pass

            def do_GET(self) -> None:
                standin.handle(self, "GET")

            def do_HEAD(self) -> None:
                standin.handle(self, "HEAD")

            def do_POST(self) -> None:
                standin.handle(self, "POST")

            def do_PUT(self) -> None:
                standin.handle(self, "PUT")

            def do_DELETE(self) -> None:
                standin.handle(self, "DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, name=self.thread_name, daemon=True)

    @property
    def url(self) -> str:
        """The base URL clients are configured with."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Self:
        """Serve in a background thread."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (what a server going down looks like); again is fine."""
        if self.thread.is_alive():
            self.server.shutdown()
        self.server.server_close()

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        """Answer one request."""
        raise NotImplementedError
