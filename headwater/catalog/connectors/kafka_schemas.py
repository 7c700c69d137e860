"""Schema Registry schemas (Avro, JSON Schema, Protobuf) parsed into nested fields.

Each parser turns a schema's text into a list of :class:`Node` trees, the top-level fields of the
record / object / message; :func:`flatten_nodes` flattens them the way every connector names nested
paths (struct members ``a.b``, an array's element ``a.element``, a map's ``m.key`` / ``m.value``).

Avro is validated and its named types resolved by fastavro. JSON Schema is walked directly (local
``$ref`` into ``definitions`` / ``$defs`` resolved). Protobuf is read by a small parser of ``.proto``
text — messages, nested messages and enums, ``repeated``, ``map<K, V>``, ``oneof`` — which is what a
catalog needs; options, services and extensions are skipped. The first message of the file is the
record, as the Confluent serializers assume by default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from headwater.catalog.fields import FlatField, flatten_tree

__all__ = ["Node", "SchemaParseError", "flatten_nodes", "parse_avro", "parse_json_schema", "parse_protobuf"]


class SchemaParseError(ValueError):
    """A registered schema could not be read."""


@dataclass
class Node:
    """One field of a parsed schema: struct members, an array's element or a map's key and value as children."""

    name: str
    type: str
    nullable: bool = True
    description: str | None = None
    children: list[Node] = field(default_factory=list)


def flatten_nodes(nodes: Iterable[Node], parent: str | None = None) -> list[FlatField]:
    """Nodes as flat fields, parents before their members."""
    return flatten_tree(nodes, lambda node: node.children, parent=parent)


# ---------------------------------------------------------------------------------------- Avro

_AVRO_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def parse_avro(text: str, references: Sequence[str] = ()) -> tuple[list[Node], str | None]:
    """An Avro schema's top-level fields and its doc; ``references`` are the texts of referenced schemas."""
    import fastavro
    from fastavro.schema import SchemaParseException, UnknownType

    named: dict[str, Any] = {}
    try:
        for reference in references:
            fastavro.parse_schema(json.loads(reference), named_schemas=named, _write_hint=False)
        parsed = fastavro.parse_schema(json.loads(text), named_schemas=named, _write_hint=False)
    except (SchemaParseException, UnknownType, ValueError, TypeError, KeyError) as exc:
        raise SchemaParseError(f"invalid Avro schema: {exc}") from exc
    root = _avro_node("", parsed, named, ())
    doc = parsed.get("doc") if isinstance(parsed, Mapping) else None
    if isinstance(parsed, Mapping) and parsed.get("type") == "record":
        return root.children, doc
    return [root], doc


def _avro_node(name: str, schema: Any, named: Mapping[str, Any], stack: tuple[str, ...]) -> Node:
    if isinstance(schema, str):
        if schema in _AVRO_PRIMITIVES:
            return Node(name, schema, nullable=schema == "null")
        if schema in stack or schema not in named:  # a recursive reference: name it, do not expand it again
            return Node(name, schema)
        return _avro_node(name, named[schema], named, stack)
    if isinstance(schema, list):
        branches = [branch for branch in schema if branch != "null"]
        nullable = len(branches) < len(schema)
        if len(branches) == 1:
            node = _avro_node(name, branches[0], named, stack)
            node.nullable = nullable
            return node
        kinds = [_avro_node("", branch, named, stack).type for branch in branches]
        return Node(name, f"union<{','.join(kinds)}>", nullable=nullable)
    kind = schema.get("type")
    logical = schema.get("logicalType")
    if logical == "decimal":
        return Node(name, f"decimal({schema.get('precision')},{schema.get('scale', 0)})", nullable=False)
    if isinstance(logical, str):
        return Node(name, logical, nullable=False)
    if kind == "record":
        full = schema.get("name", "")
        children = [
            _avro_child(member, named, (*stack, full)) for member in schema.get("fields", []) if "name" in member
        ]
        return Node(name, "record", nullable=False, children=children)
    if kind == "array":
        element = _avro_node("element", schema["items"], named, stack)
        return Node(name, f"array<{element.type}>", nullable=False, children=[element])
    if kind == "map":
        value = _avro_node("value", schema["values"], named, stack)
        key = Node("key", "string", nullable=False)
        return Node(name, f"map<string,{value.type}>", nullable=False, children=[key, value])
    if kind == "enum":
        return Node(name, "enum", nullable=False)
    if kind == "fixed":
        return Node(name, f"fixed({schema.get('size')})", nullable=False)
    return _avro_node(name, kind, named, stack)  # {"type": "string"} and the like


def _avro_child(member: Mapping[str, Any], named: Mapping[str, Any], stack: tuple[str, ...]) -> Node:
    node = _avro_node(str(member["name"]), member["type"], named, stack)
    node.description = member.get("doc")
    return node


# --------------------------------------------------------------------------------- JSON Schema


