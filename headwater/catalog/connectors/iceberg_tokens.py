"""Version tokens of Iceberg catalogs other than SQL ones (:mod:`headwater.catalog.connectors.iceberg`).

A table's token is its metadata location, which changes with every commit. Where it comes from:

- **Hive catalogs** keep it in the metastore table's ``metadata_location`` parameter. pyiceberg's own
  ``list_tables`` already reads every table object (to keep the Iceberg ones) and throws it away; the
  listing here reads the same objects, a chunk of ``page_size`` at a time, and keeps the location.
- **REST catalogs** list identifiers only. A table's token is learnt when it is loaded: its metadata
  location, plus the ``ETag`` the server sent, if any. A later load sends that ETag as ``If-None-Match``
  (Iceberg REST spec, ``loadTable``): a server that supports it answers ``304 Not Modified`` with no body.
  One that does not still sends the ``metadata-location`` first in its answer, which is compared before
  the metadata is validated and converted, the costly part of a load.

Both reach into pyiceberg's catalog clients (``_client``, ``_session``, ``_response_to_table``): the
public API has no way to ask for a table's location without loading it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import orjson

from headwater.catalog.connectors.listing import DatasetRef, ListingPage, Unmodified

if TYPE_CHECKING:
    from pyiceberg.table import Table

__all__ = ["list_hive", "load_rest", "rest_token", "split_rest_token"]

# Separates a REST token's metadata location from the server's ETag (neither holds a newline).
_ETAG_MARK = "\n"


def rest_token(metadata_location: str, etag: str | None) -> str:
    """A REST table's version token: its metadata location, and the server's ETag when it sent one."""
    return f"{metadata_location}{_ETAG_MARK}{etag}" if etag else metadata_location


def split_rest_token(token: str | None) -> tuple[str | None, str | None]:
    """(metadata location, ETag) of a stored token; (None, None) for none."""
    if not token:
        return None, None
    location, _, etag = token.partition(_ETAG_MARK)
    return location, etag or None


def load_rest(catalog: Any, identifier: tuple[str, ...], stored: str | None) -> tuple[Table, str] | Unmodified:
    """Load a table from a REST catalog, conditionally on its stored token: (table, new token), or Unmodified."""
    from pyiceberg.catalog.rest import Endpoints, TableResponse
    from pyiceberg.catalog.rest.response import _handle_non_200_response
    from pyiceberg.exceptions import NoSuchTableError
    from requests import HTTPError

    stored_location, stored_etag = split_rest_token(stored)
    params = {}
    mode = catalog.properties.get("snapshot-loading-mode")
    if mode in {"all", "refs"}:
        params["snapshots"] = mode
    headers = {"If-None-Match": stored_etag} if stored_etag else {}
    url = catalog.url(Endpoints.load_table, prefixed=True, **catalog._split_identifier_for_path(identifier))
    response = catalog._session.get(url, params=params, headers=headers)
    if response.status_code == 304 and stored:
        return Unmodified(version=stored)
    try:
        response.raise_for_status()
    except HTTPError as exc:
        _handle_non_200_response(exc, {404: NoSuchTableError})
    body = orjson.loads(response.content)
    location = body.get("metadata-location")
    token = rest_token(location, response.headers.get("ETag")) if location else None
    if token is not None and location == stored_location:
        return Unmodified(version=token)  # validating and converting the metadata is the costly part
    table = catalog._response_to_table(identifier, TableResponse.model_validate(body))
    return table, token or table.metadata_location


def list_hive(catalog: Any, *, namespace: str, page_size: int, wanted: Callable[[str], bool]) -> Iterator[ListingPage]:
    """The Iceberg tables of a Hive catalog, a chunk of one database per page, their metadata locations as tokens."""
    with catalog._client as client:
        databases = sorted(client.get_all_databases())
    for database in databases:
        if not wanted(database):
            continue
        with catalog._client as client:
            names = sorted(client.get_all_tables(database))
        for start in range(0, len(names), page_size):
            with catalog._client as client:
                objects = client.get_table_objects_by_name(database, names[start : start + page_size])
            refs = []
            for table in sorted(objects, key=lambda t: t.tableName):
                parameters = table.parameters or {}
                if parameters.get("table_type", "").lower() != "iceberg":
                    continue
                refs.append(
                    DatasetRef(
                        namespace=namespace,
                        name=f"{database}.{table.tableName}",
                        version=parameters.get("metadata_location") or None,
                    )
                )
            if refs:
                yield ListingPage(refs=refs)
