"""Translate a Credo `CompiledPolicy` into a zen-engine (GoRules JDM) decision graph, for the benchmark.

The graph is one chain, each node passing its input through (`passThrough`) so later nodes see earlier results:

    inputNode
    → expressionNode "derive"        derived fields, in dependency order (`financials.leverage`, ...)
    → decisionTableNode per scorecard characteristic (hit policy "first": one bin each) → expressionNode "score"
    → per stratum: one decisionTableNode per ruleset (hit policy "collect": its rules, and the rows of its
      collect/unique tables), one per `first` table (hit policy "first"), then an expressionNode that
      combines every output whose value is final after this stratum (worst, best, min, max, sum, ...)
    → expressionNode "decision" (no pass-through): outcome (with the policy's default), tier, score, pd,
      limit, rate, reason codes, conditions, alert codes and the keys of the rules and rows that fired
    → outputNode

Every row has one input column without a field, whose cell is the whole condition (a zen expression), and
output columns `rule` (the Credo key) plus whatever the rule or row writes.

Semantics, and where zen's differ from Credo's (design section 2):

* Three-valued logic. zen has no "unknown": comparing null raises an error (a decision table skips a row whose
  cell fails; an expression node fails the whole evaluation). So conditions are put in negation normal form
  (De Morgan; `not` reaches the comparisons and flips them) and every comparison is guarded by `x != null` on
  each operand it reads and `d != 0` on each divisor. Under Kleene logic a condition in negation normal form
  is *true* exactly when this two-valued, guarded form is true, which is all that decides whether a rule fires.
  `present(x)` / `missing(x)` are `x != null` / `x == null`; a boolean field as a condition is `x == true`.
* Arithmetic with a missing operand, and `x / 0`, give null in Credo: values are `guards ? expr : null`.
* Numbers: zen computes in decimal arithmetic, Credo in IEEE doubles. A derived ratio that lands exactly on a
  threshold can compare differently (`0.1 + 0.2 == 0.3` is true in zen). Random cases almost never hit this.
* Ordered comparisons on enums (`tier <= 'B'`) become membership in the values of lower/higher rank.
* Not translated (the benchmark's policies do not use them): dates and `days_between`, `round` (zen rounds
  half away from zero, Credo half to even), `abs`. They raise `Unsupported`.
* What the zen side does *not* do: validate the case against the fact declarations, render reason /
  condition / alert texts, build the trace (`fired` with its `because` values), detect `unique` conflicts, or
  de-duplicate union outputs. It returns reason codes, raw condition templates, alert codes and fired keys.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

from engine.policy import Activation, CompiledPolicy
from engine.syntax import Binary, BoolOp, Call, Compare, Expr, Literal, Membership, Name, Not, Path, Unary

__all__ = ["Unsupported", "ZenPolicy", "translate"]

# Context keys the graph adds next to the case's facts; a fact with one of these names would clash.
CONCLUSIONS = "zc"  # combined conclusions: zc.tier, zc.score, ...
RESULTS = "zr"  # table results: zr.s0_1 (collect: a list of rows), zr.s0_t2 (first: one row or null)
SCORES = "zs"  # scorecard bins: zs.c0.points
ROWS = "zk"  # the rows of each stratum, flattened: zk.s0
VALUES = "zv"  # the non-null values written to each output: zv.tier
RESERVED = (CONCLUSIONS, RESULTS, SCORES, ROWS, VALUES)

NEGATE = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
RANK_TESTS: dict[str, Callable[[int, int], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class Unsupported(ValueError):
    """The policy uses a construct this translation does not cover."""


def literal(value: object) -> str:
    """A zen literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        number = float(value)
        if not math.isfinite(number):
            raise Unsupported(f"non-finite number {value!r}")
        return repr(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise Unsupported(f"literal {value!r} ({type(value).__name__})")


def _literal_list(values: Sequence[object]) -> str:
    return "[" + ", ".join(literal(v) for v in values) + "]"


class _Translator:
    """Expressions of one unit into zen text. `local` names derived fields computed earlier in the same node."""

    def __init__(self, unit: CompiledPolicy) -> None:
        self.unit = unit
        self.local: set[tuple[str, str]] = set()

    # -- values ---------------------------------------------------------------------------------------------------

    def enum_values(self, expr: Expr) -> tuple[str, ...] | None:
        schema = self.unit.schema
        if isinstance(expr, Path):
            decl = schema.fields.get((expr.fact, expr.name))
            return decl.values if decl is not None and decl.type == "enum" else None
        if isinstance(expr, Name):
            out = schema.conclusion(expr.name)
            return out.values if out is not None and out.type == "enum" else None
        return None

    def ref(self, expr: Path | Name) -> str:
        if isinstance(expr, Name):
            return f"{CONCLUSIONS}.{expr.name}"
        if (expr.fact, expr.name) in self.local:
            return f"$.{expr.fact}.{expr.name}"
        return f"{expr.fact}.{expr.name}"

    def value(self, expr: Expr, guards: list[str]) -> str:
        """zen text of a value; appends to `guards` what must hold for it to be non-null (children first)."""
        if isinstance(expr, Literal):
            return literal(expr.value)
        if isinstance(expr, (Path, Name)):
            text = self.ref(expr)
            guards.append(f"{text} != null")
            return text
        if isinstance(expr, Unary):
            return f"-({self.value(expr.operand, guards)})"
        if isinstance(expr, Binary):
            left = self.value(expr.left, guards)
            right = self.value(expr.right, guards)
            if expr.op == "/":
                guards.append(f"{right} != 0")
            return f"({left} {expr.op} {right})"
        if isinstance(expr, Call) and expr.func in ("min", "max"):
            args = [self.value(a, guards) for a in expr.args]
            return f"{expr.func}([{', '.join(args)}])"
        raise Unsupported(f"value {type(expr).__name__} {getattr(expr, 'func', '')}".strip())

    def guarded_value(self, expr: Expr) -> str:
        """A value that is null where Credo's is null (a missing operand, a division by zero)."""
        guards: list[str] = []
        text = self.value(expr, guards)
        unique = list(dict.fromkeys(guards))
        if not unique:
            return text
        return f"({' and '.join(unique)}) ? {text} : null"

    # -- conditions -----------------------------------------------------------------------------------------------

    def condition(self, expr: Expr, negated: bool = False) -> str:
        """Two-valued zen text that is true exactly when the Kleene condition (negated if asked) is true."""
        if isinstance(expr, Not):
            return self.condition(expr.operand, not negated)
        if isinstance(expr, BoolOp):
            op = expr.op if not negated else ("or" if expr.op == "and" else "and")
            parts = [self.condition(item, negated) for item in expr.items]
            return "(" + f" {op} ".join(parts) + ")"
        if isinstance(expr, Literal) and isinstance(expr.value, bool):
            return literal(expr.value != negated)
        if isinstance(expr, Call) and expr.func in ("present", "missing"):
            target = expr.args[0]
            if not isinstance(target, (Path, Name)):
                raise Unsupported(f"{expr.func}() of an expression")
            present = (expr.func == "present") != negated
            return f"{self.ref(target)} {'!=' if present else '=='} null"
        if isinstance(expr, Compare):
            return self.compare(NEGATE[expr.op] if negated else expr.op, expr.left, expr.right)
        if isinstance(expr, Membership):
            guards: list[str] = []
            subject = self.value(expr.left, guards)
            items = _literal_list([i.value for i in expr.right.items])
            inside = expr.negated == negated
            test = f"{subject} in {items}" if inside else f"not ({subject} in {items})"
            return self._guarded(guards, test)
        if isinstance(expr, (Path, Name)):
            return f"{self.ref(expr)} == {literal(not negated)}"
        raise Unsupported(f"condition {type(expr).__name__}")

    def compare(self, op: str, left: Expr, right: Expr) -> str:
        order = self.enum_values(left) or self.enum_values(right)
        if order is not None and op in RANK_TESTS:
            if isinstance(left, Literal) and not isinstance(right, Literal):
                return self.compare(FLIP[op], right, left)
            if not isinstance(right, Literal):
                raise Unsupported("an ordered comparison of two enum fields")
            rank = order.index(str(right.value))
            keep = [v for i, v in enumerate(order) if RANK_TESTS[op](i, rank)]
            guards: list[str] = []
            subject = self.value(left, guards)
            return self._guarded(guards, f"{subject} in {_literal_list(keep)}")
        guards = []
        a = self.value(left, guards)
        b = self.value(right, guards)
        return self._guarded(guards, f"{a} {op} {b}")

    @staticmethod
    def _guarded(guards: list[str], test: str) -> str:
        unique = list(dict.fromkeys(guards))
        return "(" + " and ".join([*unique, test]) + ")"


def _node(node_id: str, kind: str, content: dict[str, Any]) -> dict[str, Any]:
    return {"id": node_id, "type": kind, "name": node_id, "position": {"x": 0, "y": 0}, "content": content}


def _expression_node(node_id: str, expressions: list[tuple[str, str]], pass_through: bool = True) -> dict[str, Any]:
    return _node(node_id, "expressionNode", {
        "expressions": [{"id": f"{node_id}-{i}", "key": k, "value": v} for i, (k, v) in enumerate(expressions)],
        "passThrough": pass_through,
        "inputField": None,
        "outputPath": None,
        "executionMode": "single",
    })


def _table_node(node_id: str, hit: str, rows: list[dict[str, str]], outputs: Sequence[str],
                output_path: str) -> dict[str, Any]:
    columns = [{"id": f"o-{name}", "name": name, "field": name} for name in outputs]
    return _node(node_id, "decisionTableNode", {
        "hitPolicy": hit,
        "inputs": [{"id": "when", "name": "when"}],
        "outputs": columns,
        "rules": rows,
        "passThrough": True,
        "inputField": None,
        "outputPath": output_path,
        "executionMode": "single",
    })


class _Graph:
    def __init__(self, unit: CompiledPolicy) -> None:
        self.unit = unit
        self.tr = _Translator(unit)
        self.nodes: list[dict[str, Any]] = [_node("input", "inputNode", {})]
        self.outputs = unit.schema.outputs

    def add(self, node: dict[str, Any]) -> None:
        self.nodes.append(node)

    def row(self, activation: Activation, index: int) -> tuple[dict[str, str], set[str]]:
        cells = {"_id": f"r{index}", "when": self.tr.condition(activation.condition) if activation.condition else "",
                 "o-rule": literal(activation.key)}
        written = {"rule"}
        for emit in activation.emits:
            decl = self.outputs[emit.output]
            cells[f"o-{emit.output}"] = self.emit_cell(activation, emit.output, decl.type)
            written.add(emit.output)
        return cells, written

    def emit_cell(self, activation: Activation, output: str, kind: str) -> str:
        then = _then_of(self.unit, activation)
        assignment = next(a for a in then if a.output == output)
        value = assignment.value
        if kind == "number":
            return self.tr.guarded_value(assignment.number_expr())
        if kind in ("reasons", "strings"):
            items = (value,) if isinstance(value, str) else tuple(value)  # type: ignore[arg-type]
            return _literal_list(items)
        if kind == "alerts":
            return _literal_list([a.code for a in value])  # type: ignore[union-attr]
        return literal(value)

    def build(self) -> dict[str, Any]:
        unit = self.unit
        clash = set(unit.schema.facts) & set(RESERVED)
        if clash:
            raise Unsupported(f"facts named {sorted(clash)} clash with the graph's own keys")
        self.derive()
        self.scorecard()
        by_level: dict[int, list[str]] = {}
        for name, level in unit.output_levels.items():
            if name in self.outputs:
                by_level.setdefault(level, []).append(name)
        for s in range(unit.strata):
            sources = self.stratum(s)
            self.combine(s, sources, by_level.get(s, []))
        self.final()
        self.add(_node("output", "outputNode", {}))
        edges = [{"id": f"e{i}", "sourceId": a["id"], "targetId": b["id"], "type": "edge"}
                 for i, (a, b) in enumerate(zip(self.nodes, self.nodes[1:], strict=False))]
        return {"nodes": self.nodes, "edges": edges}

    def derive(self) -> None:
        expressions = []
        self.tr.local = set()
        for decl in self.unit.schema.derived_order:
            if decl.derived is None:
                continue
            expressions.append((f"{decl.fact}.{decl.name}", self.tr.guarded_value(decl.derived)))
            self.tr.local.add((decl.fact, decl.name))
        self.tr.local = set()
        if expressions:
            self.add(_expression_node("derive", expressions))

    def scorecard(self) -> None:
        card = self.unit.scorecard
        if card is None:
            return
        terms = []
        for index, char in enumerate(card.characteristics):
            field = self.tr.ref(char.field)
            # Credo takes the first bin whose test is true, the `missing` bin for a missing value, and the `else`
            # bin when nothing else took the value (a missing one included): so `else` goes last.
            rows = []
            for number, b in sorted(enumerate(char.bins), key=lambda nb: nb[1].otherwise):
                if b.missing:
                    when = f"{field} == null"
                elif b.otherwise or b.test is None:
                    when = ""
                else:
                    when = self.tr.condition(b.test)
                rows.append({"_id": f"b{number}", "when": when, "o-points": literal(b.points)})
            self.add(_table_node(f"score-{index}", "first", rows, ["points"], f"{SCORES}.c{index}"))
            terms.append(f"({SCORES}.c{index}.points ?? 0)")
        scaling = card.scaling
        score = " + ".join([literal(scaling.base_points), *terms])
        odds = f"{literal(scaling.base_odds)} * 2 ^ (($.{CONCLUSIONS}.score - {literal(scaling.base_points)}) / " \
               f"{literal(scaling.pdo)})"
        self.add(_expression_node("score", [(f"{CONCLUSIONS}.score", score),
                                            (f"{CONCLUSIONS}.pd", f"1 / (1 + {odds})")]))

    def stratum(self, s: int) -> list[tuple[str, bool]]:
        """Table nodes of stratum s; returns their result paths, each with whether it is a list (collect)."""
        unit = self.unit
        sources: list[tuple[str, bool]] = []
        for r_index, ruleset in enumerate(unit.rulesets):
            mine = [a for a in unit.activations if a.stratum == s and a.ruleset == ruleset.name]
            collect = [a for a in mine if a.hit != "first"]
            if collect:
                rows, outputs = self.rows(collect)
                path = f"{RESULTS}.s{s}_{r_index}"
                self.add(_table_node(f"s{s}-{r_index}", "collect", rows, outputs, path))
                sources.append((path, True))
            tables = list(dict.fromkeys(a.table for a in mine if a.hit == "first"))
            for t_index, table in enumerate(tables):
                rows, outputs = self.rows([a for a in mine if a.table == table])
                path = f"{RESULTS}.s{s}_{r_index}_t{t_index}"
                self.add(_table_node(f"s{s}-{r_index}-t{t_index}", "first", rows, outputs, path))
                sources.append((path, False))
        return sources

    def rows(self, activations: Sequence[Activation]) -> tuple[list[dict[str, str]], list[str]]:
        rows = []
        outputs: dict[str, None] = {"rule": None}
        for index, activation in enumerate(sorted(activations, key=lambda a: a.order)):
            cells, written = self.row(activation, index)
            rows.append(cells)
            outputs.update(dict.fromkeys(sorted(written)))
        return rows, list(outputs)

    def combine(self, s: int, sources: list[tuple[str, bool]], names: list[str]) -> None:
        parts = [path if is_list else f"({path} == null ? [] : [{path}])" for path, is_list in sources]
        expressions = [(f"{ROWS}.s{s}", f"flatMap([{', '.join(parts)}], #)" if parts else "[]")]
        if names:
            every = ", ".join(f"$.{ROWS}.s{s}" if k == s else f"{ROWS}.s{k}" for k in range(s + 1))
            expressions.append((f"{ROWS}.upto{s}", f"flatMap([{every}], #)" if s else f"$.{ROWS}.s0"))
        for name in names:
            decl = self.outputs[name]
            expressions.append((f"{VALUES}.{name}", f"filter(map($.{ROWS}.upto{s}, #.{name}), # != null)"))
            expressions.append((f"{CONCLUSIONS}.{name}", _combined(decl.combine, decl.values, f"$.{VALUES}.{name}")))
        self.add(_expression_node(f"combine-{s}", expressions))

    def final(self) -> None:
        unit = self.unit
        c = CONCLUSIONS
        default = unit.defaults.get("decision", "refer")
        every = ", ".join(f"{ROWS}.s{k}" for k in range(unit.strata))
        expressions = [
            ("outcome", f"{c}.decision ?? {literal(default)}"),
            ("tier", f"{c}.tier ?? {literal(unit.defaults['tier'])}" if "tier" in unit.defaults else f"{c}.tier"),
            ("score", f"{c}.score"),
            ("pd", f"{c}.pd"),
        ]
        requested = self.tr.guarded_value(unit.policy.requested_limit) if unit.policy and \
            unit.policy.requested_limit else "null"
        cap = f"{c}.limit_cap ?? {literal(unit.defaults['limit_cap'])}" if "limit_cap" in unit.defaults \
            else f"{c}.limit_cap"
        known = f"filter([{requested}, {cap}], # != null)"
        limit = f"len({known}) > 0 ? min({known}) : null"
        expressions.append(("limit", f"$.outcome == 'decline' ? null : ({limit})"))
        if unit.base_rate is not None:
            expressions.append(("rate", f"$.outcome == 'decline' ? null : "
                                        f"{literal(unit.base_rate)} + ({c}.rate_add_bps ?? 0) / 10000"))
        else:
            expressions.append(("rate", "null"))
        for name in ("reasons", "conditions", "alerts"):
            expressions.append((name, f"{c}.{name} ?? []"))
        expressions.append(("fired", f"map(flatMap([{every}], #), #.rule)"))
        self.add(_expression_node("decision", expressions, pass_through=False))


def _combined(combine: str, order: tuple[str, ...], values: str) -> str:
    """zen text combining the list `values` (nulls removed) by `combine`; null where Credo leaves it missing."""
    if combine in ("worst", "best"):
        ranked = list(reversed(order)) if combine == "worst" else list(order)
        text = "null"
        for v in reversed(ranked):
            text = f"contains({values}, {literal(v)}) ? {literal(v)} : ({text})"
        return text
    if combine in ("min", "max"):
        return f"len({values}) > 0 ? {combine}({values}) : null"
    if combine == "sum":
        return f"sum({values})"
    if combine in ("union", "collect"):
        return f"flatMap({values}, #)"
    if combine == "unique":
        return f"len({values}) > 0 ? {values}[0] : null"
    raise Unsupported(f"combine {combine}")


def _then_of(unit: CompiledPolicy, activation: Activation) -> tuple[Any, ...]:
    for ruleset in unit.rulesets:
        if ruleset.name != activation.ruleset:
            continue
        if activation.table is None:
            return next(r.then for r in ruleset.rules if r.id == activation.key)
        table = next(t for t in ruleset.tables if t.id == activation.table)
        return next(row.then for row in table.rows if row.number == activation.row)
    raise KeyError(activation.key)


def translate(unit: CompiledPolicy) -> dict[str, Any]:
    """The JDM graph (a JSON-ready dict) that decides like `unit`, to the extent the module docstring says."""
    return _Graph(unit).build()


class ZenPolicy:
    """A translated policy loaded into zen-engine; `evaluate(case)` returns the graph's output object.

    The graph is served by a `ZenEngine` with a static loader and evaluated by key: the engine precompiles the
    graph's expressions once and evaluates on its shared runtime. (`ZenDecision.evaluate` from
    `create_decision(text)` compiles nothing ahead and, in zen-engine 2.1, builds a new tokio runtime, with its
    worker threads, for every call: several times slower. That would not be a fair baseline.)
    """

    KEY = "policy.json"

    def __init__(self, unit: CompiledPolicy) -> None:
        import zen

        self.graph = translate(unit)
        self.engine = zen.ZenEngine({"loader": {"type": "static", "content": {self.KEY: self.graph}}})
        self.node_count = len(self.graph["nodes"])

    def evaluate(self, case: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.engine.evaluate(self.KEY, case)["result"]
        return result
