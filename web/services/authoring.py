"""What an author does with a version besides its lifecycle: check a text as it is typed, run its tests with
coverage, look at its tables, compare two versions, and try a case against it.

Each works on "the active rules with this version in place of its name": the library the version would join if it
were published, which is also what submit tests it against. Nothing here writes.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pony import orm

from audit.db import REPO
from engine.errors import CredoError, Problem, SourceSpan
from engine.evaluate import evaluate, reject
from engine.expr import to_text
from engine.library import Library
from engine.model import AnyDocument, FieldDecl, Policy, Ruleset, Scorecard
from engine.testing import run_tests
from web.models import RuleVersion
from web.services import rules
from web.services.active import parse_stored
from web.services.errors import Refused

EXAMPLES = REPO / "examples"
MAX_TEXT = 500_000


def check_text(text: str, ref: str | None) -> list[dict[str, Any]]:
    """Every problem in `text`, exactly as saving it would list them (the same analysis), as JSON.

    `ref` names the version being edited (its number keeps the spans' file names stable); a new document is
    numbered after the newest version of its name.
    """
    if len(text) > MAX_TEXT:
        return [Problem("too-long", f"the text is over {MAX_TEXT} characters", SourceSpan("<draft>", 1, 1)).to_dict()]
    number = 1
    name = None
    if ref:
        name, parsed = rules.parse_ref(ref)
        number = parsed or 1
    try:
        with orm.db_session:
            if name is not None:
                row = RuleVersion.get(name=name, number=number)
                if row is None or row.status not in rules.EDITABLE:
                    # Saving a published (immutable) version makes a new draft: check it as that draft.
                    name = None
            if name is None:
                _, found = rules._identify(text, "<draft>")
                newest = orm.max(v.number for v in RuleVersion if v.name == found)
                number = (newest or 0) + 1
                name = found
            # The very analysis save and submit run (rules._analyse): the editor never disagrees with a save.
            analysis = rules._analyse(text, name, number)
    except Refused as refusal:
        problems = refusal.problems or [Problem(refusal.code, refusal.message, SourceSpan("<draft>", 1, 1))]
        return [p.to_dict() for p in problems]
    return [p.to_dict() for p in analysis.problems]


def _active_docs() -> list[AnyDocument]:
    with orm.db_session:
        rows = orm.select(v for v in RuleVersion if v.status == "active").order_by(RuleVersion.name, RuleVersion.number)
        return [parse_stored(r.name, r.number, r.text, r.digest) for r in rows]


def load_version(ref: str) -> tuple[rules.VersionInfo, AnyDocument]:
    info = rules.show(ref)
    try:
        doc = parse_stored(info.name, info.number, info.text, info.digest)
    except CredoError as error:
        raise Refused("invalid-version", f"{info.ref} does not parse", "invalid", error.problems) from None
    return info, doc


def library_with(doc: AnyDocument) -> Library:
    """The active rules with `doc` in place of every active version of its name."""
    others = [d for d in _active_docs() if d.name != doc.name]
    try:
        return Library([*others, doc])
    except CredoError as error:
        raise Refused("library-conflict", "the version does not fit with the active rules", "invalid",
                      error.problems) from None


def policies_using(doc: AnyDocument, library: Library) -> list[str]:
    if isinstance(doc, Policy):
        return [doc.name]
    names = []
    for other in library.documents:
        if isinstance(other, Policy):
            refs = [*other.rulesets, *([other.scorecard] if other.scorecard else [])]
            if any(r.name == doc.name for r in refs):
                names.append(other.name)
    return sorted(set(names))


def policy_products(library: Library | None = None) -> dict[str, str]:
    """Each policy's declared product (its `product:`), from `library` or else the active rules."""
    docs = library.documents if library is not None else _active_docs()
    return {d.name: d.product for d in docs if isinstance(d, Policy)}


def policy_for_product(names: Sequence[str], products: dict[str, str], product: str | None) -> str | None:
    """The first of `names` whose policy is for `product`, else the first of `names`.

    A case goes under the policy of its product: under another one it is only referred with R-PRODUCT-MISMATCH,
    which is never what someone trying or simulating a version means.
    """
    if product:
        for name in names:
            if products.get(name) == product:
                return name
    return names[0] if names else None


# --- tests and coverage -----------------------------------------------------------------------------------------


@dataclass
class TestRun:
    results: list[dict[str, Any]]
    passed: int
    failed: int
    skipped: int
    covered: int
    total: int
    uncovered: list[dict[str, Any]]
    fired: list[str] = field(default_factory=list)

    @property
    def coverage(self) -> float | None:
        return self.covered / self.total if self.total else None


def run_version_tests(ref: str, as_of: dt.date | None = None) -> TestRun:
    _info, doc = load_version(ref)
    library = library_with(doc)
    if isinstance(doc, Scorecard):
        return TestRun([], 0, 0, 0, 0, 0, [])
    report = run_tests(library, [doc], as_of)
    results = [
        {
            "name": r.name,
            "status": r.status,
            "line": r.span.line,
            "messages": list(r.messages),
        }
        for r in report.results
    ]
    if isinstance(doc, Ruleset):
        keys = [a.key for a in library.compile_ruleset(doc).activations]
        uncovered = [{"key": k, "line": span.line} for name, k, span in report.uncovered if name == doc.name]
        fired = sorted(report.fired.get(doc.name, set()))
    else:
        day = as_of or doc.effective_from or dt.date.today()
        try:
            unit = library.compile_policy_document(doc, day)
        except CredoError:
            unit = None
        activations = list(unit.activations) if unit else []
        keys = [a.key for a in activations]
        fired_all = {k for ks in report.fired.values() for k in ks}
        uncovered = [
            {"key": a.key, "line": a.span.line, "ruleset": a.ruleset} for a in activations if a.key not in fired_all
        ]
        fired = sorted(fired_all)
    total = len(keys)
    return TestRun(
        results, report.passed, report.failed, report.skipped, total - len(uncovered), total, uncovered, fired
    )


# --- tables as grids --------------------------------------------------------------------------------------------


def table_grids(ref: str) -> list[dict[str, Any]]:
    _, doc = load_version(ref)
    if not isinstance(doc, Ruleset):
        return []
    grids = []
    for table in doc.tables:
        inputs = [to_text(e) for e in table.inputs]
        rows = []
        for row in table.rows:
            cells = list(row.cell_texts)
            rows.append(
                {
                    "number": row.number,
                    "key": table.row_key(row),
                    "line": row.span.line,
                    "inputs": cells[: len(inputs)],
                    "outputs": cells[len(inputs) :],
                }
            )
        grids.append(
            {
                "id": table.id,
                "hit": table.hit,
                "description": table.description,
                "line": table.span.line,
                "inputs": inputs,
                "outputs": list(table.outputs),
                "rows": rows,
            }
        )
    return grids


# --- side-by-side diff ------------------------------------------------------------------------------------------


def side_by_side(a: str, b: str) -> list[dict[str, Any]]:
    """Rows of (left number, left text, right number, right text, kind) for two texts."""
    left, right = a.splitlines(), b.splitlines()
    rows: list[dict[str, Any]] = []
    matcher = difflib.SequenceMatcher(None, left, right, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                rows.append({"ln": i1 + k + 1, "left": left[i1 + k], "rn": j1 + k + 1, "right": right[j1 + k],
                             "kind": "same"})
            continue
        span = max(i2 - i1, j2 - j1)
        for k in range(span):
            li, rj = i1 + k, j1 + k
            rows.append(
                {
                    "ln": li + 1 if li < i2 else None,
                    "left": left[li] if li < i2 else "",
                    "rn": rj + 1 if rj < j2 else None,
                    "right": right[rj] if rj < j2 else "",
                    "kind": {"replace": "changed", "delete": "removed", "insert": "added"}[tag],
                }
            )
    return rows


# --- trying a case ----------------------------------------------------------------------------------------------


def form_fields(library: Library) -> list[tuple[str, list[FieldDecl]]]:
    """The declared (not derived) fields, grouped by fact, in declaration order: the try-it form."""
    out: dict[str, list[FieldDecl]] = {}
    for decl in library.schema.fields.values():
        if decl.derived is None:
            out.setdefault(decl.fact, []).append(decl)
    return list(out.items())


def examples() -> list[str]:
    return sorted(p.stem for p in EXAMPLES.glob("*.json"))


def example_case(name: str) -> dict[str, Any] | None:
    if name not in examples():
        return None
    return json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))


