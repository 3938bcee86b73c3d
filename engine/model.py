"""The documents as typed values: what the loader's YAML tree becomes once read.

Everything here is immutable and keeps the span of the text it came from, so
checks, traces and test reports can point at the author's line.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

from engine.errors import NO_SPAN, SourceSpan
from engine.syntax import Expr, Path

FieldType = Literal["number", "integer", "string", "boolean", "enum", "date"]
FIELD_TYPES: tuple[str, ...] = ("number", "integer", "string", "boolean", "enum", "date")
HitPolicy = Literal["first", "unique", "collect"]
HIT_POLICIES: tuple[str, ...] = ("first", "unique", "collect")
COMBINES: tuple[str, ...] = ("worst", "best", "min", "max", "sum", "union", "collect", "unique")
SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")


@dataclass(frozen=True)
class FieldDecl:
    fact: str
    name: str
    type: str  # a FieldType; for derived fields the inferred type
    span: SourceSpan = field(compare=False)
    values: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    optional: bool = False
    sensitive: bool = False
    derived: Expr | None = field(default=None, compare=False)
    document: str = field(default="", compare=False)

    @property
    def dotted(self) -> str:
        return f"{self.fact}.{self.name}"

    def same_declaration(self, other: FieldDecl) -> bool:
        return (self.type, self.values, self.minimum, self.maximum, self.optional, self.sensitive) == (
            other.type,
            other.values,
            other.minimum,
            other.maximum,
            other.optional,
            other.sensitive,
        )


@dataclass(frozen=True)
class ReasonDecl:
    code: str
    text: str
    span: SourceSpan = field(compare=False)
    text_span: SourceSpan = field(compare=False, default=NO_SPAN)


@dataclass(frozen=True)
class AlertSpec:
    code: str
    severity: str
    message: str
    span: SourceSpan = field(compare=False)


# What `then` assigns to an output:
#   Expr for numeric outputs, str for an enum symbol or a string output,
#   tuple[str, ...] for reasons / conditions / other list outputs, tuple[AlertSpec, ...] for alerts.
AssignedValue = Expr | str | tuple[str, ...] | tuple[AlertSpec, ...]


@dataclass(frozen=True)
class Assignment:
    output: str
    value: AssignedValue
    span: SourceSpan = field(compare=False)
    # Where a text value starts, so a numeric output written as text ("0.5 * x") parses with true positions.
    value_span: SourceSpan = field(compare=False, default=NO_SPAN)

    def number_expr(self) -> Expr:
        """The value as an expression (numeric outputs); raises CredoError when it does not parse."""
        from engine.expr import parse_expression

        if isinstance(self.value, str):
            return parse_expression(self.value, self.value_span)
        assert isinstance(self.value, Expr)
        return self.value


@dataclass(frozen=True)
class Rule:
    id: str
    when: Expr
    then: tuple[Assignment, ...]
    span: SourceSpan = field(compare=False)
    description: str = ""
    salience: int = 0


@dataclass(frozen=True)
class TableRow:
    number: int  # 1-based, as authors count rows
    tests: tuple[Expr | None, ...]  # one per input; None is `-`
    cell_texts: tuple[str, ...]
    then: tuple[Assignment, ...]
    span: SourceSpan = field(compare=False)
    cell_spans: tuple[SourceSpan, ...] = field(compare=False, default=())


@dataclass(frozen=True)
class Table:
    id: str
    hit: str
    inputs: tuple[Expr, ...]
    outputs: tuple[str, ...]
    rows: tuple[TableRow, ...]
    span: SourceSpan = field(compare=False)
    description: str = ""

    def row_key(self, row: TableRow) -> str:
        return f"{self.id}/{row.number}"


@dataclass(frozen=True)
class TestCase:
    name: str
    given: dict[str, object]
    expect: dict[str, object]
    span: SourceSpan = field(compare=False)

    @property
    def skipped(self) -> bool:
        return self.name.startswith("todo_")


@dataclass(frozen=True)
class Document:
    """What every kind shares: identity, provenance and effective dating."""

    name: str
    file: str
    text: str
    digest: str
    span: SourceSpan = field(compare=False)
    description: str = ""
    effective_from: dt.date | None = None
    effective_to: dt.date | None = None
    version: int | None = None

    @property
    def ref(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"

    def in_force(self, as_of: dt.date) -> bool:
        if self.effective_from is not None and as_of < self.effective_from:
            return False
        return not (self.effective_to is not None and as_of > self.effective_to)


@dataclass(frozen=True)
class Ruleset(Document):
    kind: str = ""
    facts: tuple[FieldDecl, ...] = ()
    derive: tuple[FieldDecl, ...] = ()
    reasons: tuple[ReasonDecl, ...] = ()
    rules: tuple[Rule, ...] = ()
    tables: tuple[Table, ...] = ()
    tests: tuple[TestCase, ...] = ()


@dataclass(frozen=True)
class Bin:
    test: Expr | None  # None for the `missing` and `else` bins
    points: float
    span: SourceSpan = field(compare=False)
    text: str = ""
    missing: bool = False
    otherwise: bool = False
    reason: str | None = None


@dataclass(frozen=True)
class Characteristic:
    field: Path
    bins: tuple[Bin, ...]
    span: SourceSpan = field(compare=False)

    @property
    def best_points(self) -> float:
        return max(b.points for b in self.bins)


@dataclass(frozen=True)
class Scaling:
    base_points: float
    base_odds: float
    pdo: float


@dataclass(frozen=True)
class Scorecard(Document):
    scaling: Scaling = Scaling(600, 50, 20)
    characteristics: tuple[Characteristic, ...] = ()
    facts: tuple[FieldDecl, ...] = ()


@dataclass(frozen=True)
class DocRef:
    name: str
    version: int | None
    span: SourceSpan = field(compare=False)

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"


@dataclass(frozen=True)
class OutputDecl:
    """type is 'enum' (ordered values), 'number', 'string', 'reasons', 'strings' or 'alerts'."""

    name: str
    type: str
    combine: str
    span: SourceSpan = field(compare=False, default=NO_SPAN)
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Policy(Document):
    product: str = ""
    rulesets: tuple[DocRef, ...] = ()
    scorecard: DocRef | None = None
    outputs: tuple[OutputDecl, ...] = ()
    defaults: tuple[tuple[str, object, SourceSpan], ...] = ()
    on_error: str = "refer"
    base_rate: float | None = None
    requested_limit: Expr | None = None
    tests: tuple[TestCase, ...] = ()


AnyDocument = Ruleset | Scorecard | Policy
