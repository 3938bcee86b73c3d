"""`credo audit verify`: walk both chains and name the first sequence number that is not what it should be.

The decision chain is checked record by record (each hash recomputed from the stored columns, each link to the
previous hash, no seq missing) and against the checkpoints written outside the database:

| tampering | how it shows | first bad seq |
|---|---|---|
| a field edited | the recomputed hash differs | that record |
| a record deleted | a seq is missing | the missing seq |
| a record inserted (later ones renumbered) | its hash differs from the checkpoint fingerprint | the inserted record |
| two records swapped | the hash covers the seq, so both differ | the first of the two |
| the tail truncated (head moved back too) | the last checkpoint vouches for a later seq | the first missing seq |
| an edit and every later hash recomputed | the fingerprint and the checkpoint's head hash differ | the edited record |
| the start removed without a purge | the chain's base is not the base of the last checkpoint | the first removed seq |

After a purge the walk starts from the base the purge checkpoint recorded (the hash of the last purged record).
Records appended after the last checkpoint are protected by the chain alone: a full re-hash of those cannot be
told from the truth until the next checkpoint. The governance log is walked the same way (`audit.governance`'s
hash), and checked against the governance head that each checkpoint also records.

The checks are pure functions over rows (`verify_decision_rows`, `verify_governance_rows`), fed by paged reads of the
database; tests run the same functions over rows held in memory.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pony import orm

from audit import checkpoints as cps
from audit import store
from audit.chain import COLUMNS, GENESIS, HASH_AT, PREV_AT, SELECT_LIST, values_hash
from audit.governance import event_hash
from audit.records import Head, read_head, stream


@dataclass(frozen=True)
class Finding:
    chain: str
    seq: int
    code: str
    message: str

    def format(self) -> str:
        return f"{self.chain}: seq {self.seq}: {self.message} [{self.code}]"


@dataclass
class ChainReport:
    chain: str
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    findings: list[Finding] = field(default_factory=list)
    checkpoint_seq: int | None = None  # the last checkpoint this chain was checked against
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first_bad(self) -> int | None:
        return min((f.seq for f in self.findings), default=None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "ok": self.ok,
            "first_bad": self.first_bad,
            "records": self.records,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "checkpoint_seq": self.checkpoint_seq,
            "findings": [f.__dict__ for f in self.findings],
            "notes": self.notes,
        }


@dataclass
class VerifyReport:
    decisions: ChainReport
    governance: ChainReport

    @property
    def ok(self) -> bool:
        return self.decisions.ok and self.governance.ok

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "decisions": self.decisions.to_dict(), "governance": self.governance.to_dict()}


class _Fingerprints:
    """The checkpoint prefix(es) for each seq. Ranges are at most `every` long and rarely overlap; the walk asks in
    seq order, so the range that answered last is tried first (no search for almost every record)."""

    def __init__(self, ranges: list[tuple[int, int, str]]) -> None:
        self.ranges = ranges
        self.starts = [r[0] for r in ranges]
        self.longest = max((r[1] - r[0] for r in ranges), default=0)
        self.current: tuple[int, int, str] | None = None
        self.single = True  # whether `current` is the only range holding the seqs it holds

    def expected(self, seq: int) -> list[str]:
        current = self.current
        if current is not None and self.single and current[0] < seq <= current[1]:
            offset = (seq - current[0] - 1) * cps.PREFIX
            return [current[2][offset : offset + cps.PREFIX]]
        out = []
        found = []
        i = bisect.bisect_left(self.starts, seq) - 1
        while i >= 0 and self.ranges[i][0] >= seq - self.longest:
            start, end, prefixes = self.ranges[i]
            if start < seq <= end:
                offset = (seq - start - 1) * cps.PREFIX
                out.append(prefixes[offset : offset + cps.PREFIX])
                found.append(self.ranges[i])
            i -= 1
        if len(found) == 1:
            self.current = found[0]
            # Overlaps end where the next range starts: only trust `current` alone if none starts inside it.
            j = bisect.bisect_right(self.starts, found[0][0])
            self.single = j >= len(self.starts) or self.starts[j] >= found[0][1]
        else:
            self.current = None
        return out


def _row_problem(
    values: Sequence[Any], links: tuple[str, ...] | None, fingerprints: _Fingerprints, heads: dict[int, str]
) -> tuple[tuple[str, str] | None, tuple[str, ...]]:
    """The row's first problem (or None), and the hashes the next record may link to."""
    seq, digest = int(values[0]), str(values[HASH_AT])
    try:
        again = values_hash(values)
    except (TypeError, ValueError, OverflowError):  # text where a number belongs: SQLite stores what it is given
        again = ""
    if again != digest:
        # Either the content or the stored hash was changed; the next record links to one of the two.
        return ("content-hash", "the record's content does not match its hash (a field was changed)"), (digest, again)
    if links is not None and values[PREV_AT] not in links:
        return ("broken-link", "the record does not link to the hash of the record before it"), (digest,)
    for prefix in fingerprints.expected(seq):
        if not digest.split(":", 1)[-1].startswith(prefix):
            return ("checkpoint-mismatch", "the record's hash differs from the one a checkpoint recorded"), (digest,)
    vouched = heads.get(seq)
    if vouched is not None and vouched != digest:
        return ("checkpoint-mismatch", "the record's hash differs from the checkpoint's head hash"), (digest,)
    return None, (digest,)


