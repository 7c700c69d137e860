"""Search: indexes for relevance search tier by tier (``headwater.search.sql_ranking``).

PostgreSQL: GIN indexes on the words of names, and of names + descriptions. Relevance search reads the
name tier, then the name + description tier, through them: the weighted ``fts_vector`` index of 0004
cannot tell a name word from a column word without re-checking every hit on the heap. The expressions
must match ``PG_NAME_VECTOR`` / ``PG_DESCRIBED_VECTOR`` in ``headwater.search.sql_query`` exactly.

SQLite: its FTS5 table filters by column itself; an index on (type, short_key) lets the last-segment
prefix step pick the shortest names from the index alone. Named ``fts_*`` so autogenerate leaves them alone.

Revision ID: 0006
Revises: 0007 (0007, jobs lifecycle, was committed first on top of 0005; one head)
Create Date: 2026-11-30 05:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# fastupdate = off: with GIN's pending list on, every search also scans the not-yet-merged entries
# linearly until a vacuum merges them (measured: 483 pending pages made one query 4x slower). Search
# reads far more often than the indexer writes, so writes pay to keep the index merged.
POSTGRES_UP = [
    "CREATE INDEX IF NOT EXISTS fts_search_documents_name_words ON search_documents "
    "USING gin (to_tsvector('simple'::regconfig, name_text)) WITH (fastupdate = off)",
    "CREATE INDEX IF NOT EXISTS fts_search_documents_described_words ON search_documents "
    "USING gin (to_tsvector('simple'::regconfig, name_text || ' ' || description_text)) WITH (fastupdate = off)",
    "ALTER INDEX fts_search_documents_vector SET (fastupdate = off)",
    "SELECT gin_clean_pending_list('fts_search_documents_vector'::regclass)",
]
SQLITE_UP = ["CREATE INDEX IF NOT EXISTS fts_search_documents_type_short_key ON search_documents (type, short_key)"]
SQLITE_DOWN = ["DROP INDEX IF EXISTS fts_search_documents_type_short_key"]
POSTGRES_DOWN = [
    "ALTER INDEX fts_search_documents_vector RESET (fastupdate)",
    "DROP INDEX IF EXISTS fts_search_documents_described_words",
    "DROP INDEX IF EXISTS fts_search_documents_name_words",
]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in POSTGRES_UP if dialect == "postgresql" else SQLITE_UP if dialect == "sqlite" else []:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in POSTGRES_DOWN if dialect == "postgresql" else SQLITE_DOWN if dialect == "sqlite" else []:
        op.execute(statement)
