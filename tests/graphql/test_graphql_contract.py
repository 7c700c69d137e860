"""GraphQL's public contract: the schema's SDL is the checked-in one, and every domain error has its typed result.

Change ``tests/graphql/schema.graphql`` only on purpose (regenerate it with
``python -c "from headwater.graphql.schema import schema; print(schema.as_str())"``): a difference here is a
change every GraphQL client sees.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest
from graphql import get_nullable_type, is_union_type

import headwater
from headwater.errors import HeadwaterError, InvalidInput, NotFound
from headwater.graphql.errors import (
    ERROR_TYPES,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PreconditionFailedError,
    UnavailableError,
    error_of,
    error_type_of,
)
from headwater.graphql.schema import schema

SDL = Path(__file__).with_name("schema.graphql")
# Modules that only run as a program or inside Alembic: nothing in them defines an error.
NOT_IMPORTED = {"headwater.migrations.env", "headwater.cli.__main__"}


def _every_error() -> list[type[HeadwaterError]]:
    """Every subclass of HeadwaterError, after importing the whole package (errors live beside their domains)."""
    for module in pkgutil.walk_packages(headwater.__path__, "headwater."):
        if module.name not in NOT_IMPORTED and not module.name.startswith("headwater.migrations.versions"):
            importlib.import_module(module.name)
    found: list[type[HeadwaterError]] = []
    pending = [HeadwaterError]
    while pending:
        for sub in pending.pop().__subclasses__():
            found.append(sub)
            pending.append(sub)
    return found


def test_the_sdl_is_the_checked_in_contract() -> None:
    assert schema.as_str() + "\n" == SDL.read_text()


def test_every_root_field_answers_a_union_of_its_object_and_every_error_type() -> None:
    wanted = {t.__strawberry_definition__.name for t in set(ERROR_TYPES.values())}  # type: ignore[attr-defined]
    roots = [schema._schema.query_type, schema._schema.mutation_type]
    fields = {name: field for root in roots if root is not None for name, field in root.fields.items()}
    assert len(fields) == 22
    for name, field in fields.items():
        union = get_nullable_type(field.type)
        assert is_union_type(union), name
        assert wanted <= {member.name for member in union.types}, name


def test_the_base_errors_map_to_their_own_types() -> None:
    assert error_type_of(InvalidInput) is InvalidInputError
    assert error_type_of(NotFound) is NotFoundError
    from headwater.errors import Conflict, DatabaseNotReady, PreconditionFailed, PreconditionRequired

    assert error_type_of(Conflict) is ConflictError
    assert error_type_of(PreconditionFailed) is PreconditionFailedError
    assert error_type_of(PreconditionRequired) is PreconditionFailedError  # 428: a guard left out, not a backend
    assert error_type_of(DatabaseNotReady) is UnavailableError


@pytest.mark.parametrize("kind", _every_error(), ids=lambda k: f"{k.__module__}.{k.__name__}")
def test_every_domain_error_maps_to_a_typed_result_that_keeps_its_code(kind: type[HeadwaterError]) -> None:
    assert kind.status_code in ERROR_TYPES, f"{kind.__name__} ({kind.status_code}) has no GraphQL error type"
    raised = kind.__new__(kind)  # some take other arguments; the base's are what the mapping reads
    HeadwaterError.__init__(raised, "what to change", detail={"field": "input.name"})
    answer = error_of(raised)
    assert type(answer) is error_type_of(kind)
    assert (answer.message, answer.code, answer.field) == ("what to change", kind.code, "input.name")
    if type(answer) is UnavailableError:  # only what a backend that cannot answer now raises
        assert kind.status_code >= 500
    else:
        assert kind.status_code < 500
