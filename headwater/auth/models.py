"""The tables of identity: service accounts, API tokens, role bindings, and the audit log.

People are not stored: they sign in through OIDC, which names them and their groups. Service accounts are
created here. Roles are bound to a user, a service account or a group by name (``role_bindings``). A token is
stored as the SHA-256 of its secret (the secret is 256 random bits, so a slow hash would add nothing); it is
shown once, when it is created.
"""

from __future__ import annotations

import enum

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from headwater.auth.actions import Role
from headwater.db import Base, BigInt, JSONType
from headwater.orm import BigIntPK, UTCNow, UTCTime, one_of

__all__ = ["ApiToken", "AuditEntry", "AuthEpoch", "RoleBinding", "ServiceAccount", "SubjectKind"]


class SubjectKind(enum.StrEnum):
    """What a role binding names."""

    USER = "user"
    SERVICE = "service"
    GROUP = "group"


class ServiceAccount(Base):
    """A non-human principal (a producer, a scheduler, CI) that authenticates with API tokens."""

    __tablename__ = "service_accounts"

    id: Mapped[BigIntPK]
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(String(2000))
    groups: Mapped[list[str]] = mapped_column(JSONType, default=list)
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[UTCNow]
    created_by: Mapped[str] = mapped_column(String(255))


class ApiToken(Base):
    """A bearer token of a user or a service account: hashed, optionally expiring, scoped and limited to
    OpenLineage namespaces."""

    __tablename__ = "api_tokens"
    __table_args__ = (one_of("principal_kind", (SubjectKind.USER, SubjectKind.SERVICE)),)

    id: Mapped[BigIntPK]
    # The first characters of the token, so a person can tell tokens apart in a list; not enough to use one.
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(255))
    principal_kind: Mapped[str] = mapped_column(String(16))
    principal_name: Mapped[str] = mapped_column(String(255), index=True)
    # Groups of a user token, as the user's identity provider last reported them when the token was made.
    groups: Mapped[list[str]] = mapped_column(JSONType, default=list)
    scopes: Mapped[list[str] | None] = mapped_column(JSONType)
    namespaces: Mapped[list[str] | None] = mapped_column(JSONType)
    created_at: Mapped[UTCNow]
    expires_at: Mapped[UTCTime | None]
    last_used_at: Mapped[UTCTime | None]
    revoked_at: Mapped[UTCTime | None]


class RoleBinding(Base):
    """A role granted to a user, a service account or a group."""

    __tablename__ = "role_bindings"
    __table_args__ = (
        UniqueConstraint("subject_kind", "subject", "role"),
        one_of("subject_kind", SubjectKind),
        one_of("role", Role),
    )

    id: Mapped[BigIntPK]
    subject_kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[UTCNow]
    created_by: Mapped[str] = mapped_column(String(255))


class AuditEntry(Base):
    """One mutation: who, which action, on what, when, from where, and a summary of the change (names of the
    fields changed, never a secret's value). Written in the transaction of the change it records."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_actor", "actor", "id"),
        Index("ix_audit_log_action", "action", "id"),
        Index("ix_audit_log_target", "target_kind", "target", "id"),
        one_of("outcome", ("ok", "refused", "failed")),
    )

    id: Mapped[BigIntPK]
    at: Mapped[UTCNow]
    actor: Mapped[str] = mapped_column(String(255))
    actor_kind: Mapped[str] = mapped_column(String(16))
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(32))
    method: Mapped[str] = mapped_column(String(16))
    target_kind: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(1024))
    address: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))
    # ok: the change committed; refused: 401/403; failed: any other error (the change rolled back).
    outcome: Mapped[str] = mapped_column(String(16), default="ok")
    summary: Mapped[dict[str, object]] = mapped_column(JSONType, default=dict)


class AuthEpoch(Base):
    """One row counting the changes that take access away (a token revoked, a service account disabled, a role
    binding changed): every process polls it and forgets its cached credentials when it moves
    (:mod:`headwater.auth.epoch`), so a revocation holds everywhere within a poll, not a cache lifetime."""

    __tablename__ = "auth_epoch"

    id: Mapped[int] = mapped_column(primary_key=True)
    epoch: Mapped[int] = mapped_column(BigInt, default=0)
    changed_at: Mapped[UTCNow]
