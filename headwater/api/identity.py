"""``/api/v1/me``, ``/tokens``, ``/service-accounts``, ``/role-bindings`` and ``/audit``: the identity API.

Thin routes over :mod:`headwater.auth.service`. A revocation (a token, a disabled service account, a role
binding changed) takes effect in this process as soon as it commits (:meth:`Authenticator.forget`); other
processes see it within ``HEADWATER_AUTH_CACHE_SECONDS``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from sqlalchemy.orm import Session

from headwater.api.auth import allow
from headwater.api.deps import SessionDep
from headwater.api.pagination import Cursor, Limit, Page, page_of
from headwater.api.params import MAX_ID
from headwater.api.responses import json_response
from headwater.auth import audit, service
from headwater.auth.actions import Action, Role
from headwater.auth.models import RoleBinding
from headwater.auth.principal import Principal
from headwater.auth.schemas import (
    AuditOut,
    MeOut,
    RoleBindingCreate,
    RoleBindingOut,
    ServiceAccountCreate,
    ServiceAccountOut,
    SubjectName,
    TokenCreate,
    TokenCreated,
    TokenOut,
)

__all__ = ["identity_router", "issue_token", "withdraw_token"]

identity_router = APIRouter(prefix="/api/v1", tags=["identity"])

Self = Annotated[Principal, allow(Action.SELF)]
Admin = Annotated[Principal, allow(Action.ADMIN)]
Name = Annotated[str, Query(min_length=1, max_length=255)]


def _commit_and_forget(request: Request, session: Session, token_ids: list[int] | None) -> None:
    """Commit now, then drop cached principals (of these tokens, or all) so the change holds at once here."""
    session.commit()
    authenticator = request.app.state.authenticator
    if token_ids is None:
        authenticator.forget()
    for token_id in token_ids or ():
        authenticator.forget(token_id)


def _binding_out(binding: RoleBinding) -> RoleBindingOut:
    return RoleBindingOut(
        id=binding.id,
        subject_kind=service.api_subject(binding.subject_kind),
        subject=binding.subject,
        role=binding.role,
        created_at=binding.created_at,
        created_by=binding.created_by,
    )


@identity_router.get("/me", response_model=MeOut)
def me(principal: Self) -> MeOut:
    """Who this request acts for: name, kind, groups, roles, the actions they allow, and the token's limits."""
    return MeOut(
        name=principal.name,
        kind=principal.kind.value,
        groups=sorted(principal.groups),
        roles=sorted(principal.roles),
        actions=sorted(a for a in principal.actions if a is not Action.PUBLIC),
        scopes=sorted(principal.scopes) if principal.scopes is not None else None,
        namespaces=sorted(principal.namespaces) if principal.namespaces is not None else None,
        token_id=principal.token_id,
    )


# ------------------------------------------------------------------------------------------- tokens


def issue_token(session: Session, principal: Principal, body: TokenCreate) -> TokenCreated:
    """Make a token and name it in the request's audit entry (never its secret): the REST route's and the UI's."""
    token, secret = service.make_token(session, principal, **body.model_dump())
    audit.describe(
        session,
        target_kind="token",
        target=f"token:{token.id}",
        owner=f"{token.principal_kind}:{token.principal_name}",
        label=token.label,
        scopes=token.scopes,
        namespaces=token.namespaces,
    )
    return TokenCreated(**TokenOut.model_validate(token).model_dump(), secret=secret)


def withdraw_token(request: Request, session: Session, token_id: int, principal: Principal) -> TokenOut:
    """Revoke a token, audit it, commit, and refuse it at once in this process: the REST route's and the UI's."""
    token = service.revoke_token(session, token_id, by=principal)
    audit.describe(session, target_kind="token", target=f"token:{token.id}")
    out = TokenOut.model_validate(token)
    _commit_and_forget(request, session, [token_id])
    return out


@identity_router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenCreated)
def create_token(body: TokenCreate, principal: Self, session: SessionDep) -> Response:
    """Make an API token (one's own; an admin's for any user or service account). Its secret is in this answer
    only: it is stored as a hash."""
    out = issue_token(session, principal, body)
    return json_response(out, status_code=201, headers={"Cache-Control": "no-store"})


