"""Column types of the Hive Metastore as nested fields: Hive type strings and Spark's JSON schemas.

Both are parsed into one small tree (:class:`HiveType`) and flattened the way every connector names
nested paths: struct members ``a.b``, an array's element ``a.element``, a map's ``m.key`` / ``m.value``.
Types are spelled the Hive way (``bigint``, ``decimal(10,2)``, ``array<string>``), whichever of the two
a table's schema came from, so switching a table between them records no spurious type change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from headwater.catalog.fields import FlatField

__all__ = ["HiveColumn", "HiveType", "flatten_columns", "parse_hive_type", "parse_spark_schema"]

# Spark's JSON type names -> the Hive DDL spelling.
_SPARK_NAMES = {"long": "bigint", "integer": "int", "short": "smallint", "byte": "tinyint"}


@dataclass(frozen=True)
class HiveType:
    """A parsed column type: ``kind`` is struct, array, map, union or primitive."""

    kind: str
    name: str = ""  # the primitive's spelling, e.g. decimal(10,2)
    members: tuple[tuple[str, HiveType, bool, str | None], ...] = ()  # struct: (name, type, nullable, comment)
    items: tuple[HiveType, ...] = ()  # array: (element,), map: (key, value), union: alternatives
    items_nullable: bool = True  # array elements / map values may be null

    def spelling(self) -> str:
        """The type as Hive writes it; a struct is just ``struct`` (its members are fields of their own)."""
        if self.kind == "struct":
            return "struct"
        if self.kind == "array":
            return f"array<{self.items[0].spelling()}>"
        if self.kind == "map":
            return f"map<{self.items[0].spelling()},{self.items[1].spelling()}>"
        if self.kind == "union":
            return f"uniontype<{','.join(item.spelling() for item in self.items)}>"
        return self.name

    def signature(self) -> str:
        """The whole type, members included, in lower case and without nullability (for comparisons)."""
        if self.kind == "struct":
            return "struct<" + ",".join(f"{name.lower()}:{kind.signature()}" for name, kind, _, _ in self.members) + ">"
        if self.kind in ("array", "map", "union"):
            return f"{self.kind}<{','.join(item.signature() for item in self.items)}>"
        return self.name.lower()


@dataclass(frozen=True)
class HiveColumn:
    """A top-level column: name, parsed type, nullability and comment."""

    name: str
    type: HiveType
    nullable: bool = True
    comment: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


class _Parser:
    """Recursive descent over a Hive type string such as ``struct<a:int,b:array<map<string,double>>>``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> ValueError:
        return ValueError(f"cannot parse Hive type {self.text!r} at position {self.pos}: {what}")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise self.fail(f"expected {char!r}")
        self.pos += 1

    def word(self) -> str:
        self.skip()
        if self.peek() == "`":
            end = self.text.find("`", self.pos + 1)
            if end < 0:
                raise self.fail("unclosed backquote")
            name = self.text[self.pos + 1 : end]
            self.pos = end + 1
            return name
        start = self.pos
        while self.pos < len(self.text) and (self.text[self.pos].isalnum() or self.text[self.pos] in "_$"):
            self.pos += 1
        if start == self.pos:
            raise self.fail("expected a name")
        return self.text[start : self.pos]

    def parse(self) -> HiveType:
        parsed = self.type()
        if self.peek():
            raise self.fail("unexpected trailing text")
        return parsed

    def type(self) -> HiveType:
        name = self.word().lower()
        if name == "struct":
            self.expect("<")
            members: list[tuple[str, HiveType, bool, str | None]] = []
            while self.peek() != ">":
                member = self.word()
                self.expect(":")
                kind = self.type()
                comment = None
                if self.text[self.pos :].lstrip().upper().startswith("COMMENT"):
                    self.skip()
                    self.pos += len("COMMENT")
                    comment = self.quoted()
                members.append((member, kind, True, comment))
                if self.peek() == ",":
                    self.pos += 1
            self.expect(">")
            return HiveType("struct", members=tuple(members))
        if name in ("array", "map", "uniontype"):
            self.expect("<")
            items = [self.type()]
            while self.peek() == ",":
                self.pos += 1
                items.append(self.type())
            self.expect(">")
            if (name == "array" and len(items) != 1) or (name == "map" and len(items) != 2):
                raise self.fail(f"{name} takes {1 if name == 'array' else 2} type(s)")
            return HiveType({"uniontype": "union"}.get(name, name), items=tuple(items))
        if self.peek() == "(":
            end = self.text.find(")", self.pos)
            if end < 0:
                raise self.fail("unclosed parenthesis")
            name += "(" + "".join(self.text[self.pos + 1 : end].split()) + ")"
            self.pos = end + 1
        return HiveType("primitive", name=name)

    def quoted(self) -> str:
        quote = self.peek()
        if quote not in ("'", '"'):
            raise self.fail("expected a quoted comment")
        end = self.text.find(quote, self.pos + 1)
        if end < 0:
            raise self.fail("unclosed comment")
        value = self.text[self.pos + 1 : end]
        self.pos = end + 1
        return value


