"""Role bindings: which roles a user, a service account or a group holds, and the roles of a principal."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from headwater.auth.actions import Role
from headwater.auth.models import RoleBinding, SubjectKind
from headwater.errors import Conflict, NotFound
from headwater.settings import Settings

__all__ = ["bind", "list_bindings", "roles_of", "unbind"]


def roles_of(
    session: Session, settings: Settings, *, kind: SubjectKind, name: str, groups: Collection[str]
) -> frozenset[Role]:
    """The roles of a principal: the default role, the admins the settings name, and its bindings (its own and
    its groups')."""
    roles: set[Role] = set()
    if settings.auth_default_role != "none":
        roles.add(Role(settings.auth_default_role))
    subjects = {f"{kind.value}:{name}", *(f"group:{group}" for group in groups)}
    if subjects.intersection(settings.auth_admins):
        roles.add(Role.ADMIN)
    clauses = [(RoleBinding.subject_kind == kind.value) & (RoleBinding.subject == name)]
    if groups:
        clauses.append((RoleBinding.subject_kind == SubjectKind.GROUP.value) & RoleBinding.subject.in_(list(groups)))
    roles.update(Role(role) for role in session.scalars(select(RoleBinding.role).where(or_(*clauses))))
    return frozenset(roles)


def bind(session: Session, *, kind: SubjectKind, subject: str, role: Role, by: str) -> RoleBinding:
    """Grant ``role`` to ``subject``."""
    existing = session.scalar(select(RoleBinding).filter_by(subject_kind=kind.value, subject=subject, role=role.value))
    if existing is not None:
        raise Conflict(f"{kind.value} {subject!r} already has the role {role.value!r}")
    binding = RoleBinding(subject_kind=kind.value, subject=subject, role=role.value, created_by=by)
    session.add(binding)
    session.flush()
    return binding


def unbind(session: Session, binding_id: int) -> RoleBinding:
    """Take back a role binding."""
    binding = session.get(RoleBinding, binding_id)
    if binding is None:
        raise NotFound(f"no role binding {binding_id}; `GET /api/v1/role-bindings` lists them")
    session.delete(binding)
    session.flush()
    return binding


def list_bindings(session: Session, *, limit: int = 500) -> Sequence[RoleBinding]:
    """Every role binding, oldest first."""
    return session.scalars(select(RoleBinding).order_by(RoleBinding.id).limit(limit)).all()
