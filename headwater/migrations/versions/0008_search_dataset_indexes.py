"""Search: full-text indexes over dataset documents alone, so a dataset query never walks column documents.

With one document per column (the server's default, ``HEADWATER_SEARCH_INDEX_COLUMNS=true``) a catalog of
100,000 datasets x 20 fields holds 2,100,000 documents, 95 % of them columns. A dataset query (the default
kind) read column documents out of the GIN indexes of 0004 / 0006 and dropped them with the type filter.

PostgreSQL: partial GIN indexes ``WHERE type = 'dataset'`` on the three full-text expressions relevance
search reads (name words, name + description words, the weighted ``fts_vector``). The planner uses them when
a statement says ``d.type = 'dataset'`` literally (``SqlBuilder.filters`` writes it so for dataset-only
searches). The expressions must match ``PG_NAME_VECTOR`` / ``PG_DESCRIBED_VECTOR`` in
``headwater.search.sql_query`` exactly. Named ``fts_*`` so autogenerate leaves them alone.

SQLite: a second external-content FTS5 table, ``fts_search_datasets``, holding dataset documents alone (same
columns, tokenizer and prefix indexes as ``fts_search_documents`` of 0004), kept in step by triggers that
fire for dataset rows only; ``headwater.search.sql_query.fts_table`` picks it for dataset-only searches.

Revision ID: 0008
Revises: 0006
Create Date: 2026-11-30 06:15:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TEXT_COLUMNS = "name_text, description_text, columns_text, other_text"
_NEW = "new.id, new.name_text, new.description_text, new.columns_text, new.other_text"
_OLD = "'delete', old.id, old.name_text, old.description_text, old.columns_text, old.other_text"
SQLITE_UP = [
    f"""CREATE VIRTUAL TABLE fts_search_datasets USING fts5({_TEXT_COLUMNS}, content='search_documents',
        content_rowid='id', tokenize='unicode61 remove_diacritics 2', prefix='2 3 4')""",
    f"""CREATE TRIGGER fts_search_datasets_ai AFTER INSERT ON search_documents WHEN new.type = 'dataset' BEGIN
        INSERT INTO fts_search_datasets(rowid, {_TEXT_COLUMNS}) VALUES ({_NEW}); END""",
    f"""CREATE TRIGGER fts_search_datasets_ad AFTER DELETE ON search_documents WHEN old.type = 'dataset' BEGIN
        INSERT INTO fts_search_datasets(fts_search_datasets, rowid, {_TEXT_COLUMNS}) VALUES ({_OLD}); END""",
    # One trigger, old entry out before new entry in (two triggers would fire in an unspecified order, and
    # an FTS5 'delete' after the insert would remove the words old and new share).
    f"""CREATE TRIGGER fts_search_datasets_au AFTER UPDATE ON search_documents
        WHEN old.type = 'dataset' OR new.type = 'dataset' BEGIN
        INSERT INTO fts_search_datasets(fts_search_datasets, rowid, {_TEXT_COLUMNS})
            SELECT {_OLD} WHERE old.type = 'dataset';
        INSERT INTO fts_search_datasets(rowid, {_TEXT_COLUMNS}) SELECT {_NEW} WHERE new.type = 'dataset'; END""",
    f"""INSERT INTO fts_search_datasets(rowid, {_TEXT_COLUMNS})
        SELECT id, {_TEXT_COLUMNS} FROM search_documents WHERE type = 'dataset'""",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS fts_search_datasets_au",
    "DROP TRIGGER IF EXISTS fts_search_datasets_ad",
    "DROP TRIGGER IF EXISTS fts_search_datasets_ai",
    "DROP TABLE IF EXISTS fts_search_datasets",
]
# fastupdate = off for the reason given in 0006: a pending list is scanned linearly by every search.
POSTGRES_UP = [
    "CREATE INDEX IF NOT EXISTS fts_search_documents_dataset_name_words ON search_documents "
    "USING gin (to_tsvector('simple'::regconfig, name_text)) WITH (fastupdate = off) WHERE type = 'dataset'",
    "CREATE INDEX IF NOT EXISTS fts_search_documents_dataset_described_words ON search_documents "
    "USING gin (to_tsvector('simple'::regconfig, name_text || ' ' || description_text)) "
    "WITH (fastupdate = off) WHERE type = 'dataset'",
    "CREATE INDEX IF NOT EXISTS fts_search_documents_dataset_vector ON search_documents "
    "USING gin (fts_vector) WITH (fastupdate = off) WHERE type = 'dataset'",
]
POSTGRES_DOWN = [
    "DROP INDEX IF EXISTS fts_search_documents_dataset_vector",
    "DROP INDEX IF EXISTS fts_search_documents_dataset_described_words",
    "DROP INDEX IF EXISTS fts_search_documents_dataset_name_words",
]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in POSTGRES_UP if dialect == "postgresql" else SQLITE_UP if dialect == "sqlite" else []:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in POSTGRES_DOWN if dialect == "postgresql" else SQLITE_DOWN if dialect == "sqlite" else []:
        op.execute(statement)
