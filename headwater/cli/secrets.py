"""``headwater secrets``: make a key, and re-encrypt every stored source secret with a new one.

Rotation, in the order the commands support (docs/security/secrets.md):

1. The new key goes first in the key ring, the old ones after it (they still decrypt). With a key file,
   ``rotate-key --generate`` does this itself; with ``HEADWATER_SECRETS_KEY``, make a key with
   ``generate-key`` and set ``HEADWATER_SECRETS_KEY=NEW,OLD`` on every server and this command.
2. ``rotate-key`` re-encrypts every stored secret with the first key, in one transaction.
3. The old keys are retired: ``--retire`` rewrites a key file with the first key only, after checking that
   it alone decrypts every stored secret; with the setting, remove them from ``HEADWATER_SECRETS_KEY``.
"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import select

from headwater.catalog.models import Source
from headwater.catalog.sources import rotate_secrets
from headwater.cli.common import console, fail, friendly_errors, load_settings, open_session
from headwater.secrets import KEY_SETTING, SecretVault, generate_key, write_key_file

__all__ = ["secrets_app"]

secrets_app: typer.Typer = typer.Typer(help="Source secrets: encryption keys and their rotation.", no_args_is_help=True)


@secrets_app.command("generate-key")
def secrets_generate_key() -> None:
    """Print a new key for HEADWATER_SECRETS_KEY (or a line of HEADWATER_SECRETS_KEY_FILE)."""
    print(generate_key())


@secrets_app.command("rotate-key")
@friendly_errors
def secrets_rotate_key(
    generate: Annotated[
        bool, typer.Option("--generate", help="Key file only: put a new key first in it before re-encrypting.")
    ] = False,
    retire: Annotated[
        bool, typer.Option("--retire", help="Key file only: afterwards keep only the first key in it.")
    ] = False,
) -> None:
    """Re-encrypt every stored source secret with the first key of the key ring."""
    settings = load_settings()
    vault = SecretVault.from_settings(settings)
    ring = vault.keys
    if (generate or retire) and not ring.from_file:
        raise fail(
            f"the keys come from {KEY_SETTING}, which this command cannot change: make a key with "
            f"`headwater secrets generate-key`, set {KEY_SETTING}=NEW,OLD, run `headwater secrets rotate-key`, "
            "then remove OLD"
        )
    if generate:
        assert ring.path is not None
        write_key_file(ring.path, [generate_key(), *ring.keys()])
    with open_session(settings) as session:
        sources, values = rotate_secrets(session, vault=vault)
    console.print(f"Re-encrypted {values} secret(s) of {sources} source(s) with the first key of {ring.setting}.")
    older = len(ring.keys()) - 1
    if not retire:
        if older:
            console.print(f"{older} older key(s) still decrypt; retire them once every server has the new key first.")
        return
    with open_session(settings) as session:
        stale = [
            source.name
            for source in session.scalars(select(Source).where(Source.secrets.is_not(None)).limit(100_000))
            if any(not ring.first_key_decrypts(token) for token in (source.secrets or {}).values())
        ]
    if stale:
        raise fail(f"not retiring: source(s) {', '.join(stale[:10])} were written meanwhile; run this command again")
    assert ring.path is not None
    write_key_file(ring.path, ring.keys()[:1])
    console.print(f"Retired {older} older key(s): {ring.path} now holds the first key only.")
