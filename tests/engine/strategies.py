"""Hypothesis strategies for the rule language: random well-typed rulesets and the cases to run them on.

Rulesets are generated as YAML text, so every property exercises the whole
pipeline: loader, parser, type checks, planner, both back-ends.
"""

from __future__ import annotations

import json

from hypothesis import strategies as st

SCHEMA_YAML = """\
ruleset: gen-facts
facts:
  a:
    x: number
    y: {type: number, optional: true}
    n: {type: integer, optional: true}
    k: {type: enum, values: [p, q, r], optional: true}
    b: {type: boolean, optional: true}
    d: {type: date, optional: true}
  c:
    z: {type: number, optional: true}
    s: {type: string, optional: true}
derive:
  a.ratio: a.x / a.y
  a.gap: a.x - c.z
reasons:
  R1: "x is {a.x:.2f}"
  R2: "y is {a.y}"
  R3: "k is {a.k}, tier {tier}"
rules:
  - id: GEN-NOOP
    when: a.x > 1e300
    then: {conditions: ["never"]}
"""

NUMBER_FIELDS = ["a.x", "a.y", "a.n", "c.z", "a.ratio", "a.gap"]
LITERALS = st.sampled_from(["0", "1", "-1", "2.5", "0.5", "10", "-3", "100"])


@st.composite
def number_expr(draw: st.DrawFn, depth: int = 2) -> str:
    options = ["field", "field", "literal"]
    if depth > 0:
        options += ["arith", "func"]
    kind = draw(st.sampled_from(options))
    if kind == "field":
        return draw(st.sampled_from(NUMBER_FIELDS))
    if kind == "literal":
        return draw(LITERALS)
    if kind == "arith":
        op = draw(st.sampled_from(["+", "-", "*", "/"]))
        return f"({draw(number_expr(depth - 1))} {op} {draw(number_expr(depth - 1))})"
    func = draw(st.sampled_from(["min", "max", "abs", "round"]))
    if func == "abs":
        return f"abs({draw(number_expr(depth - 1))})"
    if func == "round":
        return f"round({draw(number_expr(depth - 1))}, {draw(st.integers(0, 2))})"
    return f"{func}({draw(number_expr(depth - 1))}, {draw(number_expr(depth - 1))})"


@st.composite
def condition(draw: st.DrawFn, depth: int = 2, conclusions: tuple[str, ...] = ()) -> str:
    options = ["num", "num", "enum", "bool", "presence", "string", "date"]
    if conclusions:
        options += ["conclusion", "conclusion"]
    if depth > 0:
        options += ["and", "or", "not"]
    kind = draw(st.sampled_from(options))
    if kind == "num":
        op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
        left = draw(number_expr(1))
        right = draw(st.one_of(LITERALS, number_expr(1)))
        return f"{left} {op} {right}"
    if kind == "enum":
        form = draw(st.sampled_from(["eq", "in", "notin", "order"]))
        if form == "eq":
            return f"a.k {draw(st.sampled_from(['==', '!=']))} '{draw(st.sampled_from('pqr'))}'"
        if form == "order":
            return f"a.k {draw(st.sampled_from(['<', '<=', '>', '>=']))} '{draw(st.sampled_from('pqr'))}'"
        values = draw(st.lists(st.sampled_from("pqr"), min_size=1, max_size=3, unique=True))
        listed = ", ".join(f"'{v}'" for v in values)
        return f"a.k {'in' if form == 'in' else 'not in'} [{listed}]"
    if kind == "bool":
        return draw(st.sampled_from(["a.b", "not a.b", "a.b == true", "a.b != false"]))
    if kind == "presence":
        return (
            f"{draw(st.sampled_from(['present', 'missing']))}({draw(st.sampled_from([*NUMBER_FIELDS, 'a.k', 'c.s']))})"
        )
    if kind == "string":
        return f"c.s {draw(st.sampled_from(['==', '!=']))} '{draw(st.sampled_from(['u', 'v']))}'"
    if kind == "date":
        return f"a.d {draw(st.sampled_from(['<', '>=', '==']))} date('2024-0{draw(st.integers(1, 9))}-15')"
    if kind == "conclusion":
        name = draw(st.sampled_from(conclusions))
        if name == "tier":
            return f"tier {draw(st.sampled_from(['<=', '>', '==', '!=']))} '{draw(st.sampled_from('ABCDE'))}'"
        if name == "decision":
            return f"decision {draw(st.sampled_from(['==', '!=']))} '{draw(st.sampled_from(['approve', 'refer']))}'"
        if name == "limit_cap":
            return f"limit_cap {draw(st.sampled_from(['<', '>=']))} {draw(LITERALS)}"
        return f"{draw(st.sampled_from(['present', 'missing']))}({name})"
    if kind == "not":
        return f"not ({draw(condition(depth - 1, conclusions))})"
    joiner = f" {kind} "
    parts = draw(st.lists(condition(depth - 1, conclusions), min_size=2, max_size=3))
    return joiner.join(f"({p})" for p in parts)