def case_from_form(fields: Sequence[tuple[str, list[FieldDecl]]], form: Any) -> tuple[dict[str, Any], list[str]]:
    """A case from the generated form's values: blank is absent; values are converted by their declared type."""
    case: dict[str, Any] = {}
    problems = []
    for fact, decls in fields:
        for decl in decls:
            raw = (form.get(f"f:{decl.dotted}") or "").strip()
            if not raw:
                continue
            value: Any = raw
            try:
                if decl.type == "number":
                    value = float(raw.replace("_", "").replace(",", ""))
                    if value.is_integer() and abs(value) < 2**53:
                        value = int(value)
                elif decl.type == "integer":
                    value = int(raw.replace("_", "").replace(",", ""))
                elif decl.type == "boolean":
                    value = {"true": True, "false": False}[raw.lower()]
            except (ValueError, KeyError):
                problems.append(f"{decl.dotted}: '{raw[:40]}' is not a {decl.type}")
                continue
            case.setdefault(fact, {})[decl.name] = value
    return case, problems


def flatten_case(case: Any) -> dict[str, str]:
    """A case as the form's values (fact.field -> text)."""
    out: dict[str, str] = {}
    if isinstance(case, dict):
        for fact, fields in case.items():
            if isinstance(fields, dict):
                for name, value in fields.items():
                    if isinstance(value, bool):
                        out[f"{fact}.{name}"] = "true" if value else "false"
                    elif value is not None:
                        out[f"{fact}.{name}"] = str(value)
    return out


