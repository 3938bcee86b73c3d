"""Reading one YAML document into the typed model, collecting every problem.

The reader is forgiving in one way only: it keeps going after a problem so the
author sees all of them at once. It never guesses: an unknown key, a wrong
shape or a bad value is reported where it stands, with a hint where one helps.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Iterable

from engine.errors import CredoError, Problem, SourceSpan, did_you_mean
from engine.expr import parse_cell, parse_expression
from engine.loader import YMap, YNode, YScalar, YSeq, load_yaml, to_plain
from engine.model import (
    COMBINES,
    FIELD_TYPES,
    HIT_POLICIES,
    SEVERITIES,
    AlertSpec,
    AnyDocument,
    Assignment,
    Bin,
    Characteristic,
    DocRef,
    FieldDecl,
    OutputDecl,
    Policy,
    ReasonDecl,
    Rule,
    Ruleset,
    Scaling,
    Scorecard,
    Table,
    TableRow,
    TestCase,
)
from engine.outputs import COMBINES_BY_TYPE, DECISIONS
from engine.syntax import Expr, Literal, Path

KIND_KEYS: dict[str, tuple[set[str], set[str]]] = {
    "ruleset": (
        {"ruleset"},
        {
            "kind",
            "description",
            "effective_from",
            "effective_to",
            "facts",
            "derive",
            "reasons",
            "rules",
            "tables",
            "tests",
        },
    ),
    "scorecard": (
        {"scorecard", "scaling", "characteristics"},
        {"description", "facts", "effective_from", "effective_to"},
    ),
    "policy": (
        {"policy", "rulesets"},
        {
            "product",
            "description",
            "scorecard",
            "outputs",
            "defaults",
            "on_error",
            "pricing",
            "limit",
            "effective_from",
            "effective_to",
            "tests",
        },
    ),
}
RULESET_KINDS = ("tiering", "eligibility", "limits", "pricing", "early_warning", "data_quality", "facts")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
REF_RE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9_-]*)(?:@(?P<version>[0-9]+))?$")


def digest_of(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.replace("\r\n", "\n").encode("utf-8")).hexdigest()


class Reader:
    """Shape checks over the YAML tree that record problems instead of raising."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def fail(self, code: str, message: str, span: SourceSpan, hint: str | None = None) -> None:
        self.problems.append(Problem(code, message, span, hint))

    def warn(self, code: str, message: str, span: SourceSpan, hint: str | None = None) -> None:
        self.problems.append(Problem(code, message, span, hint, severity="warning"))

    def mapping(self, node: YNode | None, what: str) -> YMap | None:
        if isinstance(node, YMap):
            return node
        if node is not None:
            self.fail("wrong-shape", f"{what} must be a mapping of keys to values", node.span)
        return None

    def sequence(self, node: YNode | None, what: str) -> YSeq | None:
        if isinstance(node, YSeq):
            return node
        if node is not None:
            self.fail("wrong-shape", f"{what} must be a list", node.span)
        return None

    def keys(self, node: YMap, required: Iterable[str], allowed: Iterable[str], what: str) -> None:
        required, allowed = set(required), set(allowed)
        known = required | allowed
        for key, span in node.key_spans.items():
            if key not in known:
                self.fail("unknown-key", f"unknown key '{key}' in {what}", span, did_you_mean(key, known))
        for key in sorted(required - node.items.keys()):
            self.fail("missing-key", f"{what} needs '{key}'", node.span)

    def text(self, node: YNode | None, what: str, *, allow_numbers: bool = False) -> str | None:
        """A scalar's text. Plain numbers are accepted as text only where the author asked for text."""
        if isinstance(node, YScalar):
            if isinstance(node.value, str):
                return node.value
            if node.value is None:
                self.fail("wrong-shape", f"{what} must not be empty", node.span)
                return None
            if allow_numbers and not isinstance(node.value, bool):
                return node.source
            self.fail("wrong-shape", f"{what} must be text, found {node.source!r}", node.span, "quote it")
            return None
        if node is not None:
            self.fail("wrong-shape", f"{what} must be a single value", node.span)
        return None

    def number(self, node: YNode | None, what: str) -> float | None:
        if isinstance(node, YScalar) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return node.value
        if node is not None:
            self.fail("wrong-type", f"{what} must be a number", node.span)
        return None

    def boolean(self, node: YNode | None, what: str) -> bool | None:
        if isinstance(node, YScalar) and isinstance(node.value, bool):
            return node.value
        if node is not None:
            self.fail("wrong-type", f"{what} must be true or false", node.span)
        return None

    def date(self, node: YNode | None, what: str) -> dt.date | None:
        if node is None:
            return None
        text = self.text(node, what)
        if text is None:
            return None
        try:
            return dt.date.fromisoformat(text) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else _bad_date(text)
        except ValueError:
            self.fail("bad-date", f"{what} must be a date YYYY-MM-DD, found '{text}'", node.span)
            return None

    def expression(self, node: YNode | None, what: str) -> Expr | None:
        """Parse a scalar as an expression; plain numbers and booleans are expressions too."""
        if not isinstance(node, YScalar):
            if node is not None:
                self.fail("wrong-shape", f"{what} must be an expression", node.span)
            return None
        if node.value is None:
            self.fail("wrong-shape", f"{what} must not be empty", node.span)
            return None
        source = node.value if isinstance(node.value, str) else node.source
        try:
            return parse_expression(source, node.content_span)
        except CredoError as error:
            self.problems.extend(error.problems)
            return None

    def cell(self, node: YNode, subject: Expr, what: str) -> tuple[Expr | None, str, bool]:
        """A unary test on `subject`; returns (test, text, ok)."""
        if not isinstance(node, YScalar) or node.value is None:
            self.fail("wrong-shape", f"{what} must be a test such as '>= 1.5' or '-'", node.span)
            return None, "", False
        source = node.value if isinstance(node.value, str) else node.source
        if isinstance(node.value, str) and node.style is not None and node.style in "'\"" and source != "-":
            # A quoted cell is still a test expression: the quotes only protect it from YAML.
            pass
        try:
            return parse_cell(source, node.content_span, subject), source, True
        except CredoError as error:
            self.problems.extend(error.problems)
            return None, source, False


