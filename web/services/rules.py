"""The rule version lifecycle: draft → submitted → approved → active → retired, under four eyes.

One service for the API, the console and the CLI. Every step runs in one write transaction that first locks
the `rules_state` row, so lifecycle steps are serialised across processes, and writes its governance event in
that same transaction. A refused step rolls back and is then recorded as a `refused` event of its own, so
attempts (a self-approval, say) are in the log too.

- save draft: any text with a kind and a name is kept, with the problems found in it.
- submit: no errors, and the embedded tests pass against the active rules plus this version.
- approve: someone holding the approver role who did not write the text; the approval is bound to its digest.
- publish: an approved, unchanged version becomes active; active versions it covers entirely are retired; the
  tests of every active policy that uses it must pass first. Bumps the generation: the atomic switch.
- rollback: re-activates an earlier version; one person asks, a second (an approver) confirms within
  ROLLBACK_REQUEST_VALID; an older request has lapsed, and the call that finds it asks anew.
- retire: takes a version out of the active set, refused while a policy still needs it.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pony import orm

from audit.db import write_session
from audit.governance import now, record
from engine.documents import detect_kind, digest_of, parse_document
from engine.errors import CredoError, Problem
from engine.library import Library, read_files
from engine.loader import YMap, YScalar, load_yaml
from engine.model import AnyDocument, Policy, Ruleset, Scorecard
from engine.policy import compile_unit
from engine.testing import run_tests
from web.models import RulesState, RuleVersion
from web.services.active import parse_stored
from web.services.errors import Refused
from web.services.users import SYSTEM, ensure_system_user, require_role

KINDS = {Ruleset: "ruleset", Scorecard: "scorecard", Policy: "policy"}
REF = re.compile(r"^(?P<name>[a-z0-9][a-z0-9_-]*)(?:@(?P<number>[0-9]+))?$")
EDITABLE = ("draft", "submitted", "approved")


@dataclass(frozen=True)
class VersionInfo:
    ref: str
    name: str
    number: int
    kind: str
    status: str
    digest: str
    effective_from: dt.date | None
    effective_to: dt.date | None
    parent: str | None
    author: str
    editors: tuple[str, ...]
    created_at: dt.datetime
    submitted_by: str | None
    approver: str | None
    approved_at: dt.datetime | None
    approval_valid: bool
    published_by: str | None
    published_at: dt.datetime | None
    retired_at: dt.datetime | None
    rollback_requested_by: str | None
    problems: tuple[dict[str, Any], ...]
    text: str

    @property
    def errors(self) -> int:
        return sum(p.get("severity") == "error" for p in self.problems)

    def to_dict(self, with_text: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ref": self.ref,
            "name": self.name,
            "version": self.number,
            "kind": self.kind,
            "status": self.status,
            "digest": self.digest,
            "effective_from": self.effective_from.isoformat() if self.effective_from else None,
            "effective_to": self.effective_to.isoformat() if self.effective_to else None,
            "parent": self.parent,
            "author": self.author,
            "editors": list(self.editors),
            "created_at": self.created_at.isoformat(),
            "submitted_by": self.submitted_by,
            "approver": self.approver,
            "approved_at": self.approved_at.isoformat() if self.approved_at else None,
            "approval_valid": self.approval_valid,
            "published_by": self.published_by,
            "published_at": self.published_at.isoformat() if self.published_at else None,
            "retired_at": self.retired_at.isoformat() if self.retired_at else None,
            "rollback_requested_by": self.rollback_requested_by,
            "problems": list(self.problems),
        }
        if with_text:
            out["text"] = self.text
        return out


# A rollback confirmed weeks after it was asked for would act on a request its author may no longer stand behind,
# made against rules that have moved on since: past this age the request lapses and must be asked for again.
ROLLBACK_REQUEST_VALID = dt.timedelta(days=7)


def _pending_rollback(row: RuleVersion, at: dt.datetime) -> str | None:
    """Who asked for a rollback of this version, while the request still stands."""
    asked_at = row.rollback_requested_at
    if row.rollback_requested_by is None or asked_at is None or at - asked_at > ROLLBACK_REQUEST_VALID:
        return None
    return str(row.rollback_requested_by)


def _info(row: RuleVersion) -> VersionInfo:
    return VersionInfo(
        ref=row.ref,
        name=row.name,
        number=row.number,
        kind=row.kind,
        status=row.status,
        digest=row.digest,
        effective_from=row.effective_from,
        effective_to=row.effective_to,
        parent=row.parent.ref if row.parent else None,
        author=row.author,
        editors=tuple(row.editor_list),
        created_at=row.created_at,
        submitted_by=row.submitted_by,
        approver=row.approver,
        approved_at=row.approved_at,
        approval_valid=bool(row.approved_digest) and row.approved_digest == digest_of(row.text),
        published_by=row.published_by,
        published_at=row.published_at,
        retired_at=row.retired_at,
        rollback_requested_by=_pending_rollback(row, now()),
        problems=tuple(row.problem_list),
        text=row.text,
    )


def parse_ref(text: str, *, versioned: bool = True) -> tuple[str, int | None]:
    found = REF.match(text.strip())
    if not found or (versioned and found.group("number") is None):
        shape = "NAME@N" if versioned else "NAME or NAME@N"
        raise Refused("bad-reference", f"'{text}' is not a version reference: write {shape}", "invalid")
    number = found.group("number")
    return found.group("name"), int(number) if number is not None else None


# --- the shared machinery -----------------------------------------------------------------------------------


@contextmanager
def _step(actor: str, action: str, subject: str) -> Iterator[None]:
    """Run one lifecycle step; a refusal is recorded after the step's own transaction rolled back."""
    try:
        yield
    except Refused as refusal:
        # Never let a failure to log hide the refusal itself.
        with suppress(Exception), write_session():
            record(actor, "refused", subject, {"action": action, "code": refusal.code})
        raise


