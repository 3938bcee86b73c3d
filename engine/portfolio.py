"""Reading a portfolio: CSV with dotted column names, or JSON Lines of cases, in chunks.

A portfolio is read twice over, by two kinds of process. The reading process only cuts the file into
blocks of whole records (`Portfolio.blocks`), cheaply, so memory stays flat however long the file is;
the process that evaluates a block decodes it (`Decoder.decode`) into columns, checking every cell
against the fact declarations of each side of a simulation.

CSV cells are read by the declared type of their column, column by column with numpy where it can,
so a million rows cost seconds, not minutes:

* an empty cell is a missing value (and a problem when the field is required);
* number: any finite number Python's `float` reads; integer: the same and whole (`67`, `67.0`);
* boolean: `true` or `false` in any case; date: `YYYY-MM-DD`; enum: one of the declared values;
* `performance.bad` (0 or 1, the known outcome) and `segment` (any text) are optional extra columns.

Anything else is a row problem, reported as `row N, column C: message`, where row N is the line of the
file the record starts on (the header is row 1; in JSON Lines, row N is line N). JSON Lines cases go
through the engine's own `CaseValidator`, so they are checked exactly as `credo decide` checks them.
"""

from __future__ import annotations

import csv
import io
import json
import math
import operator
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from engine.cases import DATE_RE, MAX_TEXT, convert
from engine.errors import CredoError, Problem, SourceSpan, did_you_mean, sort_problems
from engine.evaluate import reject
from engine.model import FieldDecl

BAD = "performance.bad"
SEGMENT = "segment"
EXTRA_COLUMNS = (BAD, SEGMENT)
CHUNK_ROWS = 50_000
# A number cell longer than this is not a number; checking it first keeps a hostile cell from making
# numpy allocate a fixed-width text array as wide as that cell for the whole column.
MAX_NUMBER_TEXT = 64
SHOWN = 40  # characters of a bad cell quoted back in a problem
READ_BYTES = 1 << 22
BLANK = "-nan"  # an empty cell, in a block cut by _split_plain


class Side(Protocol):
    """What reading needs of a compiled unit: its declarations and its case validator."""

    @property
    def schema(self) -> Any: ...

    @property
    def validator(self) -> Any: ...


@dataclass(frozen=True, order=True)
class RowProblem:
    row: int
    column: str  # a dotted field name; "" when the problem is the whole row's (not JSON, wrong cell count)
    code: str
    message: str
    hint: str | None = None

    def format(self) -> str:
        where = f"row {self.row}, column {self.column}" if self.column else f"row {self.row}"
        return f"{where}: {self.message}" + (f" (hint: {self.hint})" if self.hint else "")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"row": self.row, "column": self.column or None, "code": self.code}
        out["message"] = self.message
        if self.hint:
            out["hint"] = self.hint
        return out


# Problems with the row as a record of the file, not with the case it holds.
RECORD_CODES = frozenset({"bad-json", "bad-csv", "bad-row", "not-utf8"})


def error_line(problems: Sequence[RowProblem]) -> dict[str, Any]:
    """The `{"error": ...}` line `credo decide` prints for a case it rejects, for a row that was skipped."""
    record = [p for p in problems if p.code in RECORD_CODES]
    if record:
        return {"error": {"code": record[0].code, "message": record[0].message, "problems": []}}
    return reject(
        sort_problems(
            Problem(p.code, p.message, hint=p.hint, path="$." + p.column if p.column else "$") for p in problems
        )
    )


@dataclass(frozen=True)
class Block:
    """Whole records of the file, undecoded: what travels to a worker."""

    index: int
    first_line: int  # the file line the block starts on (1-based)
    data: bytes


