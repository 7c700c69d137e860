"""Database leases: one holder at a time, renewals only by the holder, release, and expiry by the database's
clock (run on SQLite and PostgreSQL, on the search indexer's lease row)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from headwater.leases import RowLease, db_clock, db_clock_minus, new_holder, renewed_before
from headwater.search.models import SearchIndexState

LEASE = RowLease(SearchIndexState.lease_owner, SearchIndexState.lease_until)
ROW = SearchIndexState.name == "leased"


def _row(session: Session) -> None:
    session.add(SearchIndexState(name="leased", position=0))
    session.flush()


def test_one_holder_at_a_time_and_only_the_holder_renews_or_releases(session: Session) -> None:
    _row(session)
    assert LEASE.acquire(session, ROW, holder="a", seconds=60)
    assert not LEASE.acquire(session, ROW, holder="b", seconds=60)
    assert not LEASE.acquire(session, ROW, holder="a", seconds=60)  # not reentrant unless asked
    assert LEASE.acquire(session, ROW, holder="a", seconds=60, reentrant=True)
    assert LEASE.renew(session, ROW, holder="a", seconds=60)
    assert not LEASE.renew(session, ROW, holder="b", seconds=60)
    assert not LEASE.release(session, ROW, holder="b")
    assert LEASE.release(session, ROW, holder="a")
    assert LEASE.acquire(session, ROW, holder="b", seconds=60)


def test_an_expired_lease_is_taken_over_by_the_database_clock(session: Session) -> None:
    _row(session)
    assert LEASE.acquire(session, ROW, holder="a", seconds=-1)  # ended a second ago, by the database's clock
    assert session.scalar(select(SearchIndexState.name).where(ROW, LEASE.expired(session))) == "leased"
    assert LEASE.acquire(session, ROW, holder="b", seconds=60)
    assert session.scalar(select(SearchIndexState.lease_owner).where(ROW)) == "b"
    assert not LEASE.renew(session, ROW, holder="a", seconds=60)  # the old holder's renewal matches no row


def test_a_renewal_stamp_runs_out_after_its_timeout(session: Session) -> None:
    _row(session)
    session.execute(SearchIndexState.__table__.update().values(lease_until=db_clock_minus(session, 10)))
    stamp = SearchIndexState.lease_until
    assert session.scalar(select(SearchIndexState.name).where(renewed_before(session, stamp, 5))) == "leased"
    assert session.scalar(select(SearchIndexState.name).where(renewed_before(session, stamp, 60))) is None
    assert session.scalar(select(db_clock(session))) is not None


def test_holder_names_are_unique() -> None:
    assert new_holder() != new_holder()
    assert len(new_holder(digits=6).rsplit(":", 1)[1]) == 6