def _lock() -> RulesState:
    """Serialise lifecycle steps: FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE already excludes writers."""
    state = RulesState.get_for_update(id=1)
    if state is None:
        raise RuntimeError("rules_state row 1 is missing")
    return state


def _bump(state: RulesState) -> int:
    state.generation += 1
    state.changed_at = now()
    return state.generation


def _row(ref: str, *, lock: bool = True) -> RuleVersion:
    name, number = parse_ref(ref)
    row = RuleVersion.get_for_update(name=name, number=number) if lock else RuleVersion.get(name=name, number=number)
    if row is None:
        raise Refused("unknown-version", f"no version {ref}", "not-found")
    return row


def _active_docs(exclude: Iterable[int] = ()) -> list[AnyDocument]:
    skip = set(exclude)
    rows = orm.select(v for v in RuleVersion if v.status == "active").order_by(RuleVersion.name, RuleVersion.number)
    return [parse_stored(r.name, r.number, r.text, r.digest) for r in rows if r.id not in skip]


def _candidate(add: Sequence[AnyDocument] = (), remove: Iterable[int] = ()) -> Library:
    """The active set as it would be after the step: a Library, or Refused with the problems that prevent one."""
    try:
        return Library([*_active_docs(remove), *add])
    except CredoError as error:
        raise Refused(
            "library-conflict",
            "the version does not fit with the active rules",
            "invalid",
            error.problems,
        ) from None


@dataclass
class Analysis:
    kind: str
    name: str
    doc: AnyDocument | None
    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]


def _identify(text: str, file: str) -> tuple[str, str]:
    """The kind and name of a text, even an invalid one; refused when it has neither."""
    try:
        root = load_yaml(text, file)
    except CredoError as error:
        raise Refused(
            "unreadable", "the text is not a YAML document Credo can read", "invalid", error.problems
        ) from None
    kind = detect_kind(root) if isinstance(root, YMap) else None
    node = root.items.get(kind) if kind and isinstance(root, YMap) else None
    name = node.value if isinstance(node, YScalar) and isinstance(node.value, str) else None
    if kind is None or not name or not REF.match(name) or "@" in name:
        raise Refused(
            "no-name",
            "a draft needs at least its kind and a valid name: its first key is ruleset, scorecard or policy",
            "invalid",
        )
    return kind, name


def _analyse(text: str, name: str, number: int, *, exclude: Iterable[int] = ()) -> Analysis:
    """Every problem in the text, checked against the active rules (the version replaces nothing yet)."""
    file = f"{name}@{number}"
    kind, found = _identify(text, file)
    try:
        doc = parse_document(text, file, version=number)
    except CredoError as error:
        return Analysis(kind, found, None, list(error.problems))
    problems: list[Problem] = []
    try:
        library = Library([*_active_docs(exclude), doc])
        if isinstance(doc, Ruleset):
            problems += library.compile_ruleset(doc).warnings
        elif isinstance(doc, Scorecard):
            problems += compile_unit(library.schema, [], doc).warnings
        else:
            day = doc.effective_from or dt.date.today()
            problems += library.compile_policy_document(doc, day).warnings
    except CredoError as error:
        problems += error.problems
    return Analysis(kind, found, doc, list(dict.fromkeys(problems)))


def _problems_json(problems: Sequence[Problem]) -> str:
    return json.dumps([p.to_dict() for p in problems], ensure_ascii=False)


def _covers(outer: Any, inner: Any) -> bool:
    """Whether `outer`'s effective range contains all of `inner`'s (None is open-ended)."""
    return (outer.effective_from or dt.date.min) <= (inner.effective_from or dt.date.min) and (
        outer.effective_to or dt.date.max
    ) >= (inner.effective_to or dt.date.max)


def _overlap(a: Any, b: Any) -> bool:
    return max(a.effective_from or dt.date.min, b.effective_from or dt.date.min) <= min(
        a.effective_to or dt.date.max, b.effective_to or dt.date.max
    )


def _uses(policy: Policy, names: dict[str, set[int]]) -> bool:
    refs = [*policy.rulesets, *([policy.scorecard] if policy.scorecard else [])]
    return any(r.name in names and (r.version is None or r.version in names[r.name]) for r in refs)


def check_active_set(
    library: Library, changed: Sequence[AnyDocument], removed: Sequence[AnyDocument] = ()
) -> list[str]:
    """Why the active set in `library` would break: failing tests and policies that no longer compile.

    Runs the changed documents' own tests and the tests of every active policy that uses a changed or removed
    name, on each date the change matters: the policy's own start and the changed versions' starts.
    """
    failures: list[str] = []
    touched: dict[str, set[int]] = {}
    for doc in [*changed, *removed]:
        touched.setdefault(doc.name, set()).add(doc.version or 0)
    own = [d for d in changed if isinstance(d, Ruleset)]
    if own:
        report = run_tests(library, own)
        failures += [r.format() for r in report.results if r.status == "failed"]
    policies = [
        d for d in library.documents if isinstance(d, Policy) and (_uses(d, touched) or any(d is c for c in changed))
    ]
    starts = {d.effective_from for d in [*changed, *removed] if d.effective_from}
    for policy in policies:
        days = {policy.effective_from or dt.date.today(), *(d for d in starts if policy.in_force(d))}
        for day in sorted(days):
            try:
                library.compile_policy_document(policy, day)
            except CredoError as error:
                failures += [f"{policy.ref} on {day.isoformat()}: {p.format()}" for p in error.problems]
                continue
            report = run_tests(library, [policy], as_of=day)
            failures += [f"on {day.isoformat()}: {r.format()}" for r in report.results if r.status == "failed"]
    return list(dict.fromkeys(failures))


# --- the steps ------------------------------------------------------------------------------------------------


def save_draft(text: str, actor: str, *, parent: str | None = None) -> VersionInfo:
    """A new version N+1 of the document the text names, saved as a draft even when it has problems."""
    try:
        subject = _identify(text, "<draft>")[1]  # refusals are logged under the document's name when it has one
    except Refused:
        subject = "draft"
    with _step(actor, "draft", subject):
        require_role(actor, "author", doing="saving a draft")
        with write_session():
            _lock()
            kind, name = _identify(text, "<draft>")
            existing = orm.select(v for v in RuleVersion if v.name == name)[:]
            kinds = {v.kind for v in existing}
            if kinds and kind not in kinds:
                raise Refused(
                    "kind-mismatch",
                    f"'{name}' is a {kinds.pop()}; this text is a {kind}: choose another name",
                    "invalid",
                )
            # The same text saved again (a double submit, a save without an edit) would be a second version
            # that differs from the first by nothing but its number, for approvers to review twice.
            digest = digest_of(text)
            twin = next((v for v in existing if v.digest == digest and v.status != "retired"), None)
            if twin is not None:
                raise Refused("unchanged", f"this text is already {twin.ref} ({twin.status}): nothing new to save")
            number = max((v.number for v in existing), default=0) + 1
            analysis = _analyse(text, name, number)
            if parent is not None:
                parent_row = _row(parent, lock=False)
                if parent_row.name != name:
                    raise Refused("bad-parent", f"the parent of a {name} version must be a {name} version", "invalid")
            else:
                active = [v for v in existing if v.status == "active"]
                parent_row = max(active or existing, key=lambda v: v.number, default=None)
            stamp = now()
            doc = analysis.doc
            row = RuleVersion(
                kind=kind,
                name=name,
                number=number,
                text=text,
                digest=digest,
                status="draft",
                problems=_problems_json(analysis.problems),
                effective_from=doc.effective_from if doc else None,
                effective_to=doc.effective_to if doc else None,
                parent=parent_row,
                author=actor,
                editors=json.dumps([actor]),
                created_at=stamp,
                updated_at=stamp,
            )
            record(
                actor,
                "draft-saved",
                row.ref,
                {
                    "digest": row.digest,
                    "parent": parent_row.ref if parent_row else None,
                    "errors": len(analysis.errors),
                },
            )
            return _info(row)


def edit_draft(ref: str, text: str, actor: str) -> VersionInfo:
    """Replace the text of a version not yet published. A changed text voids any approval and submission."""
    with _step(actor, "edit", ref):
        require_role(actor, "author", doing="editing a draft")
        with write_session():
            _lock()
            row = _row(ref)
            if row.status not in EDITABLE:
                raise Refused(
                    "immutable",
                    f"{ref} is {row.status}: a published version never changes; save a new draft instead",
                )
            kind, name = _identify(text, ref)
            if (kind, name) != (row.kind, row.name):
                raise Refused("name-changed", f"the text names {kind} '{name}', not {row.kind} '{row.name}'", "invalid")
            digest = digest_of(text)
            if digest == row.digest and text == row.text:
                return _info(row)
            analysis = _analyse(text, row.name, row.number)
            previous = row.status
            voided = bool(row.approved_digest)
            row.text, row.digest = text, digest
            row.problems = _problems_json(analysis.problems)
            row.effective_from = analysis.doc.effective_from if analysis.doc else None
            row.effective_to = analysis.doc.effective_to if analysis.doc else None
            row.status = "draft"
            row.submitted_by = row.submitted_at = None
            row.approver = row.approved_at = row.approved_digest = None
            row.editors = json.dumps(list(dict.fromkeys([*row.editor_list, actor])))
            row.updated_at = now()
            record(
                actor,
                "draft-edited",
                ref,
                {"digest": digest, "was": previous, "approval_voided": voided, "errors": len(analysis.errors)},
            )
            return _info(row)


def submit(ref: str, actor: str) -> VersionInfo:
    with _step(actor, "submit", ref):
        require_role(actor, "author", doing="submitting a draft")
        with write_session():
            _lock()
            row = _row(ref)
            if row.status != "draft":
                raise Refused("not-a-draft", f"{ref} is {row.status}: only a draft can be submitted")
            analysis = _analyse(row.text, row.name, row.number)
            row.problems = _problems_json(analysis.problems)
            if analysis.errors or analysis.doc is None:
                raise Refused(
                    "invalid-draft",
                    f"{ref} has {len(analysis.errors)} error(s): fix them before submitting",
                    "invalid",
                    analysis.errors,
                )
            library = _candidate(add=[analysis.doc])
            report = run_tests(library, [analysis.doc])
            failed = [r.format() for r in report.results if r.status == "failed"]
            if failed:
                raise Refused(
                    "tests-failed",
                    f"{len(failed)} of {len(report.results)} embedded tests of {ref} fail",
                    "invalid",
                    details=failed,
                )
            row.status = "submitted"
            row.submitted_by, row.submitted_at = actor, now()
            record(
                actor,
                "submitted",
                ref,
                {"digest": row.digest, "tests_passed": report.passed, "tests_skipped": report.skipped},
            )
            return _info(row)


def approve(ref: str, actor: str) -> VersionInfo:
    with _step(actor, "approve", ref):
        require_role(actor, "approver", doing="approving a version")
        with write_session():
            _lock()
            row = _row(ref)
            if row.status != "submitted":
                raise Refused("not-submitted", f"{ref} is {row.status}: only a submitted version can be approved")
            if actor in row.editor_list:
                raise Refused(
                    "four-eyes",
                    f"{actor} wrote {ref} and cannot approve it: another user with the approver role must",
                )
            if digest_of(row.text) != row.digest:
                raise Refused("digest-mismatch", f"the stored text of {ref} does not match its digest")
            row.status = "approved"
            row.approver, row.approved_at, row.approved_digest = actor, now(), row.digest
            record(actor, "approved", ref, {"digest": row.digest})
            return _info(row)


def publish(ref: str, actor: str) -> VersionInfo:
    with _step(actor, "publish", ref):
        require_role(actor, "approver", "admin", doing="publishing a version")
        with write_session():
            state = _lock()
            row = _row(ref)
            if row.status != "approved":
                hint = " (an edit after approval voids the approval: submit it again)" if row.status == "draft" else ""
                raise Refused("not-approved", f"{ref} is {row.status}: only an approved version can be published{hint}")
            current = digest_of(row.text)
            if row.approved_digest != current or row.digest != current:
                raise Refused(
                    "approval-void",
                    f"the text of {ref} changed after it was approved ({row.approved_digest} approved, now {current}): "
                    "the approval is void; submit it again",
                )
            doc = parse_stored(row.name, row.number, row.text, row.digest)
            actives = orm.select(v for v in RuleVersion if v.name == row.name and v.status == "active")[:]
            for other in actives:
                if other.number > row.number and _covers(other, row):
                    raise Refused(
                        "shadowed",
                        f"active {other.ref} covers every date of {ref}, so {ref} would never be used",
                    )
            superseded = [v for v in actives if v.number < row.number and _covers(row, v)]
            library = _candidate(add=[doc], remove=[v.id for v in superseded])
            removed = [parse_stored(v.name, v.number, v.text, v.digest) for v in superseded]
            failures = check_active_set(library, [doc], removed)
            if failures:
                raise Refused(
                    "dependent-tests-failed",
                    f"publishing {ref} would break the active rules: {len(failures)} failure(s)",
                    "invalid",
                    details=failures,
                )
            stamp = now()
            row.status, row.published_by, row.published_at = "active", actor, stamp
            row.rollback_requested_by = row.rollback_requested_at = None
            for old in superseded:
                old.status, old.retired_by, old.retired_at = "retired", actor, stamp
            generation = _bump(state)
            record(
                actor,
                "published",
                ref,
                {"digest": row.digest, "generation": generation, "superseded": [v.ref for v in superseded]},
            )
            for old in superseded:
                record(actor, "retired", old.ref, {"reason": "superseded", "by": ref, "generation": generation})
            return _info(row)


