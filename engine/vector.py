"""The vectorised back-end: one compiled policy decided for a whole chunk of cases with numpy.

A portfolio simulation decides every case of a book under a proposed policy; one case at a time
(`engine.evaluate.decide`) manages a few thousand a second. `VectorPlan` compiles the same
`CompiledPolicy` into column operations and `VectorPlan.run` decides a `Columns` chunk with no
per-case Python. `VectorResult.decision(i)` is the decision `decide(unit, case_i)` gives, except that
a rule's `because` list is empty (the vector path keeps no per-test values; the scorecard's trace
entries are complete).

Why the results are exact, not merely close:

- Every number, date (its day ordinal) and boolean (1.0/0.0) is a float64 column with NaN for a missing
  value. numpy's + - * / on float64 are the IEEE operations Python performs on floats, so as long as
  the operations happen in the same order the bits agree; results that are not finite become NaN, as
  `engine.values` turns them into null. min/max/round/abs and the combine rules copy Python's exact
  behaviour (first minimal element, round half even, `math.fsum` for `sum`), including signed zeros.
- Enums are float64 codes in declaration order, so an ordered comparison compares codes. Strings are
  codes over the texts the policy mentions, with -1 for any other text.
- A condition is compiled with its polarity, negation pushed down to the atoms (as the planner does for
  the network): the mask of "is true" or the mask of "is false". A comparison with NaN is False both
  ways, which is exactly Kleene's "unknown"; `x != y` asks for both sides to be known.
- Strata, hit policies and combine rules run in the order `engine.evaluate` runs them, so a case that
  fails (a `unique` conflict) stops at the same point and keeps the same partial trace.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from engine.errors import NO_SPAN
from engine.evaluate import ENGINE_VERSION
from engine.model import Assignment, OutputDecl
from engine.outputs import DECISIONS, SCORE_OUTPUTS
from engine.policy import CompiledPolicy, Emit
from engine.syntax import Binary, BoolOp, Call, Compare, Expr, Literal, Membership, Name, Not, Path, Unary, walk
from engine.texts import Template
from engine.values import compile_truth, compile_value, literal_value
from engine.values import json_number as _number
from engine.values import json_value as _json_value

__all__ = ["Columns", "VectorPlan", "VectorResult"]

Fn = Callable[["_Ctx"], Any]

_NEGATED = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "==": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
}
_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.true_divide,
}
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_DECLINE = DECISIONS.index("decline")


# ----------------------------------------------------------------------------------------------------
# Columns


@dataclass
class Columns:
    """One chunk of validated cases, column-wise.

    `values` maps (fact, field) to an array of length n: float64 (NaN = missing) for number and integer
    fields, dates (day ordinals, `date.toordinal()`) and booleans (1.0/0.0/NaN); an object array
    (None = missing) for string and enum fields. Derived fields are not included: the plan computes them.
    A field absent from `values` is missing in every case.

    Also accepted, so a reader can skip a conversion: integer or bool arrays for numbers and booleans,
    `datetime64[D]` arrays (NaT = missing) for dates, and integer codes into the declared values
    (-1 = missing) for enums. Treat a Columns as immutable once run: the enum and string encodings a run
    computes are cached on it, so deciding the same chunk under a second policy version reuses them.
    """

    n: int
    values: dict[tuple[str, str], np.ndarray]
    _cache: dict[tuple, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def from_facts(cls, unit: CompiledPolicy, facts: Sequence[Mapping[str, Mapping[str, Any]]]) -> Columns:
        """From already-validated fact dicts (the first element of `unit.validator.validate(case)`)."""
        n = len(facts)
        values: dict[tuple[str, str], np.ndarray] = {}
        for (fact, name), decl in unit.schema.fields.items():
            if decl.derived is not None:
                continue
            raw = [case.get(fact, {}).get(name) for case in facts]
            if decl.type in ("string", "enum"):
                column = np.empty(n, dtype=object)
                # Enum values are the declared string objects, so the encoder meets few distinct objects.
                canonical = {v: v for v in decl.values}
                column[:] = [canonical.get(v, v) if v is not None else None for v in raw]
            elif decl.type == "date":
                column = np.array([math.nan if v is None else float(v.toordinal()) for v in raw], dtype=np.float64)
            else:
                column = np.array([math.nan if v is None else float(v) for v in raw], dtype=np.float64)
            values[(fact, name)] = column
        return cls(n, values)

    def _column(self, fact: str, name: str) -> np.ndarray | None:
        column = self.values.get((fact, name))
        if column is None:
            return None
        column = np.asarray(column)
        if column.shape != (self.n,):
            raise ValueError(f"column {fact}.{name} has shape {column.shape}, expected ({self.n},)")
        return column

    def _numbers(self, fact: str, name: str, kind: str) -> np.ndarray:
        """A number, integer, boolean or date field as float64 with NaN for missing."""
        key = ("num", fact, name)
        found = self._cache.get(key)
        if found is not None:
            return found
        column = self._column(fact, name)
        if column is None:
            out = np.full(self.n, np.nan)
        elif column.dtype == np.float64:
            return column
        elif column.dtype.kind == "M":
            days = column.astype("datetime64[D]")
            out = days.astype(np.int64).astype(np.float64) + _EPOCH_ORDINAL
            out[np.isnat(days)] = np.nan
        elif column.dtype.kind in "biuf":
            out = column.astype(np.float64)
        else:
            # Objects (None for missing): a slow path for readers that did not convert.
            convert = (lambda v: float(v.toordinal())) if kind == "date" else float
            out = np.array([math.nan if v is None else convert(v) for v in column.tolist()], dtype=np.float64)
        self._cache[key] = out
        return out

    def _codes(self, fact: str, name: str, lookup: Mapping[str, float], strict: bool) -> np.ndarray:
        """An enum or string field as float64 codes (NaN = missing; -1 = a text outside `lookup`)."""
        key = ("codes", fact, name, tuple(lookup))
        found = self._cache.get(key)
        if found is not None:
            return found
        column = self._column(fact, name)
        if column is None:
            out = np.full(self.n, np.nan)
        elif column.dtype.kind in "iu":
            if not strict:
                raise ValueError(f"string field {fact}.{name} needs an object array of texts")
            if column.size and (column.max() >= len(lookup) or column.min() < -1):
                raise ValueError(f"codes of enum field {fact}.{name} must be -1..{len(lookup) - 1}")
            out = column.astype(np.float64)
            out[column < 0] = np.nan
        else:
            out = _object_codes(column, _code_function(lookup, strict, f"{fact}.{name}"))
        out.flags.writeable = False
        self._cache[key] = out
        return out

    def _objects(self, fact: str, name: str) -> np.ndarray:
        column = self._column(fact, name)
        return np.full(self.n, None, dtype=object) if column is None else column.astype(object, copy=False)


def _code_function(lookup: Mapping[str, float], strict: bool, where: str) -> Callable[[Any], float]:
    def code_of(value: Any) -> float:
        if value is None or (isinstance(value, float) and value != value):
            return math.nan
        code = lookup.get(value)
        if code is not None:
            return code
        if strict:
            raise ValueError(f"{where}: {value!r} is not one of {', '.join(lookup)}")
        return -1.0

    return code_of


def _addresses(column: np.ndarray) -> np.ndarray:
    """The object pointers of a contiguous object array, read as integers (never dereferenced).

    numpy cannot hash objects in C, and a Python call per case costs more than the whole decision; but a
    column of enum values holds few distinct objects, so the pointers identify the values.
    """
    return np.frombuffer((ctypes.c_size_t * column.size).from_address(column.ctypes.data), dtype=np.uintp)


def _object_codes(column: np.ndarray, code_of: Callable[[Any], float]) -> np.ndarray:
    """Codes of an object column: one look-up per distinct object, found by hashing the pointers."""
    column = np.ascontiguousarray(column, dtype=object)
    n = column.size
    out = np.empty(n, dtype=np.float64)
    if n == 0:
        return out
    pointers = _addresses(column)
    known: dict[int, float] = {}
    rows: np.ndarray | None = None  # cases still to encode; None while that is all of them
    for _ in range(3):
        pool = pointers if rows is None else pointers[rows]
        step = max(1, pool.size // 512)
        sample, first = np.unique(pool[::step], return_index=True)
        for pointer, at in zip(sample.tolist(), first.tolist(), strict=True):
            if pointer not in known:
                index = at * step if rows is None else int(rows[at * step])
                known[pointer] = code_of(column[index])
        table = _PointerTable.build(known)
        if table is None:
            break
        codes, found = table.lookup(pool)
        if rows is None:
            out[:] = codes
            rows = np.flatnonzero(~found)
        else:
            out[rows] = codes
            rows = rows[~found]
        if rows.size == 0:
            return out
    # Many distinct objects (texts parsed one by one): one dictionary look-up per remaining case.
    if rows is None:
        out[:] = np.fromiter(map(code_of, column.tolist()), dtype=np.float64, count=n)
    else:
        out[rows] = np.fromiter(map(code_of, column[rows].tolist()), dtype=np.float64, count=rows.size)
    return out


@dataclass
class _PointerTable:
    """A collision-free hash table from object pointers to codes: (pointer >> shift) & mask."""

    shift: int
    mask: int
    pointers: np.ndarray
    codes: np.ndarray

    @classmethod
    def build(cls, known: dict[int, float]) -> _PointerTable | None:
        if len(known) > 4096:
            return None
        keys = np.fromiter(known.keys(), dtype=np.uintp, count=len(known))
        codes = np.fromiter(known.values(), dtype=np.float64, count=len(known))
        bits = max(4, (2 * len(known) - 1).bit_length())
        for size in range(bits, 17):
            mask = (1 << size) - 1
            for shift in (4, 3, 5, 6, 7, 8, 9, 10, 11, 12):
                slots = (keys >> shift) & mask
                if np.unique(slots).size == keys.size:
                    pointers = np.zeros(mask + 1, dtype=np.uintp)  # 0 is never an object's address
                    pointers[slots] = keys
                    table = np.full(mask + 1, np.nan)
                    table[slots] = codes
                    return cls(shift, mask, pointers, table)
        return None

    def lookup(self, pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        slots = pool >> self.shift
        slots &= self.mask
        slots = slots.view(np.intp)  # small non-negative numbers: the same bits as indices
        return self.codes[slots], self.pointers[slots] == pool


# ----------------------------------------------------------------------------------------------------
# Compiling expressions into column functions


class _Ctx:
    """One run: the chunk, the values computed so far and the combined conclusions."""

    def __init__(self, plan: VectorPlan, columns: Columns) -> None:
        self.plan = plan
        self.columns = columns
        self.n = columns.n
        self.memo: dict[tuple, Any] = {}
        self.readers = dict(plan._readers)  # readers still to come, of each node that has several
        self.conclusions: dict[str, np.ndarray] = {}
        self.ranks: dict[str, np.ndarray] = {}  # worst/best enum conclusions as integer codes (-1 none)
        self._constants: dict[Any, np.ndarray] = {}

    def full(self, value: Any) -> np.ndarray:
        """`value` as a float64 column: a column as it is, a scalar broadcast to a new one."""
        if isinstance(value, np.ndarray) and value.shape == (self.n,):
            return value
        return np.full(self.n, value, dtype=np.float64)

    def constant_mask(self, value: bool) -> np.ndarray:
        found = self._constants.get(value)
        if found is None:
            found = self._constants[value] = np.full(self.n, value, dtype=bool)
            found.flags.writeable = False
        return found

    def missing(self) -> np.ndarray:
        found = self._constants.get("nan")
        if found is None:
            found = self._constants["nan"] = np.full(self.n, np.nan)
            found.flags.writeable = False
        return found

    def conclusion(self, name: str) -> np.ndarray:
        found = self.conclusions.get(name)
        return self.missing() if found is None else found

    def listed(self, name: str) -> np.ndarray:
        """Whether a list conclusion is set: it is once combined (an empty list is still a value)."""
        found = self.conclusions.get(name)
        return self.constant_mask(False) if found is None else found


class _Node:
    """A computed column. Conditions share atoms (`financials.dscr < 1.2`) and operands, so a node that
    several nodes read is computed once per run and kept until its last reader has it: peak memory, not
    arithmetic, is what a large chunk pays for (every fresh page is a page fault). A node freed too early
    would merely be computed again."""

    __slots__ = ("fn", "key")

    def __init__(self, key: tuple, fn: Fn) -> None:
        self.key = key
        self.fn = fn

    def __call__(self, ctx: _Ctx) -> Any:
        memo = ctx.memo
        key = self.key
        if key in memo:
            out = memo[key]
        else:
            out = self.fn(ctx)
            if key not in ctx.readers:
                return out
            memo[key] = out
        ctx.readers[key] -= 1
        if ctx.readers[key] <= 0:
            del memo[key]
        return out


_memo = _Node


@dataclass
class _Value:
    """A compiled value: kind "num" (float64), "code" (enum or string codes), "list" or "const"."""

    kind: str
    fn: Fn | None = None  # for "list": whether the conclusion is set
    const: Any = None  # the Python value of a constant (None = null)
    vocab: tuple[str, ...] = ()  # "code" over an enum: its values in declaration order
    text: bool = False  # "code" over the string vocabulary: -1 is some other text
    objects: Fn | None = None  # "code" over texts: the texts themselves (comparing two non-literal texts)


def _key(expr: Expr) -> tuple:
    """A structural key. Literals are keyed by type and repr: Literal(1) == Literal(True) and -0.0 == 0.0 in Python."""
    if isinstance(expr, Literal):
        return ("lit", type(expr.value).__name__, repr(expr.value))
    if isinstance(expr, Path):
        return ("path", expr.fact, expr.name)
    if isinstance(expr, Name):
        return ("name", expr.name)
    if isinstance(expr, Unary):
        return ("neg", _key(expr.operand))
    if isinstance(expr, Binary):
        return ("arith", expr.op, _key(expr.left), _key(expr.right))
    if isinstance(expr, Compare):
        return ("cmp", expr.op, _key(expr.left), _key(expr.right))
    if isinstance(expr, Membership):
        return ("in", expr.negated, _key(expr.left), tuple(_key(i) for i in expr.right.items))
    if isinstance(expr, BoolOp):
        return ("bool", expr.op, tuple(_key(i) for i in expr.items))
    if isinstance(expr, Not):
        return ("not", _key(expr.operand))
    if isinstance(expr, Call):
        return ("call", expr.func, tuple(_key(a) for a in expr.args))
    raise NotImplementedError(f"no vector form for {type(expr).__name__}")


def _reads(expr: Expr) -> bool:
    return any(isinstance(node, (Path, Name)) for node in walk(expr))


def _as_float(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, dt.date):
        return float(value.toordinal())
    if isinstance(value, (bool, int, float)):
        return float(value)
    raise NotImplementedError(f"{value!r} is not a number")


def _finite(values: np.ndarray) -> np.ndarray:
    """A result that is not finite is null (values.py), e.g. x / 0 and overflow."""
    infinite = np.isinf(values)
    if infinite.any():
        values[infinite] = np.nan
    return values


def _output_kind(decl: OutputDecl) -> str:
    if decl.type in ("reasons", "strings", "alerts") or decl.combine in ("union", "collect"):
        return "list"
    return "num" if decl.type == "number" else "code"


class _Compiler:
    """Expressions to column functions, shared structurally across rules, derives and the scorecard."""

    def __init__(self, unit: CompiledPolicy) -> None:
        self.schema = unit.schema
        # The texts the policy mentions; string fields are encoded over them at run time.
        self.strings: dict[str, float] = {}
        self._values: dict[tuple, _Value] = {}
        self._truths: dict[tuple, Any] = {}
        self.uses: dict[tuple, int] = {}  # how many nodes read each node

    def _used(self, fn: Any) -> None:
        if isinstance(fn, _Node):
            self.uses[fn.key] = self.uses.get(fn.key, 0) + 1

    def string_code(self, text: str) -> float:
        if text not in self.strings:
            self.strings[text] = float(len(self.strings))
        return self.strings[text]

    # values ------------------------------------------------------------------------------------------

    def value(self, expr: Expr) -> _Value:
        key = _key(expr)
        found = self._values.get(key)
        if found is None:
            found = self._values[key] = self._compile_value(expr, key)
        self._used(found.fn)
        return found

    def number(self, expr: Expr) -> Fn:
        """A numeric operand: a column, or a scalar for a constant (NaN for null)."""
        return self.number_of(self.value(expr))

    def number_of(self, value: _Value) -> Fn:
        if value.kind == "const":
            constant = _as_float(value.const)
            return lambda ctx: constant
        if value.kind != "num" or value.fn is None:
            raise NotImplementedError(f"a {value.kind} value used as a number")
        return value.fn

    def _compile_value(self, expr: Expr, key: tuple) -> _Value:
        if not _reads(expr):
            # Folded with the reference itself, so constant arithmetic (1 / 0, round(2.5)) is its own.
            constant = compile_value(expr)({}, {})
            if isinstance(constant, str):
                self.string_code(constant)
            return _Value("const", const=constant)
        if isinstance(expr, Path):
            return self._path(expr, key)
        if isinstance(expr, Name):
            return self._name(expr)
        if isinstance(expr, Unary):
            operand = self.number(expr.operand)
            return _Value("num", _memo(key, lambda ctx: np.negative(operand(ctx))))
        if isinstance(expr, Binary):
            left, right, op = self.number(expr.left), self.number(expr.right), _ARITHMETIC[expr.op]
            return _Value("num", _memo(key, lambda ctx: _finite(op(left(ctx), right(ctx)))))
        if isinstance(expr, Call) and expr.func not in ("present", "missing"):
            return _Value("num", _memo(key, self._function(expr)))
        # A condition used as a value (a derived boolean field): its truth as 1.0 / 0.0 / null.
        true, false = self.mask(expr, True), self.mask(expr, False)
        return _Value("num", _memo(key, lambda ctx: np.where(true(ctx), 1.0, np.where(false(ctx), 0.0, np.nan))))

    def _function(self, expr: Call) -> Fn:
        func = expr.func
        if func == "round":
            if len(expr.args) > 1 and _reads(expr.args[1]):
                raise NotImplementedError("round() with computed digits")  # the type checker wants a literal
            digits = int(_as_float(compile_value(expr.args[1])({}, {}))) if len(expr.args) > 1 else 0
            operand = self.number(expr.args[0])

            def rounded(ctx: _Ctx) -> np.ndarray:
                # values.round_half_even: Python's round() gives an int, so a zero result is +0.0 (hence + 0.0).
                x = operand(ctx)
                if digits >= 0:
                    scale = 10.0**digits
                    return _finite((np.rint(x * scale) + 0.0) / scale)
                unit = 10.0**-digits
                return _finite((np.rint(x / unit) + 0.0) * unit)

            return rounded
        args = [self.number(a) for a in expr.args]
        if func in ("min", "max"):
            better = np.less if func == "min" else np.greater

            def extreme(ctx: _Ctx) -> np.ndarray:
                # Python's min/max keep the first extreme element (min(0.0, -0.0) is 0.0): a strict test.
                # A null argument makes the result null: taking it carries its NaN.
                values = [a(ctx) for a in args]
                out = values[0]
                for v in values[1:]:
                    out = np.where(better(v, out) | np.isnan(v), v, out)
                return ctx.full(out)

            return extreme
        if func == "abs":
            return lambda ctx: np.abs(args[0](ctx))
        if func == "days_between":
            return lambda ctx: ctx.full(args[1](ctx) - args[0](ctx))
        raise NotImplementedError(f"no vector form for {func}()")

    def _path(self, expr: Path, key: tuple) -> _Value:
        decl = self.schema.fields.get((expr.fact, expr.name))
        if decl is None:
            raise NotImplementedError(f"unknown field {expr.dotted}")
        fact, name, kind = expr.fact, expr.name, decl.type
        if decl.derived is not None:
            inner = self.value(decl.derived)
            if kind in ("enum", "string"):
                if inner.kind == "const":
                    text = str(inner.const)
                    code = self.string_code(text) if kind == "string" else float(decl.values.index(text))
                    fn = _memo(key, lambda ctx: ctx.full(code))
                    objects = _memo((*key, "objects"), lambda ctx: np.full(ctx.n, text, dtype=object))
                    return _Value("code", fn, vocab=decl.values, text=kind == "string", objects=objects)
                if inner.kind != "code" or (kind == "enum" and inner.vocab != decl.values):
                    raise NotImplementedError(f"derived field {expr.dotted}")
                assert inner.fn is not None
                return _Value("code", _memo(key, inner.fn), vocab=inner.vocab, text=inner.text, objects=inner.objects)
            operand = self.number_of(inner)
            return _Value("num", _memo(key, lambda ctx: ctx.full(operand(ctx))))
        if kind == "enum":
            lookup = {v: float(i) for i, v in enumerate(decl.values)}
            codes = _memo(key, lambda ctx: ctx.columns._codes(fact, name, lookup, True))
            return _Value("code", codes, vocab=decl.values)
        if kind == "string":
            strings = self.strings  # complete once the plan is compiled, before any run
            codes = _memo(key, lambda ctx: ctx.columns._codes(fact, name, strings, False))
            return _Value("code", codes, text=True, objects=lambda ctx: ctx.columns._objects(fact, name))
        return _Value("num", _memo(key, lambda ctx: ctx.columns._numbers(fact, name, kind)))

    def _name(self, expr: Name) -> _Value:
        name = expr.name
        decl = self.schema.conclusion(name)
        if decl is None:
            raise NotImplementedError(f"unknown conclusion {name}")
        kind = _output_kind(decl)
        if kind == "list":
            return _Value("list", lambda ctx: ctx.listed(name))
        if kind == "num":
            return _Value("num", lambda ctx: ctx.conclusion(name))
        if decl.type == "enum":
            return _Value("code", lambda ctx: ctx.conclusion(name), vocab=decl.values)
        strings = self.strings

        def objects(ctx: _Ctx) -> np.ndarray:
            texts = np.array([*strings, None], dtype=object)
            codes = ctx.conclusion(name)
            return texts[np.where(np.isnan(codes), -1, codes).astype(np.intp)]

        return _Value("code", lambda ctx: ctx.conclusion(name), text=True, objects=objects)

    # conditions --------------------------------------------------------------------------------------

    def mask(self, expr: Expr, positive: bool) -> Fn:
        """The mask of cases where `expr` is true (positive) or false (not positive), as a function."""
        found = self.truth(expr, positive)
        if isinstance(found, bool):
            return lambda ctx: ctx.constant_mask(found)
        return found

    def truth(self, expr: Expr, positive: bool) -> Any:
        """Like `mask`, but a condition that never depends on the case is a plain bool."""
        key = ("truth", positive, _key(expr))
        if key not in self._truths:
            self._truths[key] = self._compile_truth(expr, positive, key)
        self._used(self._truths[key])
        return self._truths[key]

    def _compile_truth(self, expr: Expr, positive: bool, key: tuple) -> Any:
        if not _reads(expr):
            return compile_truth(expr)({}, {}) is positive
        if isinstance(expr, BoolOp):
            # Kleene logic keeps De Morgan: "not (a and b)" is true exactly where a or b is false.
            every = (expr.op == "and") == positive
            return self._junction([self.truth(item, positive) for item in expr.items], every, key)
        if isinstance(expr, Not):
            return self.truth(expr.operand, not positive)
        if isinstance(expr, Compare):
            return self._compare(expr, positive, key)
        if isinstance(expr, Membership):
            return self._membership(expr, positive, key)
        if isinstance(expr, Call) and expr.func in ("present", "missing"):
            known = self.known(self.value(expr.args[0]))
            if (expr.func == "present") == positive:
                return known
            return _memo(key, lambda ctx: ~known(ctx))
        # A boolean field used as a condition: bool(value), unknown when missing.
        value = self.number(expr)
        if positive:

            def holds(ctx: _Ctx) -> np.ndarray:
                v = value(ctx)
                return (v != 0) & ~np.isnan(v)

            return _memo(key, holds)
        return _memo(key, lambda ctx: value(ctx) == 0)

    @staticmethod
    def _junction(parts: list[Any], every: bool, key: tuple) -> Any:
        functions = []
        for part in parts:
            if isinstance(part, bool):
                if part != every:
                    return part  # a false item decides a conjunction, a true one a disjunction
                continue
            functions.append(part)
        if not functions:
            return every
        if len(functions) == 1:
            return functions[0]
        combine = np.logical_and if every else np.logical_or

        def junction(ctx: _Ctx) -> np.ndarray:
            out = combine(functions[0](ctx), functions[1](ctx))
            for f in functions[2:]:
                combine(out, f(ctx), out=out)
            return out

        return _memo(key, junction)

    def known(self, value: _Value) -> Fn:
        if value.kind == "const":
            present = value.const is not None
            return lambda ctx: ctx.constant_mask(present)
        assert value.fn is not None
        if value.kind == "list":
            return value.fn
        fn = value.fn
        node = _memo(("known", getattr(fn, "key", id(fn))), lambda ctx: ~np.isnan(fn(ctx)))
        self._used(node)
        return node

    def literal_code(self, text: Any, subject: _Value) -> float:
        """A literal compared with an enum or a text, in the subject's codes."""
        if not isinstance(text, str):
            raise NotImplementedError("comparing an enum or text with a non-text")
        if subject.text:
            return self.string_code(text)
        if text not in subject.vocab:
            raise NotImplementedError(f"{text!r} is not a value of the enum")
        return float(subject.vocab.index(text))

    def _code_operand(self, value: _Value, other: _Value) -> Fn:
        """An operand compared with an enum or string: its codes, or a literal in the other side's codes."""
        if value.kind == "code":
            if other.kind == "code" and not value.text and value.vocab != other.vocab:
                raise NotImplementedError("comparing enums with different values")
            assert value.fn is not None
            return value.fn
        if value.kind != "const":
            raise NotImplementedError("comparing an enum or text with a number")
        code = self.literal_code(value.const, other)
        return lambda ctx: code

    def _compare(self, expr: Compare, positive: bool, key: tuple) -> Any:
        left, right = self.value(expr.left), self.value(expr.right)
        op = expr.op if positive else _NEGATED[expr.op]
        if "list" in (left.kind, right.kind):
            raise NotImplementedError("comparing a list conclusion")
        if any(v.kind == "const" and v.const is None for v in (left, right)):
            return False  # null on either side: unknown, neither true nor false
        if "code" in (left.kind, right.kind):
            if left.kind == right.kind == "code" and left.text and right.text:
                return _memo(key, self._compare_texts(left, right, op))
            a, b = self._code_operand(left, right), self._code_operand(right, left)
        else:
            a, b = self.number_of(left), self.number_of(right)
        compare = _COMPARE[op]
        if op != "!=":
            return _memo(key, lambda ctx: compare(a(ctx), b(ctx)))  # NaN compares False: unknown is not true

        def different(ctx: _Ctx) -> np.ndarray:
            x, y = a(ctx), b(ctx)
            return compare(x, y) & ~np.isnan(x) & ~np.isnan(y)

        return _memo(key, different)

    @staticmethod
    def _compare_texts(left: _Value, right: _Value, op: str) -> Fn:
        """Two non-literal texts: either may be a text the policy never mentions, so compare the texts."""
        assert left.fn and right.fn and left.objects and right.objects
        lcodes, rcodes, lobjects, robjects = left.fn, right.fn, left.objects, right.objects

        def compare(ctx: _Ctx) -> np.ndarray:
            known = ~np.isnan(lcodes(ctx)) & ~np.isnan(rcodes(ctx))
            same = np.asarray(lobjects(ctx) == robjects(ctx), dtype=bool)
            return (same if op == "==" else ~same) & known

        return compare

    def _membership(self, expr: Membership, positive: bool, key: tuple) -> Any:
        subject = self.value(expr.left)
        items = [literal_value(i.value) for i in expr.right.items]
        if subject.kind == "code":
            choices = [self.literal_code(v, subject) for v in items]
        elif subject.kind == "num":
            choices = [_as_float(v) for v in items]
        else:
            raise NotImplementedError("membership of a list conclusion")
        choices = list(dict.fromkeys(choices))
        values = subject.fn
        assert values is not None
        member = (not expr.negated) == positive

        def membership(ctx: _Ctx) -> np.ndarray:
            v = values(ctx)
            hit = np.zeros(ctx.n, dtype=bool)
            for choice in choices:
                hit |= v == choice
            return hit if member else ~hit & ~np.isnan(v)

        return _memo(key, membership)