def _bad_date(text: str) -> dt.date:
    raise ValueError(text)


def detect_kind(root: YMap) -> str | None:
    first = next(iter(root.items), None)
    return first if first in KIND_KEYS else None


def parse_document(text: str, file: str = "<input>", version: int | None = None) -> AnyDocument:
    """Load and read one document; raises CredoError with every error found (warnings are kept for checks)."""
    root = load_yaml(text, file)
    reader = Reader()
    doc = read_document(reader, root, text, file, version)
    errors = [p for p in reader.problems if p.is_error]
    if errors or doc is None:
        raise CredoError(reader.problems or [Problem("unknown-kind", "not a Credo document", root.span)])
    return doc


def read_document(reader: Reader, root: YNode, text: str, file: str, version: int | None) -> AnyDocument | None:
    top = reader.mapping(root, "a document")
    if top is None:
        return None
    kind = detect_kind(top)
    if kind is None:
        first = next(iter(top.key_spans.items()), ("", top.span))
        reader.fail(
            "unknown-kind",
            "a document's first key must name its kind: ruleset, scorecard or policy",
            first[1],
            did_you_mean(first[0], KIND_KEYS) if first[0] else None,
        )
        return None
    required, optional = KIND_KEYS[kind]
    reader.keys(top, required, optional, kind)
    name = reader.text(top.items.get(kind), f"the {kind} name")
    if name is not None and not NAME_RE.match(name):
        reader.fail(
            "bad-name",
            f"'{name}' is not a valid name: use lower-case letters, digits, '-' and '_'",
            top.items[kind].span,
        )
    common = dict(
        name=name or "",
        file=file,
        text=text,
        digest=digest_of(text),
        span=top.span,
        description=reader.text(top.items.get("description"), "description") or "",
        effective_from=reader.date(top.items.get("effective_from"), "effective_from"),
        effective_to=reader.date(top.items.get("effective_to"), "effective_to"),
        version=version,
    )
    if common["effective_from"] and common["effective_to"] and common["effective_to"] < common["effective_from"]:
        reader.fail("bad-dates", "effective_to is before effective_from", top.items["effective_to"].span)
    if kind == "ruleset":
        return read_ruleset(reader, top, common)
    if kind == "scorecard":
        return read_scorecard(reader, top, common)
    return read_policy(reader, top, common)


