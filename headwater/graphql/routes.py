"""``/graphql``: the GraphQL endpoint (POST; GET for queries) and the GraphiQL IDE for people trying it out.

A request runs in one worker thread and one transaction: its resolvers are sync and run one after another on
one session. The transaction commits unless a resolver failed unexpectedly (a typed error result has already
rolled its root field's savepoint back; a bad argument of a nested field is a read that failed). After an
unexpected failure it rolls back whole and answers no data, only a generic message; the error goes to the log,
never a stack trace to the client.

Status codes follow GraphQL over HTTP: 200 when the operation ran, 400 when it could not (not JSON, no query,
a syntax or validation error, an estimated cost over HEADWATER_GRAPHQL_MAX_COST) or its answer was dropped (over
HEADWATER_GRAPHQL_MAX_RESULT_BYTES, or past HEADWATER_GRAPHQL_TIME_BUDGET; its transaction is rolled back), 405 for
a mutation sent with GET.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request, Response
from graphql import GraphQLError
from sqlalchemy import Connection, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from strawberry.exceptions import StrawberryGraphQLError
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types.graphql import OperationType

from headwater.api import db_slot, error_body
from headwater.api.auth import allow, principal_of
from headwater.apidocs import graphiql_page
from headwater.auth.actions import Action
from headwater.catalog.cache import DatasetCache
from headwater.db import session_scope
from headwater.errors import HeadwaterError, InvalidInput
from headwater.graphql.answers import answer_key
from headwater.graphql.context import Context
from headwater.graphql.limits import TimeBudgetExceeded
from headwater.graphql.schema import schema

__all__ = ["graphql_router"]

log = logging.getLogger("headwater.graphql")
graphql_router = APIRouter(tags=["graphql"])
# The endpoint needs a signed-in principal (anonymous: 401 before any query runs); each root field then checks
# its own permission (answers_errors), so one request can read what it may and be refused the rest.
SIGNED_IN = [allow(Action.SELF)]

_QUERIES = (OperationType.QUERY,)

# The OpenAPI description of GraphQL over HTTP (a GraphQL answer, or Headwater's error body before a query runs).
_GRAPHQL_ANSWER = {
    "type": "object",
    "properties": {
        "data": {"anyOf": [{"type": "object"}, {"type": "null"}]},
        "errors": {"type": "array", "items": {"type": "object", "properties": {"message": {"type": "string"}}}},
    },
    "required": ["data"],
}
_ANSWER_OR_ERROR = {"anyOf": [_GRAPHQL_ANSWER, {"$ref": "#/components/schemas/ErrorBody"}]}
_GRAPHQL_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The operation ran: its data, and errors of fields that failed",
        "content": {"application/json": {"schema": _GRAPHQL_ANSWER}},
    },
    400: {
        "description": "The operation could not run (syntax, validation, cost) or its answer was dropped (size, "
        "time budget), or the request is malformed",
        "content": {"application/json": {"schema": _ANSWER_OR_ERROR}},
    },
}
_POST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "query": {"type": "string"},
                        "variables": {"anyOf": [{"type": "object"}, {"type": "null"}]},
                        "operationName": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                    },
                    "required": ["query"],
                }
            }
        },
    }
}
_ALL = (OperationType.QUERY, OperationType.MUTATION)
_UNEXPECTED = "an unexpected error occurred; it has been logged"
_DATABASE_DOWN = "the database is unavailable; try again shortly"


def _unexpected(error: GraphQLError) -> bool:
    """Whether a resolver failed in a way no client asked for (a bug, the database gone): not GraphQL's own error,
    nor a domain error of a nested field (a bad argument there)."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError | StrawberryGraphQLError | HeadwaterError)