def rollback(ref: str, actor: str) -> VersionInfo:
    """Re-activate an earlier version: the first call asks, a second user with the approver role confirms."""
    with _step(actor, "rollback", ref):
        require_role(actor, "author", "approver", "admin", doing="rolling back")
        with write_session():
            state = _lock()
            row = _row(ref)
            if row.status == "active":
                raise Refused("already-active", f"{ref} is already active")
            if row.published_at is None:
                raise Refused("never-published", f"{ref} was never active: only an earlier active version comes back")
            if digest_of(row.text) != row.digest or row.approved_digest != row.digest:
                raise Refused("digest-mismatch", f"the stored text of {ref} no longer matches its approved digest")
            stamp = now()
            if row.rollback_requested_by is not None and _pending_rollback(row, stamp) is None:
                asked_at = row.rollback_requested_at
                record(
                    actor,
                    "rollback-request-lapsed",
                    ref,
                    {
                        "requested_by": row.rollback_requested_by,
                        "requested_at": asked_at.isoformat() if asked_at else None,
                        "valid_days": ROLLBACK_REQUEST_VALID.days,
                    },
                )
                row.rollback_requested_by = row.rollback_requested_at = None
            if row.rollback_requested_by is None:
                row.rollback_requested_by, row.rollback_requested_at = actor, stamp
                record(actor, "rollback-requested", ref, {"digest": row.digest})
                return _info(row)
            if row.rollback_requested_by == actor:
                raise Refused(
                    "four-eyes",
                    f"{actor} asked for this rollback and cannot confirm it: another user with the approver role must",
                )
            require_role(actor, "approver", doing="confirming a rollback")
            doc = parse_stored(row.name, row.number, row.text, row.digest)
            newer = orm.select(
                v for v in RuleVersion if v.name == row.name and v.status == "active" and v.number > row.number
            )[:]
            shadowing = [v for v in newer if _overlap(v, row)]
            library = _candidate(add=[doc], remove=[v.id for v in shadowing])
            removed = [parse_stored(v.name, v.number, v.text, v.digest) for v in shadowing]
            failures = check_active_set(library, [doc], removed)
            if failures:
                raise Refused(
                    "dependent-tests-failed",
                    f"rolling back to {ref} would break the active rules: {len(failures)} failure(s)",
                    "invalid",
                    details=failures,
                )
            requested_by = row.rollback_requested_by
            row.status, row.retired_by, row.retired_at = "active", None, None
            row.rollback_requested_by = row.rollback_requested_at = None
            for v in shadowing:
                v.status, v.retired_by, v.retired_at = "retired", actor, stamp
            generation = _bump(state)
            record(
                actor,
                "rolled-back",
                ref,
                {
                    "digest": row.digest,
                    "requested_by": requested_by,
                    "generation": generation,
                    "retired": [v.ref for v in shadowing],
                },
            )
            for v in shadowing:
                record(actor, "retired", v.ref, {"reason": "rollback", "to": ref, "generation": generation})
            return _info(row)


def retire(ref: str, actor: str) -> VersionInfo:
    """Take an active version out of service, or withdraw one that was never published."""
    with _step(actor, "retire", ref):
        require_role(actor, "approver", "admin", doing="retiring a version")
        with write_session():
            state = _lock()
            row = _row(ref)
            if row.status == "retired":
                raise Refused("already-retired", f"{ref} is already retired")
            stamp = now()
            if row.status != "active":
                previous = row.status
                row.status, row.retired_by, row.retired_at = "retired", actor, stamp
                record(actor, "withdrawn", ref, {"was": previous})
                return _info(row)
            doc = parse_stored(row.name, row.number, row.text, row.digest)
            library = _candidate(remove=[row.id])
            failures = check_active_set(library, [], [doc])
            if failures:
                raise Refused(
                    "in-use",
                    f"retiring {ref} would break the active rules: {len(failures)} failure(s)",
                    details=failures,
                )
            row.status, row.retired_by, row.retired_at = "retired", actor, stamp
            generation = _bump(state)
            record(actor, "retired", ref, {"reason": "retired", "generation": generation})
            return _info(row)


# --- reading --------------------------------------------------------------------------------------------------


def list_versions(name: str | None = None, status: str | None = None) -> list[VersionInfo]:
    with orm.db_session:
        query = orm.select(v for v in RuleVersion)
        if name:
            query = query.filter(lambda v: v.name == name)
        if status:
            query = query.filter(lambda v: v.status == status)
        return [_info(v) for v in query.order_by(RuleVersion.name, RuleVersion.number)]


def show(ref: str) -> VersionInfo:
    """NAME@N, or NAME: its newest active version, else its newest version."""
    name, number = parse_ref(ref, versioned=False)
    with orm.db_session:
        if number is not None:
            row = RuleVersion.get(name=name, number=number)
        else:
            rows = orm.select(v for v in RuleVersion if v.name == name)[:]
            active = [v for v in rows if v.status == "active"]
            row = max(active or rows, key=lambda v: v.number, default=None)
        if row is None:
            raise Refused("unknown-version", f"no version {ref}", "not-found")
        return _info(row)


