"""Authentication at the edge, and the permission every route declares.

:class:`Authenticate` (an ASGI middleware, outside the dataset cache) gives every request a request id and a
principal in ``request.state``; a refused credential is answered 401 there. :func:`allow` is the dependency a
route declares its action with: ``dependencies=[allow(Action.CATALOG_READ)]``, or
``principal: Annotated[Principal, allow(Action.JOBS_SUBMIT)]`` when the route needs to know who. A route with
none fails tests/auth/test_every_edge_declares.py.
"""

from __future__ import annotations

import itertools
import re
import secrets
from typing import Any

import anyio.to_thread
from fastapi import Depends, Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from headwater.api.responses import challenge, error_body
from headwater.auth.actions import Action
from headwater.auth.audit import Actor
from headwater.auth.authenticate import Authenticator, is_loopback
from headwater.auth.policy import check
from headwater.auth.principal import ANONYMOUS, Principal
from headwater.errors import HeadwaterError

__all__ = ["Authenticate", "actor_of", "allow", "declared_action", "principal_of"]

REQUEST_ID_HEADER = "X-Request-Id"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# Request ids: a random prefix per process and a counter, unique across processes without a syscall per request.
_ID_PREFIX = secrets.token_hex(6) + "-"
_ids = itertools.count(1)


class Authenticate:
    """Set ``scope["state"]["principal"]`` and ``["request_id"]`` on every HTTP request; answer 401 for a bad
    credential. A cached credential costs no thread hop."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator
        # Local mode trusts whoever connects, so it must be only this machine: a server started as
        # `uvicorn --factory headwater.app:create_app --host 0.0.0.0` never saw the address it binds.
        self.local_only = authenticator.mode == "local"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # A plain scan of the raw headers: this runs on every request, cache hits included.
        authorization: str | None = None
        request_id: str | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"x-request-id":
                offered = value.decode("latin-1")
                if _SAFE_REQUEST_ID.fullmatch(offered):
                    request_id = offered
        if request_id is None:
            request_id = f"{_ID_PREFIX}{next(_ids):x}"
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), id_header]
            await send(message)

        if self.local_only and not _from_loopback(scope):
            response = JSONResponse(
                error_body(
                    "local_mode",
                    "this Headwater runs without authentication and answers this machine only; its operator can "
                    "configure OIDC or API tokens (docs/security/identity.md)",
                ),
                status_code=403,
            )
            await response(scope, receive, send_with_id)
            return
        principal = self.authenticator.cached(authorization)
        if principal is None:
            try:
                principal = await anyio.to_thread.run_sync(self.authenticator.authenticate, authorization)
            except HeadwaterError as exc:  # 401 for a refused credential; 503 when its issuer cannot be asked
                headers = challenge(exc) or ({"Retry-After": "5"} if exc.status_code == 503 else None)
                response = JSONResponse(error_body(exc.code, exc.message), status_code=exc.status_code, headers=headers)
                await response(scope, receive, send_with_id)
                return
        if principal is ANONYMOUS and "principal" in state:
            principal = state["principal"]  # the UI's session middleware signed this request in
        state["principal"] = principal
        await self.app(scope, receive, send_with_id)


def _from_loopback(scope: Scope) -> bool:
    client = scope.get("client")
    return client is None or is_loopback(client[0])


def principal_of(request: Request) -> Principal:
    """The principal :class:`Authenticate` found for this request (anonymous when the middleware is absent)."""
    principal: Principal = getattr(request.state, "principal", ANONYMOUS)
    return principal


def actor_of(request: Request) -> Actor:
    """Who is making this request's changes, for the audit log."""
    return Actor(
        principal=principal_of(request),
        address=request.client.host if request.client else None,
        request_id=getattr(request.state, "request_id", None),
    )


def allow(action: Action) -> Any:
    """The dependency declaring that a route needs ``action``: 401 without a credential, 403 without the
    permission. It answers the principal, and records the action for the audit log."""

    def authorised(request: Request) -> Principal:
        principal = principal_of(request)
        check(principal, action)
        request.state.action = action
        return principal

    authorised.action = action  # type: ignore[attr-defined]  # read by declared_action
    authorised.__name__ = f"allow_{action.value.replace('.', '_')}"
    return Depends(authorised)


def declared_action(call: Any) -> Action | None:
    """The action a dependency made by :func:`allow` declares (None for any other dependency)."""
    action = getattr(call, "action", None)
    return action if isinstance(action, Action) else None
