"""Answers shared by every router: the JSON error body, refusals sent by middlewares, the mapping of domain,
validation and database errors to those bodies, and the one-pass JSON response of a pydantic model."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from headwater.api.headers import SECURITY_HEADERS
from headwater.errors import HeadwaterError

__all__ = [
    "challenge",
    "error_body",
    "install_error_handlers",
    "json_response",
    "refusal",
    "unstorable_reason",
    "validation_message",
]

log = logging.getLogger("headwater.api")


def json_response(model: BaseModel, *, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Serialise ``model`` once, in Rust, straight to the response body."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json", headers=headers)


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


def challenge(exc: HeadwaterError) -> dict[str, str] | None:
    """The ``WWW-Authenticate`` header of a 401 (RFC 6750), ``Retry-After`` of a 429, none for any other error."""
    retry_after = getattr(exc, "retry_after", None)
    if exc.status_code == 429 and isinstance(retry_after, int):
        return {"Retry-After": str(retry_after)}
    if exc.status_code != 401:
        return None
    error = exc.detail.get("bearer_error") if isinstance(exc.detail, dict) else None
    return {"WWW-Authenticate": f'Bearer realm="headwater", error="{error}"' if error else 'Bearer realm="headwater"'}


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors, validation errors and anything unexpected to JSON bodies; never a stack trace."""

    @app.exception_handler(HeadwaterError)
    async def _domain(_: Request, exc: HeadwaterError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message, exc.detail), status_code=exc.status_code, headers=challenge(exc)
        )

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
