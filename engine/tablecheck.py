"""Static checks of decision tables and scorecard bins: dead rows, overlaps and gaps (design sections 3, 5, 8).

Every cell is a *set* of values of its column; a missing value belongs only to `-`.
A row matches a case when each of its cells holds the column's value, so a row is
the product of its cell sets and a table is a union of such boxes.

Each column is cut into *atoms*: the elementary regions that no cell boundary
splits. For numbers (and dates, as day ordinals) these are the points named by
the cells and the open intervals between them (integer fields drop intervals that
hold no integer, so `> 0` and `>= 1` are the same set); for enums and booleans they
are the values; for strings, each value named plus "any other text"; plus the
missing value when the field can be missing (optional or derived). Every cell is
then a bit mask over its column's atoms and every question (is this row covered by
the rows above it? does any combination of values escape every row?) is a search
over boxes of atoms, split column by column (partition refinement): at each column
the atoms are grouped by the rows that still match, a group where no row is left is
a gap, and a sub-box already proven covered is never searched twice.

What cannot be analysed is never guessed at. A cell whose bounds are not
constants (`< 0.5 * borrower.registered_capital`) is *unknown*: it counts as
matching everything when looking for gaps, and as matching nothing when claiming
that rows overlap or cover another row, so no finding depends on it. A column
whose input is not a declared field (a conclusion, arithmetic) is unknown in the
same way, except for its `-` cells. A search that would exceed a fixed budget gives
up silently, so pathological tables cost bounded time and never yield a false
finding.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from engine.errors import Problem, SourceSpan
from engine.model import Characteristic, FieldDecl, Table
from engine.schema import Schema
from engine.syntax import Binary, BoolOp, Compare, Expr, Literal, Membership, Not, Path, Unary

__all__ = ["ANY", "GAP_HINT", "MISSING", "Finding", "check_bins", "check_table", "table_findings"]

GAP_HINT = "add a catch-all row ['-', '-', ...] or cover the gap"
# Search effort, in atoms and rows visited. A search that exceeds its cap, or a table that exceeds its budget,
# gives up (no finding): each unit is about a microsecond.
SEARCH_BUDGET = 100_000  # per table
_SEARCH_CAP = 40_000  # per question asked of a table (is this row dead? is there a gap?)
_QUICK_TRY = 300  # a first try before pruning dominated rows
_MAX_GREEDY = 12  # the rows named as covering a dead row are minimised only among this many candidates


class _Sentinel:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


MISSING = _Sentinel("MISSING")
"""The witness value of the missing atom (a field absent or null)."""
ANY = _Sentinel("ANY")
"""The witness value of a column that cannot be analysed: any value, or none."""
_OTHER = _Sentinel("OTHER")  # the key of the "any other text" atom of a string column

_ORDERING = frozenset({"<", "<=", ">", ">="})
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_ANALYSED = frozenset({"number", "integer", "date", "enum", "boolean", "string"})
_DATE_MIN, _DATE_MAX = dt.date.min.toordinal(), dt.date.max.toordinal()
_DEFAULT_DAY = dt.date(2000, 1, 1).toordinal()  # the example day for a date column no cell bounds


# --- findings ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """A problem with the facts behind it, for callers (and tests) that want more than the message.

    `rows` are row numbers (for `table-overlap` the earlier row then the later one; for
    `unreachable-row` the dead row then the rows that cover it). `example` is one input
    combination, a value per table input: `MISSING` for a missing value, `ANY` for an
    input that could not be analysed (any value does).
    """

    problem: Problem
    rows: tuple[int, ...] = ()
    example: tuple[object, ...] | None = None


def check_table(table: Table, schema: Schema) -> list[Problem]:
    """`unreachable-row` (first), `table-overlap` (unique) and `table-gap` (first, unique) problems of one table."""
    return [finding.problem for finding in table_findings(table, schema)]


def table_findings(table: Table, schema: Schema) -> list[Finding]:
    """What `check_table` reports, with the rows and the example input behind each problem."""
    rows = [row for row in table.rows if len(row.tests) == len(table.inputs)]
    columns = [_build_column(subject, [row.tests[c] for row in rows], schema, c)
               for c, subject in enumerate(table.inputs)]
    analysis = _Analysis(columns, len(rows))
    findings: list[Finding] = []
    empty = set()
    for r, row in enumerate(rows):
        for c, column in enumerate(columns):
            if column.hi[r] == 0:
                empty.add(r)
                text = row.cell_texts[c] if c < len(row.cell_texts) else "this cell"
                findings.append(Finding(Problem(
                    "unreachable-row", f"row {row.number} can never fire: no value of {column.label} passes '{text}'",
                    row.span, "fix the cell's bounds or remove the row", "warning"), (row.number,)))
                break
    numbers = [row.number for row in rows]
    if table.hit == "first":
        for r in range(len(rows)):
            if r not in empty:
                findings.extend(_dead_row(analysis, r, numbers, rows[r].span))
    if table.hit == "unique":
        findings.extend(_overlaps(analysis, numbers, [row.span for row in rows]))
    catch_all = any(all(test is None for test in row.tests) for row in rows)
    if table.hit in ("first", "unique") and not catch_all:
        findings.extend(_gaps(analysis, table))
    return findings


def check_bins(characteristic: Characteristic, schema: Schema) -> list[Problem]:
    """`bin-gap` and `bin-overlap` warnings for one scorecard characteristic."""
    field = characteristic.field
    bins = characteristic.bins
    when = [(position, b) for position, b in enumerate(bins, 1) if b.test is not None and not b.missing
            and not b.otherwise]
    column = _build_column(field, [b.test for _, b in when], schema, 0)
    if column.opaque:
        return []  # an undeclared field: the type checker reports it
    problems: list[Problem] = []
    taken_before = 0
    for j, (position, b) in enumerate(when):
        lo, hi = column.lo[j], column.hi[j]
        if hi and not hi & ~taken_before:
            problems.append(Problem("bin-overlap", f"bin {position} ('{b.text}') never takes a value: earlier bins "
                                    f"take every value of {column.label} it holds", b.span,
                                    "the first bin that holds a value wins; remove or narrow this bin", "warning"))
        else:
            for i in range(j):
                common = column.lo[i] & lo
                if common:
                    other_position, other = when[i]
                    atom = column.atoms[column.preferred(common)]
                    problems.append(Problem(
                        "bin-overlap", f"bin {position} ('{b.text}') overlaps bin {other_position} ('{other.text}') "
                        f"at {column.label} {atom.text}: the earlier bin takes those values", b.span,
                        "make the bins disjoint", "warning"))
                    break
        taken_before |= lo
    if any(b.otherwise for b in bins):
        return problems
    taken = 0
    for hi in column.hi:
        taken |= hi
    untaken = column.present & ~taken
    if untaken:
        problems.append(Problem("bin-gap", f"no bin takes these values of {column.label}: "
                                f"{column.describe(untaken)} (they score 0 points)", characteristic.span,
                                "add bins for those values or an 'else: true' bin", "warning"))
    if column.missing_bit and not any(b.missing for b in bins):
        problems.append(Problem("bin-gap", f"{column.label} can be missing ({column.why_missing}), but no bin takes "
                                "a missing value", characteristic.span,
                                "add a 'missing: true' bin (or an 'else: true' bin)", "warning"))
    return problems


# --- cells as predicates over one column ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cmp:
    op: str
    value: object  # a constant in the column's key space


@dataclass(frozen=True)
class _In:
    negated: bool
    values: tuple[object, ...]


@dataclass(frozen=True)
class _Bool:
    op: str  # and / or
    items: tuple[_Pred, ...]


@dataclass(frozen=True)
class _Neg:
    item: _Pred


_Pred = _Cmp | _In | _Bool | _Neg
_BAD = _Sentinel("BAD")


class _CellCompiler:
    """Turns a cell over `subject` into a predicate with constants in the column's key space, or None (unknown)."""

    def __init__(self, subject: Expr, kind: str, enum_values: tuple[str, ...]) -> None:
        self.subject = subject
        self.kind = kind
        self.enum_index = {value: i for i, value in enumerate(enum_values)}

    def compile(self, expr: Expr) -> _Pred | None:
        if isinstance(expr, Compare):
            if expr.left == self.subject:
                op, other = expr.op, expr.right
            elif expr.right == self.subject:
                op, other = _FLIP.get(expr.op, ""), expr.left
            else:
                return None
            if op not in _FLIP or (op in _ORDERING and self.kind in ("string", "boolean")):
                return None
            value = self.constant(other, op in _ORDERING)
            return None if value is _BAD else _Cmp(op, value)
        if isinstance(expr, Membership):
            if expr.left != self.subject:
                return None
            values = tuple(self.constant(item, False) for item in expr.right.items)
            return None if _BAD in values else _In(expr.negated, values)
        if isinstance(expr, BoolOp) and expr.op in ("and", "or") and expr.items:
            items = [self.compile(item) for item in expr.items]
            return None if any(item is None for item in items) else _Bool(expr.op, tuple(items))  # type: ignore[arg-type]
        if isinstance(expr, Not):
            inner = self.compile(expr.operand)
            return None if inner is None else _Neg(inner)
        if self.kind == "boolean" and expr == self.subject:
            return _Cmp("==", True)
        return None

    def constant(self, expr: Expr, ordering: bool) -> object:
        if self.kind in ("number", "integer"):
            return _number(expr)
        if not isinstance(expr, Literal):
            return _BAD
        value = expr.value
        if self.kind == "date":
            return value.toordinal() if type(value) is dt.date else _BAD
        if self.kind == "boolean":
            return value if isinstance(value, bool) else _BAD
        if not isinstance(value, str):
            return _BAD
        if self.kind == "enum":
            index = self.enum_index.get(value)
            if index is None:
                return _BAD if ordering else -1  # never equal to a value of the enum
            return index
        return value


