"""Reading a portfolio: cells by declared type, row problems by row and column, chunks, both file formats."""

from __future__ import annotations

import json
import math
import tempfile
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.documents import parse_document
from engine.errors import CredoError
from engine.evaluate import decide, reject
from engine.library import Library
from engine.policy import CompiledPolicy
from engine.portfolio import Decoded, Decoder, Portfolio, RowProblem, error_line

FACTS = """\
ruleset: p-facts
facts:
  app:
    amount: {type: number, min: 0}
    grade: integer
    kind: {type: enum, values: [alpha, beta]}
    flag: {type: boolean, optional: true}
    opened: {type: date, optional: true}
    note: {type: string, optional: true}
derive:
  app.half: app.amount / 2
rules:
  - id: P-NOOP
    when: app.amount < 0
    then: {conditions: ["never"]}
"""

HEADER = "app.amount,app.grade,app.kind,app.flag,app.opened,app.note,performance.bad,segment"


def unit(facts: str = FACTS) -> CompiledPolicy:
    lib = Library([parse_document(textwrap.dedent(facts), "facts.yaml")])
    return lib.compile_ruleset(lib.documents[0])  # type: ignore[arg-type]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def decode_all(path: Path, chunk_rows: int = 1000, sides: list[CompiledPolicy] | None = None) -> list[Decoded]:
    portfolio = Portfolio(path, chunk_rows)
    decoder = Decoder(portfolio.format, portfolio.header, sides or [unit()], str(path))
    return [decoder.decode(block) for block in portfolio.blocks()]


def problems_of(chunks: list[Decoded]) -> list[str]:
    return [p.format() for d in chunks for line in d.lines for p in d.problems.get(line, [])]


def test_cells_are_read_by_declared_type(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "book.csv",
        HEADER + "\n"
        "1e3,67,alpha,TRUE,2026-01-31,hello,1,north\n"
        "250.5,67.0,beta,false,,,0,\n"
        "0,3,alpha,,,\"a, quoted \"\"note\"\"\",,south\n",
    )
    [chunk] = decode_all(path)
    assert problems_of([chunk]) == []
    v = chunk.values
    assert v is not None
    assert v[("app", "amount")].tolist() == [1000.0, 250.5, 0.0]
    assert v[("app", "grade")].tolist() == [67.0, 67.0, 3.0]
    # Enums come as codes into the declared values, which the vectorised plan takes as they are.
    assert v[("app", "kind")].tolist() == [0, 1, 0] and chunk.enum_values[("app", "kind")] == ("alpha", "beta")
    flag = v[("app", "flag")]
    assert flag[:2].tolist() == [1.0, 0.0] and math.isnan(flag[2])
    opened = v[("app", "opened")]
    assert opened[0] == 739647.0 and math.isnan(opened[1])  # date(2026, 1, 31).toordinal()
    assert v[("app", "note")].tolist() == ["hello", None, 'a, quoted "note"']
    assert chunk.bad[:2].tolist() == [1.0, 0.0] and math.isnan(chunk.bad[2])
    assert chunk.segment is not None and chunk.segment.tolist() == ["north", None, "south"]
    assert chunk.lines == [2, 3, 4]


def test_every_bad_cell_is_a_row_problem_with_row_and_column(tmp_path: Path) -> None:
    rows = [
        "10,1,alpha,true,,,,",  # row 2: fine
        "ten,1,alpha,,,,,",  # row 3: not a number
        "10,1.5,alpha,,,,,",  # row 4: not whole
        "-5,1,alpha,,,,,",  # row 5: below min
        "10,1,gamma,,,,,",  # row 6: enum
        "10,1,alpha,yes,,,,",  # row 7: boolean
        "10,1,alpha,,2026-02-30,,,",  # row 8: date
        ",1,alpha,,,,,",  # row 9: required and empty
        "10,1,alpha,,,,2,",  # row 10: performance.bad
        "10,1,alpha",  # row 11: short row
        "nan,inf,alpha,,,,,",  # row 12: not finite, twice
    ]
    path = write(tmp_path, "book.csv", HEADER + "\n" + "\n".join(rows) + "\n")
    [chunk] = decode_all(path)
    assert problems_of([chunk]) == [
        "row 3, column app.amount: app.amount must be a number, found 'ten'",
        "row 4, column app.grade: app.grade must be a whole number, found 1.5",
        "row 5, column app.amount: app.amount must be at least 0, found -5",
        "row 6, column app.kind: app.kind must be one of alpha, beta",
        "row 7, column app.flag: app.flag must be true or false, found 'yes'",
        "row 8, column app.opened: app.opened must be a date YYYY-MM-DD, found '2026-02-30'",
        "row 9, column app.amount: app.amount is required",
        "row 10, column performance.bad: performance.bad must be 0 or 1, found '2'",
        "row 11: the row has 3 cells; the header has 8",
        "row 12, column app.amount: app.amount must be a finite number",
        "row 12, column app.grade: app.grade must be a finite number",
    ]
    assert chunk.good.tolist() == [True] + [False] * 10
    assert chunk.count == 1 and chunk.values is not None and chunk.values[("app", "amount")].tolist() == [10.0]