# ----------------------------------------------------------------------------------------------------
# The plan


@dataclass
class _Emit:
    output: str
    kind: str  # "number", "texts", "alerts", "constant", or "none" (contributes nothing)
    number: Fn | None = None
    constant: Any = None
    code: float = math.nan  # enum and string constants as codes
    texts: tuple[Template, ...] = ()
    alerts: tuple[tuple[str, str, Template], ...] = ()
    static: float | None = None  # the value of a constant number


@dataclass
class _Act:
    index: int
    key: str
    ruleset: str
    stratum: int
    truth: Any  # bool or Fn
    emits: list[_Emit]


@dataclass
class _Output:
    name: str
    decl: OutputDecl
    level: int
    step: int  # position among the outputs combined after its stratum (evaluate's order)
    contributors: list[tuple[int, int]]  # (activation, emit), in source order
    exact_sum: bool = False
    site: int = -1  # error site of a unique combine


@dataclass
class _Bin:
    points: float
    missing: bool
    otherwise: bool
    test: Fn | None


def _assignments(unit: CompiledPolicy) -> dict[str, tuple[Assignment, ...]]:
    """The `then` of every rule and row by activation key: numeric outputs need their expressions."""
    out: dict[str, tuple[Assignment, ...]] = {}
    for ruleset in unit.rulesets:
        for rule in ruleset.rules:
            out[rule.id] = rule.then
        for table in ruleset.tables:
            for row in table.rows:
                out[table.row_key(row)] = row.then
    return out


