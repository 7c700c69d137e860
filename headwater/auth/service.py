"""The identity service: tokens made and revoked, service accounts, role bindings and the audit log's pages.

Routes (headwater/api/identity.py) and the CLI (headwater/cli/identity.py) call these; they flush, never commit.
Whoever acts is a Principal; a token never carries an action or namespace its maker lacks.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from headwater.auth import epoch
from headwater.auth.actions import Action, Role
from headwater.auth.models import ApiToken, AuditEntry, RoleBinding, ServiceAccount, SubjectKind
from headwater.auth.policy import check
from headwater.auth.principal import Principal, PrincipalKind
from headwater.auth.roles import bind
from headwater.auth.tokens import check_scopes, create_token
from headwater.db import utcnow
from headwater.errors import Conflict, Forbidden, InvalidInput, NotFound
from headwater.pagination import PageResult, SortKey, paginate

__all__ = [
    "AuditFilters",
    "api_subject",
    "create_service_account",
    "disable_service_account",
    "grant",
    "list_audit",
    "list_bindings",
    "list_service_accounts",
    "list_tokens",
    "make_token",
    "revoke",
    "revoke_token",
]

_BY_ID = {"id": SortKey(AuditEntry.id, AuditEntry.id, "int")}
_SUBJECTS = {"user": SubjectKind.USER, "service_account": SubjectKind.SERVICE, "group": SubjectKind.GROUP}


def api_subject(kind: SubjectKind | str) -> str:
    """The API's name of a subject kind (``service`` is ``service_account`` there)."""
    return "service_account" if kind == SubjectKind.SERVICE else str(kind)


def make_token(
    session: Session,
    by: Principal,
    *,
    label: str,
    expires_at: dt.datetime | None = None,
    scopes: list[Action] | None = None,
    namespaces: list[str] | None = None,
    user: str | None = None,
    service_account: str | None = None,
) -> tuple[ApiToken, str]:
    """A new token and its secret: ``by``'s own, or (admin) a user's or a service account's."""
    if user is not None and service_account is not None:
        raise InvalidInput("name a user or a service account, not both", detail={"field": "service_account"})
    groups: list[str] = []
    if service_account is not None:
        check(by, Action.ADMIN)
        account = session.scalar(select(ServiceAccount).filter_by(name=service_account))
        if account is None:
            raise NotFound(f"no service account {service_account!r}", detail={"field": "service_account"})
        if account.disabled:
            raise Conflict(f"service account {service_account!r} is disabled", detail={"field": "service_account"})
        kind, name, groups = SubjectKind.SERVICE, account.name, list(account.groups)
    elif user is not None and user != by.name:
        check(by, Action.ADMIN)
        kind, name = SubjectKind.USER, user
    elif by.kind in (PrincipalKind.USER, PrincipalKind.SERVICE):
        kind = SubjectKind.SERVICE if by.kind is PrincipalKind.SERVICE else SubjectKind.USER
        name, groups = by.name, sorted(by.groups)
    else:
        raise InvalidInput(
            f"{by.name!r} has no tokens of its own: name the user or service account the token is for",
            detail={"field": "user"},
        )
    # A token made with a scoped token is no wider than it: scopes and namespaces default to the maker's.
    wanted = set(scopes) if scopes is not None else (set(by.scopes) if by.scopes is not None else None)
    check_scopes(by.actions, wanted)
    if by.namespaces is not None:
        beyond = sorted(set(namespaces or ()) - by.namespaces)
        if namespaces is None:
            namespaces = sorted(by.namespaces)
        elif beyond:
            raise Forbidden(
                f"a token cannot write lineage in namespaces you may not: {', '.join(beyond)}",
                detail={"field": "namespaces"},
            )
    return create_token(
        session,
        kind=kind,
        name=name,
        label=label,
        groups=groups,
        scopes=wanted,
        namespaces=namespaces,
        expires_at=expires_at,
    )


def list_tokens(
    session: Session, by: Principal, *, owner: str | None, everyone: bool, cursor: str | None, limit: int
) -> PageResult[ApiToken]:
    """Tokens, newest first: ``by``'s own; (admin) ``owner``'s or everyone's. Revoked ones are listed too."""
    query = select(ApiToken)
    if everyone or (owner is not None and owner != by.name):
        check(by, Action.ADMIN)
        if owner is not None:
            query = query.where(ApiToken.principal_name == owner)
    else:
        kind = SubjectKind.SERVICE if by.kind is PrincipalKind.SERVICE else SubjectKind.USER
        query = query.where(ApiToken.principal_name == by.name, ApiToken.principal_kind == kind.value)
    sorts = {"id": SortKey(ApiToken.id, ApiToken.id, "int")}
    return paginate(session, query, sorts=sorts, sort="-id", cursor=cursor, limit=limit)


def revoke_token(session: Session, token_id: int, *, by: Principal) -> ApiToken:
    """Revoke a token: one's own, or (admin) anyone's. Someone else's is answered as missing."""
    token = session.get(ApiToken, token_id)
    own = (
        token is not None and token.principal_name == by.name and principal_kind_matches(token.principal_kind, by.kind)
    )
    if token is None or not (own or by.is_admin):
        raise NotFound(f"no token {token_id} of yours; `GET /api/v1/tokens` lists them", detail={"field": "id"})
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
        epoch.bump(session)
    return token


def principal_kind_matches(token_kind: str, kind: PrincipalKind) -> bool:
    """Whether a token of ``token_kind`` belongs to a principal of ``kind``."""
    return token_kind == (SubjectKind.SERVICE.value if kind is PrincipalKind.SERVICE else SubjectKind.USER.value)


# ------------------------------------------------------------------------------------ service accounts


def create_service_account(
    session: Session, *, name: str, description: str | None, groups: list[str], by: str
) -> ServiceAccount:
    """A new service account (it authenticates with the tokens an admin makes for it)."""
    if session.scalar(select(ServiceAccount.id).filter_by(name=name)) is not None:
        raise Conflict(f"a service account named {name!r} exists", detail={"field": "name"})
    account = ServiceAccount(name=name, description=description, groups=sorted(set(groups)), created_by=by)
    session.add(account)
    session.flush()
    return account


def list_service_accounts(session: Session, *, cursor: str | None, limit: int) -> PageResult[ServiceAccount]:
    """Service accounts, oldest first."""
    sorts = {"id": SortKey(ServiceAccount.id, ServiceAccount.id, "int")}
    return paginate(session, select(ServiceAccount), sorts=sorts, sort="id", cursor=cursor, limit=limit)


def disable_service_account(session: Session, name: str) -> tuple[ServiceAccount, list[int]]:
    """Disable a service account and revoke its live tokens; the account and the ids of the tokens revoked."""
    account = session.scalar(select(ServiceAccount).filter_by(name=name))
    if account is None:
        raise NotFound(f"no service account {name!r}", detail={"field": "name"})
    account.disabled = True
    tokens = session.scalars(
        select(ApiToken)
        .where(ApiToken.principal_kind == SubjectKind.SERVICE.value, ApiToken.principal_name == name)
        .where(ApiToken.revoked_at.is_(None))
    ).all()
    now = utcnow()
    for token in tokens:
        token.revoked_at = now
    session.flush()
    epoch.bump(session)
    return account, [token.id for token in tokens]


# ------------------------------------------------------------------------------------ role bindings


def grant(session: Session, *, subject_kind: str, subject: str, role: Role, by: str) -> RoleBinding:
    """Grant ``role`` to a user, a service account (which must exist) or a group."""
    kind = _SUBJECTS[subject_kind]
    if kind is SubjectKind.SERVICE and session.scalar(select(ServiceAccount.id).filter_by(name=subject)) is None:
        raise NotFound(f"no service account {subject!r}", detail={"field": "subject"})
    binding = bind(session, kind=kind, subject=subject, role=role, by=by)
    epoch.bump(session)  # cached principals carry their roles: they are read again everywhere
    return binding


def revoke(session: Session, *, subject_kind: str, subject: str, role: Role) -> RoleBinding:
    """Take back ``role`` from a subject."""
    binding = session.scalar(
        select(RoleBinding).filter_by(subject_kind=_SUBJECTS[subject_kind].value, subject=subject, role=role.value)
    )
    if binding is None:
        raise NotFound(f"{subject_kind} {subject!r} has no role {role.value!r}", detail={"field": "role"})
    session.delete(binding)
    session.flush()
    epoch.bump(session)
    return binding


def list_bindings(
    session: Session, *, subject_kind: str | None, subject: str | None, cursor: str | None, limit: int
) -> PageResult[RoleBinding]:
    """Role bindings, oldest first, of one subject kind and subject when given."""
    query = select(RoleBinding)
    if subject_kind is not None:
        query = query.where(RoleBinding.subject_kind == _SUBJECTS[subject_kind].value)
    if subject is not None:
        query = query.where(RoleBinding.subject == subject)
    sorts = {"id": SortKey(RoleBinding.id, RoleBinding.id, "int")}
    return paginate(session, query, sorts=sorts, sort="id", cursor=cursor, limit=limit)


# ---------------------------------------------------------------------------------------- audit log


@dataclass(frozen=True)
class AuditFilters:
    """What an audit page is narrowed to: the actor, the action, a resource (its path or name, or a prefix of it
    ending in ``*``), the outcome and a time range."""

    actor: str | None = None
    action: str | None = None
    resource: str | None = None
    outcome: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


def list_audit(session: Session, filters: AuditFilters, *, cursor: str | None, limit: int) -> PageResult[AuditEntry]:
    """Audit entries, newest first, narrowed by ``filters``."""
    query = select(AuditEntry)
    if filters.actor is not None:
        query = query.where(AuditEntry.actor == filters.actor)
    if filters.action is not None:
        query = query.where(AuditEntry.action == filters.action)
    if filters.resource is not None:
        if filters.resource.endswith("*"):
            prefix = filters.resource[:-1]
            query = query.where(AuditEntry.target.startswith(prefix, autoescape=True))
        else:
            query = query.where(AuditEntry.target == filters.resource)
    if filters.outcome is not None:
        query = query.where(AuditEntry.outcome == filters.outcome)
    if filters.since is not None:
        query = query.where(AuditEntry.at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEntry.at < filters.until)
    return paginate(session, query, sorts=_BY_ID, sort="-id", cursor=cursor, limit=limit)
