"""HTTP plumbing shared by every router: the session dependency (the route owns the transaction, and a
bounded number of requests hold one), error bodies and refusals, the security headers every answer carries, the
request-size guard and ETag/If-Match handling."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from headwater.errors import HeadwaterError, InvalidInput, PreconditionFailed, PreconditionRequired

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "SECURITY_HEADERS",
    "BodySizeLimit",
    "SessionDep",
    "db_slot",
    "error_body",
    "get_session",
    "install_error_handlers",
    "parse_id",
    "parse_if_match",
    "refusal",
    "unstorable_reason",
    "validation_message",
]

log = logging.getLogger("headwater.api")

# Only this server's own scripts, styles (inline styles too: the UI's SVG and layout use style attributes), images,
# fonts and connections; no plugins, no framing. A page that needs more (GraphiQL, Swagger UI) sends its own CSP.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)


def _end(session: Session, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One session and transaction per request: committed before the response is sent, rolled back on error.

    At most ``app.state.db_slots`` requests hold a session at once, fewer than the pool has connections.
    Without that bound, a burst of requests filled every worker thread with routes waiting for a connection
    while the requests holding the connections waited for a thread to commit and give them back: the server
    stalled until the pool's timeout. Waiting here costs no thread. The end of the transaction is shielded
    from cancellation (a client that goes away) so that the connection always returns to the pool.
    """
    async with db_slot(request):
        session = request.app.state.sessionmaker()
        try:
            yield session
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_end, session, False)
            raise
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_end, session, True)


@asynccontextmanager
async def db_slot(request: Request) -> AsyncIterator[None]:
    """Hold one of the app's database slots (for work that opens its own session in a worker thread)."""
    async with request.app.state.db_slots:
        yield


# Scope "function": the transaction ends when the route returns, before the response goes out, so a client
# never reads a 201 for a write that is not committed yet (or that fails to commit).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    """The JSON shape of every error answer."""
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if detail:
        body["error"]["detail"] = detail
    return body


def refusal(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error answer sent by a middleware before the request reaches a route (an ASGI app of its own)."""
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)] if len(loc) > 1 else [str(p) for p in loc]
    return ".".join(parts) or "body"


def validation_message(errors: list[dict[str, Any]]) -> str:
    """One sentence naming the first validation error's field (and how many more there are)."""
    first = errors[0]
    where = _location(tuple(first.get("loc", ())))
    message = str(first.get("msg", "is invalid"))
    if first.get("type") == "extra_forbidden":
        message = "is not a known field"
    elif first.get("type") == "json_invalid":
        return f"the request body is not valid JSON: {first.get('ctx', {}).get('error', message)}"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{where}: {message}{more}"


def unstorable_reason(exc: DataError) -> str:
    """Why the database refused a value (a NUL character in text, a number out of range, ...): the driver's message
    and detail, never the statement."""
    lines = [line.strip() for line in str(exc.orig).splitlines() if line.strip()]
    return "; ".join(line for line in lines[:2] if not line.startswith("CONTEXT"))


def parse_id(text: str | None, name: str) -> int:
    """A database id (1 to 2**63 - 1) from text a client sent, or InvalidInput naming ``name``."""
    if text is None or not (text.isascii() and text.isdigit() and len(text) <= 19) or not 1 <= int(text) < 2**63:
        raise InvalidInput(f"{name} must be a positive integer id, got {(text or '')[:40]!r}", detail={"field": name})
    return int(text)


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors, validation errors and anything unexpected to JSON bodies; never a stack trace."""

    @app.exception_handler(HeadwaterError)
    async def _domain(_: Request, exc: HeadwaterError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.detail), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()]
        return JSONResponse(
            error_body("validation_error", validation_message(list(exc.errors())), {"errors": errors[:50]}),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            exc.status_code, "http_error"
        )
        message = str(exc.detail)
        if exc.status_code in (404, 405) and message in ("Not Found", "Method Not Allowed"):
            verb = "no such endpoint" if exc.status_code == 404 else "method not allowed"
            message = f"{verb}: {request.method} {request.url.path}; the API is described at /docs"
        return JSONResponse(
            error_body(code, message), status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(OperationalError)
    async def _database(_: Request, exc: OperationalError) -> JSONResponse:
        log.error("database unavailable: %s", exc.orig)
        return JSONResponse(
            error_body("database_unavailable", "the database is unavailable; try again shortly"),
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(DataError)
    async def _unstorable(_: Request, exc: DataError) -> JSONResponse:
        # A value the database refuses (a NUL character in text, a number out of range, ...): the request's, since
        # every value Headwater makes itself fits. The driver's message and detail say which (no statement).
        return JSONResponse(
            error_body(
                "invalid_value", f"the request holds a value the database cannot store: {unstorable_reason(exc)}"
            ),
            status_code=400,
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        # Starlette sends this answer from outside every middleware, so it carries the security headers itself.
        return JSONResponse(
            error_body("internal_error", "an unexpected error occurred; it has been logged"),
            status_code=500,
            headers=dict(SECURITY_HEADERS),
        )


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` with 413, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > self.max_bytes:
                    await refusal(413, "payload_too_large", self._message)(scope, receive, send)
                    return
        received = 0

        async def limited_receive() -> Message:
            # FastAPI re-raises HTTPException from body reading untouched, so this becomes a 413 answer.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise StarletteHTTPException(413, detail=self._message)
            return message

        await self.app(scope, limited_receive, send)

    @property
    def _message(self) -> str:
        return f"the request body is larger than {self.max_bytes} bytes (HEADWATER_MAX_BODY_BYTES)"


def parse_if_match(header: str | None, *, required: bool, resource: str) -> int | None:
    """The revision an If-Match header names (None for ``*`` or an absent optional header).

    Headwater's ETags look like ``"<id>.<revision>"``; a weak ``W/`` prefix is accepted.
    """
    if header is None or not header.strip():
        if required:
            raise PreconditionRequired(
                f"send If-Match with the ETag from GET {resource} so a concurrent change is not overwritten",
                detail={"header": "If-Match"},
            )
        return None
    value = header.strip()
    if value == "*":
        return None
    value = value.removeprefix("W/").strip('"')
    try:
        return int(value.rsplit(".", 1)[-1])
    except ValueError:
        raise PreconditionFailed(
            f"If-Match {header!r} is not an ETag this API issued", detail={"header": "If-Match"}
        ) from None
