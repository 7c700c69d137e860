"""Authentication at the edge, and the permission every route declares.

:class:`Authenticate` (an ASGI middleware, outside the dataset cache) gives every request a request id and a
principal in ``request.state``; a refused credential is answered 401 there. :class:`AnonymousGate`, just inside
it, answers a request without a credential before the cache or a route sees it: 401 for the API, a redirect to
the sign-in page for the UI, unless the route it asks for is public.

:func:`allow` is the dependency a route declares its action with: ``dependencies=[allow(Action.CATALOG_READ)]``,
or ``principal: Annotated[Principal, allow(Action.JOBS_SUBMIT)]`` when the route needs to know who;
``allow(action, owned_by=loader)`` for a route acting on one thing whose owners may act without the role.
:func:`public` declares a mounted app (static files) public. A route with no declaration fails
tests/auth/test_every_edge_declares.py.
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

import anyio.to_thread
from fastapi import Depends, Request
from fastapi.routing import iter_route_contexts
from sqlalchemy.orm import Session
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from headwater.api.deps import SessionDep
from headwater.api.responses import challenge, error_body
from headwater.auth.actions import Action
from headwater.auth.audit import READ_ACTIONS, Actor, unaudited
from headwater.auth.authenticate import Authenticator, is_loopback
from headwater.auth.policy import Resource, check, decide
from headwater.auth.principal import ANONYMOUS, Principal
from headwater.errors import HeadwaterError, Unauthenticated

__all__ = [
    "LOGIN_PATH",
    "AnonymousGate",
    "Authenticate",
    "Guard",
    "ResourceLoader",
    "actor_of",
    "allow",
    "declared_action",
    "declared_actions",
    "principal_of",
    "public",
    "require",
    "route_action",
]

LOGIN_PATH = "/ui/login"  # where an anonymous visitor of a UI page is sent to sign in
UI_PREFIX = "/ui"

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
        credentials = 0
        request_id: str | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                credentials += 1
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
        if credentials > 1:  # which one counts would differ between proxies and this server: refuse both
            response = JSONResponse(
                error_body("invalid_request", "send one Authorization header, not several"),
                status_code=400,
                headers={"WWW-Authenticate": 'Bearer realm="headwater", error="invalid_request"'},
            )
            await response(scope, receive, send_with_id)
            return
        principal = self.authenticator.cached(authorization)
        if principal is None:
            try:
                # Not the request's change: a token's last-used time must not carry its audit entry (which it
                # would when a session cookie named the principal already).
                with unaudited():
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


# How to load the one thing a route acts on (its owners, its restriction), in the request's session. A route's
# ``owned_by`` is a dependency answering one: it takes the route's validated path parameters, and loads nothing
# until asked.
ResourceLoader = Callable[[Session], Resource]


def allow(action: Action, *, owned_by: Callable[..., ResourceLoader] | None = None) -> Any:
    """The dependency declaring that a route needs ``action``: 401 without a credential, 403 without the
    permission. It answers the principal, and records the action for the audit log.

    With ``owned_by`` (a dependency answering a :data:`ResourceLoader`), a principal whose roles do not grant
    ``action`` has the thing the route acts on loaded and decided on, so its owners may act without the role; a
    thing that does not exist is the loader's 404, never a 403.
    """

    # A coroutine, though it never waits: FastAPI runs a plain function dependency in a worker thread, and that
    # hop cost a lineage POST about a tenth of its time (issue 18). The check is pure computation.
    async def authorised(request: Request) -> Principal:
        principal = principal_of(request)
        check(principal, action)
        request.state.action = action
        return principal

    call: Callable[..., Any] = authorised
    if owned_by is not None:

        async def authorised_owner(request: Request, session: Session, load: ResourceLoader) -> Principal:
            principal = principal_of(request)
            if not principal.authenticated or decide(principal, action):
                check(principal, action)  # a role decides; anonymous is refused before any look-up
            else:  # perhaps ownership grants it: load the owners (a missing thing is 404, as the route says)
                # Named before the look-up: its transaction is the request's first, which carries the audit entry.
                request.state.action = action
                check(principal, action, await anyio.to_thread.run_sync(_load_owners, load, session, action))
            request.state.action = action
            return principal

        # Objects, not the strings this module's annotations are: the loader is this call's own.
        authorised_owner.__annotations__ = {
            "request": Request,
            "session": SessionDep,
            "load": Annotated[ResourceLoader, Depends(owned_by)],
            "return": Principal,
        }
        call = authorised_owner

    call.action = action  # type: ignore[attr-defined]  # read by declared_action
    call.__name__ = f"allow_{action.value.replace('.', '_')}"
    return Depends(call)


def _load_owners(load: ResourceLoader, session: Session, action: Action) -> Resource:
    """The thing a route acts on, for an ownership decision. A read's look-up transaction ends here: the route may
    read in sessions of its own (job files do), and on SQLite an open transaction holds the write lock
    (BEGIN IMMEDIATE), which would make them wait for it until the busy timeout. A write keeps it open: its
    audit entry belongs to the transaction of the change."""
    resource = load(session)
    if action in READ_ACTIONS:
        session.commit()
    return resource


def require(request: Request, action: Action) -> None:
    """Check a further action that what a request asks needs beyond its route's (SQL lineage that records what
    it finds), and record it for the audit log."""
    check(principal_of(request), action)
    request.state.action = action


@dataclass(frozen=True)
class Guard:
    """The read and the write permission of a group of routes (a router, a named resource), declared once:
    ``dependencies=SOURCES.reads`` on its GETs, ``dependencies=SOURCES.writes`` on the rest."""

    read: Action
    write: Action

    @property
    def reads(self) -> list[Any]:
        """The route dependencies of a read."""
        return [allow(self.read)]

    @property
    def writes(self) -> list[Any]:
        """The route dependencies of a write."""
        return [allow(self.write)]


def public(app: ASGIApp) -> ASGIApp:
    """Declare a mounted app (static files) public: served to anyone, as a route declaring Action.PUBLIC is."""
    app.action = Action.PUBLIC  # type: ignore[attr-defined]  # read by declared_action
    return app


def declared_action(call: Any) -> Action | None:
    """The action a dependency made by :func:`allow` (or an app marked by :func:`public`) declares (None for
    anything else)."""
    action = getattr(call, "action", None)
    return action if isinstance(action, Action) else None


def declared_actions(route: Any) -> list[Action]:
    """Every action declared on a route: by the :func:`allow` dependencies anywhere in its dependency tree, or
    by :func:`public` on a mounted app. A well-declared route has exactly one."""
    if isinstance(getattr(route, "original_route", route), Mount):
        action = declared_action(route.app)
        return [action] if action is not None else []
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return []
    found: list[Action] = []
    stack = [dependant]
    while stack:
        current = stack.pop()
        action = declared_action(current.call)
        if action is not None:
            found.append(action)
        stack.extend(current.dependencies)
    return found


def route_action(route: Any) -> Action | None:
    """The one action a route declares (None when it declares none, or more than one)."""
    actions = declared_actions(route)
    return actions[0] if len(actions) == 1 else None


def routes_of(routes: Iterable[BaseRoute]) -> Iterator[Any]:
    """Every route of an app, those of included routers too, with their effective paths and dependencies."""
    return iter(iter_route_contexts(list(routes)))


class AnonymousGate:
    """Answer a request without a credential unless it asks for a public route: a UI page with a redirect to
    :data:`LOGIN_PATH` (``?next=`` the page), anything else 401 with a ``WWW-Authenticate`` challenge.

    It sits between :class:`Authenticate` and the dataset cache, so no cached answer reaches someone who may not
    read it. Which paths are public is read once from the app's routes (those declaring Action.PUBLIC, and
    mounts marked by :func:`public`); a signed-in request (and every request in local mode) passes untouched.
    """

    def __init__(self, app: ASGIApp, routes: Callable[[], Iterable[BaseRoute]]) -> None:
        self.app = app
        self._routes = routes
        self._public: list[re.Pattern[str]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("state", {}).get("principal") is not ANONYMOUS:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if any(pattern.match(path) for pattern in self.public_paths()):
            await self.app(scope, receive, send)
            return
        if path == UI_PREFIX or path.startswith(UI_PREFIX + "/"):
            query = scope.get("query_string", b"").decode("latin-1")
            here = quote(path + (f"?{query}" if query else ""), safe="")
            await RedirectResponse(f"{LOGIN_PATH}?next={here}", status_code=303)(scope, receive, send)
            return
        refusal = Unauthenticated("sign in or send a bearer token (Authorization: Bearer ...)")
        response = JSONResponse(error_body(refusal.code, refusal.message), status_code=401, headers=challenge(refusal))
        await response(scope, receive, send)

    def public_paths(self) -> list[re.Pattern[str]]:
        """The path patterns of the public routes (read from the routes on first use)."""
        if self._public is None:
            self._public = [
                route.path_regex for route in routes_of(self._routes()) if route_action(route) is Action.PUBLIC
            ]
        return self._public
