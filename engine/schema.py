"""The shared schema (facts, derived fields, reasons, outputs) and type checking against it.

Documents loaded together form one schema: the union of their declarations.
Type checking infers a type for every expression and reports, at the token,
an unknown field (with a "did you mean"), a string compared with a number, an
enum compared with a value outside it, and the like.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.errors import Problem, SourceSpan, did_you_mean
from engine.model import FieldDecl, OutputDecl, ReasonDecl
from engine.outputs import SCORE_OUTPUTS, STANDARD_OUTPUTS
from engine.syntax import (
    Binary,
    BoolOp,
    Call,
    Compare,
    Expr,
    Literal,
    Membership,
    Name,
    Not,
    Path,
    Unary,
    walk,
)


@dataclass(frozen=True)
class Type:
    """number (integers included), string, boolean, date, enum (ordered values), list (of strings)."""

    kind: str
    values: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"enum {{{', '.join(self.values)}}}" if self.kind == "enum" else self.kind


NUMBER, STRING, BOOLEAN, DATE, LIST = Type("number"), Type("string"), Type("boolean"), Type("date"), Type("list")


def field_type(decl: FieldDecl) -> Type:
    if decl.type in ("number", "integer"):
        return NUMBER
    if decl.type == "enum":
        return Type("enum", decl.values)
    return Type(decl.type)


def output_type(decl: OutputDecl) -> Type:
    if decl.type == "enum":
        return Type("enum", decl.values)
    if decl.type in ("number", "string"):
        return Type(decl.type)
    return LIST


@dataclass
class Schema:
    fields: dict[tuple[str, str], FieldDecl] = field(default_factory=dict)
    reasons: dict[str, ReasonDecl] = field(default_factory=dict)
    outputs: dict[str, OutputDecl] = field(default_factory=lambda: dict(STANDARD_OUTPUTS))
    derived_order: list[FieldDecl] = field(default_factory=list)

    @property
    def facts(self) -> dict[str, list[FieldDecl]]:
        by_fact: dict[str, list[FieldDecl]] = {}
        for decl in self.fields.values():
            by_fact.setdefault(decl.fact, []).append(decl)
        return by_fact

    def conclusion(self, name: str) -> OutputDecl | None:
        return self.outputs.get(name) or SCORE_OUTPUTS.get(name)

    def with_outputs(self, extra: Iterable[OutputDecl]) -> Schema:
        outputs = dict(self.outputs)
        outputs.update((o.name, o) for o in extra)
        return Schema(self.fields, self.reasons, outputs, self.derived_order)


def build_schema(
    facts: Iterable[FieldDecl], derive: Iterable[FieldDecl], reasons: Iterable[ReasonDecl]
) -> tuple[Schema, list[Problem]]:
    """The union of declarations; a field or reason declared twice must be declared alike."""
    schema = Schema()
    problems: list[Problem] = []
    for decl in facts:
        known = schema.fields.get((decl.fact, decl.name))
        if known is None:
            schema.fields[(decl.fact, decl.name)] = decl
        elif not known.same_declaration(decl):
            problems.append(
                Problem(
                    "conflicting-declaration",
                    f"{decl.dotted} is declared differently in {known.document} ({known.span})",
                    decl.span,
                    "declare a shared field alike everywhere",
                )
            )
    for reason in reasons:
        known_reason = schema.reasons.get(reason.code)
        if known_reason is None:
            schema.reasons[reason.code] = reason
        elif known_reason.text != reason.text:
            problems.append(
                Problem(
                    "conflicting-declaration",
                    f"reason {reason.code} has another text at {known_reason.span}",
                    reason.span,
                )
            )
    derived = list(derive)
    for decl in derived:
        if (decl.fact, decl.name) in schema.fields and schema.fields[(decl.fact, decl.name)].derived is None:
            problems.append(
                Problem(
                    "conflicting-declaration",
                    f"{decl.dotted} is a fact field; a derived field needs its own name",
                    decl.span,
                )
            )
        elif decl.fact not in {f for f, _ in schema.fields}:
            problems.append(
                Problem(
                    "unknown-fact",
                    f"derived field {decl.dotted} adds to fact '{decl.fact}', which no document declares",
                    decl.span,
                    did_you_mean(decl.fact, {f for f, _ in schema.fields}),
                )
            )
    problems.extend(_order_derived(schema, derived))
    return schema, problems


def _order_derived(schema: Schema, derived: list[FieldDecl]) -> list[Problem]:
    """Type each derived field and put them in dependency order (a cycle or a conclusion read is an error)."""
    problems: list[Problem] = []
    by_name: dict[tuple[str, str], FieldDecl] = {}
    for decl in derived:
        known = by_name.get((decl.fact, decl.name))
        if known is not None:
            if known.derived != decl.derived:
                problems.append(
                    Problem(
                        "conflicting-declaration", f"{decl.dotted} is derived differently at {known.span}", decl.span
                    )
                )
            continue
        by_name[(decl.fact, decl.name)] = decl
    state: dict[tuple[str, str], str] = {}
    ordered: list[FieldDecl] = []
    # Iterative depth-first search: derive chains are short, but user input must never hit the recursion limit.
    for root in by_name:
        stack: list[tuple[tuple[str, str], bool]] = [(root, False)]
        while stack:
            key, done = stack.pop()
            decl = by_name[key]
            if done:
                state[key] = "done"
                ordered.append(decl)
                continue
            if state.get(key) == "done":
                continue
            if state.get(key) == "open":
                continue
            state[key] = "open"
            stack.append((key, True))
            assert decl.derived is not None
            for path in _paths(decl.derived):
                dep = (path.fact, path.name)
                if dep in by_name:
                    if state.get(dep) == "open":
                        problems.append(
                            Problem(
                                "derive-cycle",
                                f"derived field {decl.dotted} depends on itself through {path.dotted}",
                                path.span,
                            )
                        )
                    elif state.get(dep) != "done":
                        stack.append((dep, False))
            for name in _names(decl.derived):
                problems.append(
                    Problem(
                        "derive-reads-conclusion",
                        f"derived field {decl.dotted} reads conclusion "
                        f"'{name.name}'; derived fields are computed before any rule runs",
                        name.span,
                    )
                )
    if any(p.code == "derive-cycle" for p in problems):
        return problems
    for decl in ordered:
        schema.fields[(decl.fact, decl.name)] = decl  # visible to later derived fields, typed below
        checker = TypeChecker(schema, allow_conclusions=False)
        inferred = checker.infer(decl.derived)  # type: ignore[arg-type]
        problems.extend(checker.problems)
        type_name = "number" if inferred is None else (inferred.kind if inferred.kind != "list" else "string")
        typed = FieldDecl(
            decl.fact,
            decl.name,
            type_name,
            decl.span,
            values=inferred.values if inferred else (),
            optional=True,
            derived=decl.derived,
            document=decl.document,
        )
        schema.fields[(decl.fact, decl.name)] = typed
        schema.derived_order.append(typed)
    return problems


def _paths(expr: Expr) -> list[Path]:
    return [n for n in walk(expr) if isinstance(n, Path)]


def _names(expr: Expr) -> list[Name]:
    return [n for n in walk(expr) if isinstance(n, Name)]


ORDERING = ("<", "<=", ">", ">=")


class TypeChecker:
    """Infers types bottom-up; records problems at the offending token and keeps going."""

    def __init__(self, schema: Schema, *, allow_conclusions: bool = True, readable: set[str] | None = None) -> None:
        self.schema = schema
        self.allow_conclusions = allow_conclusions
        self.problems: list[Problem] = []

    def fail(self, code: str, message: str, span: SourceSpan, hint: str | None = None) -> None:
        self.problems.append(Problem(code, message, span, hint))

    def condition(self, expr: Expr) -> None:
        found = self.infer(expr)
        if found is not None and found != BOOLEAN:
            self.fail("type-mismatch", f"a condition must be true or false, but this is a {found}", expr.span)

    def number(self, expr: Expr, what: str) -> None:
        found = self.infer(expr)
        if found is not None and found != NUMBER:
            self.fail("type-mismatch", f"{what} must be a number, but this is a {found}", expr.span)

    def infer(self, expr: Expr) -> Type | None:
        if isinstance(expr, Literal):
            value = expr.value
            if isinstance(value, bool):
                return BOOLEAN
            if isinstance(value, (int, float)):
                return NUMBER
            if isinstance(value, dt.date):
                return DATE
            return STRING
        if isinstance(expr, Path):
            return self.path(expr)
        if isinstance(expr, Name):
            return self.name(expr)
        if isinstance(expr, Unary):
            self.number(expr.operand, "the operand of '-'")
            return NUMBER
        if isinstance(expr, Binary):
            left, right = self.infer(expr.left), self.infer(expr.right)
            for side, found in ((expr.left, left), (expr.right, right)):
                if found is not None and found != NUMBER:
                    self.fail(
                        "type-mismatch",
                        f"'{expr.op}' needs numbers, but this is a {found}",
                        side.span,
                        "use days_between(d1, d2) for dates" if found == DATE else None,
                    )
            return NUMBER
        if isinstance(expr, Compare):
            self.compare(expr)
            return BOOLEAN
        if isinstance(expr, Membership):
            left = self.infer(expr.left)
            for item in expr.right.items:
                self.compatible(left, item, expr.left, "in")
            return BOOLEAN
        if isinstance(expr, BoolOp):
            for item in expr.items:
                self.condition(item)
            return BOOLEAN
        if isinstance(expr, Not):
            self.condition(expr.operand)
            return BOOLEAN
        if isinstance(expr, Call):
            return self.call(expr)
        return None

    def path(self, expr: Path) -> Type | None:
        decl = self.schema.fields.get((expr.fact, expr.name))
        if decl is not None:
            if not decl.type:
                return None  # a derived field not typed yet (only in a cycle, already reported)
            return field_type(decl)
        facts = {f for f, _ in self.schema.fields}
        if expr.fact not in facts:
            names = [d.dotted for d in self.schema.fields.values()]
            hint = did_you_mean(expr.dotted, names) or did_you_mean(expr.fact, facts)
            self.fail("unknown-fact", f"unknown fact '{expr.fact}' in {expr.dotted}", expr.span, hint)
        else:
            names = [d.name for d in self.schema.fields.values() if d.fact == expr.fact]
            hint = did_you_mean(expr.name, names)
            hint = f"did you mean '{expr.fact}.{hint.split(chr(39))[1]}'?" if hint else None
            self.fail("unknown-field", f"unknown field '{expr.dotted}'", expr.span, hint)
        return None

    def name(self, expr: Name) -> Type | None:
        if not self.allow_conclusions:
            return None  # reported by the caller with its own message
        decl = self.schema.conclusion(expr.name)
        if decl is None:
            known = [*self.schema.outputs, "score", "pd"]
            hint = did_you_mean(expr.name, known)
            facts = {f for f, _ in self.schema.fields}
            if hint is None and expr.name in facts:
                hint = f"'{expr.name}' is a fact: name one of its fields, e.g. {expr.name}.<field>"
            self.fail("unknown-conclusion", f"unknown conclusion '{expr.name}'", expr.span, hint)
            return None
        return output_type(decl)

    def call(self, expr: Call) -> Type | None:
        if expr.func in ("present", "missing"):
            arg = expr.args[0]
            if not isinstance(arg, (Path, Name)):
                self.fail("type-mismatch", f"{expr.func}() takes a field or a conclusion", arg.span)
            else:
                self.infer(arg)
            return BOOLEAN
        if expr.func == "days_between":
            for arg in expr.args:
                found = self.infer(arg)
                if found is not None and found != DATE:
                    self.fail("type-mismatch", f"days_between() needs dates, but this is a {found}", arg.span)
            return NUMBER
        if expr.func == "round" and len(expr.args) == 2:
            digits = expr.args[1]
            if not (
                isinstance(digits, Literal) and isinstance(digits.value, int) and not isinstance(digits.value, bool)
            ):
                self.fail("type-mismatch", "round()'s second argument must be a whole number", digits.span)
            self.number(expr.args[0], "round()'s argument")
            return NUMBER
        for arg in expr.args:
            self.number(arg, f"{expr.func}()'s argument")
        return NUMBER

    def compare(self, expr: Compare) -> None:
        left, right = self.infer(expr.left), self.infer(expr.right)
        if left is None or right is None:
            return
        if left.kind == "enum" and isinstance(expr.right, Literal):
            self.compatible(left, expr.right, expr.left, expr.op)
        elif right.kind == "enum" and isinstance(expr.left, Literal):
            self.compatible(right, expr.left, expr.right, expr.op)
        elif not _comparable(left, right):
            self.fail(
                "type-mismatch",
                f"cannot compare {left} with {right}",
                expr.right.span,
                "compare like with like: numbers with numbers, text with text",
            )
            return
        if expr.op in ORDERING:
            kind = left.kind if left.kind != "string" or right.kind != "enum" else right.kind
            if kind in ("string", "boolean", "list"):
                self.fail(
                    "type-mismatch",
                    f"'{expr.op}' cannot order {left} values",
                    expr.span,
                    "only numbers, dates and enums have an order",
                )

    def compatible(self, subject: Type | None, item: Literal, at: Expr, op: str) -> None:
        if subject is None:
            return
        found = self.infer(item)
        if subject.kind == "enum":
            if found != STRING or item.value not in subject.values:
                self.fail(
                    "enum-value",
                    f"{item.value!r} is not a value of {subject}",
                    item.span,
                    did_you_mean(str(item.value), subject.values) or f"one of {', '.join(subject.values)}",
                )
            return
        if found is not None and not _comparable(subject, found):
            self.fail("type-mismatch", f"cannot compare {subject} with {found} ({op})", item.span)


def _comparable(left: Type, right: Type) -> bool:
    if left.kind == "enum" and right.kind == "enum":
        return left.values == right.values
    return left.kind == right.kind
