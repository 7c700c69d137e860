"""GraphQL object types derived from the REST answer models, so a fact is defined once (in ``<domain>/schemas.py``).

:func:`from_model` turns a class body into a strawberry type whose plain fields are the pydantic model's, in the
model's order, typed as GraphQL types them: database ids named in ``ids`` become ``ID``, ``Literal`` strings
``String``, dicts ``JSON``, nested answer models their derived GraphQL types. What the class body declares
wins: a description, a resolver, a private field, a field the model lacks. The derived type accepts an instance
of the model as its value, so a resolver may answer the REST model itself. :class:`Page` is the one page type
(``DatasetPage``, ``JobPage``... are its specialisations, named by strawberry).
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, Generic, Literal, TypeVar

import strawberry
from pydantic import BaseModel
from strawberry.scalars import JSON

__all__ = ["Page", "enum_of", "from_model", "graphql_of", "input_from", "to_graphql"]

T = TypeVar("T")
C = TypeVar("C", bound=type)

# The GraphQL type derived from each answer model, for nested models (a dataset's owners, an impact's nodes).
_DERIVED: dict[type[BaseModel], type] = {}
# How to_graphql builds a derived type's object from its model's: the type, the fields it takes, those that hold
# answer models themselves. Only types whose every field is a plain one of the model's (no resolver, no private
# field) are built; the others take the model's instance as it is.
_PLANS: dict[type, tuple[type, tuple[str, ...], frozenset[str]] | None] = {}


@strawberry.type
class Page(Generic[T]):
    """One page of a list; pass ``nextCursor`` as ``after`` for the next."""

    items: list[T]
    next_cursor: str | None
    total: int = strawberry.field(description="The total: exact unless totalExact is false (an estimate, or -1).")
    total_exact: bool = strawberry.field(default=True, description="Whether total is exact.")


def graphql_of(annotation: Any, *, is_id: bool = False) -> Any:
    """The GraphQL annotation of a pydantic field's annotation."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union):
        inner = [graphql_of(a, is_id=is_id) for a in args if a is not type(None)]
        return inner[0] | None if len(inner) == 1 and type(None) in args else typing.Union[tuple(inner)]  # noqa: UP007
    if origin is Literal:
        return str
    if origin is list:
        item = graphql_of(args[0], is_id=is_id)
        return JSON if item is JSON else list[item]  # type: ignore[valid-type]  # a list of dicts is one JSON value
    if origin is dict or annotation is dict or annotation is Any:
        return JSON
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _DERIVED[annotation]
    if is_id and annotation in (int, str):
        return strawberry.ID
    return annotation


@typing.dataclass_transform(kw_only_default=True)
def from_model(
    model: type[BaseModel],
    *,
    name: str | None = None,
    ids: Sequence[str] = (),
    exclude: Sequence[str] = (),
    field_order: Sequence[str] | None = None,
) -> Callable[[C], C]:
    """A decorator making its class the strawberry type of ``model``'s fields (see the module docstring).

    Fields the class body declares and the model lacks come first, unless ``field_order`` lists every field in order.
    """

    def build(cls: C) -> C:
        own: dict[str, Any] = dict(cls.__dict__.get("__annotations__", {}))
        derived = {
            key: graphql_of(field.annotation, is_id=key in ids)
            for key, field in model.model_fields.items()
            if key not in exclude and key not in own
        }
        extra = {key: value for key, value in own.items() if key not in model.model_fields}
        merged = {**extra, **{key: own.get(key, derived.get(key)) for key in model.model_fields if key not in exclude}}
        if field_order is not None:
            merged = {key: merged[key] for key in field_order} | {
                k: v for k, v in merged.items() if k not in field_order
            }
        cls.__annotations__ = merged

        def is_type_of(kind: type, obj: Any, info: Any) -> bool:
            return isinstance(obj, (kind, model))

        cls.is_type_of = classmethod(is_type_of)  # type: ignore[attr-defined]
        made = strawberry.type(cls, name=name)
        _DERIVED[model] = made
        _PLANS[model] = _plan(made, model)
        return made

    return build


def _plan(made: type, model: type[BaseModel]) -> tuple[type, tuple[str, ...], frozenset[str]] | None:
    definition = made.__strawberry_definition__  # type: ignore[attr-defined]
    init = [f.name for f in dataclasses.fields(made) if f.init]
    plain = [f.python_name for f in definition.fields if f.base_resolver is None]
    if (
        len(plain) != len(definition.fields)
        or sorted(init) != sorted(plain)
        or not set(plain) <= set(model.model_fields)
    ):
        return None
    nested = {
        key
        for key in plain
        if any(isinstance(t, type) and issubclass(t, BaseModel) for t in _leaves(model.model_fields[key].annotation))
    }
    return made, tuple(plain), frozenset(nested)


def _leaves(annotation: Any) -> list[Any]:
    args = typing.get_args(annotation)
    return [leaf for arg in args for leaf in _leaves(arg)] if args else [annotation]


def to_graphql(value: Any) -> Any:
    """The derived GraphQL object of a REST answer (and of the answers it nests); anything else as it is.

    The answer model itself would do as the value (the derived type accepts it), but strawberry asks every object
    whether it is awaitable, and a pydantic model answers that through a slow ``__getattr__``: on a page of
    thousands of fields or an impact of thousands of nodes, building the dataclasses is several times cheaper.
    """
    if isinstance(value, list):
        return [to_graphql(item) for item in value]
    kind = type(value)
    if kind not in _PLANS:  # a subclass of an answer model (SearchHitOut ...): its nearest derived base's plan
        _PLANS[kind] = next((_PLANS[base] for base in kind.__mro__ if base in _PLANS), None)
    plan = _PLANS[kind]
    if plan is None:
        return value
    made, keys, nested = plan
    data = value.__dict__
    return made(**{key: to_graphql(data[key]) if key in nested else data[key] for key in keys})


def enum_of(name: str, annotation: Any) -> Any:
    """A GraphQL enum of the strings a model field's ``Literal`` allows (named upper-case, in the Literal's order),
    so the choices are defined once, in the REST model."""

    def choices(given: Any) -> list[str]:
        if typing.get_origin(given) is Literal:
            return [str(v) for v in typing.get_args(given)]
        return [v for arg in typing.get_args(given) for v in choices(arg)]

    functional: Any = enum.Enum  # the functional API, with a name only known at run time
    made = functional(name, {value.upper(): value for value in choices(annotation)})
    return strawberry.enum(made)


def input_from(kind: type, *, name: str, description: str) -> type:
    """A strawberry input type with the fields (names, types, defaults) of the service's filter dataclass ``kind``."""
    hints = typing.get_type_hints(kind)
    fields = dataclasses.fields(kind)
    body: dict[str, Any] = {"__annotations__": {f.name: hints[f.name] for f in fields}}
    body.update({f.name: f.default for f in fields})
    return strawberry.input(type(name, (), body), name=name, description=description)
