"""Fixtures shared by the whole suite: every database test runs on SQLite and on PostgreSQL.

Each test run (and each xdist worker) gets its own databases: a SQLite file in a temporary directory
and a PostgreSQL database created for the run and dropped at its end. They are migrated once with
Alembic (never ``create_all``) and emptied after every test.

PostgreSQL comes from ``HEADWATER_TEST_POSTGRES_URL`` (default: the local server, user postgres). When
it is unreachable the PostgreSQL half is skipped with a reason, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from audit_guard import install as install_audit_guard
from fastapi import FastAPI
from server_guard import install as install_server_guard
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from suite_tables import empty_tables

from headwater import migrations
from headwater.app import create_app
from headwater.db import create_db_engine, make_sessionmaker
from headwater.secrets import KeyRing, ReferencePolicy, SecretVault, generate_key
from headwater.settings import Settings

# Every app a test builds answers the in-process client's host (and loopback for live servers), unthrottled; the
# tests of the Host check and the rate limit pass their own values.
os.environ.setdefault("HEADWATER_ALLOWED_HOSTS", "headwater.test,localhost,127.0.0.1,[::1]")
os.environ.setdefault("HEADWATER_RATE_LIMIT_PER_SECOND", "0")
# Every test server binds loopback and every test file lives under the temporary directory: the egress policy allows
# them for the suite (in this process and in the workers and servers it starts); tests/test_egress.py and the
# *_egress tests turn it off to prove refusals.
TEST_EGRESS_ALLOW = ["127.0.0.1", "::1", "localhost"]
TEST_EGRESS_FILE_DIRS = [Path(tempfile.gettempdir()).resolve()]
os.environ.setdefault("HEADWATER_EGRESS_ALLOW", ",".join(TEST_EGRESS_ALLOW))
os.environ.setdefault("HEADWATER_EGRESS_FILE_DIRS", ",".join(str(d) for d in TEST_EGRESS_FILE_DIRS))

ADMIN_URL = os.environ.get("HEADWATER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
BACKENDS = [b.strip() for b in os.environ.get("HEADWATER_TEST_BACKENDS", "sqlite,postgres").split(",") if b.strip()]
# The suite's key for source secrets, and the variables its sources may name as env:HW_TEST_...
TEST_SECRETS_KEY = generate_key()
TEST_SECRETS_ENV = ["HW_TEST_*"]


def pytest_configure(config: pytest.Config) -> None:
    """Register the suite's own markers, and the guard that keeps servers out of the fast tier."""
    config.addinivalue_line(
        "markers", "single_backend(name): run a database test on that backend only (the others are deselected)"
    )
    install_server_guard(config)
    install_audit_guard(config)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (not skip) the other backends' copies of tests marked ``single_backend``."""
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker("single_backend")
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("db_url") if callspec else None
        if marker is not None and backend is not None and backend != marker.args[0]:
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """asyncio only: Headwater runs on uvicorn's asyncio loop (async test modules set ``pytestmark = anyio``)."""
    return "asyncio"


class PostgresServer:
    """Creates and drops throwaway databases on the test PostgreSQL server."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = make_url(admin_url)
        self._admin: Engine | None = None
        self.created: list[str] = []

    def available(self) -> str | None:
        """None when reachable, else why not."""
        try:
            self.admin.connect().close()
        except OperationalError as exc:
            return f"PostgreSQL at {self.admin_url.render_as_string()} is unreachable: {exc.orig}"
        return None

    @property
    def admin(self) -> Engine:
        if self._admin is None:
            self._admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT", pool_size=1)
        return self._admin

    def create_database(self, label: str) -> str:
        """A new empty database; its URL."""
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        name = f"headwater_test_{label}_{worker}_{uuid.uuid4().hex[:8]}"
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        """Drop every database this run created."""
        if self._admin is None:
            return
        with self.admin.connect() as connection:
            for name in self.created:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._admin.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The PostgreSQL server tests make databases on."""
    server = PostgresServer(ADMIN_URL)
    yield server
    server.drop_all()


@pytest.fixture(scope="session")
def fresh_database(postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A factory of new, empty (un-migrated) databases of one backend: ``fresh_database("postgres")``."""

    def make(backend: str, label: str = "fresh") -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path_factory.mktemp(label) / 'headwater.db'}"
        require_postgres(postgres_server)
        return postgres_server.create_database(label)

    return make


def require_postgres(server: PostgresServer) -> None:
    """Skip (or, in CI, fail) when PostgreSQL cannot be reached."""
    problem = server.available()
    if problem is None:
        return
    if IN_CI:
        pytest.fail(f"{problem}; CI needs PostgreSQL (the test command starts it)", pytrace=False)
    pytest.skip(f"{problem}; start it or set HEADWATER_TEST_POSTGRES_URL")


@pytest.fixture(scope="session", params=BACKENDS)
def db_url(request: pytest.FixtureRequest, fresh_database) -> str:  # type: ignore[no-untyped-def]
    """A migrated database of each backend, shared by the tests of this run."""
    url: str = fresh_database(request.param, "suite")
    migrations.upgrade(url)
    return url


@pytest.fixture(scope="session")
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on the suite's database, set up as the server sets it up."""
    engine = create_db_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session on an empty catalog; the test commits what it wants kept; tables are emptied after."""
    factory = make_sessionmaker(engine)
    with factory() as session:
        yield session
        session.rollback()
    empty_tables(engine)


@pytest.fixture(scope="session")
def app_settings(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings pointing the app at the suite's database."""
    return Settings(
        database_url=db_url,
        data_dir=tmp_path_factory.mktemp("data"),
        max_body_bytes=64 * 1024,
        search_indexer_enabled=False,  # tests run the search indexer themselves
        secrets_key=TEST_SECRETS_KEY,
        secrets_allowed_env=TEST_SECRETS_ENV,
        allowed_hosts=["headwater.test", "localhost", "127.0.0.1", "[::1]"],
        rate_limit_per_second=0,
        egress_allow=TEST_EGRESS_ALLOW,
        egress_file_dirs=TEST_EGRESS_FILE_DIRS,
    )


@pytest.fixture(scope="session")
def secret_vault() -> SecretVault:
    """What the suite's server uses for source secrets, for tests that call the services directly."""
    return SecretVault(policy=ReferencePolicy(allowed_env=tuple(TEST_SECRETS_ENV)), keys=KeyRing(text=TEST_SECRETS_KEY))


@pytest.fixture(scope="session")
def app(app_settings: Settings) -> FastAPI:
    """The application on the suite's database (already migrated, so no preparation)."""
    return create_app(app_settings, prepare=False)


@pytest.fixture
async def client(app: FastAPI, engine: Engine) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process; the catalog is empty at the start of each test."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://headwater.test") as client:
        yield client
    app.state.dataset_cache.clear()
    empty_tables(engine)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An empty data directory."""
    return tmp_path / "data"
