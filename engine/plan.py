"""The back-end-neutral match plan: what the planner hands to the durable_rules compiler.

A policy's rules and table rows become *activations*; each activation's
condition is in disjunctive normal form (a tuple of branches, each a tuple of
atomic tests). Every atomic test reads one field of one tagged fact:

* a case fact (`financials`, with its derived fields merged in),
* a conclusion fact (tag `conclusion_tag(name)`, field `value`), asserted once
  the stratum that writes it is quiescent, empty when no rule wrote it,
* a computed fact (tag `calc_tag(stratum)`), holding arithmetic that was
  evaluated in Python before assertion (`amount > 0.2 * capital` compares
  `application.amount` against a computed operand).

Values reaching an atom are already typed: numbers, strings, booleans; dates
are day ordinals (numbers). A missing value is an absent field: no atom on it
is true, which is exactly three-valued logic's "unknown does not fire".
"""

from __future__ import annotations

from dataclasses import dataclass

Value = float | int | str | bool

COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")
PRESENCE = ("present", "missing")


def conclusion_tag(name: str) -> str:
    return f"~c:{name}"


def calc_tag(stratum: int) -> str:
    return f"~calc{stratum}"


@dataclass(frozen=True)
class FieldRef:
    fact: str  # the fact's tag
    field: str


@dataclass(frozen=True)
class Atom:
    """`ref op value`, or `ref op other` (other is a field of the same fact), or presence."""

    ref: FieldRef
    op: str
    value: Value | None = None
    other: FieldRef | None = None


@dataclass(frozen=True)
class Branch:
    """A conjunction of atoms; no atoms means always true."""

    atoms: tuple[Atom, ...]


@dataclass(frozen=True)
class Activation:
    """One logical rule or table row: `key` is a rule id or `TABLE-ID/row` (1-based)."""

    key: str
    stratum: int
    order: int
    branches: tuple[Branch, ...]


@dataclass(frozen=True)
class Plan:
    name: str
    activations: tuple[Activation, ...]
    # Every fact tag that is asserted for each decision, for each stratum (0 = the case's facts).
    tags_by_stratum: tuple[tuple[str, ...], ...]
