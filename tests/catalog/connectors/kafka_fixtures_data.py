"""Schemas the Kafka tests register, in each format the Schema Registry holds."""

from __future__ import annotations

import json

ORDER_V1 = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "doc": "one order",
    "fields": [
        {"name": "id", "type": "long", "doc": "order id"},
        {"name": "count", "type": "int"},
        {
            "name": "lines",
            "type": {
                "type": "array",
                "items": {"type": "record", "name": "Line", "fields": [{"name": "sku", "type": "string"}]},
            },
        },
        {"name": "placed_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}
ORDER_V2 = {
    **ORDER_V1,
    "fields": [
        ORDER_V1["fields"][0],
        {"name": "count", "type": "long"},
        *ORDER_V1["fields"][2:],
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
}
ORDER_KEY = {"type": "record", "name": "OrderKey", "namespace": "shop", "fields": [{"name": "id", "type": "long"}]}

USER_PROTO = """
syntax = "proto3";
package acme.users;

import "google/protobuf/timestamp.proto";

// A person who signed up.
message User {
  string id = 1;
  optional string email = 2 [deprecated = true];
  repeated Address homes = 3;
  map<string, int64> counters = 4;
  google.protobuf.Timestamp created = 5;
  Status status = 6;
  oneof contact {
    string phone = 7;
    string pager = 8;
  }
  reserved 9, 10;
  message Address {
    string city = 1; /* the city */
    string zip = 2;
  }
  enum Status { ACTIVE = 0; GONE = 1; }
}

message Unused { int32 x = 1; }
"""

CLICK_V1 = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Click",
    "description": "a click on a page",
    "type": "object",
    "required": ["url"],
    "properties": {
        "url": {"type": "string", "description": "the page"},
        "at": {"type": "string", "format": "date-time"},
        "device": {"$ref": "#/definitions/Device"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "extra": {"type": "object", "additionalProperties": {"type": "integer"}},
    },
    "definitions": {"Device": {"type": ["object", "null"], "properties": {"os": {"type": "string"}}}},
}
CLICK_V2 = {**CLICK_V1, "properties": {**CLICK_V1["properties"], "referrer": {"type": ["string", "null"]}}}


def avro(schema: dict[str, object]) -> str:
    """An Avro schema as registered text."""
    return json.dumps(schema)
