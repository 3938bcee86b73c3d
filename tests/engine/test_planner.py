"""Conditions to DNF over atoms: negation pushed into comparisons, arithmetic moved into computed facts."""

from __future__ import annotations

from engine.errors import SourceSpan
from engine.expr import parse_expression
from engine.plan import Atom, FieldRef, calc_tag, conclusion_tag
from engine.planner import MAX_BRANCHES, Planner

TIERS = ("A", "B", "C", "D", "E")


def planner() -> Planner:
    return Planner(lambda e: TIERS if getattr(e, "name", None) == "tier" else None)


def branches(expr: str, p: Planner | None = None) -> list[list[Atom]]:
    p = p or planner()
    return [list(b.atoms) for b in p.branches(parse_expression(expr, SourceSpan("r", 1, 1)), 0, "R")]


def ref(fact: str, field: str) -> FieldRef:
    return FieldRef(fact, field)


def test_not_is_pushed_into_comparisons() -> None:
    assert branches("not (f.x > 5 and f.y == 'a')") == [
        [Atom(ref("f", "x"), "<=", 5.0)],
        [Atom(ref("f", "y"), "!=", "a")],
    ]


def test_membership_expands_and_not_in_conjoins() -> None:
    assert len(branches("f.k in ['a', 'b', 'c']")) == 3
    assert branches("f.k not in ['a', 'b']") == [[Atom(ref("f", "k"), "!=", "a"), Atom(ref("f", "k"), "!=", "b")]]


def test_ordered_enums_become_membership_on_the_conclusion_fact() -> None:
    assert branches("tier <= 'B'") == [
        [Atom(ref(conclusion_tag("tier"), "value"), "==", "A")],
        [Atom(ref(conclusion_tag("tier"), "value"), "==", "B")],
    ]


def test_literal_on_the_left_is_flipped_and_constants_fold() -> None:
    assert branches("5 < f.x") == [[Atom(ref("f", "x"), ">", 5.0)]]
    assert branches("1 < 2") == [[]]
    assert branches("1 > 2") == []


def test_arithmetic_goes_to_the_computed_fact() -> None:
    p = planner()
    [[atom]] = branches("a.amount > 0.2 * b.capital", p)
    assert atom.ref == ref(calc_tag(0), "v0") and atom.other == ref(calc_tag(0), "v1")
    computed = {c.name: c.fn({"a": {"amount": 10.0}, "b": {"capital": 20.0}}, {}) for c in p.calc.values()}
    assert computed == {"v0": 10.0, "v1": 4.0}


def test_presence_and_boolean_fields() -> None:
    assert branches("missing(f.x) or not f.flag") == [
        [Atom(ref("f", "x"), "missing")],
        [Atom(ref("f", "flag"), "==", False)],
    ]


def test_exploding_conditions_are_an_engine_limit_problem() -> None:
    p = planner()
    text = " and ".join(f"(f.a{i} > 1 or f.b{i} > 1)" for i in range(7))  # 2**7 = 128 branches
    assert p.branches(parse_expression(text, SourceSpan("r", 1, 1)), 0, "R") == ()
    assert p.problems[0].code == "engine-limit" and str(MAX_BRANCHES) in p.problems[0].message