# --- facts and derived fields -------------------------------------------------------------------------------------


def read_facts(reader: Reader, node: YNode | None, document: str) -> tuple[FieldDecl, ...]:
    facts = reader.mapping(node, "facts")
    if facts is None:
        return ()
    out: list[FieldDecl] = []
    for fact, fields_node in facts.items.items():
        if not IDENT_RE.match(fact):
            reader.fail("bad-name", f"'{fact}' is not a valid fact name", facts.key_spans[fact])
            continue
        fields = reader.mapping(fields_node, f"fact '{fact}'")
        if fields is None:
            continue
        for name, spec in fields.items.items():
            span = fields.key_spans[name]
            if not IDENT_RE.match(name):
                reader.fail("bad-name", f"'{name}' is not a valid field name", span)
                continue
            decl = read_field(reader, fact, name, spec, span, document)
            if decl is not None:
                out.append(decl)
    return tuple(out)


def read_field(reader: Reader, fact: str, name: str, spec: YNode, span: SourceSpan, document: str) -> FieldDecl | None:
    if isinstance(spec, YScalar):
        type_name = reader.text(spec, f"the type of {fact}.{name}")
        if type_name is None:
            return None
        if type_name not in FIELD_TYPES or type_name == "enum":
            hint = (
                "enum needs {type: enum, values: [...]}"
                if type_name == "enum"
                else did_you_mean(type_name, FIELD_TYPES)
            )
            reader.fail("unknown-type", f"unknown type '{type_name}' for {fact}.{name}", spec.span, hint)
            return None
        return FieldDecl(fact, name, type_name, span, document=document)
    body = reader.mapping(spec, f"the declaration of {fact}.{name}")
    if body is None:
        return None
    reader.keys(body, {"type"}, {"values", "min", "max", "optional", "sensitive", "description"}, f"{fact}.{name}")
    type_name = reader.text(body.items.get("type"), f"the type of {fact}.{name}")
    if type_name is None:
        return None
    if type_name not in FIELD_TYPES:
        reader.fail(
            "unknown-type",
            f"unknown type '{type_name}' for {fact}.{name}",
            body.items["type"].span,
            did_you_mean(type_name, FIELD_TYPES),
        )
        return None
    values: tuple[str, ...] = ()
    if type_name == "enum":
        seq = reader.sequence(body.items.get("values"), f"the values of {fact}.{name}")
        if seq is None:
            reader.fail("missing-key", f"enum {fact}.{name} needs 'values'", body.span)
            return None
        texts = [reader.text(v, "an enum value", allow_numbers=True) for v in seq.items]
        values = tuple(t for t in texts if t is not None)
        if len(set(values)) != len(values):
            reader.fail("duplicate-value", f"enum {fact}.{name} lists a value twice", seq.span)
        if not values:
            reader.fail("wrong-shape", f"enum {fact}.{name} needs at least one value", seq.span)
    elif "values" in body.items:
        reader.fail("unknown-key", f"'values' only applies to enum fields, not {type_name}", body.key_spans["values"])
    bounds = {}
    for bound in ("min", "max"):
        if bound in body.items:
            if type_name not in ("number", "integer"):
                reader.fail("unknown-key", f"'{bound}' only applies to numbers", body.key_spans[bound])
            bounds[bound] = reader.number(body.items[bound], f"{bound} of {fact}.{name}")
    return FieldDecl(
        fact,
        name,
        type_name,
        span,
        values=values,
        minimum=bounds.get("min"),
        maximum=bounds.get("max"),
        optional=bool(reader.boolean(body.items.get("optional"), "optional")),
        sensitive=bool(reader.boolean(body.items.get("sensitive"), "sensitive")),
        document=document,
    )


def read_derive(reader: Reader, node: YNode | None, document: str) -> tuple[FieldDecl, ...]:
    derive = reader.mapping(node, "derive")
    if derive is None:
        return ()
    out = []
    for dotted, expr_node in derive.items.items():
        span = derive.key_spans[dotted]
        parts = dotted.split(".")
        if len(parts) != 2 or not all(IDENT_RE.match(p) for p in parts):
            reader.fail("bad-name", f"a derived field is named fact.field, not '{dotted}'", span)
            continue
        expr = reader.expression(expr_node, f"derived field {dotted}")
        if expr is not None:
            # The type is inferred later, when the schema is known.
            out.append(FieldDecl(parts[0], parts[1], "", span, optional=True, derived=expr, document=document))
    return tuple(out)


