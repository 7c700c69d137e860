"""Column declarations the ORM models share, so a table's recurring columns are written once, and the lookup of
a row by its unique name.

Each alias is SQLAlchemy's ``Annotated`` column pattern: ``id: Mapped[BigIntPK]`` declares the column the alias
carries, ``Mapped[UTCTime | None]`` its nullable form, and ``mapped_column(...)`` beside it adds arguments (an
index, a unique key). The tables they build are the ones the migrations create (tests/test_migrations.py checks
autogenerate finds no difference).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from typing import Annotated, TypeVar

from sqlalchemy import CheckConstraint, Integer, String, Text, select
from sqlalchemy.orm import Session, mapped_column

from headwater.db import Base, BigInt, UTCDateTime, utcnow
from headwater.errors import NotFound

__all__ = [
    "BigIntPK",
    "Code",
    "Count",
    "LongText",
    "Name",
    "Namespace",
    "UTCNow",
    "UTCTime",
    "get_by_name",
    "one_of",
]

Row = TypeVar("Row", bound=Base)

BigIntPK = Annotated[int, mapped_column(BigInt, primary_key=True)]
# A status, kind or mode: one of an enum's short values (see one_of).
Code = Annotated[str, mapped_column(String(16))]
Count = Annotated[int, mapped_column(Integer, default=0)]
LongText = Annotated[str, mapped_column(Text)]
# An OpenLineage identity: a namespace (kafka://host:port) and a name within it (a topic, db.table, a job).
Namespace = Annotated[str, mapped_column(String(512))]
Name = Annotated[str, mapped_column(String(1024))]
UTCTime = Annotated[dt.datetime, mapped_column(UTCDateTime)]
# Set to the time of the insert unless given (created_at, updated_at, received_at ...).
UTCNow = Annotated[dt.datetime, mapped_column(UTCDateTime, default=utcnow)]


def one_of(column: str, values: type[enum.StrEnum] | Iterable[str], *, nullable: bool = False) -> CheckConstraint:
    """A CHECK constraint, named after ``column``, that keeps it to ``values`` (and NULL when ``nullable``)."""
    listed = ", ".join(f"'{value}'" for value in values)
    condition = f"{column} IN ({listed})"
    return CheckConstraint(f"{column} IS NULL OR {condition}" if nullable else condition, name=column)


def get_by_name(session: Session, model: type[Row], name: str, *, label: str) -> Row:
    """The ``model`` row whose unique ``name`` is ``name``, or NotFound saying there is no such ``label``."""
    row = session.scalar(select(model).filter_by(name=name))
    if row is None:
        raise NotFound(f"no {label} named {name!r}", detail={"field": "name"})
    return row
