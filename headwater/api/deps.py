"""Typed FastAPI dependencies: the request's session (the route owns the transaction, and a bounded number of
requests hold one), a database slot for work that opens its own session, and the app's settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from headwater.settings import Settings

__all__ = ["SessionDep", "SettingsDep", "app_settings", "db_slot", "get_session"]


def _end(session: Session, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One session and transaction per request: committed before the response is sent, rolled back on error.

    At most ``app.state.db_slots`` requests hold a session at once, fewer than the pool has connections.
    Without that bound, a burst of requests filled every worker thread with routes waiting for a connection
    while the requests holding the connections waited for a thread to commit and give them back: the server
    stalled until the pool's timeout. Waiting here costs no thread. The end of the transaction is shielded
    from cancellation (a client that goes away) so that the connection always returns to the pool.
    """
    async with db_slot(request):
        session = request.app.state.sessionmaker()
        try:
            yield session
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_end, session, False)
            raise
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_end, session, True)


@asynccontextmanager
async def db_slot(request: Request) -> AsyncIterator[None]:
    """Hold one of the app's database slots (for work that opens its own session in a worker thread)."""
    async with request.app.state.db_slots:
        yield


# Scope "function": the transaction ends when the route returns, before the response goes out, so a client
# never reads a 201 for a write that is not committed yet (or that fails to commit).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def app_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(app_settings)]
