"""GraphQL's limits: a worst-case estimate of what a query returns, refused before it runs, and a time budget.

One 3 KB query (thirty aliases of a page of datasets with their fields) answered 25 MB after a minute and took
the server to 667 MB. The estimate counts the objects a query can return: a list counts its bound (the ``first``
or ``maxNodes`` argument of the field that pages it, or the server's own maximum), nested lists multiply, every
alias counts, fragments count where their type applies, and of a union's members the costliest counts. A query
estimated above ``HEADWATER_GRAPHQL_MAX_COST`` is refused with HTTP 400 before any resolver runs. While a query
runs, each object it completes checks the request's deadline (``HEADWATER_GRAPHQL_TIME_BUDGET``); the size of the
serialised answer is checked by :mod:`headwater.graphql.routes`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_abstract_type,
    is_list_type,
    is_object_type,
)
from graphql import ExecutionResult as GraphQLExecutionResult
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from headwater.lineage.graph import MAX_BUDGET
from headwater.search.base import FACET_LIMIT, FACETS

__all__ = ["LEAF_WEIGHTS", "LIST_BOUNDS", "CostLimit", "DeadlineExecutionContext", "TimeBudgetExceeded", "estimate"]

# Schema-wide maxima the API enforces elsewhere (catalog.schemas, jobs.schemas, lineage.runs).
MAX_FIELDS = 5000  # columns of one dataset's schema
MAX_ATTEMPTS = 10
MAX_CHILD_RUNS = 1000

# How many items each list of objects can hold: a number, or (the argument of the nearest enclosing field that
# bounds it, that argument's maximum). tests/graphql/test_graphql_limits.py fails when a list of objects is
# missing here.
LIST_BOUNDS: dict[str, int | tuple[str, int]] = {
    "ChangeFeed.items": ("first", 1000),
    "ClusterPage.items": ("first", 100),
    "CommandPage.items": ("first", 100),
    "DatasetPage.items": ("first", 100),
    "JobPage.items": ("first", 100),
    "SchemaVersionPage.items": ("first", 100),
    "SearchPage.items": ("first", 100),
    "Suggestions.items": ("first", 50),
    "LineageGraph.nodes": ("maxNodes", MAX_BUDGET),
    "LineageGraph.edges": ("maxNodes", MAX_BUDGET),
    "Impact.columns": ("maxNodes", MAX_BUDGET),
    "Impact.datasets": ("maxNodes", MAX_BUDGET),
    "Impact.jobs": ("maxNodes", MAX_BUDGET),
    "Impact.owners": ("maxNodes", MAX_BUDGET),
    "Dataset.fields": MAX_FIELDS,
    "Dataset.owners": 100,
    "SchemaDiff.renamed": MAX_FIELDS,
    "SchemaDiff.retyped": MAX_FIELDS,
    "SearchPage.facets": len(FACETS),
    "Facet.values": FACET_LIMIT,
    "SearchPage.corrections": 50,
    "Job.attempts": MAX_ATTEMPTS,
    "Job.transitions": 10 * MAX_ATTEMPTS,
    "SourceList.items": 1000,  # a platform federates tens of systems
    # Lineage of the SQL sent with the request: bounded by that text (at most 1 MB), counted as a large script.
    "SqlLineage.statements": 100,
    "SqlStatement.inputs": 100,
    "SqlStatement.columns": 1000,
}
# Leaves that hold many values at once (a JSON list, a list of strings), counted as that many nodes.
LEAF_WEIGHTS: dict[str, int] = {
    "SchemaVersion.fields": MAX_FIELDS,
    "SchemaDiff.added": MAX_FIELDS,
    "SchemaDiff.removed": MAX_FIELDS,
    "Run.children": MAX_CHILD_RUNS,
}
_UNLISTED = 1000  # a list of objects missing from LIST_BOUNDS (the test above keeps this from happening)


def _int_arguments(field: FieldNode, defaults: dict[str, Any], variables: dict[str, Any]) -> dict[str, int]:
    """The integer arguments of a field as the request gives them (literals or variables), else their defaults."""
    found = {name: value for name, value in defaults.items() if isinstance(value, int)}
    for argument in field.arguments or ():
        value: Any = None
        if isinstance(argument.value, IntValueNode):
            value = int(argument.value.value)
        elif isinstance(argument.value, VariableNode):
            value = variables.get(argument.value.name.value)
        if isinstance(value, int) and not isinstance(value, bool):
            found[argument.name.value] = value
    return found


class _Estimate:
    def __init__(self, schema: GraphQLSchema, document: DocumentNode, variables: dict[str, Any]) -> None:
        self.schema = schema
        self.variables = variables
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}

    def below(
        self, parent: GraphQLNamedType, selections: Sequence[SelectionNode], count: int, scope: dict[str, int]
    ) -> int:
        """Nodes under ``count`` objects of type ``parent`` selected by ``selections``; of an abstract type's
        possible types, the costliest."""
        if is_abstract_type(parent):
            possible = self.schema.get_possible_types(parent)
            return max((self.below(t, selections, count, scope) for t in possible), default=0)
        if not is_object_type(parent):
            return 0
        assert isinstance(parent, GraphQLObjectType)
        total = 0
        for nodes in self._grouped(parent, selections).values():
            name = nodes[0].name.value
            field = parent.fields.get(name)
            if field is None:  # __typename, introspection (bounded by graphql-core)
                continue
            defaults = {arg_name: arg.default_value for arg_name, arg in field.args.items()}
            inner = {**scope, **_int_arguments(nodes[0], defaults, self.variables)}
            named = get_named_type(field.type)
            where = f"{parent.name}.{name}"
            size = self._size(where, field.type, scope) * count
            if is_object_type(named) or is_abstract_type(named):
                children = [s for node in nodes if node.selection_set for s in node.selection_set.selections]
                total += size + self.below(named, children, size, inner)
            else:
                total += count * LEAF_WEIGHTS.get(where, 0)
        return total

    def _size(self, where: str, field_type: Any, scope: dict[str, int]) -> int:
        if not is_list_type(get_nullable_type(field_type)):
            return 1
        bound = LIST_BOUNDS.get(where, _UNLISTED)
        if isinstance(bound, int):
            return bound
        argument, most = bound
        return max(0, min(scope.get(argument, most), most))

    def _grouped(self, parent: GraphQLObjectType, selections: Sequence[SelectionNode]) -> dict[str, list[FieldNode]]:
        """The fields selected on ``parent`` by response key (an alias counts as a field of its own), through
        the fragments that apply to it."""
        grouped: dict[str, list[FieldNode]] = {}
        for node in self._fields(parent, selections, set()):
            grouped.setdefault(node.alias.value if node.alias else node.name.value, []).append(node)
        return grouped

    def _fields(
        self, parent: GraphQLObjectType, selections: Sequence[SelectionNode], seen: set[str]
    ) -> Iterator[FieldNode]:
        for selection in selections:
            if isinstance(selection, FieldNode):
                yield selection
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition.name.value if selection.type_condition else None
                if self._applies(condition, parent):
                    yield from self._fields(parent, selection.selection_set.selections, seen)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is None or fragment.name.value in seen:
                    continue
                if self._applies(fragment.type_condition.name.value, parent):
                    yield from self._fields(parent, fragment.selection_set.selections, seen | {fragment.name.value})

    def _applies(self, condition: str | None, parent: GraphQLObjectType) -> bool:
        if condition is None or condition == parent.name:
            return True
        condition_type = self.schema.get_type(condition)
        return (
            condition_type is not None
            and is_abstract_type(condition_type)
            and self.schema.is_sub_type(condition_type, parent)
        )


def estimate(
    schema: GraphQLSchema, document: DocumentNode, operation_name: str | None, variables: dict[str, Any] | None
) -> int:
    """The most nodes (objects, and the values of heavy leaves) the operation can answer."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [o for o in operations if operation_name is None or (o.name and o.name.value == operation_name)]
    if not chosen:
        return 0
    operation = chosen[0]
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    return _Estimate(schema, document, variables or {}).below(root, operation.selection_set.selections, 1, {})


