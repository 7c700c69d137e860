"""GraphQL's error results: the ``Error`` interface, one type per kind of domain error, and the mapping to them.

Errors are results, not exceptions (``DatasetResult = Dataset | NotFoundError | ...``): each root field runs in a
savepoint (a query's only root field, in the transaction itself: :func:`answers_errors`) that turns any :class:`~headwater.errors.HeadwaterError` (or a value the
database refuses) into its typed result, so each union names every error type, and a client's
``... on Error { message code field }`` catches whatever it is. The mapping is total: an error maps by its HTTP
status (:data:`ERROR_TYPES`), and a test checks every subclass of ``HeadwaterError`` has a status listed there.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, TypeVar, cast

import strawberry
from graphql import FieldNode, OperationType
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from headwater.api import unstorable_reason
from headwater.auth import audit
from headwater.auth.actions import Action
from headwater.auth.policy import Resource, check, decide
from headwater.errors import HeadwaterError

__all__ = [
    "ERROR_TYPES",
    "ConflictError",
    "Error",
    "ForbiddenError",
    "InvalidInputError",
    "NotFoundError",
    "PreconditionFailedError",
    "UnauthenticatedError",
    "UnavailableError",
    "answers_errors",
    "error_of",
    "error_type_of",
    "result",
]

F = TypeVar("F", bound=Callable[..., Any])
# How a root field acting on one thing loads it for the permission check: from the session and the field's
# arguments (by name), as REST's ``allow(action, owned_by=...)`` does from the path.
OwnedBy = Callable[[Session, dict[str, Any]], Resource]


@strawberry.interface
class Error:
    """Why a field could not be answered: ``message`` says what to change; ``field`` names the argument at fault."""

    message: str
    code: str
    field: str | None


@strawberry.type
class NotFoundError(Error):
    """The named dataset, column, job or run does not exist."""


@strawberry.type
class InvalidInputError(Error):
    """An argument is invalid: out of range, malformed, contradicting another, or refused (a secret reference, an
    address egress forbids)."""


@strawberry.type
class ConflictError(Error):
    """The request contradicts current state (a duplicate job id, a job that has already ended, a user at their
    active-job limit: code too_many_requests, ...)."""


@strawberry.type
class PreconditionFailedError(Error):
    """``expectedRevision`` is stale (or missing): someone else changed the dataset first; read it again."""


@strawberry.type
class UnauthenticatedError(Error):
    """The request carries no credential (or one that is refused) and this field needs a signed-in principal."""


@strawberry.type
class ForbiddenError(Error):
    """The signed-in principal lacks the permission this field needs; ``message`` names it."""


@strawberry.type
class UnavailableError(Error):
    """A backend (the search index, the database, a source, a connector) cannot answer now."""


# The GraphQL error type of each HTTP status a HeadwaterError carries. 422 is a body REST could parse but not
# accept: in GraphQL an invalid argument. 428 (a guarded write sent without its revision) is a failed
# precondition here too; its ``code`` (precondition_required) tells the two apart. 429 (a limit reached, such as a
# user's active jobs) contradicts current state until something ends: a conflict whose ``code`` is
# too_many_requests. Every 5xx is a backend that cannot answer.
ERROR_TYPES: dict[int, type[Error]] = {
    400: InvalidInputError,
    401: UnauthenticatedError,
    403: ForbiddenError,
    422: InvalidInputError,
    404: NotFoundError,
    409: ConflictError,
    412: PreconditionFailedError,
    428: PreconditionFailedError,
    429: ConflictError,
    500: UnavailableError,
    501: UnavailableError,
    502: UnavailableError,
    503: UnavailableError,
}


def error_type_of(kind: type[HeadwaterError]) -> type[Error]:
    """The GraphQL error type a domain error class is answered as."""
    return ERROR_TYPES[kind.status_code]


def error_of(exc: HeadwaterError) -> Error:
    """The typed GraphQL result of a domain error."""
    where = exc.detail.get("field") if isinstance(exc.detail, dict) else None
    kind = ERROR_TYPES.get(exc.status_code, UnavailableError)
    return kind(message=exc.message, code=exc.code, field=str(where) if where is not None else None)


def _alone(info: strawberry.Info) -> bool:
    """Whether this root field is the only field of a query: nothing runs after it in the transaction, so a failure
    is undone by rolling the transaction back (:func:`_undo_alone`) and it needs no savepoint (two round trips)."""
    operation = info.operation
    selections = operation.selection_set.selections
    return operation.operation is OperationType.QUERY and len(selections) == 1 and isinstance(selections[0], FieldNode)


def _undo_alone(info: strawberry.Info) -> None:
    """Undo what a failed lone query field did (its savepoint's rollback, when it ran in one)."""
    if _alone(info):
        info.context.session.rollback()


def answers_errors(action: Action, *, owned_by: OwnedBy | None = None) -> Callable[[F], F]:
    """Declare the permission a root field needs, and run it in a savepoint: a refusal, a domain error (or a
    value the database refuses) rolls it back and becomes the field's typed error result.

    With ``owned_by``, the thing the field acts on is loaded and decided on too: its owners may act without a
    role granting ``action``; a thing that does not exist is NotFoundError, never ForbiddenError.
    """

    def declare(resolver: F) -> F:
        @functools.wraps(resolver)
        def run(*args: Any, **kwargs: Any) -> Any:
            info: strawberry.Info = kwargs["info"]
            if info.operation.operation is OperationType.MUTATION:  # one audit entry (headwater/auth/audit.py)
                audit.note_mutation(info.context.session, action, info.field_name)
            principal = info.context.principal
            try:
                if owned_by is None or not principal.authenticated or decide(principal, action):
                    check(principal, action)  # a role decides; anonymous is refused before any look-up
                else:  # perhaps ownership grants it
                    check(principal, action, owned_by(info.context.session, kwargs))
                if _alone(info):
                    return resolver(*args, **kwargs)
                with info.context.session.begin_nested():
                    return resolver(*args, **kwargs)
            except HeadwaterError as exc:
                _undo_alone(info)
                audit.settle(info.context.session, exc.status_code)
                return error_of(exc)
            except DataError as exc:
                _undo_alone(info)
                audit.settle(info.context.session, 400)
                return InvalidInputError(
                    message=f"an argument holds a value the database cannot store: {unstorable_reason(exc)}",
                    code="invalid_value",
                    field=None,
                )

        run.action = action  # type: ignore[attr-defined]  # read by tests/auth/test_every_edge_declares.py
        return cast(F, run)

    return declare


def result(name: str, kind: Any) -> Any:
    """The union ``name`` of a root field's answer ``kind`` and every error type."""
    return Annotated[
        kind
        | NotFoundError
        | InvalidInputError
        | ConflictError
        | PreconditionFailedError
        | UnauthenticatedError
        | ForbiddenError
        | UnavailableError,
        strawberry.union(name),
    ]
