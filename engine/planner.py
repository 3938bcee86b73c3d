"""From conditions to the match plan: negation normal form, DNF, atoms and calc operands.

Under Kleene logic De Morgan holds and `not (x > 5)` is `x <= 5` (both unknown
when x is missing), so negation is pushed into the comparisons and the engine
never needs `$not`. Arithmetic never enters the network: an operand that is not
a plain field or literal is computed in Python and asserted as a field of the
stratum's calc fact (the C core truncates integer division and dies on int ÷ 0).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from engine.errors import Problem
from engine.expr import to_text
from engine.plan import Atom, Branch, FieldRef, calc_tag, conclusion_tag
from engine.syntax import BoolOp, Call, Compare, Expr, ListLiteral, Literal, Membership, Name, Not, Path
from engine.values import EnumOrder, ValueFn, compile_value

MAX_BRANCHES = 64
FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
NEGATE = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}


def engine_value(value: object) -> object:
    """How a literal reaches the engine: dates as day ordinals, numbers as floats."""
    if isinstance(value, dt.date):
        return float(value.toordinal())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


@dataclass
class CalcField:
    """An operand computed in Python before assertion, as field `name` of the calc fact of `stratum`."""

    stratum: int
    name: str
    expr: Expr
    fn: ValueFn


@dataclass
class Planner:
    enum_order: EnumOrder
    calc: dict[tuple[int, str], CalcField] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def branches(self, condition: Expr | None, stratum: int, key: str) -> tuple[Branch, ...]:
        if condition is None:
            return (Branch(()),)
        out = self._dnf(condition, False, stratum)
        if len(out) > MAX_BRANCHES:
            self.problems.append(
                Problem(
                    "engine-limit",
                    f"{key}: the condition expands to {len(out)} alternatives; the engine takes at most {MAX_BRANCHES}",
                    condition.span,
                    "split the rule into several rules",
                )
            )
            return ()
        unique: dict[tuple[Atom, ...], None] = {}
        for atoms in out:
            unique.setdefault(tuple(dict.fromkeys(atoms)), None)
        return tuple(Branch(a) for a in unique)

    def _dnf(self, expr: Expr, negated: bool, stratum: int) -> list[list[Atom]]:
        if isinstance(expr, Not):
            return self._dnf(expr.operand, not negated, stratum)
        if isinstance(expr, BoolOp):
            conjunctive = (expr.op == "and") != negated
            parts = [self._dnf(item, negated, stratum) for item in expr.items]
            if not conjunctive:
                return [branch for part in parts for branch in part][: MAX_BRANCHES + 1]
            product: list[list[Atom]] = [[]]
            for part in parts:
                product = [a + b for a in product for b in part][: MAX_BRANCHES + 1]
            return product
        return self._leaf(expr, negated, stratum)

    def _leaf(self, expr: Expr, negated: bool, stratum: int) -> list[list[Atom]]:
        if isinstance(expr, Literal):
            return [[]] if bool(expr.value) != negated else []
        if isinstance(expr, Compare):
            return self._compare(expr.op if not negated else NEGATE[expr.op], expr.left, expr.right, stratum)
        if isinstance(expr, Membership):
            inside = expr.negated == negated
            items = [Compare(i.span, "==" if inside else "!=", expr.left, i) for i in expr.right.items]
            if inside:
                return [branch for item in items for branch in self._leaf(item, False, stratum)]
            return self._dnf(BoolOp(expr.span, "and", tuple(items)), False, stratum)
        if isinstance(expr, Call) and expr.func in ("present", "missing"):
            present = (expr.func == "present") != negated
            return [[Atom(self._ref(expr.args[0], stratum), "present" if present else "missing")]]
        # A boolean field or conclusion as a condition.
        return [[Atom(self._ref(expr, stratum), "==", not negated)]]

    def _compare(self, op: str, left: Expr, right: Expr, stratum: int) -> list[list[Atom]]:
        order = self.enum_order(left) or self.enum_order(right)
        if order is not None and op in ("<", "<=", ">", ">=") and isinstance(right, Literal):
            # Ordered enums compare by rank: `tier <= 'B'` is `tier in ['A', 'B']`.
            rank = order.index(str(right.value))
            keep = [v for i, v in enumerate(order) if _OPS[op](i, rank)]
            return [[Atom(self._ref(left, stratum), "==", v)] for v in keep]
        if order is not None and op in ("<", "<=", ">", ">=") and isinstance(left, Literal):
            return self._compare(FLIP[op], right, left, stratum)
        if isinstance(left, Literal) and isinstance(right, Literal):
            return [[]] if _OPS[op](engine_value(left.value), engine_value(right.value)) else []
        if isinstance(left, Literal):
            return self._compare(FLIP[op], right, left, stratum)
        if isinstance(right, Literal):
            return [[Atom(self._ref(left, stratum), op, engine_value(right.value))]]
        ranked = order is not None and op in ("<", "<=", ">", ">=")
        a, b = self._calc(left, stratum, ranked), self._calc(right, stratum, ranked)
        return [[Atom(a, op, other=b)]]

    def _ref(self, expr: Expr, stratum: int) -> FieldRef:
        if isinstance(expr, Path):
            return FieldRef(expr.fact, expr.name)
        if isinstance(expr, Name):
            return FieldRef(conclusion_tag(expr.name), "value")
        return self._calc(expr, stratum, False)

    def _calc(self, expr: Expr, stratum: int, ranked: bool) -> FieldRef:
        text = to_text(expr) + ("#rank" if ranked else "")
        known = self.calc.get((stratum, text))
        if known is None:
            fn = compile_value(expr, self.enum_order)
            if ranked:
                order = self.enum_order(expr) or ()
                rank = {v: float(i) for i, v in enumerate(order)}
                inner = fn
                fn = lambda facts, conclusions: rank.get(inner(facts, conclusions))  # noqa: E731
            known = CalcField(stratum, f"v{len([k for k in self.calc if k[0] == stratum])}", expr, fn)
            self.calc[(stratum, text)] = known
        return FieldRef(calc_tag(stratum), known.name)


_OPS = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}

__all__ = ["CalcField", "ListLiteral", "Planner", "engine_value"]
