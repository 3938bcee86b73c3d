"""The built-in output declarations (design section 4) and how policies extend them."""

from __future__ import annotations

from engine.model import OutputDecl

DECISIONS: tuple[str, ...] = ("approve", "refer", "decline")
TIERS: tuple[str, ...] = ("A", "B", "C", "D", "E")

STANDARD_OUTPUTS: dict[str, OutputDecl] = {
    o.name: o
    for o in (
        OutputDecl("decision", "enum", "worst", values=DECISIONS),
        OutputDecl("tier", "enum", "worst", values=TIERS),
        OutputDecl("reasons", "reasons", "union"),
        OutputDecl("limit_cap", "number", "min"),
        OutputDecl("rate_add_bps", "number", "sum"),
        OutputDecl("conditions", "strings", "union"),
        OutputDecl("alerts", "alerts", "collect"),
    )
}

# Conclusions a scorecard writes; rules may read them, no rule may write them.
SCORE_OUTPUTS: dict[str, OutputDecl] = {
    o.name: o
    for o in (
        OutputDecl("score", "number", "unique"),
        OutputDecl("pd", "number", "unique"),
        OutputDecl("score_reasons", "reasons", "union"),
    )
}

# Which combine rules make sense for which output type.
COMBINES_BY_TYPE: dict[str, tuple[str, ...]] = {
    "enum": ("worst", "best", "unique", "collect"),
    "number": ("min", "max", "sum", "unique", "collect"),
    "string": ("unique", "collect", "union"),
    "reasons": ("union",),
    "strings": ("union", "collect"),
    "alerts": ("collect",),
}
