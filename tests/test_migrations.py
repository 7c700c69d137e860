"""Alembic migrations: one head, a round trip with data present, and no drift from the ORM models."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from headwater import migrations
from headwater.catalog import service
from headwater.catalog.schemas import DatasetCreate, FieldIn
from headwater.db import Base, create_db_engine, make_sessionmaker, session_scope

MakeDatabase = Callable[..., str]


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, fresh_database: MakeDatabase) -> str:
    """A new, never-migrated database of each backend."""
    return fresh_database(request.param, "migrations")


def test_there_is_exactly_one_head() -> None:
    heads = ScriptDirectory.from_config(migrations.alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1
    assert migrations.head_revision() == heads[0]


def test_upgrade_downgrade_upgrade_with_data_present(empty_url: str) -> None:
    migrations.upgrade(empty_url)
    engine = create_db_engine(empty_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            service.register_dataset(
                session, data=DatasetCreate(name="db.t", fields=[FieldIn(name="a", type="int")], tags=["pii"])
            )
        assert migrations.is_up_to_date(engine)

        migrations.downgrade(empty_url, "base")
        assert migrations.current_revision(engine) is None
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}

        migrations.upgrade(empty_url)
        assert migrations.is_up_to_date(engine)
        with session_scope(make_sessionmaker(engine)) as session:
            again = service.register_dataset(
                session, data=DatasetCreate(name="db.t", fields=[FieldIn(name="a", type="int")])
            )
            assert again.current_schema_version == 1
            assert session.execute(text("SELECT count(*) FROM change_events")).scalar() == 1
    finally:
        engine.dispose()


def test_autogenerate_finds_no_difference_from_the_models(empty_url: str) -> None:
    migrations.upgrade(empty_url)
    engine = create_db_engine(empty_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_object": migrations.include_object}
            )
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []
