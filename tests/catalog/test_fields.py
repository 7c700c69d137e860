"""Flattening, type normalisation, fingerprints and schema diffs."""

from __future__ import annotations

import pytest

from headwater.catalog.fields import FlatField, diff_schemas, fingerprint, flatten, normalize_type
from headwater.catalog.schemas import FieldIn


def _version(*fields: FlatField) -> list[dict[str, object]]:
    return [f.as_version_dict() for f in fields]


def test_flatten_nested_struct_array_and_map_in_iceberg_path_style() -> None:
    declared = [
        FieldIn(name="event_id", type="string", nullable=False),
        FieldIn(
            name="device",
            type="struct<os:struct<name:string>>",
            fields=[FieldIn(name="os", type="struct<name:string>", fields=[FieldIn(name="name", type="string")])],
        ),
        FieldIn(
            name="allocations",
            type="array<struct<test_id:int>>",
            fields=[FieldIn(name="element", type="struct<test_id:int>", fields=[FieldIn(name="test_id", type="int")])],
        ),
        FieldIn(
            name="attrs",
            type="map<string,string>",
            fields=[FieldIn(name="key", type="string"), FieldIn(name="value", type="string")],
        ),
    ]
    flat = flatten(declared)
    assert [f.path for f in flat] == [
        "event_id",
        "device",
        "device.os",
        "device.os.name",
        "allocations",
        "allocations.element",
        "allocations.element.test_id",
        "attrs",
        "attrs.key",
        "attrs.value",
    ]
    by_path = {f.path: f for f in flat}
    assert by_path["device.os.name"].parent_path == "device.os"
    assert by_path["event_id"].nullable is False
    assert by_path["allocations"].normalized_type == "array"


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("string", "string"),
        ("VARCHAR(255)", "string"),
        ("character varying(20)", "string"),
        ("int", "int"),
        ("integer", "int"),
        ("bigint", "long"),
        ("long", "long"),
        ("decimal(10,2)", "decimal"),
        ("numeric", "decimal"),
        ("double precision", "double"),
        ("timestamp with time zone", "timestamptz"),
        ("timestamptz", "timestamptz"),
        ("timestamp_ntz", "timestamp"),
        ("timestamp-millis", "timestamptz"),
        ("struct<a:int>", "struct"),
        ("array<string>", "array"),
        ("integer[]", "array"),
        ("map<string,int>", "map"),
        ("record", "struct"),
        ("jsonb", "json"),
        ("geometry", "unknown"),
    ],
)
def test_normalize_type_maps_source_spellings_to_one_vocabulary(raw: str, normal: str) -> None:
    assert normalize_type(raw) == normal


def test_fingerprint_ignores_comments_but_not_types() -> None:
    base = [FlatField(path="a", name="a", type="int", description="one")]
    commented = [FlatField(path="a", name="a", type="int", description="another comment")]
    widened = [FlatField(path="a", name="a", type="long", description="one")]
    assert fingerprint(base) == fingerprint(commented)
    assert fingerprint(base) != fingerprint(widened)


def test_diff_by_field_id_reports_a_rename_not_a_drop_and_add() -> None:
    old = _version(
        FlatField(path="id", name="id", type="long", field_id=1),
        FlatField(path="title", name="title", type="string", field_id=2),
        FlatField(path="views", name="views", type="int", field_id=3),
    )
    new = [
        FlatField(path="id", name="id", type="long", field_id=1),
        FlatField(path="title_name", name="title_name", type="string", field_id=2),
        FlatField(path="views", name="views", type="long", field_id=3),
        FlatField(path="country", name="country", type="string", field_id=4),
    ]
    diff = diff_schemas(old, new)
    assert [(r.old_path, r.new_path, r.field_id) for r in diff.renamed] == [("title", "title_name", 2)]
    assert [(r.path, r.old_type, r.new_type) for r in diff.retyped] == [("views", "int", "long")]
    assert diff.added == ["country"]
    assert diff.removed == []


def test_diff_without_field_ids_matches_by_path() -> None:
    old = _version(FlatField(path="a", name="a", type="int"), FlatField(path="b", name="b", type="int"))
    new = [FlatField(path="a", name="a", type="int", nullable=False), FlatField(path="c", name="c", type="int")]
    diff = diff_schemas(old, new)
    assert diff.added == ["c"]
    assert diff.removed == ["b"]
    assert diff.renamed == []
    assert [(r.path, r.old_nullable, r.new_nullable) for r in diff.retyped] == [("a", True, False)]


def test_same_path_with_a_new_field_id_is_a_different_field() -> None:
    old = _version(FlatField(path="a", name="a", type="int", field_id=1))
    new = [FlatField(path="a", name="a", type="int", field_id=7)]
    diff = diff_schemas(old, new)
    assert diff.added == ["a"]
    assert diff.removed == ["a"]


def test_diff_of_identical_schemas_is_empty() -> None:
    fields = [FlatField(path="a", name="a", type="int", field_id=1)]
    assert diff_schemas(_version(*fields), fields).is_empty
