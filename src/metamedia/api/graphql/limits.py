"""Limits on what one GraphQL document may ask for, checked before any resolver runs.

Depth, alias and token limits come from Strawberry's own extensions. Cost is
ours: GraphQL lets one request fan out (`search(limit: 100) { results { media {
similar(limit: 100) ... } } }`), and neither depth nor size catches that, so
each document is priced before execution and refused when too dear.

Cost model: every selected field costs 1 per time it is produced. A field with a
`limit` argument produces its children `limit` times (the literal, the variable's
value, or the schema default); a list field without one produces them
`cost_size` times, declared on the field as `metadata={COST_SIZE: n}`
(default `DEFAULT_LIST_SIZE`). Introspection fields are free.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
    VariableNode,
    get_named_type,
)
from graphql.pyutils import Undefined
from strawberry.extensions import MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.extensions.base_extension import SchemaExtension
from strawberry.schema.schema_converter import GraphQLCoreConverter

COST_SIZE = "cost_size"
DEFAULT_LIST_SIZE = 10
MAX_ALIASES = 30
MAX_TOKENS = 5000

QUERY_TOO_COSTLY = "QueryTooCostly"


class _Pricer:
    """Prices one operation against the schema (fragments followed once per path)."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
        defaults: Mapping[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.defaults = defaults

    def selections(
        self, selection_set: SelectionSetNode, parent: GraphQLNamedType, seen: frozenset[str]
    ) -> int:
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, seen)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selections(selection.selection_set, target or parent, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in seen:
                    continue  # unknown or cyclic: the standard rules report it
                target = self.schema.get_type(fragment.type_condition.name.value)
                total += self.selections(fragment.selection_set, target or parent, seen | {name})
        return total

    def field(self, node: FieldNode, parent: GraphQLNamedType, seen: frozenset[str]) -> int:
        if node.name.value.startswith("__"):
            return 0
        if not isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            return 1
        definition = parent.fields.get(node.name.value)
        if definition is None or node.selection_set is None:
            return 1  # a scalar, or an unknown field the standard rules report
        child = get_named_type(definition.type)
        return 1 + self.size(node, definition) * self.selections(node.selection_set, child, seen)

    def size(self, node: FieldNode, definition: GraphQLField) -> int:
        """How many times this field produces its children."""
        if "limit" in definition.args:
            value = self._argument(node, "limit", definition.args["limit"].default_value)
            return max(1, value) if isinstance(value, int) else DEFAULT_LIST_SIZE
        output = definition.type
        if isinstance(output, GraphQLNonNull):
            output = output.of_type
        if not isinstance(output, GraphQLList):
            return 1
        declared = definition.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
        metadata: Mapping[str, Any] = getattr(declared, "metadata", None) or {}
        size = metadata.get(COST_SIZE, DEFAULT_LIST_SIZE)
        return int(size)

    def _argument(self, node: FieldNode, name: str, default: Any) -> Any:
        for argument in node.arguments or ():
            if argument.name.value != name:
                continue
            value = argument.value
            if isinstance(value, IntValueNode):
                return int(value.value)
            if isinstance(value, VariableNode):
                variable = value.name.value
                if self.variables.get(variable) is not None:
                    return self.variables[variable]
                return self.defaults.get(variable, default)
            return None
        return None if default is Undefined else default


def operation_cost(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
) -> int:
    """The cost of one operation under the model in the module docstring."""
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    defaults: dict[str, Any] = {}
    for definition in operation.variable_definitions or ():
        if isinstance(definition.default_value, IntValueNode):
            defaults[definition.variable.name.value] = int(definition.default_value.value)
    pricer = _Pricer(schema, fragments, variables, defaults)
    return pricer.selections(operation.selection_set, root, frozenset())


def cost_rule(max_cost: int, variables: Mapping[str, Any]) -> type[ValidationRule]:
    """A validation rule pricing every operation in the document with these variables."""

    class CostLimit(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            document = context.document
            fragments = {
                d.name.value: d
                for d in document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            for operation in document.definitions:
                if not isinstance(operation, OperationDefinitionNode):
                    continue
                cost = operation_cost(context.schema, operation, fragments, variables)
                if cost > max_cost:
                    name = operation.name.value if operation.name else "anonymous"
                    context.report_error(
                        GraphQLError(
                            f"operation '{name}' costs {cost}, over the limit of {max_cost}: "
                            "ask for smaller `limit`s or fewer nested lists",
                            operation,
                            extensions={
                                "code": QUERY_TOO_COSTLY,
                                "status": 400,
                                "cost": cost,
                                "maxCost": max_cost,
                            },
                        )
                    )

    return CostLimit


class CostLimiter(SchemaExtension):
    """Adds the cost rule per operation, so that variables (`limit: $n`) are priced too."""

    def __init__(self, max_cost: int) -> None:
        self.max_cost = max_cost

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        rule = cost_rule(self.max_cost, context.variables or {})
        context.validation_rules = (*context.validation_rules, rule)
        yield


def limit_extensions(max_depth: int, max_cost: int) -> list[Callable[[], SchemaExtension]]:
    """Every document limit, cheapest first; factories, so each request gets its own
    instances (a shared instance would share `execution_context` across requests)."""
    return [
        partial(MaxTokensLimiter, max_token_count=MAX_TOKENS),
        partial(MaxAliasesLimiter, max_alias_count=MAX_ALIASES),
        partial(QueryDepthLimiter, max_depth=max_depth),
        partial(CostLimiter, max_cost),
    ]
