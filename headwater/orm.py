"""Column declarations the ORM models share, so a table's recurring columns are written once.

Each alias is SQLAlchemy's ``Annotated`` column pattern: ``id: Mapped[BigIntPK]`` declares the column the alias
carries, ``Mapped[UTCTime | None]`` its nullable form, and ``mapped_column(...)`` beside it adds arguments (an
index, a unique key). The tables they build are the ones the migrations create (tests/test_migrations.py checks
autogenerate finds no difference).
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from typing import Annotated

from sqlalchemy import CheckConstraint, Integer, String, Text
from sqlalchemy.orm import mapped_column

from headwater.db import BigInt, UTCDateTime, utcnow

__all__ = [
    "BigIntPK",
    "Code",
    "Count",
    "LongText",
    "Name",
    "Namespace",
    "UTCNow",
    "UTCTime",
    "one_of",
]

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
