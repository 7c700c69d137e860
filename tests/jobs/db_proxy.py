"""A TCP proxy between job workers and the real PostgreSQL server, with a fault the test controls.

``cut()`` drops every connection through it and refuses new ones (each is accepted and closed at once, as a
network partition with a reset looks to a client); ``stall()`` holds every byte in both directions without closing
anything (a black-holed network: calls hang instead of failing); ``restore()`` ends either fault. The workers see a
real outage of a real server; the server and every other client are untouched.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

__all__ = ["DbProxy"]


class DbProxy:
    """Forwards 127.0.0.1:<port> to ``target`` until cut; a thread per direction of each connection."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut = False
        self._closed = False
        self._flowing = threading.Event()
        self._flowing.set()
        self._acceptor = threading.Thread(target=self._accept, name="db-proxy-accept", daemon=True)
        self._acceptor.start()

    def url_for(self, url: str) -> str:
        """``url`` (a PostgreSQL URL) pointed at this proxy instead of the server."""
        from sqlalchemy.engine import make_url

        return make_url(url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def cut(self) -> None:
        """Drop every connection now and refuse new ones until :meth:`restore`."""
        with self._lock:
            self._cut = True
            sockets, self._open = self._open, set()
        for sock in sockets:
            _close(sock)

    def stall(self) -> None:
        """Hold every byte from now on, in both directions, until :meth:`restore`: calls hang, none fails."""
        self._flowing.clear()

    def restore(self) -> None:
        """Let new connections, and held bytes, through again."""
        with self._lock:
            self._cut = False
        self._flowing.set()

    def close(self) -> None:
        """Stop the proxy and drop its connections."""
        self._closed = True
        self._flowing.set()
        self.cut()
        _close(self._listener)
        self._acceptor.join(timeout=5)

    def __enter__(self) -> DbProxy:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refused = self._cut
            if refused:
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._cut:  # cut while connecting
                    _close(client)
                    _close(upstream)
                    continue
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), name="db-proxy-pump", daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                self._flowing.wait()
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(source)
                self._open.discard(sink)
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    # shutdown first: a thread blocked in recv on it wakes at once (close alone does not wake it on Linux).
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
