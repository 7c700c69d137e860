"""Alembic environment: runs migrations against the URL the caller configured."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import create_engine, pool

import headwater.models  # noqa: F401  (registers every table on Base.metadata)
from headwater.db import Base, BigInt, JSONType, UTCDateTime
from headwater.migrations import include_object

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    """Emit SQL for the configured URL without connecting."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate over a live connection (one given by the caller, or a fresh engine)."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    # A plain engine: SQLite batch migrations must run with foreign keys off, as SQLite is by default.
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render Headwater's portable column types by name, so generated migrations import them."""
    if type_ != "type":
        return False
    for name, portable in (("UTCDateTime", UTCDateTime), ("JSONType", JSONType), ("BigInt", BigInt)):
        if obj is portable or (isinstance(obj, UTCDateTime) and portable is UTCDateTime):
            autogen_context.imports.add(f"from headwater.db import {name}")
            return f"{name}()" if name == "UTCDateTime" else name
    return False


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        render_item=render_item,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