class Portfolio:
    """A portfolio file: its format, its CSV header, and an iterator over blocks of whole records."""

    def __init__(self, path: str | Path, chunk_rows: int = CHUNK_ROWS, name: str | None = None) -> None:
        self.path = Path(path)
        # What problems call the file: its path by default; a server passes the name its user knows the file by
        # (an upload is kept under a path of the server's, which is no business of whoever reads the problem).
        self.name = str(path) if name is None else name
        self.chunk_rows = max(1, chunk_rows)
        if not self.path.is_file():
            raise CredoError.single("no-such-path", f"{self.name}: no such file")
        self.size = self.path.stat().st_size
        self.format = _format_of(self.path)
        self.header: tuple[str, ...] = ()
        self.header_lines = 0
        if self.format == "csv":
            self._read_header()

    def _read_header(self) -> None:
        with self.path.open("rb") as stream:
            first = next(_records(stream, quoted=True), None)
        if first is None:
            raise CredoError.single("empty-portfolio", f"{self.name}: the file is empty", SourceSpan(self.name))
        self.header_lines = first.count(b"\n") or 1
        try:
            text = first.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise CredoError.single(
                "not-utf8", "the header is not UTF-8 text", SourceSpan(self.name, 1, 1)
            ) from None
        cells = next(csv.reader(io.StringIO(text, newline="")), [])
        self.header = tuple(c.strip() for c in cells)
        if not self.header or self.header == ("",):
            raise CredoError.single("empty-header", "the CSV header names no columns", SourceSpan(self.name, 1, 1))

    def blocks(self) -> Iterator[Block]:
        """Blocks of at most chunk_rows records, in file order; only one block is held at a time."""
        with self.path.open("rb") as stream:
            records = _records(stream, quoted=self.format == "csv")
            line = 1
            if self.format == "csv":
                next(records, None)
                line = self.header_lines + 1
            index = 0
            pending: list[bytes] = []
            start = line
            for record in records:
                if not pending:
                    start = line
                pending.append(record)
                line += record.count(b"\n")
                if len(pending) >= self.chunk_rows:
                    yield Block(index, start, b"".join(pending))
                    index += 1
                    pending = []
            if pending:
                yield Block(index, start, b"".join(pending))


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    with path.open("rb") as stream:
        head = stream.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return "jsonl" if head.startswith(b"{") else "csv"


def _records(stream: io.BufferedReader, quoted: bool) -> Iterator[bytes]:
    """Lines, joined into CSV records when `quoted`: a quoted cell may hold line breaks (an odd count of quotes
    keeps the record open). A JSON string cannot hold a raw line break, so in JSON Lines every line is a record
    (and an escaped quote must not count). The last line gets a line break if it lacks one.

    Lines are read a few megabytes at a time; only a batch with a quote in it is looked at line by line.
    """
    held: list[bytes] = []
    open_quote = False
    while True:
        lines = stream.readlines(READ_BYTES)
        if not lines:
            break
        if not lines[-1].endswith(b"\n"):
            lines[-1] += b"\n"
        if not quoted or (not open_quote and not any(b'"' in line for line in lines)):
            yield from lines
            continue
        for line in lines:
            held.append(line)
            if line.count(b'"') & 1:
                open_quote = not open_quote
            if not open_quote:
                yield held[0] if len(held) == 1 else b"".join(held)
                held = []
    if held:
        yield b"".join(held)