class CostLimit(SchemaExtension):
    """Refuse, before it runs, an operation whose estimate is over the request context's ``max_cost``."""

    def on_execute(self) -> Iterator[None]:
        """Estimate the validated document; answer a single error instead of running it when over the limit."""
        context = self.execution_context
        limit = getattr(context.context, "max_cost", None)
        document = context.graphql_document
        if limit is not None and document is not None:
            cost = estimate(context.schema._schema, document, context.operation_name, context.variables)
            if cost > limit:
                error = GraphQLError(
                    f"this query could return {cost:,} objects, more than the {limit:,} allowed "
                    "(HEADWATER_GRAPHQL_MAX_COST): ask for smaller pages (first, maxNodes), fewer nested lists "
                    "or fewer aliases",
                    extensions={"code": "query_too_costly", "cost": cost, "limit": limit},
                )
                context.result = GraphQLExecutionResult(data=None, errors=[error])
        yield


class TimeBudgetExceeded(BaseException):  # noqa: N818
    """A GraphQL request ran past its deadline. A BaseException, so that graphql-core, which turns an Exception
    into a field error and goes on with the next object, lets it end the whole execution at once."""

    def __init__(self, budget: float) -> None:
        super().__init__(f"the query ran longer than its time budget of {budget:g} s")
        self.budget = budget


class DeadlineExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context, stopping the execution when the request's deadline has passed (checked
    before the fields of each object are resolved)."""

    def execute_fields(self, *args: Any, **kwargs: Any) -> Any:
        """Check the deadline, then resolve the object's fields."""
        deadline: float | None = getattr(self.context_value, "deadline", None)
        if deadline is not None and time.monotonic() > deadline:
            raise TimeBudgetExceeded(getattr(self.context_value, "time_budget", 0.0))
        return super().execute_fields(*args, **kwargs)