def _number(expr: Expr) -> object:
    """A constant numeric expression's value (finite), or _BAD."""
    if isinstance(expr, Literal):
        value = expr.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return _BAD
        return value if _finite(value) else _BAD
    if isinstance(expr, Unary) and expr.op == "-":
        inner = _number(expr.operand)
        return _BAD if inner is _BAD else -inner  # type: ignore[operator]
    if isinstance(expr, Binary):
        left, right = _number(expr.left), _number(expr.right)
        if left is _BAD or right is _BAD:
            return _BAD
        try:
            if expr.op == "+":
                value = left + right  # type: ignore[operator]
            elif expr.op == "-":
                value = left - right  # type: ignore[operator]
            elif expr.op == "*":
                value = left * right  # type: ignore[operator]
            elif expr.op == "/" and right != 0:
                value = left / right  # type: ignore[operator]
            else:
                return _BAD
        except (OverflowError, ZeroDivisionError):
            return _BAD
        return value if _finite(value) else _BAD
    return _BAD


def _finite(value: object) -> bool:
    try:
        return math.isfinite(float(value))  # type: ignore[arg-type]
    except OverflowError:
        return False


def _constants(pred: _Pred) -> Iterator[object]:
    if isinstance(pred, _Cmp):
        yield pred.value
    elif isinstance(pred, _In):
        yield from pred.values
    elif isinstance(pred, _Bool):
        for item in pred.items:
            yield from _constants(item)
    else:
        yield from _constants(pred.item)