@dataclass
class Decoded:
    """One block, decoded. Row arrays (`bad`, `segment`, `values`, `facts`) hold the good rows only."""

    lines: list[int]  # the row number of every record read, in order
    good: np.ndarray  # bool per record: decoded without a problem
    problems: dict[int, list[RowProblem]]  # by row number
    bad: np.ndarray  # float64: 1.0 bad, 0.0 good, NaN unknown
    segment: np.ndarray | None  # object: text or None
    # CSV: columns shared by every side. Enums are int16 codes (-1 missing) into `enum_values[key]`, which the
    # vectorised plan takes as they are: no text is looked up again per case.
    values: dict[tuple[str, str], np.ndarray] | None = None
    enum_values: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    facts: list[list[dict[str, dict[str, Any]]]] | None = None  # JSON Lines: validated facts, per side

    @property
    def count(self) -> int:
        return int(self.good.sum())

    def side_values(self, fields: Mapping[tuple[str, str], FieldDecl]) -> dict[tuple[str, str], np.ndarray]:
        """The columns one side declares; a declared column the file lacks is all missing."""
        assert self.values is not None
        n = self.count
        out = {}
        for key, decl in fields.items():
            if decl.derived is not None:
                continue
            found = self.values.get(key)
            if found is None:
                found = np.full(n, None, dtype=object) if decl.type in ("string", "enum") else np.full(n, np.nan)
            elif decl.type == "enum" and self.enum_values.get(key, decl.values) != decl.values:
                # Another side declared the values in another order: re-code (every value left is valid for both).
                ours = self.enum_values[key]
                remap = np.array([decl.values.index(v) if v in decl.values else -1 for v in ours] + [-1], np.int16)
                found = remap[found]
            out[key] = found
        return out


@dataclass
class _Column:
    index: int
    name: str
    key: tuple[str, str] | None  # None for the extra columns
    kind: str  # a field type, or "bad" / "segment"
    decls: list[FieldDecl] = field(default_factory=list)  # the distinct declarations, one per side that has one


