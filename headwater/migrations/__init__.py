"""Alembic migrations of Headwater's one database, shipped inside the package, and the functions the
CLI and the server use to upgrade and to check the schema revision."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

if TYPE_CHECKING:
    from headwater.secrets import SecretVault

__all__ = [
    "alembic_config",
    "current_revision",
    "downgrade",
    "head_revision",
    "include_object",
    "is_up_to_date",
    "upgrade",
]

_HERE = Path(__file__).parent


def alembic_config(url: str) -> Config:
    """An Alembic config for ``url`` that needs no alembic.ini on disk."""
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    # ConfigParser would read "%" in passwords as interpolation.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head", *, secrets_vault: SecretVault | None = None) -> None:
    """Migrate the database at ``url`` up to ``revision``; ``secrets_vault`` encrypts plaintext source secrets."""
    config = alembic_config(url)
    config.attributes["secrets_vault"] = secrets_vault
    command.upgrade(config, revision)


def downgrade(url: str, revision: str, *, secrets_vault: SecretVault | None = None) -> None:
    """Migrate the database at ``url`` down to ``revision``."""
    config = alembic_config(url)
    config.attributes["secrets_vault"] = secrets_vault
    command.downgrade(config, revision)


@functools.cache
def head_revision() -> str:
    """The revision the code expects (there is exactly one head). Read once per process: it means loading
    every migration script, about 10 ms, and ``/readyz`` asks on every probe."""
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"migrations have {len(heads)} heads ({heads}); merge them")
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, None when it was never migrated."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def is_up_to_date(engine: Engine) -> bool:
    """True when the database is at the code's head revision."""
    return current_revision(engine) == head_revision()


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic filter: leave out dialect-specific objects the ORM does not model (full-text indexes and
    their shadow tables), named with a prefix registered in ``Base.metadata.info["unmanaged_prefixes"]``."""
    from headwater.db import Base

    prefixes = tuple(Base.metadata.info.get("unmanaged_prefixes", ()))
    return not (reflected and compare_to is None and name is not None and name.startswith(prefixes))
