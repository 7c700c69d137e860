"""Sources: secrets encrypted at rest. Every plaintext value already stored becomes a Fernet token.

The key comes from the vault the caller hands to ``migrations.upgrade`` (the server and ``headwater db upgrade``
build it from their settings), else from the configured ``HEADWATER_SECRETS_KEY`` / ``HEADWATER_SECRETS_KEY_FILE``.
It is needed only when some source holds secrets; without it the migration stops and names the settings, so no
plaintext row survives an upgrade. Downgrading decrypts them again, for the code before this revision.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import context, op

from headwater.db import JSONType
from headwater.secrets import SecretsKeyError, SecretVault

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

sources = sa.table(
    "sources", sa.column("id", sa.BigInteger), sa.column("name", sa.String), sa.column("secrets", JSONType)
)


def _vault(count: int) -> SecretVault:
    vault: SecretVault | None = context.config.attributes.get("secrets_vault")
    if vault is None:
        from headwater.settings import get_settings

        settings = get_settings()
        # A configured key only: a generated development key file belongs to the embedded database, not to
        # whatever URL this migration was pointed at.
        if settings.secrets_key is not None or settings.secrets_key_file is not None:
            vault = SecretVault.from_settings(settings)
    if vault is None or vault.key_ring is None:
        raise SecretsKeyError(
            f"{count} source(s) hold secrets that this migration encrypts: set HEADWATER_SECRETS_KEY (make one with "
            "`headwater secrets generate-key`) or HEADWATER_SECRETS_KEY_FILE and run it again"
        )
    return vault


def _convert(change: Callable[[SecretVault, dict[str, str], str], dict[str, str]]) -> None:
    bind = op.get_bind()
    rows = [row for row in bind.execute(sa.select(sources.c.id, sources.c.name, sources.c.secrets)) if row.secrets]
    if not rows:
        return
    vault = _vault(len(rows))
    for row in rows:
        bind.execute(
            sources.update().where(sources.c.id == row.id).values(secrets=change(vault, row.secrets, row.name))
        )


def upgrade() -> None:
    _convert(lambda vault, plain, _: {key: vault.keys.encrypt(value) for key, value in plain.items()})


def downgrade() -> None:
    _convert(lambda vault, sealed, name: vault.unseal(sealed, source=name))