def test_an_enum_problem_carries_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "book.csv", HEADER + "\n10,1,alpa,,,,,\n")
    [problem] = [p for d in decode_all(path) for ps in d.problems.values() for p in ps]
    assert problem.format().endswith("(hint: did you mean 'alpha'?)")


def test_header_problems_stop_the_run(tmp_path: Path) -> None:
    for header, code in [
        ("app.amount,app.grade,app.kind,app.colour", "unknown-column"),
        ("app.amount,app.kind", "missing-column"),
        ("app.amount,app.grade,app.kind,app.half", "derived-column"),
        ("app.amount,app.grade,app.kind,app.kind", "duplicate-column"),
    ]:
        path = write(tmp_path, "book.csv", header + "\n")
        with pytest.raises(CredoError) as caught:
            decode_all(path)
        assert [p.code for p in caught.value.problems] == [code], header


def test_chunks_number_rows_by_file_line_across_blocks(tmp_path: Path) -> None:
    body = [f"{i},{i % 9},alpha,,,,," for i in range(1, 8)]
    body[3] = '4,4,alpha,,,"two\nlines",,'  # a quoted line break: this record spans lines 5 and 6
    body[5] = "x,1,alpha,,,,,"
    path = write(tmp_path, "book.csv", HEADER + "\n" + "\n".join(body) + "\n\n")
    chunks = decode_all(path, chunk_rows=2)
    assert [len(d.lines) for d in chunks] == [2, 2, 2, 1]
    assert [line for d in chunks for line in d.lines] == [2, 3, 4, 5, 7, 8, 9]
    assert problems_of(chunks) == ["row 8, column app.amount: app.amount must be a number, found 'x'"]
    notes = [v for d in chunks for v in (d.values or {})[("app", "note")].tolist()]
    assert "two\nlines" in notes


def test_blocks_are_read_lazily_in_bounded_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.portfolio

    monkeypatch.setattr(engine.portfolio, "READ_BYTES", 1 << 14)  # read 16 KiB at a time (4 MiB normally)
    path = tmp_path / "big.csv"
    with path.open("w") as out:
        out.write(HEADER + "\n")
        for i in range(60_000):
            out.write(f"{i},{i % 10},beta,true,,,0,s{i % 3}\n")
    portfolio = Portfolio(path, chunk_rows=1_000)
    tracemalloc.start()
    count = sum(1 for _ in portfolio.blocks())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 60
    assert peak < path.stat().st_size / 4  # one block at a time, never the whole file


def test_json_lines_are_validated_like_credo_decide(tmp_path: Path) -> None:
    lines = [
        json.dumps({"app": {"amount": 10, "grade": 2, "kind": "beta"}, "performance": {"bad": 1}, "segment": "x"}),
        "",
        "{not json",
        json.dumps({"app": {"amount": -1, "grade": 2.5, "kind": "beta"}}),
        json.dumps({"app": {"amount": 1, "grade": 1, "kind": "alpha"}, "performance": {"bad": 3}}),
    ]
    path = write(tmp_path, "book.jsonl", "\n".join(lines) + "\n")
    [chunk] = decode_all(path)
    assert chunk.lines == [1, 3, 4, 5]
    assert problems_of([chunk]) == [
        "row 3: line 3 is not JSON: Expecting property name enclosed in double quotes",
        "row 4, column app.amount: app.amount must be at least 0, found -1",
        "row 4, column app.grade: app.grade must be a whole number, found 2.5",
        "row 5, column performance.bad: performance.bad must be 0 or 1, found 3",
    ]
    assert chunk.facts is not None and chunk.facts[0][0]["app"] == {"amount": 10.0, "grade": 2.0, "kind": "beta"}
    assert chunk.bad.tolist() == [1.0]
    # The skipped rows' error lines are the ones `credo decide` prints for the same input.
    u = unit()
    with pytest.raises(CredoError) as caught:
        decide(u, json.loads(lines[3]))
    assert error_line(chunk.problems[4]) == reject(caught.value.problems)
    assert error_line(chunk.problems[3]) == {
        "error": {"code": "bad-json", "message": "line 3 is not JSON: Expecting property name enclosed in double "
                  "quotes", "problems": []}
    }


