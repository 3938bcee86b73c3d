"""Reason, condition and alert texts: `{path:format}` placeholders, filled in safely.

The text is parsed once into literal pieces and placeholders; rendering only
ever formats a number with a validated format spec or inserts a value as text.
Nothing is evaluated and no template engine sees author text. A missing value
renders as `n/a`; a value the spec cannot format renders plainly.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.errors import Problem, SourceSpan

PLACEHOLDER = re.compile(r"\{\{|\}\}|\{(?P<path>[^{}:]*)(?::(?P<spec>[^{}]*))?\}|[{}]")
PATH = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
# Python's format mini-language for numbers, without nested fields or conversions.
SPEC = re.compile(r"^(?:.?[<>=^])?[+\- ]?z?#?0?\d*[,_]?(?:\.\d+)?[eEfFgGn%d]?$")
MISSING_TEXT = "n/a"

Lookup = Callable[[str], object]


@dataclass(frozen=True)
class Template:
    pieces: tuple[str | tuple[str, str], ...]  # literal text, or (path, spec)
    # The whole text when it has no placeholder (most texts): rendering it is then just this string.
    literal: str | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.pieces) == 1 and isinstance(self.pieces[0], str):
            object.__setattr__(self, "literal", self.pieces[0])

    @property
    def paths(self) -> list[str]:
        return [p[0] for p in self.pieces if isinstance(p, tuple)]

    def render(self, lookup: Lookup) -> str:
        if self.literal is not None:
            return self.literal
        out = []
        for piece in self.pieces:
            if isinstance(piece, str):
                out.append(piece)
            else:
                out.append(render_value(lookup(piece[0]), piece[1]))
        return "".join(out)


def render_value(value: object, spec: str) -> str:
    if value is None:
        return MISSING_TEXT
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if spec:
            try:
                return format(value, spec)
            except (ValueError, TypeError):
                pass
        return format_number(value)
    return str(value)


def format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


def parse_template(text: str, span: SourceSpan) -> tuple[Template, list[Problem]]:
    pieces: list[str | tuple[str, str]] = []
    problems: list[Problem] = []
    position = 0
    for match in PLACEHOLDER.finditer(text):
        if match.start() > position:
            pieces.append(text[position : match.start()])
        position = match.end()
        token = match.group(0)
        where = span.shifted(match.start())
        if token in ("{{", "}}"):
            pieces.append(token[0])
        elif token in ("{", "}"):
            problems.append(Problem("text-brace", f"unmatched '{token}' in text", where, "write {{ or }} for a brace"))
        else:
            path, spec = match.group("path").strip(), match.group("spec") or ""
            if not PATH.match(path):
                problems.append(
                    Problem(
                        "text-placeholder",
                        f"'{{{path}}}' is not a field or conclusion",
                        where,
                        "placeholders look like {financials.dscr:.2f}",
                    )
                )
            elif spec and not SPEC.match(spec):
                problems.append(
                    Problem(
                        "text-format",
                        f"'{spec}' is not a number format",
                        where,
                        "use Python's format mini-language: .2f, .0%, ,",
                    )
                )
            else:
                pieces.append((path, spec))
    if position < len(text):
        pieces.append(text[position:])
    merged: list[str | tuple[str, str]] = []
    for piece in pieces:
        if isinstance(piece, str) and merged and isinstance(merged[-1], str):
            merged[-1] += piece
        else:
            merged.append(piece)
    return Template(tuple(merged) or ("",)), problems