def _error(error: GraphQLError) -> dict[str, Any]:
    """The JSON of one error: GraphQL's own (syntax, validation) as they are; a domain error of a nested field with
    its message, code and field; anything else is logged and reported without its text."""
    original = error.original_error
    formatted: dict[str, Any] = dict(error.formatted)
    if isinstance(original, HeadwaterError):
        where = original.detail.get("field") if isinstance(original.detail, dict) else None
        formatted["message"] = original.message
        formatted["extensions"] = {"code": original.code, "field": where}
    elif not _unexpected(error):
        pass
    elif isinstance(original, OperationalError):
        log.error("database unavailable during a GraphQL request: %s", original.orig)
        formatted["message"] = _DATABASE_DOWN
    else:
        log.error("unexpected error in a GraphQL resolver at %s", error.path, exc_info=original)
        formatted["message"] = _UNEXPECTED
    return formatted


def _refused(code: str, message: str, **extensions: Any) -> Response:
    """An answer replacing a query's: no data, one error (the request's fault: ask for less)."""
    body = {"data": None, "errors": [{"message": message, "extensions": {"code": code, **extensions}}]}
    return Response(orjson.dumps(body), status_code=400, media_type="application/json")


def _timed_out(error: GraphQLError) -> bool:
    """Whether PostgreSQL cancelled a statement at the request's time budget (statement_timeout)."""
    original = error.original_error
    return isinstance(original, OperationalError) and getattr(original.orig, "sqlstate", None) == "57014"


def _limit_statements(session: Session, budget: float) -> None:
    """Give every transaction ``session`` begins a statement timeout of ``budget``: set as it begins, so a request
    whose resolvers never use the session (search reads through its backend) pays no round trip for it."""
    timeout = {"ms": str(int(budget * 1000))}

    def begun(_session: Session, _transaction: Any, connection: Connection) -> None:
        connection.execute(text("SELECT set_config('statement_timeout', :ms, true)"), timeout)

    event.listen(session, "after_begin", begun)


async def _answer(
    request: Request, query: str, variables: dict[str, Any] | None, operation: str | None, post: bool
) -> Response:
    """The cached answer of a catalog read (:mod:`headwater.graphql.answers`: no thread hop, no session), or the
    operation run in a worker thread, its answer cached when it is one."""
    cache: DatasetCache = request.app.state.dataset_cache
    key = answer_key(principal_of(request), query, variables, operation)
    if key is not None and (hit := cache.get(key)) is not None:
        return Response(hit[1], media_type="application/json")
    generation = cache.generation()  # taken before the read: an answer overlapping a change is not kept
    async with db_slot(request):
        response, clean = await run_in_threadpool(_execute, request, query, variables, operation, post)
    if key is not None and clean:
        cache.put(key, generation, "", bytes(response.body))
    return response


def _execute(
    request: Request, query: str, variables: dict[str, Any] | None, operation: str | None, post: bool
) -> tuple[Response, bool]:
    """The operation's answer, and whether it ran and answered without an error (typed error results are data)."""
    state = request.app.state
    settings = state.settings
    budget = settings.graphql_time_budget
    over_budget = (
        f"the query ran longer than its time budget of {budget:g} s (HEADWATER_GRAPHQL_TIME_BUDGET) and was "
        "stopped; nothing it did is kept: ask for less (smaller pages, fewer nested lists)"
    )
    with session_scope(state.sessionmaker) as session:
        if session.get_bind().dialect.name == "postgresql":  # no single statement outlives the budget either
            _limit_statements(session, budget)
        context = Context(
            session=session,
            settings=settings,
            search_backend=state.search_backend,
            principal=principal_of(request),
            max_cost=settings.graphql_max_cost,
            deadline=time.monotonic() + budget,
            time_budget=budget,
        )
        try:
            result = schema.execute_sync(
                query,
                variable_values=variables,
                context_value=context,
                operation_name=operation,
                allowed_operation_types=_ALL if post else _QUERIES,
            )
        except InvalidOperationTypeError:
            refusal = error_body("method_not_allowed", "mutations are accepted only with POST; send this one by POST")
            return Response(orjson.dumps(refusal), status_code=405, media_type="application/json"), False
        except TimeBudgetExceeded:
            session.rollback()
            return _refused("time_budget_exceeded", over_budget, budget=budget), False
        errors = result.errors or []
        if any(_timed_out(e) for e in errors):
            session.rollback()
            return _refused("time_budget_exceeded", over_budget, budget=budget), False
        data = result.data
        if any(_unexpected(e) for e in errors):
            session.rollback()  # nothing of this request is kept, so no data is answered either
            data = None
        body: dict[str, Any] = {"data": data}
        if errors:
            body["errors"] = [_error(e) for e in errors]
        answer = orjson.dumps(body)
        limit = settings.graphql_max_result_bytes
        if len(answer) > limit:
            session.rollback()
            too_large = _refused(
                "result_too_large",
                f"the answer is {len(answer):,} bytes, more than the {limit:,} allowed "
                "(HEADWATER_GRAPHQL_MAX_RESULT_BYTES); nothing it did is kept: ask for smaller pages or fewer fields",
                size=len(answer),
                limit=limit,
            )
            return too_large, False
    # Nothing ran (a syntax or validation error, a query refused for its cost): the request's fault, 400.
    status = 400 if result.data is None and errors and all(e.original_error is None for e in errors) else 200
    return Response(answer, status_code=status, media_type="application/json"), status == 200 and not errors