def _as_values(row: Sequence[Any] | Mapping[str, Any]) -> Sequence[Any]:
    return row if type(row) is tuple else tuple(row.get(name) for name in COLUMNS)  # type: ignore[union-attr]


def verify_decision_rows(
    rows: Iterable[Sequence[Any] | Mapping[str, Any]],
    head: Head,
    checkpoints: cps.Checkpoints | None,
    *,
    max_seq: int | None = None,
    head_after: Head | None = None,
    every_finding: bool = False,
    limit: int = 1000,
) -> ChainReport:
    """Check the decision chain: `rows` in seq order (tuples in COLUMNS order, or mappings), `head` read first.

    `max_seq` (the largest seq stored) and `head_after` (the head read after the walk) catch records added past the
    head; both default to what the walk itself saw. By default the walk stops at the first finding; with
    `every_finding` it goes on (up to `limit` findings), re-synchronising on the stored hashes after each one, so
    that independent damage at several places is each named (a change that shifts every later record, such as an
    insertion, then shows as a finding on every record after it).
    """
    report = ChainReport("decisions")
    points = checkpoints or cps.Checkpoints()
    last = points.last
    if checkpoints is None:
        report.notes.append("no checkpoint file: truncation and re-hashing cannot be checked")
    elif last is None:
        report.notes.append("no checkpoint of this chain yet: truncation and re-hashing cannot be checked")
    else:
        report.checkpoint_seq = last["seq"]
    report.notes.extend(points.problems)

    def stop(seq: int, code: str, message: str) -> bool:
        """Record a finding; True when the walk should end here."""
        if len(report.findings) < limit:
            report.findings.append(Finding("decisions", seq, code, message))
        return not every_finding or len(report.findings) >= limit

    heads = points.heads()
    fingerprints = _Fingerprints(points.fingerprints())
    # The chain's start: the migration's genesis, or the last purged record's hash, which the purge checkpoint
    # recorded. A start that moved past the last checkpoint's base lost records without a purge.
    if last is not None and head.base_seq > last["base_seq"]:
        message = (
            f"the chain now starts after seq {head.base_seq}, but the last checkpoint has it start after seq "
            f"{last['base_seq']}: records were removed without a purge"
        )
        if stop(last["base_seq"] + 1, "unanchored-start", message):
            return report
    expected_base = heads.get(head.base_seq) if head.base_seq > 0 else GENESIS
    if expected_base is not None and expected_base != head.base_hash:
        message = f"the chain's base hash differs from the checkpoint at seq {head.base_seq}"
        if stop(head.base_seq + 1, "unanchored-start", message):
            return report

    expected, prev = head.base_seq + 1, head.base_hash
    links: tuple[str, ...] = (prev,)
    for row in rows:
        values = _as_values(row)
        seq = int(values[0])
        if seq < expected:
            if stop(seq, "out-of-order", f"seq {seq} appears twice or before the chain's base"):
                return report
            continue
        allowed: tuple[str, ...] | None = links
        if seq > expected:
            for gone in range(expected, seq):
                if stop(gone, "missing", f"record {gone} is missing (the next one stored is {seq})"):
                    return report
            allowed = None  # its predecessor is gone: nothing to link to
        problem, links = _row_problem(values, allowed, fingerprints, heads)
        if problem is not None and stop(seq, *problem):
            return report
        if report.first_seq is None:
            report.first_seq = seq
        report.records += 1
        report.last_seq = seq
        prev = str(values[HASH_AT])
        expected = seq + 1
    walked = expected - 1
    if walked < head.seq:
        if stop(walked + 1, "truncated", f"the head says seq {head.seq}, but the records end at seq {walked}"):
            return report
    elif (
        walked == head.seq
        and prev != head.hash
        and stop(walked, "head-mismatch", "the head row does not hold the hash of the last record")
    ):
        return report
    if last is not None and walked < last["seq"]:
        message = f"the last checkpoint vouches for seq {last['seq']}, but the records end at seq {walked}"
        if stop(walked + 1, "truncated", message):
            return report
    # Records past the head: an append that did not move it. `head_after` (read after `max_seq`) allows for
    # records legitimately appended while the walk ran.
    top = max(walked, max_seq or 0)
    after = head_after or head
    if top > after.seq:
        stop(after.seq + 1, "beyond-head", f"records up to seq {top} lie beyond the head (seq {after.seq})")
    return report


def _at(value: Any) -> dt.datetime:
    # sqlite3 hands TIMESTAMP back as text, psycopg2 as datetime.
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))