class Decoder:
    """Decodes blocks of one portfolio for a fixed set of sides (compiled units)."""

    def __init__(self, fmt: str, header: Sequence[str], sides: Sequence[Side], file: str = "<portfolio>") -> None:
        self.format = fmt
        self.header = tuple(header)
        self.sides = list(sides)
        self.columns: list[_Column] = []
        if fmt == "csv":
            self._check_header(file)

    def _check_header(self, file: str) -> None:
        problems: list[Problem] = []
        seen: set[str] = set()
        declared: dict[tuple[str, str], list[FieldDecl]] = {}
        for side in self.sides:
            for key, decl in side.schema.fields.items():
                declared.setdefault(key, []).append(decl)
        names = sorted({f"{f}.{n}" for f, n in declared} | set(EXTRA_COLUMNS))
        for index, name in enumerate(self.header):
            span = SourceSpan(file, 1, index + 1)
            if name in seen:
                problems.append(Problem("duplicate-column", f"column '{name}' appears twice in the header", span))
                continue
            seen.add(name)
            if name == BAD:
                self.columns.append(_Column(index, name, None, "bad"))
                continue
            if name == SEGMENT:
                self.columns.append(_Column(index, name, None, "segment"))
                continue
            fact, _, field_name = name.partition(".")
            decls = declared.get((fact, field_name))
            if not decls:
                hint = did_you_mean(name, names)
                problems.append(Problem("unknown-column", f"column '{name}' is not a declared field", span, hint))
                continue
            if any(d.derived is not None for d in decls):
                problems.append(Problem("derived-column", f"{name} is derived; a portfolio may not supply it", span))
                continue
            types = {d.type for d in decls}
            if len(types) > 1:
                both = " and ".join(sorted(types))
                problems.append(Problem("conflicting-types", f"{name} is declared as {both} by the sides", span))
                continue
            distinct: list[FieldDecl] = []
            for d in decls:
                if not any(d.same_declaration(o) and d.values == o.values for o in distinct):
                    distinct.append(d)
            self.columns.append(_Column(index, name, (fact, field_name), decls[0].type, distinct))
        present = {c.key for c in self.columns if c.key is not None}
        missing = {
            decl.dotted
            for side in self.sides
            for fact, required in side.validator.required.items()
            for decl in required
            if (fact, decl.name) not in present
        }
        for dotted in sorted(missing):
            message = f"{dotted} is required and the portfolio has no such column"
            problems.append(Problem("missing-column", message, SourceSpan(file, 1, 1)))
        if problems:
            raise CredoError(problems)

    def decode(self, block: Block) -> Decoded:
        if self.format == "csv":
            return self._decode_csv(block)
        return self._decode_jsonl(block)

    # -- CSV ------------------------------------------------------------------------------------------------------

    def _decode_csv(self, block: Block) -> Decoded:
        problems: dict[int, list[RowProblem]] = {}
        text = _text(block, problems)
        width = len(self.header)
        split = None if problems else _split_plain(text, width)
        blank = BLANK if split is not None else ""
        if split is not None:
            n = len(split[0]) if width else 0
            lines = list(range(block.first_line, block.first_line + n))
            row_lines = lines
            columns: list[Sequence[str]] = split
        else:
            lines, row_lines, columns = self._read_csv(text, block.first_line, width, problems)
            n = len(row_lines)
            lines = sorted({*lines, *problems})  # a line that was not UTF-8 is a record with a problem
        ok = np.ones(n, dtype=bool)
        values: dict[tuple[str, str], np.ndarray] = {}
        enum_values: dict[tuple[str, str], tuple[str, ...]] = {}
        bad = np.full(n, np.nan)
        segment: np.ndarray | None = None
        for column in self.columns:
            cells = columns[column.index]
            found: list[tuple[int, str, str, str | None]] = []  # (row index, code, message, hint)
            if column.kind == "bad":
                bad = _bad_column(cells, found, blank)
            elif column.kind == "segment":
                segment = _objects(cells, blank)
            else:
                assert column.key is not None
                values[column.key] = _decode_column(column, cells, found, blank)
                if column.kind == "enum":
                    enum_values[column.key] = column.decls[0].values
            for i, code, message, hint in found:
                ok[i] = False
                line = row_lines[i]
                problems.setdefault(line, []).append(RowProblem(line, column.name, code, message, hint))
        good = np.ones(len(lines), dtype=bool)
        if problems:
            position = {line: i for i, line in enumerate(lines)}
            good[[position[line] for line in problems]] = False
        return Decoded(
            lines=lines,
            good=good,
            problems=problems,
            bad=bad[ok],
            segment=segment[ok] if segment is not None else None,
            values={k: v[ok] for k, v in values.items()},
            enum_values=enum_values,
        )

    @staticmethod
    def _read_csv(
        text: str, first_line: int, width: int, problems: dict[int, list[RowProblem]]
    ) -> tuple[list[int], list[int], list[Sequence[str]]]:
        """The general reader (quotes, blank lines, ragged rows): the csv module, record by record."""
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        lines: list[int] = []
        rows: list[list[str]] = []
        row_lines: list[int] = []
        consumed = 0
        while True:
            line = first_line + consumed
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                consumed = reader.line_num
                lines.append(line)
                message = f"the row is not valid CSV: {exc}"
                problems.setdefault(line, []).append(RowProblem(line, "", "bad-csv", message))
                continue
            consumed = reader.line_num
            if not cells:
                continue  # a blank line is no record
            lines.append(line)
            if len(cells) != width:
                problems.setdefault(line, []).append(
                    RowProblem(line, "", "bad-row", f"the row has {len(cells)} cells; the header has {width}")
                )
                continue
            rows.append(cells)
            row_lines.append(line)
        columns: list[Sequence[str]] = list(zip(*rows, strict=True)) if rows else [() for _ in range(width)]
        return lines, row_lines, columns

    # -- JSON Lines -----------------------------------------------------------------------------------------------

    def _decode_jsonl(self, block: Block) -> Decoded:
        problems: dict[int, list[RowProblem]] = {}
        text = _text(block, problems)
        lines: list[int] = []
        facts: list[list[dict[str, dict[str, Any]]]] = [[] for _ in self.sides]
        bads: list[float] = []
        segments: list[str | None] = []
        any_segment = False
        for offset, raw in enumerate(text.split("\n")):
            line = block.first_line + offset
            if not raw.strip():
                continue
            lines.append(line)
            found: list[RowProblem] = []
            try:
                case = json.loads(raw)
            except json.JSONDecodeError as exc:
                problems[line] = [RowProblem(line, "", "bad-json", f"line {line} is not JSON: {exc.msg}")]
                continue
            bad_value, segment_value = math.nan, None
            if isinstance(case, dict):
                case = dict(case)
                bad_value = _json_bad(case.pop("performance", None), line, found)
                segment_value = case.pop(SEGMENT, None)
                if segment_value is not None and not isinstance(segment_value, str):
                    found.append(RowProblem(line, SEGMENT, "wrong-type", "segment must be text"))
            validated = []
            for side in self.sides:
                try:
                    validated.append(side.validator.validate(case)[0])
                except CredoError as error:
                    for p in error.problems:
                        column = (p.path or "$")[2:]
                        found.append(RowProblem(line, column, p.code, p.message, p.hint))
            if found:
                problems[line] = list(dict.fromkeys(found))
                continue
            for side_facts, one in zip(facts, validated, strict=True):
                side_facts.append(one)
            bads.append(bad_value)
            segments.append(segment_value)
            any_segment = any_segment or segment_value is not None
        lines = sorted({*lines, *problems})  # a line that was not UTF-8 is a record with a problem
        good = np.array([line not in problems for line in lines], dtype=bool)
        return Decoded(
            lines=lines,
            good=good,
            problems=problems,
            bad=np.array(bads, dtype=np.float64),
            segment=np.array(segments, dtype=object) if any_segment else None,
            facts=facts,
        )


