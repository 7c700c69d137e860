"""What every GraphQL resolver gets: the request's session, and batch loading of what sibling objects need.

A GraphQL request runs in one worker thread and one transaction (:mod:`headwater.graphql.routes`); its
resolvers are plain functions run one after another, so they share the session safely. N+1 queries are
avoided by :class:`Siblings`: objects returned together (a page of datasets, the hits of a search) share one,
and the first of them to need, say, its fields loads the fields of all of them in one query.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import strawberry
from sqlalchemy.orm import Session

from headwater.auth.principal import ANONYMOUS, Principal
from headwater.search.base import SearchBackend
from headwater.settings import Settings

__all__ = ["Context", "Info", "Siblings"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class Context:
    """One GraphQL request's context, with its limits (:mod:`headwater.graphql.limits`)."""

    session: Session
    settings: Settings
    search_backend: SearchBackend
    principal: Principal = ANONYMOUS  # who is asking: every root field checks its permission against it
    max_cost: int | None = None  # the most nodes the query may be estimated to return
    deadline: float | None = None  # time.monotonic() after which the execution stops
    time_budget: float = 0.0  # the seconds that deadline allowed, for the error's message


@dataclass
class Siblings(Generic[K]):
    """The keys of objects returned together, and what has been loaded for all of them, per kind of load.

    ``load(name, key, loader)`` answers ``key``'s value; the first call for ``name`` runs ``loader`` once over
    every sibling's key (it returns a dict; a key it leaves out answers None).
    """

    session: Session
    keys: list[K]
    _loaded: dict[str, dict[Any, Any]] = field(default_factory=dict)

    def load(self, name: str, key: K, loader: Callable[[Session, list[K]], dict[K, V]]) -> V | None:
        """``key``'s value from one batched ``loader`` run over every sibling."""
        found = self._loaded.get(name)
        if found is None:
            found = self._loaded[name] = loader(self.session, list(dict.fromkeys(self.keys)))
        value: V | None = found.get(key)
        return value


# What a resolver declares to receive the context (strawberry injects the argument by this annotation).
Info = strawberry.Info[Context, None]
