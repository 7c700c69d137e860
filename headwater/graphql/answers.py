"""Cached answers of GraphQL catalog reads: a query that asks only for ``dataset`` or ``datasets`` is answered from
the catalog's cache of serialised answers (:class:`~headwater.catalog.cache.DatasetCache`) when the same document,
variables and operation were answered for the same audience since the last change to any dataset.

Such an answer shows datasets only (their fields, owners, tags, schema history), and every change to a dataset
appends a change event that empties every keyed-by-query entry of that cache, in this process at once and in the
others through the outbox poller, exactly as it does REST's cached list pages. Only a principal the policy allows
``catalog.read`` (the permission both fields declare) is answered from it, and the key holds its audience (which
restricted datasets it sees): that is all the two resolvers read of the principal, so a hit is byte for byte what
running the query would answer. Why, with the figures: docs/adr/0013-graphql-answer-cache.md.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

import orjson
from graphql import FieldNode, GraphQLError, OperationDefinitionNode, OperationType, parse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from headwater.auth.actions import Action
from headwater.auth.policy import audience_of, decide
from headwater.auth.principal import Principal
from headwater.catalog.cache import DatasetCache

__all__ = ["CACHED_FIELDS", "MAX_CACHED_QUERY", "CachedAnswers", "answer_key", "cacheable"]

# Root fields whose answer changes only when a dataset changes (each declares Action.CATALOG_READ and reads
# nothing of the principal but its audience).
CACHED_FIELDS = frozenset({"dataset", "datasets", "__typename"})
MAX_CACHED_QUERY = 8_192  # characters of the longest document whose answer is cached


@lru_cache(maxsize=256)
def cacheable(query: str, operation: str | None) -> bool:
    """Whether the document is one query whose root selections are all fields of :data:`CACHED_FIELDS` (a
    document that does not parse is not: running it reports the error)."""
    try:
        document = parse(query)
    except GraphQLError:
        return False
    if len(document.definitions) != 1:  # fragments or several operations: not worth the analysis
        return False
    definition = document.definitions[0]
    if not isinstance(definition, OperationDefinitionNode) or definition.operation is not OperationType.QUERY:
        return False
    if operation is not None and (definition.name is None or definition.name.value != operation):
        return False
    return all(
        isinstance(selection, FieldNode) and selection.name.value in CACHED_FIELDS
        for selection in definition.selection_set.selections
    )


def answer_key(principal: Principal, query: str, variables: dict[str, Any] | None, operation: str | None) -> str | None:
    """The cache key of this request's answer as ``principal`` sees it, or None when it is not to be cached."""
    # A long document is parsed only by the worker thread that runs it, never here on the event loop.
    if len(query) > MAX_CACHED_QUERY or not decide(principal, Action.CATALOG_READ) or not cacheable(query, operation):
        return None
    request = orjson.dumps([query, variables, operation], option=orjson.OPT_SORT_KEYS)
    audience = audience_of(principal)
    # A str key, so that DatasetCache.invalidate drops it with the list pages on any dataset change.
    seen_by = "*" if audience is None else "[" + "\x00".join(sorted(audience)) + "]"
    return "graphql" + seen_by + hashlib.sha256(request).hexdigest()


_JSON = (b"application/json", b"application/graphql-response+json")  # what the route accepts


def _declared_length(scope: Scope) -> int | None:
    """The Content-Length of a JSON request (None: not JSON, or no length declared)."""
    length, json = None, False
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            length = int(value)
        elif name == b"content-type":
            json = value.split(b";", 1)[0].strip().lower() in _JSON
    return length if json else None


class CachedAnswers:
    """Middleware answering a ``POST /graphql`` whose answer is cached (:func:`answer_key`) before routing, without
    a worker thread or a session, as :class:`~headwater.catalog.cache.CachedReads` answers REST's hits; any other
    request goes on to the route, with the body it read handed on unchanged.

    Only a JSON body of a declared length up to ``MAX_CACHED_QUERY`` (and a little more for the variables) is read
    here; anything else, malformed ones included, is the route's to answer. Authentication runs outside it.
    """

    def __init__(self, app: ASGIApp, cache: DatasetCache) -> None:
        self.app = app
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal: Principal | None = scope.get("state", {}).get("principal") if scope["type"] == "http" else None
        length = _declared_length(scope) if principal is not None and scope["method"] == "POST" else None
        # The route needs a signed-in principal (AnonymousGate, outside, refuses the others first): so does a hit.
        if (
            principal is None
            or not decide(principal, Action.SELF)
            or length is None
            or scope["path"] != "/graphql"
            or length > 2 * MAX_CACHED_QUERY
        ):
            await self.app(scope, receive, send)
            return
        read: list[Message] = []
        body = b""
        while True:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        hit = self._lookup(principal, body)
        if hit is not None:
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(hit)).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": hit})
            return

        async def replay() -> Message:
            return read.pop(0) if read else await receive()

        await self.app(scope, replay, send)

    def _lookup(self, principal: Principal, body: bytes) -> bytes | None:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(document, dict):
            return None
        query, variables, operation = document.get("query"), document.get("variables"), document.get("operationName")
        if not (isinstance(query, str) and isinstance(variables, dict | None) and isinstance(operation, str | None)):
            return None
        key = answer_key(principal, query, variables, operation)
        hit = None if key is None else self.cache.get(key)
        return None if hit is None else hit[1]
