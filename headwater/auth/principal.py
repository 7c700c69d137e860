"""Who a request acts for: a user, a service account, the local admin of an embedded install, or nobody."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from headwater.auth.actions import ROLE_ACTIONS, Action, Role

__all__ = ["ANONYMOUS", "LOCAL_ADMIN", "Principal", "PrincipalKind"]


class PrincipalKind(enum.StrEnum):
    """How a principal was established."""

    USER = "user"  # a person: OIDC sign-in, an OIDC bearer token, or a user's API token
    SERVICE = "service"  # a service account: an API token or an OIDC client-credentials token
    LOCAL = "local"  # no authentication configured, loopback only (or HEADWATER_AUTH=none)
    ANONYMOUS = "anonymous"  # no credential was sent


@dataclass(frozen=True)
class Principal:
    """An authenticated identity and what it was granted.

    ``scopes`` narrows a token to some actions (None: all its roles allow); ``namespaces`` narrows a producer's
    token to the OpenLineage namespaces it may write lineage for (None: any).
    """

    name: str
    kind: PrincipalKind
    groups: frozenset[str] = frozenset()
    roles: frozenset[Role] = frozenset()
    scopes: frozenset[Action] | None = None
    namespaces: frozenset[str] | None = None
    token_id: int | None = None
    actions: frozenset[Action] = field(init=False)

    def __post_init__(self) -> None:
        granted: set[Action] = set()
        for role in self.roles:
            granted |= ROLE_ACTIONS[role]
        if self.kind is not PrincipalKind.ANONYMOUS:
            granted.add(Action.SELF)
        if self.scopes is not None:
            granted &= self.scopes | {Action.SELF}
        granted.add(Action.PUBLIC)
        object.__setattr__(self, "actions", frozenset(granted))

    @property
    def authenticated(self) -> bool:
        """Whether a credential (or local mode) established this principal."""
        return self.kind is not PrincipalKind.ANONYMOUS

    @property
    def is_admin(self) -> bool:
        """Whether the admin action is granted (and not scoped away)."""
        return Action.ADMIN in self.actions

    def member_of(self, names: frozenset[str] | set[str] | list[str]) -> bool:
        """Whether this principal is one of ``names`` or in one of the groups among them."""
        return self.name in names or bool(self.groups.intersection(names))


ANONYMOUS = Principal(name="anonymous", kind=PrincipalKind.ANONYMOUS)
LOCAL_ADMIN = Principal(name="local", kind=PrincipalKind.LOCAL, roles=frozenset({Role.ADMIN}))
