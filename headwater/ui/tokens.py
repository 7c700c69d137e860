"""``/ui/tokens``: the signed-in principal's own API tokens, made and revoked from the browser.

The same functions as ``/api/v1/tokens`` (:func:`headwater.api.identity.issue_token` and ``withdraw_token``), so
a token made here is audited, scoped and stored (as a hash) exactly as one made through the API. Its secret is on
the answer page of the form that made it, and nowhere else: the list shows each token's prefix, never more.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import Response

from headwater.api.auth import allow
from headwater.api.deps import SessionDep
from headwater.api.identity import issue_token, withdraw_token
from headwater.api.params import MAX_ID
from headwater.auth import service
from headwater.auth.actions import Action
from headwater.auth.principal import Principal, PrincipalKind
from headwater.auth.schemas import TokenCreate, TokenOut
from headwater.errors import InvalidInput
from headwater.ui.forms import checked, see_other
from headwater.ui.routes import _page, html_errors

__all__ = ["tokens_router"]

tokens_router = APIRouter(include_in_schema=False)

Self = Annotated[Principal, allow(Action.SELF)]
TokenId = Annotated[int, Path(ge=1, le=MAX_ID)]
TOKENS_PATH = "/ui/tokens"
TOKENS_SHOWN = 100
EXPIRY_DAYS = (7, 30, 90, 365)
MAX_EXPIRY_DAYS = 3650


def _offered_scopes(principal: Principal) -> list[str]:
    """The actions a token of ``principal`` may be limited to: what it may do (a token never carries more)."""
    return sorted(a.value for a in principal.actions if a not in (Action.PUBLIC, Action.SELF))


def _own_tokens(principal: Principal) -> bool:
    """Whether ``principal`` can hold tokens (the local admin of an install without authentication cannot)."""
    return principal.kind in (PrincipalKind.USER, PrincipalKind.SERVICE)


@tokens_router.get(TOKENS_PATH)
@html_errors()
def tokens_page(request: Request, principal: Self, session: SessionDep) -> Response:
    """The principal's tokens, newest first (revoked ones too, never a secret), and the form to make one."""
    cursor = request.query_params.get("cursor") or None
    page = service.list_tokens(session, principal, owner=None, everyone=False, cursor=cursor, limit=TOKENS_SHOWN)
    return _page(
        "tokens.html",
        tokens=[TokenOut.model_validate(t) for t in page.items],
        next_cursor=page.next_cursor,
        own_tokens=_own_tokens(principal),
        scopes=_offered_scopes(principal),
        expiry_days=EXPIRY_DAYS,
    )


def _expiry(days: str | None) -> dt.datetime | None:
    text = (days or "").strip()
    if not text or text == "never":
        return None
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_EXPIRY_DAYS):
        raise InvalidInput(
            f"expires_days must be a whole number of days from 1 to {MAX_EXPIRY_DAYS}, or never; not {text[:20]!r}",
            detail={"field": "expires_days"},
        )
    return dt.datetime.now(dt.UTC) + dt.timedelta(days=int(text))


@tokens_router.post(TOKENS_PATH)
@html_errors(title="No token was made")
def create_token(
    principal: Self,
    session: SessionDep,
    label: Annotated[str | None, Form()] = None,
    expires_days: Annotated[str | None, Form()] = None,
    scope: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Make a token of one's own, named ``label``, expiring after ``expires_days`` (or never), limited to the
    ticked ``scope`` actions (none ticked: whatever its maker may do). Its secret is shown on this answer only."""
    body = checked(
        TokenCreate,
        {"label": (label or "").strip(), "expires_at": _expiry(expires_days), "scopes": scope or None},
    )
    created = issue_token(session, principal, body)
    answer = _page("token_created.html", status_code=201, token=created)
    answer.headers["Cache-Control"] = "no-store"  # the secret stays out of every cache, the browser's too
    return answer


@tokens_router.post(TOKENS_PATH + "/{token_id}/revoke")
@html_errors(title="The token was not revoked")
def revoke_token(token_id: TokenId, request: Request, principal: Self, session: SessionDep) -> Response:
    """Revoke one of one's tokens: refused at once by this server, by the others within the cache time."""
    withdraw_token(request, session, token_id, principal)
    return see_other(TOKENS_PATH)