def _exact_constants(values: list[float]) -> bool:
    """Whether every partial sum of these constants, in any order, is exact: then plain addition is fsum."""
    if not values:
        return True
    denominator = max(Fraction(v).denominator for v in values)  # powers of two
    return sum(abs(Fraction(v)) for v in values) * denominator < 2**53


class VectorPlan:
    """A compiled policy as column operations; compile once, then `run` chunk after chunk."""

    def __init__(self, unit: CompiledPolicy) -> None:
        self.unit = unit
        schema = unit.schema
        compiler = self._compiler = _Compiler(unit)
        self._scorecard = self._compile_scorecard()
        assignments = _assignments(unit)
        self._acts: list[_Act] = []
        for index, activation in enumerate(unit.activations):
            truth = compiler.truth(activation.condition, True) if activation.condition is not None else True
            then = assignments.get(activation.key, ())
            if len(then) != len(activation.emits):
                raise NotImplementedError(f"cannot find the outputs of {activation.key}")
            emits = [self._emit(activation.key, j, emit, then[j]) for j, emit in enumerate(activation.emits)]
            self._acts.append(_Act(index, activation.key, activation.ruleset, activation.stratum, truth, emits))
        # The trace lists what fired stratum by stratum, each in source order.
        self._trace_order = sorted(range(len(self._acts)), key=lambda i: (unit.activations[i].stratum, i))

        # Hit policies, per stratum: rows of a table share its stratum.
        self._first: list[list[list[int]]] = [[] for _ in range(unit.strata)]
        self._unique: list[list[tuple[int, list[int]]]] = [[] for _ in range(unit.strata)]
        self._sites: list[tuple[str, int, int, str]] = []  # (kind, stratum, step, table or output)
        self._site_rows: dict[int, list[int]] = {}  # a unique table's rows, by its error site
        tables: dict[str, list[int]] = {}
        for index, activation in enumerate(unit.activations):
            if activation.hit in ("first", "unique"):
                tables.setdefault(activation.table or "", []).append(index)
        hit_of: dict[int, str] = {}
        for table, rows in tables.items():
            rows.sort(key=lambda i: unit.activations[i].row)
            hit = unit.activations[rows[0]].hit
            stratum = unit.activations[rows[0]].stratum
            for i in rows:
                hit_of[i] = hit or ""
            if hit == "first":
                self._first[stratum].append(rows)
            else:
                self._unique[stratum].append((len(self._sites), rows))
                self._site_rows[len(self._sites)] = rows
                self._sites.append(("table", stratum, -1, table))

        self._plain: list[list[int]] = [[] for _ in range(unit.strata)]  # rules, and rows of unique/collect tables
        for index, activation in enumerate(unit.activations):
            if hit_of.get(index) != "first":
                self._plain[activation.stratum].append(index)

        # Outputs, combined after their level's stratum in evaluate's order.
        contributors: dict[str, list[tuple[int, int]]] = {}
        for index, act in enumerate(self._acts):
            for j, emit in enumerate(act.emits):
                contributors.setdefault(emit.output, []).append((index, j))
        self._levels: list[list[_Output]] = [[] for _ in range(unit.strata)]
        self._outputs: dict[str, _Output] = {}
        for level in range(unit.strata):
            for step, name in enumerate(unit.combine_at[level]):
                decl = schema.outputs.get(name)
                if decl is None:
                    continue  # a conclusion nobody writes (score): evaluate keeps what is there
                out = _Output(name, decl, level, step, sorted(contributors.get(name, []), key=lambda c: c[0]))
                if decl.combine == "sum":
                    emits = [self._acts[a].emits[e] for a, e in out.contributors]
                    out.exact_sum = all(e.kind == "number" and e.static is not None for e in emits) and (
                        _exact_constants([e.static for e in emits if e.static is not None and e.static == e.static])
                    )
                if decl.combine == "unique":
                    out.site = len(self._sites)
                    self._sites.append(("output", level, step, name))
                self._levels[level].append(out)
                self._outputs[name] = out
        self._requested = (
            compiler.number(unit.policy.requested_limit) if unit.policy and unit.policy.requested_limit else None
        )
        self._check_decision_outputs()
        # Reason codes in source order, then the system codes.
        codes: dict[str, None] = {}
        reasons = self._outputs.get("reasons")
        for a, e in reasons.contributors if reasons else ():
            emit = self._acts[a].emits[e]
            if emit.kind == "constant":
                for code in emit.constant if isinstance(emit.constant, tuple) else (emit.constant,):
                    codes.setdefault(code)
        self._reason_codes = [*codes, *(c for c in ("R-DEFAULT", "R-ERROR") if c not in codes)]
        self._readers = {key: count for key, count in compiler.uses.items() if count > 1}
        # Every field, derived ones included, so decision(i) can render any text without compiling later.
        self._fields = {(fact, name): compiler.value(Path(NO_SPAN, fact, name)) for fact, name in schema.fields}
        self._string_list = list(compiler.strings)

    def _compile_scorecard(self) -> list[tuple[Any, _Value, list[_Bin], int | None]]:
        unit, compiler = self.unit, self._compiler
        if unit.scorecard is None:
            return []
        out = []
        models = unit.scorecard.characteristics
        if len(models) != len(unit.characteristics):
            raise NotImplementedError("scorecard characteristics do not match the compiled ones")
        for model, compiled in zip(models, unit.characteristics, strict=True):
            if model.field.dotted != compiled.field or len(model.bins) != len(compiled.bins):
                raise NotImplementedError(f"scorecard characteristic {compiled.field} does not match")
            bins = [
                _Bin(float(b.points), b.missing, b.otherwise, compiler.mask(b.test, True) if b.test else None)
                for b in model.bins
            ]
            otherwise = next((j for j, b in enumerate(model.bins) if b.otherwise), None)
            out.append((compiled, compiler.value(model.field), bins, otherwise))
        return out

    def _emit(self, key: str, j: int, emit: Emit, assignment: Assignment) -> _Emit:
        decl = self.unit.schema.outputs[emit.output]
        if emit.output != assignment.output:
            raise NotImplementedError(f"cannot find output {emit.output} of {key}")
        if emit.number is not None:
            value = self._compiler.value(assignment.number_expr())
            if value.kind == "const":
                constant = _as_float(value.const)
                return _Emit(emit.output, "number", lambda ctx: constant, static=constant)
            fn = self._compiler.number_of(value)
            return _Emit(emit.output, "number", fn)
        if emit.texts:
            return _Emit(emit.output, "texts", texts=emit.texts)
        if emit.alerts:
            return _Emit(emit.output, "alerts", alerts=emit.alerts)
        if emit.constant is None:
            return _Emit(emit.output, "none")
        code = math.nan
        if decl.type == "enum" and isinstance(emit.constant, str):
            code = float(decl.values.index(emit.constant))
        elif decl.type == "string" and isinstance(emit.constant, str):
            code = self._compiler.string_code(emit.constant)
        return _Emit(emit.output, "constant", constant=emit.constant, code=code)

    def _check_decision_outputs(self) -> None:
        outputs = self.unit.schema.outputs
        decision = outputs.get("decision")
        if decision is None or decision.type != "enum" or not set(decision.values) <= set(DECISIONS):
            raise NotImplementedError("the vector back-end needs decision to be an enum of approve, refer, decline")
        tier = outputs.get("tier")
        if tier is None or tier.type != "enum" or _output_kind(tier) != "code":
            raise NotImplementedError("the vector back-end needs tier to be a single enum")
        for name in ("limit_cap", "rate_add_bps"):
            decl = outputs.get(name)
            if decl is None or _output_kind(decl) != "num":
                raise NotImplementedError(f"the vector back-end needs {name} to be a single number")
        for name in ("reasons",):
            decl = outputs.get(name)
            if decl is None or decl.type != "reasons":
                raise NotImplementedError("the vector back-end needs reasons to be reason codes")
        self._decision_index = np.array([DECISIONS.index(v) for v in decision.values], dtype=np.int8)

    # running -----------------------------------------------------------------------------------------

    def run(self, columns: Columns, as_of: dt.date | None = None) -> VectorResult:
        """Decide every case of the chunk. `as_of` only stamps the decisions, as in `decide`."""
        ctx = _Ctx(self, columns)
        n, unit = ctx.n, self.unit
        fired = np.zeros((n, len(self._acts)), dtype=bool, order="F")  # a column per activation, contiguous
        alive = np.ones(n, dtype=bool)  # not failed yet: a failure stops a case where evaluate stops it
        site = np.full(n, -1, dtype=np.int16)
        with np.errstate(all="ignore"):
            chosen, pd = self._score(ctx)
            for stratum in range(unit.strata):
                self._stratum(ctx, stratum, fired, alive, site)
                for out in self._levels[stratum]:
                    conflict = self._combine(ctx, out, fired, alive)
                    if conflict is not None and conflict.any():
                        site[conflict] = out.site
                        alive &= ~conflict
            result = self._decide(ctx, fired, site, pd, as_of or dt.date.today())
        ctx.memo.clear()  # decision(i) evaluates what it needs on its own row
        result._state = _State(self, ctx, chosen, site)
        return result

    def _score(self, ctx: _Ctx) -> tuple[list[np.ndarray], np.ndarray]:
        """evaluate.score: the first bin that takes each value, summed in characteristic order.

        Returns each characteristic's chosen bin as int8 (bin index + 1, 0 when unbinned) and the pd.
        """
        n = ctx.n
        chosen: list[np.ndarray] = []
        scorecard = self.unit.scorecard
        if scorecard is None:
            return chosen, ctx.missing()
        scaling = scorecard.scaling
        total = np.full(n, float(scaling.base_points))
        integral = float(scaling.base_points).is_integer()
        for _, value, bins, otherwise in self._scorecard:
            assert value.fn is not None  # a characteristic is a field
            missing = np.isnan(value.fn(ctx))
            # Bin numbers by integer arithmetic on masks: np.where on a float column costs ten times more.
            pick = np.zeros(n, dtype=np.int8)
            taken = np.zeros(n, dtype=bool)
            for j, b in enumerate(bins):
                if b.missing:
                    takes = missing
                elif b.test is not None:
                    takes = b.test(ctx) & ~missing
                else:
                    continue
                pick += (takes & ~taken).view(np.int8) * np.int8(j + 1)
                taken |= takes
            if otherwise is not None:
                pick += (~taken).view(np.int8) * np.int8(otherwise + 1)
            total += np.array([0.0] + [b.points for b in bins])[pick]  # 0 points when unbinned
            chosen.append(pick)
            integral = integral and all(b.points.is_integer() for b in bins)
        ctx.conclusions["score"] = total
        ctx.conclusions["pd"] = pd = self._pd(total, integral)
        ctx.conclusions["score_reasons"] = ctx.constant_mask(True)
        return chosen, pd

    def _pd(self, total: np.ndarray, integral: bool) -> np.ndarray:
        """pd computed by Python for each distinct score: numpy's pow may differ from libm's in the last bit."""
        scaling = self.unit.scorecard.scaling  # type: ignore[union-attr]

        def pd(score: float) -> float:
            odds = scaling.base_odds * 2.0 ** ((score - scaling.base_points) / scaling.pdo)
            return 1.0 / (1.0 + odds)

        if total.size == 0:
            return total.copy()
        if integral:  # scores are whole: a table indexed by the score, no sort
            low, high = float(total.min()), float(total.max())
            if high - low <= 1_000_000:
                table = np.array([pd(low + k) for k in range(int(high - low) + 1)])
                return table[(total - low).astype(np.intp)]
        distinct, inverse = np.unique(total, return_inverse=True)
        return np.array([pd(float(s)) for s in distinct])[inverse.reshape(-1)]

    def _stratum(self, ctx: _Ctx, stratum: int, fired: np.ndarray, alive: np.ndarray, site: np.ndarray) -> None:
        """Match this stratum's rules and rows, then apply the hit policies (evaluate._resolve)."""
        masks: dict[int, np.ndarray] = {}

        def mask(index: int) -> np.ndarray:
            if index not in masks:
                truth = self._acts[index].truth
                masks[index] = ctx.constant_mask(truth) if isinstance(truth, bool) else truth(ctx)
            return masks[index]

        # A unique table with two true rows fails the case before anything of this stratum resolves.
        for error_site, rows in self._unique[stratum]:
            seen = np.zeros(ctx.n, dtype=bool)
            conflict = np.zeros(ctx.n, dtype=bool)
            for index in rows:
                conflict |= seen & mask(index)
                seen |= mask(index)
            conflict &= alive
            if conflict.any():
                site[conflict] = error_site
                alive &= ~conflict
        for rows in self._first[stratum]:
            # The lowest true row; an unknown row does not block a later one.
            taken = np.zeros(ctx.n, dtype=bool)
            for index in rows:
                column = fired[:, index]
                np.logical_and(mask(index), ~taken, out=column)
                column &= alive
                taken |= mask(index)
        for index in self._plain[stratum]:
            np.logical_and(mask(index), alive, out=fired[:, index])

    def _contributions(self, ctx: _Ctx, out: _Output, fired: np.ndarray) -> list[tuple[np.ndarray, Any]]:
        """(where it fired, its value) for each writer in source order; a number may be NaN (no contribution)."""
        found = []
        for a, e in out.contributors:
            emit = self._acts[a].emits[e]
            if emit.kind == "number":
                assert emit.number is not None
                value = emit.number(ctx)
                if not (isinstance(value, float) and value != value):
                    found.append((fired[:, a], value))
            elif emit.kind != "none":
                found.append((fired[:, a], emit.code))
        return found

    def _combine(self, ctx: _Ctx, out: _Output, fired: np.ndarray, alive: np.ndarray) -> np.ndarray | None:
        """evaluate._combine for every case at once; returns the cases a unique conflict fails."""
        decl, n = out.decl, ctx.n
        combine = decl.combine
        if _output_kind(decl) == "list":
            ctx.conclusions[out.name] = alive.copy()  # set (possibly empty) for every case that got here
            return None
        contributions = self._contributions(ctx, out, fired)
        conflict = None
        if combine in ("worst", "best"):
            result = self._rank(ctx, out, contributions)
        elif combine in ("min", "max"):
            result = _extreme(contributions, n, np.fmin if combine == "min" else np.fmax)
        elif combine == "sum":
            result = self._sum(contributions, n, out.exact_sum)
        elif combine == "unique":
            result = _extreme(contributions, n, np.fmin)
            highest = _extreme(contributions, n, np.fmax)
            conflict = (result != highest) & ~np.isnan(result)  # 0.0 and -0.0 are one value, as in a dict
            conflict &= alive
            if conflict.any():
                result[conflict] = np.nan
        else:
            raise NotImplementedError(f"combine {combine} of {decl.type} output {out.name}")
        if not alive.all():
            result[~alive] = np.nan
            if out.name in ctx.ranks:
                ctx.ranks[out.name][~alive] = -1
        ctx.conclusions[out.name] = result
        return conflict

    @staticmethod
    def _rank(ctx: _Ctx, out: _Output, contributions: list[tuple[np.ndarray, Any]]) -> np.ndarray:
        """worst / best: the largest weight wins, weights 1..K (worst: rank + 1; best: K - rank), 0 for none."""
        size = len(out.decl.values)
        worst = out.decl.combine == "worst"
        weights: dict[int, np.ndarray] = {}
        for column, code in contributions:
            weight = int(code) + 1 if worst else size - int(code)
            weights[weight] = column | weights[weight] if weight in weights else column
        wide = np.int16 if size > 126 else np.int8
        best = np.zeros(ctx.n, dtype=wide)
        for weight, column in weights.items():
            np.maximum(best, column.view(np.int8).astype(wide, copy=False) * wide(weight), out=best)
        codes = [-1] + [w - 1 if worst else size - w for w in range(1, size + 1)]
        ctx.ranks[out.name] = np.array(codes, dtype=wide)[best]  # the codes as integers, -1 for none
        return np.array([math.nan] + [float(c) for c in codes[1:]])[best]

    @staticmethod
    def _sum(contributions: list[tuple[np.ndarray, Any]], n: int, exact: bool) -> np.ndarray:
        """math.fsum of the contributions (0.0 for none): the correctly rounded sum."""
        total = np.zeros(n)  # starting at +0.0 keeps -0.0 out, as fsum does

        def term(column: np.ndarray, value: Any) -> np.ndarray:
            if isinstance(value, float):
                return column * value  # False * value is a zero: adding it changes nothing
            return np.where(column & ~np.isnan(value), value, 0.0)

        if exact:
            for column, value in contributions:
                total += term(column, value)
            return total
        terms = [term(column, value) for column, value in contributions]
        # Add in order and notice, by the error-free TwoSum, where any addition rounded; redo those exactly.
        inexact = np.zeros(n, dtype=bool)
        for term in terms:
            new = total + term
            back = new - total
            inexact |= (total - (new - back)) + (term - back) != 0.0
            total = new
        rows = np.flatnonzero(inexact)
        if rows.size:
            total[rows] = _fsum_rows(np.column_stack([t[rows] for t in terms]))
        return total

    def _decide(self, ctx: _Ctx, fired: np.ndarray, site: np.ndarray, pd: np.ndarray, as_of: dt.date) -> VectorResult:
        """evaluate._State.decision as arrays."""
        unit, n = self.unit, ctx.n
        failed = site >= 0
        any_failed = bool(failed.any())
        decision = self._integer_codes(ctx, "decision")
        decided = decision >= 0
        default = DECISIONS.index(unit.defaults.get("decision", "refer"))
        outcome = np.array([*self._decision_index.tolist(), default], dtype=np.int8)[decision]  # -1: the default
        tier_values = unit.schema.outputs["tier"].values
        default_tier = unit.defaults.get("tier")
        wide = np.int8 if len(tier_values) < 128 else np.int16
        tiers = [*range(len(tier_values)), -1 if default_tier is None else tier_values.index(default_tier)]
        tier = np.array(tiers, dtype=wide)[self._integer_codes(ctx, "tier")]
        if any_failed:
            outcome[failed] = DECISIONS.index(unit.on_error)
            tier[failed] = -1

        priced = ~failed & (outcome != _DECLINE)
        keep = np.array([math.nan, 1.0])[priced.view(np.uint8)]  # x * keep: x, or NaN where not priced
        cap = ctx.conclusion("limit_cap")
        if unit.defaults.get("limit_cap") is not None:
            cap = np.nan_to_num(cap, nan=float(unit.defaults["limit_cap"]))  # type: ignore[arg-type]
        if self._requested is not None:
            # min([requested, cap]) without nulls; on a tie the requested amount (its zero's sign) stays.
            requested = ctx.full(self._requested(ctx))
            limit = _first_extreme([requested, cap], np.fmin)
        else:
            limit = cap.copy()
        limit *= keep
        if unit.base_rate is not None:
            rate = (unit.base_rate + np.nan_to_num(ctx.conclusion("rate_add_bps"), nan=0.0) / 10000.0) * keep
        else:
            rate = ctx.missing().copy()

        reasons = np.zeros((n, len(self._reason_codes)), dtype=bool, order="F")
        column_of = {code: j for j, code in enumerate(self._reason_codes)}
        out = self._outputs.get("reasons")
        for a, e in out.contributors if out else ():
            emit = self._acts[a].emits[e]
            if emit.kind == "constant":
                for code in emit.constant if isinstance(emit.constant, tuple) else (emit.constant,):
                    reasons[:, column_of[code]] |= fired[:, a]
        if any_failed:
            reasons[failed, :] = False
        reasons[:, column_of["R-DEFAULT"]] |= ~failed & ~decided & (outcome != DECISIONS.index("approve"))
        reasons[:, column_of["R-ERROR"]] |= failed
        return VectorResult(
            n=n,
            outcome=outcome,
            tier=tier,
            score=ctx.conclusion("score").copy(),
            pd=pd.copy(),
            limit=limit,
            rate=rate,
            fired=fired,
            reasons=reasons,
            reason_codes=list(self._reason_codes),
            error=failed,
            as_of=as_of,
        )

    @staticmethod
    def _integer_codes(ctx: _Ctx, name: str) -> np.ndarray:
        """An enum conclusion as integer codes, -1 for none."""
        found = ctx.ranks.get(name)
        if found is not None:
            return found
        codes = ctx.conclusion(name)
        return np.nan_to_num(codes, nan=-1.0).astype(np.int16)