@st.composite
def then_block(draw: st.DrawFn, writes: str) -> str:
    if writes == "decision":
        decision = draw(st.sampled_from(["approve", "refer", "decline"]))
        reasons = draw(st.lists(st.sampled_from(["R1", "R2", "R3"]), min_size=1, max_size=2, unique=True))
        return f"{{decision: {decision}, reasons: [{', '.join(reasons)}]}}"
    if writes == "tier":
        return f"{{tier: {draw(st.sampled_from('ABCDE'))}}}"
    if writes == "limit_cap":
        return f"{{limit_cap: {json.dumps(draw(number_expr(1)))}}}"
    if writes == "rate_add_bps":
        return f"{{rate_add_bps: {draw(st.sampled_from(['25', '50', '-10', '12.5']))}}}"
    return f'{{conditions: ["cond {draw(st.integers(0, 3))} at {{a.x:.1f}}"]}}'


OUTPUTS = ["decision", "tier", "limit_cap", "rate_add_bps", "conditions"]


@st.composite
def ruleset_yaml(draw: st.DrawFn) -> str:
    """A ruleset of random rules (with strata: some read conclusions others write) and tables."""
    count = draw(st.integers(1, 8))
    # Give each output a rank so conclusions are read only "downstream": no cycles by construction.
    ranked = draw(st.permutations(OUTPUTS))
    lines = ["ruleset: gen-rules", "rules:"]
    for i in range(count):
        writes = draw(st.sampled_from(ranked))
        readable = tuple(o for o in ranked[: ranked.index(writes)] if o != "conditions")
        when = draw(condition(2, readable))
        lines.append(f"  - id: R{i}")
        lines.append(f"    when: {json.dumps(when)}")
        lines.append(f"    then: {draw(then_block(writes))}")
    if draw(st.booleans()):
        lines += draw(table_yaml(ranked))
    return "\n".join(lines) + "\n"


CELLS_NUM = ["-", "< 1", ">= 1", "[0..2)", "(-1..1]", "== 0", "> 10", "<= -1", "< a.y"]
CELLS_ENUM = ["-", "'p'", "'p', 'q'", "not 'r'", "'r'"]


@st.composite
def table_yaml(draw: st.DrawFn, ranked: list[str]) -> list[str]:
    hit = draw(st.sampled_from(["first", "collect"]))
    output = draw(st.sampled_from(["tier", "limit_cap", "rate_add_bps"]))
    readable = tuple(o for o in ranked[: ranked.index(output)] if o == "tier")
    inputs = ["a.x", "a.k"]
    if readable:
        inputs.append("tier")
    lines = [
        "tables:",
        "  - id: T1",
        f"    hit: {hit}",
        f"    inputs: [{', '.join(inputs)}]",
        f"    outputs: [{output}]",
        "    rows:",
    ]
    for _ in range(draw(st.integers(1, 5))):
        cells = [draw(st.sampled_from(CELLS_NUM)), draw(st.sampled_from(CELLS_ENUM))]
        if readable:
            cells.append(draw(st.sampled_from(["-", "'A', 'B'", "not 'E'"])))
        value = {
            "tier": draw(st.sampled_from("ABCDE")),
            "limit_cap": draw(st.sampled_from(["100", "a.x * 2", "50"])),
            "rate_add_bps": draw(st.sampled_from(["10", "20"])),
        }[output]
        lines.append(f"      - [{', '.join(json.dumps(c) for c in cells)}, {json.dumps(value)}]")
    return lines


def optional(value: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(st.none(), value)


NUMS = st.one_of(st.sampled_from([0, 1, -1, 0.5, 2.5, 10, 100, -3, 1e-9]), st.floats(-50, 50, allow_nan=False))


@st.composite
def cases(draw: st.DrawFn) -> dict:
    a = {
        "x": draw(NUMS),
        "y": draw(optional(NUMS)),
        "n": draw(optional(st.integers(-3, 12))),
        "k": draw(optional(st.sampled_from("pqr"))),
        "b": draw(optional(st.booleans())),
        "d": draw(optional(st.sampled_from(["2024-01-15", "2024-05-15", "2024-09-30"]))),
    }
    c = {"z": draw(optional(NUMS)), "s": draw(optional(st.sampled_from(["u", "v", "w"])))}
    case: dict = {"a": {k: v for k, v in a.items() if v is not None or draw(st.booleans())}}
    if draw(st.booleans()):
        case["c"] = {k: v for k, v in c.items() if v is not None or draw(st.booleans())}
    return case


POLICY_YAML = """\
policy: gen-policy
rulesets: [gen-facts, gen-rules]
defaults: {decision: refer}
pricing: {base_rate: 0.04}
limit: {requested: 1000}
"""