def diff(ref_a: str, ref_b: str) -> str:
    a, b = show(ref_a), show(ref_b)
    lines = difflib.unified_diff(
        a.text.splitlines(keepends=True), b.text.splitlines(keepends=True), fromfile=a.ref, tofile=b.ref
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def export(directory: str | Path) -> list[Path]:
    """Write every active version back to YAML, byte for byte (so digests match): rulesets/ and policies/.

    A name with one active version is written as NAME.yaml; a timeline of several as NAME.vN.yaml each.
    """
    root = Path(directory)
    with orm.db_session:
        rows = orm.select(v for v in RuleVersion if v.status == "active").order_by(RuleVersion.name, RuleVersion.number)
        versions = [(v.kind, v.name, v.number, v.text) for v in rows]
    counts: dict[str, int] = {}
    for _, name, _, _ in versions:
        counts[name] = counts.get(name, 0) + 1
    written = []
    for kind, name, number, text in versions:
        folder = root / ("policies" if kind == "policy" else "rulesets")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / (f"{name}.yaml" if counts[name] == 1 else f"{name}.v{number}.yaml")
        path.write_bytes(text.encode("utf-8"))
        written.append(path)
    return written


# Sets of documents (name, N, digest) that validated and passed their tests in this process: the outcome is a pure
# function of the texts, so importing the same baseline again (tests do, per database) need not check it again.
_VERIFIED: set[frozenset[tuple[str, int | None, str]]] = set()


def import_documents(paths: Sequence[str | Path], actor: str = SYSTEM) -> list[VersionInfo]:
    """Load folders as active versions (version 1, or 1..k for a timeline in effective order): a system import.

    Refused unless everything validates and every embedded test passes, and for names already in the database.
    """
    documents, problems = read_files(paths)
    errors = [p for p in problems if p.is_error]
    if errors:
        raise Refused("invalid-rules", "the folders hold documents with errors", "invalid", errors)
    if not documents:
        raise Refused("no-documents", "the folders hold no Credo documents", "invalid")
    ordered = sorted(documents, key=lambda d: (d.name, d.effective_from or dt.date.min, d.file))
    numbers: dict[str, int] = {}
    numbered = []
    for doc in ordered:
        numbers[doc.name] = numbers.get(doc.name, 0) + 1
        numbered.append(
            (doc, parse_stored(doc.name, numbers[doc.name], doc.text.replace("\r\n", "\n"), digest_of(doc.text)))
        )
    key = frozenset((d.name, d.version, d.digest) for _, d in numbered)
    if key not in _VERIFIED:
        try:
            library = Library([d for _, d in numbered])
            found = [p for p in library.validate() if p.is_error]
        except CredoError as error:
            found = error.problems
        if found:
            raise Refused("invalid-rules", "the documents do not validate together", "invalid", found)
        report = run_tests(library)
        failed = [r.format() for r in report.results if r.status == "failed"]
        if failed:
            raise Refused("tests-failed", f"{len(failed)} embedded tests fail", "invalid", details=failed)
        _VERIFIED.add(key)
    ensure_system_user()
    with write_session():
        state = _lock()
        names = sorted(numbers)
        taken = orm.select(v.name for v in RuleVersion if v.name in names)[:]
        if taken:
            raise Refused("already-imported", f"the database already holds versions of {', '.join(sorted(taken))}")
        stamp = now()
        rows = []
        for original, doc in numbered:
            text = doc.text
            row = RuleVersion(
                kind=KINDS[type(doc)],
                name=doc.name,
                number=doc.version or 1,
                text=text,
                digest=digest_of(text),
                status="active",
                problems="[]",
                effective_from=doc.effective_from,
                effective_to=doc.effective_to,
                author=actor,
                editors=json.dumps([actor]),
                created_at=stamp,
                updated_at=stamp,
                submitted_by=actor,
                submitted_at=stamp,
                approver=actor,
                approved_at=stamp,
                approved_digest=digest_of(text),
                published_by=actor,
                published_at=stamp,
            )
            rows.append(row)
            record(actor, "system-import", row.ref, {"digest": row.digest, "file": Path(original.file).name})
        generation = _bump(state)
        record(actor, "imported", "rules", {"versions": [r.ref for r in rows], "generation": generation})
        return [_info(r) for r in rows]


__all__ = [
    "Refused",
    "VersionInfo",
    "approve",
    "check_active_set",
    "diff",
    "edit_draft",
    "export",
    "import_documents",
    "list_versions",
    "parse_ref",
    "publish",
    "retire",
    "rollback",
    "save_draft",
    "show",
    "submit",
]
