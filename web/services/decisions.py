"""Deciding with a durable record: the one path by which the API, the console and `credo decide --record` decide.

`decide_and_record` takes ONE snapshot of the active rules (web.services.active) and runs the whole decision on it:
validate, decide, and append the record. The answer leaves only after the record's transaction has committed; if
the record cannot be written the caller gets AuditUnavailable (HTTP 503) and no decision, and the rolled-back
transaction leaves nothing behind. The decision is evaluated before the append's transaction opens, so the
database's write lock is held for the insert alone, not for the rules; the snapshot the record names is the one
the decision used, whatever is published in between.

Call it outside a db_session: inside one, the record joins the caller's transaction and commits (or not) with it,
and the answer must then wait for that commit.

Also here, for the CLI (and later the API): reading a record, replay, verify, export, purge and checkpoints, with
the role checks and governance events that belong to the web layer.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from pony import orm

from audit import checkpoints, records
from audit.db import write_session
from audit.errors import AuditUnavailable, ReplayError
from audit.export import ExportFilter
from audit.export import export as export_records
from audit.governance import record
from audit.purge import PurgeRefused, PurgeResult
from audit.purge import purge as purge_records
from audit.replay import Ref, replay_record
from audit.verify import VerifyReport
from audit.verify import verify as verify_chains
from engine.errors import CredoError
from engine.evaluate import decide
from engine.model import AnyDocument, Policy
from web.models import RuleVersion
from web.services.active import ACTIVE, Snapshot, parse_stored
from web.services.errors import Refused
from web.services.rules import parse_ref
from web.services.users import require_role

CALLER_KINDS = ("api_key", "user", "cli")
BACKEND = "rete"  # the durable_rules network: what every recorded decision runs on, and what replay re-runs
MAX_TEXT = 200


@dataclass(frozen=True)
class Caller:
    kind: str  # "api_key" | "user" | "cli"
    id: str
    can_unmask: bool = False


def _plain_text(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT or not value.isprintable():
        raise Refused(
            f"bad-{what}", f"the {what.replace('-', ' ')} must be 1 to {MAX_TEXT} printable characters", "invalid"
        )
    return value


def _check_caller(caller: Caller) -> None:
    if caller.kind not in CALLER_KINDS:
        raise Refused("bad-caller", f"caller kind must be one of {', '.join(CALLER_KINDS)}", "invalid")
    _plain_text(caller.id, "caller-id")


def compile_policy(snapshot: Snapshot, policy: str, as_of: dt.date) -> Any:
    """The policy's versions in force on `as_of`, compiled; Refused with the codes every caller answers alike
    (the API's decisions and monitoring endpoints): unknown-policy (404), policy-not-in-force (422)."""
    if policy not in snapshot.library.names(Policy):
        raise Refused("unknown-policy", f"no active policy named '{policy}'", "not-found")
    try:
        return snapshot.compile_policy(policy, as_of)
    except CredoError as error:
        if any(p.code == "not-in-force" for p in error.problems):
            raise Refused(
                "policy-not-in-force",
                f"'{policy}' has no version in force on {as_of.isoformat()}",
                "invalid",
                error.problems,
            ) from None
        raise Refused("policy-unavailable", f"'{policy}' cannot be compiled", "conflict", error.problems) from None


def _idempotent_answer(row: dict[str, Any], request_sha256: str | None) -> dict[str, Any]:
    """The decision already recorded under this caller's idempotency key: answered again, not decided again."""
    if request_sha256 is not None and row["request_sha256"] not in (None, request_sha256):
        raise Refused(
            "idempotency-key-reused",
            "this idempotency key was used for a different request",
            "conflict",
            details={"decision_id": row["decision_id"]},
        )
    # The caller sent the values it now gets back, so the answer is the decision as it was made, unmasked.
    doc = records.to_document(row, unmask=True)
    return {**doc["decision"], "decision_id": row["decision_id"]}


def decide_and_record(
    policy: str,
    case: object,
    *,
    caller: Caller,
    as_of: dt.date | None = None,
    idempotency_key: str | None = None,
    request_sha256: str | None = None,
    application_id: str | None = None,
) -> dict[str, Any]:
    """Decide one case under the active rules and record it; the decision (design section 7) plus "decision_id".

    Raises CredoError for an invalid case (problems by JSON path), Refused (unknown-policy, 404) for a policy with
    no active version, and AuditUnavailable (503) when the record cannot be written: then there is no decision.
    An evaluation failure follows the policy's on_error and is recorded like any other decision.
    """
    started = time.perf_counter()
    _check_caller(caller)
    _plain_text(idempotency_key, "idempotency-key")
    _plain_text(request_sha256, "request-sha256")
    _plain_text(application_id, "application-id")
    if idempotency_key is not None:
        earlier = records.find_idempotent(caller.kind, caller.id, idempotency_key)
        if earlier is not None:
            return _idempotent_answer(earlier, request_sha256)
    snapshot = ACTIVE.current()
    day = as_of or dt.date.today()  # fixed here (as `credo decide` picks it), so the record holds the date used
    unit = compile_policy(snapshot, policy, day)
    try:
        # What is stored is exactly what was decided: the case as JSON values.
        plain = json.loads(json.dumps(case, allow_nan=False))
    except (TypeError, ValueError):
        unit.validator.validate(case)  # explains by JSON path what is wrong, if a declared field is
        raise CredoError.single("case-not-json", "the case holds values that are not JSON") from None
    decision = decide(unit, plain, day, BACKEND)
    latency_us = int((time.perf_counter() - started) * 1_000_000)
    draft = records.draft_for(
        unit,
        plain,
        decision,
        caller_kind=caller.kind,
        caller_id=caller.id,
        library=snapshot.versions,
        backend=BACKEND,
        latency_us=latency_us,
        idempotency_key=idempotency_key,
        request_sha256=request_sha256,
        application_id=application_id,
    )
    appended = records.append(draft)
    if appended.existing:  # a concurrent request with the same key was recorded first
        row = records.load(appended.decision_id)
        assert row is not None
        return _idempotent_answer(row, request_sha256)
    return {**decision, "decision_id": appended.decision_id}


def _row(decision_id: str) -> dict[str, Any]:
    row = records.load(decision_id) if isinstance(decision_id, str) and len(decision_id) <= 64 else None
    if row is None:
        raise Refused("unknown-decision", f"no recorded decision {decision_id}", "not-found")
    return row


def get_decision(decision_id: str, caller: Caller) -> dict[str, Any]:
    """The stored record: sensitive values masked (`***`) unless the caller may unmask (and the key is here)."""
    return records.to_document(_row(decision_id), unmask=caller.can_unmask)


# Stored versions never change, so a document read for one replay serves every later one (keyed by its digest: a
# row whose text was altered has another digest and is read, and refused, afresh).
_DOCUMENTS: dict[tuple[str, int, str], AnyDocument] = {}
_DOCUMENTS_MAX = 512


def _documents_for(refs: Sequence[Ref]) -> list[AnyDocument]:
    """The stored versions a replay asks for; replay checks each one's digest against the record."""
    out = []
    missing = []
    for name, number, digest in refs:
        doc = _DOCUMENTS.get((name, number, digest)) if digest is not None else None
        if doc is not None:
            out.append(doc)
        else:
            missing.append((name, number))
    if missing:
        with orm.db_session:
            for name, number in missing:
                row = RuleVersion.get(name=name, number=number)
                if row is not None:
                    doc = parse_stored(row.name, row.number, row.text, row.digest)
                    out.append(doc)
                    if len(_DOCUMENTS) < _DOCUMENTS_MAX:
                        _DOCUMENTS[(doc.name, number, doc.digest)] = doc
    return out


def replay(decision_id: str, against: str | None = None) -> dict[str, Any]:
    """{"decision_id", "identical", "differences": [{"path", "recorded", "replayed"}], "against"}."""
    row = _row(decision_id)
    target = None
    if against is not None:
        name, number = parse_ref(against)
        assert number is not None
        with orm.db_session:
            if RuleVersion.get(name=name, number=number) is None:
                raise Refused("unknown-version", f"no version {against}", "not-found")
        target = (name, number)
    try:
        return replay_record(row, _documents_for, target)
    except ReplayError as error:
        raise Refused(error.code, error.message, "invalid" if error.code == "not-used" else "conflict") from None


# --- the log as a whole ------------------------------------------------------------------------------------------


def verify(checkpoint_file: str | Path | None = None) -> VerifyReport:
    return verify_chains(Path(checkpoint_file) if checkpoint_file else None)


def write_checkpoint() -> dict[str, Any]:
    try:
        return checkpoints.write("manual")
    except checkpoints.CheckpointError as exc:
        raise AuditUnavailable(str(exc), "checkpoint-failed") from None


def export(
    out: TextIO,
    actor: str,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    fmt: str = "jsonl",
    policy: str | None = None,
    outcome: str | None = None,
    unmask: bool = False,
) -> int:
    """Stream records to `out` (auditor or admin); the export is a governance event, written before any record."""
    require_role(actor, "auditor", "admin", doing="exporting decision records")
    if fmt not in ("csv", "jsonl"):
        raise Refused("bad-format", "the export format is csv or jsonl", "invalid")
    filters = ExportFilter(start, end, policy, outcome)
    with write_session():
        record(actor, "audit-exported", "decision_record", {**filters.to_dict(), "format": fmt, "unmasked": unmask})
    return export_records(out, filters, fmt, unmask=unmask)


def purge(before: dt.date, actor: str) -> PurgeResult:
    require_role(actor, "admin", doing="purging decision records")
    try:
        return purge_records(before, actor)
    except PurgeRefused as refusal:
        raise Refused(refusal.code, refusal.message) from None


__all__ = [
    "AuditUnavailable",
    "Caller",
    "decide_and_record",
    "export",
    "get_decision",
    "purge",
    "replay",
    "verify",
    "write_checkpoint",
]
