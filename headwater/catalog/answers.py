"""Stored answers: each dataset's ready-to-send ``GET /api/v1/datasets/{id}`` body, kept in the database so that a
read that misses the in-process cache (a cold process, a random id, a read right after a write) costs one indexed
read instead of loading and serialising hundreds of field rows.

An answer is stored with the dataset revision it was built from, and served only while the dataset is live and
still at that revision: every change to a dataset bumps its revision (that is what its ETag means), so a write on
any path (a PATCH, a sync, a restriction, an alias, a merge, a bulk load) makes the old answer unusable in the
same transaction, without every writer having to know about this table. The API's own single-dataset writes store
the new answer in their transaction; any other write leaves it to the next read, which stores what it built.
The stored body never carries who may read it: the dataset's audience is read in the same statement and checked
before the answer is served. Why, with the figures: docs/adr/0002-cache-first-reads.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, ForeignKey, Integer, LargeBinary, Row, Select, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from headwater.catalog.models import Dataset, DatasetAudience
from headwater.db import Base, BigInt

__all__ = ["DatasetAnswer", "StoredAnswer", "read_answer", "read_answer_at_once", "store_answer"]


class DatasetAnswer(Base):
    """A dataset's serialised answer as of ``revision`` (valid only while the dataset is at that revision)."""

    __tablename__ = "dataset_answers"

    dataset_id: Mapped[int] = mapped_column(
        BigInt, ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    revision: Mapped[int] = mapped_column(Integer)
    body: Mapped[bytes] = mapped_column(LargeBinary)


@dataclass(frozen=True)
class StoredAnswer:
    """A current stored answer and the audience of its dataset (empty: not restricted)."""

    revision: int
    body: bytes
    members: frozenset[str]


def _answer_statement(dataset_id: int) -> Select[int, bytes, str]:
    return (
        select(DatasetAnswer.revision, DatasetAnswer.body, DatasetAudience.member)
        .join(Dataset, Dataset.id == DatasetAnswer.dataset_id)
        .outerjoin(DatasetAudience, DatasetAudience.dataset_id == DatasetAnswer.dataset_id)
        .where(
            DatasetAnswer.dataset_id == dataset_id,
            Dataset.revision == DatasetAnswer.revision,
            Dataset.deleted_at.is_(None),
        )
    )


def _answer_of(rows: Sequence[Row[int, bytes, str]]) -> StoredAnswer | None:
    if not rows:
        return None
    members = frozenset(row.member for row in rows if row.member is not None)
    return StoredAnswer(rows[0].revision, bytes(rows[0].body), members)


def read_answer(session: Session, dataset_id: int) -> StoredAnswer | None:
    """The stored answer of a live dataset at its current revision, with its audience; None when there is none
    (never stored, or stale since a change, or the dataset is deleted or gone). One statement, by primary key."""
    return _answer_of(session.execute(_answer_statement(dataset_id)).all())


def read_answer_at_once(engine: Engine, dataset_id: int) -> StoredAnswer | None:
    """:func:`read_answer` in one round trip to PostgreSQL: the one statement outside a transaction (autocommit), so
    no BEGIN before it and no COMMIT after it. One statement sees one snapshot either way; a cold read is mostly
    those round trips (three instead of one, each a wake-up of a backend on a busy machine). None on SQLite, which
    has no round trips to save: the caller reads in its transaction as before."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        return _answer_of(connection.execute(_answer_statement(dataset_id)).all())


def store_answer(session: Session, *, dataset_id: int, revision: int, body: bytes) -> None:
    """Keep ``body`` as the answer of ``dataset_id`` at ``revision`` (an answer of a newer revision is kept)."""
    values = {"dataset_id": dataset_id, "revision": revision, "body": body}
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(DatasetAnswer).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[DatasetAnswer.dataset_id],
        set_={"revision": stmt.excluded.revision, "body": stmt.excluded.body},
        where=DatasetAnswer.revision < stmt.excluded.revision,
    )
    session.execute(stmt)
