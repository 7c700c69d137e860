"""Search tables: the documents of the ``sql`` backend, their facet values, the word list typo
tolerance corrects against, and the indexer's stored outbox position (used by every backend).

The full-text index itself is dialect-specific and lives outside the ORM, created by migration 0004:
on SQLite an FTS5 table ``fts_search_documents`` kept in step by triggers; on PostgreSQL a generated
``fts_vector`` tsvector column with a GIN index. Every such object's name starts with ``fts_`` and
:func:`headwater.migrations.include_object` keeps them out of Alembic's model comparison.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from headwater.db import Base, BigInt, JSONType
from headwater.orm import BigIntPK, Code, Count, LongText, Name, Namespace, UTCNow, UTCTime

__all__ = ["SearchDocumentRow", "SearchFacet", "SearchIndexState", "SearchTerm", "SearchTermTrigram"]

UNMANAGED_PREFIX = "fts_"
Base.metadata.info.setdefault("unmanaged_prefixes", set()).add(UNMANAGED_PREFIX)


class SearchDocumentRow(Base):
    """One search document of the ``sql`` backend (a dataset or a column)."""

    __tablename__ = "search_documents"
    __table_args__ = (
        Index("ix_search_documents_type_name_key_id", "type", "name_key", "id"),
        Index("ix_search_documents_type_updated_at_id", "type", "updated_at", "id"),
    )

    id: Mapped[BigIntPK]
    key: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[Code]
    dataset_id: Mapped[int] = mapped_column(BigInt, index=True)
    name: Mapped[Name]
    name_key: Mapped[str] = mapped_column(String(1024))  # lower(name): exact and prefix tiers, sort
    short_key: Mapped[str] = mapped_column(String(1024), index=True)  # lower(last segment of the name)
    dataset_name: Mapped[Name]
    namespace: Mapped[Namespace]
    source: Mapped[str] = mapped_column(String(128))
    kind: Mapped[Code]
    format: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[LongText | None]
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    owners: Mapped[list[str]] = mapped_column(JSONType, default=list)
    columns: Mapped[list[str]] = mapped_column(JSONType, default=list)  # field paths, for highlighting
    field_type: Mapped[LongText | None]
    lineage_degree: Mapped[Count]
    job_usage: Mapped[Count]
    updated_at: Mapped[UTCTime]
    # Full-text input, already split into lower-case words (see search.text.split_words).
    name_text: Mapped[LongText]
    description_text: Mapped[LongText]
    columns_text: Mapped[LongText]
    other_text: Mapped[LongText]


class SearchFacet(Base):
    """One facet value of one document: filters and facet counts read this table."""

    __tablename__ = "search_facets"
    __table_args__ = (Index("ix_search_facets_facet_value", "facet", "value"),)

    document_id: Mapped[int] = mapped_column(ForeignKey("search_documents.id", ondelete="CASCADE"), primary_key=True)
    facet: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[str] = mapped_column(String(1024), primary_key=True)


class SearchTerm(Base):
    """A word that occurs in some indexed name: the vocabulary typos are corrected against."""

    __tablename__ = "search_terms"

    term: Mapped[str] = mapped_column(String(128), primary_key=True)


class SearchTermTrigram(Base):
    """The trigrams of a vocabulary word, so words near a typo are found without scanning the vocabulary."""

    __tablename__ = "search_term_trigrams"

    trigram: Mapped[str] = mapped_column(String(16), primary_key=True)
    term: Mapped[str] = mapped_column(String(128), primary_key=True)


class SearchIndexState(Base):
    """Where the indexer of one index has got to in the change outbox."""

    __tablename__ = "search_index_state"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    position: Mapped[int] = mapped_column(BigInt, default=0)
    updated_at: Mapped[UTCNow]
    last_success_at: Mapped[UTCTime | None]
    last_error: Mapped[LongText | None]
    last_error_at: Mapped[UTCTime | None]
    # One indexer writes an index at a time: it holds this lease and renews it every round.
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[UTCTime | None]