def _text(block: Block, problems: dict[int, list[RowProblem]]) -> str:
    """The block as text; a line that is not UTF-8 becomes a row problem and a blank line."""
    try:
        return block.data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    out = []
    for offset, raw in enumerate(block.data.split(b"\n")):
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            line = block.first_line + offset
            problems.setdefault(line, []).append(RowProblem(line, "", "not-utf8", "the row is not UTF-8 text"))
            out.append("")
    return "\n".join(out)


def _json_bad(performance: object, line: int, found: list[RowProblem]) -> float:
    if performance is None:
        return math.nan
    if not isinstance(performance, dict) or set(performance) - {"bad"}:
        found.append(RowProblem(line, "performance", "wrong-type", 'performance must be an object {"bad": 0 or 1}'))
        return math.nan
    value = performance.get("bad")
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value not in (0, 1):
        found.append(RowProblem(line, BAD, "wrong-type", f"performance.bad must be 0 or 1, found {_json_shown(value)}"))
        return math.nan
    return float(value)


def _json_shown(value: object) -> str:
    return json.dumps(value)[:SHOWN] if not isinstance(value, str) else f"'{value[:SHOWN]}'"


def _shown(cell: str) -> str:
    return repr(cell if len(cell) <= SHOWN else cell[:SHOWN] + "…")


def _split_plain(text: str, width: int) -> list[list[str]] | None:
    """Columns of a block with no quotes, no carriage returns, no blank lines and exactly `width` cells in every
    row, cut with C-level splits and no Python per row; None sends the block to the csv module instead.

    Empty cells come back as BLANK, which `float` reads as a NaN with its sign bit set: a number column then
    converts in one pass, and its empty cells are told from a cell that says "nan" by that bit. A block that
    holds the text BLANK itself goes to the csv module, so the marker is never ambiguous.
    """
    if not text or width == 0 or '"' in text or "\r" in text or "\n\n" in text or text[0] == "\n" or BLANK in text:
        return None
    body = text[:-1] if text.endswith("\n") else text
    if body.count(",") != (body.count("\n") + 1) * (width - 1):
        return None
    if width > 1 and set(map(str.count, body.split("\n"), repeat(","))) != {width - 1}:
        return None  # the commas add up, but not row by row
    if width > 1:
        body = body.replace(",,", "," + BLANK + ",").replace(",,", "," + BLANK + ",")  # twice: runs of blanks
        body = body.replace("\n,", "\n" + BLANK + ",").replace(",\n", "," + BLANK + "\n")
        if body[0] == ",":
            body = BLANK + body
        if body[-1] == ",":
            body += BLANK
    cells = body.replace("\n", ",").split(",")
    if width == 1:
        cells = [c or BLANK for c in cells]
    return [cells[j::width] for j in range(width)]