def try_case(ref: str, case: Any, *, target: str, as_of: dt.date) -> dict[str, Any]:
    """Evaluate `case` with this version in place: under a policy that uses it, or the ruleset alone.

    Answers the decision (design section 7, with its full trace), or `{"error": ...}` with every problem of the
    case by JSON path, as the API would.
    """
    _, doc = load_version(ref)
    library = library_with(doc)
    try:
        if target == "__alone__" and isinstance(doc, Ruleset):
            unit = library.compile_ruleset(doc)
            result = evaluate(unit, case, as_of, "rete", allow_conclusions=True)
            decision = dict(result.decision)
            decision["conclusions"] = result.conclusions
            return decision
        policy = library.find(target, Policy, as_of)
        if isinstance(doc, Policy):
            policy = doc
        assert isinstance(policy, Policy)
        unit = library.compile_policy_document(policy, as_of)
        return dict(evaluate(unit, case, as_of, "rete").decision)
    except CredoError as error:
        return reject(error.problems)


def default_as_of(doc: AnyDocument | None = None) -> dt.date:
    """Today, or the version's first day when it starts later (a baseline that starts next year, say)."""
    today = dt.date.today()
    start = doc.effective_from if doc is not None else None
    return max(today, start) if start else today


def example_path(name: str) -> Path | None:
    path = EXAMPLES / f"{name}.json"
    return path if name in examples() else None


__all__ = [
    "TestRun",
    "case_from_form",
    "check_text",
    "default_as_of",
    "example_case",
    "examples",
    "flatten_case",
    "form_fields",
    "library_with",
    "load_version",
    "policies_using",
    "run_version_tests",
    "side_by_side",
    "table_grids",
    "try_case",
]
