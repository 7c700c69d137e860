"""The ``elasticsearch`` search backend, for catalogs too big or too busy for the database's full-text index.

* An index template with explicit mappings (``dynamic: strict``) and analyzers: names split into words
  on punctuation, underscores and camelCase; an edge n-gram subfield for search-as-you-type; a completion
  field for suggestions (:mod:`headwater.search.elasticsearch_index`). Spelling suggestions come from the
  term suggester over the indexed words.
* Searches and incremental writes go through an alias. ``headwater search reindex`` builds a new
  versioned index (``<alias>-v<timestamp>``) beside the live one, then moves the alias in one atomic
  ``_aliases`` call and deletes the old index: readers never see an empty or half-built index.
* Tiers (see :mod:`headwater.search.base`) are ``constant_score`` clauses under one ``dis_max``, so a hit's
  score is its best tier's boost alone; hits of one tier are then ordered by name and dataset id, as on sql.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from headwater.errors import InvalidInput
from headwater.pagination import decode_cursor, encode_cursor
from headwater.search.base import (
    FACETS,
    DocumentType,
    MatchTier,
    Rebuild,
    SearchBackend,
    SearchDocument,
    SearchHit,
    SearchPage,
    SearchQuery,
    SearchUnavailable,
    Suggestion,
    describe,
    facet_list,
)
from headwater.search.elasticsearch_index import SPELLING_FIELDS, document_source, index_template
from headwater.search.text import MARK_END, MARK_START, near_spellings, parse_query, spelling_edits

__all__ = ["ElasticsearchBackend", "index_template"]

log = logging.getLogger("headwater.search.elasticsearch")

_FACET_FIELDS = {
    "source": "source",
    "kind": "kind",
    "namespace": "namespace",
    "format": "format",
    "tag": "tags",
    "owner": "owners",
}
_TIER_BOOSTS = [1_000_000.0, 100_000.0, 10_000.0, 1_000.0, 100.0]
# A name within the typo distance of the whole query (``subscriptons``): exact tier, after true exact names.
_NEAR_EXACT = 500_000.0
_SORTS: dict[str, list[dict[str, str]]] = {
    "relevance": [{"_score": "desc"}, {"name_key": "asc"}, {"dataset_id": "asc"}, {"key": "asc"}],
    "name": [{"name_key": "asc"}, {"key": "asc"}],
    "-name": [{"name_key": "desc"}, {"key": "desc"}],
    "updated_at": [{"updated_at": "asc"}, {"key": "asc"}],
    "-updated_at": [{"updated_at": "desc"}, {"key": "desc"}],
}


def _visible(audience: frozenset[str]) -> dict[str, Any]:
    """The filter: a document of an unrestricted dataset, or of one whose audience ``audience`` is in."""
    return {
        "bool": {
            "should": [
                {"bool": {"must_not": {"exists": {"field": "audience"}}}},
                {"terms": {"audience": sorted(audience)}},
            ],
            "minimum_should_match": 1,
        }
    }


def _tier(score: float) -> MatchTier:
    if score >= _NEAR_EXACT:
        return MatchTier.EXACT
    for tier, boost in enumerate(_TIER_BOOSTS):
        if score >= boost:
            return MatchTier(tier)
    return MatchTier.OTHER


class ElasticsearchBackend(SearchBackend):
    """Search documents in Elasticsearch (8.x), behind an alias."""

    name = "elasticsearch"

    def __init__(
        self,
        url: str,
        *,
        alias: str = "headwater",
        api_key: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        timeout: float = 10.0,
        refresh: bool = False,
    ) -> None:
        try:
            from elasticsearch import Elasticsearch
        except ImportError as exc:  # pragma: no cover - the extra is part of dev
            raise SearchUnavailable(
                "HEADWATER_SEARCH_BACKEND=elasticsearch needs the client: pip install 'headwater[elasticsearch]'"
            ) from exc
        self.alias = alias
        self.url = url
        # refresh=True makes every write visible to the next search at once (tests); off, Elasticsearch
        # refreshes on its own within a second.
        self.refresh = refresh
        self._ready = False
        self.client = Elasticsearch(
            [u.strip() for u in url.split(",") if u.strip()],
            api_key=api_key,
            basic_auth=basic_auth,
            request_timeout=timeout,
            max_retries=1,
            retry_on_timeout=False,
        )

    @property
    def position_key(self) -> str:
        """Positions are per alias: two Headwaters sharing a cluster keep their own."""
        return f"elasticsearch:{self.alias}"

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from elasticsearch import ApiError, TransportError

        try:
            return fn(*args, **kwargs)
        except (TransportError, ApiError) as exc:
            raise SearchUnavailable(f"Elasticsearch at {self.url}: {what} failed: {describe(exc)}") from exc

    # -- indices ----------------------------------------------------------------------------------

    def _new_index_name(self) -> str:
        return f"{self.alias}-v{dt.datetime.now(dt.UTC).strftime('%Y%m%d%H%M%S%f')}"

    def live_indices(self) -> list[str]:
        """The indices the alias points at (one, except during a botched manual change)."""
        from elasticsearch import NotFoundError

        try:
            return sorted(self.client.indices.get_alias(name=self.alias).body)
        except NotFoundError:
            return []
        except Exception as exc:  # noqa: BLE001 - any transport failure means "unavailable"
            raise SearchUnavailable(f"Elasticsearch at {self.url} is unavailable: {describe(exc)}") from exc

    def ensure_ready(self) -> None:
        """Install the template; create the first index and the alias when there is none."""
        self._call(
            "installing the index template",
            self.client.indices.put_index_template,
            name=f"{self.alias}-template",
            **index_template(self.alias),
        )
        live = self.live_indices()
        if not live:
            index = self._new_index_name()
            self._call("creating an index", self.client.indices.create, index=index)
            self._call(
                "creating the alias",
                self.client.indices.update_aliases,
                actions=[{"add": {"index": index, "alias": self.alias}}],
            )
        else:  # an index made before restricted datasets existed lacks the audience field (its mapping is strict)
            self._call(
                "adding the audience field",
                self.client.indices.put_mapping,
                index=",".join(live),
                properties={"audience": {"type": "keyword"}},
            )
        self._ready = True

    # -- writing ----------------------------------------------------------------------------------

    def _write(
        self, index: str, dataset_ids: Sequence[int], documents: Sequence[SearchDocument], *, refresh: bool
    ) -> None:
        from elasticsearch import helpers

        def actions() -> Iterator[dict[str, Any]]:
            for doc in documents:
                yield {"_op_type": "index", "_index": index, "_id": doc.key, "_source": document_source(doc)}

        if documents:
            try:
                helpers.bulk(self.client, actions(), chunk_size=1000, refresh=refresh)
            except helpers.BulkIndexError as exc:
                raise SearchUnavailable(
                    f"Elasticsearch refused {len(exc.errors)} document(s): {exc.errors[:1]}"
                ) from exc
            except Exception as exc:  # noqa: BLE001
                raise SearchUnavailable(f"Elasticsearch at {self.url}: bulk indexing failed: {describe(exc)}") from exc
        if dataset_ids:
            keys = [doc.key for doc in documents]
            self._call(
                "deleting stale documents",
                self.client.delete_by_query,
                index=index,
                query={
                    "bool": {
                        "filter": [{"terms": {"dataset_id": list(dataset_ids)}}],
                        "must_not": [{"terms": {"key": keys}}],
                    }
                },
                refresh=refresh,
                conflicts="proceed",
            )

    def replace(self, dataset_ids: Sequence[int], documents: Sequence[SearchDocument]) -> None:
        """Index ``documents`` and delete the other documents of ``dataset_ids`` (through the alias)."""
        if not self._ready:
            self.ensure_ready()
        self._write(self.alias, dataset_ids, documents, refresh=self.refresh)

    def begin_rebuild(self) -> Rebuild:
        """Build a new versioned index beside the live one; :meth:`Rebuild.finish` swaps the alias."""
        self._call(
            "installing the index template",
            self.client.indices.put_index_template,
            name=f"{self.alias}-template",
            **index_template(self.alias),
        )
        index = self._new_index_name()
        self._call("creating an index", self.client.indices.create, index=index)
        return _EsRebuild(self, index)

    # -- reading ----------------------------------------------------------------------------------

    def count_documents(self) -> dict[str, int]:
        """Documents per type, through the alias."""
        response = self._call(
            "counting", self.client.search, index=self.alias, size=0, aggs={"types": {"terms": {"field": "type"}}}
        )
        counts = {t.value: 0 for t in DocumentType}
        counts.update({b["key"]: b["doc_count"] for b in response["aggregations"]["types"]["buckets"]})
        return counts

    def _query(self, query: SearchQuery) -> tuple[dict[str, Any], bool]:
        parsed = parse_query(query.q)
        filters: list[dict[str, Any]] = [{"terms": {"type": [t.value for t in query.types]}}]
        for facet, values in query.filters.items():
            filters.append({"terms": {_FACET_FIELDS[facet]: values}})
        if query.audience is not None:
            filters.append(_visible(query.audience))
        fields = ["name.words", "description", "columns", "other"]
        for phrase in query.phrases:
            phrased = [{"match_phrase": {f: phrase}} for f in fields]
            filters.append({"bool": {"should": phrased, "minimum_should_match": 1}})
        if parsed.empty:
            return {"bool": {"must": [{"match_all": {}}], "filter": filters}}, False
        words = " ".join(parsed.terms)
        exact = parsed.exact
        keys = ("name_key", "short_key")

        def anywhere(word: str) -> dict[str, Any]:
            every = [*fields, "name.edge"]
            return {"multi_match": {"query": word, "fields": every, "fuzziness": "AUTO", "prefix_length": 1}}

        def tier(clause: dict[str, Any], boost: float) -> dict[str, Any]:
            return {"constant_score": {"filter": clause, "boost": boost}}

        def words_in(fields: list[str]) -> dict[str, Any]:
            return {
                "bool": {
                    "should": [
                        {"multi_match": {"query": words, "fields": fields, "type": "cross_fields", "operator": "and"}},
                        {
                            "multi_match": {
                                "query": words,
                                "fields": [f"{f}" for f in fields],
                                "operator": "and",
                                "fuzziness": "AUTO",
                                "prefix_length": 1,
                            }
                        },
                        {"match": {"name.edge": {"query": words, "operator": "and"}}}
                        if fields == ["name.words"]
                        else {"match_none": {}},
                    ]
                }
            }

        near = [{"fuzzy": {key: {"value": exact, "fuzziness": "AUTO", "prefix_length": 1}}} for key in keys]
        should = [
            tier({"bool": {"should": [{"terms": {key: parsed.exact_forms}} for key in keys]}}, _TIER_BOOSTS[0]),
            tier({"bool": {"should": near}}, _NEAR_EXACT),
            tier(
                {"bool": {"should": [{"prefix": {"name_key": exact}}, {"prefix": {"short_key": exact}}]}},
                _TIER_BOOSTS[1],
            ),
            tier(words_in(["name.words"]), _TIER_BOOSTS[2]),
            tier(words_in(["name.words", "description"]), _TIER_BOOSTS[3]),
            tier(words_in(["name.words", "description", "columns"]), _TIER_BOOSTS[4]),
            # Every word somewhere (typos allowed): the same AND semantics as the sql backend.
            tier({"bool": {"must": [anywhere(word) for word in parsed.terms]}}, 1.0),
        ]
        must_not = [{"multi_match": {"query": w, "fields": fields}} for w in parsed.excluded]
        return {"bool": {"must": [{"dis_max": {"queries": should}}], "filter": filters, "must_not": must_not}}, True

    def run(self, query: SearchQuery) -> SearchPage:
        """Answer a validated query exactly as asked (every word must match)."""
        es_query, scored = self._query(query)
        sort = query.effective_sort if scored else ("name" if query.sort == "relevance" else query.sort)
        body: dict[str, Any] = {
            "query": es_query,
            "sort": _SORTS[sort],
            "size": query.limit + 1,
            "track_total_hits": True,
            "track_scores": True,
            "_source": {"excludes": ["suggest", "columns", "other"]},
        }
        if query.cursor:
            values = decode_cursor(query.cursor, f"search:{sort}")
            if len(values) != len(_SORTS[sort]):
                raise InvalidInput("cursor is malformed", detail={"field": "cursor"})
            body["search_after"] = values
        if query.facets:
            body["aggs"] = {facet: {"terms": {"field": _FACET_FIELDS[facet], "size": 20}} for facet in FACETS}
        if query.highlight and scored:
            body["highlight"] = {
                "pre_tags": [MARK_START],
                "post_tags": [MARK_END],
                "fields": {"name.words": {"number_of_fragments": 0}, "description": {}, "columns": {}},
            }
        response = self._call("searching", self.client.search, index=self.alias, **body)
        hits = response["hits"]["hits"]
        next_cursor = None
        if len(hits) > query.limit:
            hits = hits[: query.limit]
            next_cursor = encode_cursor(f"search:{sort}", list(hits[-1]["sort"]))
        items = [self._hit(h, scored) for h in hits]
        facets: dict[str, dict[str, int]] = {}
        for facet in FACETS if query.facets else ():
            facets[facet] = {str(b["key"]): int(b["doc_count"]) for b in response["aggregations"][facet]["buckets"]}
        total = response["hits"]["total"]
        return SearchPage(
            items=items,
            next_cursor=next_cursor,
            total=int(total["value"] if isinstance(total, dict) else total),
            facets=facet_list(facets) if query.facets else {},
        )

    def _hit(self, hit: dict[str, Any], scored: bool) -> SearchHit:
        src = hit["_source"]
        score = float(hit["_score"]) if scored and hit.get("_score") is not None else None
        highlights: dict[str, list[str]] = {}
        for field, label in (("name.words", "name"), ("description", "description"), ("columns", "columns")):
            if field in hit.get("highlight", {}):
                highlights[label] = list(hit["highlight"][field])[:5]
        return SearchHit(
            key=src["key"],
            type=DocumentType(src["type"]),
            dataset_id=int(src["dataset_id"]),
            name=src["name"],
            dataset_name=src["dataset_name"],
            namespace=src["namespace"],
            source=src["source"],
            kind=src["kind"],
            format=src.get("format"),
            description=src.get("description") or None,
            tags=list(src.get("tags") or []),
            owners=list(src.get("owners") or []),
            updated_at=dt.datetime.fromisoformat(src["updated_at"]),
            match=_tier(score) if score is not None else None,
            score=score,
            highlights=highlights,
        )

    def spelling(self, words: Sequence[str]) -> dict[str, list[str]]:
        """Near terms of names, columns and tags from the term suggester (at most two edits, Lucene's limit; the
        first letter may be wrong too, which fuzzy matching never forgives). ``suggest_mode: always`` so the
        answer does not depend on whether the word itself is indexed somewhere the reader cannot see."""
        wanted = [w for w in words if spelling_edits(w)]
        if not wanted:
            return {}
        options = {"suggest_mode": "always", "max_edits": 2, "prefix_length": 0, "min_word_length": 4, "size": 10}
        suggest = {
            f"f{i}": {"text": " ".join(wanted), "term": {"field": field, **options}}
            for i, field in enumerate(SPELLING_FIELDS)
        }
        response = self._call("suggesting spellings", self.client.search, index=self.alias, size=0, suggest=suggest)
        found: dict[str, set[str]] = {}
        for entries in response.get("suggest", {}).values():
            for entry in entries:
                found.setdefault(entry["text"], set()).update(option["text"] for option in entry["options"])
        # Ranked and bounded as on sql, so both backends offer the same words.
        ranked = {word: near_spellings(word, found.get(word, ())) for word in wanted}
        return {word: near for word, near in ranked.items() if near}

    def suggest(
        self, prefix: str, *, limit: int, types: Sequence[DocumentType], audience: frozenset[str] | None = None
    ) -> list[Suggestion]:
        """Completion suggestions on names, their last segment and their word suffixes.

        The completion suggester cannot filter on the audience, so a reader who does not see every dataset is
        answered by a prefix query with the audience filter in it instead (pages stay full, nothing leaks).
        """
        if audience is not None:
            return self._suggest_filtered(prefix, limit=limit, types=types, audience=audience)
        response = self._call(
            "suggesting",
            self.client.search,
            index=self.alias,
            suggest={
                "names": {
                    "prefix": prefix.strip().lower(),
                    "completion": {"field": "suggest", "size": limit * 3, "skip_duplicates": True},
                }
            },
            source_includes=["name", "type", "dataset_id", "namespace", "kind"],
        )
        wanted = {t.value for t in types}
        found: list[Suggestion] = []
        seen: set[str] = set()
        for option in response["suggest"]["names"][0]["options"]:
            src = option["_source"]
            if src["type"] not in wanted or option["_id"] in seen:
                continue
            seen.add(option["_id"])
            found.append(
                Suggestion(
                    text=src["name"],
                    type=DocumentType(src["type"]),
                    dataset_id=int(src["dataset_id"]),
                    namespace=src["namespace"],
                    kind=src["kind"],
                )
            )
        # Whole-name prefixes first, then shorter names: the same order as the sql backend.
        key = prefix.strip().lower()
        found.sort(key=lambda s: (not s.text.lower().startswith(key), len(s.text), s.text.lower()))
        return found[:limit]

    def _suggest_filtered(
        self, prefix: str, *, limit: int, types: Sequence[DocumentType], audience: frozenset[str]
    ) -> list[Suggestion]:
        key = prefix.strip().lower()
        query = {
            "bool": {
                "filter": [{"terms": {"type": [t.value for t in types]}}, _visible(audience)],
                "should": [
                    {"prefix": {"name_key": key}},
                    {"prefix": {"short_key": key}},
                    {"match_phrase_prefix": {"name.words": key}},
                ],
                "minimum_should_match": 1,
            }
        }
        response = self._call(
            "suggesting",
            self.client.search,
            index=self.alias,
            query=query,
            size=limit * 3,
            source_includes=["name", "type", "dataset_id", "namespace", "kind"],
        )
        found = [
            Suggestion(
                text=src["name"],
                type=DocumentType(src["type"]),
                dataset_id=int(src["dataset_id"]),
                namespace=src["namespace"],
                kind=src["kind"],
            )
            for src in (hit["_source"] for hit in response["hits"]["hits"])
        ]
        found.sort(key=lambda s: (not s.text.lower().startswith(key), len(s.text), s.text.lower()))
        return found[:limit]


class _EsRebuild(Rebuild):
    def __init__(self, backend: ElasticsearchBackend, index: str) -> None:
        self.backend = backend
        self.index = index

    def add(self, dataset_ids: Sequence[int], documents: Sequence[SearchDocument]) -> None:
        self.backend._write(self.index, [], documents, refresh=False)

    def finish(self) -> None:
        client = self.backend.client
        old = self.backend.live_indices()
        self.backend._call("refreshing the new index", client.indices.refresh, index=self.index)
        actions: list[dict[str, Any]] = [{"remove": {"index": name, "alias": self.backend.alias}} for name in old]
        actions.append({"add": {"index": self.index, "alias": self.backend.alias}})
        self.backend._call("swapping the alias", client.indices.update_aliases, actions=actions)
        for name in old:
            self.backend._call("deleting the old index", client.indices.delete, index=name)

    def abort(self) -> None:
        try:
            self.backend.client.indices.delete(index=self.index)
        except Exception as exc:  # noqa: BLE001 - best effort; the live index is untouched either way
            log.warning("could not delete the abandoned index %s: %s", self.index, exc)