def read_reasons(reader: Reader, node: YNode | None) -> tuple[ReasonDecl, ...]:
    reasons = reader.mapping(node, "reasons")
    if reasons is None:
        return ()
    out = []
    for code, text_node in reasons.items.items():
        if not ID_RE.match(code):
            reader.fail("bad-name", f"'{code}' is not a valid reason code", reasons.key_spans[code])
            continue
        text = reader.text(text_node, f"the text of reason {code}")
        if text is not None:
            content = text_node.content_span if isinstance(text_node, YScalar) else text_node.span
            out.append(ReasonDecl(code, text, reasons.key_spans[code], content))
    return tuple(out)


# --- rules and tables ---------------------------------------------------------------------------------------------


def read_then(reader: Reader, node: YNode | None, where: str) -> tuple[Assignment, ...]:
    body = reader.mapping(node, f"then of {where}")
    if body is None:
        return ()
    return tuple(
        a for out, value in body.items.items() if (a := read_assignment(reader, out, value, body.key_spans[out]))
    )


def read_assignment(reader: Reader, output: str, node: YNode, span: SourceSpan) -> Assignment | None:
    """Read a value by its shape; whether it fits the output's type is checked against the catalog later."""
    if output == "alerts":
        seq = reader.sequence(node, "alerts")
        if seq is None:
            return None
        alerts = []
        for item in seq.items:
            body = reader.mapping(item, "an alert")
            if body is None:
                continue
            reader.keys(body, {"code", "severity", "message"}, set(), "an alert")
            code = reader.text(body.items.get("code"), "alert code")
            severity = reader.text(body.items.get("severity"), "alert severity")
            message = reader.text(body.items.get("message"), "alert message")
            if severity is not None and severity not in SEVERITIES:
                reader.fail(
                    "bad-value",
                    f"severity must be one of {', '.join(SEVERITIES)}",
                    body.items["severity"].span,
                    did_you_mean(severity, SEVERITIES),
                )
            if code and severity in SEVERITIES and message is not None:
                alerts.append(AlertSpec(code, severity, message, body.span))
        return Assignment(output, tuple(alerts), span)
    if isinstance(node, YSeq):
        texts = [reader.text(item, f"an item of {output}", allow_numbers=True) for item in node.items]
        return Assignment(output, tuple(t for t in texts if t is not None), span)
    if isinstance(node, YScalar):
        if node.value is None:
            reader.fail("wrong-shape", f"{output} needs a value", node.span)
            return None
        if isinstance(node.value, str):
            # An enum symbol (tier: E), a reason code or a text; numeric outputs parse it as an expression later,
            # once the output's type is known.
            return Assignment(output, node.value, span, node.content_span)
        expr = reader.expression(node, f"the value of {output}")
        return Assignment(output, expr, span) if expr is not None else None
    reader.fail("wrong-shape", f"{output} must be a value or a list", node.span)
    return None


def read_rules(reader: Reader, node: YNode | None) -> tuple[Rule, ...]:
    seq = reader.sequence(node, "rules")
    if seq is None:
        return ()
    rules = []
    for item in seq.items:
        body = reader.mapping(item, "a rule")
        if body is None:
            continue
        reader.keys(body, {"id", "when", "then"}, {"description", "salience"}, "a rule")
        rule_id = reader.text(body.items.get("id"), "rule id", allow_numbers=True)
        if rule_id is not None and not ID_RE.match(rule_id):
            reader.fail("bad-name", f"'{rule_id}' is not a valid rule id", body.items["id"].span)
        when = reader.expression(body.items.get("when"), f"the condition of {rule_id}")
        then = read_then(reader, body.items.get("then"), f"rule {rule_id}")
        salience = reader.number(body.items.get("salience"), "salience") if "salience" in body.items else 0
        if rule_id and when is not None:
            rules.append(
                Rule(
                    rule_id,
                    when,
                    then,
                    body.span,
                    reader.text(body.items.get("description"), "description") or "",
                    int(salience or 0),
                )
            )
    return tuple(rules)


