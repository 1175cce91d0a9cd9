"""Limits on what one GraphQL document may ask for, checked before any resolver runs.

Depth, alias and token limits come from Strawberry's own extensions. Cost is
ours: GraphQL lets one request fan out (`search(limit: 100) { results { media {
similar(limit: 100) ... } } }`), and neither depth nor size catches that, so
each document is priced before execution and refused when too dear.

Cost model (work, not fields): every selected field costs its weight per time it
is produced. A scalar or a field read from a value already loaded weighs 1; a
resolver that does real work declares `metadata={COST_WEIGHT: n}` (a search
embeds a query and walks the index, a `similar` walks it again), so twelve
aliased searches each asking `similar` under every hit price at what they would
run, not at how many fields they name. A field with a `limit` argument produces
its children `limit` times (the literal, the variable's value, or the schema
default); a list field without one produces them `cost_size` times, declared as
`metadata={COST_SIZE: n}` (default `DEFAULT_LIST_SIZE`). Introspection is free.

A document dearer than `graphql_max_cost` is refused outright; a cheaper one is
charged to its caller's per-minute budget (`budget.py`), and refused with 429
once that is spent. Both happen during validation: no resolver has run.
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

from metamedia.api.graphql.budget import CostBudget

COST_SIZE = "cost_size"
COST_WEIGHT = "cost_weight"
# Weights, in units of one scalar read. Measured order of magnitude, not a promise:
# a search embeds the query and walks the index plus FTS; a feed ranks hundreds of
# candidates; `similar` is one more index walk; a look-up is one or two queries.
WEIGHT_SEARCH = 50
WEIGHT_FEED = 50
WEIGHT_SIMILAR = 25
WEIGHT_WRITE = 20
WEIGHT_LOOKUP = 2
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
        if definition is None:
            return 1  # an unknown field: the standard rules report it
        weight = int(_metadata(definition).get(COST_WEIGHT, 1))
        if node.selection_set is None:
            return weight
        child = get_named_type(definition.type)
        nested = self.selections(node.selection_set, child, seen)
        return weight + self.size(node, definition) * nested

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
        return int(_metadata(definition).get(COST_SIZE, DEFAULT_LIST_SIZE))

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


def _metadata(definition: GraphQLField) -> Mapping[str, Any]:
    """The `metadata` a Strawberry field was declared with (empty when none)."""
    declared = definition.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    metadata: Mapping[str, Any] = getattr(declared, "metadata", None) or {}
    return metadata


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


def cost_rule(
    max_cost: int,
    variables: Mapping[str, Any],
    operation_name: str | None = None,
    charge: Callable[[int], GraphQLError | None] | None = None,
) -> type[ValidationRule]:
    """A validation rule pricing every operation in the document with these variables,
    then charging the one that will run to the caller's budget (`charge`)."""

    class CostLimit(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            document = context.document
            fragments = {
                d.name.value: d
                for d in document.definitions
                if isinstance(d, FragmentDefinitionNode)
            }
            to_run, refused = 0, False
            for operation in document.definitions:
                if not isinstance(operation, OperationDefinitionNode):
                    continue
                cost = operation_cost(context.schema, operation, fragments, variables)
                name = operation.name.value if operation.name else None
                if cost > max_cost:
                    refused = True
                    context.report_error(_too_costly(operation, name, cost, max_cost))
                elif operation_name is None or name == operation_name:
                    to_run += cost
            if charge is not None and not refused and to_run:
                error = charge(to_run)
                if error is not None:
                    context.report_error(error)

    return CostLimit


def _too_costly(
    operation: OperationDefinitionNode, name: str | None, cost: int, max_cost: int
) -> GraphQLError:
    return GraphQLError(
        f"operation '{name or 'anonymous'}' costs {cost}, over the limit of {max_cost}: "
        "ask for smaller `limit`s or fewer nested lists",
        operation,
        extensions={"code": QUERY_TOO_COSTLY, "status": 400, "cost": cost, "maxCost": max_cost},
    )


class CostLimiter(SchemaExtension):
    """Adds the cost rule per operation, so that variables (`limit: $n`) are priced too,
    and charges the caller's budget when one is given."""

    def __init__(self, max_cost: int, budget: CostBudget | None = None) -> None:
        self.max_cost = max_cost
        self.budget = budget

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        charge = None
        if self.budget is not None:
            charge = partial(self.budget.charge_request, context.context)
        rule = cost_rule(self.max_cost, context.variables or {}, context.operation_name, charge)
        context.validation_rules = (*context.validation_rules, rule)
        yield


def limit_extensions(
    max_depth: int, max_cost: int, budget: CostBudget | None = None
) -> list[Callable[[], SchemaExtension]]:
    """Every document limit, cheapest first; factories, so each request gets its own
    instances (a shared instance would share `execution_context` across requests)."""
    return [
        partial(MaxTokensLimiter, max_token_count=MAX_TOKENS),
        partial(MaxAliasesLimiter, max_alias_count=MAX_ALIASES),
        partial(QueryDepthLimiter, max_depth=max_depth),
        partial(CostLimiter, max_cost, budget),
    ]
