"""Search tables: the documents of the ``sql`` backend, their facet values, the word list typo
tolerance corrects against, and the indexer's stored outbox position (used by every backend).

The full-text index itself is dialect-specific and lives outside the ORM, created by migration 0004:
on SQLite an FTS5 table ``fts_search_documents`` kept in step by triggers; on PostgreSQL a generated
``fts_vector`` tsvector column with a GIN index. Every such object's name starts with ``fts_`` and
:func:`headwater.migrations.include_object` keeps them out of Alembic's model comparison.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from headwater.db import Base, BigInt, JSONType, UTCDateTime, utcnow

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

    id: Mapped[int] = mapped_column(BigInt, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    type: Mapped[str] = mapped_column(String(16))
    dataset_id: Mapped[int] = mapped_column(BigInt, index=True)
    name: Mapped[str] = mapped_column(String(1024))
    name_key: Mapped[str] = mapped_column(String(1024))  # lower(name): exact and prefix tiers, sort
    short_key: Mapped[str] = mapped_column(String(1024), index=True)  # lower(last segment of the name)
    dataset_name: Mapped[str] = mapped_column(String(1024))
    namespace: Mapped[str] = mapped_column(String(512))
    source: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    format: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    owners: Mapped[list[str]] = mapped_column(JSONType, default=list)
    columns: Mapped[list[str]] = mapped_column(JSONType, default=list)  # field paths, for highlighting
    field_type: Mapped[str | None] = mapped_column(Text)
    lineage_degree: Mapped[int] = mapped_column(Integer, default=0)
    job_usage: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # Full-text input, already split into lower-case words (see search.text.split_words).
    name_text: Mapped[str] = mapped_column(Text)
    description_text: Mapped[str] = mapped_column(Text)
    columns_text: Mapped[str] = mapped_column(Text)
    other_text: Mapped[str] = mapped_column(Text)


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
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_success_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # One indexer writes an index at a time: it holds this lease and renews it every round.
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