def read_tables(reader: Reader, node: YNode | None) -> tuple[Table, ...]:
    seq = reader.sequence(node, "tables")
    if seq is None:
        return ()
    tables = []
    for item in seq.items:
        body = reader.mapping(item, "a table")
        if body is None:
            continue
        reader.keys(body, {"id", "hit", "inputs", "outputs", "rows"}, {"description"}, "a table")
        table_id = reader.text(body.items.get("id"), "table id", allow_numbers=True)
        hit = reader.text(body.items.get("hit"), "hit policy")
        if hit is not None and hit not in HIT_POLICIES:
            reader.fail(
                "bad-value",
                f"hit policy must be first, unique or collect, not '{hit}'",
                body.items["hit"].span,
                did_you_mean(hit, HIT_POLICIES),
            )
        inputs_seq = reader.sequence(body.items.get("inputs"), "table inputs")
        inputs = tuple(e for n in (inputs_seq.items if inputs_seq else ()) if (e := reader.expression(n, "an input")))
        outputs_seq = reader.sequence(body.items.get("outputs"), "table outputs")
        outputs = tuple(t for n in (outputs_seq.items if outputs_seq else ()) if (t := reader.text(n, "an output")))
        if inputs_seq is not None and len(inputs) != len(inputs_seq.items):
            continue
        rows = read_rows(reader, body.items.get("rows"), inputs, outputs)
        if table_id and hit in HIT_POLICIES and outputs:
            tables.append(
                Table(
                    table_id,
                    hit,
                    inputs,
                    outputs,
                    rows,
                    body.span,
                    reader.text(body.items.get("description"), "description") or "",
                )
            )
    return tuple(tables)


def read_rows(
    reader: Reader, node: YNode | None, inputs: tuple[Expr, ...], outputs: tuple[str, ...]
) -> tuple[TableRow, ...]:
    seq = reader.sequence(node, "rows")
    if seq is None:
        return ()
    rows = []
    width = len(inputs) + len(outputs)
    for number, item in enumerate(seq.items, start=1):
        row = reader.sequence(item, f"row {number}")
        if row is None:
            continue
        if len(row.items) != width:
            reader.fail(
                "row-width",
                f"row {number} has {len(row.items)} cells; the table has {len(inputs)} inputs and "
                f"{len(outputs)} outputs",
                row.span,
            )
            continue
        tests, texts, spans, ok = [], [], [], True
        for subject, cell in zip(inputs, row.items[: len(inputs)], strict=True):
            test, text, good = reader.cell(cell, subject, f"row {number}")
            tests.append(test)
            texts.append(text)
            spans.append(cell.span)
            ok = ok and good
        then = []
        for output, cell in zip(outputs, row.items[len(inputs) :], strict=True):
            if isinstance(cell, YScalar) and cell.value is not None and (cell.source == "-" and cell.style is None):
                continue  # no contribution to this output from this row
            assignment = read_assignment(reader, output, cell, cell.span)
            if assignment is not None:
                then.append(assignment)
        if ok:
            rows.append(TableRow(number, tuple(tests), tuple(texts), tuple(then), row.span, tuple(spans)))
    return tuple(rows)


def read_tests(reader: Reader, node: YNode | None) -> tuple[TestCase, ...]:
    seq = reader.sequence(node, "tests")
    if seq is None:
        return ()
    tests = []
    for item in seq.items:
        body = reader.mapping(item, "a test")
        if body is None:
            continue
        reader.keys(body, {"name", "given", "expect"}, {"description"}, "a test")
        name = reader.text(body.items.get("name"), "test name", allow_numbers=True)
        given = reader.mapping(body.items.get("given"), "given")
        expect = reader.mapping(body.items.get("expect"), "expect")
        if name and given is not None and expect is not None:
            tests.append(TestCase(name, to_plain(given), to_plain(expect), body.span))  # type: ignore[arg-type]
    return tuple(tests)


