"""Static checks on the rules and tables of a compile unit, collected as problems.

Each stage is a named function over the unit; the compiler runs them in order
and reports everything they find, sorted by position (design section 8).
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.errors import CredoError, Problem, SourceSpan, did_you_mean
from engine.model import AlertSpec, Assignment, Rule, Ruleset, Table
from engine.outputs import SCORE_OUTPUTS
from engine.schema import NUMBER, Schema, TypeChecker
from engine.syntax import Call, Expr, Name, Path, walk
from engine.texts import parse_template


def check_text(text: str, span: SourceSpan, schema: Schema) -> list[Problem]:
    """A reason/condition/alert text: placeholders must name known fields or conclusions."""
    template, problems = parse_template(text, span)
    for path in template.paths:
        if "." in path:
            fact, name = path.split(".", 1)
            if (fact, name) not in schema.fields:
                known = [d.dotted for d in schema.fields.values()]
                problems.append(
                    Problem("unknown-field", f"text refers to unknown field '{path}'", span, did_you_mean(path, known))
                )
        elif schema.conclusion(path) is None:
            problems.append(
                Problem(
                    "unknown-conclusion",
                    f"text refers to unknown conclusion '{path}'",
                    span,
                    did_you_mean(path, list(schema.outputs) + list(SCORE_OUTPUTS)),
                )
            )
    return problems


def check_assignments(then: Iterable[Assignment], schema: Schema, where: str) -> list[Problem]:
    problems: list[Problem] = []
    for a in then:
        decl = schema.outputs.get(a.output)
        if decl is None:
            if a.output in SCORE_OUTPUTS:
                problems.append(
                    Problem(
                        "read-only-conclusion",
                        f"'{a.output}' is written by the scorecard; rules may only read it",
                        a.span,
                    )
                )
            else:
                problems.append(
                    Problem(
                        "unknown-output",
                        f"{where} writes unknown output '{a.output}'",
                        a.span,
                        did_you_mean(a.output, schema.outputs) or "declare it under the policy's outputs",
                    )
                )
            continue
        value = a.value
        if decl.type == "number":
            if isinstance(value, str):
                try:
                    value = a.number_expr()
                except CredoError as error:
                    problems.extend(error.problems)
                    continue
            if isinstance(value, Expr):
                checker = TypeChecker(schema)
                found = checker.infer(value)
                problems.extend(checker.problems)
                if found is not None and found != NUMBER:
                    problems.append(
                        Problem("type-mismatch", f"{a.output} needs a number, but this is a {found}", value.span)
                    )
            else:
                problems.append(Problem("type-mismatch", f"{a.output} needs a single number", a.span))
        elif decl.type == "enum":
            if not isinstance(value, str) or value not in decl.values:
                shown = value if isinstance(value, str) else "a list"
                problems.append(
                    Problem(
                        "enum-value",
                        f"'{shown}' is not a value of {a.output}",
                        a.span,
                        did_you_mean(str(shown), decl.values) or f"one of {', '.join(decl.values)}",
                    )
                )
        elif decl.type == "string":
            if not isinstance(value, str):
                problems.append(Problem("type-mismatch", f"{a.output} needs a single text", a.span))
        elif decl.type == "reasons":
            codes = (value,) if isinstance(value, str) else value
            if not isinstance(codes, tuple) or not all(isinstance(c, str) for c in codes):
                problems.append(Problem("type-mismatch", "reasons are a list of reason codes", a.span))
                continue
            for code in codes:
                if code not in schema.reasons:
                    problems.append(
                        Problem(
                            "unknown-reason",
                            f"unknown reason code '{code}'",
                            a.span,
                            did_you_mean(code, schema.reasons) or "declare it under reasons:",
                        )
                    )
        elif decl.type == "strings":
            texts = (value,) if isinstance(value, str) else value
            if not isinstance(texts, tuple) or not all(isinstance(t, str) for t in texts):
                problems.append(Problem("type-mismatch", f"{a.output} is a list of texts", a.span))
                continue
            for text in texts:
                problems.extend(check_text(text, a.span, schema))
        elif decl.type == "alerts":
            if not isinstance(value, tuple) or not all(isinstance(x, AlertSpec) for x in value):
                problems.append(Problem("type-mismatch", "alerts are a list of {code, severity, message}", a.span))
                continue
            for alert in value:
                problems.extend(check_text(alert.message, alert.span, schema))
    return problems


def adverse_without_reason(then: Iterable[Assignment], span: SourceSpan, where: str) -> list[Problem]:
    outputs = {a.output: a.value for a in then}
    decision = outputs.get("decision")
    if decision in ("decline", "refer") and not outputs.get("reasons"):
        return [
            Problem(
                "missing-reason",
                f"{where} gives decision {decision} without a reason code",
                span,
                "add reasons: [CODE] so the borrower and the auditor learn why",
            )
        ]
    return []


def present_on_required(expr: Expr, schema: Schema) -> list[Problem]:
    problems = []
    for node in walk(expr):
        if isinstance(node, Call) and node.func == "present" and isinstance(node.args[0], Path):
            decl = schema.fields.get((node.args[0].fact, node.args[0].name))
            if decl is not None and not decl.optional and decl.derived is None:
                problems.append(
                    Problem(
                        "present-required",
                        f"{node.args[0].dotted} is required, so present() is always true",
                        node.span,
                        severity="warning",
                    )
                )
    return problems


def check_rule(rule: Rule, schema: Schema) -> list[Problem]:
    checker = TypeChecker(schema)
    checker.condition(rule.when)
    problems = list(checker.problems)
    problems += present_on_required(rule.when, schema)
    problems += check_assignments(rule.then, schema, f"rule {rule.id}")
    problems += adverse_without_reason(rule.then, rule.span, f"rule {rule.id}")
    if not rule.then:
        problems.append(Problem("empty-then", f"rule {rule.id} concludes nothing", rule.span, severity="warning"))
    return problems


def check_table_types(table: Table, schema: Schema) -> list[Problem]:
    checker = TypeChecker(schema)
    for expr in table.inputs:
        checker.infer(expr)
    problems: list[Problem] = []
    for output in table.outputs:
        if output not in schema.outputs:
            problems.append(
                Problem(
                    "unknown-output",
                    f"table {table.id} writes unknown output '{output}'",
                    table.span,
                    did_you_mean(output, schema.outputs),
                )
            )
    input_problems = len(checker.problems)
    for row in table.rows:
        for test in row.tests:
            if test is not None and not input_problems:
                checker.condition(test)
        problems += check_assignments(
            [a for a in row.then if a.output in schema.outputs], schema, f"row {row.number} of {table.id}"
        )
        problems += adverse_without_reason(row.then, row.span, f"row {row.number} of {table.id}")
    return checker.problems + problems


def check_ruleset_text(ruleset: Ruleset, schema: Schema) -> list[Problem]:
    problems: list[Problem] = []
    for reason in ruleset.reasons:
        problems += check_text(reason.text, reason.text_span, schema)
    return problems


def duplicate_ids(rulesets: Iterable[Ruleset]) -> list[Problem]:
    seen: dict[str, tuple[str, SourceSpan]] = {}
    problems = []
    for ruleset in rulesets:
        for item in [*ruleset.rules, *ruleset.tables]:
            first = seen.get(item.id)
            if first is not None:
                problems.append(
                    Problem(
                        "duplicate-id",
                        f"id '{item.id}' is already used in {first[0]} at {first[1]}",
                        item.span,
                        "ids are unique, stable and never reused",
                    )
                )
            else:
                seen[item.id] = (ruleset.name, item.span)
    return problems


def conclusions_read(expr: Expr) -> list[str]:
    return list(dict.fromkeys(n.name for n in walk(expr) if isinstance(n, Name)))