def parse_json_schema(text: str) -> tuple[list[Node], str | None]:
    """A JSON Schema's top-level properties and its description."""
    try:
        root = json.loads(text)
    except ValueError as exc:
        raise SchemaParseError(f"invalid JSON Schema: {exc}") from exc
    if not isinstance(root, Mapping):
        raise SchemaParseError("invalid JSON Schema: the root must be an object")
    node = _json_node("", root, root, ())
    description = root.get("description")
    if node.type == "object" and node.children:
        return node.children, description
    return ([node] if node.type != "object" else []), description


def _resolve(ref: str, root: Mapping[str, Any]) -> Mapping[str, Any] | None:
    if not ref.startswith("#/"):
        return None
    target: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, Mapping) or part not in target:
            return None
        target = target[part]
    return target if isinstance(target, Mapping) else None


def _json_node(name: str, schema: Any, root: Mapping[str, Any], stack: tuple[str, ...]) -> Node:
    if not isinstance(schema, Mapping):
        return Node(name, "any")
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = _resolve(ref, root)
        if target is None or ref in stack:
            return Node(name, ref.rsplit("/", 1)[-1] or "ref", description=schema.get("description"))
        node = _json_node(name, target, root, (*stack, ref))
        node.description = schema.get("description") or node.description
        return node
    for combinator in ("oneOf", "anyOf"):
        options = schema.get(combinator)
        if isinstance(options, list):
            concrete = [o for o in options if not (isinstance(o, Mapping) and o.get("type") == "null")]
            if len(concrete) == 1:
                node = _json_node(name, concrete[0], root, stack)
                node.nullable = len(concrete) < len(options) or node.nullable
                return node
            return Node(name, combinator.lower(), description=schema.get("description"))
    declared = schema.get("type")
    types = declared if isinstance(declared, list) else [declared] if declared else []
    concrete_types = [t for t in types if t != "null"]
    kind = concrete_types[0] if len(concrete_types) == 1 else ("object" if "properties" in schema else "any")
    if len(concrete_types) > 1:
        kind = "|".join(concrete_types)
    nullable = "null" in types
    description = schema.get("description")
    if kind == "object":
        required = set(schema.get("required") or [])
        properties = schema.get("properties") or {}
        children = []
        for member, member_schema in properties.items():
            child = _json_node(member, member_schema, root, stack)
            child.nullable = child.nullable or member not in required
            children.append(child)
        extra = schema.get("additionalProperties")
        if not properties and isinstance(extra, Mapping):
            value = _json_node("value", extra, root, stack)
            return Node(
                name,
                f"map<string,{value.type}>",
                nullable,
                description,
                [Node("key", "string", nullable=False), value],
            )
        return Node(name, "object", nullable, description, children)
    if kind == "array":
        element = _json_node("element", schema.get("items", {}), root, stack)
        return Node(name, f"array<{element.type}>", nullable, description, [element])
    fmt = schema.get("format")
    spelled = f"{kind}({fmt})" if isinstance(fmt, str) and kind == "string" else kind
    return Node(name, spelled, nullable, description)


# ------------------------------------------------------------------------------------ Protobuf

_PROTO_SCALARS = {
    "double", "float", "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64",
    "sfixed32", "sfixed64", "bool", "string", "bytes",
}  # fmt: skip
_TOKEN = re.compile(
    r'\s+|//[^\n]*|/\*.*?\*/|("(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')|([A-Za-z_.][\w.]*|-?\d[\w.]*|[{}()\[\]<>=;,:-])',
    re.S,
)


@dataclass
class _ProtoField:
    name: str
    type: str
    label: str | None = None  # optional, required, repeated
    map_types: tuple[str, str] | None = None
    in_oneof: bool = False


@dataclass
class _ProtoMessage:
    full_name: str
    fields: list[_ProtoField] = field(default_factory=list)


