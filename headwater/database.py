"""Getting the database ready before anything uses it: the embedded database is migrated (or any database, when
asked to); any other must already be at the code's migration head. The server and every CLI command call this."""

from __future__ import annotations

from sqlalchemy.exc import SQLAlchemyError

from headwater import migrations
from headwater.db import create_db_engine
from headwater.errors import DatabaseNotReady
from headwater.secrets import SecretVault
from headwater.settings import Settings

__all__ = ["prepare_database"]


def prepare_database(settings: Settings) -> None:
    """Migrate the embedded database (or when asked to), else check the schema is at head."""
    url = settings.resolved_database_url
    if settings.is_embedded_database:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.should_auto_migrate:
        migrations.upgrade(url, secrets_vault=SecretVault.from_settings(settings))
        return
    engine = create_db_engine(url, prepared_statements=settings.db_prepared_statements)
    try:
        current = migrations.current_revision(engine)
    except SQLAlchemyError as exc:
        raise DatabaseNotReady(
            f"cannot reach the database at {engine.url.render_as_string()}: {getattr(exc, 'orig', exc)}"
        ) from exc
    finally:
        engine.dispose()
    head = migrations.head_revision()
    if current != head:
        raise DatabaseNotReady(
            f"the database is at migration {current or 'none'} but this Headwater needs {head}; "
            "run `headwater db upgrade` first"
        )
