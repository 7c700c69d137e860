"""Column lineage of an analysed Spark plan, read from its ``toJSON`` form (part of Headwater's PySpark lineage
hook, :mod:`headwater_pyspark_lineage`; standard library only, no Spark needed).

Every output column is followed by expression id down to the columns of the relations the plan reads: ``Project``,
``Aggregate``, ``Window`` and ``Generate`` make new columns (DIRECT: IDENTITY, TRANSFORMATION or AGGREGATION, with
masking for hashes), ``Union`` merges its children's columns by position; join, filter, grouping, sort and window
keys are INDIRECT inputs of the whole output, as OpenLineage's Spark integration reports them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["column_lineage"]

_MASKING = {"Sha1", "Sha2", "Md5", "Crc32", "Murmur3Hash", "XxHash64", "Mask"}
_RANK = {"IDENTITY": 0, "TRANSFORMATION": 1, "AGGREGATION": 2}
Dataset = tuple[str, str]  # (namespace, name)


def _short(node: dict[str, Any]) -> str:
    return str(node.get("class", "")).rsplit(".", 1)[-1]


def _tree(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """The pre-order list ``toJSON`` gives, as nested nodes (``_children``)."""
    position = 0

    def build() -> dict[str, Any]:
        nonlocal position
        node = nodes[position]
        position += 1
        node["_children"] = [build() for _ in range(int(node.get("num-children", 0)))]
        return node

    return build()


def _expressions(value: Any) -> list[list[dict[str, Any]]]:
    """The expressions of a node's field: one (a pre-order list of nodes) or a sequence of them."""
    if not isinstance(value, list) or not value:
        return []
    if isinstance(value[0], dict) and "class" in value[0]:
        return [value]
    return [item for item in value if isinstance(item, list) and item and isinstance(item[0], dict)]


def _refs(expression: list[dict[str, Any]]) -> list[int]:
    return [int(n["exprId"]["id"]) for n in expression if _short(n) == "AttributeReference" and "exprId" in n]


def _named(expression: list[dict[str, Any]]) -> tuple[int, str, bool] | None:
    """The expression id a named expression produces, its subtype, and whether it masks its inputs."""
    root = expression[0]
    if _short(root) not in {"Alias", "AttributeReference"} or "exprId" not in root:
        return None
    inner = expression[1:] if _short(root) == "Alias" else expression
    if len(inner) == 1 and _short(inner[0]) == "AttributeReference":
        subtype = "IDENTITY"
    elif any(".aggregate." in str(n.get("class")) for n in inner):
        subtype = "AGGREGATION"
    else:
        subtype = "TRANSFORMATION"
    return int(root["exprId"]["id"]), subtype, any(_short(n) in _MASKING for n in inner)


Origins = dict[tuple[int, str], tuple[str, bool]]  # (dataset index, field) -> (subtype, masking)