def _objects(cells: Sequence[str], blank: str) -> np.ndarray:
    """Texts as an object array, None for an empty cell."""
    out = np.empty(len(cells), dtype=object)
    out[:] = cells
    out[out == blank] = None
    return out


_BAD_CELLS = {"0": 0.0, "1": 1.0, "0.0": 0.0, "1.0": 1.0}
_BOOLEANS = {"true": 1.0, "false": 0.0}
_WRONG = -2.0  # the look-ups' "not a known cell"


def _bad_column(cells: Sequence[str], found: list[tuple[int, str, str, str | None]], blank: str) -> np.ndarray:
    table = {**_BAD_CELLS, blank: math.nan}
    out = np.fromiter(map(table.get, cells, repeat(_WRONG)), dtype=np.float64, count=len(cells))
    for i in np.flatnonzero(out == _WRONG).tolist():
        found.append((i, "wrong-type", f"performance.bad must be 0 or 1, found {_shown(cells[i])}", None))
        out[i] = math.nan
    return out


def _decode_column(
    column: _Column, cells: Sequence[str], found: list[tuple[int, str, str, str | None]], blank: str
) -> np.ndarray:
    kind = column.kind
    n = len(cells)
    values: np.ndarray
    if kind in ("number", "integer"):
        values, empty = _numbers(column, cells, found, blank)
    elif kind == "boolean":
        table = {**_BOOLEANS, blank: math.nan}
        values = np.fromiter(map(table.get, map(str.lower, cells), repeat(_WRONG)), dtype=np.float64, count=n)
        for i in np.flatnonzero(values == _WRONG).tolist():
            dotted = column.decls[0].dotted
            found.append((i, "wrong-type", f"{dotted} must be true or false, found {_shown(cells[i])}", None))
            values[i] = math.nan
        empty = np.isnan(values)
    elif kind == "date":
        values, empty = _dates(column, cells, found, blank)
    elif kind == "enum":
        values, empty = _enum(column, cells, found, blank)
    else:
        values = _objects(cells, blank)
        empty = values == None  # noqa: E711 (elementwise)
        for decl in column.decls:
            if n and max(map(len, cells)) > MAX_TEXT:
                for i, cell in enumerate(cells):
                    problem = convert(decl, cell)
                    if isinstance(problem, Problem):
                        found.append((i, problem.code, problem.message, problem.hint))
    for decl in column.decls:
        if not decl.optional and empty.any():
            for i in np.flatnonzero(empty).tolist():
                found.append((i, "missing-field", f"{decl.dotted} is required", None))
    # A cell with two problems (one per side) is reported once.
    found[:] = list(dict.fromkeys(found))
    return values


def _enum(
    column: _Column, cells: Sequence[str], found: list[tuple[int, str, str, str | None]], blank: str
) -> tuple[np.ndarray, np.ndarray]:
    """Codes into the first declaration's values (-1 missing); every side's declaration checks every cell."""
    first = column.decls[0]
    lookup = {v: float(i) for i, v in enumerate(first.values)}
    lookup[blank] = -1.0
    codes = np.fromiter(map(lookup.get, cells, repeat(_WRONG)), dtype=np.float64, count=len(cells))
    wrong = codes == _WRONG
    for decl in column.decls[1:]:
        allowed = {*decl.values, blank}
        wrong |= np.fromiter((c not in allowed for c in cells), dtype=bool, count=len(cells))
    if wrong.any():
        for i in np.flatnonzero(wrong).tolist():
            for decl in column.decls:
                problem = convert(decl, cells[i])
                if isinstance(problem, Problem):
                    # convert() passes its hint where the span goes; the suggestion is worth having here.
                    found.append((i, problem.code, problem.message, did_you_mean(cells[i], decl.values)))
    empty = codes == -1.0
    codes[wrong] = -1.0
    return codes.astype(np.int16), empty


