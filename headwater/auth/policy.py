"""The one policy function: may this principal take this action (on this resource)?

Roles grant actions (:data:`headwater.auth.actions.ROLE_ACTIONS`). Ownership adds to them: a dataset's owners
(users or groups) may edit its metadata without the editor role; a job's user may kill it and read its logs.
Restriction takes away: a dataset restricted to groups is visible only to their members and to admins.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from headwater.auth.actions import Action
from headwater.auth.principal import Principal
from headwater.errors import Forbidden, NotFound, Unauthenticated

__all__ = ["Audience", "Resource", "audience_of", "check", "decide", "may_see"]

# Actions an owner of the resource may take without a role that grants them.
_OWNER_ACTIONS = frozenset(
    {Action.CATALOG_EDIT, Action.CATALOG_RESTRICT, Action.JOBS_KILL, Action.JOBS_READ, Action.JOBS_LOGS}
)

Audience = frozenset[str] | None
"""Whom a reader counts as when restricted datasets are filtered: its name and its groups, or None for a reader
who sees every dataset (an admin, the local admin, internal callers)."""


@dataclass(frozen=True)
class Resource:
    """What a decision needs to know of the thing acted on: who owns it (users or groups), and which groups it
    is restricted to (empty: not restricted)."""

    kind: str
    name: str
    owners: Collection[str] = ()
    restricted_to: Collection[str] = ()
    missing: str = ""  # what a missing one is answered with (``no dataset with id 5``), said too of a hidden one


def may_see(principal: Principal, restricted_to: Collection[str]) -> bool:
    """Whether a thing restricted to ``restricted_to`` (empty: to nobody in particular) is visible."""
    return not restricted_to or principal.is_admin or principal.member_of(set(restricted_to))


def audience_of(principal: Principal) -> Audience:
    """The names ``principal`` sees restricted datasets as (None: it sees them all)."""
    if principal.is_admin:
        return None
    return frozenset({principal.name, *principal.groups})


def decide(principal: Principal, action: Action, resource: Resource | None = None) -> bool:
    """Whether ``principal`` may take ``action`` (on ``resource``)."""
    if action is Action.PUBLIC:
        return True
    if resource is not None and not may_see(principal, resource.restricted_to):
        return False
    if action in principal.actions:
        return True
    if resource is not None and action in _OWNER_ACTIONS and principal.authenticated:
        if principal.scopes is not None and action not in principal.scopes:
            return False
        return principal.member_of(set(resource.owners))
    return False


def check(principal: Principal, action: Action, resource: Resource | None = None) -> None:
    """Raise Unauthenticated (no credential) or Forbidden unless ``principal`` may take ``action``.

    A restricted resource the principal may not see is answered as not found by the caller, never as
    forbidden, so a refusal does not say it exists; this function refuses it like any other.
    """
    if decide(principal, action, resource):
        return
    if resource is not None and not may_see(principal, resource.restricted_to):
        raise NotFound(resource.missing or f"no such {resource.kind}")  # as if it did not exist: never 403
    if not principal.authenticated:
        raise Unauthenticated(f"sign in or send a bearer token: this needs the permission {action.value!r}")
    raise Forbidden(
        f"{principal.name!r} lacks the permission {action.value!r}"
        + (f" on {resource.kind} {resource.name!r}" if resource is not None else ""),
        detail={"permission": action.value},
    )
