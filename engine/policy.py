"""Compiling a policy (or a lone ruleset, for its tests) into an evaluable unit.

The unit holds everything a decision needs, precomputed: the case validator,
derived fields in dependency order, the scorecard's bins, one activation per
rule and table row (its condition for the reference interpreter, its DNF for
the engine, what it writes and how to explain it), the strata, and the
durable_rules network compiled from the plan.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.cases import CaseValidator
from engine.checks import (
    check_assignments,
    check_rule,
    check_ruleset_text,
    check_table_types,
    conclusions_read,
    duplicate_ids,
)
from engine.compiler import CompiledNetwork, compile_plan
from engine.errors import CredoError, Problem, SourceSpan, did_you_mean
from engine.expr import to_text
from engine.model import Assignment, OutputDecl, Policy, Ruleset, Scorecard, Table
from engine.outputs import SCORE_OUTPUTS, STANDARD_OUTPUTS
from engine.plan import Activation as PlanActivation
from engine.plan import Plan, calc_tag, conclusion_tag
from engine.planner import CalcField, Planner
from engine.schema import NUMBER, Schema, TypeChecker
from engine.syntax import BoolOp, Call, Expr, Name, Path, walk
from engine.tablecheck import check_bins, check_table
from engine.texts import Template, parse_template
from engine.values import (
    SubjectTest,
    TruthFn,
    ValueFn,
    compile_subject_test,
    compile_truth,
    compile_value,
    json_number,
    json_value,
    leaves,
)

VARIES: Any = object()  # Emit.fixed of an emit whose value depends on the case


@dataclass(frozen=True)
class Emit:
    """One output a firing contributes; exactly one of the value fields is used, by the output's type."""

    output: str
    constant: Any = None  # enum symbol, text, tuple of reason codes
    number: ValueFn | None = None
    texts: tuple[Template, ...] = ()  # conditions and other text lists
    alerts: tuple[tuple[str, str, Template], ...] = ()
    # The value itself when no case can change it (a constant, texts without placeholders), else VARIES: most
    # emits are such, and the evaluator then skips working it out. Alerts are always fresh dicts, never shared.
    fixed: Any = field(default=VARIES, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.number is not None or self.alerts:
            return
        if not self.texts:
            object.__setattr__(self, "fixed", self.constant)
        elif all(t.literal is not None for t in self.texts):
            object.__setattr__(self, "fixed", tuple(t.literal for t in self.texts))


@dataclass(frozen=True)
class Because:
    """One test of a condition; `explain` gives its trace entry when it held, else None."""

    text: str
    negated: bool
    explain: Callable[[Any, Any], dict[str, Any] | None]


@dataclass(frozen=True)
class Activation:
    key: str
    ruleset: str
    order: int
    stratum: int
    span: SourceSpan
    condition: Expr | None
    truth: TruthFn
    emits: tuple[Emit, ...]
    because: tuple[Because, ...]
    table: str | None = None
    hit: str | None = None
    row: int = 0
    writes: tuple[str, ...] = ()
    explains: tuple[Callable[[Any, Any], dict[str, Any] | None], ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # What the trace calls for every firing, without a lookup per test.
        object.__setattr__(self, "explains", tuple(b.explain for b in self.because))


@dataclass(frozen=True)
class ScoreBin:
    truth: TruthFn | None
    points: float
    test: str  # how the trace shows the bin: "financials.dscr < 1.0", "missing(...)", "else"
    missing: bool
    otherwise: bool
    reason: str | None
    # The test as a function of the characteristic's value (read once per case), when it reads nothing else.
    on_value: SubjectTest | None = None
    points_json: Any = field(init=False, compare=False, repr=False)  # `points` as the trace shows it

    def __post_init__(self) -> None:
        object.__setattr__(self, "points_json", json_number(self.points))


@dataclass(frozen=True)
class ScoreCharacteristic:
    field: str
    rule: str  # the trace's name for it: scorecard/field
    value: ValueFn
    bins: tuple[ScoreBin, ...]
    best: float
    # Derived, for the evaluator: the first `else` bin (where a value no test takes falls), and `field` as
    # (fact, name) to read the value without calling `value`.
    otherwise: ScoreBin | None = field(init=False, compare=False, repr=False)
    path: tuple[str, str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "otherwise", next((b for b in self.bins if b.otherwise), None))
        fact, name = self.field.split(".", 1)
        object.__setattr__(self, "path", (fact, name))


@dataclass
class CompiledPolicy:
    name: str
    digest: str
    policy: Policy | None
    rulesets: tuple[Ruleset, ...]
    scorecard: Scorecard | None
    schema: Schema
    validator: CaseValidator
    derived: tuple[tuple[str, str, ValueFn], ...]
    characteristics: tuple[ScoreCharacteristic, ...]
    activations: tuple[Activation, ...]
    by_key: dict[str, Activation]
    strata: int
    output_levels: dict[str, int]
    conclusions_at: tuple[tuple[str, ...], ...]
    calc_at: tuple[tuple[CalcField, ...], ...]
    fact_tags: tuple[str, ...]
    # Per stratum, what is asserted into the network: (tag, ((engine field, getter), ...)) pairs; None instead of
    # the getters means the case's fact as validated is asserted as it is (no field of it needs converting).
    assertions: tuple[tuple[tuple[str, tuple[tuple[str, ValueFn], ...] | None], ...], ...]
    date_fields: dict[str, frozenset[str]]
    plan: Plan
    network_spec: CompiledNetwork
    defaults: dict[str, Any]
    on_error: str
    base_rate: float | None
    requested: ValueFn | None
    reason_texts: dict[str, Template]
    warnings: list[Problem] = field(default_factory=list)
    _network: Any = None

    def __post_init__(self) -> None:
        # Which outputs become final after each stratum, and which outputs the decision reports by name.
        combine_at: list[list[str]] = [[] for _ in range(self.strata)]
        for name, level in self.output_levels.items():
            if 0 <= level < self.strata:
                combine_at[level].append(name)
        self.combine_at = tuple(tuple(names) for names in combine_at)
        self.extra_outputs = tuple(n for n in self.schema.outputs if n not in STANDARD_OUTPUTS)
        self.ranks = {n: {v: i for i, v in enumerate(o.values)} for n, o in self.schema.outputs.items() if o.values}
        self.combines = {n: o.combine for n, o in self.schema.outputs.items()}  # how each output combines

    @property
    def network(self) -> Any:
        """The durable_rules network, built on first use in this process."""
        if self._network is None:
            from engine.runtime import Network

            self._network = Network(self.network_spec)
        return self._network

    def provenance(self) -> dict[str, Any]:
        """The versions and digests a decision names: the policy, its rulesets and its scorecard (fresh dicts)."""
        card, version = self.scorecard, self.policy.version if self.policy else None
        return {
            "policy": {"name": self.name, "version": version, "digest": self.digest},
            "rulesets": [{"name": r.name, "version": r.version, "digest": r.digest} for r in self.rulesets],
            "scorecard": {"name": card.name, "version": card.version, "digest": card.digest} if card else None,
        }

    def reader_of(self, output: str) -> bool:
        return output in self.output_levels


def policy_digest(policy: Policy, parts: Sequence[Ruleset | Scorecard]) -> str:
    """A policy's digest covers its own text and the digests of every document it resolved to."""
    h = hashlib.sha256(policy.digest.encode())
    for part in parts:
        h.update(f"\n{part.name}@{part.version}:{part.digest}".encode())
    return "sha256:" + h.hexdigest()


def compile_unit(
    schema: Schema,
    rulesets: Sequence[Ruleset],
    scorecard: Scorecard | None = None,
    policy: Policy | None = None,
) -> CompiledPolicy:
    """Check and compile; raises CredoError with every error, keeps warnings on the result."""
    problems: list[Problem] = []
    if policy is not None:
        schema, policy_problems = _policy_schema(schema, policy)
        problems += policy_problems
    problems += duplicate_ids(rulesets)
    enum_order = _enum_order(schema)
    characteristics = _compile_scorecard(scorecard, schema, enum_order, problems) if scorecard else ()

    items: list[tuple[Ruleset, Any, int]] = []  # (ruleset, rule or (table, row), order)
    for ruleset in rulesets:
        problems += check_ruleset_text(ruleset, schema)
        for rule in ruleset.rules:
            problems += check_rule(rule, schema)
        for table in ruleset.tables:
            problems += check_table_types(table, schema)
            if not any(p.is_error for p in problems):
                problems += check_table(table, schema)
        located = [(r.span, r) for r in ruleset.rules] + [(t.span, t) for t in ruleset.tables]
        for _, item in sorted(located, key=lambda x: (x[0].line, x[0].column)):
            if isinstance(item, Table):
                items.extend((ruleset, (item, row), 0) for row in item.rows)
            else:
                items.append((ruleset, item, 0))
    if any(p.is_error for p in problems):
        raise CredoError(problems)

    reads, writes = _reads_writes(items, schema)
    levels, cycle_problems = _stratify(items, reads, writes)
    if cycle_problems:
        raise CredoError(problems + cycle_problems)
    act_levels = [1 + max((levels.get(n, -1) for n in reads[i]), default=-1) for i in range(len(items))]
    strata = max(act_levels, default=0) + 1

    planner = Planner(enum_order)
    activations: list[Activation] = []
    plan_acts: list[PlanActivation] = []
    for order, ((ruleset, item, _), stratum) in enumerate(zip(items, act_levels, strict=True)):
        activation = _activation(ruleset, item, order, stratum, schema, enum_order, writes[order])
        activations.append(activation)
        plan_acts.append(
            PlanActivation(
                activation.key, stratum, order, planner.branches(activation.condition, stratum, activation.key)
            )
        )
    problems += planner.problems
    if any(p.is_error for p in problems):
        raise CredoError(problems)

    engine_reads = {
        a.ref.fact[3:] for p in plan_acts for b in p.branches for a in b.atoms if a.ref.fact.startswith("~c:")
    }
    conclusions_at: list[list[str]] = [[] for _ in range(strata)]
    for name in sorted(engine_reads):
        level = levels.get(name, -1)
        conclusions_at[level + 1 if level + 1 < strata else strata - 1].append(name)
    calc_at: list[list[CalcField]] = [[] for _ in range(strata)]
    for calc in planner.calc.values():
        calc_at[calc.stratum].append(calc)
    fact_fields = sorted(
        {
            (a.ref.fact, a.ref.field)
            for p in plan_acts
            for b in p.branches
            for a in b.atoms
            if not a.ref.fact.startswith("~")
        }
    )
    assertions = _layout(strata, fact_fields, conclusions_at, calc_at, schema)
    fact_tags = sorted({fact for fact, _ in fact_fields})
    tags_by_stratum = tuple(tuple(tag for tag, _ in assertions[s]) for s in range(strata))
    name = policy.name if policy else (rulesets[0].name if rulesets else "")
    plan = Plan(name, tuple(plan_acts), tags_by_stratum)
    spans = {a.key: a.span for a in activations}
    try:
        network_spec = compile_plan(plan, spans)
    except CredoError as error:
        raise CredoError(problems + error.problems) from None

    parts: list[Ruleset | Scorecard] = [*rulesets, *([scorecard] if scorecard else [])]
    digest = policy_digest(policy, parts) if policy else (rulesets[0].digest if rulesets else "")
    reason_texts = {}
    for code, reason in schema.reasons.items():
        reason_texts[code] = parse_template(reason.text, reason.text_span)[0]
    defaults = {n: v for n, v, _ in policy.defaults} if policy else {}
    requested = compile_value(policy.requested_limit, enum_order) if policy and policy.requested_limit else None
    date_fields = {}
    for decl in schema.fields.values():
        if decl.type == "date":
            date_fields.setdefault(decl.fact, set()).add(decl.name)
    return CompiledPolicy(
        name=name,
        digest=digest,
        policy=policy,
        rulesets=tuple(rulesets),
        scorecard=scorecard,
        schema=schema,
        validator=CaseValidator(schema.fields, frozenset(schema.outputs) | frozenset(SCORE_OUTPUTS)),
        derived=tuple(
            (d.fact, d.name, compile_value(d.derived, enum_order))
            for d in schema.derived_order
            if d.derived is not None
        ),
        characteristics=characteristics,
        activations=tuple(activations),
        by_key={a.key: a for a in activations},
        strata=strata,
        output_levels=levels,
        conclusions_at=tuple(tuple(c) for c in conclusions_at),
        calc_at=tuple(tuple(c) for c in calc_at),
        fact_tags=tuple(fact_tags),
        assertions=assertions,
        date_fields={k: frozenset(v) for k, v in date_fields.items()},
        plan=plan,
        network_spec=network_spec,
        defaults=defaults,
        on_error=policy.on_error if policy else "refer",
        base_rate=policy.base_rate if policy else None,
        requested=requested,
        reason_texts=reason_texts,
        warnings=[p for p in problems if not p.is_error],
    )


def _layout(
    strata: int,
    fact_fields: list[tuple[str, str]],
    conclusions_at: list[list[str]],
    calc_at: list[list[CalcField]],
    schema: Schema,
) -> tuple[tuple[tuple[str, tuple[tuple[str, ValueFn], ...] | None], ...], ...]:
    """What each stratum asserts into the network: (tag, ((field, getter), ...)) for every fact it needs.

    Stratum 0 asserts every case fact a rule tests (even an empty one, so `missing()` can match), the
    conclusions known from the start (a scorecard's score) and its computed operands; stratum s asserts the
    conclusions that became final in stratum s-1 and its own computed operands. Each case fact keeps its own
    tag: the core's 64-true-tests limit is per fact, so separate facts leave each its own budget (one merged
    fact measured no faster and needed twice the partitions).
    """
    dates = {(d.fact, d.name) for d in schema.fields.values() if d.type == "date"}

    def fact_getter(fact: str, name: str) -> ValueFn:
        if (fact, name) in dates:
            return lambda facts, conclusions: _ordinal(facts.get(fact, _EMPTY).get(name))
        return lambda facts, conclusions: facts.get(fact, _EMPTY).get(name)

    def conclusion_getter(name: str) -> ValueFn:
        return lambda facts, conclusions: _engine(conclusions.get(name))

    def calc_getter(calc: CalcField) -> ValueFn:
        fn = calc.fn
        return lambda facts, conclusions: _engine(fn(facts, conclusions))

    def fact_entry(fact: str, names: list[str]) -> tuple[str, tuple[tuple[str, ValueFn], ...] | None]:
        if all((fact, n) not in dates for n in names):
            return fact, None
        return fact, tuple((n, fact_getter(fact, n)) for n in names)

    layout: list[list[tuple[str, tuple[tuple[str, ValueFn], ...] | None]]] = [[] for _ in range(strata)]
    by_fact: dict[str, list[str]] = {}
    for fact, name in fact_fields:
        by_fact.setdefault(fact, []).append(name)
    layout[0] = [fact_entry(fact, names) for fact, names in by_fact.items()]
    for s in range(strata):
        layout[s] += [(conclusion_tag(n), (("value", conclusion_getter(n)),)) for n in conclusions_at[s]]
        if calc_at[s]:
            layout[s].append((calc_tag(s), tuple((c.name, calc_getter(c)) for c in calc_at[s])))
    return tuple(tuple(entries) for entries in layout)


_EMPTY: dict[str, Any] = {}


def _ordinal(value: Any) -> Any:
    return None if value is None else float(value.toordinal())


def _engine(value: Any) -> Any:
    """Dates reach the engine as day ordinals; everything else as it is (the runtime encodes numbers)."""
    return float(value.toordinal()) if isinstance(value, dt.date) else value


def _policy_schema(schema: Schema, policy: Policy) -> tuple[Schema, list[Problem]]:
    problems: list[Problem] = []
    schema = schema.with_outputs(policy.outputs)
    for name, value, span in policy.defaults:
        decl = schema.outputs.get(name)
        if decl is None:
            problems.append(
                Problem(
                    "unknown-output", f"default for unknown output '{name}'", span, did_you_mean(name, schema.outputs)
                )
            )
        elif decl.type == "enum" and value not in decl.values:
            problems.append(
                Problem(
                    "enum-value",
                    f"default {name} must be one of {', '.join(decl.values)}",
                    span,
                    did_you_mean(str(value), decl.values),
                )
            )
        elif decl.type == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            problems.append(Problem("type-mismatch", f"default {name} must be a number", span))
        elif decl.type in ("reasons", "alerts"):
            problems.append(Problem("bad-default", f"{name} cannot have a default", span))
    if policy.requested_limit is not None:
        checker = TypeChecker(schema)
        found = checker.infer(policy.requested_limit)
        problems += checker.problems
        if found is not None and found != NUMBER:
            problems.append(Problem("type-mismatch", "limit.requested must be a number", policy.requested_limit.span))
    return schema, problems


def _enum_order(schema: Schema) -> Any:
    def order(expr: Expr) -> tuple[str, ...] | None:
        if isinstance(expr, Path):
            decl = schema.fields.get((expr.fact, expr.name))
            return decl.values if decl is not None and decl.type == "enum" else None
        if isinstance(expr, Name):
            out = schema.conclusion(expr.name)
            return out.values if out is not None and out.type == "enum" else None
        return None

    return order


def _compile_scorecard(
    scorecard: Scorecard, schema: Schema, enum_order: Any, problems: list[Problem]
) -> tuple[ScoreCharacteristic, ...]:
    out = []
    for char in scorecard.characteristics:
        checker = TypeChecker(schema, allow_conclusions=False)
        checker.infer(char.field)
        for b in char.bins:
            if b.test is not None and not checker.problems:
                checker.condition(b.test)
            if b.reason is not None and b.reason not in schema.reasons:
                problems.append(
                    Problem(
                        "unknown-reason",
                        f"unknown reason code '{b.reason}'",
                        b.span,
                        did_you_mean(b.reason, schema.reasons),
                    )
                )
        problems.extend(checker.problems)
        if checker.problems:
            continue
        problems.extend(check_bins(char, schema))
        field = char.field.dotted
        bins = tuple(
            ScoreBin(
                compile_truth(b.test, enum_order) if b.test is not None else None,
                b.points,
                f"{field} {b.text}" if b.test is not None else (f"missing({field})" if b.missing else "else"),
                b.missing,
                b.otherwise,
                b.reason,
                compile_subject_test(b.test, char.field, enum_order) if b.test is not None else None,
            )
            for b in char.bins
        )
        out.append(
            ScoreCharacteristic(
                field, f"{scorecard.name}/{field}", compile_value(char.field, enum_order), bins, char.best_points
            )
        )
    return tuple(out)


def _then_of(item: Any) -> tuple[Assignment, ...]:
    return item[1].then if isinstance(item, tuple) else item.then


def _reads_writes(
    items: list[tuple[Ruleset, Any, int]], schema: Schema
) -> tuple[list[set[str]], list[tuple[str, ...]]]:
    """What each activation reads (conclusions) and writes (outputs). A table's rows share the table's reads."""
    table_reads: dict[str, set[str]] = {}
    for _, item, _ in items:
        if isinstance(item, tuple):
            table, row = item
            names = table_reads.setdefault(table.id, set())
            for expr in [*table.inputs, *(t for t in row.tests if t is not None)]:
                names.update(conclusions_read(expr))
            names.update(_then_reads(row.then, schema))
    reads, writes = [], []
    for _, item, _ in items:
        if isinstance(item, tuple):
            reads.append(table_reads[item[0].id])
        else:
            reads.append(set(conclusions_read(item.when)) | _then_reads(item.then, schema))
        writes.append(tuple(dict.fromkeys(a.output for a in _then_of(item))))
    return reads, writes


def _then_reads(then: tuple[Assignment, ...], schema: Schema) -> set[str]:
    numeric = [
        a.number_expr() for a in then if a.output in schema.outputs and schema.outputs[a.output].type == "number"
    ]
    return {n for expr in numeric for n in conclusions_read(expr)}


def _stratify(
    items: list[tuple[Ruleset, Any, int]], reads: list[set[str]], writes: list[tuple[str, ...]]
) -> tuple[dict[str, int], list[Problem]]:
    """Level of each output = the stratum after which its value is final; a cycle is a compile error."""
    edges: dict[str, set[str]] = {}
    indegree: dict[str, int] = {}
    for r, w in zip(reads, writes, strict=True):
        for name in (*r, *w):
            edges.setdefault(name, set())
            indegree.setdefault(name, 0)
        for source in r:
            for target in w:
                if target not in edges[source]:
                    edges[source].add(target)
                    indegree[target] += 1
    ready = sorted(n for n, d in indegree.items() if d == 0)
    order: list[str] = []
    while ready:
        name = ready.pop()
        order.append(name)
        for target in sorted(edges[name]):
            indegree[target] -= 1
            if indegree[target] == 0:
                ready.append(target)
    if len(order) < len(indegree):
        stuck = {n for n, d in indegree.items() if d > 0}
        start = min(stuck)
        path, seen = [start], {start}
        while True:
            nxt = min(t for t in edges[path[-1]] if t in stuck)
            if nxt in seen:
                path = [*path[path.index(nxt) :], nxt]
                break
            path.append(nxt)
            seen.add(nxt)
        culprit = next(i for i, (r, w) in enumerate(zip(reads, writes, strict=True)) if path[0] in r and path[1] in w)
        item = items[culprit][1]
        span = item[1].span if isinstance(item, tuple) else item.span
        return {}, [
            Problem(
                "conclusion-cycle",
                "conclusions depend on each other: " + " -> ".join(path),
                span,
                "a rule may not read a conclusion that it, or a rule depending on it, writes",
            )
        ]
    levels: dict[str, int] = {}
    for name in order:
        writers = [i for i, w in enumerate(writes) if name in w]
        if writers:
            levels[name] = max(1 + max((levels.get(r, -1) for r in reads[i]), default=-1) for i in writers)
        else:
            levels[name] = -1
    return levels, []


def _activation(
    ruleset: Ruleset, item: Any, order: int, stratum: int, schema: Schema, enum_order: Any, writes: tuple[str, ...]
) -> Activation:
    if isinstance(item, tuple):
        table, row = item
        tests = [t for t in row.tests if t is not None]
        condition: Expr | None = None
        if tests:
            condition = tests[0] if len(tests) == 1 else BoolOp(row.span, "and", tuple(tests))
        key, span, then = f"{table.id}/{row.number}", row.span, row.then
        extra = {"table": table.id, "hit": table.hit, "row": row.number}
    else:
        condition, key, span, then, extra = item.when, item.id, item.span, item.then, {}
    truth = compile_truth(condition, enum_order) if condition is not None else (lambda f, c: True)
    because = tuple(_because(leaf, negated, enum_order) for leaf, negated in (leaves(condition) if condition else []))
    emits = tuple(_emit(a, schema, enum_order) for a in then)
    return Activation(key, ruleset.name, order, stratum, span, condition, truth, emits, because, writes=writes, **extra)


def _because(leaf: Expr, negated: bool, enum_order: Any) -> Because:
    text = to_text(leaf)
    text = "not " + text if negated else text
    held = not negated
    labels: dict[str, ValueFn] = {}
    subjects: list[Path | Name] = []
    for node in walk(leaf):
        label = node.dotted if isinstance(node, Path) else node.name if isinstance(node, Name) else None
        if label is not None and label not in labels:
            labels[label] = compile_value(node)
            subjects.append(node)  # type: ignore[arg-type]
    if len(subjects) == 1:
        explain_one = _explain_one(leaf, subjects[0], text, held, enum_order)
        if explain_one is not None:
            return Because(text, negated, explain_one)
    truth = compile_truth(leaf, enum_order)
    pairs = tuple(labels.items())

    def explain(facts: Any, conclusions: Any) -> dict[str, Any] | None:
        if truth(facts, conclusions) is not held:
            return None
        return {"test": text, "values": {label: json_value(fn(facts, conclusions)) for label, fn in pairs}}

    return Because(text, negated, explain)


def _explain_one(
    leaf: Expr, subject: Path | Name, text: str, held: bool, enum_order: Any
) -> Callable[[Any, Any], dict[str, Any] | None] | None:
    """The explanation of a test that reads one field or conclusion, reading it once (for the truth and for the
    trace); None when the test is not of a shape `compile_subject_test` or presence covers."""
    label = subject.dotted if isinstance(subject, Path) else subject.name
    holds: Callable[[Any], bool]
    if isinstance(leaf, Call) and leaf.func in ("present", "missing"):
        wanted = (leaf.func == "present") == held  # what presence makes the test hold as the trace needs

        def holds(value: Any) -> bool:
            return (value is not None) is wanted

    else:
        test = compile_subject_test(leaf, subject, enum_order)
        if test is None:
            return None
        if isinstance(subject, Path):
            return _explain_field(subject.fact, subject.name, test, held, text, label)

        # A missing value leaves such a test unknown, and an unknown test never explains a firing.
        def holds(value: Any) -> bool:
            return value is not None and test(value) is held

    read = compile_value(subject)

    def explain(facts: Any, conclusions: Any) -> dict[str, Any] | None:
        value = read(facts, conclusions)
        if not holds(value):
            return None
        return {"test": text, "values": {label: json_value(value)}}

    return explain


def _explain_field(
    fact: str, name: str, test: SubjectTest, held: bool, text: str, label: str
) -> Callable[[Any, Any], dict[str, Any] | None]:
    """`_explain_one` for the most common test, a fact field against constants, with no call but the test."""

    def explain_field(facts: Any, conclusions: Any) -> dict[str, Any] | None:
        value = facts.get(fact, _EMPTY).get(name)
        if value is None or test(value) is not held:  # unknown never explains a firing
            return None
        return {"test": text, "values": {label: json_value(value)}}

    return explain_field


def _emit(a: Assignment, schema: Schema, enum_order: Any) -> Emit:
    decl: OutputDecl = schema.outputs[a.output]
    value = a.value
    if decl.type == "number":
        return Emit(a.output, number=compile_value(a.number_expr(), enum_order))
    if decl.type == "reasons":
        return Emit(a.output, constant=(value,) if isinstance(value, str) else tuple(value))  # type: ignore[arg-type]
    if decl.type == "strings":
        texts = (value,) if isinstance(value, str) else value
        return Emit(a.output, texts=tuple(parse_template(t, a.span)[0] for t in texts))  # type: ignore[union-attr]
    if decl.type == "alerts":
        return Emit(a.output, alerts=tuple((x.code, x.severity, parse_template(x.message, x.span)[0]) for x in value))  # type: ignore[union-attr]
    return Emit(a.output, constant=value)


__all__ = ["CompiledPolicy", "check_assignments", "compile_unit"]
