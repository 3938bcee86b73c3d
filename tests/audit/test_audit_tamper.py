"""The tamper campaign: every kind of change to a 10,000-record chain is found, at the right sequence number.

Each mutation is what an attacker with the database owner's rights could do: the triggers bypassed (dropped on
SQLite, `session_replication_role = replica` on PostgreSQL), rows changed, the head row moved where that helps them.
Checkpoints are the periodic ones the appends wrote (every 1,000 records).

- Damage that stays where it is done (an edited field, a deleted record, two records swapped): 100 places at once
  in the database, one `verify()` that names each of them, then 10 places one at a time; every mutation runs in a
  transaction that is rolled back afterwards.
- Damage that moves or rewrites everything after it (an inserted record, a truncated tail, a full re-hash after an
  edit) can only be found one place at a time, and costs a walk up to it: 100 places per class go through
  `verify_decision_rows` (the function `verify()` feeds its rows to) over the chain's rows as `verify()` streams
  them, and 5 of them per class also through the database and `verify()` itself.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from audit import checkpoints as cps
from audit import store
from audit.chain import COLUMNS, GENESIS, HASH_AT, PREV_AT, new_decision_id, record_hash, values_hash
from audit.records import Head, read_head
from audit.verify import verify, verify_decision_rows
from tests.audit.audit_helpers import all_rows, build_chain, insert_row, memoized_values_hash, tampering

N = 10_000
POSITIONS = 100  # per mutation class
ALONE = 10  # of the local classes' positions, also one at a time
THROUGH_DB = 5  # of the shifting classes' positions, also done in the database and found by verify() itself
INT = {"policy_version", "latency_us"}
FLOAT = {"score", "pd", "limit_amount", "rate"}
JSON = {"library", "input", "decision", "masked"}
EDITABLE = sorted(set(COLUMNS) - {"seq"})
SEQ_AT = COLUMNS.index("seq")


def _changed(column: str, old: Any, seq: int) -> Any:
    if column in INT:
        return (old or 0) + 1
    if column in FLOAT:
        return (old or 0.0) + 0.5
    if column == "outcome":
        return "approve" if old != "approve" else "decline"
    if column in JSON:
        return old + " "  # the same JSON value, one byte more: still a change
    return f"{old or ''}~{seq}"  # unique per record: several edited keys must not collide in a unique index


def _set(cursor: Any, seq: int, column: str, value: Any) -> None:
    cursor.execute(store.adapt(f"UPDATE decision_record SET {column} = ? WHERE seq = ?"), (value, seq))


def _move_head(cursor: Any, seq: int, digest: str) -> None:
    cursor.execute(store.adapt("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1"), (seq, digest))


Mutation = Callable[[Any, list[dict[str, Any]], int, random.Random], int]


def edit(cursor: Any, rows: list[dict[str, Any]], p: int, rng: random.Random) -> int:
    column = rng.choice(EDITABLE)
    _set(cursor, p, column, _changed(column, rows[p - 1][column], p))
    return p


def delete(cursor: Any, rows: list[dict[str, Any]], p: int, rng: random.Random) -> int:
    cursor.execute(store.adapt("DELETE FROM decision_record WHERE seq = ?"), (p,))
    return p


def insert(cursor: Any, rows: list[dict[str, Any]], p: int, rng: random.Random) -> int:
    # Make room at p (through negative numbers: the seq key is checked row by row), then a forged record that
    # links correctly to p - 1 and carries a correct hash of its own; the head follows the longer chain.
    cursor.execute(store.adapt("UPDATE decision_record SET seq = -seq - 1 WHERE seq >= ?"), (p,))
    cursor.execute("UPDATE decision_record SET seq = -seq WHERE seq < 0")
    insert_row(cursor, _forged(rows, p))
    _move_head(cursor, len(rows) + 1, rows[-1]["hash"])
    return p


def swap(cursor: Any, rows: list[dict[str, Any]], p: int, rng: random.Random) -> int:
    for old, new in ((p, -1), (p + 1, p), (-1, p + 1)):
        cursor.execute(store.adapt("UPDATE decision_record SET seq = ? WHERE seq = ?"), (new, old))
    return p


def truncate(cursor: Any, rows: list[dict[str, Any]], p: int, rng: random.Random) -> int:
    cursor.execute(store.adapt("DELETE FROM decision_record WHERE seq > ?"), (p,))
    _move_head(cursor, p, rows[p - 1]["hash"])
    return p + 1


def rehash(cursor: Any, rows: list[dict[str, Any]], p: int, rng: random.Random) -> int:
    """Edit record p, then recompute every hash from p to the end so that the chain is consistent again."""
    column = rng.choice([c for c in EDITABLE if c not in ("prev_hash", "hash")])
    prev = rows[p - 2]["hash"] if p > 1 else GENESIS
    updates = []
    for index in range(p - 1, len(rows)):
        row = dict(rows[index])
        if index == p - 1:
            row[column] = _changed(column, row[column], p)
        row["prev_hash"] = prev
        prev = row["hash"] = record_hash(row)
        updates.append(row)
    first = updates[0]
    _set(cursor, p, column, first[column])
    if store.dialect() == "postgresql":
        from psycopg2.extras import execute_values

        execute_values(
            cursor,
            "UPDATE decision_record AS d SET hash = v.h, prev_hash = v.p FROM (VALUES %s) AS v(s, h, p) "
            "WHERE d.seq = v.s",
            [(r["seq"], r["hash"], r["prev_hash"]) for r in updates],
            page_size=2000,
        )
    else:
        cursor.executemany(
            "UPDATE decision_record SET hash = ?, prev_hash = ? WHERE seq = ?",
            [(r["hash"], r["prev_hash"], r["seq"]) for r in updates],
        )
    _move_head(cursor, len(rows), prev)
    return p


def _forged(rows: list[dict[str, Any]], p: int) -> dict[str, Any]:
    """A record for position p that links correctly to p - 1 and carries a correct hash of its own."""
    forged = dict(rows[p - 1])
    forged.update(seq=p, decision_id=new_decision_id(), application_id="FORGED", outcome="approve")
    forged["prev_hash"] = rows[p - 2]["hash"] if p > 1 else GENESIS
    forged["hash"] = record_hash(forged)
    return forged


# --- the shifting classes over the rows as verify() streams them ---------------------------------------------------

Rows = list[tuple[Any, ...]]
Shifted = tuple[Iterator[Sequence[Any]], Head, int]  # rows, head, expected first bad seq


def insert_rows(rows: Rows, dicts: list[dict[str, Any]], p: int, head: Head, rng: random.Random) -> Shifted:
    forged = _forged(dicts, p)
    renumbered = ((r[0] + 1, *r[1:]) for r in rows[p - 1 :])  # every later record moves up one
    chain = itertools.chain(rows[: p - 1], [tuple(forged[c] for c in COLUMNS)], renumbered)
    return chain, Head(N + 1, rows[-1][HASH_AT], 0, GENESIS, head.chain_id), p


def truncate_rows(rows: Rows, dicts: list[dict[str, Any]], p: int, head: Head, rng: random.Random) -> Shifted:
    return iter(rows[:p]), Head(p, rows[p - 1][HASH_AT], 0, GENESIS, head.chain_id), p + 1


class _RehashedHead:
    """The head an attacker leaves after re-hashing from p to the end: seq N and the chain's new last hash.

    The new hashes are computed when first read (the walk stops at p when the verifier works, so a full re-hash
    per position is paid only if it does not); the value is the same either way.
    """

    def __init__(self, rows: Rows, p: int, at: int, value: Any, chain_id: str) -> None:
        self.seq, self.base_seq, self.base_hash, self.chain_id = N, 0, GENESIS, chain_id
        self._rows, self._p, self._at, self._value = rows, p, at, value

    def rewritten(self) -> Iterator[tuple[Any, ...]]:
        prev = self._rows[self._p - 2][HASH_AT] if self._p > 1 else GENESIS
        for index in range(self._p - 1, N):
            values = list(self._rows[index])
            if index == self._p - 1:
                values[self._at] = self._value
            values[PREV_AT] = prev
            prev = values[HASH_AT] = values_hash(values)
            yield tuple(values)

    @property
    def hash(self) -> str:
        return next(iter(reversed(list(self.rewritten()))))[HASH_AT]


def rehash_rows(rows: Rows, dicts: list[dict[str, Any]], p: int, head: Head, rng: random.Random) -> Shifted:
    column = rng.choice([c for c in EDITABLE if c not in ("prev_hash", "hash")])
    at = COLUMNS.index(column)
    moved = _RehashedHead(rows, p, at, _changed(column, rows[p - 1][at], p), head.chain_id)
    return itertools.chain(rows[: p - 1], moved.rewritten()), moved, p  # type: ignore[return-value]


SHIFTING: list[tuple[str, Callable[..., Shifted], Mutation, int, set[str]]] = [
    ("insert", insert_rows, insert, N, {"checkpoint-mismatch"}),
    ("truncate", truncate_rows, truncate, N - 1, {"truncated"}),
    ("rehash", rehash_rows, rehash, N, {"checkpoint-mismatch"}),
]
LOCAL: list[tuple[str, Mutation, int, set[str]]] = [
    ("edit", edit, N, {"content-hash"}),
    ("delete", delete, N, {"missing", "truncated"}),
    ("swap", swap, N - 1, {"content-hash", "broken-link"}),
]


def _spread(rng: random.Random, high: int, count: int, gap: int) -> list[int]:
    """`count` random positions in [1, high], at least `gap` apart (so that two swaps never share a record)."""
    chosen: list[int] = []
    while len(chosen) < count:
        p = rng.randint(1, high)
        if all(abs(p - q) >= gap for q in chosen):
            chosen.append(p)
    return sorted(chosen)


def test_every_mutation_class_is_detected_at_the_right_seq(database: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    memoized_values_hash(monkeypatch)
    build_chain(N)
    dicts = all_rows()
    rows = [tuple(d[c] for c in COLUMNS) for d in dicts]
    assert [r[SEQ_AT] for r in rows] == list(range(1, N + 1))
    clean = verify()
    assert clean.ok, clean.to_dict()
    assert clean.decisions.checkpoint_seq == N
    head = read_head()
    points = cps.read(head.chain_id)
    rng = random.Random(20261129)
    detected: dict[str, int] = {}

    for name, mutate, high, codes in LOCAL:
        positions = _spread(rng, high, POSITIONS, 3 if name == "swap" else 1)
        with tampering() as cursor:
            for p in positions:
                mutate(cursor, dicts, p, rng)
            report = verify(every_finding=True).decisions
        seqs = {f.seq for f in report.findings}
        expected = set(positions)
        if name == "swap":  # both moved records, and the next one, whose link now points at the wrong record
            expected |= {q for p in positions for q in (p + 1, p + 2) if q <= N}
        assert seqs == expected, (name, sorted(expected - seqs), sorted(seqs - expected))
        assert report.first_bad == positions[0]
        assert {f.code for f in report.findings} <= codes
        detected[name] = len(set(positions) & seqs)
        for p in rng.sample(range(1, high + 1), ALONE):  # alone: the walk stops at the first finding
            with tampering() as cursor:
                mutate(cursor, dicts, p, rng)
                alone = verify().decisions
            assert alone.first_bad == p and len(alone.findings) == 1, (name, p, alone.findings)

    for name, shift, mutate, high, codes in SHIFTING:
        positions = rng.sample(range(1, high + 1), POSITIONS)
        for p in positions:
            chain, moved_head, expected_seq = shift(rows, dicts, p, head, rng)
            report = verify_decision_rows(chain, moved_head, points)
            assert report.first_bad == expected_seq, (name, p, [f.format() for f in report.findings])
            assert report.findings[0].code in codes, (name, p, report.findings[0])
        detected[name] = len(positions)
        for p in positions[:THROUGH_DB]:  # the same damage done in the database, found by verify() itself
            with tampering() as cursor:
                expected_seq = mutate(cursor, dicts, p, rng)
                report = verify().decisions
            assert report.first_bad == expected_seq, (name, p, [f.format() for f in report.findings])
            assert report.findings[0].code in codes, (name, p, report.findings[0])

    assert detected == {name: POSITIONS for name in ("edit", "delete", "swap", "insert", "truncate", "rehash")}
    after = verify()  # every mutation was rolled back: the chain is whole again, and says so
    assert after.ok, after.to_dict()


def test_a_thousand_clean_verifications_raise_no_false_alarm(database: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The verifier over the chain as it stood after 1,000 different numbers of appends, each with the checkpoints
    written by then: rows read once from the database, as verify() streams them, and verified in memory.
    Lengths are spread log-uniformly (every scale, many checkpoint boundaries) plus the full chain ten times."""
    memoized_values_hash(monkeypatch)
    build_chain(N)
    rows = [tuple(d[c] for c in COLUMNS) for d in all_rows()]
    head = read_head()
    points = cps.read(head.chain_id)
    assert points is not None and len(points.lines) == N // 1000
    rng = random.Random(1000)
    lengths = [N] * 10 + [1, 2, 999, 1000, 1001, 1999, 2000, 2001, 9000, 9999]
    lengths += [max(1, round(math.exp(rng.uniform(0, math.log(2000))))) for _ in range(1000 - len(lengths))]
    alarms = []
    for length in lengths:
        state = cps.Checkpoints([line for line in points.lines if line["seq"] <= length])
        report = verify_decision_rows(
            rows[:length], Head(length, rows[length - 1][HASH_AT], 0, GENESIS, head.chain_id), state
        )
        if not report.ok:
            alarms.append((length, report.findings))
    assert len(lengths) == 1000
    assert alarms == []
    assert verify().ok  # and the whole chain, through the database
