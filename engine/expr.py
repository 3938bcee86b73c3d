"""The expression language (design section 2) and table cells (section 3): lexer, parser, printer.

`parse_expression` turns the text of a `when`, a `derive` or a numeric output into
an `engine.syntax` tree; `parse_cell` turns a decision-table cell or a scorecard bin
test into a test on the column's subject; `to_text` prints a tree back as canonical
source text (single spaces around binary operators, minimal parentheses).

The lexer is one compiled regex with named groups; the parser is precedence
climbing. Precedence, lowest first::

    or < and < not < comparisons, in, not in (non-associative) < + - < * / < unary - < call, atom

Syntax errors stop at the first one; the others (null, unknown function, arity,
chained comparison, bad date, bad path) are collected and parsing goes on, so one
`CredoError` may carry several problems. Every problem points at its token.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from bisect import bisect_left
from collections.abc import Callable
from typing import NamedTuple, TypeVar

from engine.errors import CredoError, Problem, SourceSpan, did_you_mean
from engine.syntax import (
    FUNCTIONS,
    Binary,
    BoolOp,
    Call,
    Compare,
    Expr,
    ListLiteral,
    Literal,
    Membership,
    Name,
    Not,
    Path,
    Scalar,
    Unary,
    walk,
)

__all__ = [
    "ARITY",
    "KEYWORDS",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "names_in",
    "parse_cell",
    "parse_expression",
    "paths_in",
    "to_text",
]

MAX_LENGTH = 10_000
"""Longest expression or cell text accepted (characters)."""

MAX_DEPTH = 64
"""Deepest nesting accepted: of parentheses, calls and unary operators while parsing, and of operators in the
tree built (leaves do not count: `-a` is 1 deep, 65 terms of `+` are 64 deep)."""

KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false"})
_NULL_WORDS = frozenset({"null", "None", "nil", "NULL", "Null"})
_BOOL_LOOKALIKES = {"True": True, "False": False, "TRUE": True, "FALSE": False}

# (fewest, most) arguments; None = no upper bound.
ARITY: dict[str, tuple[int, int | None]] = {
    "min": (2, None),
    "max": (2, None),
    "abs": (1, 1),
    "round": (1, 2),
    "present": (1, 1),
    "missing": (1, 1),
    "days_between": (2, 2),
}
assert set(ARITY) == FUNCTIONS, "ARITY must describe exactly engine.syntax.FUNCTIONS"

# Binding powers.
_OR, _AND, _NOT, _CMP, _ADD, _MUL, _UNARY, _ATOM = 1, 2, 3, 4, 5, 6, 7, 8
_BINARY = {
    "or": _OR,
    "and": _AND,
    "==": _CMP,
    "!=": _CMP,
    "<": _CMP,
    "<=": _CMP,
    ">": _CMP,
    ">=": _CMP,
    "in": _CMP,
    "+": _ADD,
    "-": _ADD,
    "*": _MUL,
    "/": _MUL,
}
_COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})

_TOKEN_RE = re.compile(
    r"""
    [ \t\r\n]*  # whitespace before each token
    (?:(?P<num>(?>[0-9](?:_?[0-9])*(?:\.[0-9](?:_?[0-9])*)?(?:[eE][+-]?[0-9](?:_?[0-9])*)?)(?![A-Za-z0-9_]|\.[0-9]))
    |(?P<badnum>[0-9](?:[A-Za-z0-9_]|\.(?!\.))*)
    |(?P<str>'(?:[^'\\\n]|\\[^\n])*'|"(?:[^"\\\n]|\\[^\n])*")
    |(?P<openstr>['"])
    |(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.(?!\.)[A-Za-z0-9_]*)*)
    |(?P<op>==|!=|<=|>=|\.\.|[<>+\-*/(),\[\]])
    |(?P<bad>.)
    |(?P<end>\Z))
    """,
    re.VERBOSE | re.DOTALL,
)
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n"}
_BAD_CHAR_HINTS = {
    "=": "use == to compare",
    "!": "use not",
    "&": "use and",
    "|": "use or",
    ".": "a path is written fact.field; a range [lo..hi) only in a table cell",
}


_T = TypeVar("_T")


class _Tok(NamedTuple):
    kind: str  # 'num', 'str', 'name', 'null', 'eof', or the keyword / operator itself
    text: str
    pos: int  # offset in the text
    value: Scalar | None = None


@dataclasses.dataclass(frozen=True)
class _NullMarker(Expr):
    """Stands where `null` was written until the parse fails; never leaves this module."""

    index: int  # of its problem in _Parser.problems


class _Stop(Exception):
    """Unwinds the parser after a fatal problem has been recorded."""


class _Parser:
    def __init__(self, text: str, span: SourceSpan, what: str) -> None:
        self.text = text
        self.origin = span
        self.what = what  # "expression" or "cell", for messages
        self.problems: list[Problem] = []
        self.toks: list[_Tok] = []
        self.i = 0
        self.nesting = 0
        self._newlines = [m.start() for m in re.finditer("\n", text)]
        self._spans: dict[int, SourceSpan] = {}
        self._depths: dict[int, int] = {}
        self._alive: list[Expr] = []  # keeps the ids in _depths valid

    # -- positions and problems ---------------------------------------------------------------

    def span(self, pos: int) -> SourceSpan:
        span = self._spans.get(pos)
        if span is None:
            before = bisect_left(self._newlines, pos)
            if before == 0:
                span = SourceSpan(self.origin.file, self.origin.line, self.origin.column + pos)
            else:
                span = SourceSpan(self.origin.file, self.origin.line + before, pos - self._newlines[before - 1])
            self._spans[pos] = span
        return span

    def report(self, code: str, message: str, pos: int, hint: str | None = None) -> int:
        self.problems.append(Problem(code, message, self.span(pos), hint))
        return len(self.problems) - 1

    def fail(self, code: str, message: str, pos: int, hint: str | None = None) -> _Stop:
        self.report(code, message, pos, hint)
        return _Stop()

    def syntax(self, message: str, pos: int, hint: str | None = None) -> _Stop:
        return self.fail("expr-syntax", message, pos, hint)

    def describe(self, tok: _Tok) -> str:
        if tok.kind == "eof":
            return f"end of {self.what}"
        text = tok.text if len(tok.text) <= 30 else tok.text[:27] + "..."
        return f"string {text}" if tok.kind == "str" else f"'{text}'"

    # -- lexer ---------------------------------------------------------------------------------

    def tokenize(self) -> None:
        if len(self.text) > MAX_LENGTH:
            raise self.fail(
                "expr-too-long", f"the {self.what} is {len(self.text)} characters long; the limit is {MAX_LENGTH}", 0
            )
        toks = self.toks
        for m in _TOKEN_RE.finditer(self.text):
            kind = m.lastgroup
            if kind == "end" or kind is None:
                break
            text = m.group(kind)
            pos = m.start(kind)
            if kind == "name":
                toks.append(_Tok(text if text in KEYWORDS else "null" if text in _NULL_WORDS else "name", text, pos))
            elif kind == "op":
                toks.append(_Tok(text, text, pos))
            elif kind == "num":
                toks.append(_Tok("num", text, pos, self._number(text, pos)))
            elif kind == "str":
                toks.append(_Tok("str", text, pos, self._unescape(text, pos)))
            elif kind == "badnum":
                raise self.syntax(f"malformed number '{text}'", pos)
            elif kind == "openstr":
                raise self.syntax("unterminated string: the closing quote is missing", pos)
            else:
                two = self.text[pos : pos + 2]
                hint = "use and" if two == "&&" else "use or" if two == "||" else _BAD_CHAR_HINTS.get(text)
                raise self.syntax(f"unexpected character {text!r}", pos, hint)
        end = len(self.text.rstrip(" \t\r\n"))
        toks.append(_Tok("eof", "", end))

    def _number(self, text: str, pos: int) -> int | float:
        if len(text) > 400:
            raise self.syntax(f"number out of range: {text[:20]}...", pos)
        value: int | float
        if any(c in text for c in ".eE"):
            value = float(text)
            if not math.isfinite(value):
                raise self.syntax(f"number out of range: {text}", pos)
            return value
        value = int(text)
        try:
            float(value)
        except OverflowError:
            raise self.syntax(f"number out of range: {text[:20]}...", pos) from None
        return value

    def _unescape(self, text: str, pos: int) -> str:
        body = text[1:-1]
        if "\\" not in body:
            return body
        out: list[str] = []
        i = 0
        while i < len(body):
            c = body[i]
            if c != "\\":
                out.append(c)
                i += 1
                continue
            esc = body[i + 1]  # the regex guarantees a character after a backslash
            if esc not in _ESCAPES:
                raise self.syntax(
                    f"unknown escape '\\{esc}' in a string; only \\\\, \\', \\\" and \\n are allowed", pos + 1 + i
                )
            out.append(_ESCAPES[esc])
            i += 2
        return "".join(out)

    # -- token stream --------------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> _Tok:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def next(self) -> _Tok:
        tok = self.toks[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def expect_end(self) -> None:
        tok = self.peek()
        if tok.kind == "eof":
            return
        if tok.kind == ")":
            raise self.syntax("unmatched ')'", tok.pos)
        if self.what == "cell":
            raise self.syntax(f"expected end of cell, found {self.describe(tok)}", tok.pos)
        raise self.syntax(f"expected an operator or end of expression, found {self.describe(tok)}", tok.pos)

    # -- depth ---------------------------------------------------------------------------------

    def enter(self, tok: _Tok) -> None:
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise self.fail(
                "expr-too-deep",
                f"the {self.what} is nested more than {MAX_DEPTH} levels deep (parentheses, calls, unary operators)",
                tok.pos,
            )

    def node(self, node: Expr, tok: _Tok, *children: Expr) -> Expr:
        """Records the depth of a new inner node; too deep a tree fails at `tok` (its operator)."""
        depth = 1 + max((self._depths.get(id(c), 0) for c in children), default=0)
        if depth > MAX_DEPTH:
            raise self.fail(
                "expr-too-deep",
                f"the {self.what} is nested more than {MAX_DEPTH} levels deep; split it with derive",
                tok.pos,
            )
        self._depths[id(node)] = depth
        self._alive.append(node)
        return node

    # -- expressions ---------------------------------------------------------------------------

    def expression(self, min_prec: int) -> tuple[Expr, int]:
        """Parses operators binding at least as tightly as `min_prec`; returns the tree and its first offset."""
        left, start = self.prefix(min_prec)
        compared = False
        while True:
            tok = self.peek()
            op = tok.kind
            if op == "not" and self.peek(1).kind == "in":
                op = "not in"
                prec = _CMP
            else:
                prec = _BINARY.get(op, 0)
            if prec == 0 or prec < min_prec:
                return left, start
            if prec <= _AND:
                items = [left]
                while self.peek().kind == op:
                    self.next()
                    right, _ = self.expression(prec + 1)
                    items.append(right)
                left = self.node(BoolOp(span=self.span(start), op=op, items=tuple(items)), tok, *items)
                compared = False
                continue
            self.next()
            if op == "not in":
                self.next()
            if prec == _CMP:
                if compared:
                    self.report("expr-chained-comparison", "comparisons cannot be chained; use and", tok.pos)
                compared = True
                if op in ("in", "not in"):
                    items_ = self.list_literal(op)
                    member = Membership(span=self.span(start), negated=op == "not in", left=left, right=items_)
                    left = self.node(member, tok, left, items_)
                else:
                    right, _ = self.expression(_CMP + 1)
                    left = self.compare(op, left, right, start, tok)
            else:
                right, _ = self.expression(prec + 1)
                left = self.node(Binary(span=self.span(start), op=op, left=left, right=right), tok, left, right)

    def compare(self, op: str, left: Expr, right: Expr, start: int, tok: _Tok) -> Expr:
        for null, other in ((left, right), (right, left)):
            if isinstance(null, _NullMarker) and op in ("==", "!=") and not isinstance(other, _NullMarker):
                try:
                    hint = f"{'missing' if op == '==' else 'present'}({to_text(other)})"
                except (TypeError, ValueError):
                    break
                self.problems[null.index] = dataclasses.replace(self.problems[null.index], hint=hint)
                break
        return self.node(Compare(span=self.span(start), op=op, left=left, right=right), tok, left, right)

    def expected_operand(self, index: int, hint: str | None = None) -> _Stop:
        """The problem for a token (at `index`) that cannot start an operand."""
        tok = self.toks[index]
        if index == 0:
            wanted = "an expression" if self.what == "expression" else "a test such as '< 1.5', '[1..2)' or 'a', 'b'"
            return self.syntax(f"expected {wanted}, found {self.describe(tok)}", tok.pos, hint)
        prev = self.toks[index - 1].text
        return self.syntax(f"expected an operand after '{prev}', found {self.describe(tok)}", tok.pos, hint)

    def prefix(self, min_prec: int) -> tuple[Expr, int]:
        index = self.i
        tok = self.next()
        kind = tok.kind
        span = self.span(tok.pos)
        if kind in ("num", "str"):
            assert tok.value is not None
            return Literal(span=span, value=tok.value), tok.pos
        if kind in ("true", "false"):
            return Literal(span=span, value=kind == "true"), tok.pos
        if kind == "name":
            return self.name(tok), tok.pos
        if kind == "-":
            following = self.peek()
            if following.kind == "num":  # -0.2 is one literal
                self.next()
                assert isinstance(following.value, (int, float))
                return Literal(span=span, value=-following.value), tok.pos
            self.enter(tok)
            operand, _ = self.expression(_UNARY)
            self.nesting -= 1
            return self.node(Unary(span=span, op="-", operand=operand), tok, operand), tok.pos
        if kind == "not":
            if min_prec > _NOT:
                raise self.expected_operand(index, "put 'not ...' in parentheses")
            self.enter(tok)
            operand, _ = self.expression(_NOT)
            self.nesting -= 1
            return self.node(Not(span=span, operand=operand), tok, operand), tok.pos
        if kind == "(":
            self.enter(tok)
            inner, _ = self.expression(_OR)
            close = self.next()
            if close.kind != ")":
                where = self.span(tok.pos)
                raise self.syntax(
                    f"expected ')' to close the '(' at {where.line}:{where.column}, found {self.describe(close)}",
                    close.pos,
                )
            self.nesting -= 1
            return inner, tok.pos
        if kind == "null":
            return self.null(tok), tok.pos
        if kind == "[":
            raise self.syntax("a list such as ['a', 'b'] is only allowed after 'in' or 'not in'", tok.pos)
        raise self.expected_operand(index)

    def null(self, tok: _Tok) -> _NullMarker:
        index = self.report(
            "expr-null",
            f"there is no null literal ('{tok.text}'); test for a missing value with missing(x) or present(x)",
            tok.pos,
            "missing(x)",
        )
        return _NullMarker(span=self.span(tok.pos), index=index)

    def name(self, tok: _Tok) -> Expr:
        text = tok.text
        span = self.span(tok.pos)
        if self.peek().kind == "(":
            return self.date(tok) if text == "date" else self.call(tok)
        if "." in text:
            return self.path(tok)
        if text in _BOOL_LOOKALIKES:
            self.report(
                "expr-syntax",
                f"'{text}' is not a literal; booleans are written true and false",
                tok.pos,
                f"write {text.lower()}",
            )
            return Literal(span=span, value=_BOOL_LOOKALIKES[text])
        return Name(span=span, name=text)

    def path(self, tok: _Tok) -> Path:
        text = tok.text
        parts = text.split(".")
        for part in parts[1:]:
            if not part:
                self.report("expr-bad-path", f"expected a field name after '.' in '{text}'", tok.pos)
                break
            if not _IDENT_RE.fullmatch(part):
                self.report("expr-bad-path", f"'{part}' is not a valid field name in '{text}'", tok.pos)
                break
        else:
            if len(parts) > 2:
                self.report(
                    "expr-bad-path",
                    f"a path has exactly two parts, fact.field; '{text}' has {len(parts)}",
                    tok.pos,
                    f"{parts[0]}.{parts[1]}",
                )
        return Path(span=self.span(tok.pos), fact=parts[0], name=parts[1])

    def call(self, tok: _Tok) -> Expr:
        func = tok.text
        self.next()  # (
        self.enter(tok)
        args: list[Expr] = []
        starts: list[int] = []
        if self.peek().kind == ")":
            self.next()
        else:
            while True:
                arg, start = self.expression(_OR)
                args.append(arg)
                starts.append(start)
                sep = self.next()
                if sep.kind == ")":
                    break
                if sep.kind != ",":
                    raise self.syntax(
                        f"expected ',' or ')' in the arguments of {func}(), found {self.describe(sep)}", sep.pos
                    )
        self.nesting -= 1
        node = self.node(Call(span=self.span(tok.pos), func=func, args=tuple(args)), tok, *args)
        if func not in ARITY:
            if "." in func:
                self.report("expr-unknown-function", f"'{func}' is a path, not a function", tok.pos)
            else:
                hint = did_you_mean(func, sorted(FUNCTIONS | {"date"}))
                self.report("expr-unknown-function", f"unknown function '{func}'", tok.pos, hint)
            return node
        fewest, most = ARITY[func]
        if len(args) < fewest or (most is not None and len(args) > most):
            self.report("expr-arity", f"{func}() takes {_arity_text(fewest, most)}, got {len(args)}", tok.pos)
        elif func in ("present", "missing") and not isinstance(args[0], (Path, Name, _NullMarker)):
            self.report(
                "expr-syntax",
                f"{func}() takes a field path or a conclusion name, found {to_text(args[0])}",
                starts[0],
            )
        return node

    def date(self, tok: _Tok) -> Literal:
        self.next()  # (
        arg = self.next()
        if arg.kind != "str":
            raise self.syntax(
                f"expected a quoted date such as '2026-01-01' after 'date(', found {self.describe(arg)}", arg.pos
            )
        close = self.next()
        if close.kind != ")":
            raise self.syntax(f"expected ')' after the date, found {self.describe(close)}", close.pos)
        value = _iso_date(str(arg.value))
        if value is None:
            self.report("expr-bad-date", f"{arg.text} is not a valid date; write date('YYYY-MM-DD')", arg.pos)
            value = dt.date.min
        return Literal(span=self.span(tok.pos), value=value)

    def list_literal(self, op: str) -> ListLiteral:
        opening = self.next()
        if opening.kind != "[":
            raise self.syntax(
                f"expected a list such as ['a', 'b'] after '{op}', found {self.describe(opening)}", opening.pos
            )
        items: list[Literal] = []
        if self.peek().kind == "]":
            self.next()
        else:
            while True:
                items.append(self.list_item())
                sep = self.next()
                if sep.kind == "]":
                    break
                if sep.kind != ",":
                    raise self.syntax(f"expected ',' or ']' in the list, found {self.describe(sep)}", sep.pos)
        return ListLiteral(span=self.span(opening.pos), items=tuple(items))

    def list_item(self) -> Literal:
        tok = self.next()
        span = self.span(tok.pos)
        if tok.kind in ("num", "str"):
            assert tok.value is not None
            return Literal(span=span, value=tok.value)
        if tok.kind in ("true", "false"):
            return Literal(span=span, value=tok.kind == "true")
        if tok.kind == "-" and self.peek().kind == "num":
            value = self.next().value
            assert isinstance(value, (int, float))
            return Literal(span=span, value=-value)
        if tok.kind == "name" and tok.text == "date" and self.peek().kind == "(":
            return self.date(tok)
        if tok.kind == "null":
            self.null(tok)
            return Literal(span=span, value=0)  # a placeholder: the parse fails
        raise self.syntax(
            f"a list may hold only literal values (numbers, strings, true, false, dates), found {self.describe(tok)}",
            tok.pos,
        )

    # -- entry points --------------------------------------------------------------------------

    def parse_expression(self) -> Expr:
        self.tokenize()
        expr, _ = self.expression(_OR)
        self.expect_end()
        return expr

    def parse_cell(self, subject: Expr) -> Expr | None:
        self.tokenize()
        first, second = self.peek(), self.peek(1)
        if first.kind == "eof":
            raise self.syntax("empty cell; write '-' for any value", first.pos)
        if first.kind == "-" and second.kind == "eof":
            return None
        if first.kind in _COMPARISONS:
            self.next()
            value, _ = self.expression(_ADD)
            self.expect_end()
            return self.compare(first.kind, subject, value, first.pos, first)
        if first.kind in ("[", "(") and any(t.kind == ".." for t in self.toks):
            return self.range(subject)
        if first.kind == "[":
            raise self.syntax(
                "expected a range such as [1.0..1.5); a list of values is written without brackets: 'a', 'b'",
                first.pos,
            )
        negated = first.kind == "not" and second.kind != "in"
        if negated:
            self.next()
        values: list[tuple[Expr, int]] = []
        while True:
            values.append(self.expression(_ADD))
            sep = self.peek()
            if sep.kind == "eof":
                break
            if sep.kind != ",":
                hint = "a range is written [lo..hi)" if sep.kind == ".." else None
                raise self.syntax(f"expected ',' or end of cell, found {self.describe(sep)}", sep.pos, hint)
            self.next()
        if len(values) == 1:
            value, pos = values[0]
            if isinstance(value, Literal) and negated:
                items = ListLiteral(span=self.span(pos), items=(value,))
                return self.node(
                    Membership(span=self.span(first.pos), negated=True, left=subject, right=items), first, items
                )
            return self.compare("!=" if negated else "==", subject, value, first.pos, first)
        literals: list[Literal] = []
        for value, pos in values:
            if isinstance(value, Literal):
                literals.append(value)
            elif not isinstance(value, _NullMarker):
                self.report(
                    "expr-syntax",
                    "a list of values may hold only literals (numbers, strings, true, false, dates); "
                    f"found {to_text(value)}",
                    pos,
                    "compare with an expression in a cell of its own, such as '== x'",
                )
        items = ListLiteral(span=self.span(values[0][1]), items=tuple(literals))
        member = Membership(span=self.span(first.pos), negated=negated, left=subject, right=items)
        return self.node(member, first, items)

    def range(self, subject: Expr) -> Expr:
        opening = self.next()
        low, _ = self.expression(_ADD)
        dots = self.next()
        if dots.kind != "..":
            raise self.syntax(f"expected '..' between the bounds of a range, found {self.describe(dots)}", dots.pos)
        high, high_pos = self.expression(_ADD)
        close = self.next()
        if close.kind not in ("]", ")"):
            raise self.syntax(f"expected ']' or ')' to close the range, found {self.describe(close)}", close.pos)
        self.expect_end()
        low_test = self.compare(">=" if opening.kind == "[" else ">", subject, low, opening.pos, opening)
        high_test = self.compare("<=" if close.kind == "]" else "<", subject, high, high_pos, dots)
        both = BoolOp(span=self.span(opening.pos), op="and", items=(low_test, high_test))
        return self.node(both, opening, low_test, high_test)


def _arity_text(fewest: int, most: int | None) -> str:
    plural = "s" if (most or fewest) != 1 else ""
    if most is None:
        return f"at least {fewest} argument{plural}"
    if most == fewest:
        return f"exactly {fewest} argument{plural}"
    return f"{fewest} or {most} arguments" if most == fewest + 1 else f"{fewest} to {most} arguments"


def _iso_date(text: str) -> dt.date | None:
    if not _DATE_RE.fullmatch(text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def _run(parser: _Parser, parse: Callable[[], _T]) -> _T:
    try:
        result = parse()
    except _Stop:
        raise CredoError(parser.problems) from None
    if parser.problems:
        raise CredoError(parser.problems)
    return result


def parse_expression(text: str, span: SourceSpan) -> Expr:
    """Parses an expression; `span` is where `text[0]` sits in its file. Raises CredoError."""
    parser = _Parser(text, span, "expression")
    return _run(parser, parser.parse_expression)


def parse_cell(text: str, span: SourceSpan, subject: Expr) -> Expr | None:
    """Parses a table cell / scorecard bin test on `subject`; None for '-' (any value, missing included).

    `< x`, `== x` ... give Compare(op, subject, x); `[lo..hi)` and friends give
    BoolOp('and', (Compare('>=' | '>', subject, lo), Compare('<' | '<=', subject, hi)));
    a single value gives Compare('==', subject, value); several literals give
    Membership(False, subject, [...]); `not` before literals gives Membership(True, ...)
    and before a single non-literal value Compare('!=', subject, value). Bounds and
    single values may be any arithmetic expression (not and/or/comparisons).
    The tests' spans are the cell's (the subject keeps its own).
    """
    parser = _Parser(text, span, "cell")
    return _run(parser, lambda: parser.parse_cell(subject))


# -- printing ----------------------------------------------------------------------------------


def _prec(expr: Expr) -> int:
    if isinstance(expr, BoolOp):
        return _OR if expr.op == "or" else _AND
    if isinstance(expr, Not):
        return _NOT
    if isinstance(expr, (Compare, Membership)):
        return _CMP
    if isinstance(expr, Binary):
        return _ADD if expr.op in ("+", "-") else _MUL
    if isinstance(expr, Unary):
        return _UNARY
    if isinstance(expr, Literal) and _literal_text(expr.value).startswith("-"):
        return _UNARY
    return _ATOM


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _literal_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} has no source text")
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
        return f"'{escaped}'"
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return f"date('{value.isoformat()}')"
    raise TypeError(f"not a literal value: {value!r}")


def _wrap(expr: Expr, parens: bool) -> str:
    text = _fmt(expr)
    return f"({text})" if parens else text


def _fmt(expr: Expr) -> str:
    if isinstance(expr, Literal):
        return _literal_text(expr.value)
    if isinstance(expr, Path):
        return expr.dotted
    if isinstance(expr, Name):
        return expr.name
    if isinstance(expr, ListLiteral):
        return "[" + ", ".join(_literal_text(item.value) for item in expr.items) + "]"
    if isinstance(expr, Call):
        return f"{expr.func}({', '.join(_fmt(arg) for arg in expr.args)})"
    if isinstance(expr, Unary):
        operand = expr.operand
        # -(2) stays a Unary: written -2 it would read back as the literal -2.
        parens = _prec(operand) < _UNARY or (isinstance(operand, Literal) and _is_number(operand.value))
        return expr.op + _wrap(operand, parens)
    if isinstance(expr, Not):
        return "not " + _wrap(expr.operand, _prec(expr.operand) < _NOT)
    if isinstance(expr, Compare):
        return f"{_wrap(expr.left, _prec(expr.left) <= _CMP)} {expr.op} {_wrap(expr.right, _prec(expr.right) <= _CMP)}"
    if isinstance(expr, Membership):
        op = "not in" if expr.negated else "in"
        return f"{_wrap(expr.left, _prec(expr.left) <= _CMP)} {op} {_fmt(expr.right)}"
    if isinstance(expr, Binary):
        prec = _prec(expr)
        return f"{_wrap(expr.left, _prec(expr.left) < prec)} {expr.op} {_wrap(expr.right, _prec(expr.right) <= prec)}"
    if isinstance(expr, BoolOp):
        prec = _prec(expr)
        return f" {expr.op} ".join(_wrap(item, _prec(item) <= prec) for item in expr.items)
    if isinstance(expr, _NullMarker):
        return "null"
    raise TypeError(f"not an expression: {expr!r}")


def to_text(expr: Expr) -> str:
    """Canonical source text: single spaces around binary operators, minimal parentheses.

    parse_expression(to_text(e)) == e for every tree the parser can produce (and for
    any other well-formed tree: nested BoolOps of one operator keep their parentheses,
    a negated number literal prints as -(2)). Non-finite floats raise ValueError.
    """
    return _fmt(expr)


# -- queries -----------------------------------------------------------------------------------


def paths_in(expr: Expr) -> list[Path]:
    """The fact paths `expr` reads, in source order, each once (its first occurrence)."""
    seen: dict[tuple[str, str], Path] = {}
    for node in walk(expr):
        if isinstance(node, Path):
            seen.setdefault((node.fact, node.name), node)
    return list(seen.values())


def names_in(expr: Expr) -> list[Name]:
    """The conclusions `expr` reads, in source order, each once (its first occurrence)."""
    seen: dict[str, Name] = {}
    for node in walk(expr):
        if isinstance(node, Name):
            seen.setdefault(node.name, node)
    return list(seen.values())