def read_ruleset(reader: Reader, top: YMap, common: dict) -> Ruleset:
    if "rules" not in top.items and "tables" not in top.items:
        reader.fail("missing-key", "a ruleset needs 'rules' or 'tables'", top.span)
    kind = reader.text(top.items.get("kind"), "kind") or ""
    if kind and kind not in RULESET_KINDS:
        reader.fail(
            "bad-value", f"unknown ruleset kind '{kind}'", top.items["kind"].span, did_you_mean(kind, RULESET_KINDS)
        )
    return Ruleset(
        **common,
        kind=kind,
        facts=read_facts(reader, top.items.get("facts"), common["name"]),
        derive=read_derive(reader, top.items.get("derive"), common["name"]),
        reasons=read_reasons(reader, top.items.get("reasons")),
        rules=read_rules(reader, top.items.get("rules")),
        tables=read_tables(reader, top.items.get("tables")),
        tests=read_tests(reader, top.items.get("tests")),
    )


# --- scorecards -----------------------------------------------------------------------------------------------------


def read_scorecard(reader: Reader, top: YMap, common: dict) -> Scorecard:
    scaling = Scaling(600, 50, 20)
    body = reader.mapping(top.items.get("scaling"), "scaling")
    if body is not None:
        reader.keys(body, {"base_points", "base_odds", "pdo"}, set(), "scaling")
        values = [reader.number(body.items.get(k), k) for k in ("base_points", "base_odds", "pdo")]
        if all(v is not None for v in values):
            scaling = Scaling(*values)  # type: ignore[arg-type]
            if scaling.base_odds <= 0 or scaling.pdo == 0:
                reader.fail("bad-value", "base_odds must be positive and pdo non-zero", body.span)
    characteristics = []
    seq = reader.sequence(top.items.get("characteristics"), "characteristics")
    for item in seq.items if seq else ():
        char = reader.mapping(item, "a characteristic")
        if char is None:
            continue
        reader.keys(char, {"field", "bins"}, {"description"}, "a characteristic")
        subject = reader.expression(char.items.get("field"), "field")
        if subject is not None and not isinstance(subject, Path):
            reader.fail("wrong-shape", "a characteristic's field must be a fact or derived field", subject.span)
            continue
        bins = read_bins(reader, char.items.get("bins"), subject)
        if subject is not None and bins:
            characteristics.append(Characteristic(subject, bins, char.span))
    return Scorecard(
        **common,
        scaling=scaling,
        characteristics=tuple(characteristics),
        facts=read_facts(reader, top.items.get("facts"), common["name"]),
    )


def read_bins(reader: Reader, node: YNode | None, subject: Path | None) -> tuple[Bin, ...]:
    seq = reader.sequence(node, "bins")
    bins = []
    for item in seq.items if seq else ():
        body = reader.mapping(item, "a bin")
        if body is None:
            continue
        reader.keys(body, {"points"}, {"when", "missing", "else", "reason"}, "a bin")
        points = reader.number(body.items.get("points"), "points")
        reason = reader.text(body.items.get("reason"), "reason", allow_numbers=True)
        kinds = [k for k in ("when", "missing", "else") if k in body.items]
        if len(kinds) != 1:
            reader.fail("wrong-shape", "a bin has exactly one of 'when', 'missing: true' or 'else: true'", body.span)
            continue
        test, text = None, kinds[0]
        if kinds[0] == "when" and subject is not None:
            test, text, ok = reader.cell(body.items["when"], subject, "a bin")
            if not ok or test is None:
                if ok:
                    reader.fail(
                        "wrong-shape", "use 'else: true' for a bin that takes any value", body.items["when"].span
                    )
                continue
        elif kinds[0] != "when" and reader.boolean(body.items[kinds[0]], kinds[0]) is not True:
            reader.fail("bad-value", f"'{kinds[0]}' must be true", body.items[kinds[0]].span)
            continue
        if points is not None:
            bins.append(Bin(test, points, body.span, text, kinds[0] == "missing", kinds[0] == "else", reason))
    return tuple(bins)


# --- policies ---------------------------------------------------------------------------------------------------------


def read_ref(reader: Reader, node: YNode) -> DocRef | None:
    text = reader.text(node, "a document reference")
    if text is None:
        return None
    match = REF_RE.match(text)
    if not match:
        reader.fail("bad-reference", f"'{text}' is not a name or name@N", node.span)
        return None
    version = match.group("version")
    return DocRef(match.group("name"), int(version) if version else None, node.span)