def verify_governance_rows(
    rows: Iterable[Mapping[str, Any]], head: tuple[int, str] | None, checkpoints: cps.Checkpoints | None
) -> ChainReport:
    report = ChainReport("governance")
    points = checkpoints or cps.Checkpoints()
    vouched = {line["governance_seq"]: line["governance_hash"] for line in points.lines if line.get("governance_seq")}
    last = max(vouched, default=None)
    report.checkpoint_seq = last

    def found(seq: int, code: str, message: str) -> ChainReport:
        report.findings.append(Finding("governance", seq, code, message))
        return report

    expected, prev = 1, GENESIS
    for row in rows:
        seq = int(row["seq"])
        if seq > expected:
            return found(expected, "missing", f"event {expected} is missing (the next one stored is {seq})")
        if seq < expected:
            return found(seq, "out-of-order", f"seq {seq} appears twice")
        again = event_hash(
            row["prev_hash"], seq, _at(row["at"]), row["actor"], row["action"], row["subject"], row["detail"]
        )
        if again != row["hash"]:
            return found(seq, "content-hash", "the event's content does not match its hash (a field was changed)")
        if row["prev_hash"] != prev:
            return found(seq, "broken-link", "the event does not link to the hash of the event before it")
        if seq in vouched and vouched[seq] != row["hash"]:
            return found(seq, "checkpoint-mismatch", "the event's hash differs from the one a checkpoint recorded")
        report.first_seq = report.first_seq or seq
        report.records += 1
        report.last_seq = seq
        prev, expected = row["hash"], seq + 1
    walked = expected - 1
    if head is not None and walked < head[0]:
        return found(walked + 1, "truncated", f"the head says seq {head[0]}, but the events end at seq {walked}")
    if head is not None and walked == head[0] and head[1] != prev:
        return found(walked, "head-mismatch", "the head row does not hold the hash of the last event")
    if head is not None and walked > head[0]:
        return found(head[0] + 1, "beyond-head", f"events up to seq {walked} lie beyond the head")
    if last is not None and walked < last:
        return found(walked + 1, "truncated", f"a checkpoint vouches for event {last}, but the events end at {walked}")
    return report


GOVERNANCE_COLUMNS = ("seq", "at", "actor", "action", "subject", "detail", "prev_hash", "hash")


def _governance_rows(page: int = 1000) -> Iterator[dict[str, Any]]:
    last = 0
    sql = f"SELECT {', '.join(GOVERNANCE_COLUMNS)} FROM governance_event WHERE seq > ? ORDER BY seq LIMIT {page}"
    while True:
        with orm.db_session:
            rows = store.query(sql, (last,))
        yield from (dict(zip(GOVERNANCE_COLUMNS, r, strict=True)) for r in rows)
        if len(rows) < page:
            return
        last = int(rows[-1][0])


def verify(checkpoint_file: Path | None = None, *, every_finding: bool = False) -> VerifyReport:
    """Verify both chains in the bound database against the checkpoints (default: the configured file)."""
    head = read_head()
    points = cps.read(head.chain_id, checkpoint_file)
    rows: Iterator[Sequence[Any]] = stream(head.base_seq, head.seq)
    if head.base_seq:
        # Rows at or below the base must not exist after a purge; the walk starts from the base, so look for them.
        rows = _with_leftovers(rows, head.base_seq)
    with orm.db_session:
        decisions_report = verify_decision_rows(
            rows, head, points, max_seq=_max_seq(), head_after=read_head(), every_finding=every_finding
        )
        gov_head = store.query_one("SELECT seq, hash FROM governance_head WHERE id = 1")
    governance_report = verify_governance_rows(
        _governance_rows(), (int(gov_head[0]), str(gov_head[1])) if gov_head else None, points
    )
    return VerifyReport(decisions_report, governance_report)


def _max_seq() -> int:
    row = store.query_one("SELECT MAX(seq) FROM decision_record")
    return int(row[0]) if row and row[0] is not None else 0


def _with_leftovers(rows: Iterator[Sequence[Any]], base_seq: int) -> Iterator[Sequence[Any]]:
    with orm.db_session:
        stale = store.query_one(
            f"SELECT {SELECT_LIST} FROM decision_record WHERE seq <= ? ORDER BY seq LIMIT 1", (base_seq,)
        )
    if stale is not None:
        yield stale
    yield from rows


def format_report(report: VerifyReport) -> list[str]:
    lines = []
    for chain in (report.decisions, report.governance):
        if chain.ok:
            span = f" (seq {chain.first_seq}..{chain.last_seq})" if chain.records else ""
            anchor = f"; matches the checkpoint at seq {chain.checkpoint_seq}" if chain.checkpoint_seq else ""
            lines.append(f"{chain.chain}: {chain.records} records{span}: intact{anchor}")
        else:
            lines.append(f"{chain.chain}: FIRST BAD seq {chain.first_bad}")
            lines.extend(f"  {f.message} [{f.code}]" for f in chain.findings)
        lines.extend(f"  note: {note}" for note in chain.notes)
    return lines


__all__ = [
    "ChainReport",
    "Finding",
    "VerifyReport",
    "format_report",
    "verify",
    "verify_decision_rows",
    "verify_governance_rows",
]