class _ProtoParser:
    def __init__(self, text: str) -> None:
        self.tokens: list[str] = []
        pos = 0
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None:
                raise SchemaParseError(f"invalid Protobuf schema: unexpected {text[pos : pos + 20]!r}")
            token = match.group(1) or match.group(2)
            if token:
                self.tokens.append(token)
            pos = match.end()
        self.pos = 0
        self.package = ""
        self.messages: dict[str, _ProtoMessage] = {}
        self.enums: set[str] = set()
        self.order: list[str] = []  # top-level messages in file order

    def peek(self) -> str:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ""

    def next(self) -> str:
        token = self.peek()
        if not token:
            raise SchemaParseError("invalid Protobuf schema: unexpected end")
        self.pos += 1
        return token

    def expect(self, token: str) -> None:
        found = self.next()
        if found != token:
            raise SchemaParseError(f"invalid Protobuf schema: expected {token!r}, found {found!r}")

    def skip_statement(self) -> None:
        """Skip to the end of a statement or over a balanced block."""
        depth = 0
        while True:
            token = self.next()
            if token == "{":
                depth += 1
            elif token == "}":
                depth -= 1
                if depth == 0:
                    return
            elif token == ";" and depth == 0:
                return

    def parse(self) -> None:
        while self.peek():
            token = self.next()
            if token == "package":
                self.package = self.next()
                self.expect(";")
            elif token == "message":
                self.order.append(self.message(self.package))
            elif token == "enum":
                self.enums.add(self.qualify(self.package, self.next()))
                self.skip_block()
            elif token in ("syntax", "edition", "import", "option", "service", "extend"):
                self.skip_statement()
            elif token != ";":
                raise SchemaParseError(f"invalid Protobuf schema: unexpected {token!r}")

    def skip_block(self) -> None:
        self.expect("{")
        self.pos -= 1
        self.skip_statement()

    @staticmethod
    def qualify(scope: str, name: str) -> str:
        return f"{scope}.{name}" if scope else name

    def message(self, scope: str) -> str:
        full = self.qualify(scope, self.next())
        message = _ProtoMessage(full)
        self.messages[full] = message
        self.expect("{")
        while self.peek() != "}":
            self.member(message, full, in_oneof=False)
        self.expect("}")
        return full

    def member(self, message: _ProtoMessage, scope: str, *, in_oneof: bool) -> None:
        token = self.peek()
        if token == "message":
            self.next()
            self.message(scope)
        elif token == "enum":
            self.next()
            self.enums.add(self.qualify(scope, self.next()))
            self.skip_block()
        elif token == "oneof":
            self.next()
            self.next()  # the oneof's name
            self.expect("{")
            while self.peek() != "}":
                self.member(message, scope, in_oneof=True)
            self.expect("}")
        elif token in ("option", "reserved", "extensions", "extend", "group"):
            self.skip_statement()
        elif token == ";":
            self.next()
        else:
            message.fields.append(self.field(in_oneof))

    def field(self, in_oneof: bool) -> _ProtoField:
        label = None
        if self.peek() in ("optional", "required", "repeated"):
            label = self.next()
        kind = self.next()
        map_types = None
        if kind == "map":
            self.expect("<")
            key = self.next()
            self.expect(",")
            value = self.next()
            self.expect(">")
            map_types = (key, value)
        name = self.next()
        self.expect("=")
        self.next()  # the field number
        if self.peek() == "[":
            while self.next() != "]":
                pass
        self.expect(";")
        return _ProtoField(name=name, type=kind, label=label, map_types=map_types, in_oneof=in_oneof)

    def resolve(self, name: str, scope: str) -> str | None:
        """The full name of a message or enum as seen from ``scope`` (protobuf's scoping rules)."""
        if name.startswith("."):
            return name[1:] if name[1:] in self.messages or name[1:] in self.enums else None
        parts = scope.split(".") if scope else []
        for depth in range(len(parts), -1, -1):
            candidate = ".".join([*parts[:depth], name])
            if candidate in self.messages or candidate in self.enums:
                return candidate
        return None

    def node(self, name: str, kind: str, scope: str, stack: tuple[str, ...], nullable: bool) -> Node:
        if kind in _PROTO_SCALARS:
            return Node(name, kind, nullable=nullable)
        full = self.resolve(kind, scope)
        if full is None:  # an imported type (e.g. google.protobuf.Timestamp): named, not expanded
            return Node(name, kind.lstrip("."), nullable=True)
        if full in self.enums:
            return Node(name, "enum", nullable=nullable)
        if full in stack:
            return Node(name, "message", nullable=True)
        return Node(name, "message", nullable=True, children=self.members(full, (*stack, full)))

    def members(self, full: str, stack: tuple[str, ...]) -> list[Node]:
        nodes = []
        for item in self.messages[full].fields:
            nullable = item.label == "optional" or item.in_oneof
            if item.map_types is not None:
                key = self.node("key", item.map_types[0], full, stack, False)
                value = self.node("value", item.map_types[1], full, stack, False)
                value.nullable = False  # map values and list elements are never null in Protobuf
                nodes.append(Node(item.name, f"map<{key.type},{value.type}>", False, None, [key, value]))
            elif item.label == "repeated":
                element = self.node("element", item.type, full, stack, False)
                element.nullable = False
                nodes.append(Node(item.name, f"array<{element.type}>", False, None, [element]))
            else:
                nodes.append(self.node(item.name, item.type, full, stack, nullable))
        return nodes


def parse_protobuf(text: str) -> tuple[list[Node], str | None]:
    """The fields of the first message of a ``.proto`` file (the record, by Confluent's default)."""
    parser = _ProtoParser(text)
    parser.parse()
    if not parser.order:
        raise SchemaParseError("invalid Protobuf schema: it declares no message")
    first = parser.order[0]
    return parser.members(first, (first,)), None
