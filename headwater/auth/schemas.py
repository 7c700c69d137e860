"""Requests and answers of the identity API: who am I, API tokens, service accounts, role bindings, the audit log."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from headwater.auth.actions import Action, Role

__all__ = [
    "AuditOut",
    "MeOut",
    "RoleBindingCreate",
    "RoleBindingOut",
    "ServiceAccountCreate",
    "ServiceAccountOut",
    "SubjectName",
    "TokenCreate",
    "TokenCreated",
    "TokenOut",
]

PrincipalName = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\s\x00]+$")]
SubjectName = Literal["user", "service_account", "group"]
NamespaceName = Annotated[str, Field(min_length=1, max_length=512)]


class MeOut(BaseModel):
    """The principal of this request and what it may do."""

    name: str
    kind: str
    groups: list[str]
    roles: list[Role]
    actions: list[Action]
    scopes: list[Action] | None
    namespaces: list[str] | None
    token_id: int | None


class TokenCreate(BaseModel):
    """A new API token: one's own, or (admin) a named user's or service account's."""

    model_config = ConfigDict(extra="forbid")

    label: Annotated[str, Field(min_length=1, max_length=255)]
    expires_at: dt.datetime | None = None
    scopes: Annotated[list[Action], Field(max_length=len(Action))] | None = None
    namespaces: Annotated[list[NamespaceName], Field(min_length=1, max_length=100)] | None = None
    user: PrincipalName | None = None
    service_account: PrincipalName | None = None


class TokenOut(BaseModel):
    """A token as listed: never its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    prefix: str
    label: str
    principal_kind: str
    principal_name: str
    scopes: list[str] | None
    namespaces: list[str] | None
    created_at: dt.datetime
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class TokenCreated(TokenOut):
    """A token just made, with its secret: shown this once, stored only as a hash."""

    secret: str


class ServiceAccountCreate(BaseModel):
    """A new service account (a producer, a scheduler, CI)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    description: Annotated[str, Field(max_length=2000)] | None = None
    groups: Annotated[list[Annotated[str, Field(min_length=1, max_length=255)]], Field(max_length=100)] = []


class ServiceAccountOut(BaseModel):
    """A service account."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    description: str | None
    groups: list[str]
    disabled: bool
    created_at: dt.datetime
    created_by: str


class RoleBindingCreate(BaseModel):
    """A role granted to a user, a service account or a group."""

    model_config = ConfigDict(extra="forbid")

    subject_kind: SubjectName
    subject: PrincipalName
    role: Role


class RoleBindingOut(BaseModel):
    """A role binding."""

    id: int
    subject_kind: SubjectName
    subject: str
    role: Role
    created_at: dt.datetime
    created_by: str


class AuditOut(BaseModel):
    """One audit entry: who, which action, on what, with which outcome, when, from where."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: dt.datetime
    actor: str
    actor_kind: str
    token_id: int | None
    action: str
    method: str
    target_kind: str
    target: str
    outcome: str
    address: str | None
    request_id: str | None
    summary: dict[str, object]