def _negative_zero(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return bool(np.any(np.signbit(value) & (value == 0.0)))
    return value == 0.0 and math.copysign(1.0, value) < 0


_KEEP = np.array([math.nan, 1.0])  # indexed by a mask: 1.0 where it holds, NaN elsewhere


def _extreme(contributions: list[tuple[np.ndarray, Any]], n: int, pick: Callable[..., np.ndarray]) -> np.ndarray:
    """min or max over what contributes, in source order (NaN when nothing does): Python's min/max."""
    values = contributions
    if not values:
        return np.full(n, np.nan)
    result = _KEEP[values[0][0].view(np.uint8)]
    result *= values[0][1]  # x * 1.0 keeps -0.0
    for column, value in values[1:]:
        scratch = _KEEP[column.view(np.uint8)]  # fancy indexing: np.take(out=) is several times slower
        scratch *= value
        pick(result, scratch, out=result)
    return _zero_ties(result, values)


def _first_extreme(values: list[np.ndarray], pick: Callable[..., np.ndarray]) -> np.ndarray:
    """fmin / fmax of columns, ignoring NaN; zero ties as Python's min and max break them."""
    result = values[0].copy()
    for v in values[1:]:
        pick(result, v, out=result)
    return _zero_ties(result, [(None, v) for v in values])


def _zero_ties(result: np.ndarray, values: list[tuple[np.ndarray | None, Any]]) -> np.ndarray:
    """Where the extreme is zero, the first zero in source order wins: min(0.0, -0.0) is 0.0 and
    min(-0.0, 0.0) is -0.0 in Python, while np.fmin may return either."""
    if not any(_negative_zero(value) for _, value in values):
        return result  # only +0.0 in sight: any zero the extreme found is +0.0
    rows = np.flatnonzero(result == 0.0)
    if rows.size:
        first = np.full(rows.size, np.nan)
        for column, value in values:
            at = value[rows] if isinstance(value, np.ndarray) else np.full(rows.size, value)
            take = np.isnan(first) & (at == 0.0)
            if column is not None:
                take &= column[rows]
            first[take] = at[take]
        result[rows] = first
    return result


def _fsum_rows(values: np.ndarray) -> np.ndarray:
    """math.fsum of each row, vectorised over rows: Shewchuk's partials, then fsum's rounding of them.

    Partials stay in fixed slots (a zero slot is a no-op for the next addition), so the nonzero slots
    are exactly fsum's list; they are compacted before the final round-half-even correction.
    """
    rows, k = values.shape
    partials = np.zeros((rows, k))
    for j in range(k):
        x = values[:, j].copy()
        for i in range(j):
            y = partials[:, i]
            swap = np.abs(x) < np.abs(y)
            big, small = np.where(swap, y, x), np.where(swap, x, y)
            hi = big + small
            partials[:, i] = small - (hi - big)
            x = hi
        partials[:, j] = x
    order = np.argsort(partials == 0.0, axis=1, kind="stable")
    p = np.take_along_axis(partials, order, axis=1)
    count = np.count_nonzero(partials, axis=1)
    r = np.arange(rows)
    hi = np.where(count > 0, p[r, np.maximum(count - 1, 0)], 0.0)
    lo = np.zeros(rows)
    left = np.maximum(count - 1, 0)  # partials below hi
    going = left > 0
    while going.any():
        y = p[r, np.maximum(left - 1, 0)]
        s = hi + y
        low = y - (s - hi)
        hi = np.where(going, s, hi)
        lo = np.where(going, low, lo)
        left = np.where(going, left - 1, left)
        going &= (low == 0.0) & (left > 0)
    below = p[r, np.maximum(left - 1, 0)]
    halfway = (left > 0) & (((lo < 0) & (below < 0)) | ((lo > 0) & (below > 0)))
    y = lo * 2.0
    x = hi + y
    return np.where(halfway & (y == x - hi), x, hi)


# ----------------------------------------------------------------------------------------------------
# Results


@dataclass
class _State:
    """What a result keeps to explain one case: the plan, the run's columns and where each case failed."""

    plan: VectorPlan
    ctx: _Ctx
    chosen: list[np.ndarray]  # per characteristic: the chosen bin's index + 1 (0 unbinned)
    site: np.ndarray  # error site, -1 for none


@dataclass
class VectorResult:
    """The decisions of one chunk; `decision(i)` gives case i's full decision."""

    n: int
    outcome: np.ndarray  # int8: 0 approve, 1 refer, 2 decline (engine.outputs.DECISIONS order)
    tier: np.ndarray  # int8: index into the tier output's values, -1 missing
    score: np.ndarray  # float64, NaN = null
    pd: np.ndarray
    limit: np.ndarray
    rate: np.ndarray
    fired: np.ndarray  # bool (n, len(unit.activations)): what contributed, after hit policies
    reasons: np.ndarray  # bool (n, len(reason_codes)): codes in the decision's reasons
    reason_codes: list[str]
    error: np.ndarray  # bool: evaluation failed (a unique conflict), so the outcome is on_error
    as_of: dt.date = field(default_factory=dt.date.today)
    _state: _State | None = field(default=None, repr=False, compare=False)

    def decision(self, i: int) -> dict[str, Any]:
        """The decision of case i, equal to `decide(unit, case_i)` except that rules' `because` is []."""
        assert self._state is not None
        with np.errstate(all="ignore"):  # its derived fields and outputs are computed again, for its row
            return _Case(self, self._state, int(i)).decision()

    def conclusions(self, name: str) -> np.ndarray:
        """The combined value of any output (or score, pd, score_reasons) for every case.

        Numbers as float64 (NaN = null); enums as int8 index arrays (-1 = null); texts as an object
        array. List outputs (reasons, conditions, alerts, union and collect) are built per case, as an
        object array of lists: that is a Python loop over the chunk, meant for reports, not for `run`.
        """
        assert self._state is not None
        state = self._state
        plan, ctx = state.plan, state.ctx
        decl = plan.unit.schema.conclusion(name)
        if decl is None:
            raise KeyError(name)
        kind = _output_kind(decl)
        if kind == "list":
            out = np.empty(self.n, dtype=object)
            with np.errstate(all="ignore"):
                out[:] = [_Case(self, state, i).conclusion(name, plan.unit.strata) for i in range(self.n)]
            return out
        values = ctx.conclusion(name)
        if kind == "num":
            return values.copy()
        if decl.type == "enum":
            return np.where(np.isnan(values), -1, values).astype(np.int8 if len(decl.values) < 128 else np.int16)
        texts = np.array([*plan._string_list, None], dtype=object)
        return texts[np.where(np.isnan(values), -1, values).astype(np.intp)]


class _Case:
    """One case read back from the columns: its facts, conclusions, texts and trace, as evaluate shows them."""

    def __init__(self, result: VectorResult, state: _State, i: int) -> None:
        self.result, self.state, self.i = result, state, i
        self.plan, self.ctx = state.plan, state.ctx
        self.unit = self.plan.unit
        self.site = int(state.site[i])
        self.row = result.fired[i]
        self._emitted: dict[tuple[int, int], Any] = {}
        self._one: _Ctx | None = None

    @property
    def one(self) -> _Ctx:
        """The run's context narrowed to this case: derived fields and output values are computed again for
        this one row by the same nodes (elementwise numpy gives the same bits for one row as for many), so a
        result need not keep every intermediate column of the chunk."""
        if self._one is None:
            i = self.i
            columns = Columns(1, {key: np.asarray(v)[i : i + 1] for key, v in self.ctx.columns.values.items()})
            one = _Ctx(self.plan, columns)
            one.conclusions = {name: v[i : i + 1] for name, v in self.ctx.conclusions.items()}
            one.ranks = {name: v[i : i + 1] for name, v in self.ctx.ranks.items()}
            self._one = one
        return self._one

    # values of this case -----------------------------------------------------------------------------

    def fact(self, fact: str, name: str) -> Any:
        decl = self.unit.schema.fields.get((fact, name))
        if decl is None:
            return None
        value = self.plan._fields[(fact, name)]
        kind, one = decl.type, self.one
        if kind == "string" and value.objects is not None:
            assert value.fn is not None
            return None if math.isnan(value.fn(one)[0]) else value.objects(one)[0]
        assert value.fn is not None
        x = float(value.fn(one)[0])
        if math.isnan(x):
            return None
        if kind == "enum":
            return decl.values[int(x)]
        if kind == "boolean":
            return bool(x)
        if kind == "date":
            return dt.date.fromordinal(int(x))
        return x

    def combined(self, output: _Output) -> bool:
        """Whether evaluate had combined this output when the case finished (or failed)."""
        if self.site < 0:
            return True
        _, stratum, step, _ = self.plan._sites[self.site]
        return output.level < stratum or (output.level == stratum and output.step < step)

    def conclusion(self, name: str, before: int) -> Any:
        """The conclusion as rules of stratum `before` (or, with unit.strata, the decision) saw it."""
        unit = self.unit
        if name in SCORE_OUTPUTS and name not in unit.schema.outputs:
            return self._score_conclusion(name)
        out = self.plan._outputs.get(name)
        if out is None or out.level >= before or not self.combined(out):
            return None
        kind = _output_kind(out.decl)
        if kind == "list":
            return self.listed(out)[0]
        x = float(self.ctx.conclusion(name)[self.i])
        if math.isnan(x):
            return None
        if kind == "num":
            return x
        return out.decl.values[int(x)] if out.decl.type == "enum" else self.plan._string_list[int(x)]

    def _score_conclusion(self, name: str) -> Any:
        if self.unit.scorecard is None:
            return None
        if name == "score":
            return float(self.result.score[self.i])
        if name == "pd":
            return float(self.result.pd[self.i])
        losses = []
        for index, (char, _, bins, _) in enumerate(self.plan._scorecard):
            j = int(self.state.chosen[index][self.i]) - 1
            if j >= 0 and char.bins[j].reason and char.best - bins[j].points > 0:
                losses.append((char.best - bins[j].points, index, char.bins[j].reason))
        losses.sort(key=lambda x: (-x[0], x[1]))
        return list(dict.fromkeys(code for _, _, code in losses))[:4]

    def lookup(self, before: int) -> Callable[[str], Any]:
        """evaluate._lookup with the conclusions combined before stratum `before`."""

        def find(path: str) -> Any:
            if "." in path:
                value = self.fact(*path.split(".", 1))
            else:
                value = self.conclusion(path, before)
            return value.isoformat() if isinstance(value, dt.date) else value

        return find

    def emitted(self, a: int, e: int) -> Any:
        """evaluate._State._value: what activation a's emit e gives in this case (texts rendered then)."""
        if (a, e) not in self._emitted:
            act = self.plan._acts[a]
            emit = act.emits[e]
            value: Any
            if emit.kind == "number":
                assert emit.number is not None
                found = emit.static if emit.static is not None else emit.number(self.one)
                x = float(found if isinstance(found, float) else found[0])
                value = None if math.isnan(x) else x
            elif emit.kind == "texts":
                lookup = self.lookup(act.stratum)
                value = tuple(t.render(lookup) for t in emit.texts)
            elif emit.kind == "alerts":
                lookup = self.lookup(act.stratum)
                value = tuple({"code": c, "severity": s, "message": m.render(lookup)} for c, s, m in emit.alerts)
            else:
                value = emit.constant
            self._emitted[(a, e)] = value
        return self._emitted[(a, e)]

    def contributions(self, out: _Output) -> list[tuple[str, Any]]:
        found = []
        for a, e in out.contributors:
            if self.row[a]:
                value = self.emitted(a, e)
                if value is not None:
                    found.append((self.plan._acts[a].key, value))
        return found

    def listed(self, out: _Output) -> tuple[list[Any], dict[Any, str]]:
        """A union or collect output of this case, and for a union the first rule citing each item."""
        if out.decl.combine == "union":
            merged: dict[Any, None] = {}
            cited: dict[Any, str] = {}
            for key, value in self.contributions(out):
                for item in value if isinstance(value, tuple) else (value,):
                    if item not in merged:
                        merged[item] = None
                        cited[item] = key
            return list(merged), cited
        flat: list[Any] = []
        for _, value in self.contributions(out):
            flat.extend(value if isinstance(value, tuple) else (value,))
        return flat, {}

    # the decision ------------------------------------------------------------------------------------

    def decision(self) -> dict[str, Any]:
        unit, result, i = self.unit, self.result, self.i
        final = unit.strata
        failed = self.site >= 0
        outcome = DECISIONS[int(result.outcome[i])]
        reasons: list[dict[str, Any]] = []
        if not failed:
            out = self.plan._outputs.get("reasons")
            codes, cited = self.listed(out) if out is not None and self.combined(out) else ([], {})
            lookup = self.lookup(final)
            for code in codes:
                template = unit.reason_texts.get(code)
                reasons.append(
                    {"code": code, "text": template.render(lookup) if template else code, "rule": cited[code]}
                )
        if failed:
            reasons.append(
                {
                    "code": "R-ERROR",
                    "text": "The case could not be evaluated; the policy's on_error outcome applies",
                    "rule": None,
                }
            )
        elif self.conclusion("decision", final) is None and outcome in ("refer", "decline"):
            reasons.append(
                {"code": "R-DEFAULT", "text": "No rule decided the case; the policy's default applies", "rule": None}
            )
        tier_code = int(result.tier[i])
        conditions = None if failed else self.conclusion("conditions", final)
        alerts = None if failed else self.conclusion("alerts", final)
        decision: dict[str, Any] = {
            "outcome": outcome,
            "tier": None if tier_code < 0 else unit.schema.outputs["tier"].values[tier_code],
            "score": _number(self._score_conclusion("score")),
            "pd": self._score_conclusion("pd"),
            "limit": _number(_float_or_none(result.limit[i])),
            "rate": _float_or_none(result.rate[i]),
            "reasons": reasons,
            "conditions": [] if conditions is None else list(conditions),
            "alerts": [] if alerts is None else list(alerts),
            **unit.provenance(),
            "as_of": result.as_of.isoformat(),
            "engine": ENGINE_VERSION,
            "fired": self.score_trace() + [self.trace(a) for a in self.plan._trace_order if self.row[a]],
        }
        if unit.extra_outputs:
            decision["outputs"] = {name: _json_value(self.conclusion(name, final)) for name in unit.extra_outputs}
        if failed:
            decision["error"] = {"code": "unique-conflict", "message": self.error_message()}
        return decision

    def trace(self, a: int) -> dict[str, Any]:
        act = self.plan._acts[a]
        outputs = {emit.output: _json_value(self.emitted(a, e)) for e, emit in enumerate(act.emits)}
        return {"rule": act.key, "ruleset": act.ruleset, "outputs": outputs, "because": []}

    def score_trace(self) -> list[dict[str, Any]]:
        """evaluate.score's trace entries, complete: the chosen bin and the value it took."""
        scorecard = self.unit.scorecard
        if scorecard is None:
            return []
        trace = []
        for index, (char, _, _, _) in enumerate(self.plan._scorecard):
            j = int(self.state.chosen[index][self.i]) - 1
            chosen = char.bins[j] if j >= 0 else None
            value = self.fact(*char.field.split(".", 1))
            test = chosen.test if chosen is not None else "unbinned"
            trace.append(
                {
                    "rule": char.rule,
                    "ruleset": scorecard.name,
                    "outputs": {"points": _number(chosen.points if chosen is not None else 0.0)},
                    "because": [{"test": test, "values": {char.field: _json_value(value)}}],
                }
            )
        return trace

    def error_message(self) -> str:
        kind, _, _, name = self.plan._sites[self.site]
        if kind == "table":
            rows = []
            for a in self.plan._site_rows[self.site]:
                truth = self.plan._acts[a].truth
                if truth is True or (not isinstance(truth, bool) and truth(self.one)[0]):
                    rows.append(self.unit.activations[a].row)
            # evaluate names the first two rows it meets in a set; the vector path names the lowest two.
            return f"unique table {name} matched rows {rows[0]} and {rows[1]}"
        out = self.plan._outputs[name]
        keys = [key for key, _ in self.contributions(out)]
        return f"{name} has conflicting values from {', '.join(keys)}"


def _float_or_none(x: Any) -> float | None:
    value = float(x)
    return None if math.isnan(value) else value
