"""A set of documents loaded together: one schema, names resolved by effective date.

Files are the baseline; a library can as well be built from documents stored
elsewhere (the database's active versions) by handing them to `Library(...)`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from pathlib import Path

from engine.documents import parse_document
from engine.errors import CredoError, Problem, SourceSpan, did_you_mean
from engine.model import AnyDocument, DocRef, Policy, Ruleset, Scorecard
from engine.policy import CompiledPolicy, compile_unit
from engine.schema import Schema, build_schema

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RULES = (REPO / "rulesets", REPO / "policies")
KINDS = {Ruleset: "ruleset", Scorecard: "scorecard", Policy: "policy"}


def yaml_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[Problem]]:
    files: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p.resolve() for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()))
        elif path.is_file():
            files.append(path.resolve())
        else:
            problems.append(Problem("no-such-path", f"{raw}: no such file or folder", SourceSpan(str(raw), 0, 0)))
    return list(dict.fromkeys(files)), problems


def read_files(paths: Iterable[str | Path]) -> tuple[list[AnyDocument], list[Problem]]:
    files, problems = yaml_files(paths)
    documents: list[AnyDocument] = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(
                Problem("unreadable", f"cannot read the file: {exc.__class__.__name__}", SourceSpan(str(file), 0, 0))
            )
            continue
        try:
            documents.append(parse_document(text, _display(file)))
        except CredoError as error:
            problems.extend(error.problems)
    return documents, problems


def _display(file: Path) -> str:
    """Paths as the user can open them: relative to the working folder where possible."""
    try:
        return str(file.relative_to(Path.cwd()))
    except ValueError:
        return str(file)


class Library:
    def __init__(self, documents: Sequence[AnyDocument], warnings: Sequence[Problem] = ()) -> None:
        self.documents = list(documents)
        self.by_name: dict[str, list[AnyDocument]] = {}
        for doc in self.documents:
            self.by_name.setdefault(doc.name, []).append(doc)
        problems = self._check_names()
        facts = [f for d in self.documents if isinstance(d, (Ruleset, Scorecard)) for f in d.facts]
        derive = [f for d in self.documents if isinstance(d, Ruleset) for f in d.derive]
        reasons = [r for d in self.documents if isinstance(d, Ruleset) for r in d.reasons]
        self.schema, schema_problems = build_schema(facts, derive, reasons)
        problems += schema_problems
        self.warnings = [p for p in [*warnings, *problems] if not p.is_error]
        errors = [p for p in problems if p.is_error]
        if errors:
            raise CredoError(errors)
        self._cache: dict[tuple[str, ...], CompiledPolicy] = {}

    @classmethod
    def load(cls, paths: Iterable[str | Path] = DEFAULT_RULES) -> Library:
        documents, problems = read_files(paths)
        if any(p.is_error for p in problems):
            raise CredoError(problems)
        return cls(documents, problems)

    def _check_names(self) -> list[Problem]:
        problems = []
        for name, docs in self.by_name.items():
            kinds = {KINDS[type(d)] for d in docs}
            if len(kinds) > 1:
                problems.append(
                    Problem(
                        "duplicate-name",
                        f"'{name}' names documents of different kinds: {', '.join(sorted(kinds))}",
                        docs[-1].span,
                    )
                )
            for i, a in enumerate(docs):
                for b in docs[i + 1 :]:
                    if type(a) is type(b) and a.version == b.version and _overlap(a, b):
                        problems.append(
                            Problem(
                                "ambiguous-version",
                                f"'{name}' has two documents in force on the same dates ({a.file} and {b.file})",
                                b.span,
                                "give them effective_from/effective_to ranges that do not overlap",
                            )
                        )
        return problems

    def names(self, kind: type) -> list[str]:
        return sorted({d.name for d in self.documents if isinstance(d, kind)})

    def find(self, ref: DocRef | str, kind: type, as_of: dt.date) -> AnyDocument:
        ref = ref if isinstance(ref, DocRef) else DocRef(ref, None, SourceSpan())
        label = KINDS[kind]
        candidates = [d for d in self.by_name.get(ref.name, []) if isinstance(d, kind)]
        if not candidates:
            raise CredoError.single(
                "unknown-document", f"no {label} named '{ref.name}'", ref.span, did_you_mean(ref.name, self.names(kind))
            )
        if ref.version is not None:
            pinned = [d for d in candidates if d.version == ref.version]
            if not pinned:
                hint = (
                    "documents loaded from files have no version numbers"
                    if all(d.version is None for d in candidates)
                    else None
                )
                raise CredoError.single("unknown-version", f"{label} {ref} does not exist", ref.span, hint)
            return pinned[0]
        in_force = [d for d in candidates if d.in_force(as_of)]
        if not in_force:
            raise CredoError.single(
                "not-in-force", f"no version of {label} '{ref.name}' is in force on {as_of.isoformat()}", ref.span
            )
        return max(in_force, key=lambda d: (d.version or 0, d.effective_from or dt.date.min))

    def compile_policy(self, name: str, as_of: dt.date | None = None) -> CompiledPolicy:
        as_of = as_of or dt.date.today()
        policy = self.find(name, Policy, as_of)
        assert isinstance(policy, Policy)
        problems: list[Problem] = []
        rulesets: list[Ruleset] = []
        for ref in policy.rulesets:
            try:
                doc = self.find(ref, Ruleset, as_of)
                assert isinstance(doc, Ruleset)
                rulesets.append(doc)
            except CredoError as error:
                problems.extend(error.problems)
        scorecard = None
        if policy.scorecard is not None:
            try:
                found = self.find(policy.scorecard, Scorecard, as_of)
                assert isinstance(found, Scorecard)
                scorecard = found
            except CredoError as error:
                problems.extend(error.problems)
        if problems:
            raise CredoError(problems)
        key = ("policy", policy.digest, *(d.digest for d in rulesets), scorecard.digest if scorecard else "")
        if key not in self._cache:
            self._cache[key] = compile_unit(self.schema, rulesets, scorecard, policy)
        return self._cache[key]

    def compile_ruleset(self, ruleset: Ruleset) -> CompiledPolicy:
        """A lone ruleset under the shared schema, as its embedded tests run it."""
        key = ("ruleset", ruleset.digest)
        if key not in self._cache:
            self._cache[key] = compile_unit(self.schema, [ruleset])
        return self._cache[key]

    def validate(self, as_of: dt.date | None = None) -> list[Problem]:
        """Compile every ruleset alone and every policy on each date its documents change; every problem found."""
        problems: list[Problem] = list(self.warnings)
        for doc in self.documents:
            try:
                if isinstance(doc, Ruleset):
                    problems += self.compile_ruleset(doc).warnings
                elif isinstance(doc, Scorecard):
                    problems += compile_unit(self.schema, [], doc).warnings
            except CredoError as error:
                problems += error.problems
        for policy in (d for d in self.documents if isinstance(d, Policy)):
            for day in self._dates_for(policy, as_of):
                try:
                    problems += self.compile_policy_document(policy, day).warnings
                except CredoError as error:
                    problems += error.problems
        return list(dict.fromkeys(problems))

    def compile_policy_document(self, policy: Policy, as_of: dt.date) -> CompiledPolicy:
        if self.find(policy.name, Policy, as_of) is policy:
            return self.compile_policy(policy.name, as_of)
        saved = self.by_name[policy.name]
        self.by_name[policy.name] = [policy]
        try:
            return self.compile_policy(policy.name, as_of)
        finally:
            self.by_name[policy.name] = saved

    def _dates_for(self, policy: Policy, as_of: dt.date | None) -> list[dt.date]:
        if as_of is not None:
            return [as_of]
        names = {
            policy.name,
            *(r.name for r in policy.rulesets),
            *([policy.scorecard.name] if policy.scorecard else []),
        }
        days = {d.effective_from for n in names for d in self.by_name.get(n, []) if d.effective_from}
        days = {d for d in days if policy.in_force(d)}
        if policy.effective_from:
            days.add(policy.effective_from)
        today = dt.date.today()
        if policy.in_force(today):
            days.add(today)
        return sorted(days) or [policy.effective_to or today]


def _overlap(a: AnyDocument, b: AnyDocument) -> bool:
    start = max(a.effective_from or dt.date.min, b.effective_from or dt.date.min)
    end = min(a.effective_to or dt.date.max, b.effective_to or dt.date.max)
    return start <= end


__all__ = ["DEFAULT_RULES", "Library", "Schema", "read_files"]
