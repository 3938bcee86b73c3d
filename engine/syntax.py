"""The expression tree: what `when`, `derive`, numeric outputs and table cells parse to.

Nodes are immutable and carry the span of their first token, so every later
stage (type checking, compilation, tracing) can point at the author's text;
`engine.expr.to_text` gives a node's canonical text for traces and messages.
Spans take no part in equality. Note that `Literal(1) == Literal(True)`, as
in Python: code that de-duplicates literals must compare their types too.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from engine.errors import SourceSpan

Scalar = float | int | str | bool | dt.date


@dataclass(frozen=True)
class Expr:
    span: SourceSpan = field(compare=False, repr=False)


@dataclass(frozen=True)
class Literal(Expr):
    """A number, string, boolean or date literal. Numbers keep int/float as written."""

    value: Scalar


@dataclass(frozen=True)
class ListLiteral(Expr):
    """Only valid as the right side of `in` / `not in`."""

    items: tuple[Literal, ...]


@dataclass(frozen=True)
class Path(Expr):
    """`financials.dscr`: a fact field (or a derived field). Always two parts."""

    fact: str
    name: str

    @property
    def dotted(self) -> str:
        return f"{self.fact}.{self.name}"


@dataclass(frozen=True)
class Name(Expr):
    """A bare identifier: a conclusion made by a rule (`tier`, `score`)."""

    name: str


@dataclass(frozen=True)
class Unary(Expr):
    """Arithmetic negation: op is always '-'."""

    op: str
    operand: Expr


@dataclass(frozen=True)
class Binary(Expr):
    """Arithmetic: op in '+', '-', '*', '/'."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Compare(Expr):
    """op in '==', '!=', '<', '<=', '>', '>='. Not chained: `a < b < c` is a syntax error."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Membership(Expr):
    """`x in [...]` / `x not in [...]`; right is a ListLiteral."""

    negated: bool
    left: Expr
    right: ListLiteral


@dataclass(frozen=True)
class BoolOp(Expr):
    """op is 'and' or 'or'; flattened: (a and b) and c is one node with three items."""

    op: str
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not(Expr):
    operand: Expr


@dataclass(frozen=True)
class Call(Expr):
    """min, max, abs, round, present, missing, days_between (date(...) is a Literal)."""

    func: str
    args: tuple[Expr, ...]


FUNCTIONS = {"min", "max", "abs", "round", "present", "missing", "days_between"}


def children(expr: Expr) -> tuple[Expr, ...]:
    if isinstance(expr, (Unary, Not)):
        return (expr.operand,)
    if isinstance(expr, (Binary, Compare)):
        return (expr.left, expr.right)
    if isinstance(expr, Membership):
        return (expr.left, expr.right)
    if isinstance(expr, BoolOp):
        return expr.items
    if isinstance(expr, Call):
        return expr.args
    if isinstance(expr, ListLiteral):
        return expr.items
    return ()


def walk(expr: Expr) -> list[Expr]:
    """Every node, parents before children, in source order (iterative: no recursion on user input)."""
    out: list[Expr] = []
    stack = [expr]
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(reversed(children(node)))
    return out
