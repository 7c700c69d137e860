"""The sync engine against a real PostgreSQL database: tables, views, comments, keys, wrong credentials,
a column renamed and one retyped, a table dropped; plus secret references."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from headwater.catalog import service, sources, sync
from headwater.catalog.connectors.postgres import PostgresConnector
from headwater.catalog.models import SourceKind, SourceStatus
from headwater.catalog.schemas import SourceCreate, SourceUpdate
from headwater.catalog.sync_models import SyncRun
from headwater.db import session_scope
from headwater.secrets import KeyRing, ReferencePolicy, SecretUnresolved, SecretVault, generate_key

# The vault of a server that allows the tests' HW_TEST_* variables as secret references.
VAULT = SecretVault(policy=ReferencePolicy(allowed_env=("HW_TEST_*",)), keys=KeyRing(text=generate_key()))


def _run(factory: sessionmaker[Session], **kwargs: Any) -> SyncRun:
    return sync.run_sync(factory, vault=VAULT, **kwargs)


def _setup(factory: sessionmaker[Session], scratch: Any, **config: Any) -> str:
    with session_scope(factory) as session:
        sources.create_source(
            session,
            vault=VAULT,
            data=SourceCreate(
                name="shop", kind=SourceKind.POSTGRES, namespace="postgres://shop", config=scratch.config(**config)
            ),
        )
    cfg = scratch.config()
    return f"postgres://{cfg['host']}:{cfg['port']}"


def _get(factory: sessionmaker[Session], namespace: str, name: str, **kw: Any) -> service.Dataset:
    with session_scope(factory) as session:
        return service.get_dataset_by_name(session, namespace=namespace, name=name, **kw)


def test_tables_views_comments_and_keys(sync_factory: sessionmaker[Session], scratch_postgres: Any) -> None:
    namespace = _setup(sync_factory, scratch_postgres)
    run = _run(sync_factory, source_name="shop")
    assert (run.status, run.added) == ("succeeded", 4)
    db = scratch_postgres.database
    customers = _get(sync_factory, namespace, f"{db}.sales.customers")
    assert customers.source_description == "People who buy"
    assert [(f.path, f.type, f.normalized_type, f.nullable) for f in customers.fields] == [
        ("id", "bigint", "long", False),
        ("email", "varchar(200)", "string", False),
        ("country", "char(2)", "string", True),
        ("signed_up", "timestamp with time zone", "timestamptz", True),
        ("tags", "text[]", "array", True),
    ]
    assert customers.fields[1].source_description == "contact address"
    assert json.loads(customers.source_properties["primary_key"]) == ["id"]
    orders = _get(sync_factory, namespace, f"{db}.sales.orders")
    assert json.loads(orders.source_properties["foreign_keys"]) == [
        {
            "name": "orders_customer_id_fkey",
            "columns": ["customer_id"],
            "references": f"{db}.sales.customers",
            "referred_columns": ["id"],
        }
    ]
    view = _get(sync_factory, namespace, f"{db}.sales.big_orders")
    assert view.kind == "view" and "total > " in view.source_properties["view_definition"]
    assert [f.path for f in view.fields] == ["id", "customer_id", "total"]


def test_a_renamed_and_a_retyped_column_and_a_dropped_table(
    sync_factory: sessionmaker[Session], scratch_postgres: Any
) -> None:
    namespace = _setup(sync_factory, scratch_postgres)
    _run(sync_factory, source_name="shop")
    scratch_postgres.execute(
        "ALTER TABLE sales.orders RENAME COLUMN placed_at TO ordered_at;"
        "ALTER TABLE sales.customers ALTER COLUMN country TYPE varchar(3);"
        "DROP TABLE public.audit_log;"
    )
    run = _run(sync_factory, source_name="shop")
    assert (run.changed, run.deleted, run.unchanged) == (2, 1, 1)
    db = scratch_postgres.database
    orders = _get(sync_factory, namespace, f"{db}.sales.orders")
    with session_scope(sync_factory) as session:
        latest = service.get_schema_version(session, dataset_id=orders.id, version=2)
        customers = service.get_dataset_by_name(session, namespace=namespace, name=f"{db}.sales.customers")
        retyped = service.get_schema_version(session, dataset_id=customers.id, version=2).diff
    diff = latest.diff
    assert [(r["old_path"], r["new_path"]) for r in diff["renamed"]] == [("placed_at", "ordered_at")]
    assert diff["added"] == [] and diff["removed"] == [] and diff["retyped"] == []
    assert [(r["path"], r["old_type"], r["new_type"]) for r in retyped["retyped"]] == [
        ("country", "char(2)", "varchar(3)")
    ]
    assert retyped["renamed"] == [] and retyped["added"] == [] and retyped["removed"] == []
    dropped = _get(sync_factory, namespace, f"{db}.public.audit_log", include_deleted=True)
    assert dropped.deleted_at is not None


def test_wrong_credentials_fail_the_sync_and_keep_what_is_known(
    sync_factory: sessionmaker[Session], scratch_postgres: Any
) -> None:
    _setup(sync_factory, scratch_postgres)
    _run(sync_factory, source_name="shop")
    with session_scope(sync_factory) as session:
        sources.update_source(
            session,
            name="shop",
            data=SourceUpdate(config=scratch_postgres.config(user="headwater_no_such_role", connect_timeout=3)),
        )
    run = _run(sync_factory, source_name="shop")
    assert (run.status, run.complete, run.deleted, run.listed) == ("failed", False, 0, 0)
    assert "headwater_no_such_role" in (run.message or "")
    with session_scope(sync_factory) as session:
        source = sources.get_source(session, name="shop")
        assert source.status == SourceStatus.UNHEALTHY.value
        assert service.list_datasets(session, filters=service.DatasetFilters(source="shop")).total == 4


def test_a_connection_killed_mid_sync_deletes_nothing(
    sync_factory: sessionmaker[Session], scratch_postgres: Any, fault_after_first_page: Any
) -> None:
    from sqlalchemy import text

    _setup(sync_factory, scratch_postgres, page_size=1)
    _run(sync_factory, source_name="shop")
    scratch_postgres.execute("DROP TABLE public.audit_log")
    db = scratch_postgres.database

    def server_goes_away() -> None:
        with scratch_postgres.admin.connect() as admin:
            admin.execute(text(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS false'))
            admin.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db"), {"db": db}
            )

    fault_after_first_page(PostgresConnector, server_goes_away)

    try:
        run = _run(sync_factory, source_name="shop")
    finally:
        with scratch_postgres.admin.connect() as admin:
            admin.execute(text(f'ALTER DATABASE "{db}" ALLOW_CONNECTIONS true'))
    assert (run.status, run.complete, run.deleted) == ("failed", False, 0)
    with session_scope(sync_factory) as session:
        assert service.list_datasets(session, filters=service.DatasetFilters(source="shop")).total == 4


def test_allowed_secret_references_resolve_from_the_environment_and_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "password"
    secret_file.write_text("from-a-file\n")
    monkeypatch.setenv("HW_TEST_SECRET", "from-env")
    policy = ReferencePolicy(allowed_env=("HW_TEST_*",), allowed_dirs=(tmp_path,))
    resolved = policy.resolve(
        {"a": "env:HW_TEST_SECRET", "b": f"file:{secret_file}", "c": "plain", "d": "literal:env:NOT_A_REF"}
    )
    assert resolved == {"a": "from-env", "b": "from-a-file", "c": "plain", "d": "env:NOT_A_REF"}
    with pytest.raises(SecretUnresolved, match="HW_TEST_MISSING"):
        policy.resolve({"token": "env:HW_TEST_MISSING"})
    with pytest.raises(SecretUnresolved, match="cannot be read"):
        policy.resolve({"token": f"file:{tmp_path / 'nope'}"})


def test_an_unresolvable_secret_fails_the_sync_naming_it(
    sync_factory: sessionmaker[Session], scratch_postgres: Any
) -> None:
    with session_scope(sync_factory) as session:
        sources.create_source(
            session,
            vault=VAULT,
            data=SourceCreate(
                name="shop",
                kind=SourceKind.POSTGRES,
                namespace="postgres://shop",
                config=scratch_postgres.config(),
                secrets={"password": "env:HW_TEST_NOT_SET_ANYWHERE"},
            ),
        )
    run = _run(sync_factory, source_name="shop")
    assert run.status == "failed" and "HW_TEST_NOT_SET_ANYWHERE" in (run.message or "")