@identity_router.get("/tokens", response_model=Page[TokenOut])
def list_tokens(
    principal: Self,
    session: SessionDep,
    owner: Name | None = None,
    everyone: Annotated[bool, Query(alias="all")] = False,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Response:
    """One's tokens, newest first (revoked ones too, never a secret); an admin's ``owner=`` or ``all=true``."""
    page = service.list_tokens(session, principal, owner=owner, everyone=everyone, cursor=cursor, limit=limit)
    return json_response(page_of(TokenOut, page))


@identity_router.delete("/tokens/{token_id}", response_model=TokenOut)
def revoke_token(
    token_id: Annotated[int, Path(ge=1, le=MAX_ID)], request: Request, principal: Self, session: SessionDep
) -> Response:
    """Revoke a token (one's own; an admin anyone's). Refused at once here, elsewhere within the cache time."""
    return json_response(withdraw_token(request, session, token_id, principal))


# -------------------------------------------------------------------------------- service accounts


@identity_router.post("/service-accounts", status_code=status.HTTP_201_CREATED, response_model=ServiceAccountOut)
def create_service_account(body: ServiceAccountCreate, principal: Admin, session: SessionDep) -> Response:
    """Make a service account (a producer, a scheduler, CI); give it roles and tokens afterwards."""
    account = service.create_service_account(session, **body.model_dump(), by=principal.name)
    audit.describe(session, target_kind="service_account", target=f"service_account:{account.name}")
    return json_response(ServiceAccountOut.model_validate(account), status_code=201)


@identity_router.get("/service-accounts", response_model=Page[ServiceAccountOut])
def list_service_accounts(_: Admin, session: SessionDep, cursor: Cursor = None, limit: Limit = 50) -> Response:
    """Service accounts, oldest first."""
    return json_response(page_of(ServiceAccountOut, service.list_service_accounts(session, cursor=cursor, limit=limit)))


@identity_router.post("/service-accounts/{name}/disable", response_model=ServiceAccountOut)
def disable_service_account(
    name: Annotated[str, Path(min_length=1, max_length=128)], request: Request, _: Admin, session: SessionDep
) -> Response:
    """Disable a service account: every token of it is revoked."""
    account, revoked = service.disable_service_account(session, name)
    audit.describe(session, target_kind="service_account", target=f"service_account:{name}", tokens_revoked=revoked)
    out = ServiceAccountOut.model_validate(account)
    _commit_and_forget(request, session, revoked)
    return json_response(out)


# ----------------------------------------------------------------------------------- role bindings


@identity_router.post("/role-bindings", status_code=status.HTTP_201_CREATED, response_model=RoleBindingOut)
def grant_role(body: RoleBindingCreate, request: Request, principal: Admin, session: SessionDep) -> Response:
    """Grant a role to a user, a service account or a group."""
    binding = service.grant(session, **body.model_dump(), by=principal.name)
    audit.describe(
        session, target_kind="role_binding", target=f"{body.subject_kind}:{body.subject}", role=body.role.value
    )
    out = _binding_out(binding)
    _commit_and_forget(request, session, None)
    return json_response(out, status_code=201)


@identity_router.delete("/role-bindings", response_model=RoleBindingOut)
def revoke_role(
    request: Request,
    _: Admin,
    session: SessionDep,
    subject_kind: Annotated[SubjectName, Query()],
    subject: Name,
    role: Annotated[Literal["viewer", "editor", "operator", "admin"], Query()],
) -> Response:
    """Take back a role from a user, a service account or a group."""
    binding = service.revoke(session, subject_kind=subject_kind, subject=subject, role=Role(role))
    audit.describe(session, target_kind="role_binding", target=f"{subject_kind}:{subject}", role=role)
    out = _binding_out(binding)
    _commit_and_forget(request, session, None)
    return json_response(out)


@identity_router.get("/role-bindings", response_model=Page[RoleBindingOut])
def list_role_bindings(
    _: Admin,
    session: SessionDep,
    subject_kind: Annotated[SubjectName | None, Query()] = None,
    subject: Name | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Response:
    """Role bindings, oldest first."""
    page = service.list_bindings(session, subject_kind=subject_kind, subject=subject, cursor=cursor, limit=limit)
    return json_response(page_of(RoleBindingOut, page, _binding_out))


# ---------------------------------------------------------------------------------------- audit log


@identity_router.get("/audit", response_model=Page[AuditOut])
def list_audit(
    _: Annotated[Principal, allow(Action.AUDIT_READ)],
    session: SessionDep,
    actor: Name | None = None,
    action: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
    resource: Annotated[str | None, Query(min_length=1, max_length=1024)] = None,
    outcome: Annotated[Literal["ok", "refused", "failed"] | None, Query()] = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Response:
    """The audit log, newest first: who did what, on what, with which outcome. ``resource`` is a path or name,
    or a prefix of one ending in ``*``."""
    filters = service.AuditFilters(
        actor=actor, action=action, resource=resource, outcome=outcome, since=since, until=until
    )
    page = service.list_audit(session, filters, cursor=cursor, limit=limit)
    return json_response(page_of(AuditOut, page, lambda e: AuditOut.model_validate(e, from_attributes=True)))