def parse_hive_type(text: str) -> HiveType:
    """Parse a Hive column type string; raises ValueError naming the position of a problem."""
    return _Parser(text).parse()


def _spark_type(node: Any, metadata: Mapping[str, Any] | None = None) -> HiveType:
    if isinstance(node, str):
        declared = (metadata or {}).get("__CHAR_VARCHAR_TYPE_STRING")
        if isinstance(declared, str):  # Spark keeps char(n)/varchar(n) as string plus this note
            return HiveType("primitive", name=declared.lower())
        return HiveType("primitive", name=_SPARK_NAMES.get(node, node))
    if not isinstance(node, Mapping):
        raise ValueError(f"unexpected Spark type {node!r}")
    kind = node.get("type")
    if kind == "struct":
        members = tuple(
            (
                str(child["name"]),
                _spark_type(child["type"], child.get("metadata")),
                bool(child.get("nullable", True)),
                (child.get("metadata") or {}).get("comment"),
            )
            for child in node.get("fields", [])
        )
        return HiveType("struct", members=members)
    if kind == "array":
        return HiveType(
            "array", items=(_spark_type(node["elementType"]),), items_nullable=bool(node.get("containsNull", True))
        )
    if kind == "map":
        return HiveType(
            "map",
            items=(_spark_type(node["keyType"]), _spark_type(node["valueType"])),
            items_nullable=bool(node.get("valueContainsNull", True)),
        )
    if kind == "udt":  # a user-defined type is stored as its SQL type
        return _spark_type(node.get("sqlType", "binary"))
    raise ValueError(f"unexpected Spark type {node!r}")


def parse_spark_schema(text: str) -> list[HiveColumn]:
    """The columns of a Spark StructType in its JSON form (``spark.sql.sources.schema``)."""
    root = _spark_type(json.loads(text))
    if root.kind != "struct":
        raise ValueError("a Spark table schema must be a struct")
    return [
        HiveColumn(name=name, type=kind, nullable=nullable, comment=comment)
        for name, kind, nullable, comment in root.members
    ]


def flatten_columns(columns: Sequence[HiveColumn]) -> list[FlatField]:
    """Columns as flat fields, parents before members."""
    out: list[FlatField] = []

    def add(path: str, name: str, kind: HiveType, nullable: bool, comment: str | None, parent: str | None) -> None:
        out.append(
            FlatField(
                path=path, name=name, type=kind.spelling(), nullable=nullable, parent_path=parent, description=comment
            )
        )
        if kind.kind == "struct":
            for member, member_type, member_nullable, member_comment in kind.members:
                add(f"{path}.{member}", member, member_type, member_nullable, member_comment, path)
        elif kind.kind == "array":
            add(f"{path}.element", "element", kind.items[0], kind.items_nullable, None, path)
        elif kind.kind == "map":
            add(f"{path}.key", "key", kind.items[0], False, None, path)
            add(f"{path}.value", "value", kind.items[1], kind.items_nullable, None, path)

    for column in columns:
        add(column.name, column.name, column.type, column.nullable, column.comment, None)
    return out