def _request_of(document: Any) -> tuple[str, dict[str, Any] | None, str | None]:
    """``query``, ``variables`` and ``operationName`` of a GraphQL request document, checked."""
    if not isinstance(document, dict):
        raise InvalidInput('a GraphQL request is a JSON object: {"query": "...", "variables": {...}}')
    query, variables, operation = document.get("query"), document.get("variables"), document.get("operationName")
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput(
            "the request has no query: send the GraphQL document as a string in 'query'", detail={"field": "query"}
        )
    if variables is not None and not isinstance(variables, dict):
        raise InvalidInput(
            "'variables' must be a JSON object of variable names to values", detail={"field": "variables"}
        )
    if operation is not None and not isinstance(operation, str):
        raise InvalidInput("'operationName' must be a string", detail={"field": "operationName"})
    return query, variables, operation


@graphql_router.post(
    "/graphql",
    summary="Run a GraphQL query or mutation",
    response_model=None,
    responses=_GRAPHQL_RESPONSES,
    openapi_extra=_POST_BODY,
    dependencies=SIGNED_IN,
)
async def post_graphql(request: Request) -> Response:
    """A GraphQL request as JSON: ``{"query": ..., "variables": {...}, "operationName": ...}``."""
    # Only JSON: a browser sends a text/plain or form POST to another site without asking it first (no CORS
    # preflight), so accepting those would let any web page run mutations with a signed-in user's cookies.
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in ("application/json", "application/graphql-response+json"):
        body = error_body(
            "unsupported_media_type", f"send the request as application/json, not {media_type or 'no content type'}"
        )
        return Response(orjson.dumps(body), status_code=415, media_type="application/json")
    raw = await request.body()
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}", detail={"field": "body"}) from None
    query, variables, operation = _request_of(document)
    return await _answer(request, query, variables, operation, True)


@graphql_router.get(
    "/graphql",
    summary="Run a GraphQL query (no mutations), or open GraphiQL",
    response_model=None,
    responses={
        200: {
            "description": "The query's result, or (no query given) the GraphiQL page",
            "content": {**_GRAPHQL_RESPONSES[200]["content"], "text/html": {}},
        },
        400: _GRAPHQL_RESPONSES[400],
        405: {
            "description": "A mutation sent with GET",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        },
        503: {"description": "GraphiQL's files are not installed (no query given)", "content": {"text/html": {}}},
    },
    dependencies=SIGNED_IN,
)
async def get_graphql(
    request: Request,
    query: Annotated[str | None, Query(max_length=100_000)] = None,
    variables: Annotated[str | None, Query(max_length=100_000)] = None,
    operation_name: Annotated[str | None, Query(alias="operationName", max_length=1024)] = None,
) -> Response:
    """Without ``query`` (a browser): the GraphiQL IDE. With it: the query, ``variables`` as a JSON string."""
    if query is None:
        return graphiql_page()
    try:
        parsed = orjson.loads(variables) if variables else None
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"variables is not valid JSON: {exc}", detail={"field": "variables"}) from None
    query, parsed, operation = _request_of({"query": query, "variables": parsed, "operationName": operation_name})
    return await _answer(request, query, parsed, operation, False)
