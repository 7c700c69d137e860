"""API tokens: made (and shown) once, stored as a hash, listed without their secret, revoked, verified.

A token reads ``hw_<43 url-safe characters>`` (256 random bits): long enough that SHA-256 is a safe way to
store it, and the prefix lets a secret scanner (and :mod:`headwater.auth.authenticate`) tell it from a JWT.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Collection, Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from headwater.auth.actions import Action
from headwater.auth.models import ApiToken, SubjectKind
from headwater.auth.principal import Principal, PrincipalKind
from headwater.db import utcnow
from headwater.errors import Forbidden, InvalidInput, NotFound

__all__ = ["TOKEN_PREFIX", "create_token", "hash_token", "list_tokens", "revoke_token", "touch", "verify_token"]

TOKEN_PREFIX = "hw_"
# last_used_at is written at most this often per token, so a busy token costs no write per request.
TOUCH_EVERY = dt.timedelta(minutes=1)


def hash_token(secret: str) -> str:
    """The stored form of a token: its SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    session: Session,
    *,
    kind: SubjectKind,
    name: str,
    label: str,
    groups: Collection[str] = (),
    scopes: Collection[Action] | None = None,
    namespaces: Collection[str] | None = None,
    expires_at: dt.datetime | None = None,
) -> tuple[ApiToken, str]:
    """A new token of the user or service account ``name``, and its secret (shown once, never stored)."""
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidInput(f"expires_at {expires_at.isoformat()} is in the past", detail={"field": "expires_at"})
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        prefix=secret[:10],
        token_hash=hash_token(secret),
        label=label,
        principal_kind=kind.value,
        principal_name=name,
        groups=sorted(set(groups)),
        scopes=sorted(action.value for action in scopes) if scopes is not None else None,
        namespaces=sorted(set(namespaces)) if namespaces is not None else None,
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    return token, secret


def list_tokens(
    session: Session, *, owner: str | None, include_revoked: bool = False, limit: int = 100
) -> Sequence[ApiToken]:
    """Tokens of ``owner`` (None: everyone's), newest first."""
    query = select(ApiToken).order_by(ApiToken.id.desc()).limit(limit)
    if owner is not None:
        query = query.where(ApiToken.principal_name == owner)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    return session.scalars(query).all()


def revoke_token(session: Session, token_id: int, *, by: Principal) -> ApiToken:
    """Revoke a token: its owner may, and admins may revoke anyone's. A token revoked twice stays revoked."""
    token = session.get(ApiToken, token_id)
    if token is None or (token.principal_name != by.name and not by.is_admin):
        # Someone else's token is answered as missing: its id says nothing about who holds it.
        raise NotFound(f"no token {token_id} of yours; `GET /api/v1/tokens` lists them")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
    return token


def verify_token(session: Session, secret: str) -> ApiToken | None:
    """The live token whose secret is ``secret``: None when unknown, revoked or expired."""
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(secret)))
    if token is None or token.revoked_at is not None:
        return None
    if token.expires_at is not None and token.expires_at <= utcnow():
        return None
    return token


def touch(session: Session, token: ApiToken) -> None:
    """Record that ``token`` was used, at most once per TOUCH_EVERY."""
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at >= TOUCH_EVERY:
        session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))


def principal_kind(token: ApiToken) -> PrincipalKind:
    """The kind of principal a token acts for."""
    return PrincipalKind.SERVICE if token.principal_kind == SubjectKind.SERVICE else PrincipalKind.USER


def check_scopes(granted: frozenset[Action], scopes: Collection[Action] | None) -> None:
    """Refuse a token asking for actions its maker does not have: a token never grants more than its maker."""
    if scopes is None:
        return
    beyond = sorted(action.value for action in set(scopes) - granted)
    if beyond:
        raise Forbidden(f"a token cannot carry permissions you lack: {', '.join(beyond)}", detail={"field": "scopes"})