# --- columns and their atoms ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Atom:
    key: object  # what cells are compared with: a number, a day ordinal, an enum index, a string, a bool, or a sentinel
    value: object  # a value a case could hold in this atom (MISSING, ANY)
    shown: str = ""  # how an example reads after the column's label, when not "= value"
    point: bool = False
    lo: float | None = None  # numeric atoms: the point, or the open interval (lo, hi); None is unbounded
    hi: float | None = None

    @property
    def text(self) -> str:
        """How an example reads after the column's label: `= 1.5`, `is missing`, `not in ['a', 'b']`."""
        if self.shown or self.key is ANY:
            return self.shown
        return "is missing" if self.key is MISSING else f"= {_show_value(self.value)}"


class _Column:
    """One table input (or a characteristic's field): its atoms and every cell as masks over them.

    `lo[r]` and `hi[r]` are row r's cell under- and over-approximated (equal unless the
    cell is unknown: then lo is empty and hi is everything); `dash[r]` says the cell is `-`.
    """

    def __init__(self, label: str, kind: str, atoms: list[_Atom], why_missing: str) -> None:
        self.label = label
        self.kind = kind
        self.atoms = atoms
        self.why_missing = why_missing
        self.full = (1 << len(atoms)) - 1
        self.missing_bit = 0
        for i, atom in enumerate(atoms):
            if atom.key is MISSING:
                self.missing_bit = 1 << i
        self.present = self.full & ~self.missing_bit
        self.lo: list[int] = []
        self.hi: list[int] = []
        self.dash: list[bool] = []
        # Preference when an example is needed: present values, intervals before points, then in order.
        self.order = sorted(range(len(atoms)), key=lambda i: (atoms[i].key is MISSING, atoms[i].point, i))
        self.rank = [0] * len(atoms)
        for position, i in enumerate(self.order):
            self.rank[i] = position
        self._ordered_keys = [a.key for a in atoms if a.key is not MISSING] if kind in _ORDERED_KINDS else []
        self._index = {a.key: i for i, a in enumerate(atoms) if a.key not in (MISSING, _OTHER, ANY)}

    @property
    def opaque(self) -> bool:
        return self.kind == "opaque"

    def preferred(self, mask: int) -> int:
        return next(i for i in self.order if mask >> i & 1)

    def mask(self, pred: _Pred) -> int:
        if isinstance(pred, _Cmp):
            return self._compare(pred.op, pred.value)
        if isinstance(pred, _In):
            found = 0
            for value in pred.values:
                found |= self._equal(value)
            return self.present & ~found if pred.negated else found
        if isinstance(pred, _Bool):
            masks = [self.mask(item) for item in pred.items]
            out = masks[0]
            for m in masks[1:]:
                out = out & m if pred.op == "and" else out | m
            return out
        # Every test in a cell reads the same subject, so on a missing value all are unknown, and so is `not`.
        return self.present & ~self.mask(pred.item)

    def _equal(self, value: object) -> int:
        index = self._index.get(value)
        return 0 if index is None else 1 << index

    def _compare(self, op: str, value: object) -> int:
        if op == "==":
            return self._equal(value)
        if op == "!=":
            return self.present & ~self._equal(value)
        keys = self._ordered_keys
        below = (1 << bisect.bisect_left(keys, value)) - 1  # present atoms come first, in order
        at_most = (1 << bisect.bisect_right(keys, value)) - 1
        if op == "<":
            return below
        if op == "<=":
            return at_most
        if op == ">":
            return self.present & ~at_most
        return self.present & ~below

    def describe(self, mask: int) -> str:
        """A short text for a set of present atoms: `< 1, [1.3..1.5)`, `'services', 'agriculture'`."""
        pieces: list[str] = []
        if self.kind in _ORDERED_KINDS and self.kind != "enum":
            for start, end in _runs(mask & self.present):
                pieces.append(self._range_text(self.atoms[start], self.atoms[end - 1]))
        else:
            pieces = [self._value_text(self.atoms[i]) for i in _bits(mask & self.present)]
        if len(pieces) > 6:
            pieces = [*pieces[:6], "…"]
        return ", ".join(pieces)

    def _value_text(self, atom: _Atom) -> str:
        return atom.text[2:] if atom.text.startswith("= ") else f"any value {atom.text}"

    def _range_text(self, first: _Atom, last: _Atom) -> str:
        lo, lo_closed, hi, hi_closed = first.lo, first.point, last.hi, last.point
        if self.kind in ("integer", "date"):
            if lo is not None and not lo_closed:
                lo, lo_closed = math.floor(lo) + 1, True
            if hi is not None and not hi_closed:
                hi, hi_closed = math.ceil(hi) - 1, True
            if lo is not None and lo == math.floor(lo):
                lo = int(lo)
            if hi is not None and hi == math.floor(hi):
                hi = int(hi)
        show = self._show
        if lo is None and hi is None:
            return "any value"
        if lo is None:
            return f"{'<=' if hi_closed else '<'} {show(hi)}"
        if hi is None:
            return f"{'>=' if lo_closed else '>'} {show(lo)}"
        if lo == hi:
            return show(lo)
        return f"{'[' if lo_closed else '('}{show(lo)}..{show(hi)}{']' if hi_closed else ')'}"

    def _show(self, key: object) -> str:
        if self.kind == "date":
            return _show_value(dt.date.fromordinal(int(key)))  # type: ignore[call-overload]
        return _show_value(key)


