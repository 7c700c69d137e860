"""The OpenAPI document: every error status an operation can answer is declared, with the one error body shape.

FastAPI declares what a route's signature shows (its success answer, and 422 with its own validation body). The
errors that the edge and the services add are declared here, in one place, from what the operation has:

* every operation: 400 (a bad ``Host`` header, a malformed request, input a service refuses), 401 (no credential,
  or a refused one: even a public operation refuses a forged token), 403 (a missing permission; a cross-site
  write), 429 (the rate limit; not for the probes it exempts) and 503 (the database is unreachable; not for
  ``/healthz``);
* parameters or a body: 422 (validation), with the shared body instead of FastAPI's;
* a body: 413 (over ``HEADWATER_MAX_BODY_BYTES``) and 415 (not JSON);
* an unsafe method (POST, PUT, PATCH, DELETE): 409 (a conflict with current state: a taken name, a busy cluster,
  a source kind that forbids the write);
* a path parameter, a query parameter naming something (an id, a namespace and name), or a write (its body can
  name another thing: a dataset's source, a command's applications): 404;
* an ``If-Match`` header: 412 (a stale ETag) and 428 (none sent).

Each operation also names the permission it needs as ``x-permission`` (an action of
``headwater.auth.actions``, read from the route's declaration by the ``permission_of`` the app passes in).

schemathesis checks the answers against this document (tests/test_api_fuzz.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, Field

__all__ = ["ErrorBody", "ErrorDetail", "add_error_responses", "install_openapi"]

UNSAFE_METHODS = frozenset({"post", "put", "patch", "delete"})
# Query parameters that name a thing the operation looks up (a 404 when there is no such thing).
NAMING_PARAMETERS = frozenset({"dataset_id", "field_id", "namespace", "name", "field", "source", "run_id"})

DESCRIPTIONS = {
    400: "Bad request: a Host this server does not answer to, a malformed body, or input it cannot act on",
    401: "No credential, or one that is expired, revoked or forged (WWW-Authenticate: Bearer says which)",
    403: "The principal lacks the permission named in x-permission (the body names it), or a write sent by "
    "another site (Origin or Sec-Fetch-Site)",
    404: "No such resource, or nothing with the given id or name",
    409: "Conflicts with the current state (a taken name, a resource in use)",
    412: "If-Match names a revision that is no longer current",
    413: "The request body is larger than HEADWATER_MAX_BODY_BYTES",
    415: "The body is not JSON",
    422: "A parameter or the body does not validate; the message names the field",
    428: "If-Match is required",
    429: "Too many requests from this client; retry after Retry-After seconds",
    503: "The database is unavailable; retry shortly",
}


class ErrorDetail(BaseModel):
    """What went wrong: a stable code, a message naming the offending field or value, and details."""

    code: str = Field(description="A stable, machine-readable code (not_found, validation_error, ...).")
    message: str = Field(description="One sentence for a person, naming the field and value at fault.")
    detail: dict[str, Any] | None = Field(default=None, description="The field at fault and other particulars.")


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: ErrorDetail


def _statuses(path: str, method: str, operation: dict[str, Any], rate_limit_exempt: Iterable[str]) -> set[int]:
    parameters = operation.get("parameters", [])
    where = {(p.get("in"), p.get("name")) for p in parameters}
    has_body = "requestBody" in operation
    statuses = {400, 401, 403}
    if path not in rate_limit_exempt:
        statuses.add(429)
    if path != "/healthz":
        statuses.add(503)
    if parameters or has_body:
        statuses.add(422)
    if has_body:
        statuses |= {413, 415}
    if method in UNSAFE_METHODS:
        statuses.add(409)
    naming = any(
        place == "path" or (place == "query" and name.removeprefix("from_").removeprefix("to_") in NAMING_PARAMETERS)
        for place, name in where
    )
    if naming or method in UNSAFE_METHODS:  # a write can name another thing: a dataset's source, a command's apps
        statuses.add(404)
    if ("header", "if-match") in {(place, name.lower()) for place, name in where}:
        statuses |= {412, 428}
    return statuses


def add_error_responses(
    schema: dict[str, Any],
    *,
    rate_limit_exempt: Iterable[str] = (),
    permissions: Mapping[tuple[str, str], str] | None = None,
) -> dict[str, Any]:
    """Declare in ``schema`` (an OpenAPI document, changed in place) the error answers of every operation, each with
    the shared error body, and the permission of each (``permissions``: by path and lower-case method); returns
    ``schema``."""
    exempt = set(rate_limit_exempt)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in error_schema.pop("$defs", {}).items():
        components[name] = definition
    components["ErrorBody"] = error_schema
    reference = {"$ref": "#/components/schemas/ErrorBody"}
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method not in {"get", "put", "post", "delete", "options", "head", "patch", "trace"}:
                continue
            if permissions is not None and (path, method) in permissions:
                operation["x-permission"] = permissions[path, method]
            responses = operation.setdefault("responses", {})
            for status in sorted(_statuses(path, method, operation, exempt)):
                existing = responses.get(str(status))
                content: dict[str, Any] = {"application/json": {"schema": reference}}
                if status == 400:  # uvicorn refuses a request it cannot parse (a URL over 16 KB) with plain text
                    content["text/plain"] = {"schema": {"type": "string"}}
                if existing is None or status == 422:  # FastAPI's own 422 body is not what Headwater sends
                    description = (existing or {}).get("description") or DESCRIPTIONS[status]
                    if status == 422:
                        description = DESCRIPTIONS[status]
                    responses[str(status)] = {"description": description, "content": content}
                else:  # the route declared it (a page, say): its JSON error body too
                    for media_type, media in content.items():
                        existing.setdefault("content", {}).setdefault(media_type, media)
    for unused in ("HTTPValidationError", "ValidationError"):
        if not _referenced(schema, f"#/components/schemas/{unused}"):
            components.pop(unused, None)
    return schema


def _referenced(schema: dict[str, Any], ref: str) -> bool:
    stack: list[Any] = [schema.get("paths", {}), *schema.get("components", {}).get("schemas", {}).values()]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("$ref") == ref:
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def install_openapi(
    app: FastAPI,
    *,
    rate_limit_exempt: Iterable[str] = (),
    permission_of: Callable[[Any], object | None] | None = None,
    dependencies: Sequence[Any] = (),
) -> None:
    """Make ``app.openapi()`` return the document with every operation's error answers and permission declared
    (built once: ``permission_of`` a route answers its action); serve it at ``app.openapi_url`` (for an app built
    with ``openapi_url=None`` and the URL set after), with ``dependencies`` (its own permission)."""
    exempt = tuple(rate_limit_exempt)

    def permissions() -> dict[tuple[str, str], str] | None:
        if permission_of is None:
            return None
        found: dict[tuple[str, str], str] = {}
        for route in iter_route_contexts(list(app.routes)):
            action = permission_of(route)
            for method in route.methods or ():
                if action is not None and route.path_format is not None:
                    found[route.path_format, method.lower()] = str(action)
        return found

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
                servers=app.servers,
            )
            app.openapi_schema = add_error_responses(schema, rate_limit_exempt=exempt, permissions=permissions())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    if app.openapi_url and not any(getattr(route, "path", None) == app.openapi_url for route in app.router.routes):

        def openapi_document() -> JSONResponse:
            """The OpenAPI document."""
            return JSONResponse(app.openapi())

        app.add_api_route(
            app.openapi_url,
            openapi_document,
            methods=["GET", "HEAD"],
            include_in_schema=False,
            dependencies=list(dependencies),
            name="openapi",
        )
