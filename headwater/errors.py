"""The one exception hierarchy of Headwater; each class maps to one HTTP status and one error code.

Services raise these; the HTTP edge (``headwater.app``) turns them into JSON error bodies, and the
GraphQL layer (``headwater.graphql.errors``) into the typed error result of their status. A subclass with a
status no GraphQL error type is listed for fails ``tests/graphql/test_graphql_contract.py``. Messages name the
offending field and value.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Conflict",
    "HeadwaterError",
    "InvalidInput",
    "NotFound",
    "PreconditionFailed",
    "PreconditionRequired",
    "DatabaseNotReady",
    "Forbidden",
    "TooManyRequests",
    "IdentityProviderUnavailable",
    "JobFilesUnavailable",
    "Unauthenticated",
]


class HeadwaterError(Exception):
    """Base of every error Headwater raises on purpose.

    A subclass names its HTTP status and error code in its class line:
    ``class NotFound(HeadwaterError, status_code=404, code="not_found")``.
    """

    status_code: int = 500
    code: str = "internal_error"

    def __init_subclass__(cls, *, status_code: int | None = None, code: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if status_code is not None:
            cls.status_code = status_code
        if code is not None:
            cls.code = code

    def __init__(self, message: str, *, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or {}


class InvalidInput(HeadwaterError, status_code=400, code="invalid_input"):
    """The request is well-formed but asks for something impossible (bad cursor, bad filter value)."""


class Unauthenticated(HeadwaterError, status_code=401, code="unauthenticated"):
    """No credential was sent, or the one sent is expired, revoked, forged or for another audience.

    The HTTP edge answers it with ``WWW-Authenticate: Bearer``; its message never says which check failed beyond
    what the client can act on.
    """


class Forbidden(HeadwaterError, status_code=403, code="forbidden"):
    """The principal is known but lacks the permission (named in ``detail["permission"]``)."""


class NotFound(HeadwaterError, status_code=404, code="not_found"):
    """The named thing does not exist (or is deleted and the caller did not ask for deleted ones)."""


class Conflict(HeadwaterError, status_code=409, code="conflict"):
    """The request contradicts current state: a duplicate name, a source kind that forbids the write."""


class PreconditionFailed(HeadwaterError, status_code=412, code="precondition_failed"):
    """An If-Match ETag no longer matches: someone else changed the resource first."""


class PreconditionRequired(HeadwaterError, status_code=428, code="precondition_required"):
    """A guarded write was sent without If-Match."""


class TooManyRequests(HeadwaterError, status_code=429, code="too_many_requests"):
    """A limit is reached (a user's active jobs): the message names it; retry after ``retry_after`` seconds, which
    the HTTP edge sends as ``Retry-After``."""

    def __init__(self, message: str, *, retry_after: int, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message, detail=detail)
        self.retry_after = retry_after


class DatabaseNotReady(HeadwaterError, status_code=503, code="database_not_ready"):
    """The database is unreachable or not migrated to the code's revision."""


class IdentityProviderUnavailable(HeadwaterError, status_code=503, code="identity_provider_unavailable"):
    """The OIDC issuer (discovery, keys or token endpoint) cannot be reached, so a JWT or a sign-in cannot be
    checked now; it is refused, never let in unverified."""


class JobFilesUnavailable(HeadwaterError, status_code=503, code="job_files_unavailable"):
    """A job's directory is on another host whose worker did not answer in time, and the file is not in the
    database archive either: the message names the host and what is archived."""