_ORDERED_KINDS = frozenset({"number", "integer", "date", "enum"})


def _build_column(subject: Expr, cells: Sequence[Expr | None], schema: Schema, position: int) -> _Column:
    decl: FieldDecl | None = None
    if isinstance(subject, Path):
        decl = schema.fields.get((subject.fact, subject.name))
    label = subject.dotted if isinstance(subject, Path) else f"input {position + 1}"
    if decl is None or decl.type not in _ANALYSED or (decl.type == "enum" and not decl.values):
        column = _Column(label, "opaque", [_Atom(ANY, ANY)], "")
        for cell in cells:
            column.lo.append(column.full if cell is None else 0)
            column.hi.append(column.full)
            column.dash.append(cell is None)
        return column
    kind = decl.type
    compiler = _CellCompiler(subject, kind, decl.values)
    preds = [None if cell is None else compiler.compile(cell) for cell in cells]
    constants = [value for pred in preds if pred is not None for value in _constants(pred)]
    atoms = _atoms(kind, decl, constants)
    why_missing = "a derived field" if decl.derived is not None else "it is optional" if decl.optional else ""
    if why_missing:
        atoms.append(_Atom(MISSING, MISSING))
    column = _Column(label, kind, atoms, why_missing)
    for cell, pred in zip(cells, preds, strict=True):
        if cell is None:
            lo = hi = column.full
        elif pred is None:
            lo, hi = 0, column.full
        else:
            lo = hi = column.mask(pred)
        column.lo.append(lo)
        column.hi.append(hi)
        column.dash.append(cell is None)
    return column


