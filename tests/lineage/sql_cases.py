"""A small catalog and readers of SQL lineage answers, shared by the SQL lineage tests."""

from __future__ import annotations

from sqlalchemy.orm import Session

from headwater.catalog.schemas import DatasetCreate, FieldIn
from headwater.catalog.service import register_dataset
from headwater.lineage.sql import StatementLineage, lineage_of_sql

NS = "hive://metastore:9083"

TABLES = {
    "raw.events": ["user_id", "ts", "amount", "country", "kind"],
    "raw.users": ["user_id", "name", "email", "country"],
    "curated.daily": ["ds", "country", "total", "n_users"],
}


def catalog(session: Session, tables: dict[str, list[str]] | None = None) -> None:
    """Register ``tables`` (default: events, users, daily) with string columns."""
    for name, columns in (tables or TABLES).items():
        register_dataset(
            session,
            data=DatasetCreate(name=name, namespace=NS, fields=[FieldIn(name=c, type="string") for c in columns]),
        )
    session.flush()


def statements(session: Session, sql: str, dialect: str = "spark") -> list[StatementLineage]:
    """Every statement's lineage in the test namespace."""
    return lineage_of_sql(session, sql=sql, dialect=dialect, namespace=NS)


def one(session: Session, sql: str, dialect: str = "spark") -> StatementLineage:
    """The lineage of SQL holding one statement."""
    found = statements(session, sql, dialect)
    assert len(found) == 1
    return found[0]


def cols(statement: StatementLineage) -> dict[str, set[tuple[str, str, str, str]]]:
    """Output column -> {(table, column, type, subtype)}."""
    return {
        column: {(i.name, i.field, i.type, i.subtype) for i in inputs} for column, inputs in statement.columns.items()
    }


def indirect(statement: StatementLineage) -> set[tuple[str, str, str]]:
    """The columns that decide which rows come out: {(table, column, subtype)}."""
    return {(i.name, i.field, i.subtype) for i in statement.dataset_inputs}