def _numbers(
    column: _Column, cells: Sequence[str], found: list[tuple[int, str, str, str | None]], blank: str
) -> tuple[np.ndarray, np.ndarray]:
    n = len(cells)
    dotted = column.decls[0].dotted
    unreadable = np.zeros(n, dtype=bool)
    try:
        if blank == BLANK:
            values = np.fromiter(map(float, cells), dtype=np.float64, count=n)
            empty = np.isnan(values) & np.signbit(values)  # BLANK, not a cell that says "nan"
        else:
            values = np.fromiter(map(float, [c or BLANK for c in cells]), dtype=np.float64, count=n)
            empty = np.fromiter(map(operator.not_, cells), dtype=bool, count=n)
    except ValueError:
        # Slow path, cell by cell, only when some cell is not a number: it finds which.
        values = np.full(n, np.nan)
        empty = np.zeros(n, dtype=bool)
        for i, cell in enumerate(cells):
            if cell == blank:
                empty[i] = True
                continue
            try:
                values[i] = float(cell)
            except ValueError:
                unreadable[i] = True
                found.append((i, "wrong-type", f"{dotted} must be a number, found {_shown(cell)}", None))
    suspicious = ~empty & ~unreadable & ~np.isfinite(values)
    for decl in column.decls:
        check = suspicious.copy()
        with np.errstate(invalid="ignore"):
            if decl.type == "integer":
                check |= np.isfinite(values) & (values != np.floor(values))
            if decl.minimum is not None:
                check |= values < decl.minimum
            if decl.maximum is not None:
                check |= values > decl.maximum
        for i in np.flatnonzero(check).tolist():
            value = float(values[i])
            # Shown as the cell reads (67, not 67.0), as the engine shows a JSON number.
            shown = int(value) if value.is_integer() and abs(value) < 2**53 else value
            problem = convert(decl, shown)
            if isinstance(problem, Problem):
                found.append((i, problem.code, problem.message, problem.hint))
    values[unreadable | suspicious] = np.nan
    return values, empty


def _dates(
    column: _Column, cells: Sequence[str], found: list[tuple[int, str, str, str | None]], blank: str
) -> tuple[np.ndarray, np.ndarray]:
    n = len(cells)
    ordinals: dict[str, float] = {blank: math.nan}
    failures: dict[str, Problem] = {}
    for cell in set(cells):
        if cell in ordinals:
            continue
        parsed = convert(column.decls[0], cell) if DATE_RE.match(cell) else None
        if isinstance(parsed, Problem) or parsed is None:
            message = f"{column.decls[0].dotted} must be a date YYYY-MM-DD, found {_shown(cell)}"
            failures[cell] = Problem("wrong-type", message)
            ordinals[cell] = math.nan
        else:
            ordinals[cell] = float(parsed.toordinal())  # type: ignore[attr-defined]
    values = np.fromiter(map(ordinals.__getitem__, cells), dtype=np.float64, count=n)
    empty = np.fromiter(map(blank.__eq__, cells), dtype=bool, count=n)
    if failures:
        for i, cell in enumerate(cells):
            problem = failures.get(cell)
            if problem is not None:
                found.append((i, problem.code, problem.message, None))
    return values, empty


__all__ = ["BAD", "CHUNK_ROWS", "SEGMENT", "Block", "Decoded", "Decoder", "Portfolio", "RowProblem", "error_line"]