def _atoms(kind: str, decl: FieldDecl, constants: list[object]) -> list[_Atom]:
    if kind == "enum":
        return [_Atom(i, value) for i, value in enumerate(decl.values)]
    if kind == "boolean":
        return [_Atom(True, True), _Atom(False, False)]
    if kind == "string":
        named = sorted({value for value in constants if isinstance(value, str)})
        atoms = [_Atom(value, value) for value in named]
        other = next(text for n in range(len(named) + 1) if (text := f"other{n or ''}") not in named)
        shown = f"not in [{', '.join(_show_value(v) for v in named)}]" if named else f"= {_show_value(other)}"
        return [*atoms, _Atom(_OTHER, other, shown)]
    numbers = {value for value in constants if isinstance(value, (int, float)) and not isinstance(value, bool)}
    if kind == "date":  # the calendar's ends only filter atoms: an example is then a day next to a named date
        return _numeric_atoms(sorted(numbers), kind, _DATE_MIN, _DATE_MAX)  # type: ignore[arg-type]
    low, high = decl.minimum, decl.maximum
    numbers.update(bound for bound in (low, high) if bound is not None)
    return _numeric_atoms(sorted(numbers), kind, low, high)  # type: ignore[arg-type]


def _numeric_atoms(bounds: list[float], kind: str, low: float | None, high: float | None) -> list[_Atom]:
    """Points at the bounds and the open intervals between them, inside [low, high] (inclusive) when given."""
    integral, date = kind in ("integer", "date"), kind == "date"
    atoms: list[_Atom] = []

    def add(key: float, point: bool, lo: float | None, hi: float | None) -> None:
        if (low is not None and key < low) or (high is not None and key > high):
            return
        value = dt.date.fromordinal(int(key)) if date else key
        atoms.append(_Atom(key, value, "", point, lo, hi))

    def add_range(lo: float | None, hi: float | None) -> None:
        key = _inside(lo, hi, integral)
        if key is not None:
            add(key, False, lo, hi)

    if not bounds:
        add(_DEFAULT_DAY if date else 0, False, None, None)
        return atoms
    add_range(None, bounds[0])
    for i, bound in enumerate(bounds):
        if not integral or bound == math.floor(bound):
            add(int(bound) if integral else bound, True, bound, bound)
        add_range(bound, bounds[i + 1] if i + 1 < len(bounds) else None)
    return atoms


def _inside(lo: float | None, hi: float | None, integral: bool) -> float | None:
    """A short number strictly inside (lo, hi) (an integer for integral kinds), or None if there is none."""
    if integral:
        first = None if lo is None else math.floor(lo) + 1
        last = None if hi is None else math.ceil(hi) - 1
        if first is None and last is None:
            return 0
        if first is None:
            return last
        if last is None:
            return first
        return (first + last) // 2 if first <= last else None
    if lo is None and hi is None:
        return 0
    if lo is None:
        below = math.floor(hi)  # type: ignore[arg-type]
        return below - 1 if below >= hi else below  # type: ignore[operator]
    if hi is None:
        return math.floor(lo) + 1
    middle = lo / 2 + hi / 2
    if not lo < middle < hi:
        middle = math.nextafter(lo, math.inf)
        if not middle < hi:
            return None  # no float between two adjacent floats: no case can hold a value here
    for digits in range(17):
        short = round(middle, digits)
        if lo < short < hi:
            return int(short) if short == math.floor(short) and abs(short) < 2**53 else short
    return middle


def _show_value(value: object) -> str:
    if value is MISSING:
        return "missing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, dt.date):
        return f"date('{value.isoformat()}')"
    return str(value)


# --- bit sets ---------------------------------------------------------------------------------------------------------


_BYTE_BITS = [tuple(i for i in range(8) if byte >> i & 1) for byte in range(256)]
_BYTE_AT: list[list[tuple[int, ...]]] = []  # [k][byte]: the bit indices of `byte` as the k-th byte of a mask


