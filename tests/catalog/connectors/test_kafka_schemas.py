"""The Schema Registry schema parsers on their own: references, recursion, scoping and broken input."""

from __future__ import annotations

import json

import pytest

from headwater.catalog.connectors.kafka_schemas import (
    SchemaParseError,
    flatten_nodes,
    parse_avro,
    parse_json_schema,
    parse_protobuf,
)


def _paths(nodes: list) -> list[tuple[str, str]]:  # type: ignore[type-arg]
    return [(f.path, f.type) for f in flatten_nodes(nodes)]


def test_avro_references_recursion_unions_and_logical_types() -> None:
    address = json.dumps(
        {"type": "record", "name": "Address", "namespace": "shop", "fields": [{"name": "city", "type": "string"}]}
    )
    person = {
        "type": "record",
        "name": "Person",
        "namespace": "shop",
        "fields": [
            {"name": "home", "type": ["null", "shop.Address"]},
            {"name": "parent", "type": ["null", "Person"]},
            {"name": "either", "type": ["int", "string"]},
            {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
            {"name": "tags", "type": {"type": "map", "values": "long"}},
            {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
            {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 16}},
        ],
    }
    nodes, _ = parse_avro(json.dumps(person), [address])
    assert _paths(nodes) == [
        ("home", "record"), ("home.city", "string"), ("parent", "shop.Person"),  # recursion is named, not expanded
        ("either", "union<int,string>"), ("price", "decimal(9,2)"), ("tags", "map<string,long>"),
        ("tags.key", "string"), ("tags.value", "long"), ("kind", "enum"), ("hash", "fixed(16)"),
    ]  # fmt: skip
    assert nodes[0].nullable and not nodes[2].nullable
    with pytest.raises(SchemaParseError, match="invalid Avro"):
        parse_avro(json.dumps({"type": "record", "name": "X", "fields": [{"name": "a", "type": "Nope"}]}))


def test_json_schema_refs_cycles_and_plain_roots() -> None:
    tree = {
        "type": "object",
        "properties": {"node": {"$ref": "#/$defs/Node"}, "n": {"anyOf": [{"type": "number"}, {"type": "null"}]}},
        "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}, "required": ["next"]}},
    }
    nodes, _ = parse_json_schema(json.dumps(tree))
    assert _paths(nodes) == [("node", "object"), ("node.next", "Node"), ("n", "number")]
    assert nodes[1].nullable
    plain, _ = parse_json_schema('{"type": "string"}')
    assert [(n.name, n.type) for n in plain] == [("", "string")]
    with pytest.raises(SchemaParseError):
        parse_json_schema("[1, 2")


def test_protobuf_scoping_packages_and_errors() -> None:
    proto = """
    syntax = "proto2";
    package a.b;
    option java_package = "x.y";
    message Outer {
      message Inner { required int32 n = 1; }
      required Inner inner = 1;
      optional .a.b.Other other = 2;
      repeated Outer children = 3;
      extensions 100 to 199;
    }
    message Other { optional string s = 1 [default = "x"]; }
    service Api { rpc Get (Outer) returns (Other); }
    """
    nodes, _ = parse_protobuf(proto)
    assert _paths(nodes) == [
        ("inner", "message"), ("inner.n", "int32"), ("other", "message"), ("other.s", "string"),
        ("children", "array<message>"), ("children.element", "message"),
    ]  # fmt: skip
    with pytest.raises(SchemaParseError, match="no message"):
        parse_protobuf('syntax = "proto3"; enum E { A = 0; }')
    with pytest.raises(SchemaParseError):
        parse_protobuf("message M { int32 x = 1 }")
