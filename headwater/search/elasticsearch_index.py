"""The Elasticsearch index behind the ``elasticsearch`` backend: the index template every versioned index is
created from (mappings and analyzers) and the document a :class:`~headwater.search.base.SearchDocument` becomes."""

from __future__ import annotations

from typing import Any

from headwater.search.base import SearchDocument
from headwater.search.text import split_words

__all__ = ["SPELLING_FIELDS", "document_source", "index_template"]

# The fields whose terms are the index's vocabulary for spelling suggestions, as the sql backend's: name words,
# column words (paths, descriptions, tags) and tags.
SPELLING_FIELDS = ("name.words", "columns", "tags")

_WORDS = {"type": "text", "analyzer": "hw_words"}


def index_template(alias: str) -> dict[str, Any]:
    """The index template every versioned index behind ``alias`` is created from."""
    keyword = {"type": "keyword"}
    return {
        "index_patterns": [f"{alias}-v*"],
        "priority": 200,
        "template": {
            "settings": {
                "number_of_shards": 1,
                "analysis": {
                    "tokenizer": {
                        # Words: runs of letters/digits; camelCase boundaries split too.
                        "hw_words": {"type": "pattern", "pattern": "[^\\p{L}\\p{N}]+|(?<=\\p{Ll})(?=\\p{Lu})"},
                        "hw_edge": {
                            "type": "edge_ngram",
                            "min_gram": 1,
                            "max_gram": 20,
                            "token_chars": ["letter", "digit"],
                        },
                    },
                    "analyzer": {
                        "hw_words": {
                            "type": "custom",
                            "tokenizer": "hw_words",
                            "filter": ["lowercase", "asciifolding"],
                        },
                        "hw_edge": {"type": "custom", "tokenizer": "hw_edge", "filter": ["lowercase", "asciifolding"]},
                    },
                },
            },
            "mappings": {
                "dynamic": "strict",
                "properties": {
                    "key": keyword,
                    "type": keyword,
                    "dataset_id": {"type": "long"},
                    "name": {
                        "type": "keyword",
                        "fields": {
                            "words": _WORDS,
                            "edge": {"type": "text", "analyzer": "hw_edge", "search_analyzer": "hw_words"},
                        },
                    },
                    "name_key": keyword,
                    "short_key": keyword,
                    "dataset_name": keyword,
                    "namespace": keyword,
                    "source": keyword,
                    "kind": keyword,
                    "format": keyword,
                    "description": _WORDS,
                    "columns": _WORDS,  # field paths, descriptions and tags (or a column's dataset name)
                    "column_paths": {"type": "keyword", "index": False},
                    "other": _WORDS,
                    "tags": keyword,
                    "owners": keyword,
                    "field_type": {"type": "keyword", "index": False},
                    "lineage_degree": {"type": "integer"},
                    "job_usage": {"type": "integer"},
                    "updated_at": {"type": "date"},
                    "suggest": {"type": "completion", "analyzer": "simple"},
                    "audience": keyword,  # who may find a restricted dataset; absent: anyone
                },
            },
        },
    }


def document_source(doc: SearchDocument) -> dict[str, Any]:
    """The indexed body of one search document."""
    words = split_words(doc.name)
    inputs = list(
        dict.fromkeys([doc.name, doc.short_key, " ".join(words), *[" ".join(words[i:]) for i in range(1, len(words))]])
    )
    return {
        "key": doc.key,
        "type": doc.type.value,
        "dataset_id": doc.dataset_id,
        "name": doc.name,
        "name_key": doc.name.lower(),
        "short_key": doc.short_key,
        "dataset_name": doc.dataset_name,
        "namespace": doc.namespace,
        "source": doc.source,
        "kind": doc.kind,
        "format": doc.format,
        "description": " ".join(
            filter(
                None, [doc.description, doc.source_description if doc.source_description != doc.description else None]
            )
        ),
        "columns": doc.columns_text,
        "column_paths": [c.path for c in doc.columns],
        "other": doc.other_text,
        "tags": doc.tags,
        "owners": doc.owners,
        "field_type": doc.field_type,
        "lineage_degree": doc.lineage_degree,
        "job_usage": doc.job_usage,
        "updated_at": doc.updated_at.isoformat(),
        "suggest": {"input": inputs[:10]},
        **({"audience": doc.audience} if doc.audience else {}),
    }
