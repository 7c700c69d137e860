"""Identity and authorization: principals, API tokens, OIDC, roles, the one policy function, and the audit log.

:mod:`~headwater.auth.authenticate` says who sent a request; :mod:`~headwater.auth.policy` decides what they may
do (docs/security/identity.md); :mod:`~headwater.auth.audit` records what they did.
"""

from __future__ import annotations

from headwater.auth.actions import Action, Role
from headwater.auth.policy import Audience, Resource, audience_of, check, decide, may_see
from headwater.auth.principal import ANONYMOUS, LOCAL_ADMIN, Principal, PrincipalKind

__all__ = [
    "ANONYMOUS",
    "Audience",
    "LOCAL_ADMIN",
    "Action",
    "Principal",
    "PrincipalKind",
    "Resource",
    "Role",
    "audience_of",
    "check",
    "decide",
    "may_see",
]