def column_lineage(
    nodes: list[dict[str, Any]],
    datasets: list[Dataset | None],
    output: list[tuple[int, str]],
) -> dict[str, Any]:
    """The ``columnLineage`` facet's ``fields`` and ``dataset`` for the plan ``nodes`` (``toJSON``'s list) whose
    leaves read ``datasets`` (in plan order; None: nothing a dataset names) and whose ``output`` is
    (expression id, column name) pairs; plus the inputs read (``_inputs``) and the output's types (``_types``)."""
    origins: dict[int, Origins] = {}
    indirect: dict[tuple[int, str], set[str]] = {}
    types: dict[int, str] = {}
    leaf_index = 0
    inputs: list[tuple[Dataset, list[dict[str, Any]]]] = []
    index_of: dict[Dataset, int] = {}

    def trace(expression: list[dict[str, Any]]) -> Iterator[tuple[tuple[int, str], tuple[str, bool]]]:
        for ref in _refs(expression):
            yield from origins.get(ref, {}).items()

    def add_indirect(expressions: list[list[dict[str, Any]]], subtype: str) -> None:
        for expression in expressions:
            for key, _ in trace(expression):
                indirect.setdefault(key, set()).add(subtype)

    def produce(expression: list[dict[str, Any]]) -> None:
        named = _named(expression)
        if named is None:
            return
        expr_id, subtype, masking = named
        if _short(expression[0]) == "AttributeReference" and expr_id in origins:
            return  # passed through unchanged
        found: Origins = {}
        for key, (before, masked) in trace(expression[1:] if _short(expression[0]) == "Alias" else expression):
            kept = found.get(key, ("IDENTITY", False))
            ranked = max(before, subtype, kept[0], key=_RANK.__getitem__)
            found[key] = (ranked, masked or masking or kept[1])
        origins[expr_id] = found

    def outputs_of(node: dict[str, Any]) -> list[int]:
        kind = _short(node)
        if kind == "Project":
            return [n[0] for e in _expressions(node.get("projectList")) if (n := _named(e))]
        if kind == "Aggregate":
            return [n[0] for e in _expressions(node.get("aggregateExpressions")) if (n := _named(e))]
        if not node["_children"]:
            return [n[0] for e in _expressions(node.get("output")) if (n := _named(e))]
        if kind == "Join":
            return [i for child in node["_children"] for i in outputs_of(child)]
        return outputs_of(node["_children"][0])

    def visit(node: dict[str, Any]) -> None:
        nonlocal leaf_index
        for child in node["_children"]:
            visit(child)
        kind = _short(node)
        if not node["_children"]:
            read = datasets[leaf_index] if leaf_index < len(datasets) else None
            leaf_index += 1
            attributes = [e[0] for e in _expressions(node.get("output") or node.get("dataCols"))]
            attributes += [e[0] for e in _expressions(node.get("partitionCols"))]
            for attribute in attributes:
                types[int(attribute["exprId"]["id"])] = str(attribute.get("dataType"))
            if read is None:
                return
            dataset = read
            if dataset not in index_of:
                index_of[dataset] = len(inputs)
                inputs.append((dataset, []))
            index = index_of[dataset]
            fields = inputs[index][1]
            for attribute in attributes:
                origins[int(attribute["exprId"]["id"])] = {(index, str(attribute["name"])): ("IDENTITY", False)}
                if all(f["name"] != attribute["name"] for f in fields):
                    fields.append({"name": attribute["name"], "type": str(attribute.get("dataType"))})
            return
        if kind == "Project":
            for expression in _expressions(node.get("projectList")):
                produce(expression)
        elif kind == "Aggregate":
            for expression in _expressions(node.get("aggregateExpressions")):
                produce(expression)
            add_indirect(_expressions(node.get("groupingExpressions")), "GROUP_BY")
        elif kind == "Join":
            add_indirect(_expressions(node.get("condition")), "JOIN")
        elif kind == "Filter":
            add_indirect(_expressions(node.get("condition")), "FILTER")
        elif kind == "Sort":
            add_indirect(_expressions(node.get("order")), "SORT")
        elif kind == "Window":
            for expression in _expressions(node.get("windowExpressions")):
                produce(expression)
            add_indirect(_expressions(node.get("partitionSpec")) + _expressions(node.get("orderSpec")), "WINDOW")
        elif kind == "Generate":
            sources = [key for e in _expressions(node.get("generator")) for key, _ in trace(e)]
            for expression in _expressions(node.get("generatorOutput")):
                expr_id = int(expression[0]["exprId"]["id"])
                origins[expr_id] = {key: ("TRANSFORMATION", False) for key in sources}
        elif kind == "Union":
            first, *others = [outputs_of(child) for child in node["_children"]]
            for position, expr_id in enumerate(first):
                merged = dict(origins.get(expr_id, {}))
                for other in others:
                    if position < len(other):
                        merged.update(origins.get(other[position], {}))
                origins[expr_id] = merged

    visit(_tree(nodes))
    named_inputs = [ds for ds, _ in inputs]

    def input_field(key: tuple[int, str], transformations: list[dict[str, Any]]) -> dict[str, Any]:
        namespace, name = named_inputs[key[0]]
        return {"namespace": namespace, "name": name, "field": key[1], "transformations": transformations}

    fields: dict[str, Any] = {}
    for expr_id, column in output:
        found = origins.get(expr_id, {})
        if found:
            fields[column] = {
                "inputFields": [
                    input_field(key, [{"type": "DIRECT", "subtype": subtype, "masking": masking}])
                    for key, (subtype, masking) in sorted(found.items())
                ]
            }
    dataset = [
        input_field(key, [{"type": "INDIRECT", "subtype": subtype} for subtype in sorted(subtypes)])
        for key, subtypes in sorted(indirect.items())
    ]
    return {
        "fields": fields,
        "dataset": dataset,
        "_inputs": inputs,
        "_types": [(column, types.get(expr_id)) for expr_id, column in output],
    }