def test_a_row_that_is_not_utf8_is_a_row_problem(tmp_path: Path) -> None:
    for name, first, broken in [
        ("book.csv", HEADER + "\n", b"10,1,alpha,,,caf\xe9,,\n"),
        ("book.jsonl", "", b'{"app": {"amount": 1, "grade": 1, "kind": "alpha", "note": "caf\xe9"}}\n'),
    ]:
        path = tmp_path / name
        good = "10,1,alpha,,,,,\n" if name.endswith(".csv") else '{"app": {"amount": 1, "grade": 1, "kind": "alpha"}}\n'
        path.write_bytes(first.encode() + good.encode() + broken + good.encode())
        [chunk] = decode_all(path)
        row = 3 if name.endswith(".csv") else 2
        assert problems_of([chunk]) == [f"row {row}: the row is not UTF-8 text"], name
        assert chunk.good.tolist() == [True, False, True], name


def test_sides_with_different_schemas_are_both_checked(tmp_path: Path) -> None:
    strict = unit(FACTS.replace("amount: {type: number, min: 0}", "amount: {type: number, min: 5}"))
    path = write(tmp_path, "book.csv", "app.amount,app.grade,app.kind\n3,1,alpha\n9,1,alpha\n")
    [chunk] = decode_all(path, sides=[unit(), strict])
    assert problems_of([chunk]) == ["row 2, column app.amount: app.amount must be at least 5, found 3"]
    assert chunk.count == 1
    # A column the file lacks is all missing for a side that declares it.
    assert np.isnan(chunk.side_values(unit().schema.fields)[("app", "flag")]).all()


def test_row_problem_text_and_dict() -> None:
    p = RowProblem(12, "financials.ebitda", "wrong-type", "financials.ebitda must be a number, found 'x'")
    assert p.format() == "row 12, column financials.ebitda: financials.ebitda must be a number, found 'x'"
    assert p.to_dict() == {"row": 12, "column": "financials.ebitda", "code": "wrong-type", "message": p.message}
    assert RowProblem(3, "", "bad-row", "the row has 2 cells; the header has 3").format().startswith("row 3: ")


CELL_VALUES = {
    "app.amount": ["", "0", "12", "1e3", "-5", "nan", "-nan", "inf", "x", " 7 ", "2.5"],
    "app.grade": ["", "3", "67.0", "1.5", "nan", "-nan", "ten"],
    "app.kind": ["", "alpha", "beta", "gamma", "-nan"],
    "app.flag": ["", "true", "FALSE", "yes", "-nan"],
    "app.opened": ["", "2026-01-31", "2026-02-30", "-nan"],
    "app.note": ["", "hello", "-nan", "a,b", 'say "hi"', "two\nlines"],
    "performance.bad": ["", "0", "1", "2", "-nan"],
    "segment": ["", "north", "-nan"],
}
CELLS = {c: st.sampled_from(v) for c, v in CELL_VALUES.items()}
# The same cells without what sends a block to the csv module (quotes, commas, line breaks, the BLANK marker).
PLAIN = {c: st.sampled_from([x for x in v if not set(x) & set('",\n') and x != "-nan"]) for c, v in CELL_VALUES.items()}


@settings(max_examples=80, deadline=None)
@given(st.one_of(st.lists(st.fixed_dictionaries(PLAIN), min_size=1, max_size=12),
                 st.lists(st.fixed_dictionaries(CELLS), min_size=1, max_size=12)))
def test_the_fast_reader_and_the_csv_module_agree(rows: list[dict[str, str]]) -> None:
    """A block cut by plain splits decodes exactly as the csv module's reading of the same text."""
    import csv
    import io

    import engine.portfolio

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(list(CELLS))
    plain = all(not set(v) & set('",\n') and v != "-nan" for row in rows for v in row.values())
    for row in rows:
        writer.writerow([row[c] for c in CELLS])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "book.csv"
        path.write_text(out.getvalue())
        fast = decode_all(path)
        assert (engine.portfolio._split_plain(path.read_text().split("\n", 1)[1], len(CELLS)) is not None) == plain
        real = engine.portfolio._split_plain
        try:
            engine.portfolio._split_plain = lambda text, width: None  # type: ignore[assignment]
            slow = decode_all(path)
        finally:
            engine.portfolio._split_plain = real
    assert problems_of(fast) == problems_of(slow)
    for a, b in zip(fast, slow, strict=True):
        assert a.lines == b.lines and a.good.tolist() == b.good.tolist()
        assert a.values is not None and b.values is not None
        for key in b.values:
            x, y = a.values[key], b.values[key]
            assert x.dtype == y.dtype, key
            same = np.array_equal(x, y, equal_nan=True) if x.dtype.kind == "f" else x.tolist() == y.tolist()
            assert same, key
        assert np.array_equal(a.bad, b.bad, equal_nan=True)
        assert (a.segment is None) == (b.segment is None)
        if a.segment is not None and b.segment is not None:
            assert a.segment.tolist() == b.segment.tolist()
