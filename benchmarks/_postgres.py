"""The benchmarks' PostgreSQL databases: made fresh and migrated, dropped after."""

from __future__ import annotations

import os

from sqlalchemy import create_engine, make_url, text

from headwater import migrations

__all__ = ["ADMIN", "drop_database", "fresh_database"]

# The server's maintenance database; benchmark databases are created beside it.
ADMIN = os.environ.get("HEADWATER_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _admin_execute(*statements: str) -> None:
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        admin.dispose()


def fresh_database(name: str) -> str:
    """An empty database called ``name`` (one left by an earlier run is dropped first), migrated; its URL."""
    _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    url = make_url(ADMIN).set(database=name).render_as_string(hide_password=False)
    migrations.upgrade(url)
    return url


def drop_database(url: str) -> None:
    """Drop a database made by :func:`fresh_database`."""
    _admin_execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