def read_policy(reader: Reader, top: YMap, common: dict) -> Policy:
    seq = reader.sequence(top.items.get("rulesets"), "rulesets")
    refs = tuple(r for n in (seq.items if seq else ()) if (r := read_ref(reader, n)))
    if seq is not None and not seq.items:
        reader.fail("wrong-shape", "a policy needs at least one ruleset", seq.span)
    scorecard = read_ref(reader, top.items["scorecard"]) if "scorecard" in top.items else None
    outputs = read_output_decls(reader, top.items.get("outputs"))
    defaults = []
    body = reader.mapping(top.items.get("defaults"), "defaults")
    for name, value in body.items.items() if body else ():
        plain = to_plain(value)
        if isinstance(plain, (dict, list)) and name not in ("reasons", "conditions"):
            reader.fail("wrong-shape", f"the default of {name} must be a single value", value.span)
            continue
        defaults.append((name, plain, body.key_spans[name]))  # type: ignore[union-attr]
    on_error = reader.text(top.items.get("on_error"), "on_error") or "refer"
    if on_error not in DECISIONS:
        reader.fail(
            "bad-value",
            f"on_error must be one of {', '.join(DECISIONS)}",
            top.items["on_error"].span,
            did_you_mean(on_error, DECISIONS),
        )
    base_rate = None
    pricing = reader.mapping(top.items.get("pricing"), "pricing")
    if pricing is not None:
        reader.keys(pricing, {"base_rate"}, set(), "pricing")
        base_rate = reader.number(pricing.items.get("base_rate"), "base_rate")
    requested = None
    limit = reader.mapping(top.items.get("limit"), "limit")
    if limit is not None:
        reader.keys(limit, {"requested"}, set(), "limit")
        requested = reader.expression(limit.items.get("requested"), "limit.requested")
    return Policy(
        **common,
        product=reader.text(top.items.get("product"), "product") or "",
        rulesets=refs,
        scorecard=scorecard,
        outputs=outputs,
        defaults=tuple(defaults),
        on_error=on_error,
        base_rate=base_rate,
        requested_limit=requested,
        tests=read_tests(reader, top.items.get("tests")),
    )


def read_output_decls(reader: Reader, node: YNode | None) -> tuple[OutputDecl, ...]:
    body = reader.mapping(node, "outputs")
    out = []
    for name, spec_node in body.items.items() if body else ():
        span = body.key_spans[name]  # type: ignore[union-attr]
        if not IDENT_RE.match(name):
            reader.fail("bad-name", f"'{name}' is not a valid output name", span)
            continue
        spec = reader.mapping(spec_node, f"output {name}")
        if spec is None:
            continue
        reader.keys(spec, {"type", "combine"}, {"values", "description"}, f"output {name}")
        type_name = reader.text(spec.items.get("type"), "type")
        combine = reader.text(spec.items.get("combine"), "combine")
        if type_name is None or combine is None:
            continue
        if type_name not in COMBINES_BY_TYPE or type_name in ("reasons", "alerts"):
            reader.fail(
                "unknown-type",
                f"an output's type is number, string, strings or enum, not '{type_name}'",
                spec.items["type"].span,
                did_you_mean(type_name, ("number", "string", "strings", "enum")),
            )
            continue
        if combine not in COMBINES_BY_TYPE[type_name]:
            reader.fail(
                "bad-combine",
                f"combine '{combine}' does not apply to {type_name} outputs",
                spec.items["combine"].span,
                f"use one of {', '.join(COMBINES_BY_TYPE[type_name])}"
                if combine in COMBINES
                else did_you_mean(combine, COMBINES),
            )
            continue
        values: tuple[str, ...] = ()
        if type_name == "enum":
            seq = reader.sequence(spec.items.get("values"), "values")
            values = tuple(
                t for v in (seq.items if seq else ()) if (t := reader.text(v, "a value", allow_numbers=True))
            )
            if not values:
                reader.fail("missing-key", f"enum output {name} needs 'values' (in order, best first)", spec.span)
        out.append(OutputDecl(name, type_name, combine, span, values))
    return tuple(out)


def default_value_literal(value: object) -> Expr | None:
    return Literal(value, SourceSpan()) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


Parser = Callable[[str, str], AnyDocument]