def _bits(mask: int) -> list[int]:
    """The indices of the set bits, in increasing order."""
    table = _BYTE_AT or _byte_table()
    out: list[int] = []
    for k, byte in enumerate(mask.to_bytes((mask.bit_length() + 7) // 8, "little")):
        if byte:
            out += table[k][byte] if k < 32 else [8 * k + i for i in _BYTE_BITS[byte]]
    return out


def _byte_table() -> list[list[tuple[int, ...]]]:
    """Built on first use (it costs milliseconds); built whole before it is published, so threads may race."""
    global _BYTE_AT
    table = [[tuple(8 * k + i for i in bits) for bits in _BYTE_BITS] for k in range(32)]
    _BYTE_AT = table
    return table


def _runs(mask: int) -> Iterator[tuple[int, int]]:
    """The maximal runs of set bits, as half-open index ranges [start, end)."""
    while mask:
        low = mask & -mask
        carried = mask + low
        yield low.bit_length() - 1, (carried & -carried).bit_length() - 1
        mask &= carried


def _cut_mask(mask: int) -> int:
    """A bit at every run start and run end of `mask`."""
    return mask ^ (mask << 1)


def _spread(mask: int) -> int:
    """`mask` and the position just past each of its runs (where a run's end is marked)."""
    return mask | (mask << 1)


class _GiveUp(Exception):
    """The search budget ran out: the finding being looked for is skipped."""


class _Retry(Exception):
    """A search was not settled quickly: it is tried again on fewer rows (or given up past its cap)."""


class _CellIndex:
    """One column's cells under one approximation (lo or hi), indexed by atom.

    `rows[a]` is the set of rows whose cell holds atom a; `cuts[r]` marks where row r's cell
    starts and stops holding atoms; sparse tables answer "which rows meet / hold all of
    these atoms" with two big-integer operations per run of atoms.
    """

    def __init__(self, cells: list[int], size: int) -> None:
        self.cells = cells
        self.cuts = [_cut_mask(mask) for mask in cells]
        diff = [0] * (size + 1)
        for r, mask in enumerate(cells):
            bit = 1 << r
            for start, end in _runs(mask):
                diff[start] ^= bit
                diff[end] ^= bit
        self.rows: list[int] = []
        acc = 0
        for a in range(size):
            acc ^= diff[a]
            self.rows.append(acc)
        self._any: list[list[int]] | None = None
        self._all: list[list[int]] | None = None
        self._touching: dict[int, int] = {}
        self._holding: dict[int, int] = {}

    @staticmethod
    def _table(base: list[int], both: Callable[[int, int], int]) -> list[list[int]]:
        levels = [base]
        span = 1
        while span * 2 <= len(base):
            prev = levels[-1]
            levels.append([both(prev[i], prev[i + span]) for i in range(len(base) - 2 * span + 1)])
            span *= 2
        return levels

    def touching(self, mask: int) -> int:
        """The rows whose cell shares an atom with `mask`."""
        found = self._touching.get(mask)
        if found is None:
            if self._any is None:
                self._any = self._table(self.rows, int.__or__)
            found = 0
            for start, end in _runs(mask):
                k = (end - start).bit_length() - 1
                found |= self._any[k][start] | self._any[k][end - (1 << k)]
            self._touching[mask] = found
        return found

    def holding(self, mask: int, everyone: int) -> int:
        """The rows whose cell holds every atom of `mask`."""
        found = self._holding.get(mask)
        if found is None:
            if self._all is None:
                self._all = self._table(self.rows, int.__and__)
            found = everyone
            for start, end in _runs(mask):
                k = (end - start).bit_length() - 1
                found &= self._all[k][start] & self._all[k][end - (1 << k)]
            self._holding[mask] = found
        return found


# --- the analysis -----------------------------------------------------------------------------------------------------


class _Analysis:
    def __init__(self, columns: list[_Column], nrows: int) -> None:
        self.columns = columns
        self.nrows = nrows
        self.everyone = (1 << nrows) - 1
        self.budget = SEARCH_BUDGET
        self._index: dict[bool, list[_CellIndex]] = {}
        self.lo_cells = [[c.lo[r] for c in columns] for r in range(nrows)]

    def index(self, over: bool) -> list[_CellIndex]:
        found = self._index.get(over)
        if found is None:
            found = self._index[over] = [_CellIndex(c.hi if over else c.lo, len(c.atoms)) for c in self.columns]
        return found

    def uncovered(self, region: list[int], alive: int, over: bool) -> list[int] | None:
        """An atom per column inside `region` that no row of `alive` holds, or None when they cover it all.

        `over` picks the over-approximated cells (looking for gaps) instead of the under-approximated
        ones (proving that rows cover something). Raises _GiveUp when the budget runs out.

        The box is split one column at a time, the column the remaining rows cut into the fewest
        pieces first: its atoms are grouped by the rows that hold them, a group that no row holds
        is a gap, and every other group is searched on the other columns with just its rows. A
        sub-problem is the set of columns still to split and the rows still matching; those proven
        covered are remembered.
        """
        if any(part == 0 for part in region):
            return None  # an empty region is covered by anything
        index, columns = self.index(over), self.columns
        n = len(region)
        fill = [column.preferred(part) for column, part in zip(columns, region, strict=True)]
        region_cuts = [_cut_mask(part) for part in region]
        inside = [_spread(part) for part in region]
        holding = [index[c].holding(region[c], self.everyone) for c in range(n)]
        whole_cache: dict[int, int] = {}
        covered: set[tuple[int, int]] = set()
        chosen: dict[int, int] = {}
        allowance = [_QUICK_TRY]

        def whole(remaining: int) -> int:
            """The rows that hold the region on every remaining column: they cover any such sub-box."""
            found = whole_cache.get(remaining)
            if found is None:
                found = self.everyone
                for c in _bits(remaining):
                    found &= holding[c]
                whole_cache[remaining] = found
            return found

        def search(remaining: int, rows: int) -> bool:
            """True when some sub-box escapes `rows` (its atoms are then in `chosen`)."""
            if rows == 0:
                return True
            if remaining == 0 or rows & whole(remaining) or (remaining, rows) in covered:
                return False
            row_list = _bits(rows)
            best_c, best_cuts, best_count = -1, 0, -1
            for c in _bits(remaining):
                cuts, row_cuts = region_cuts[c], index[c].cuts
                for r in row_list:
                    cuts |= row_cuts[r]
                count = (cuts & inside[c]).bit_count()
                if best_count < 0 or count < best_count:
                    best_c, best_cuts, best_count = c, cuts, count
            c = best_c
            self.budget -= best_count + len(row_list)
            allowance[0] -= best_count + len(row_list)
            if self.budget < 0:
                raise _GiveUp
            if allowance[0] < 0:
                raise _Retry
            part, column_rows, rank = region[c], index[c].rows, columns[c].rank
            positions = _bits(best_cuts)
            groups: dict[int, int] = {}
            for k in range(len(positions) - 1):
                first = positions[k]
                if not part >> first & 1:
                    continue
                second = first + 1
                best = second if second < positions[k + 1] and rank[second] < rank[first] else first
                group = rows & column_rows[first]
                known = groups.get(group)
                if known is None or rank[best] < rank[known]:
                    groups[group] = best
            rest = remaining & ~(1 << c)
            for group in sorted(groups, key=int.bit_count):
                if search(rest, group):
                    chosen[c] = groups[group]
                    return True
            covered.add((remaining, rows))
            return False

        try:
            escaped = search((1 << n) - 1, alive)
        except _Retry:
            # Not quickly settled: drop the rows another row's box contains, and search with the full budget.
            covered.clear()
            chosen.clear()
            allowance[0] = _SEARCH_CAP
            try:
                escaped = search((1 << n) - 1, self._undominated(region, alive, index))
            except _Retry:
                raise _GiveUp from None
        if not escaped:
            return None
        return [chosen.get(c, fill[c]) for c in range(n)]

    def _undominated(self, region: list[int], alive: int, index: list[_CellIndex]) -> int:
        """`alive` less the rows whose box (within the region) lies in another's: they cut the space, cover nothing new.

        A row goes when another holds its box and is larger, or equal and earlier (a strict order, so
        every row that goes has one that stays above it).
        """
        rows = _bits(alive)
        if len(rows) < 3:
            return alive
        kept = alive
        for r in rows:
            box = [index[c].cells[r] & part for c, part in enumerate(region)]
            above = alive & ~(1 << r)
            for c, mine in enumerate(box):
                if not above:
                    break
                above &= index[c].holding(mine, self.everyone)
            for b in _bits(above):
                if b < r or any(index[c].cells[b] & part & ~mine for c, (part, mine) in enumerate(zip(region, box,
                                                                                                      strict=True))):
                    kept &= ~(1 << r)
                    break
        return kept

    def sampled_gap(self, region: list[int], alive: int) -> bool:
        """Cheap proof of reachability: is some corner (or preferred point) of the region held by none of `alive`?"""
        index = self.index(False)
        picks = []
        for column, part in zip(self.columns, region, strict=True):
            picks.append(sorted({part.bit_length() - 1, (part & -part).bit_length() - 1, column.preferred(part)}))
        tries = [64]

        def walk(c: int, rows: int) -> bool:
            if rows == 0:
                return True
            if c == len(picks) or tries[0] <= 0:
                return False
            tries[0] -= 1
            return any(walk(c + 1, rows & index[c].rows[a]) for a in picks[c])

        return walk(0, alive)

    def touching(self, region: list[int], candidates: int) -> int:
        """The rows of `candidates` whose (under-approximated) box meets the region in every column."""
        index = self.index(False)
        for c, part in enumerate(region):
            if not candidates:
                break
            candidates &= index[c].touching(part)
        return candidates

    def example(self, atoms: list[int]) -> tuple[object, ...]:
        return tuple(column.atoms[a].value for column, a in zip(self.columns, atoms, strict=True))

    def describe(self, atoms: list[int], skip: Sequence[bool] = ()) -> str:
        parts = [f"{column.label} {column.atoms[a].text}"
                 for c, (column, a) in enumerate(zip(self.columns, atoms, strict=True))
                 if not column.opaque and not (skip and skip[c])]
        return ", ".join(parts)


def _dead_row(analysis: _Analysis, r: int, numbers: list[int], span: SourceSpan) -> list[Finding]:
    number = numbers[r]
    region = [column.hi[r] for column in analysis.columns]
    candidates = analysis.touching(region, (1 << r) - 1)
    if not candidates:
        return []
    if analysis.sampled_gap(region, candidates):
        return []
    try:
        if analysis.uncovered(region, candidates, over=False) is not None:
            return []
        cover = _minimal_cover(analysis, region, candidates)
    except _GiveUp:
        return []
    names = [numbers[i] for i in _bits(cover)]
    if len(names) == 1:
        why = f"row {names[0]} already covers it"
    else:
        why = f"rows {', '.join(map(str, names))} already cover it"
    return [Finding(Problem("unreachable-row", f"row {number} can never fire: {why}", span,
                            "remove the row, or move it above the rows that cover it", "warning"),
                    (number, *names))]


def _minimal_cover(analysis: _Analysis, region: list[int], candidates: int) -> int:
    """A small set of rows among `candidates` that still covers the region (known to be covered by all of them)."""
    for i in _bits(candidates):
        if all(not part & ~analysis.lo_cells[i][c] for c, part in enumerate(region)):
            return 1 << i
    if candidates.bit_count() > _MAX_GREEDY:
        return candidates
    cover = candidates
    try:
        for i in sorted(_bits(candidates), reverse=True):
            fewer = cover & ~(1 << i)
            if analysis.uncovered(region, fewer, over=False) is None:
                cover = fewer
    except _GiveUp:
        pass  # what is left still covers the region, if not minimally
    return cover


def _overlaps(analysis: _Analysis, numbers: list[int], spans: list[SourceSpan]) -> list[Finding]:
    findings = []
    columns = analysis.columns
    for j in range(analysis.nrows):
        region = [column.lo[j] for column in columns]
        if any(part == 0 for part in region):
            continue
        earlier = analysis.touching(region, (1 << j) - 1)
        if not earlier:
            continue
        i = (earlier & -earlier).bit_length() - 1
        atoms = [column.preferred(column.lo[i] & column.lo[j]) for column in columns]
        both_dash = [column.dash[i] and column.dash[j] for column in columns]
        where = analysis.describe(atoms, both_dash) or "every input"
        findings.append(Finding(Problem(
            "table-overlap", f"rows {numbers[i]} and {numbers[j]} both match {where}", spans[j],
            "rows of a unique table must not overlap: narrow one of them, or use hit: first"),
            (numbers[i], numbers[j]), analysis.example(atoms)))
    return findings


def _gaps(analysis: _Analysis, table: Table) -> list[Finding]:
    columns = analysis.columns
    findings = []
    searches = [[column.present for column in columns]]
    for c, column in enumerate(columns):
        if column.missing_bit:
            searches.append([column.missing_bit if k == c else other.full for k, other in enumerate(columns)])
    found_missing = False
    for s, region in enumerate(searches):
        if s > 0 and found_missing:
            break
        try:
            atoms = analysis.uncovered(region, analysis.everyone, over=True)
        except _GiveUp:
            continue
        if atoms is None:
            continue
        found_missing = s > 0
        findings.append(Finding(Problem("table-gap", f"no row matches {analysis.describe(atoms) or 'any input'}",
                                        table.span, GAP_HINT, "warning"), (), analysis.example(atoms)))
    return findings
